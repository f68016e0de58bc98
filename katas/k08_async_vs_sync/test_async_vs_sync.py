"""Specs for kata 8: async or sync.

Run them with

    uv run pytest katas/k08_async_vs_sync

Each spec names the README task it checks. Edit activity.py, not this file.

How these specs run your code, in case a failure puzzles you:

- **Your app runs on an event loop of its own, in a thread of its own**, as it does under
  uvicorn, and the specs talk to it from outside. This kata is about code that blocks the
  event loop: run on the specs' own loop, such code would freeze the specs too, and a time
  limit set on a frozen loop never fires. From outside, every wait is bounded: whatever
  blocks your app's loop (a blocking call in an ``async def``, ``time.sleep`` in a loop that
  polls, a ``while`` with no ``await``), the spec fails after two seconds with a lesson.
- **No real time reaches a verdict.** Your app's loop keeps a virtual clock: it stands still
  while anything can run and jumps to the next timer when nothing can. A drain that waits
  five seconds at shutdown takes no real time, and its five seconds are measured exactly.
- **The blocking fake is held by events, not by time.** The fake reporting library blocks
  each rebuild until the spec lets it go, and the spec asks "did the other request complete
  while the rebuild was held?", never "how long did it take?". Called on the thread of an
  event loop, a rebuild still blocks, but a watchdog lets it go after a moment: nobody else
  could, since the loop that would is the one it blocks. No verdict depends on that moment.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import gc
import inspect
import logging
import threading
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
import fastapi
import pytest

from dojo.fakes import on_event_loop_thread
from dojo.impl import kata_module
from dojo.teach import expect_status, expect_type, lesson
from dojo.timeline import (
    BOUND,
    CALL_FINISHED,
    RESPONSE_COMPLETE,
    Exchange,
    StillRunningError,
    Timeline,
    describe_error,
    wait_until,
    within_bound,
)
from dojo.virtual_clock import VirtualClockLoop, stop_leftovers

activity = kata_module("k08_async_vs_sync", "activity")


def _prepare_fastapi() -> None:
    """FastAPI imports more of pydantic when it builds its first route with a body: done while pytest collects."""

    async def endpoint(body: dict[str, int]) -> dict[str, int]:
        return body

    fastapi.FastAPI().post("/")(endpoint)


_prepare_fastapi()

# The specs of task 4 run the garbage collector. Everything imported so far (FastAPI, pydantic,
# pytest ...) lives for the whole run: moved out of the collector's sight, it is not scanned again
# at each collection, which then costs a millisecond instead of a tenth of a second.
gc.freeze()

T = TypeVar("T")

VALID = {"user_id": 7, "action": "ran 5 km"}

STATS_STARTED = "stats update started"
STATS_UPDATED = "stats updated"
REBUILD_STARTED = "rebuild started"
REBUILD_ON_LOOP = "rebuild blocked the event loop"
REBUILD_DONE = "rebuild done"
PUBLISH_STARTED = "publish started"
PUBLISH_DONE = "publish done"
PUBLISH_FAILED = "publish failed"
PUBLISH_CANCELLED = "publish cancelled"
PUBLISH_CLEANED_UP = "publish cleaned up"
PUBLISH_DESTROYED = "publish destroyed by the garbage collector"
PING_ANSWERED = "GET /ping answered"
APP_STARTED = "app started"
SHUTDOWN_BEGAN = "shutdown began"
SHUTDOWN_COMPLETE = "shutdown complete"
SHUTDOWN_FAILED = "shutdown failed"

#: Turns of the event loop a stats update takes, as network I/O does: the request's own call
#: waits for them, a task nobody waits for does not.
STATS_TURNS = 10
#: Turns of the event loop a cancelled publish takes to clean up: more than a shutdown that
#: does not wait for it lets pass.
CLEANUP_TURNS = 25
#: Real seconds the fake reporting library blocks an event loop's thread when it is called
#: there: the watchdog's bound. No verdict depends on this length.
ON_LOOP_HOLD = 0.05
#: anyio's default thread limiter, Starlette's thread pool: 40 tokens (anyio 4).
DEFAULT_THREADS = 40
#: The app's drain bound when create_app is not given one, as the README states it.
DEFAULT_DRAIN = 5.0

# ---------------------------------------------------------------- what each failure sends you back to

QUEUE = (
    "task 1: queue the coroutine function itself, with its arguments, on the request's background tasks: "
    "Starlette awaits it on the event loop after the response (README: The wrapper that runs nothing)"
)
ONE_LOOP = (
    "task 1: the stats client belongs to the app's event loop; a worker thread has none, and a loop made "
    "there is another loop (README: The wrapper that runs nothing)"
)
ACCEPT = "task 1: a valid action is answered 202 at once, with its fields (README: Queue the async update)"
VALIDATE = (
    "task 1: describe the body as a model, a user id of one or more and an action of 1 to 40 characters, "
    "both required, so that FastAPI answers 422 before anything is set going (README: Queue the async update)"
)
OFF_THE_LOOP = (
    "task 2: a blocking call belongs in a plain function, which Starlette runs in a worker thread; in a "
    "coroutine function it runs on the event loop and holds it (README: A blocked event loop)"
)
AFTER = (
    "task 2: queue the rebuild on the request's background tasks: it runs after the response, and the "
    "request's call ends once it is done (README: Where a background task runs)"
)
SIZE = (
    "task 3: the thread pool belongs to the running event loop; the lifespan sets its size, before the app "
    "serves anything (README: The thread pool and its forty threads)"
)
BUILD = (
    "task 3: uvicorn calls the app's factory before any event loop runs; what needs the running loop belongs in "
    "the lifespan (README: The thread pool and its forty threads)"
)
START = (
    "task 3: the lifespan runs on the app's loop before the app serves anything; what it raises, the app "
    "never starts (README: The thread pool and its forty threads)"
)
WAIT_FOR_A_THREAD = (
    "task 3: past the size of the pool, a blocking task waits for a thread, and starts when one is free "
    "(README: The thread pool and its forty threads)"
)
SPAWN = (
    "task 4: a spawned task starts on the running loop at once, with the name it is given, and nobody "
    "awaits it (README: Tasks nobody keeps)"
)
KEEP = (
    "task 4: the event loop keeps only weak references to its tasks; keep each task you start in a "
    "collection of your own while it runs (README: Tasks nobody keeps)"
)
LET_GO = (
    "task 4: a task that ended, however it ended, leaves the collection, or the keeper grows for ever "
    "(README: Tasks nobody keeps)"
)
LOG_IT = (
    "task 4: a failed task that nobody awaits is logged by its keeper or by nobody: once, at ERROR, with its "
    "traceback and its name; a cancelled one did not fail (README: Tasks nobody keeps)"
)
BESIDE = (
    "task 4: the publish runs beside the request, as a task the app keeps, not as one of the request's "
    "background tasks (README: Tasks nobody keeps)"
)
DRAIN = (
    "task 5: at shutdown, wait for the tasks still running, as long as they need but no longer than the "
    "bound (README: Draining at shutdown)"
)
CANCEL = (
    "task 5: at the bound, cancel what is left and wait until it has finished cancelling (README: Draining at shutdown)"
)
LIFESPAN = (
    "task 5: the lifespan drains the app's keeper once the app stops serving, with the app's own bound "
    "(README: Draining at shutdown)"
)


# ---------------------------------------------------------------- the fakes


@dataclass(frozen=True)
class StatsCall:
    """One call to the stats client: its arguments, and where it ran."""

    user_id: object
    action: object
    loop: asyncio.AbstractEventLoop
    task: asyncio.Task[Any] | None
    thread: str


class FakeStats:
    """The stats service's asynchronous client: ``await record(user_id, action)``, and nothing else."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.calls: list[StatsCall] = []
        self.updated: list[tuple[object, object]] = []

    async def record(self, user_id: int, action: str) -> None:
        """Count one action; takes a few turns of the loop, as network I/O does."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        self.calls.append(StatsCall(user_id, action, loop, task, threading.current_thread().name))
        self.timeline.record(STATS_STARTED, f"user {user_id!r}, {action!r}")
        for _ in range(STATS_TURNS):
            await asyncio.sleep(0)
        self.updated.append((user_id, action))
        self.timeline.record(STATS_UPDATED, f"user {user_id!r}, {action!r}")

    def __repr__(self) -> str:
        return f"FakeStats(updated={self.updated})"


class FakeReports:
    """The reporting library: a blocking ``rebuild(user_id)``, held by the spec like a slow render.

    ``hold()`` makes every rebuild from then on block until the spec lets it go
    (``release(user_id)``, or ``release()`` for all); each call has its own gate. On the
    thread of an event loop a rebuild still blocks, as the real library would, but a
    watchdog lets it go after :data:`ON_LOOP_HOLD`: nobody else can.
    """

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self._lock = threading.Lock()
        self._held = False
        self._gates: list[tuple[object, threading.Event]] = []
        self.started: list[object] = []
        self.finished: list[object] = []
        self.running = 0
        self.peak = 0

    def hold(self) -> None:
        """From now on, a rebuild blocks until released."""
        self._held = True

    def release(self, user_id: object = None) -> None:
        """Let the rebuilds of ``user_id`` go (every one, and every later one, when ``None``)."""
        with self._lock:
            if user_id is None:
                self._held = False
            for who, gate in self._gates:
                if user_id is None or who == user_id:
                    gate.set()

    def rebuild(self, user_id: int) -> None:
        """Render the user's report again: blocks while held."""
        gate = threading.Event()
        with self._lock:
            if not self._held:
                gate.set()
            self._gates.append((user_id, gate))
            self.started.append(user_id)
            self.running += 1
            self.peak = max(self.peak, self.running)
        try:
            self.timeline.record(REBUILD_STARTED, f"user {user_id!r} in {threading.current_thread().name}")
            if on_event_loop_thread():
                self.timeline.record(REBUILD_ON_LOOP, f"user {user_id!r}: a blocking call on an event loop's thread")
                gate.wait(ON_LOOP_HOLD)  # the watchdog: the loop that would let it go is the one it blocks
            elif not gate.wait(BOUND):
                self.timeline.record("rebuild gave up", f"user {user_id!r}: the spec never let it go")
        finally:
            with self._lock:
                self.running -= 1
                self.finished.append(user_id)
        self.timeline.record(REBUILD_DONE, f"user {user_id!r}")

    def __repr__(self) -> str:
        return f"FakeReports(started={self.started}, finished={self.finished})"


class FakeFeed:
    """The live feed's asynchronous client: ``await publish(user_id, action)``, and nothing else.

    A publish takes ``duration`` seconds of the app loop's virtual clock (``takes`` sets one
    user's). With ``waits``, it first waits for :meth:`wake` on a future that only the
    publish holds: a task nobody else refers to is then garbage, and the collector destroys
    it mid-await. ``fail_with`` makes each publish raise. Cancelled, a publish takes
    :data:`CLEANUP_TURNS` turns of the loop to clean up, then lets the cancellation go on.
    """

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.duration = 0.0
        self.durations: dict[object, float] = {}
        self.waits = False
        self.failure: Exception | None = None
        self.started: list[tuple[object, object]] = []
        self.done: list[tuple[object, object]] = []
        self.cancelled: list[tuple[object, object]] = []
        self.cleaned_up: list[tuple[object, object]] = []
        self.destroyed: list[tuple[object, object]] = []
        self._waiting: list[weakref.ref[asyncio.Future[None]]] = []

    def takes(self, user_id: object, seconds: float) -> None:
        self.durations[user_id] = seconds

    def fail_with(self, error: Exception) -> None:
        self.failure = error

    async def publish(self, user_id: int, action: str) -> None:
        """Tell the followers; see the class for how long it takes."""
        call = (user_id, action)
        self.started.append(call)
        self.timeline.record(PUBLISH_STARTED, f"user {user_id!r}, {action!r}")
        try:
            if self.waits:
                future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._waiting.append(weakref.ref(future))  # weakly: only the publish holds it
                await future
                del future
            await asyncio.sleep(self.durations.get(user_id, self.duration))
        except asyncio.CancelledError:
            self.cancelled.append(call)
            self.timeline.record(PUBLISH_CANCELLED, f"user {user_id!r}")
            for _ in range(CLEANUP_TURNS):
                await asyncio.sleep(0)
            self.cleaned_up.append(call)
            self.timeline.record(PUBLISH_CLEANED_UP, f"user {user_id!r}")
            raise
        except GeneratorExit:  # the coroutine is closed: its task was garbage-collected mid-await
            self.destroyed.append(call)
            self.timeline.record(PUBLISH_DESTROYED, f"user {user_id!r}: nobody kept its task")
            raise
        if self.failure is not None:
            self.timeline.record(PUBLISH_FAILED, f"user {user_id!r}: {self.failure!r}")
            raise self.failure
        self.done.append(call)
        self.timeline.record(PUBLISH_DONE, f"user {user_id!r}")

    def wake(self) -> int:
        """Let every waiting publish go on (on the app's loop); how many were still waiting."""
        woken = 0
        for ref in self._waiting:
            future = ref()
            if future is not None and not future.done():
                future.set_result(None)
                woken += 1
        return woken

    def __repr__(self) -> str:
        return (
            f"FakeFeed(started={self.started}, done={self.done}, cancelled={self.cancelled}, "
            f"cleaned up={self.cleaned_up}, destroyed={self.destroyed})"
        )


# ---------------------------------------------------------------- the server


class _Stop(BaseException):
    """Raised inside the thread of an app loop that the code under test blocks, to end what blocks it."""


#: Servers whose loop was left blocked: kept, so that nothing of theirs is garbage-collected (and
#: reported) in a later spec.
_ABANDONED: list[Server] = []


def in_a_thread(function: Callable[..., T], **arguments: Any) -> asyncio.Future[T]:
    """``function(**arguments)`` in a daemon thread of its own (where no event loop runs), as a future."""
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def call() -> None:
        try:
            future.set_result(function(**arguments))
        except BaseException as error:  # noqa: BLE001 - whatever it raised is the spec's to judge
            future.set_exception(error)

    threading.Thread(target=call, name="create_app", daemon=True).start()
    return asyncio.wrap_future(future)


class Server:
    """The kata's app on an event loop of its own, in a thread of its own, as uvicorn runs it.

    Everything the learner's code does runs on that loop (:meth:`run` for a piece of code,
    :meth:`start` for a request, :meth:`serve` and :meth:`shut_down` for the lifespan). The
    spec waits for it from pytest's loop, at most BOUND seconds each time.
    """

    def __init__(self, timeline: Timeline, on_close: list[Callable[[], object]]) -> None:
        self.timeline = timeline
        self.loop = VirtualClockLoop()
        self.app: Any = None
        self.stuck = False
        self.shutdown_began: float | None = None
        self.shutdown_ended: float | None = None
        self._on_close = on_close
        self._inbox: asyncio.Queue[dict[str, Any]] | None = None
        self._lifespan: concurrent.futures.Future[None] | None = None
        #: The task of each request's call, in the order they began: whatever it awaits, it waits for.
        self.calls: list[asyncio.Task[Exchange]] = []
        self._thread = threading.Thread(target=self._run, name="the app's event loop", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        with contextlib.suppress(_Stop):  # delivered outside any task: the loop ends with it
            self.loop.run_forever()

    # ------------------------------------------------------------ code on the app's loop

    async def run(self, work: Callable[..., Awaitable[T]], *args: Any, revisit: str, expected: str) -> T:
        """``await work(*args)`` on the app's loop: at most BOUND seconds, else a lesson."""
        __tracebackhide__ = True

        async def there() -> T:
            return await work(*args)  # called there too: what blocks, blocks the app's loop and not the spec's

        return await self._bounded(asyncio.run_coroutine_threadsafe(there(), self.loop), revisit, expected)

    def call_soon(self, function: Callable[[], object]) -> None:
        """Run ``function`` on the app's loop, soon (fire and forget: for the specs' own fakes)."""
        self.loop.call_soon_threadsafe(function)

    async def _bounded(
        self, future: concurrent.futures.Future[T] | asyncio.Future[T], revisit: str, expected: str
    ) -> T:
        __tracebackhide__ = True
        waited = asyncio.wrap_future(future) if isinstance(future, concurrent.futures.Future) else future
        try:
            return await within_bound(waited, revisit=revisit, expected=expected)
        except StillRunningError:
            if self.responsive():
                raise
            self.stuck = True
            raise StillRunningError(
                lesson(
                    expected=f"{expected} within {BOUND:g} s",
                    got="the app's event loop is blocked: for that long it ran nothing at all. Some code on "
                    "it blocks: a blocking call, a sleep that is not awaited, a loop with no await in it",
                    revisit=revisit,
                )
            ) from None

    def responsive(self) -> bool:
        """Whether the app's loop runs a callback within a moment (False: something blocks it)."""
        ran = threading.Event()
        self.loop.call_soon_threadsafe(ran.set)
        return ran.wait(0.2)

    # ------------------------------------------------------------ building, serving, stopping

    async def build(self, *, revisit: str, **arguments: Any) -> Any:
        """``create_app(**arguments)``, called as uvicorn calls a factory: in a thread with no event loop."""
        __tracebackhide__ = True
        built = in_a_thread(activity.create_app, **arguments)
        try:
            return await within_bound(built, revisit=revisit, expected="create_app returned")
        except (StillRunningError, NotImplementedError):
            raise
        except Exception as error:  # what create_app raises is the lesson
            raise AssertionError(
                lesson(expected="create_app builds the app", got=f"it raised {describe_error(error)}", revisit=BUILD)
            ) from error

    async def serve(self, app: Any, *, revisit: str) -> None:
        """Run the app's start-up on its loop; fail with a lesson if it fails."""
        __tracebackhide__ = True
        self.app = app
        started: concurrent.futures.Future[str | None] = concurrent.futures.Future()
        self._lifespan = asyncio.run_coroutine_threadsafe(self._lifespan_call(app, started), self.loop)
        problem = await self._bounded(started, revisit, "the app's start-up finished")
        if problem is not None:
            raise AssertionError(lesson(expected="the app starts", got=problem, revisit=revisit))

    async def _lifespan_call(self, app: Any, started: concurrent.futures.Future[str | None]) -> None:
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._inbox = inbox
        inbox.put_nowait({"type": "lifespan.startup"})

        async def receive() -> dict[str, Any]:
            message = await inbox.get()
            if message["type"] == "lifespan.shutdown":
                self.shutdown_began = self.loop.time()
                self.timeline.record(SHUTDOWN_BEGAN)
            return message

        async def send(message: dict[str, Any]) -> None:
            kind = message["type"]
            if kind == "lifespan.startup.complete":
                self.timeline.record(APP_STARTED)
                started.set_result(None)
            elif kind == "lifespan.startup.failed":
                started.set_result(f"its start-up failed: {message.get('message', '')}"[:600])
            elif kind == "lifespan.shutdown.complete":
                self.shutdown_ended = self.loop.time()
                self.timeline.record(SHUTDOWN_COMPLETE)
            elif kind == "lifespan.shutdown.failed":
                self.timeline.record(SHUTDOWN_FAILED, message.get("message", "")[:600])

        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        try:
            await app(scope, receive, send)
        except Exception as error:  # noqa: BLE001 - what the learner's lifespan raises is a finding
            self.timeline.record("lifespan raised", describe_error(error))
        finally:
            if not started.done():
                started.set_result("its lifespan ended before it had started")

    async def shut_down(self, *, revisit: str, first: Callable[[], object] | None = None) -> float:
        """Ask the app to shut down and wait until it has; the virtual seconds its shutdown took.

        ``first`` runs on the app's loop in the same callback, just before the request to shut down.
        """
        __tracebackhide__ = True
        lifespan, inbox = self._lifespan, self._inbox
        if lifespan is None or inbox is None:
            raise RuntimeError("shut_down() before serve()")

        def now() -> None:
            if first is not None:
                first()
            inbox.put_nowait({"type": "lifespan.shutdown"})

        self.call_soon(now)
        await self._bounded(lifespan, revisit, "the app's shutdown finished")
        failed = self.timeline.first(SHUTDOWN_FAILED)
        if failed is not None or self.shutdown_began is None or self.shutdown_ended is None:
            raise AssertionError(
                lesson(expected="the app shuts down", got=str(failed or "it never said it had"), revisit=revisit)
            )
        return self.shutdown_ended - self.shutdown_began

    # ------------------------------------------------------------ requests

    def start(self, method: str, path: str, **kwargs: Any) -> asyncio.Future[Exchange]:
        """Begin one request on the app's loop; :meth:`finish` waits for its Exchange."""

        async def call() -> Exchange:
            running = self.timeline.start(self.app, method, path, **kwargs)
            self.calls.append(running)
            exchange = await running
            if path == "/ping":
                self.timeline.record(PING_ANSWERED, f"HTTP {exchange.status}")
            return exchange

        return asyncio.wrap_future(asyncio.run_coroutine_threadsafe(call(), self.loop))

    async def finish(self, call: asyncio.Future[Exchange], *, revisit: str) -> Exchange:
        """Wait for a request begun with :meth:`start`, background tasks included: at most BOUND seconds."""
        __tracebackhide__ = True
        return await self._bounded(call, revisit, "the request's call ended")

    async def request(self, method: str, path: str, *, revisit: str, **kwargs: Any) -> Exchange:
        """One whole request, background tasks included."""
        __tracebackhide__ = True
        return await self.finish(self.start(method, path, **kwargs), revisit=revisit)

    # ------------------------------------------------------------ the end

    def close(self) -> None:
        """Let every fake go, stop what the spec left running, and stop the loop.

        A loop that the code under test blocks is first interrupted: an exception raised in its
        thread, at the blocking code's next line, ends the task that runs it (a loop that polls
        or spins would otherwise go on for the rest of the run, on a core the later specs need).
        A loop still blocked after that (in a long C call, say) is left to the end of the run,
        and kept, so that nothing of it is collected, and reported, in a later spec.
        """
        for release in self._on_close:
            release()
        if self.stuck:
            self._interrupt()
            self.stuck = not self.responsive()
        if not self.stuck:
            stopped = asyncio.run_coroutine_threadsafe(self._stop_everything(), self.loop)
            try:
                stopped.result(timeout=BOUND)
            except concurrent.futures.TimeoutError:
                self.stuck = True
        if self.stuck:
            _ABANDONED.append(self)
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(BOUND)
        if not self._thread.is_alive():
            self.loop.close()

    def _interrupt(self) -> None:
        """Raise :class:`_Stop` in the loop's thread: the task running the blocking code ends with it."""
        ident = self._thread.ident
        if ident is not None:
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(_Stop))

    async def _stop_everything(self) -> None:
        self.timeline.close()
        await stop_leftovers(set())


# ---------------------------------------------------------------- fixtures


@pytest.fixture(name="timeline")
def _timeline() -> Timeline:
    """One line of events for the app, the fakes and the spec (the server closes it, on the app's loop)."""
    return Timeline()


@pytest.fixture(name="stats")
def _stats(timeline: Timeline) -> FakeStats:
    return FakeStats(timeline)


@pytest.fixture(name="reports")
def _reports(timeline: Timeline) -> FakeReports:
    return FakeReports(timeline)


@pytest.fixture(name="feed")
def _feed(timeline: Timeline) -> FakeFeed:
    return FakeFeed(timeline)


@pytest.fixture(name="server")
def _server(timeline: Timeline, reports: FakeReports, feed: FakeFeed) -> Iterator[Server]:
    """An event loop of the app's own, in a thread of its own: stopped after the spec, whatever happened."""
    server = Server(timeline, on_close=[reports.release, lambda: server.call_soon(feed.wake)])
    yield server
    with contextlib.suppress(RuntimeError):  # a loop already closed
        server.close()


@pytest.fixture(name="log")
def _log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record, whatever its level or thread: a spec can count them exactly."""
    caplog.set_level(logging.DEBUG)
    return caplog


async def serving(server: Server, stats: FakeStats, reports: FakeReports, feed: FakeFeed, **options: Any) -> None:
    """Build the app with the fakes (and ``options``) and start it on the server's loop."""
    __tracebackhide__ = True
    app = await server.build(stats=stats, reports=reports, feed=feed, revisit=ACCEPT, **options)
    await server.serve(app, revisit=START)


def expect_accepted(exchange: Exchange, body: dict[str, Any], *, revisit: str) -> None:
    """202 with exactly this JSON body: the status, and the action as it was understood."""
    __tracebackhide__ = True
    expect_status(exchange, 202, expected=f"202 Accepted for {body}"[:200], revisit=revisit)
    try:
        answer = exchange.json()
    except ValueError:
        answer = exchange.text
    expect_type(answer, dict, what="the JSON body", revisit=ACCEPT)
    wanted = {"status": "accepted", **body}
    same_types = [type(value) for value in answer.values()] == [type(value) for value in wanted.values()]
    if answer != wanted or not same_types:
        raise AssertionError(lesson(expected=f"{wanted}, and nothing more", got=exchange.text[:300], revisit=ACCEPT))


def no_error(exchange: Exchange, *, revisit: str) -> None:
    __tracebackhide__ = True
    assert exchange.error is None, lesson(
        expected="nothing raised by the request's background tasks",
        got=f"the app raised {describe_error(exchange.error)}",
        revisit=revisit,
    )


# ---------------------------------------------------------------- task 1: the async update


@pytest.mark.task(1)
async def test_an_action_is_accepted_with_202_and_its_fields(server, stats, reports, feed):
    """202 Accepted at once, with the status and the action as it was understood."""
    await serving(server, stats, reports, feed)
    exchange = await server.request("POST", "/actions", json=VALID, revisit=ACCEPT)
    expect_accepted(exchange, VALID, revisit=ACCEPT)


@pytest.mark.task(1)
async def test_the_stats_are_updated_once_after_the_response_on_the_apps_event_loop(
    server, stats, reports, feed, timeline
):
    """One update, with the user and the action, awaited on the app's loop after the response, before the call ends."""
    await serving(server, stats, reports, feed)
    exchange = await server.request("POST", "/actions", json=VALID, revisit=QUEUE)
    expect_status(exchange, 202, revisit=ACCEPT)
    assert stats.calls, lesson(
        expected="the stats updated once, for user 7, 'ran 5 km'",
        got=f"the update never began; the app raised {describe_error(exchange.error)}"
        if exchange.error
        else f"the update never began\n{timeline.render()}",
        revisit=QUEUE,
    )
    assert len(stats.calls) == 1, lesson(
        expected="one stats update", got=f"{len(stats.calls)} begun: {stats!r}", revisit=QUEUE
    )
    call = stats.calls[0]
    expect_type(call.user_id, int, what="the user id the stats client is given", revisit=QUEUE)
    expect_type(call.action, str, what="the action the stats client is given", revisit=QUEUE)
    assert (call.user_id, call.action) == (7, "ran 5 km"), lesson(
        expected="the stats client given user 7 and 'ran 5 km'",
        got=f"user {call.user_id!r} and {call.action!r}",
        revisit=QUEUE,
    )
    assert call.loop is server.loop, lesson(
        expected="the update awaited on the app's own event loop",
        got=f"on another event loop, in {call.thread}",
        revisit=ONE_LOOP,
    )
    assert call.task is server.calls[0], lesson(
        expected="the update awaited by the request itself, as one of its background tasks",
        got=f"it ran in a task of its own, {call.task.get_name() if call.task else None!r}, which the request "
        "never awaited: the request may end before it does, and a shutdown cuts it off",
        revisit=QUEUE,
    )
    no_error(exchange, revisit=QUEUE)
    timeline.expect_order(
        RESPONSE_COMPLETE,
        STATS_STARTED,
        STATS_UPDATED,
        CALL_FINISHED,
        why="The update runs after the response, and the request's call waits for it: it is one of its "
        "background tasks.",
        revisit=QUEUE,
    )


@pytest.mark.task(1)
@pytest.mark.parametrize(
    "body",
    [
        {"action": "ran 5 km"},
        {"user_id": 7},
        {"user_id": 0, "action": "ran 5 km"},
        {"user_id": -1, "action": "ran 5 km"},
        {"user_id": "seven", "action": "ran 5 km"},
        {"user_id": 7.5, "action": "ran 5 km"},
        {"user_id": None, "action": "ran 5 km"},
        {"user_id": 7, "action": ""},
        {"user_id": 7, "action": "x" * 41},
        {"user_id": 7, "action": "é" * 41},
        {"user_id": 7, "action": None},
        {"user_id": 7, "action": 5},
        None,
        [],
        "ran 5 km",
    ],
    ids=[
        "no user id",
        "no action",
        "user id 0",
        "user id -1",
        "user id a word",
        "user id 7.5",
        "null user id",
        "empty action",
        "41-character action",
        "41 accented characters",
        "null action",
        "number action",
        "null body",
        "list body",
        "string body",
    ],
)
async def test_a_bad_request_is_a_422_and_sets_nothing_going(server, stats, reports, feed, body):
    """A missing field, a user id under 1 or not an integer, an action outside 1 to 40 characters, no object."""
    await serving(server, stats, reports, feed)
    exchange = await server.request("POST", "/actions", json=body, revisit=VALIDATE)
    expect_status(exchange, 422, expected=f"422 Unprocessable Content for {body!r}"[:200], revisit=VALIDATE)
    assert not stats.calls and not reports.started and not feed.started, lesson(
        expected="nothing set going for a rejected request",
        got=f"{stats!r}; {reports!r}; {feed!r}",
        revisit=VALIDATE,
    )


@pytest.mark.task(1)
@pytest.mark.parametrize(
    "body",
    [
        {"user_id": 1, "action": "x"},
        {"user_id": 7, "action": "x" * 40},
        {"user_id": 7, "action": "é" * 40},
        {"user_id": 123456789, "action": "Läufer: 5 km"},
    ],
    ids=["user 1, one character", "40 characters", "40 accented characters", "a big id, accented"],
)
async def test_an_action_at_the_limits_is_accepted_as_it_is(server, stats, reports, feed, body):
    """User id 1 is the first; 1 and 40 characters both allowed, accented or not (characters, not bytes)."""
    await serving(server, stats, reports, feed)
    exchange = await server.request("POST", "/actions", json=body, revisit=VALIDATE)
    expect_accepted(exchange, body, revisit=VALIDATE)
    assert stats.updated == [(body["user_id"], body["action"])], lesson(
        expected=f"the stats updated with exactly user {body['user_id']} and that action",
        got=f"{stats!r}",
        revisit=QUEUE,
    )


# ---------------------------------------------------------------- task 2: blocking work off the loop


def expect_off_the_loop(timeline: Timeline) -> None:
    __tracebackhide__ = True
    on_loop = timeline.first(REBUILD_ON_LOOP)
    assert on_loop is None, lesson(
        expected="the blocking rebuild made in a worker thread",
        got=f"{on_loop}: while it blocks, the app's event loop runs nothing else, no request is answered",
        revisit=OFF_THE_LOOP,
    )


@pytest.mark.task(2)
async def test_the_report_is_rebuilt_once_after_the_response_in_a_worker_thread(server, stats, reports, feed, timeline):
    """One rebuild for the user, after the response, off the event loop's thread, before the call ends."""
    await serving(server, stats, reports, feed)
    exchange = await server.request("POST", "/actions", json=VALID, revisit=AFTER)
    expect_status(exchange, 202, revisit=ACCEPT)
    expect_off_the_loop(timeline)
    no_error(exchange, revisit=AFTER)
    assert len(reports.started) == 1, lesson(
        expected="the report rebuilt once, for user 7", got=f"{reports!r}", revisit=AFTER
    )
    expect_type(reports.started[0], int, what="the user id the reporting library is given", revisit=AFTER)
    assert reports.started == [7], lesson(expected="the report of user 7 rebuilt", got=f"{reports!r}", revisit=AFTER)
    timeline.expect_order(
        RESPONSE_COMPLETE,
        REBUILD_STARTED,
        REBUILD_DONE,
        CALL_FINISHED,
        why="The rebuild runs after the response, and the request's call waits for it: it is one of its "
        "background tasks.",
        revisit=AFTER,
    )


@pytest.mark.task(2)
async def test_while_a_rebuild_blocks_the_app_still_answers_other_requests(server, stats, reports, feed, timeline):
    """With the rebuild held, GET /ping and another user's action are answered: the event loop is free."""
    await serving(server, stats, reports, feed)
    reports.hold()
    first = server.start("POST", "/actions", json=VALID)
    began = await timeline.wait_for(REBUILD_STARTED, CALL_FINISHED)
    if began.name == CALL_FINISHED:
        expect_accepted(await server.finish(first, revisit=AFTER), VALID, revisit=ACCEPT)
        raise AssertionError(lesson(expected="the report rebuilt", got=timeline.render(), revisit=AFTER))
    ping = await server.request("GET", "/ping", revisit=OFF_THE_LOOP)
    other = server.start("POST", "/actions", json={"user_id": 8, "action": "swam 1 km"})
    await wait_until(
        lambda: (8, "swam 1 km") in stats.updated,
        expected="user 8's action accepted and its stats updated while user 7's rebuild is held",
        got=lambda: f"{stats!r}\n{timeline.render()}",
        revisit=OFF_THE_LOOP,
    )
    held_meanwhile = 7 not in reports.finished
    calls_ended = timeline.count(CALL_FINISHED)  # the ping's, and user 7's if its rebuild is not one of its tasks
    reports.release()
    expect_status(ping, 200, expected="200 from GET /ping while the rebuild is held", revisit=OFF_THE_LOOP)
    assert ping.json() == {"status": "ok"}, lesson(expected='{"status": "ok"}', got=ping.text, revisit=OFF_THE_LOOP)
    expect_off_the_loop(timeline)
    assert held_meanwhile, lesson(
        expected="GET /ping and user 8's action answered while user 7's rebuild was still held",
        got=f"they were answered only once the rebuild had let go of the loop\n{timeline.render()}",
        revisit=OFF_THE_LOOP,
    )
    assert calls_ended == 1, lesson(
        expected="user 7's request still in its call while its rebuild is held: the rebuild is one of its "
        "background tasks",
        got=f"its call had ended: the rebuild runs outside the request\n{timeline.render()}",
        revisit=AFTER,
    )
    for call in (first, other):
        done = await server.finish(call, revisit=AFTER)
        no_error(done, revisit=AFTER)


# ---------------------------------------------------------------- task 3: the thread pool


async def thread_pool(server: Server, revisit: str) -> tuple[object, object, int]:
    """The app's thread pool right now: its size, the threads in use, the callers waiting for one."""

    async def read() -> tuple[object, object, int]:
        limiter = anyio.to_thread.current_default_thread_limiter()
        return limiter.total_tokens, limiter.borrowed_tokens, limiter.statistics().tasks_waiting

    return await server.run(read, revisit=revisit, expected="the app's loop answered")


@pytest.mark.task(3)
@pytest.mark.parametrize("threads", [1, 3, 64])
async def test_the_lifespan_gives_the_apps_thread_pool_the_size_it_is_given(server, stats, reports, feed, threads):
    """Once the app has started, its event loop's thread pool has exactly ``threads`` threads, fewer or more than 40."""
    await serving(server, stats, reports, feed, threads=threads)
    size, _, _ = await thread_pool(server, SIZE)
    expect_type(size, int, what="the size of the app's thread pool", revisit=SIZE)
    assert size == threads, lesson(
        expected=f"the thread pool of the app's event loop sized {threads} once the app has started",
        got=f"{size}",
        revisit=SIZE,
    )


@pytest.mark.task(3)
@pytest.mark.parametrize("threads", [3, None], ids=["3 threads", "the default"])
async def test_past_the_pools_size_a_rebuild_waits_for_a_thread_and_starts_when_one_is_free(  # noqa: PLR0913, PLR0917
    server, stats, reports, feed, timeline, threads
):
    """N rebuilds held fill a pool of N threads; the next waits for a thread, and starts once one is let go."""
    size = threads or DEFAULT_THREADS
    await serving(server, stats, reports, feed, **({} if threads is None else {"threads": threads}))
    reports.hold()
    calls = [server.start("POST", "/actions", json={"user_id": n, "action": "ran 5 km"}) for n in range(1, size + 2)]
    waiting = 0

    async def settled() -> bool:
        nonlocal waiting
        _, _, waiting = await thread_pool(server, WAIT_FOR_A_THREAD)
        full = len(reports.started) >= size and waiting >= 1
        return full or len(reports.started) > size or all(call.done() for call in calls)

    await wait_until(
        settled,
        expected=f"{size} rebuilds running at once, one more waiting for a thread",
        got=lambda: f"{len(reports.started)} running, {waiting} waiting for a thread",
        revisit=WAIT_FOR_A_THREAD,
    )
    running = len(reports.started)
    if all(call.done() for call in calls):
        first = calls[0].result()
        expect_accepted(first, {"user_id": 1, "action": "ran 5 km"}, revisit=ACCEPT)
    expect_off_the_loop(timeline)
    assert running == size and waiting == 1, lesson(
        expected=f"{size} rebuilds running at once in the app's thread pool, and rebuild {size + 1} waiting "
        "for one of its threads",
        got=f"{running} running, {waiting} waiting for a thread of the app's pool",
        revisit=WAIT_FOR_A_THREAD,
    )
    reports.release(reports.started[0])  # one of those running, whichever came first
    await wait_until(
        lambda: len(reports.started) == size + 1,
        expected=f"rebuild {size + 1} started once a thread was free",
        got=lambda: f"{len(reports.started)} started",
        revisit=WAIT_FOR_A_THREAD,
    )
    reports.release()
    for call in calls:
        no_error(await server.finish(call, revisit=WAIT_FOR_A_THREAD), revisit=AFTER)
    starts = [event for event in timeline.events if event.name == REBUILD_STARTED]
    first_done = timeline.first(REBUILD_DONE)
    assert first_done is not None and starts[size].seq > first_done.seq and reports.peak == size, lesson(
        expected=f"rebuild {size + 1} started only after a rebuild had finished; never more than {size} at once",
        got=f"at most {reports.peak} at once; the last began at #{starts[-1].seq}, the first ended at "
        f"#{first_done.seq if first_done else '?'}",
        revisit=WAIT_FOR_A_THREAD,
    )
    assert sorted(reports.finished) == list(range(1, size + 2)), lesson(
        expected=f"all {size + 1} rebuilds done: none dropped", got=f"{sorted(reports.finished)}", revisit=AFTER
    )


# ---------------------------------------------------------------- task 4: tasks somebody keeps


async def a_keeper() -> Any:
    return activity.Keeper()


async def collect_garbage() -> None:
    gc.collect()


async def chore(kind: str, error: Exception | None = None) -> str:
    """A coroutine to spawn: ``works`` returns, ``fails`` raises ``error``, ``waits`` waits for ever."""
    await asyncio.sleep(0)
    if kind == "fails" and error is not None:
        raise error
    if kind == "waits":
        await asyncio.Event().wait()
    return kind


def spawned(keeper: Any, work: Coroutine[Any, Any, Any], name: str) -> weakref.ref[Any]:
    """``keeper.spawn(work, name=name)`` on the app's loop: a weak reference to the task, checked first."""
    __tracebackhide__ = True
    try:
        task = keeper.spawn(work, name=name)
    except BaseException:
        if inspect.getcoroutinestate(work) == inspect.CORO_CREATED:
            work.close()  # never started: closed here, so Python does not warn about it later
        raise
    if inspect.iscoroutine(task):
        task.close()
    expect_type(task, asyncio.Task, what="what spawn returns", revisit=SPAWN)
    return weakref.ref(task)


@pytest.mark.task(4)
async def test_a_spawned_task_runs_on_its_own_under_its_name(server, feed, timeline):
    """Spawning starts the work as a task of the running loop, named as asked; nobody awaits it, and it runs."""

    async def spawn() -> tuple[str, bool, bool]:
        keeper = await a_keeper()
        task = spawned(keeper, feed.publish(1, "ran 5 km"), "publish for user 1")()
        return task.get_name(), task.get_loop() is asyncio.get_running_loop(), task.done()

    name, here, done = await server.run(spawn, revisit=SPAWN, expected="spawn returned")
    assert (name, here, done) == ("publish for user 1", True, False), lesson(
        expected="a task of the running loop, named 'publish for user 1', not yet run when spawn returns",
        got=f"named {name!r}, {'on' if here else 'not on'} the running loop, {'already done' if done else 'pending'}",
        revisit=SPAWN,
    )
    await timeline.wait_for(PUBLISH_DONE)
    assert feed.done == [(1, "ran 5 km")], lesson(
        expected="the publish ran once, though nobody awaited it", got=f"{feed!r}", revisit=SPAWN
    )


@pytest.mark.task(4)
async def test_a_spawned_task_is_kept_while_it_runs_though_nothing_else_refers_to_it(server, feed, timeline):
    """A task waiting on something only it holds is garbage to the collector, unless its keeper keeps it."""
    feed.waits = True
    keeper = await server.run(a_keeper, revisit=SPAWN, expected="Keeper() returned")

    async def spawn() -> weakref.ref[Any]:
        return spawned(keeper, feed.publish(1, "ran 5 km"), "publish for user 1")

    task = await server.run(spawn, revisit=SPAWN, expected="spawn returned")
    await timeline.wait_for(PUBLISH_STARTED)
    await server.run(collect_garbage, revisit=KEEP, expected="the garbage collected")
    assert task() is not None and not feed.destroyed, lesson(
        expected="the spawned task still there after the garbage collector ran: its keeper refers to it",
        got=f"the task was collected while it waited, and its work destroyed mid-await: {feed!r}",
        revisit=KEEP,
    )
    woken = await server.run(_wake, feed, revisit=KEEP, expected="the publish woken")
    await timeline.wait_for(PUBLISH_DONE)
    assert woken == 1 and feed.done == [(1, "ran 5 km")], lesson(
        expected="the publish, woken, runs to its end", got=f"{feed!r}", revisit=KEEP
    )


async def _wake(feed: FakeFeed) -> int:
    return feed.wake()


def serious(log: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The records a person is meant to read: WARNING and above."""
    return [record for record in log.records if record.levelno >= logging.WARNING]


def shown(records: list[logging.LogRecord]) -> list[str] | str:
    return [f"{record.levelname} from {record.name!r}: {record.getMessage()}" for record in records] or "nothing"


@pytest.mark.task(4)
async def test_a_spawned_task_that_fails_is_logged_once_at_error_with_its_traceback_and_its_name(server, log):
    """Nobody awaits it, so its keeper reports it: one ERROR record, the module's logger, the task's name."""
    keeper = await server.run(a_keeper, revisit=SPAWN, expected="Keeper() returned")
    error = LookupError("no such follower")

    async def spawn() -> None:
        spawned(keeper, chore("fails", error), "publish for user 9")
        for _ in range(10):
            await asyncio.sleep(0)

    await server.run(spawn, revisit=SPAWN, expected="the chore spawned")
    await server.run(collect_garbage, revisit=LOG_IT, expected="the garbage collected")
    records = serious(log)
    assert len(records) == 1, lesson(
        expected="exactly one record at WARNING or above for the failed task",
        got=f"{shown(records)}",
        revisit=LOG_IT,
    )
    record = records[0]
    assert record.levelno == logging.ERROR and record.name == activity.logger.name, lesson(
        expected=f"an ERROR record from the module's logger, {activity.logger.name!r}",
        got=f"{record.levelname} from {record.name!r}: {record.getMessage()}",
        revisit=LOG_IT,
    )
    assert record.exc_info is not None and record.exc_info[1] is error and record.exc_info[2] is not None, lesson(
        expected="the record carries the task's exception and its traceback",
        got=f"exc_info {record.exc_info!r}",
        revisit=LOG_IT,
    )
    assert "publish for user 9" in record.getMessage(), lesson(
        expected="a message that names the task, 'publish for user 9'", got=repr(record.getMessage()), revisit=LOG_IT
    )


@pytest.mark.task(4)
async def test_a_task_that_works_or_is_cancelled_is_not_logged(server, log):
    """Success is not news, and a cancellation is an order to stop, not a failure."""
    keeper = await server.run(a_keeper, revisit=SPAWN, expected="Keeper() returned")

    async def spawn_two() -> None:
        spawned(keeper, chore("works"), "chore that works")
        waits = spawned(keeper, chore("waits"), "chore that waits")
        for _ in range(5):
            await asyncio.sleep(0)
        waits().cancel()
        for _ in range(10):
            await asyncio.sleep(0)

    await server.run(spawn_two, revisit=SPAWN, expected="the chores spawned")
    await server.run(collect_garbage, revisit=LOG_IT, expected="the garbage collected")
    assert serious(log) == [], lesson(expected="no warning, no error", got=f"{shown(serious(log))}", revisit=LOG_IT)


@pytest.mark.task(4)
async def test_a_task_that_ended_is_let_go_whether_it_worked_failed_or_was_cancelled(server, timeline):
    """Once a task has ended, its keeper refers to it no more: the collector can take it."""
    keeper = await server.run(a_keeper, revisit=SPAWN, expected="Keeper() returned")

    async def spawn_three() -> dict[str, weakref.ref[Any]]:
        tasks = {
            kind: spawned(keeper, chore(kind, LookupError("no such follower")), f"chore that {kind}")
            for kind in ("works", "fails", "waits")
        }
        for _ in range(5):
            await asyncio.sleep(0)
        tasks["waits"]().cancel()  # cancelled by someone else, as a shutdown or a timeout does
        for _ in range(5):
            await asyncio.sleep(0)
        return tasks

    tasks = await server.run(spawn_three, revisit=SPAWN, expected="the three chores spawned")
    await server.run(collect_garbage, revisit=LET_GO, expected="the garbage collected")
    kept = [kind for kind, task in tasks.items() if task() is not None]
    assert not kept, lesson(
        expected="no task kept once it has ended: the one that worked, the one that failed, the cancelled one",
        got=f"still kept: {kept}",
        revisit=LET_GO,
    )


@pytest.mark.task(4)
async def test_the_app_publishes_each_action_beside_the_request_and_keeps_the_task(
    server, stats, reports, feed, timeline
):
    """The request's call ends while the publish still waits; the collector leaves it be; woken, it ends."""
    feed.waits = True
    await serving(server, stats, reports, feed)
    call = server.start("POST", "/actions", json=VALID)
    await timeline.wait_for(PUBLISH_STARTED, CALL_FINISHED)
    try:
        exchange = await server.finish(call, revisit=BESIDE)
    except StillRunningError:
        raise AssertionError(
            lesson(
                expected="the request's call ends while the publish is still going",
                got=f"the request waited for the publish\n{timeline.render()}",
                revisit=BESIDE,
            )
        ) from None
    expect_accepted(exchange, VALID, revisit=ACCEPT)
    assert feed.started == [(7, "ran 5 km")], lesson(
        expected="one publish, for user 7 and 'ran 5 km', begun", got=f"{feed!r}", revisit=BESIDE
    )
    expect_type(feed.started[0][0], int, what="the user id the feed is given", revisit=BESIDE)
    await server.run(collect_garbage, revisit=KEEP, expected="the garbage collected")
    assert not feed.destroyed, lesson(
        expected="the publish still there after the garbage collector ran: the app keeps its task",
        got=f"collected while it waited, destroyed mid-await: {feed!r}",
        revisit=KEEP,
    )
    await server.run(_wake, feed, revisit=BESIDE, expected="the publish woken")
    await timeline.wait_for(PUBLISH_DONE)
    assert feed.done == [(7, "ran 5 km")], lesson(
        expected="the publish ran to its end", got=f"{feed!r}", revisit=BESIDE
    )


@pytest.mark.task(4)
async def test_a_publish_that_fails_is_logged_by_the_apps_keeper_under_the_users_name(  # noqa: PLR0913, PLR0917
    server, stats, reports, feed, timeline, log
):
    """The feed is down: the client had its 202, and one ERROR record names the task, 'publish for user 7'."""
    error = ConnectionError("the feed service is down")
    feed.fail_with(error)
    await serving(server, stats, reports, feed)
    exchange = await server.request("POST", "/actions", json=VALID, revisit=ACCEPT)
    expect_accepted(exchange, VALID, revisit=ACCEPT)
    await timeline.wait_for(PUBLISH_FAILED)
    await server.run(_turns, 5, revisit=LOG_IT, expected="the loop turned")
    await server.run(collect_garbage, revisit=LOG_IT, expected="the garbage collected")
    records = [record for record in serious(log) if record.exc_info and record.exc_info[1] is error]
    assert len(records) == 1 and len(serious(log)) == 1, lesson(
        expected="one record at WARNING or above, carrying the feed's exception",
        got=f"{shown(serious(log))}",
        revisit=LOG_IT,
    )
    assert "publish for user 7" in records[0].getMessage(), lesson(
        expected="the record names the app's task: 'publish for user 7'",
        got=repr(records[0].getMessage()),
        revisit=LOG_IT,
    )


async def _turns(count: int) -> None:
    for _ in range(count):
        await asyncio.sleep(0)


# ---------------------------------------------------------------- task 5: drain at shutdown


def close_to(value: object, wanted: float) -> bool:
    return isinstance(value, float) and abs(value - wanted) < 1e-6


def drain_with(keeper: Any, timeout: float) -> Callable[[], Awaitable[tuple[object, float]]]:
    """``await keeper.drain(timeout)`` on the app's loop: what it returned, and the virtual seconds it took."""

    async def drain() -> tuple[object, float]:
        loop = asyncio.get_running_loop()
        began = loop.time()
        result = await keeper.drain(timeout)
        return result, loop.time() - began

    return drain


@pytest.mark.task(5)
async def test_a_drain_with_nothing_running_returns_at_once(server):
    """Nothing to wait for: no time passes, and drain returns None."""
    keeper = await server.run(a_keeper, revisit=SPAWN, expected="Keeper() returned")
    result, took = await server.run(drain_with(keeper, 5.0), revisit=DRAIN, expected="drain returned")
    expect_type(result, type(None), what="what drain returns", revisit=DRAIN)
    assert close_to(took, 0.0), lesson(
        expected="no time at all: nothing was running", got=f"{took:g} s on the app's clock", revisit=DRAIN
    )


@pytest.mark.task(5)
async def test_a_drain_waits_for_the_tasks_that_end_within_the_bound(server, feed):
    """Tasks ending after 1 s and 4.9 s, a bound of 5 s: both finish, and the drain ends at 4.9 s."""
    keeper = await server.run(a_keeper, revisit=SPAWN, expected="Keeper() returned")
    feed.takes(1, 1.0)
    feed.takes(2, 4.9)

    async def spawn_and_drain() -> tuple[object, float]:
        for user in (1, 2):
            spawned(keeper, feed.publish(user, "ran 5 km"), f"publish for user {user}")
        return await drain_with(keeper, 5.0)()

    result, took = await server.run(spawn_and_drain, revisit=DRAIN, expected="drain returned")
    expect_type(result, type(None), what="what drain returns", revisit=DRAIN)
    assert sorted(feed.done) == [(1, "ran 5 km"), (2, "ran 5 km")] and not feed.cancelled, lesson(
        expected="both publishes finished, none cancelled", got=f"{feed!r}", revisit=DRAIN
    )
    assert close_to(took, 4.9), lesson(
        expected="the drain over as soon as the last task ended: 4.9 s on the app's clock",
        got=f"{took:g} s",
        revisit=DRAIN,
    )


@pytest.mark.task(5)
async def test_at_the_bound_a_drain_cancels_what_is_left_and_waits_for_its_clean_up(server, feed):
    """Tasks of 2 s, 5.1 s and 60 s, a bound of 5 s: the first ends; at 5 s the others are cancelled and cleaned up."""
    keeper = await server.run(a_keeper, revisit=SPAWN, expected="Keeper() returned")
    for user, seconds in ((1, 2.0), (2, 5.1), (3, 60.0)):
        feed.takes(user, seconds)
    cleaned_by_then: list[tuple[object, object]] = []

    async def spawn_and_drain() -> tuple[object, float]:
        for user in (1, 2, 3):
            spawned(keeper, feed.publish(user, "ran 5 km"), f"publish for user {user}")
        outcome = await drain_with(keeper, 5.0)()
        cleaned_by_then.extend(feed.cleaned_up)
        return outcome

    _, took = await server.run(spawn_and_drain, revisit=DRAIN, expected="drain returned")
    assert close_to(took, 5.0), lesson(
        expected="the drain over at its bound: 5 s on the app's clock", got=f"{took:g} s", revisit=DRAIN
    )
    assert feed.done == [(1, "ran 5 km")] and sorted(feed.cancelled) == [(2, "ran 5 km"), (3, "ran 5 km")], lesson(
        expected="the 2-second publish finished; the 5.1 and 60-second ones cancelled at the bound",
        got=f"{feed!r}",
        revisit=CANCEL,
    )
    assert sorted(cleaned_by_then) == [(2, "ran 5 km"), (3, "ran 5 km")], lesson(
        expected="both cancelled publishes cleaned up before the drain returned",
        got=f"cleaned up by then: {cleaned_by_then}",
        revisit=CANCEL,
    )


@pytest.mark.task(5)
async def test_the_apps_shutdown_waits_for_a_publish_in_flight(server, stats, reports, feed, timeline):
    """A publish that needs 3 more seconds when the app shuts down: the shutdown waits for it, 3 s and no more."""
    feed.waits = True
    feed.duration = 3.0
    await serving(server, stats, reports, feed)
    await server.request("POST", "/actions", json=VALID, revisit=ACCEPT)
    took = await server.shut_down(revisit=LIFESPAN, first=feed.wake)
    assert feed.done == [(7, "ran 5 km")] and not feed.cancelled, lesson(
        expected="the publish finished before the app stopped",
        got=f"{feed!r}\n{timeline.render()}",
        revisit=LIFESPAN,
    )
    assert close_to(took, 3.0), lesson(
        expected="the shutdown over as soon as the publish ended: 3 s on the app's clock",
        got=f"{took:g} s",
        revisit=DRAIN,
    )


@pytest.mark.task(5)
@pytest.mark.parametrize("bound", [None, 1.5], ids=["the default bound", "a bound of 1.5 s"])
async def test_the_apps_shutdown_gives_up_on_a_publish_at_its_bound(  # noqa: PLR0913, PLR0917
    server, stats, reports, feed, timeline, bound
):
    """A publish that needs a minute: cancelled at the app's bound (5 s unless told), and cleaned up before the end."""
    feed.waits = True
    feed.duration = 60.0
    await serving(server, stats, reports, feed, **({} if bound is None else {"drain_timeout": bound}))
    await server.request("POST", "/actions", json=VALID, revisit=ACCEPT)
    took = await server.shut_down(revisit=LIFESPAN, first=feed.wake)
    wanted = bound or DEFAULT_DRAIN
    assert close_to(took, wanted), lesson(
        expected=f"the shutdown over at the app's bound: {wanted:g} s on the app's clock",
        got=f"{took:g} s\n{timeline.render()}",
        revisit=LIFESPAN,
    )
    assert feed.cancelled == [(7, "ran 5 km")] and not feed.done, lesson(
        expected="the publish cancelled at the bound", got=f"{feed!r}", revisit=CANCEL
    )
    timeline.expect_order(
        PUBLISH_CANCELLED,
        PUBLISH_CLEANED_UP,
        SHUTDOWN_COMPLETE,
        why="The cancelled publish must have cleaned up before the app says it has shut down.",
        revisit=CANCEL,
    )
