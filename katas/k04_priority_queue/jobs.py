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
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
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
    """One unit of work waiting for the worker."""

    id: str
    priority: Priority
    payload: dict[str, Any] = field(default_factory=dict)


#: What the worker does with a job: the real work in production, a fake in the specs.
Handler = Callable[[Job], Awaitable[None]]


def rank(priority: Priority) -> int:
    """The priority's place in the line: the smaller, the sooner (0 is served first)."""
    # TODO(k04) task 1: urgent 0, high 1, normal 2, low 3. Spell the order out: the
    # names' alphabetical order and the order Priority lists them in are both wrong.
    raise NotImplementedError("TODO(k04) task 1: rank the priorities")


class JobQueue:
    """Waiting jobs: the smallest rank first and, among equals, the first to arrive."""

    def __init__(self) -> None:
        """An empty queue."""
        # TODO(k04) task 2: keep the waiting jobs in an asyncio.PriorityQueue of
        # (rank, arrival number, job) entries, an arrival counter (itertools.count) and
        # a count of the waiting jobs per priority.

    def put(self, job: Job) -> int:
        """Queue ``job``; return its position in the line (1: it is next)."""
        # TODO(k04) task 2: queue the entry; count the job; return 1 + the number of
        # waiting jobs that go before it (a smaller or the same rank).
        raise NotImplementedError("TODO(k04) task 2: put a job in the queue")

    def get_nowait(self) -> Job:
        """Take the next job at once; ``asyncio.QueueEmpty`` if none is waiting."""
        # TODO(k04) task 2: take the smallest entry without waiting; uncount its job.
        raise NotImplementedError("TODO(k04) task 2: take the next job")

    async def get(self) -> Job:
        """Take the next job, waiting (without polling) until one is put."""
        # TODO(k04) task 2: the same, but await the queue until a job is there.
        raise NotImplementedError("TODO(k04) task 2: wait for the next job")

    def depth(self) -> dict[str, int]:
        """How many jobs wait at each priority, every priority named, zeros included."""
        # TODO(k04) task 2: {"low": ..., "normal": ..., "high": ..., "urgent": ...}.
        raise NotImplementedError("TODO(k04) task 2: count the waiting jobs")

    def __len__(self) -> int:
        # TODO(k04) task 2: how many jobs wait in all.
        raise NotImplementedError("TODO(k04) task 2: count the waiting jobs")


async def run_worker(queue: JobQueue, handler: Handler) -> None:
    """Take jobs from ``queue`` one at a time, for ever, and hand each to ``handler``."""
    # TODO(k04) task 3: loop for ever: await the next job, await the handler with it.
    # A job that raises is logged with logger.exception and the loop goes on.
    raise NotImplementedError("TODO(k04) task 3: run the worker")


class JobRequest(BaseModel):
    """What a client posts: the work to do and how urgent it is."""

    # TODO(k04) task 4: declare `payload`, a required JSON object (dict[str, Any]), and
    # `priority`, a Priority that defaults to normal. An unknown priority must be a 422.


def create_app(handler: Handler, queue: JobQueue | None = None) -> FastAPI:
    """Build the API around an injected handler (and, for the specs, maybe a queue)."""
    jobs = queue if queue is not None else JobQueue()  # noqa: F841 - tasks 3 and 4 use it
    ids = itertools.count(1)  # noqa: F841 - task 4 uses it

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        """Run the worker for as long as the app runs."""
        # TODO(k04) task 3: before the yield, start run_worker(jobs, handler) as a task
        # and keep it; after the yield, cancel it and await it (CancelledError is expected).
        yield

    app = FastAPI(title="Kata 4: a priority queue", lifespan=lifespan)

    @app.post("/jobs", status_code=202)
    async def submit_job(request: JobRequest) -> dict[str, Any]:
        """Queue a job for the worker; answer with its id and place in the line."""
        # TODO(k04) task 4: make a Job with the id f"job-{next(ids)}", put it in `jobs`,
        # answer {"id": ..., "priority": ..., "position": ...}. Never run the job here.
        raise NotImplementedError("TODO(k04) task 4: queue the job and answer 202")

    @app.get("/queue")
    async def queue_depth() -> dict[str, Any]:
        """How many jobs wait, per priority and in all."""
        # TODO(k04) task 4: answer {"depth": jobs.depth(), "total": <all waiting jobs>}.
        raise NotImplementedError("TODO(k04) task 4: report the queue's depth")

    return app
