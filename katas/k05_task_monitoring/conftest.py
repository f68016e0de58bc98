"""Fakes and fixtures for kata 5's specs: a scripted worker and a scripted source of ids.

Read them if you like; you do not need to change them.
"""

from __future__ import annotations

import asyncio
import contextlib
from uuid import UUID

import pytest

from dojo.fakes import FakeClock
from dojo.timeline import Timeline

STEP_STARTED = "step started"
STEP_HELD = "step held"
STEP_FINISHED = "step finished"
STEP_FAILED = "step failed"


class Hold:
    """One place where the fake worker stops and waits for the spec: see FakeWorker.hold_at."""

    def __init__(self, item: str) -> None:
        self.item = item
        self.reached = asyncio.Event()
        self._released = asyncio.Event()

    def release(self) -> None:
        """Let the held step go on."""
        self._released.set()

    async def wait_released(self, timeline: Timeline) -> None:
        try:
            await asyncio.wait_for(self._released.wait(), timeline.safety_timeout)
        except asyncio.TimeoutError:  # an alias of TimeoutError from 3.11
            timeline.record("step gave up", f"{self.item}: the spec never released it")


class FakeWorker:
    """The ``process`` the app is given: imports nothing, but behaves like slow work.

    Each call records ``step started``/``step finished`` on the timeline and moves the
    fake clock on by ``seconds_per_item``. A spec can script it:

    - ``hold = worker.hold_at("a.csv")``: the next call for that item stops before its
      work until ``hold.release()``; ``await worker.until(hold, call)`` waits for it;
    - ``worker.fail_at("a.csv", ValueError("..."))``: that item raises the error.
    """

    def __init__(self, timeline: Timeline, clock: FakeClock, seconds_per_item: float = 3.0) -> None:
        self.timeline = timeline
        self.clock = clock
        self.seconds_per_item = seconds_per_item
        self.started: list[str] = []
        self.processed: list[str] = []
        self._holds: dict[str, list[Hold]] = {}
        self._failures: dict[str, BaseException] = {}

    def hold_at(self, item: str) -> Hold:
        """The next call for ``item`` (after any earlier holds on it) waits for the spec."""
        hold = Hold(item)
        self._holds.setdefault(item, []).append(hold)
        return hold

    def fail_at(self, item: str, error: BaseException) -> None:
        """Every call for ``item`` raises ``error``."""
        self._failures[item] = error

    async def __call__(self, item: str) -> None:
        self.started.append(item)
        self.timeline.record(STEP_STARTED, item)
        holds = self._holds.get(item)
        if holds:
            hold = holds.pop(0)
            self.timeline.record(STEP_HELD, item)
            hold.reached.set()
            await hold.wait_released(self.timeline)
        self.clock.advance(self.seconds_per_item)
        if item in self._failures:
            self.timeline.record(STEP_FAILED, f"{item}: {self._failures[item]!r}")
            raise self._failures[item]
        self.processed.append(item)
        self.timeline.record(STEP_FINISHED, item)

    async def until(self, hold: Hold, call: asyncio.Future) -> bool:
        """Wait until the work stops at ``hold`` (True), or ``call`` ends first (False)."""
        reached = asyncio.ensure_future(hold.reached.wait())
        await asyncio.wait({reached, call}, timeout=self.timeline.safety_timeout, return_when=asyncio.FIRST_COMPLETED)
        if not reached.done():
            reached.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reached
            return False
        return True


class ScriptedIds:
    """An id source that hands out known UUIDs, in order: ``ids.script[0]`` comes first."""

    def __init__(self) -> None:
        self.script = [UUID(f"00000000-0000-4000-8000-{number:012d}") for number in range(1, 101)]
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
