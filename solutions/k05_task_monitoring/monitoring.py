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

from fastapi import BackgroundTasks, FastAPI, HTTPException, Response
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
    # Integer arithmetic, rounded down: never 100 before the last item, never a float's 28.999.
    return done * 100 // total


async def run_task(record: TaskRecord, items: list[str], process: Process, clock: Clock) -> None:
    """The background task: process the items one by one, keeping ``record`` up to date."""
    # The record is this task's own: everything below changes it and nothing else.
    record.status = TaskStatus.RUNNING
    record.started_at = clock.now()
    for done, item in enumerate(items, start=1):
        try:
            await process(item)
        except Exception as error:  # noqa: BLE001 - any failure of the work is the task's outcome
            # Record what went wrong, for the client, and stop: the progress stays where it got to.
            record.status = TaskStatus.FAILED
            record.error = f"{type(error).__name__}: {error}"
            record.finished_at = clock.now()
            return
        # Progress moves only forward, once per item finished.
        record.progress = progress_percent(done, len(items))
    # Done: say so, with the result and the time it finished.
    record.status = TaskStatus.COMPLETED
    record.result = f"imported {len(items)} items"
    record.finished_at = clock.now()


def create_app(*, process: Process, clock: Clock, new_id: Callable[[], UUID] = uuid4) -> FastAPI:
    """Build the API around its collaborators (the specs pass fakes)."""
    app = FastAPI(title="Kata 5: task monitoring")
    tasks: dict[UUID, TaskRecord] = {}  # this app's records, by task id

    @app.post("/tasks", status_code=202)
    async def start_task(job: JobRequest, background_tasks: BackgroundTasks, response: Response) -> TaskRecord:
        """Accept a job: record it as pending, queue it, answer 202 with where to ask about it."""
        # A fresh id for every task, and its record stored BEFORE the answer goes out,
        # so the client can ask about it the moment it has the id.
        record = TaskRecord(task_id=new_id(), status=TaskStatus.PENDING, created_at=clock.now())
        tasks[record.task_id] = record
        background_tasks.add_task(run_task, record, job.items, process, clock)
        response.headers["Location"] = f"/tasks/{record.task_id}"
        return record

    @app.get("/tasks/{task_id}")
    async def get_task(task_id: UUID) -> TaskRecord:
        """The status document of one task."""
        # Declared a UUID, so FastAPI answers 422 for a malformed id; an unknown one is a 404.
        record = tasks.get(task_id)
        if record is None:
            raise HTTPException(status_code=404, detail=f"no task {task_id}")
        return record

    return app
