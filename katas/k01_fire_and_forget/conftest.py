"""Fixtures for kata 1: the app, and an outbox that knows who sent each email.

An email can leave at the right moment for the wrong reason: a task or thread of your
own, started in the endpoint, may happen to send after the response, or may not have
sent yet when a spec looks. Timing cannot tell those apart reliably; identity can.

Each request the specs make opens a *window* once the response's last byte is sent and
closes it when the app returns. The window lives in a context variable, which Starlette
hands on to exactly what runs inside that request from then on: its background tasks,
awaited or run in the thread pool. A task made with ``asyncio.create_task`` in the
endpoint, a thread, or an executor job started there carries the context of *before*
the response (or none at all), so its email is recorded as sent outside the window,
every time, however fast or slow it runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import email_validator
import pytest

from dojo.fakes import FakeOutbox
from dojo.impl import kata_module
from dojo.timeline import ASGIApp, Timeline

notifications = kata_module("k01_fire_and_forget", "notifications")

#: How long a spec waits for the learner's code at most. A correct app needs no waiting at all.
BOUND = 2.0

# email-validator loads idna's Unicode tables the first time it meets an international domain
# (a large module: up to a second to compile where no bytecode is cached). Load them here, while
# the specs are collected, so that cost never lands inside whichever spec happens to come first.
email_validator.validate_email("ada@exämple.com", check_deliverability=False)


class Window:
    """A stretch of time owned by one call: open while that call's own work runs."""

    def __init__(self) -> None:
        self.open = True


_WINDOW: ContextVar[Window | None] = ContextVar("k01_window", default=None)


@contextmanager
def window() -> Iterator[Window]:
    """Open a window for the code called inside the ``with`` block (and whatever it awaits)."""
    current = Window()
    token = _WINDOW.set(current)
    try:
        yield current
    finally:
        current.open = False
        _WINDOW.reset(token)


def background_window(app: ASGIApp) -> ASGIApp:
    """``app``, with a window open from the response's last byte until the app returns."""

    async def marked(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        current = Window()
        current.open = False

        async def marking_send(message: Mapping[str, Any]) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                # Awaited from the task that runs the response, so the variable stays set in it:
                # the background tasks run next, in that same task and context.
                current.open = True
                _WINDOW.set(current)

        try:
            await app(scope, receive, marking_send)
        finally:
            current.open = False

    return marked


class WitnessOutbox(FakeOutbox):
    """The shared fake outbox, plus a note for each email: was it sent inside a window?"""

    def __init__(self, timeline: Timeline) -> None:
        super().__init__(timeline)
        self.inside: list[bool] = []  # one entry per email in ``sent``, in the same order

    def send(self, to: str, subject: str, body: str) -> None:
        """Deliver one email (blocking, like smtplib), noting whose window it was sent in."""
        current = _WINDOW.get()
        inside = current is not None and current.open
        super().send(to, subject, body)
        self.inside.append(inside)

    @staticmethod
    def window() -> Any:
        """A context manager: emails sent by what runs inside the ``with`` block count as inside."""
        return window()

    def sent_inside(self) -> list[tuple[object, object, object]]:
        """(to, subject, body) of each email sent inside a window."""
        return [(e.to, e.subject, e.body) for e, inside in zip(self.sent, self.inside, strict=True) if inside]

    def sent_outside(self) -> int:
        """How many emails were sent from anywhere else, so far."""
        return self.inside.count(False)


@pytest.fixture(name="timeline")
def _timeline() -> Iterator[Timeline]:
    """The shared timeline, with a bound of BOUND seconds on any wait for the learner's code."""
    timeline = Timeline(safety_timeout=BOUND)
    yield timeline
    timeline.close()


@pytest.fixture(name="outbox")
def _outbox(timeline: Timeline) -> WitnessOutbox:
    """A fake mail server with a blocking ``send`` that knows which emails a request's background tasks sent."""
    return WitnessOutbox(timeline)


@pytest.fixture(name="app")
def _app(outbox: WitnessOutbox) -> ASGIApp:
    """The kata's app, sending through the fake outbox, with each request's background window marked."""
    return background_window(notifications.create_app(mailer=outbox))


@pytest.fixture(name="within")
def _within() -> Callable[..., Awaitable[tuple[bool, Any]]]:
    """``await within(awaitable)``: (True, its result or exception), or (False, None) after BOUND seconds."""
    return within


async def within(awaitable: Awaitable[Any], seconds: float = BOUND) -> tuple[bool, Any]:
    """Await ``awaitable`` for at most ``seconds``: (True, its result) or (False, None) if it did not end.

    An exception it raises is returned as the result, for the spec to explain.
    """
    task = asyncio.ensure_future(awaitable)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    if not done:
        task.cancel()
        return False, None
    if task.cancelled():
        return True, asyncio.CancelledError()
    return True, task.exception() or task.result()
