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
import contextlib
import contextvars
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import email_validator
import pytest

from dojo.fakes import FakeOutbox
from dojo.impl import kata_module
from dojo.teach import lesson
from dojo.timeline import BOUND, ASGIApp, Exchange, Timeline

notifications = kata_module("k01_fire_and_forget", "notifications")

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


@pytest.fixture(name="outbox")
def _outbox(timeline: Timeline) -> WitnessOutbox:
    """A fake mail server with a blocking ``send`` that knows which emails a request's background tasks sent."""
    return WitnessOutbox(timeline)


@pytest.fixture(name="app")
def _app(outbox: WitnessOutbox) -> ASGIApp:
    """The kata's app, sending through the fake outbox, with each request's background window marked."""
    return background_window(notifications.create_app(mailer=outbox))


def in_thread(func: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
    """Call ``func(*args)`` in a daemon thread of its own, in the caller's context; a future of its result.

    Not ``asyncio.to_thread``: the event loop's executor is joined when the loop closes, so a
    function that never returns would hang the run after its spec had failed. This thread is
    simply left behind, and dies with the process.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Any] = loop.create_future()
    context = contextvars.copy_context()

    def settle(result: Any, error: BaseException | None) -> None:
        if future.done():
            return
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)

    def run() -> None:
        try:
            result, error = context.run(func, *args), None
        except BaseException as raised:  # noqa: BLE001 - handed to the spec, whatever it is
            result, error = None, raised
        with contextlib.suppress(RuntimeError):  # the loop is closed: the spec has long ended
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, name="k01 spec: the task, called directly", daemon=True).start()
    return future


@pytest.fixture(name="in_thread")
def _in_thread() -> Callable[..., asyncio.Future[Any]]:
    """``await within(in_thread(func, *args))``: see :func:`in_thread`."""
    return in_thread


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


NEVER_ENDS = (
    "task 3: the background tasks run inside the request, so a task that never returns keeps the request "
    "from ever ending (README: The response first, then the tasks)"
)


def _hung(what: str, timeline: Timeline) -> None:
    __tracebackhide__ = True
    pytest.fail(
        f"{what} was still running after {BOUND} s."
        + lesson(
            expected="the response, and then the request's background tasks, each to end",
            got="something in the endpoint or in its background task never returned",
            revisit=NEVER_ENDS,
        )
        + timeline.render(),
        pytrace=False,
    )


@pytest.fixture(name="post")
def _post(client: Any, timeline: Timeline) -> Callable[..., Awaitable[Any]]:
    """``await post(json=...)`` (or ``content=``): POST /notifications through the test client, at most BOUND s.

    Like every test client, it returns once the request's background tasks have run.
    """

    async def post(**kwargs: Any) -> Any:
        __tracebackhide__ = True
        ended, response = await within(client.post("/notifications", **kwargs))
        if not ended:
            _hung("The request", timeline)
        if isinstance(response, BaseException):
            raise response
        return response

    return post


@pytest.fixture(name="call")
def _call(app: ASGIApp, timeline: Timeline) -> Callable[..., Awaitable[Exchange]]:
    """``await call(json=...)``: POST /notifications on the timeline, until the app returns; at most BOUND s."""

    async def call(**kwargs: Any) -> Exchange:
        __tracebackhide__ = True
        ended, exchange = await within(timeline.start(app, "POST", "/notifications", **kwargs))
        if not ended:
            _hung("The request", timeline)
        return exchange

    return call


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say why the run does not end, if a background task is still running in Starlette's thread pool.

    A spec gives up on a task after BOUND seconds, but a thread cannot be stopped from outside,
    and Python waits for the thread pool's threads before it exits.
    """
    stuck = [t for t in threading.enumerate() if t.name == "AnyIO worker thread" and t.is_alive()]
    for thread in stuck:
        thread.join(0.2)  # an idle worker is on its way out once the specs' event loops are closed
    if any(thread.is_alive() for thread in stuck):
        terminalreporter.write_line(
            "A background task is still running in a worker thread: it never returned, and Python waits "
            "for it before it exits. Press Ctrl-C to stop. Find the loop or the long sleep in your task "
            "(README: The response first, then the tasks).",
            yellow=True,
            bold=True,
        )
