"""Kata 4: a priority queue and its worker.

Clients post jobs with a priority: urgent, high, normal or low. One worker, started with
the app and stopped with it, takes them one at a time: urgent before high before normal
before low, and among jobs of equal priority the one that arrived first. The API answers
``202 Accepted`` at once with the job's id and its place in the line.

Read README.md in this folder for the tasks, then make the specs pass:

    uv run pytest katas/k04_priority_queue
"""

from __future__ import annotations

import asyncio  # noqa: F401 - you will need it
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

logger = logging.getLogger(__name__)


class Priority(str, Enum):
    """How urgent a job is. A client sends the value: ``"urgent"``, ``"high"`` ..."""

    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


@dataclass(frozen=True)
class Job:
    """One unit of work waiting for the worker (frozen: a job waiting in a heap must not change)."""

    id: str
    priority: Priority
    payload: dict[str, Any]


#: What the worker does with a job: the real work in production, a fake in the specs.
Handler = Callable[[Job], Awaitable[None]]


def rank(priority: Priority) -> int:
    """The priority's place in the line: the smaller, the sooner (0 is served first)."""
    # TODO(k04) task 1: a whole number per priority, counting from 0 for urgent, then
    # high, normal, low. Neither the names' alphabetical order nor the order the enum
    # lists them in is that order.
    raise NotImplementedError("TODO(k04) task 1: rank the priorities")


class JobQueue:
    """Waiting jobs: the smallest rank first and, among equals, the first to arrive."""

    def __init__(self) -> None:
        """An empty queue."""
        # TODO(k04) task 2: what the queue needs to remember. Jobs come out by rank, and
        # among equal ranks in the order they arrived, without two jobs (or their dict
        # payloads) ever being compared; the waiting jobs are counted per priority.

    def put(self, job: Job) -> int:
        """Queue ``job``; return its position in the line (1: it is next)."""
        # TODO(k04) task 2: the job joins the line and is counted. The position is one
        # more than the waiting jobs that go before it: those of a more urgent priority,
        # and those of the same priority that came earlier.
        raise NotImplementedError("TODO(k04) task 2: put a job in the queue")

    def get_nowait(self) -> Job:
        """Take the next job at once; ``asyncio.QueueEmpty`` if none is waiting."""
        # TODO(k04) task 2: the next job in the line, at once, no longer counted as
        # waiting; with nothing waiting, the `QueueEmpty` error asyncio's own queues raise.
        raise NotImplementedError("TODO(k04) task 2: take the next job")

    async def get(self) -> Job:
        """Take the next job, waiting (without polling) until one is put."""
        # TODO(k04) task 2: the same job `get_nowait` would give; on an empty queue the
        # caller is suspended until a job is put, and is woken by that put: no sleeping
        # and looking again, which costs turns of the loop and comes late.
        raise NotImplementedError("TODO(k04) task 2: wait for the next job")

    def depth(self) -> dict[str, int]:
        """How many jobs wait at each priority, every priority named, zeros included."""
        # TODO(k04) task 2: a dict from each priority's text, as a client writes it, to
        # the number of jobs waiting at it; all four priorities, zeros included.
        raise NotImplementedError("TODO(k04) task 2: count the waiting jobs")

    def __len__(self) -> int:
        # TODO(k04) task 2: how many jobs wait in all.
        raise NotImplementedError("TODO(k04) task 2: count the waiting jobs")


async def run_worker(queue: JobQueue, handler: Handler) -> None:
    """Take jobs from ``queue`` one at a time, for ever, and hand each to ``handler``."""
    # TODO(k04) task 3: for ever, one job at a time: wait for the next job and hand it
    # to the handler, the next one only once it is done. A job that raises is logged at
    # ERROR with its traceback, once, and the worker goes on; a cancellation stops it.
    raise NotImplementedError("TODO(k04) task 3: run the worker")


class JobRequest(BaseModel):
    """What a client posts: the work to do and how urgent it is."""

    # TODO(k04) task 4: two fields. `payload` is required and is a JSON object (a list,
    # text, a number or null is a 422); `priority` is one of the four priorities (anything
    # else is a 422) and is normal when left out.


def create_app(handler: Handler, queue: JobQueue | None = None) -> FastAPI:
    """Build the API around an injected handler (and, for the specs, maybe a queue)."""
    jobs = queue if queue is not None else JobQueue()  # noqa: F841 - tasks 3 and 4 use it

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        """Run the worker for as long as the app runs."""
        # TODO(k04) task 3: while the app runs, `run_worker` runs beside it as a task of
        # its own that the app keeps hold of. At shutdown that task is cancelled, and the
        # shutdown completes only once the worker has ended, its cancellation expected.
        yield

    app = FastAPI(title="Kata 4: a priority queue", lifespan=lifespan)

    @app.post("/jobs", status_code=202)
    async def submit_job(request: JobRequest) -> dict[str, Any]:
        """Queue a job for the worker; answer with its id and place in the line."""
        # TODO(k04) task 4: a `Job` with an id no other job ever had (`job-1`, `job-2` and
        # so on, in the order jobs are accepted), put in the line the worker reads; the
        # answer holds its `id`, `priority` and `position`. The job is never run here.
        raise NotImplementedError("TODO(k04) task 4: queue the job and answer 202")

    @app.get("/queue")
    async def queue_depth() -> dict[str, Any]:
        """How many jobs wait, per priority and in all."""
        # TODO(k04) task 4: the answer holds `depth`, the waiting jobs per priority as
        # the queue counts them, and `total`, all of them.
        raise NotImplementedError("TODO(k04) task 4: report the queue's depth")

    return app
