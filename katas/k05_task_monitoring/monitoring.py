"""Kata 5: task monitoring.

A client posts a job (a list of files to import) and gets ``202 Accepted`` at once; the
import runs in the background. A client that cannot see the work needs to ask about it:
each job gets a task id, and ``GET /tasks/{task_id}`` says where it stands: pending,
running (and how far along), completed, or failed (and why).

Read README.md in this folder for the tasks, then make the specs pass:

    uv run pytest katas/k05_task_monitoring
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import datetime
from typing import Protocol
from uuid import UUID, uuid4

from fastapi import BackgroundTasks, FastAPI, HTTPException, Response  # noqa: F401 - you will need them
from pydantic import BaseModel, ConfigDict, Field


class Process(Protocol):
    """Does the real work for one item (imports one file). Slow; may raise."""

    async def __call__(self, item: str) -> None:
        """Process one item."""


class Clock(Protocol):
    """Tells the time: the real clock in production, a fake one in the specs."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""


class TaskStatus(str, enum.Enum):
    """Where a task stands. It only ever moves forward: pending, running, then one of the last two."""

    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class JobRequest(BaseModel):
    """What a client posts: the items (file names) to import, in order."""

    items: list[str] = Field(min_length=1, max_length=100)


class TaskRecord(BaseModel):
    """Everything a client can learn about one task: the body of its status document."""

    # A wrong value (progress 150, status "done") fails where it is assigned, not later.
    model_config = ConfigDict(validate_assignment=True)

    task_id: UUID
    status: TaskStatus
    progress: int = Field(default=0, ge=0, le=100, description="percent of the items done")
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    result: str | None = None
    error: str | None = None


def progress_percent(done: int, total: int) -> int:
    """The share of ``total`` items that are ``done``, in whole percent, rounded down."""
    # TODO(k05) task 3: 0 for none, 100 for all, rounded down in between (1 of 3 is 33).
    raise NotImplementedError("TODO(k05) task 3: compute the progress in percent")


async def run_task(record: TaskRecord, items: list[str], process: Process, clock: Clock) -> None:
    """The background task: process the items one by one, keeping ``record`` up to date."""
    # TODO(k05) task 3: mark the record running (and when it started), await `process` for
    # each item in order, updating the progress after each one; at the end mark it
    # completed, with a result and the time it finished.
    # TODO(k05) task 4: if `process` raises, mark the record failed with a one-line message
    # ("ValueError: ...") and the time, and stop; the exception must not escape.
    raise NotImplementedError("TODO(k05) task 3: run the items and keep the record up to date")


def create_app(*, process: Process, clock: Clock, new_id: Callable[[], UUID] = uuid4) -> FastAPI:
    """Build the API around its collaborators (the specs pass fakes)."""
    app = FastAPI(title="Kata 5: task monitoring")
    tasks: dict[UUID, TaskRecord] = {}  # noqa: F841 - this app's records, by task id: yours to fill

    @app.post("/tasks", status_code=202)
    async def start_task(job: JobRequest, background_tasks: BackgroundTasks, response: Response) -> TaskRecord:
        """Accept a job: record it as pending, queue it, answer 202 with where to ask about it."""
        # TODO(k05) task 1: create a pending record with a fresh id from new_id() and the
        # time from the clock, store it in `tasks`, queue run_task for it, set the Location
        # header to its status URL, and return the record.
        raise NotImplementedError("TODO(k05) task 1: record the task as pending and queue it")

    # TODO(k05) task 2: declare task_id a UUID (a malformed id is then a 422).
    @app.get("/tasks/{task_id}")
    async def get_task(task_id: str) -> TaskRecord:
        """The status document of one task."""
        # TODO(k05) task 2: return this task's record; an id we never issued is a 404.
        raise NotImplementedError("TODO(k05) task 2: look the task up")

    return app
