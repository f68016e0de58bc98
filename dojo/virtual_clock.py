"""An event loop whose clock is the specs' own: no real time reaches a verdict.

A kata whose code may sleep (a worker that polls, a retry loop, a timeout) runs its async
specs on :class:`VirtualClockLoop` by importing, in its ``conftest.py``, the answer to
pytest-asyncio's loop-factory hook and the fixture that stops what a spec left running::

    from dojo.virtual_clock import no_task_outlives_its_spec, pytest_asyncio_loop_factories

(pytest registers a hook and a fixture a conftest imports as if it defined them).
:class:`Lifespan` drives an app's start-up and shutdown on that clock, each step bounded.

The loop's clock stands still while anything at all can run, and jumps straight to the
next timer when nothing can. So:

- :func:`settle` lets the loop run a bounded number of turns with NO time passing. Code
  that waits on an event or a queue reacts within a few turns; code that polls (sleeps
  and looks again) is asleep on a timer that never fires while a spec settles, so it
  fails every time, on any machine, instead of passing when the machine is fast.
- A wait that ends on a timeout (a spec's bound, a lifespan's start-up limit) ends at
  once when the code under test is stuck, since the loop is idle and the clock jumps.
- Code that never lets the loop go idle (``while True: await asyncio.sleep(0)``) cannot
  starve the specs' own limits: after :data:`BUSY_LIMIT` busy turns in a row the clock
  moves to the next timer anyway. Turn counts, not seconds, so the verdict is the same
  on every run.
- The loop counts its turns and its jumps (:func:`idle_wait`), so a spec can tell a
  parked task from one that keeps the loop busy or keeps waking it.

Only blocking code (``time.sleep``, a loop with no ``await``) escapes: it stops this
loop as it would stop any other.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import selectors
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from dojo.teach import lesson

#: Turns of the event loop :func:`settle` allows by default. Correct code needs far fewer.
ROUNDS = 2000
#: Busy turns in a row after which the clock moves to the next timer anyway.
BUSY_LIMIT = 5000


class _JumpingSelector(selectors.DefaultSelector):
    """The loop's selector: it never sleeps for a timer, it tells the clock to jump instead."""

    def __init__(self, loop: VirtualClockLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None:  # no timer at all: only another thread can wake the loop
            return super().select(None)
        events = super().select(0)
        if not events:
            self._loop._turn(timeout)  # noqa: SLF001 - the two halves of one clock
        return events


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock moves only when nothing can run (for specs, never for an app).

    ``turns`` counts the loop's turns, ``busy_turns`` those in which something was ready
    to run, ``jumps`` the times the clock moved to a timer.
    """

    def __init__(self) -> None:
        self._now = 0.0
        self._timers: list[tuple[float, int, asyncio.TimerHandle]] = []
        self._order = itertools.count()
        self._busy_in_a_row = 0
        self.turns = 0
        self.busy_turns = 0
        self.jumps = 0
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        """The virtual clock: seconds since the loop was made, as far as the loop is concerned."""
        return self._now

    def call_at(self, when: float, callback: Callable[..., object], *args: Any, context: Any = None) -> Any:
        """Schedule as asyncio does, and remember the timer, so a starved clock can find the next one."""
        handle = super().call_at(when, callback, *args, context=context)
        heapq.heappush(self._timers, (when, next(self._order), handle))
        return handle

    def _next_timer(self) -> float | None:
        while self._timers and (self._timers[0][2].cancelled() or self._timers[0][0] <= self._now):
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def _turn(self, timeout: float) -> None:
        self.turns += 1
        if timeout > 0:  # idle until a timer: that moment comes at once
            self._now += timeout
            self.jumps += 1
            self._busy_in_a_row = 0
            return
        self.busy_turns += 1
        self._busy_in_a_row += 1
        if self._busy_in_a_row >= BUSY_LIMIT:
            self._busy_in_a_row = 0
            later = self._next_timer()
            if later is not None:
                self._now = later
                self.jumps += 1


def running_loop() -> VirtualClockLoop:
    """The running loop, which must be the virtual clock (a kata's conftest.py chooses it)."""
    loop = asyncio.get_running_loop()
    if not isinstance(loop, VirtualClockLoop):
        raise TypeError("these specs run on dojo.virtual_clock.VirtualClockLoop: see that module's docstring")
    return loop


async def settle(condition: Callable[[], object], rounds: int = ROUNDS) -> bool:
    """Let the loop run until ``condition()`` holds, with no time passing; False if it never does."""
    for _ in range(rounds):
        if condition():
            return True
        await asyncio.sleep(0)  # one turn of the loop: the virtual clock stands still
    return bool(condition())


async def after_time_passes(condition: Callable[[], object], seconds: float = 1.0) -> bool:
    """Whether ``condition()`` comes to hold once ``seconds`` pass on the virtual clock.

    Ask it after :func:`settle` gave up: code that waits to be woken needs no time at all,
    so code that needs time was asleep on a timer, which is what polling is.
    """
    await asyncio.sleep(seconds)
    return await settle(condition, rounds=50)


async def idle_wait(seconds: float) -> tuple[int, int]:
    """Wait ``seconds`` of virtual time; return the (busy turns, clock jumps) the loop made meanwhile.

    With everything else parked the loop is idle: one jump, to the end of this wait, and a
    turn of work to resume the caller.
    """
    loop = running_loop()
    busy, jumps = loop.busy_turns, loop.jumps
    await asyncio.sleep(seconds)
    return loop.busy_turns - busy, loop.jumps - jumps


async def stop_task(task: asyncio.Future[Any], within: float = 1.0) -> bool:
    """Cancel ``task`` and wait for it, ``within`` virtual seconds; False if it would not stop.

    A task that stopped has its outcome read, so asyncio never reports it in a later spec.
    """
    task.cancel()
    await asyncio.wait({task}, timeout=within)  # at once when the task is stuck: the clock jumps
    if not task.done():
        return False
    if not task.cancelled():
        task.exception()
    return True


async def stop_leftovers(before: set[asyncio.Task[Any]]) -> None:
    """Stop every task started since ``before`` was taken (``asyncio.all_tasks()``), whatever it does.

    A task that catches its cancellation and carries on has its coroutine closed, so the
    loop can still be shut down after the spec.
    """
    for task in asyncio.all_tasks() - before:
        if task is asyncio.current_task() or await stop_task(task):
            continue
        with contextlib.suppress(BaseException):  # whatever it raises on the way out, it is over
            task.get_coro().close()  # type: ignore[union-attr]
        task.cancel()
    await settle(lambda: False, rounds=5)


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], Any]]:  # noqa: ARG001 - the hook's signature
    """Every async spec of a kata whose conftest imports this runs on the virtual clock."""
    return {"virtual-clock": VirtualClockLoop}


@pytest.fixture(name="no_task_outlives_its_spec", autouse=True)
async def no_task_outlives_its_spec() -> AsyncIterator[None]:
    """Tasks a spec's code started and left behind are stopped, so no later spec sees them."""
    before = asyncio.all_tasks()
    yield
    await stop_leftovers(before)


#: Virtual seconds a start-up or a shutdown may take: none at all, unless it is stuck.
LIFESPAN_LIMIT = 5.0


class Lifespan:
    """Drives an app's lifespan as a server does, start-up then shutdown, each step bounded.

    ``start()`` and ``stop()`` say how the step went: ``"complete"``, ``"failed: <the
    exception>"`` or ``"never finished"`` (a shutdown that waits for a job that will not
    end, say). ``spawned`` holds the tasks the app started during its start-up (its
    worker, in a correct app); ``stopped`` says whether a shutdown was asked for.
    """

    def __init__(self, app: Any, *, limit: float = LIFESPAN_LIMIT) -> None:
        self.app = app
        self.limit = limit
        self.spawned: set[asyncio.Task[Any]] = set()
        self.stopped = False
        self.task: asyncio.Future[Any] | None = None
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def start(self) -> str:
        before = asyncio.all_tasks()
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        self.task = asyncio.ensure_future(self.app(scope, self._inbox.get, self._outbox.put))
        outcome = await self._step("lifespan.startup")
        self.spawned = {task for task in asyncio.all_tasks() - before if task is not self.task}
        return outcome

    async def started(self, *, revisit: str) -> None:
        """Start it; a start-up that does not complete fails the spec."""
        __tracebackhide__ = True
        outcome = await self.start()
        assert outcome == "complete", lesson(expected="the app's start-up complete", got=outcome, revisit=revisit)

    async def stop(self) -> str:
        self.stopped = True
        return await self._step("lifespan.shutdown")

    def still_running(self) -> list[asyncio.Task[Any]]:
        """The tasks the app started during its start-up that have not finished."""
        return [task for task in self.spawned if not task.done()]

    async def _step(self, message: str) -> str:
        assert self.task is not None
        await self._inbox.put({"type": message})
        reply = asyncio.ensure_future(self._outbox.get())
        await asyncio.wait({reply, self.task}, timeout=self.limit, return_when=asyncio.FIRST_COMPLETED)
        if self.task.done() and not self.task.cancelled():
            self.task.exception()  # read: the outcome below says what it was
        if reply.done():
            answer = reply.result()
            if answer["type"].endswith(".complete"):
                return "complete"
            lines = [line for line in str(answer.get("message", "")).splitlines() if line.strip()]
            return f"failed: {lines[-1].strip() if lines else answer['type']}"
        reply.cancel()
        if self.task.done():
            error = None if self.task.cancelled() else self.task.exception()
            return f"failed: {type(error).__name__}: {error}" if error else "failed: the lifespan ended without a word"
        return "never finished"
