"""Fixtures for kata 4: the specs' own clock, a fake job handler, a queue, the app.

**No real time reaches a verdict.** Every async spec of this kata runs on an event loop
whose clock is virtual (dojo/virtual_clock.py): it stands still while anything can run
and jumps to the next timer when nothing can. A worker that waits on the queue takes a
new job within a few turns of the loop; a worker that polls (sleeps and looks again) is
asleep on a timer that never fires while a spec lets the loop turn, so it fails every
time, on any machine. A wait that ends on a time limit ends at once when the code under
test is stuck.

The handler is fake too: it can *hold* each job, so jobs pile up behind a busy worker,
and when it is cancelled mid-job it takes a few turns to clean up, as real work does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from dojo.impl import kata_module
from dojo.timeline import Timeline
from dojo.virtual_clock import no_task_outlives_its_spec, pytest_asyncio_loop_factories, settle  # noqa: F401 - registered by importing

jobs = kata_module("k04_priority_queue", "jobs")

JOB_STARTED = "job started"
JOB_DONE = "job done"
JOB_FAILED = "job failed"
JOB_CANCELLED = "job cancelled"
JOB_CLEANED_UP = "job cleaned up"

#: Turns of the loop the fake handler's clean-up takes after a cancellation: more than a
#: shutdown that does not wait for its worker lets pass.
CLEANUP_TURNS = 25


# ------------------------------------------------------------------ the fake handler


def describe(job: Any) -> str:
    """``job-3 (urgent) {'n': 2}``: a job as the messages show it, whatever its fields hold."""
    priority = getattr(job.priority, "value", job.priority)
    return f"{job.id} ({priority}) {job.payload}"


class FakeHandler:
    """The work a job stands for, faked: it records every job it is handed.

    ``hold()`` makes each job wait inside the handler until ``release()``, as slow work
    would, so jobs pile up in the queue behind it. A job whose payload has
    ``"explode": True`` raises ``RuntimeError``, as a buggy job would. Cancelled while it
    holds a job, it takes ``CLEANUP_TURNS`` turns of the loop to clean up, then lets the
    cancellation go on.
    """

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.started: list[Any] = []
        self.finished: list[Any] = []
        self.cancelled: list[Any] = []
        self.cleaned_up: list[Any] = []
        self._gate = asyncio.Event()
        self._gate.set()

    def hold(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    async def __call__(self, job: Any) -> None:
        self.started.append(job)
        self.timeline.record(JOB_STARTED, describe(job))
        try:
            await self._gate.wait()
        except asyncio.CancelledError:
            self.cancelled.append(job)
            self.timeline.record(JOB_CANCELLED, describe(job))
            for _ in range(CLEANUP_TURNS):
                await asyncio.sleep(0)
            self.cleaned_up.append(job)
            self.timeline.record(JOB_CLEANED_UP, describe(job))
            raise
        if isinstance(job.payload, dict) and job.payload.get("explode"):
            self.timeline.record(JOB_FAILED, describe(job))
            raise RuntimeError(f"job {job.id} exploded, as the spec asked it to")
        self.finished.append(job)
        self.timeline.record(JOB_DONE, describe(job))

    def ids(self, which: str = "finished") -> list[str]:
        return [job.id for job in getattr(self, which)]


Settle = Callable[[Callable[[], object]], Awaitable[bool]]


@pytest.fixture(name="settle")
def _settle_fixture() -> Settle:
    """``await settle(lambda: ...)``: run the loop until that holds (bounded, no time passes)."""
    return settle


@pytest.fixture(name="handler")
def _handler(timeline: Timeline) -> Iterator[FakeHandler]:
    """The fake work every job is handed to (released after the spec, so nothing stays held)."""
    handler = FakeHandler(timeline)
    yield handler
    handler.release()


@pytest.fixture(name="queue")
def _queue() -> Any:
    """The queue the app's worker reads (specs of task 3 put jobs in it directly)."""
    return jobs.JobQueue()


@pytest.fixture(name="app")
def _app(handler: FakeHandler, queue: Any) -> Any:
    """The kata's app, its worker handing jobs to the fake handler."""
    return jobs.create_app(handler=handler, queue=queue)
