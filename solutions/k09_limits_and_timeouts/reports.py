"""Kata 9: limits and timeouts.

Clients ask for reports; a slow renderer builds them in the background. However many
clients ask at once, at most ``max_running`` reports are built at the same time, across
every request; at most ``max_waiting`` more wait for a free slot, first come first
served; past that the API says "not now" (503, with the seconds to wait in Retry-After).
A report still building when its time limit runs out is cancelled, marked timed out, and
its slot goes to the next one in line.

Read README.md in this folder for the tasks, then make the specs pass:

    uv run pytest katas/k09_limits_and_timeouts
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID, uuid4

from fastapi import FastAPI, HTTPException, Response
from pydantic import BaseModel, Field

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """How much work the app takes on: the defaults are the README's."""

    max_running: int = 4  # reports built at the same time, across every request
    max_waiting: int = 8  # reports waiting for a slot; one more is refused
    timeout: float = 30.0  # seconds a report may take once it has its slot
    retry_after: int = 10  # seconds a refused client is told to wait before asking again


class JobStatus(str, enum.Enum):
    """Where a job stands: queued, running, then one of the last three, for good."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    TIMED_OUT = "timed_out"


@dataclass
class Job:
    """One report asked for, and where it stands."""

    id: UUID
    report: str
    status: JobStatus = JobStatus.QUEUED


class Work(Protocol):
    """Builds one report: slow, it may fail, and it may hang."""

    async def __call__(self, report: str) -> None:
        """Build the report called ``report``."""


class Busy(Exception):  # noqa: N818 - what the caller is told: the runner is busy, come back later
    """The runner has as many jobs as its limits allow: the job was refused, nothing of it kept."""


class JobRunner:
    """Runs jobs in the background: a few at a time, a bounded line, a time limit for each."""

    def __init__(self, work: Work, limits: Limits | None = None) -> None:
        """A runner with no job yet, which hands each report to ``work``."""
        self.work = work
        self.limits = limits if limits is not None else Limits()
        self._tasks: set[asyncio.Task[Any]] = set()  # every task _spawn started and not yet finished
        self._jobs: dict[UUID, Job] = {}
        # One semaphore for the whole runner, so for every request: max_running slots.
        self._slots = asyncio.Semaphore(self.limits.max_running)
        # Jobs accepted and not yet ended, running or waiting: what the line's bound is about.
        self._admitted = 0

    def submit(self, report: str) -> Job:
        """Accept a job for ``report`` and start it in the background; ``Busy`` when there is no room."""
        # Decided here and now, from what was admitted: every slot taken and the line full.
        if self._admitted >= self.limits.max_running + self.limits.max_waiting:
            raise Busy(f"{self.limits.max_running} jobs running and {self.limits.max_waiting} waiting")
        job = Job(id=uuid4(), report=report)
        self._jobs[job.id] = job
        self._admitted += 1
        self._spawn(self._run(job))
        return job

    def get(self, job_id: UUID) -> Job | None:
        """The job with that id, or ``None`` if this runner never accepted one."""
        return self._jobs.get(job_id)

    async def _run(self, job: Job) -> None:
        """Wait for a slot, build the report within its time limit, record how it ended."""
        try:
            # Parked on the semaphore until a slot is free, first come first served; released
            # on every way out of the block, however the work ended.
            async with self._slots:
                job.status = JobStatus.RUNNING
                try:
                    # The time limit starts now, with the slot: the wait in line does not count.
                    await asyncio.wait_for(self.work(job.report), self.limits.timeout)
                except asyncio.TimeoutError:  # first: a TimeoutError is an Exception too
                    job.status = JobStatus.TIMED_OUT
                except Exception:
                    logger.exception("job %s (report %s) failed", job.id, job.report)
                    job.status = JobStatus.FAILED
                else:
                    job.status = JobStatus.DONE
        finally:
            self._admitted -= 1  # ended, whichever way: its room in the line is free again

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Run ``coroutine`` as a task of its own, kept referenced until it ends."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Cancel every task still running or waiting, and wait until they have all ended."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class ReportRequest(BaseModel):
    """What a client posts: the name of the report to build."""

    report: str = Field(min_length=1, max_length=100)


def create_app(work: Work, limits: Limits | None = None) -> FastAPI:
    """Build the API around its injected work (and limits: the README's defaults if none)."""
    # One runner for the app, made once: every request shares its slots and its line.
    runner = JobRunner(work, limits)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        """At shutdown, jobs still running or waiting are cancelled, and waited for."""
        try:
            yield
        finally:
            await runner.aclose()

    app = FastAPI(title="Kata 9: limits and timeouts", lifespan=lifespan)

    @app.post("/jobs", status_code=202)
    async def submit_job(request: ReportRequest, response: Response) -> dict[str, str]:
        """Accept a report to build, or say when to come back."""
        try:
            job = runner.submit(request.report)
        except Busy:
            # Not the client's fault and not a crash: the service is busy right now.
            raise HTTPException(
                status_code=503,
                detail="too many jobs, try again later",
                headers={"Retry-After": str(runner.limits.retry_after)},
            ) from None
        response.headers["Location"] = f"/jobs/{job.id}"
        return {"id": str(job.id)}

    @app.get("/jobs/{job_id}")
    async def job_status(job_id: UUID) -> dict[str, str]:
        """Where one job stands."""
        # Declared a UUID: a malformed id is a 422 before this runs; an unknown one a 404.
        job = runner.get(job_id)
        if job is None:
            raise HTTPException(status_code=404, detail=f"no job {job_id}")
        return {"id": str(job.id), "report": job.report, "status": job.status.value}

    return app
