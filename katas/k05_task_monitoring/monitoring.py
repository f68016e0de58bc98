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
    # TODO(k05) task 3: 0 for none, 100 for all and only for all, rounded down in between
    # (1 of 3 is 33, 199 of 200 is 99), an `int` computed without floats.
    raise NotImplementedError("TODO(k05) task 3: compute the progress in whole percent")


async def run_task(record: TaskRecord, items: list[str], process: Process, clock: Clock) -> None:
    """The background task: process the items one by one, keeping ``record`` up to date."""
    # TODO(k05) task 3: the record turns running (with the time it started) before the first
    # item; each item goes through `process` once, in order, and the progress follows the
    # items finished; at the end the record is completed, at 100, with the result
    # "imported N items" and the time it finished. Only this record changes.
    # TODO(k05) task 4: when `process` raises, the record turns failed, with a one-line
    # message "ExceptionType: message" and the time; the later items do not run, the
    # progress stays where it got to, and the exception does not escape.
    raise NotImplementedError("TODO(k05) task 3: run the items and keep the record up to date")


def create_app(*, process: Process, clock: Clock, new_id: Callable[[], UUID] = uuid4) -> FastAPI:
    """Build the API around its collaborators (the specs pass fakes)."""
    app = FastAPI(title="Kata 5: task monitoring")
    tasks: dict[UUID, TaskRecord] = {}  # noqa: F841 - this app's records, by task id: yours to fill

    @app.post("/tasks", status_code=202)
    async def start_task(job: JobRequest, background_tasks: BackgroundTasks, response: Response) -> TaskRecord:
        """Accept a job: record it as pending, queue it, answer 202 with where to ask about it."""
        # TODO(k05) task 1: answer with a new pending record: one fresh id from `new_id` per
        # request, `created_at` from `clock` when the request comes, and a `Location` header
        # with the task's status URL, /tasks/ and its id.
        # TODO(k05) task 2: the record is in `tasks`, under its id, before the answer goes out.
        # TODO(k05) task 3: `run_task` for this record is queued to run after the answer.
        raise NotImplementedError("TODO(k05) task 1: answer 202 with a new pending record")

    # TODO(k05) task 2: a malformed id in the path is a 422, an unknown one a 404, and the
    # id is looked up with the type of the keys of `tasks`.
    @app.get("/tasks/{task_id}")
    async def get_task(task_id: str) -> TaskRecord:
        """The status document of one task."""
        raise NotImplementedError("TODO(k05) task 2: answer with the task's record")

    return app
