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
from datetime import datetime, timedelta  # noqa: F401 - you will need them
from typing import Any, Protocol
from uuid import UUID, uuid4

from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException, Request  # noqa: F401 - you will need them
from pydantic import BaseModel, Field  # noqa: F401 - you will need them

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
    # TODO(k10) task 1: the record is `running` while the job runs, and its `attempts` says how
    # many attempts were made so far. Each attempt awaits `handler` with the payload; the run
    # stops at the first attempt that works (the record then `succeeded`), after `max_attempts`
    # attempts in all, or at once after a `PermanentJobError`. A run that gives up leaves the
    # record `failed`, with its `error`, and adds one `DeadLetter` to `dead_letters`: the job's
    # id, type and payload, the reason of the LAST failure as "<ExceptionClass>: <message>",
    # the attempts made, and when it failed. `finished_at` is the clock's time when the run
    # ends. Only an `Exception` is a failure: a cancellation goes on, untouched.
    # TODO(k10) task 3: each run that ends is counted once in `stats`, as a success or as a
    # failure, under the job's type.
    raise NotImplementedError("TODO(k10) task 1: run the job, and write a dead letter when it gives up")


# ------------------------------------------------------------------ task 2: a bounded store of dead letters


class DeadLetterStore:
    """The dead letters, oldest first, at most ``capacity`` of them: when full, the oldest goes."""

    def __init__(self, capacity: int = DEFAULT_DEAD_LETTER_CAPACITY) -> None:
        self.capacity = capacity
        # TODO(k10) task 2: keep the letters here, in the order they came, each findable by its job id.

    def add(self, letter: DeadLetter) -> None:
        """Keep ``letter``; if the store is full, drop the oldest letter first, and say so."""
        # TODO(k10) task 2: at most `capacity` letters. Past it, the OLDEST letter is dropped to
        # make room, and each drop is one ERROR record through `logger` naming the dropped job.
        raise NotImplementedError("TODO(k10) task 2: keep the letter")

    def all(self) -> list[DeadLetter]:
        """Every letter kept, oldest first."""
        # TODO(k10) task 2: a list of the letters kept, oldest first.
        raise NotImplementedError("TODO(k10) task 2: list the letters")

    def take(self, job_id: UUID) -> DeadLetter | None:
        """Remove the letter of job ``job_id`` and return it; ``None`` if there is none."""
        # TODO(k10) task 2: the letter is handed out once: finding it and removing it are one
        # step, and a second take of the same job gives `None`.
        raise NotImplementedError("TODO(k10) task 2: take the letter out")


# ------------------------------------------------------------------ task 3: rates per job type


class Stats:
    """How many runs of each job type succeeded and failed, and the rates they make."""

    def __init__(self, types: Iterable[str] = ()) -> None:
        # TODO(k10) task 3: a count of successes and one of failures for each of `types`, all at zero.
        raise NotImplementedError("TODO(k10) task 3: start the counts")

    def add_success(self, job_type: str) -> None:
        """One more run of ``job_type`` succeeded."""
        # TODO(k10) task 3: a type counted for the first time is added.
        raise NotImplementedError("TODO(k10) task 3: count a success")

    def add_failure(self, job_type: str) -> None:
        """One more run of ``job_type`` failed for good."""
        # TODO(k10) task 3: a type counted for the first time is added.
        raise NotImplementedError("TODO(k10) task 3: count a failure")

    def rates(self) -> dict[str, Rates]:
        """For each job type: its counts, and each as a share of that type's finished runs."""
        # TODO(k10) task 3: every type known, each with its own `Rates`: its successes and its
        # failures, each divided by the runs of THAT type that finished. With none finished,
        # both rates are `None`, and nothing is divided.
        raise NotImplementedError("TODO(k10) task 3: the rates per type")


# ------------------------------------------------------------------ task 4: expire finished records


def evict_expired(records: dict[UUID, JobRecord], now: datetime, ttl_seconds: float) -> list[UUID]:
    """Remove from ``records`` every finished record older than ``ttl_seconds``; return their ids, in order."""
    # TODO(k10) task 4: the age of a record is the time since its job FINISHED, and
    # `ttl_seconds` is in seconds. At exactly the time to live it is kept; older, it is removed.
    # A pending or running record is never removed. The others stay, as they were, in order.
    raise NotImplementedError("TODO(k10) task 4: evict the expired records")


# ------------------------------------------------------------------ tasks 5 and 6: the app


class JobRequest(BaseModel):
    """What a client posts: the type of job, and the payload its handler is given."""

    # TODO(k10) task 5: `type`, a text, required; `payload`, a JSON object, an empty one when
    # it is left out. Anything else is a 422.


def create_app(  # noqa: PLR0913 - the collaborators, then the three limits with their defaults
    *,
    handlers: Mapping[str, Handler],
    clock: Clock,
    new_id: Callable[[], UUID] = uuid4,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    ttl_seconds: float = DEFAULT_TTL_SECONDS,
    dead_letter_capacity: int = DEFAULT_DEAD_LETTER_CAPACITY,
) -> FastAPI:
    """Build the API around its collaborators (the specs pass fakes)."""
    records: dict[UUID, JobRecord] = {}  # noqa: F841 - this app's job records, by id
    # TODO(k10) task 5: this app's own dead-letter store (with `dead_letter_capacity`) and
    # stats (for the types of `handlers`). Before EVERY request, the records expired by the
    # clock's time at that request, with `ttl_seconds`, are forgotten.
    app = FastAPI(title="Kata 10: dead letters and clean-up")

    @app.post("/jobs", status_code=202)
    async def submit_job(request: Request, background_tasks: BackgroundTasks) -> JobRecord:
        """Accept a job of a known type; it runs after the response."""
        # TODO(k10) task 5: the body is a `JobRequest` whose type is one of `handlers` (else a
        # 422, and no id drawn). A new id from `new_id`, a `pending` record created now, stored
        # and answered; `run_job` queued for it, to run after the response.
        raise NotImplementedError("TODO(k10) task 5: accept the job")

    @app.get("/jobs")
    async def list_jobs() -> list[JobRecord]:
        """Every record kept, in the order the jobs were accepted."""
        # TODO(k10) task 5: every record kept.
        raise NotImplementedError("TODO(k10) task 5: list the records")

    @app.get("/jobs/{job_id}")
    async def get_job(job_id: str) -> JobRecord:
        """The record of one job."""
        # TODO(k10) task 5: a job id that is not a UUID is a 422; one with no record a 404 whose
        # detail is "no job <id>".
        raise NotImplementedError(f"TODO(k10) task 5: find job {job_id}")

    @app.get("/stats")
    async def get_stats() -> dict[str, Rates]:
        """Success and failure rates, per job type."""
        # TODO(k10) task 5: the stats' rates, every type of `handlers` included.
        raise NotImplementedError("TODO(k10) task 5: the rates")

    @app.get("/dead-letters")
    async def list_dead_letters() -> list[DeadLetter]:
        """Every dead letter kept, oldest first."""
        # TODO(k10) task 6: the letters of this app's store, oldest first.
        raise NotImplementedError("TODO(k10) task 6: list the dead letters")

    @app.post("/dead-letters/{job_id}/replay", status_code=202)
    async def replay(job_id: str, background_tasks: BackgroundTasks) -> JobRecord:
        """Take the job out of the dead letters and run it again, once."""
        # TODO(k10) task 6: the letter is taken out of the store before the answer, and the job
        # runs again, after the response, with its type and payload, under the same id, with a
        # new `pending` record created now. No letter for that id: a 404 whose detail is
        # "no dead letter for job <id>"; an id that is not a UUID: a 422.
        raise NotImplementedError(f"TODO(k10) task 6: replay job {job_id}")

    return app
    return app
