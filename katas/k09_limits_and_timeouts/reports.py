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
from uuid import UUID, uuid4  # noqa: F401 - you will need them

from fastapi import FastAPI, HTTPException, Request, Response  # noqa: F401 - you will need them
from pydantic import BaseModel, Field  # noqa: F401 - you will need them

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


# ------------------------------------------------------------------ your part: the runner


class JobRunner:
    """Runs jobs in the background: a few at a time, a bounded line, a time limit for each."""

    def __init__(self, work: Work, limits: Limits | None = None) -> None:
        """A runner with no job yet, which hands each report to ``work``."""
        self.work = work
        self.limits = limits if limits is not None else Limits()
        self._tasks: set[asyncio.Task[Any]] = set()  # every task _spawn started and not yet finished
        # TODO(k09) task 1: what the runner needs to remember: its jobs by id, and what keeps
        # the number of jobs running at once within `max_running`, for every job of this runner.

    def submit(self, report: str) -> Job:
        """Accept a job for ``report`` and start it in the background; ``Busy`` when there is no room."""
        # TODO(k09) task 1: a new `Job` for the report, with an id of its own, `queued` when
        # submit returns. Its work starts in the background, through `_spawn`, and runs only
        # once it holds one of the `max_running` slots: then it is `running`, and `done` or
        # `failed` (logged at ERROR with its traceback) when the work ends, which frees the
        # slot for the first job still waiting.
        # TODO(k09) task 2: decided at once, inside submit: with `max_running` plus
        # `max_waiting` jobs accepted and not yet ended, the job is refused with `Busy`,
        # and nothing of it is kept or run.
        # TODO(k09) task 3: once a job holds its slot, its work has `timeout` seconds; past
        # that it is cancelled, the job is `timed_out`, and the slot is free again.
        raise NotImplementedError("TODO(k09) task 1: accept the job and run it in the background")

    def get(self, job_id: UUID) -> Job | None:
        """The job with that id, or ``None`` if this runner never accepted one."""
        # TODO(k09) task 1: the job submit accepted under that id, as it stands now.
        raise NotImplementedError("TODO(k09) task 1: find the job")

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


# ------------------------------------------------------------------ the app


class ReportRequest(BaseModel):
    """What a client posts: the name of the report to build."""

    # TODO(k09) task 4: `report`, required, text of 1 to 100 characters.


def create_app(work: Work, limits: Limits | None = None) -> FastAPI:
    """Build the API around its injected work (and limits: the README's defaults if none)."""
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
    async def submit_job(request: Request) -> dict[str, str]:
        """Accept a report to build, or say when to come back."""
        # TODO(k09) task 4: the body is a `ReportRequest`. An accepted job is a 202 with its
        # `id` and a `Location` header naming its status document. A job the runner refuses
        # is a 503 with `detail` "too many jobs, try again later" and a `Retry-After` header
        # holding the limits' `retry_after`, in whole seconds.
        raise NotImplementedError("TODO(k09) task 4: submit the job")

    @app.get("/jobs/{job_id}")
    async def job_status(job_id: str) -> dict[str, str]:
        """Where one job stands."""
        # TODO(k09) task 4: the job's `id`, `report` and `status`; an id no job has is a 404
        # with `detail` "no job <id>", an id that is not a UUID a 422.
        raise NotImplementedError(f"TODO(k09) task 4: find job {job_id}")

    return app
