"""Fixtures for kata 4: a fake job handler, a queue the specs can reach, and the app.

Nothing here waits on real time. The worker, the app and the specs share one event
loop, so ``settle`` lets that loop run a bounded number of turns (``asyncio.sleep(0)``)
until something holds; a correct app needs a handful of turns, a wrong one never gets
there and the spec fails with a lesson instead of hanging.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from dojo.impl import kata_module
from dojo.timeline import Timeline

jobs = kata_module("k04_priority_queue", "jobs")

JOB_STARTED = "job started"
JOB_DONE = "job done"
JOB_FAILED = "job failed"

#: Turns of the event loop `settle` allows. A correct app needs far fewer.
ROUNDS = 2000


def describe(job: Any) -> str:
    """``job-3 (urgent) {'n': 2}``: a job as the messages show it, whatever its fields hold."""
    priority = getattr(job.priority, "value", job.priority)
    return f"{job.id} ({priority}) {job.payload}"


class FakeHandler:
    """The work a job stands for, faked: it records every job it is handed.

    ``hold()`` makes each job wait inside the handler until ``release()``, as slow work
    would, so jobs pile up in the queue behind it. A job whose payload has
    ``"explode": True`` raises ``RuntimeError``, as a buggy job would.
    """

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.started: list[Any] = []
        self.finished: list[Any] = []
        self._gate = asyncio.Event()
        self._gate.set()

    def hold(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    async def __call__(self, job: Any) -> None:
        self.started.append(job)
        self.timeline.record(JOB_STARTED, describe(job))
        await self._gate.wait()
        if isinstance(job.payload, dict) and job.payload.get("explode"):
            self.timeline.record(JOB_FAILED, describe(job))
            raise RuntimeError(f"job {job.id} exploded, as the spec asked it to")
        self.finished.append(job)
        self.timeline.record(JOB_DONE, describe(job))

    def ids(self, which: str = "finished") -> list[str]:
        return [job.id for job in getattr(self, which)]


Settle = Callable[[Callable[[], object]], Awaitable[bool]]


async def _settle(condition: Callable[[], object], rounds: int = ROUNDS) -> bool:
    """Let the event loop run until ``condition()`` holds; False if it never does."""
    for _ in range(rounds):
        if condition():
            return True
        await asyncio.sleep(0)  # one turn of the loop: no real time passes
    return bool(condition())


@pytest.fixture(name="settle")
def _settle_fixture() -> Settle:
    """``await settle(lambda: ...)``: run the loop until that holds (bounded, no clock)."""
    return _settle


@pytest.fixture(name="handler")
def _handler(timeline: Timeline) -> FakeHandler:
    """The fake work every job is handed to."""
    return FakeHandler(timeline)


@pytest.fixture(name="queue")
def _queue() -> Any:
    """The queue the app's worker reads (specs of task 3 put jobs in it directly)."""
    return jobs.JobQueue()


@pytest.fixture(name="app")
def _app(handler: FakeHandler, queue: Any) -> Any:
    """The kata's app, its worker handing jobs to the fake handler."""
    return jobs.create_app(handler=handler, queue=queue)
