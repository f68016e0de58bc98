"""Kata 10: dead letters and clean-up.

A job queued after the response can fail for good: a partner that stays down past every
retry, a customer deleted meanwhile. Without a place to put it, the job is simply gone.
This app keeps what a person needs to deal with it later: each job that used up its
attempts lands in a **dead-letter store**, with the reason and the number of attempts,
and can be listed and **replayed**. Success and failure rates per job type say how
healthy each kind of work is. And the records of finished jobs do not pile up in memory
for ever: they are **evicted** once they are older than a time to live, while the store
of dead letters is **bounded**.

Read README.md in this folder for the tasks, then make the specs pass:

    uv run pytest katas/k10_dead_letters_and_cleanup
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID, uuid4

from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException
from pydantic import BaseModel, Field

logger = logging.getLogger(__name__)

DEFAULT_MAX_ATTEMPTS = 3  # attempts of one run of a job, the first included
DEFAULT_TTL_SECONDS = 3600.0  # how long the record of a finished job is kept, in seconds
DEFAULT_DEAD_LETTER_CAPACITY = 100  # dead letters kept at most

#: The work of one job type: given the job's payload, it does the job or raises.
Handler = Callable[[dict[str, Any]], Awaitable[None]]


class Clock(Protocol):
    """Tells the time: the real clock in production, a fake one in the specs."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""


class PermanentJobError(Exception):
    """Raised by a handler for a failure no new attempt can mend (the customer was deleted)."""


class Status(str, enum.Enum):
    """Where a job stands: pending, running, then succeeded or failed."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class JobRecord(BaseModel):
    """What the app tells a client about one run of a job."""

    job_id: UUID
    type: str
    status: Status
    attempts: int = 0  # attempts made so far
    error: str | None = None  # why the run failed, once it has
    created_at: datetime
    finished_at: datetime | None = None


class DeadLetter(BaseModel):
    """A job that used up its attempts: everything needed to understand it and run it again."""

    job_id: UUID
    type: str
    payload: dict[str, Any]
    reason: str  # "<ExceptionClass>: <message>" of the last failure
    attempts: int  # attempts made before giving up
    failed_at: datetime


class Rates(BaseModel):
    """How the finished runs of one job type went."""

    succeeded: int
    failed: int
    success_rate: float | None  # None while no run of the type has finished
    failure_rate: float | None


class DeadLetterSink(Protocol):
    """Where a job goes once it has used up its attempts."""

    def add(self, letter: DeadLetter) -> None:
        """Keep one dead letter."""


class OutcomeCounter(Protocol):
    """Counts how the runs of each job type ended."""

    def add_success(self, job_type: str) -> None:
        """One more run of ``job_type`` succeeded."""

    def add_failure(self, job_type: str) -> None:
        """One more run of ``job_type`` failed for good."""


# ------------------------------------------------------------------ task 1: retries, then a dead letter


async def run_job(  # noqa: PLR0913 - the job, its work, and the four things a run reports to
    record: JobRecord,
    payload: dict[str, Any],
    handler: Handler,
    *,
    max_attempts: int,
    clock: Clock,
    dead_letters: DeadLetterSink,
    stats: OutcomeCounter,
) -> None:
    """The background task: run one job, up to ``max_attempts`` times, keeping ``record`` up to date."""
    record.status = Status.RUNNING
    reason = ""
    for attempt in range(1, max_attempts + 1):
        record.attempts = attempt
        try:
            await handler(payload)
        except PermanentJobError as error:  # no attempt can mend it: give up now
            reason = f"{type(error).__name__}: {error}"
            break
        except Exception as error:  # noqa: BLE001 - any failure of the work may pass on the next attempt
            # Only Exception: a cancellation (a shutdown) goes on, it is not the job's failure.
            reason = f"{type(error).__name__}: {error}"
        else:
            record.status = Status.SUCCEEDED
            record.finished_at = clock.now()
            stats.add_success(record.type)
            return
    # Every attempt failed, or one failed for good: the reason is the LAST failure's.
    record.status = Status.FAILED
    record.error = reason
    record.finished_at = clock.now()
    dead_letters.add(
        DeadLetter(
            job_id=record.job_id,
            type=record.type,
            payload=payload,
            reason=reason,
            attempts=record.attempts,
            failed_at=record.finished_at,
        )
    )
    stats.add_failure(record.type)


# ------------------------------------------------------------------ task 2: a bounded store of dead letters


class DeadLetterStore:
    """The dead letters, oldest first, at most ``capacity`` of them: when full, the oldest goes."""

    def __init__(self, capacity: int = DEFAULT_DEAD_LETTER_CAPACITY) -> None:
        self.capacity = capacity
        # A dict keeps the order letters came in, and finds one by its job id at once.
        self._letters: dict[UUID, DeadLetter] = {}

    def add(self, letter: DeadLetter) -> None:
        """Keep ``letter``; if the store is full, drop the oldest letter first, and say so."""
        if len(self._letters) >= self.capacity:
            oldest = self._letters.pop(next(iter(self._letters)))
            logger.error(
                "dead-letter store full (%d letters): dropped the oldest, job %s (%s)",
                self.capacity,
                oldest.job_id,
                oldest.type,
            )
        self._letters[letter.job_id] = letter

    def all(self) -> list[DeadLetter]:
        """Every letter kept, oldest first."""
        return list(self._letters.values())

    def take(self, job_id: UUID) -> DeadLetter | None:
        """Remove the letter of job ``job_id`` and return it; ``None`` if there is none."""
        # One step, with no await in it: two replays of the same job cannot both find it.
        return self._letters.pop(job_id, None)


# ------------------------------------------------------------------ task 3: rates per job type


class Stats:
    """How many runs of each job type succeeded and failed, and the rates they make."""

    def __init__(self, types: Iterable[str] = ()) -> None:
        self._succeeded: dict[str, int] = dict.fromkeys(types, 0)
        self._failed: dict[str, int] = dict.fromkeys(self._succeeded, 0)

    def add_success(self, job_type: str) -> None:
        """One more run of ``job_type`` succeeded."""
        self._failed.setdefault(job_type, 0)
        self._succeeded[job_type] = self._succeeded.get(job_type, 0) + 1

    def add_failure(self, job_type: str) -> None:
        """One more run of ``job_type`` failed for good."""
        self._succeeded.setdefault(job_type, 0)
        self._failed[job_type] = self._failed.get(job_type, 0) + 1

    def rates(self) -> dict[str, Rates]:
        """For each job type: its counts, and each as a share of that type's finished runs."""
        found = {}
        for job_type, succeeded in self._succeeded.items():
            failed = self._failed[job_type]
            finished = succeeded + failed
            if finished == 0:  # no run yet: there is no rate, and no division by zero
                found[job_type] = Rates(succeeded=succeeded, failed=failed, success_rate=None, failure_rate=None)
            else:
                found[job_type] = Rates(
                    succeeded=succeeded,
                    failed=failed,
                    success_rate=succeeded / finished,
                    failure_rate=failed / finished,
                )
        return found


# ------------------------------------------------------------------ task 4: expire finished records


def evict_expired(records: dict[UUID, JobRecord], now: datetime, ttl_seconds: float) -> list[UUID]:
    """Remove from ``records`` every finished record older than ``ttl_seconds``; return their ids, in order."""
    ttl = timedelta(seconds=ttl_seconds)
    expired = [
        job_id
        for job_id, record in records.items()
        # A pending or running job has no finish time: it is never evicted, however old.
        # One finished exactly ``ttl`` ago is still kept; a moment later it is gone.
        if record.finished_at is not None and now - record.finished_at > ttl
    ]
    for job_id in expired:
        del records[job_id]
    return expired


# ------------------------------------------------------------------ tasks 5 and 6: the app


class JobRequest(BaseModel):
    """What a client posts: the type of job, and the payload its handler is given."""

    type: str
    payload: dict[str, Any] = Field(default_factory=dict)


def create_app(  # noqa: C901, PLR0913 - the collaborators and three limits; one small function per endpoint
    *,
    handlers: Mapping[str, Handler],
    clock: Clock,
    new_id: Callable[[], UUID] = uuid4,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ttl_seconds: float = DEFAULT_TTL_SECONDS,
    dead_letter_capacity: int = DEFAULT_DEAD_LETTER_CAPACITY,
) -> FastAPI:
    """Build the API around its collaborators (the specs pass fakes)."""
    records: dict[UUID, JobRecord] = {}  # this app's job records, by id
    dead_letters = DeadLetterStore(dead_letter_capacity)
    stats = Stats(handlers)

    async def clean_up() -> None:
        """Before every request: forget the finished records older than the time to live."""
        evict_expired(records, clock.now(), ttl_seconds)

    app = FastAPI(title="Kata 10: dead letters and clean-up", dependencies=[Depends(clean_up)])

    def start(job_id: UUID, job_type: str, payload: dict[str, Any], background_tasks: BackgroundTasks) -> JobRecord:
        """Record a new run of a job as pending and queue it; the record is the answer."""
        record = JobRecord(job_id=job_id, type=job_type, status=Status.PENDING, created_at=clock.now())
        records[job_id] = record
        background_tasks.add_task(
            run_job,
            record,
            payload,
            handlers[job_type],
            max_attempts=max_attempts,
            clock=clock,
            dead_letters=dead_letters,
            stats=stats,
        )
        return record

    @app.post("/jobs", status_code=202)
    async def submit_job(job: JobRequest, background_tasks: BackgroundTasks) -> JobRecord:
        """Accept a job of a known type; it runs after the response."""
        if job.type not in handlers:
            raise HTTPException(status_code=422, detail=f"no job type {job.type!r}")
        return start(new_id(), job.type, job.payload, background_tasks)

    @app.get("/jobs")
    async def list_jobs() -> list[JobRecord]:
        """Every record kept, in the order the jobs were accepted."""
        return list(records.values())

    @app.get("/jobs/{job_id}")
    async def get_job(job_id: UUID) -> JobRecord:
        """The record of one job."""
        record = records.get(job_id)
        if record is None:
            raise HTTPException(status_code=404, detail=f"no job {job_id}")
        return record

    @app.get("/stats")
    async def get_stats() -> dict[str, Rates]:
        """Success and failure rates, per job type."""
        return stats.rates()

    @app.get("/dead-letters")
    async def list_dead_letters() -> list[DeadLetter]:
        """Every dead letter kept, oldest first."""
        return dead_letters.all()

    @app.post("/dead-letters/{job_id}/replay", status_code=202)
    async def replay(job_id: UUID, background_tasks: BackgroundTasks) -> JobRecord:
        """Take the job out of the dead letters and run it again, once."""
        letter = dead_letters.take(job_id)
        if letter is None:
            raise HTTPException(status_code=404, detail=f"no dead letter for job {job_id}")
        return start(letter.job_id, letter.type, letter.payload, background_tasks)

    return app
