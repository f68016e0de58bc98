"""Fakes and fixtures for kata 5's specs: a busy server, a scripted worker, scripted task ids.

Read them if you like; you do not need to change them.

Nothing here waits on a clock. A spec lets the event loop run a bounded number of turns
(``ROUNDS``) for what it expects to happen; a correct app needs a handful. Code that
waits for real time (a sleep) or for something that never comes is still running when
the turns are used up, on every run, and the spec fails with a lesson instead of hanging.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

import pytest

from dojo.fakes import FakeClock
from dojo.teach import lesson
from dojo.timeline import ASGIApp, Exchange, Timeline, describe_error

STEP_STARTED = "step started"
STEP_HELD = "step held"
STEP_FINISHED = "step finished"
STEP_FAILED = "step failed"
STEP_WAITS = "step waits"
WORK_RELEASED = "background work released"

#: Turns of the event loop a spec allows for what it waits for. A correct app needs fewer than ten.
ROUNDS = 300

HANG = (
    "task 3: the background work needs no real time, so it ends within a few turns of the event loop; "
    "one that sleeps or waits for something that never comes does not (README: Run it and report progress)"
)


async def settle(done: Callable[[], bool], rounds: int = ROUNDS) -> bool:
    """Let the event loop run until ``done()`` holds, for at most ``rounds`` turns; say whether it held."""
    for _ in range(rounds):
        if done():
            return True
        await asyncio.sleep(0)
    return done()


class BusyServer:
    """Drives the app as a busy server would: answers at once, runs the work later.

    Each answer goes out at once; the work queued behind it waits until the spec calls
    :meth:`release`.

    Starlette runs a request's background tasks right after the response's last body
    chunk, in the same call. Here that call pauses at that moment, so a spec can ask the
    app about the task it has just accepted, before any of its work has started.
    """

    RELEASED = WORK_RELEASED

    def __init__(self, app: ASGIApp, timeline: Timeline, worker: FakeWorker) -> None:
        self.app = app
        self.timeline = timeline
        self.worker = worker
        self.calls: list[asyncio.Task[Exchange]] = []
        self._released = asyncio.Event()

    def release(self) -> None:
        """Let the held work go on (and the work of every later request, at once)."""
        if not self._released.is_set():
            self._released.set()
            self.timeline.record(WORK_RELEASED)
        self.worker.open()

    async def request(self, method: str, path: str, **kwargs: Any) -> Exchange:
        """Make one request; return what the client got, as soon as it got it.

        The work the request queued stays held (until :meth:`release`). An answer that is
        a crash (500) lets the call end, so the exception the app raised can be shown.
        """
        __tracebackhide__ = True
        got = Exchange()
        complete = asyncio.Event()

        async def held_app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
            async def watch(message: Mapping[str, Any]) -> None:
                await send(message)
                if message["type"] == "http.response.start":
                    got.status = message["status"]
                    got.headers = [(k.decode().lower(), v.decode()) for k, v in message.get("headers", [])]
                elif message["type"] == "http.response.body":
                    got.body += message.get("body", b"")
                    if not message.get("more_body", False):
                        complete.set()
                        if got.status != 500:
                            await self._released.wait()

            await self.app(scope, receive, watch)

        call = self.timeline.start(held_app, method, path, **kwargs)
        self.calls.append(call)
        if not await settle(lambda: complete.is_set() or call.done()):
            why = "the endpoint waits for real time or for something that never comes"
            if self.timeline.first(STEP_WAITS) is not None:
                why = "the endpoint started the work itself (it called process) and waits for it to end"
            raise AssertionError(
                f"{method} {path} was not answered."
                + lesson(
                    expected="an answer within a few turns of the event loop: the endpoint only records and queues",
                    got=f"no answer after {ROUNDS} turns: {why}",
                    revisit="task 1: the endpoint answers at once and leaves the work for later "
                    "(README: 202 Accepted and a Location to poll)",
                )
                + self.timeline.render()
            )
        if got.status == 500:
            await settle(call.done)
        return call.result() if call.done() else got

    async def finish(self) -> list[Exchange]:
        """Release the held work and let every call end; fail with a lesson if one does not."""
        __tracebackhide__ = True
        self.release()
        if not await settle(lambda: all(call.done() for call in self.calls)):
            raise AssertionError(
                "The background work of the requests did not end."
                + lesson(
                    expected="every request's work done within a few turns of the event loop (the fake work "
                    "takes no real time)",
                    got=f"still running after {ROUNDS} turns",
                    revisit=HANG,
                )
                + self.timeline.render()
            )
        return [call.result() for call in self.calls]

    async def stay_busy(self) -> None:
        """Keep the work held while the event loop runs its full number of turns."""
        await settle(lambda: False)

    async def settle(self, call: int) -> bool:
        """Let the ``call``-th request (from 0) run to its end, for a bounded number of turns."""
        return await settle(self.calls[call].done)

    def errors(self) -> list[str]:
        """What the finished calls raised (a background task's exception ends up here), as text."""
        return [
            describe_error(call.result().error)
            for call in self.calls
            if call.done() and not call.cancelled() and call.result().error is not None
        ]


class Hold:
    """One place where the fake worker stops and waits for the spec: see FakeWorker.hold_at."""

    def __init__(self, item: str) -> None:
        self.item = item
        self.reached = asyncio.Event()
        self._released = asyncio.Event()

    def release(self) -> None:
        """Let the held step go on."""
        self._released.set()

    async def wait_released(self) -> None:
        await self._released.wait()  # a spec that stops early cancels the call at its end


class FakeWorker:
    """The ``process`` the app is given: imports nothing, but behaves like slow work.

    Each call records ``step started``/``step finished`` on the timeline and moves the
    fake clock on by ``seconds_per_item``. A spec can script it:

    - ``hold = worker.hold_at("a.csv")``: the next call for that item stops before its
      work until ``hold.release()``; ``await worker.until(hold)`` waits for it;
    - ``worker.fail_at("a.csv", ValueError("..."))``: that item raises the error.
    """

    STARTED, FINISHED, WAITS = STEP_STARTED, STEP_FINISHED, STEP_WAITS

    def __init__(self, timeline: Timeline, clock: FakeClock, seconds_per_item: float = 3.0) -> None:
        self.timeline = timeline
        self.clock = clock
        self.seconds_per_item = seconds_per_item
        self.started: list[Any] = []
        self.processed: list[Any] = []
        self._holds: dict[str, list[Hold]] = {}
        self._failures: dict[str, BaseException] = {}
        self._open = asyncio.Event()

    def open(self) -> None:
        """The server is no longer busy: work started outside a request may go on too."""
        self._open.set()

    def hold_at(self, item: str) -> Hold:
        """The next call for ``item`` (after any earlier holds on it) waits for the spec."""
        hold = Hold(item)
        self._holds.setdefault(item, []).append(hold)
        return hold

    def fail_at(self, item: str, error: BaseException) -> None:
        """Every call for ``item`` raises ``error``."""
        self._failures[item] = error

    async def __call__(self, item: str) -> None:
        if not self._open.is_set():  # only work running outside the request gets here early
            self.timeline.record(STEP_WAITS, f"{item!r}: the server is busy")
            await self._open.wait()
        self.started.append(item)
        self.timeline.record(STEP_STARTED, repr(item))
        holds = self._holds.get(item) if isinstance(item, str) else None
        if holds:
            hold = holds.pop(0)
            self.timeline.record(STEP_HELD, item)
            hold.reached.set()
            await hold.wait_released()
        self.clock.advance(self.seconds_per_item)
        if isinstance(item, str) and item in self._failures:
            self.timeline.record(STEP_FAILED, f"{item}: {self._failures[item]!r}")
            raise self._failures[item]
        self.processed.append(item)
        self.timeline.record(STEP_FINISHED, repr(item))

    async def until(self, hold: Hold) -> bool:
        """Let the loop run until the work stops at ``hold`` (True), or the turns run out (False)."""
        return await settle(hold.reached.is_set)


class ScriptedIds:
    """An id source that hands out known UUIDs, in order: ``ids.script[0]`` comes first."""

    def __init__(self) -> None:
        self.script = [UUID(f"00000000-0000-4000-8000-{number:012d}") for number in range(1, 201)]
        self.issued: list[UUID] = []

    def __call__(self) -> UUID:
        task_id = self.script[len(self.issued)]
        self.issued.append(task_id)
        return task_id


@pytest.fixture(name="worker")
def _worker(timeline: Timeline, clock: FakeClock) -> FakeWorker:
    """The fake work each task does, item by item."""
    return FakeWorker(timeline, clock)


@pytest.fixture(name="ids")
def _ids() -> ScriptedIds:
    """The task ids the app will hand out, known in advance."""
    return ScriptedIds()


@pytest.fixture(name="serve")
def _serve(timeline: Timeline, worker: FakeWorker) -> Callable[[ASGIApp], BusyServer]:
    """Put an app behind a busy server of its own: ``serve(app)``."""
    return lambda app: BusyServer(app, timeline, worker)


@pytest.fixture(name="server")
def _server(app: ASGIApp, serve: Callable[[ASGIApp], BusyServer]) -> BusyServer:
    """The kata's app behind a busy server: answers at once, work held until released."""
    return serve(app)
