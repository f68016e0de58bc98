"""Kata 4: a priority queue and its worker.

Clients post jobs with a priority: urgent, high, normal or low. One worker, started with
the app and stopped with it, takes them one at a time: urgent before high before normal
before low, and among jobs of equal priority the one that arrived first. The API answers
``202 Accepted`` at once with the job's id and its place in the line.

Read README.md in this folder for the tasks, then make the specs pass:

    uv run pytest katas/k04_priority_queue
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
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
    # Spelled out, never derived: the names sort "high" < "low" < "normal" < "urgent".
    return {Priority.URGENT: 0, Priority.HIGH: 1, Priority.NORMAL: 2, Priority.LOW: 3}[priority]


class JobQueue:
    """Waiting jobs: the smallest rank first and, among equals, the first to arrive."""

    def __init__(self) -> None:
        """An empty queue."""
        # Entries are (rank, arrival number, job): the unique arrival number breaks every
        # tie, so the heap never compares two jobs (or their dict payloads).
        self._waiting: asyncio.PriorityQueue[tuple[int, int, Job]] = asyncio.PriorityQueue()
        self._arrivals = itertools.count()
        self._depth: dict[Priority, int] = dict.fromkeys(Priority, 0)

    def put(self, job: Job) -> int:
        """Queue ``job``; return its position in the line (1: it is next)."""
        # Everyone waiting with the same or a smaller rank stays ahead of the newcomer.
        ahead = sum(count for priority, count in self._depth.items() if rank(priority) <= rank(job.priority))
        self._waiting.put_nowait((rank(job.priority), next(self._arrivals), job))
        self._depth[job.priority] += 1
        return ahead + 1

    def get_nowait(self) -> Job:
        """Take the next job at once; ``asyncio.QueueEmpty`` if none is waiting."""
        # The queue pops the smallest (rank, arrival) entry: the priority, then FIFO.
        _, _, job = self._waiting.get_nowait()
        self._depth[job.priority] -= 1
        return job

    async def get(self) -> Job:
        """Take the next job, waiting (without polling) until one is put."""
        # Awaiting the queue suspends the worker until put() wakes it: no sleep loop.
        _, _, job = await self._waiting.get()
        self._depth[job.priority] -= 1
        return job

    def depth(self) -> dict[str, int]:
        """How many jobs wait at each priority, every priority named, zeros included."""
        # Every priority is named, an empty one as 0, most urgent first as the worker sees them.
        return {priority.value: self._depth[priority] for priority in sorted(Priority, key=rank)}

    def __len__(self) -> int:
        return sum(self._depth.values())


async def run_worker(queue: JobQueue, handler: Handler) -> None:
    """Take jobs from ``queue`` one at a time, for ever, and hand each to ``handler``."""
    while True:
        job = await queue.get()
        # One job at a time, awaited: the next is chosen only when this one is done.
        try:
            await handler(job)
        except Exception:
            # A failing job must not stop the line: log it with its traceback, go on.
            logger.exception("job %s (%s priority) failed", job.id, job.priority.value)


class JobRequest(BaseModel):
    """What a client posts: the work to do and how urgent it is."""

    # An Enum field turns an unknown priority into a 422 before the endpoint runs.
    payload: dict[str, Any]
    priority: Priority = Priority.NORMAL


def create_app(handler: Handler, queue: JobQueue | None = None) -> FastAPI:
    """Build the API around an injected handler (and, for the specs, maybe a queue)."""
    jobs = queue if queue is not None else JobQueue()
    ids = itertools.count(1)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        """Run the worker for as long as the app runs."""
        # A task of its own, kept in `worker` until shutdown (the loop holds tasks only weakly).
        worker = asyncio.create_task(run_worker(jobs, handler), name="k04 priority worker")
        try:
            yield
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    app = FastAPI(title="Kata 4: a priority queue", lifespan=lifespan)

    @app.post("/jobs", status_code=202)
    async def submit_job(request: JobRequest) -> dict[str, Any]:
        """Queue a job for the worker; answer with its id and place in the line."""
        # Queue it for the worker, never run it here: the client only waits for put().
        job = Job(id=f"job-{next(ids)}", priority=request.priority, payload=request.payload)
        position = jobs.put(job)
        return {"id": job.id, "priority": job.priority.value, "position": position}

    @app.get("/queue")
    async def queue_depth() -> dict[str, Any]:
        """How many jobs wait, per priority and in all."""
        # Read from the queue itself, so it is what the worker will really see.
        depth = jobs.depth()
        return {"depth": depth, "total": sum(depth.values())}

    return app
