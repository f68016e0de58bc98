"""Specs for kata 10: dead letters and clean-up.

Run them with

    uv run pytest katas/k10_dead_letters_and_cleanup

Each spec names the README task it checks. Edit deadletters.py, not this file.

Nothing here waits on a clock. The fake handlers take no real time: each attempt moves the
fake clock on by ``SECONDS_PER_ATTEMPT`` and yields to the event loop once, as real I/O
does. A spec that must see a job *while* it runs holds one attempt (``hold_next``) and
lets it go later; every wait on your code gives up after ``BOUND`` seconds with a message.

Tasks 1 to 4 call your functions and classes directly; tasks 5 and 6 go through the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import fastapi  # noqa: F401 - the kata's stack, imported while pytest collects rather than inside the first spec
import pydantic.v1  # noqa: F401 - FastAPI imports it when an app declares its first route: paid here, not by a spec
import pytest

from dojo.fakes import BACKGROUND_HELD, EPOCH, BackgroundGate, FakeClock
from dojo.impl import kata_module
from dojo.teach import expect_json, expect_status, expect_type, lesson
from dojo.timeline import BOUND, RESPONSE_COMPLETE, Exchange, Timeline, describe_error, within_bound

deadletters = kata_module("k10_dead_letters_and_cleanup", "deadletters")

# ---------------------------------------------------------------- fakes for this kata

ATTEMPT_STARTED = "attempt started"
ATTEMPT_HELD = "attempt held"
ATTEMPT_SUCCEEDED = "attempt succeeded"
ATTEMPT_FAILED = "attempt failed"
DEAD_LETTERED = "dead-lettered"
COUNTED = "outcome counted"

#: What one attempt of a fake handler takes on the fake clock.
SECONDS_PER_ATTEMPT = 5.0

INVOICE, IMAGE = "send_invoice", "resize_image"


class Hold:
    """One attempt a handler stops at, until the spec lets it go (see FakeHandler.hold_next)."""

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self._released = asyncio.Event()

    def release(self) -> None:
        self._released.set()

    async def wait_released(self) -> None:
        # A spec that never lets it go has failed already: the attempt then ends after BOUND.
        with contextlib.suppress(asyncio.TimeoutError):  # an alias of TimeoutError from 3.11
            await asyncio.wait_for(self._released.wait(), BOUND)


class FakeHandler:
    """The work of one job type, faked: it keeps each payload it is given and follows a script.

    - ``handler.will(ConnectionError("down"), None)``: from now on, the next attempt raises,
      the one after it and every later one succeed (``None`` is a success; the last outcome
      repeats). With no script, every attempt succeeds.
    - ``hold = handler.hold_next()``: the next attempt stops before its work until
      ``hold.release()``; ``hold.reached`` is set once it is there.

    Each attempt moves the fake clock by ``SECONDS_PER_ATTEMPT``. An exception in the script
    is raised as a fresh copy each time. The only way to call it is ``await handler(payload)``.
    """

    def __init__(self, name: str, timeline: Timeline, clock: FakeClock) -> None:
        self.name = name
        self.timeline = timeline
        self.clock = clock
        self.payloads: list[Any] = []
        self._script: list[BaseException | None] = []
        self._position = 0
        self._holds: list[Hold] = []

    def will(self, *outcomes: BaseException | None) -> FakeHandler:
        self._script = list(outcomes)
        self._position = 0
        return self

    def hold_next(self) -> Hold:
        hold = Hold()
        self._holds.append(hold)
        return hold

    async def __call__(self, payload: dict[str, Any]) -> None:
        number = len(self.payloads) + 1
        self.payloads.append(copy.deepcopy(payload))
        self.timeline.record(ATTEMPT_STARTED, f"{self.name} call {number}: {payload!r}")
        if self._holds:
            hold = self._holds.pop(0)
            self.timeline.record(ATTEMPT_HELD, f"{self.name} call {number}")
            hold.reached.set()
            await hold.wait_released()
        await asyncio.sleep(0)  # a point where other tasks run, as real I/O is
        self.clock.advance(SECONDS_PER_ATTEMPT)
        self._position += 1
        outcome = self._script[min(self._position, len(self._script)) - 1] if self._script else None
        if outcome is not None:
            error = copy.copy(outcome)
            self.timeline.record(ATTEMPT_FAILED, f"{self.name} call {number}: {error!r}")
            raise error
        self.timeline.record(ATTEMPT_SUCCEEDED, f"{self.name} call {number}")

    @property
    def calls(self) -> int:
        return len(self.payloads)

    def __repr__(self) -> str:
        return f"FakeHandler({self.name!r}, {self.calls} call(s): {self.payloads})"


class FakeDeadLetters:
    """A dead-letter sink that keeps what it is given: only ``add``, as run_job needs."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.letters: list[Any] = []

    def add(self, letter: object) -> None:
        self.letters.append(letter)
        self.timeline.record(DEAD_LETTERED, repr(letter)[:200])

    def __repr__(self) -> str:
        return f"FakeDeadLetters({self.letters})"


class FakeStats:
    """An outcome counter that notes each call: only ``add_success`` and ``add_failure``."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.counted: list[tuple[str, object]] = []

    def add_success(self, job_type: str) -> None:
        self.counted.append(("success", job_type))
        self.timeline.record(COUNTED, f"success of {job_type!r}")

    def add_failure(self, job_type: str) -> None:
        self.counted.append(("failure", job_type))
        self.timeline.record(COUNTED, f"failure of {job_type!r}")

    def __repr__(self) -> str:
        return f"FakeStats({self.counted})"


#: The ids a scripted source hands out, in order (made once: 300 UUIDs a spec cost ~1 ms).
SCRIPT = tuple(UUID(f"00000000-0000-4000-8000-{number:012d}") for number in range(1, 301))


class ScriptedIds:
    """An id source that hands out known UUIDs, in order: ``ids.script[0]`` comes first."""

    def __init__(self) -> None:
        self.script = SCRIPT
        self.issued: list[UUID] = []

    def __call__(self) -> UUID:
        job_id = self.script[len(self.issued)]
        self.issued.append(job_id)
        return job_id


@pytest.fixture(name="invoices")
def _invoices(timeline: Timeline, clock: FakeClock) -> FakeHandler:
    """The handler of the job type ``send_invoice``."""
    return FakeHandler(INVOICE, timeline, clock)


@pytest.fixture(name="images")
def _images(timeline: Timeline, clock: FakeClock) -> FakeHandler:
    """The handler of the job type ``resize_image``."""
    return FakeHandler(IMAGE, timeline, clock)


@pytest.fixture(name="handlers")
def _handlers(invoices: FakeHandler, images: FakeHandler) -> dict[str, FakeHandler]:
    return {INVOICE: invoices, IMAGE: images}


@pytest.fixture(name="sink")
def _sink(timeline: Timeline) -> FakeDeadLetters:
    return FakeDeadLetters(timeline)


@pytest.fixture(name="counter")
def _counter(timeline: Timeline) -> FakeStats:
    return FakeStats(timeline)


@pytest.fixture(name="ids")
def _ids() -> ScriptedIds:
    """The job ids the app will hand out, known in advance."""
    return ScriptedIds()


@pytest.fixture(name="build")
def _build(handlers: dict[str, FakeHandler], clock: FakeClock, ids: ScriptedIds) -> Callable[..., Any]:
    """``build(**limits)``: the kata's app on the fakes, with the limits given (the defaults otherwise)."""
    return lambda **limits: deadletters.create_app(handlers=handlers, clock=clock, new_id=ids, **limits)


@pytest.fixture(name="app")
def _app(build: Callable[..., Any]) -> Any:
    """The kata's app with its default limits: 3 attempts, a one-hour time to live, 100 dead letters."""
    return build()


# ---------------------------------------------------------------- the specs' own values

STEP = timedelta(seconds=SECONDS_PER_ATTEMPT)  # what one attempt of a fake handler takes on the fake clock
HOUR = 3600.0
JOB = UUID("00000000-0000-4000-8000-00000000abcd")
PAYLOAD = {"invoice": 7, "to": "zoë@example.com", "note": "für März"}
RECORD_FIELDS = {"job_id", "type", "status", "attempts", "error", "created_at", "finished_at"}
LETTER_FIELDS = {"job_id", "type", "payload", "reason", "attempts", "failed_at"}
RATE_FIELDS = {"succeeded", "failed", "success_rate", "failure_rate"}

# ------------------------------------------------------------------ what each failure sends you back to

ATTEMPTS = (
    "task 1: a run makes attempts until one succeeds, at most as many as it is given, the first one "
    "included (README: Retries end somewhere: the dead letter)"
)
RECORD = (
    "task 1: the run keeps the job's record up to date: running while it works, then succeeded or "
    "failed, with the attempts made and the moment it ended (README: Retry, then write a dead letter)"
)
LETTER = (
    "task 1: a job that used up its attempts becomes one dead letter, with everything needed to run it "
    "again and to understand why it failed (README: What a dead letter must carry)"
)
REASON = (
    "task 1: the reason is the last failure, its class and its message, because the last one is why "
    "the run gave up (README: What a dead letter must carry)"
)
PERMANENT = (
    "task 1: a failure that no attempt can mend is not tried again, the run gives up at once "
    "(README: Retries end somewhere: the dead letter)"
)
CANCEL = (
    "task 1: a cancellation is an order to stop, not a failure of the job, so it is neither tried "
    "again nor written down (README: Retries end somewhere: the dead letter)"
)
STORE = (
    "task 2: the store keeps its letters in the order they came, oldest first (README: Keep the dead letters, bounded)"
)
TAKE = (
    "task 2: taking a letter hands it out and removes it in the same step, so nobody can take it twice "
    "(README: Replay, exactly once)"
)
BOUNDED = (
    "task 2: a full store makes room by dropping its oldest letter, never the new one, and keeps exactly "
    "as many letters as its capacity (README: A bounded store: what goes first)"
)
DROP_LOG = (
    "task 2: a letter dropped is work lost for good, so each drop is one record at ERROR through the "
    "module's logger, naming the job (README: A bounded store: what goes first)"
)
ZERO = (
    "task 3: with no finished run there is no rate at all, not zero, and nothing to divide by "
    "(README: Rates per job type, and the empty case)"
)
RATES = (
    "task 3: each type's rates are its own successes and failures over its own finished runs "
    "(README: Rates per job type, and the empty case)"
)
COUNTS = (
    "task 3: a run is counted once, when it ends, under its own type; an attempt is not a run "
    "(README: Count successes and failures per type)"
)
TTL = (
    "task 4: a finished record is kept for the time to live, counted from the moment it finished, and "
    "evicted once it is older than that (README: Records that expire: a time to live)"
)
UNITS = (
    "task 4: the time to live is a number of seconds, whatever the age of the record, days included "
    "(README: Records that expire: a time to live)"
)
NEVER = (
    "task 4: a pending or running job has not finished, so no time to live applies to it, however old "
    "it is (README: Records that expire: a time to live)"
)
SUBMIT = (
    "task 5: a job of a known type is accepted with 202 and its pending record, and runs after the "
    "response (README: Serve jobs, records and rates)"
)
VALIDATE = (
    "task 5: only an object with a known job type and an object as payload is a job; anything else is "
    "the client's mistake, a 422, and nothing runs (README: Serve jobs, records and rates)"
)
LOOKUP = (
    "task 5: an id nobody issued is a 404 that names it, and a path that is not an id at all a 422, "
    "never a crash (README: Serve jobs, records and rates)"
)
SWEEP = (
    "task 5: every request first forgets the records that expired, by the clock's time at that request "
    "(README: Records that expire: a time to live)"
)
OWN = (
    "task 5: the records belong to one app, not to the module every app shares (README: Serve jobs, records and rates)"
)
NEVER_API = (
    "task 5: the clean-up at each request forgets only finished records: a job still waiting or "
    "running is never forgotten (README: Records that expire: a time to live)"
)
STATS = "task 5: the rates of every job type the app runs, as the counters say (README: Serve jobs, records and rates)"
COUNTERS = (
    "task 5: the rates come from counters of their own, which the clean-up never touches "
    "(README: Counters are not records)"
)
LETTERS = (
    "task 6: the dead letters are listed oldest first, each with its fields (README: List and replay the dead letters)"
)
REPLAY = (
    "task 6: a replay takes the letter out and runs the job again, as a new run of the same job "
    "(README: Replay, exactly once)"
)
ONCE = (
    "task 6: the letter leaves the store before the replay is answered, so a second replay finds "
    "nothing, even while the first still runs (README: Replay, exactly once)"
)
NO_LETTER = (
    "task 6: only a job in the store can be replayed; any other id is a 404 that names it, and a path "
    "that is not an id a 422 (README: List and replay the dead letters)"
)
CAPACITY = (
    "task 6: the app's store holds as many letters as the app was given, the oldest dropped first "
    "(README: A bounded store: what goes first)"
)


# ------------------------------------------------------------------ helpers


def a_record(clock: FakeClock, *, job_id: UUID = JOB, job_type: str = INVOICE) -> Any:
    """A pending record, as the app makes one when it accepts a job."""
    return deadletters.JobRecord(
        job_id=job_id, type=job_type, status=deadletters.Status.PENDING, created_at=clock.now()
    )


async def run(  # noqa: PLR0913 - run_job's own parameters
    record: Any,
    handler: FakeHandler,
    clock: FakeClock,
    sink: FakeDeadLetters,
    counter: FakeStats,
    *,
    max_attempts: int = 3,
    payload: dict[str, Any] | None = None,
    revisit: str = ATTEMPTS,
) -> None:
    """Run one job with run_job, at most BOUND seconds."""
    __tracebackhide__ = True
    call = deadletters.run_job(
        record,
        dict(PAYLOAD) if payload is None else payload,
        handler,
        max_attempts=max_attempts,
        clock=clock,
        dead_letters=sink,
        stats=counter,
    )
    await within_bound(call, revisit=revisit, expected="the run ended")


def expect_run(record: Any, *, status: str, attempts: int, error: str | None, finished_at: datetime | None) -> None:
    """The record after (or during) a run: these four facts, with their types checked first."""
    __tracebackhide__ = True
    expect_type(record, deadletters.JobRecord, what="the record given to run_job", revisit=RECORD)
    expect_type(record.status, deadletters.Status, what="the record's status", revisit=RECORD)
    expect_type(record.attempts, int, what="the record's attempts", revisit=RECORD)
    expect_type(record.error, str, type(None), what="the record's error", revisit=RECORD)
    expect_type(record.finished_at, datetime, type(None), what="the record's finished_at", revisit=RECORD)
    got = (record.status.value, record.attempts, record.error, record.finished_at)
    expected = f"status {status}, attempts {attempts}, error {error!r}, finished_at {shown_time(finished_at)}"
    said = f"status {got[0]}, attempts {got[1]}, error {got[2]!r}, finished_at {shown_time(got[3])}"
    # The lesson of the first fact that is wrong: the attempts, the rest of the record, then the error's text.
    assert got[1] == attempts, lesson(expected=expected, got=said, revisit=ATTEMPTS)
    assert (got[0], got[3]) == (status, finished_at), lesson(expected=expected, got=said, revisit=RECORD)
    assert got[2] == error, lesson(expected=expected, got=said, revisit=REASON)


def shown_time(moment: datetime | None) -> str:
    """A time as an offset from the fake clock's start: ``start + 15 s``."""
    if moment is None:
        return "None"
    if moment.tzinfo is None:
        return f"{moment.isoformat()} (no UTC offset)"
    return f"start + {(moment - EPOCH).total_seconds():g} s"


def a_letter(number: int, job_type: str = INVOICE) -> Any:
    """Dead letter ``number``: job ``…0001``, ``…0002`` …, failed ``number`` minutes after the start."""
    return deadletters.DeadLetter(
        job_id=UUID(f"00000000-0000-4000-8000-{number:012d}"),
        type=job_type,
        payload={"invoice": number},
        reason=f"ConnectionError: partner down ({number})",
        attempts=3,
        failed_at=EPOCH + timedelta(minutes=number),
    )


def listed(store: Any, *, revisit: str) -> list[Any]:
    """``store.all()``, checked to be a list of DeadLetters."""
    __tracebackhide__ = True
    return expect_type(store.all(), list, what="what all() returns", revisit=revisit, items=(deadletters.DeadLetter,))


def numbers(letters: list[Any]) -> list[int]:
    """Which of ``a_letter``'s letters these are, by number."""
    return [letter.job_id.int & 0xFFFFFFFFFFFF for letter in letters]


def serious(log: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The records a person is meant to read: WARNING and above."""
    return [record for record in log.records if record.levelno >= logging.WARNING]


def shown(records: list[logging.LogRecord]) -> str:
    return "; ".join(f"{r.levelname} from {r.name!r}: {r.getMessage()}" for r in records) or "nothing"


def finished(clock_start: datetime, status: str, *, finished_at: datetime, job_id: UUID = JOB) -> Any:
    """A record of a job that finished (succeeded or failed) at ``finished_at``."""
    return deadletters.JobRecord(
        job_id=job_id,
        type=INVOICE,
        status=deadletters.Status(status),
        attempts=1,
        created_at=clock_start,
        finished_at=finished_at,
    )


def evict(records: dict[UUID, Any], now: datetime, ttl_seconds: float, *, revisit: str) -> list[UUID]:
    """``evict_expired``, its answer checked to be a list of ids."""
    __tracebackhide__ = True
    return expect_type(
        deadletters.evict_expired(records, now, ttl_seconds),
        list,
        what="what evict_expired returns, the ids it evicted",
        revisit=revisit,
        items=(UUID,),
    )


class Api:
    """The app, called as a client would, each call bounded: ``await api.get("/jobs", revisit=...)``."""

    def __init__(self, app: Any, timeline: Timeline) -> None:
        self.app = app
        self.timeline = timeline

    async def call(self, method: str, path: str, *, revisit: str, **kwargs: Any) -> Exchange:
        __tracebackhide__ = True
        return await within_bound(
            self.timeline.request(self.app, method, path, **kwargs),
            revisit=revisit,
            expected=f"{method} {path} answered, and its background work ended",
        )

    async def get(self, path: str, *, revisit: str) -> Exchange:
        __tracebackhide__ = True
        return await self.call("GET", path, revisit=revisit)

    async def post(self, path: str, *, revisit: str, **kwargs: Any) -> Exchange:
        __tracebackhide__ = True
        return await self.call("POST", path, revisit=revisit, **kwargs)

    async def submit(self, job_type: str = INVOICE, payload: Any = None, *, revisit: str = SUBMIT) -> dict[str, Any]:
        """POST one job, which must be accepted; its record, as the 202 carried it."""
        __tracebackhide__ = True
        body = {"type": job_type, "payload": dict(PAYLOAD) if payload is None else payload}
        exchange = await self.post("/jobs", json=body, revisit=revisit)
        expect_status(exchange, 202, expected=f"202 Accepted for the job {body}", revisit=revisit)
        assert exchange.error is None, lesson(
            expected="the job's run ends without an exception escaping the app", got=str(exchange), revisit=revisit
        )
        return json_object(exchange, revisit=revisit)

    async def record(self, job_id: UUID, *, revisit: str) -> dict[str, Any]:
        """GET one job's record, which must be there."""
        __tracebackhide__ = True
        exchange = await self.get(f"/jobs/{job_id}", revisit=revisit)
        expect_status(exchange, 200, expected=f"200 and the record of job {job_id}", revisit=revisit)
        return json_object(exchange, revisit=revisit)

    async def letters(self, *, revisit: str = LETTERS) -> list[Any]:
        __tracebackhide__ = True
        exchange = await self.get("/dead-letters", revisit=revisit)
        expect_status(exchange, 200, expected="200 and the list of dead letters", revisit=revisit)
        return expect_type(exchange.json(), list, what="the dead letters", revisit=revisit, items=(dict,))

    async def stats(self, *, revisit: str = STATS) -> dict[str, Any]:
        __tracebackhide__ = True
        exchange = await self.get("/stats", revisit=revisit)
        expect_status(exchange, 200, expected="200 and the rates per job type", revisit=revisit)
        return json_object(exchange, revisit=revisit)


def json_object(exchange: Exchange, *, revisit: str) -> dict[str, Any]:
    __tracebackhide__ = True
    try:
        body = exchange.json()
    except ValueError:
        body = exchange.text
    return expect_type(body, dict, what="the body, a JSON object", revisit=revisit)


@pytest.fixture(name="api")
def _api(app: Any, timeline: Timeline) -> Api:
    return Api(app, timeline)


def moment(text: object, *, what: str, revisit: str) -> datetime:
    """An ISO 8601 time with its UTC offset, as the JSON carries it."""
    __tracebackhide__ = True
    value = expect_type(text, str, what=f"{what}: an ISO 8601 time", revisit=revisit)
    try:
        parsed = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        raise AssertionError(lesson(expected=f"{what}: an ISO 8601 time", got=repr(value), revisit=revisit)) from None
    if parsed.tzinfo is None:
        raise AssertionError(
            lesson(expected=f"{what} with its UTC offset", got=f"{value!r}, which has no offset", revisit=revisit)
        )
    return parsed


def expect_record_json(  # noqa: PLR0913 - every field of a record
    body: dict[str, Any],
    *,
    job_id: UUID,
    status: str,
    attempts: int,
    error: str | None,
    created_at: datetime,
    finished_at: datetime | None,
    revisit: str,
) -> None:
    """A record as the API writes it: exactly its fields, each with its value."""
    __tracebackhide__ = True
    assert set(body) == RECORD_FIELDS, lesson(
        expected=f"a job's record, with exactly the fields {sorted(RECORD_FIELDS)}", got=f"{body}", revisit=revisit
    )
    expect_type(body["attempts"], int, what="attempts", revisit=revisit)
    got = {
        "job_id": body["job_id"],
        "status": body["status"],
        "attempts": body["attempts"],
        "error": body["error"],
        "created_at": shown_time(moment(body["created_at"], what="created_at", revisit=revisit)),
        "finished_at": None
        if body["finished_at"] is None
        else shown_time(moment(body["finished_at"], what="finished_at", revisit=revisit)),
    }
    wanted = {
        "job_id": str(job_id),
        "status": status,
        "attempts": attempts,
        "error": error,
        "created_at": shown_time(created_at),
        "finished_at": None if finished_at is None else shown_time(finished_at),
    }
    assert got == wanted and body["type"] == INVOICE, lesson(
        expected=f"the record {wanted}, of type {INVOICE}",
        got=f"{got}, of type {body['type']!r}",
        revisit=revisit,
    )


def expect_rates(got: object, *, succeeded: int, failed: int, what: str, revisit: str) -> None:
    """One type's rates, as Stats.rates gives them or the API writes them."""
    __tracebackhide__ = True
    if isinstance(got, dict):
        assert set(got) == RATE_FIELDS, lesson(
            expected=f"{what}: exactly the fields {sorted(RATE_FIELDS)}", got=f"{got}", revisit=revisit
        )
        values = (got["succeeded"], got["failed"], got["success_rate"], got["failure_rate"])
    else:
        expect_type(got, deadletters.Rates, what=what, revisit=revisit)
        values = (got.succeeded, got.failed, got.success_rate, got.failure_rate)  # type: ignore[attr-defined]
    expect_type(values[0], int, what=f"{what}: succeeded", revisit=revisit)
    expect_type(values[1], int, what=f"{what}: failed", revisit=revisit)
    total = succeeded + failed
    wanted: tuple[int, int, float | None, float | None] = (succeeded, failed, None, None)
    if total:
        wanted = (succeeded, failed, succeeded / total, failed / total)
    for value, name in ((values[2], "success_rate"), (values[3], "failure_rate")):
        expect_type(value, *((float,) if total else (type(None),)), what=f"{what}: {name}", revisit=revisit)
    close = all(
        a == b if b is None or a is None else abs(a - b) <= 1e-12
        for a, b in zip(values[2:], wanted[2:], strict=True)  # type: ignore[operator]
    )
    assert values[:2] == wanted[:2] and close, lesson(
        expected=f"{what}: succeeded {wanted[0]}, failed {wanted[1]}, rates {wanted[2]} and {wanted[3]}",
        got=f"succeeded {values[0]}, failed {values[1]}, rates {values[2]} and {values[3]}",
        revisit=revisit,
    )


async def until_held(hold: Hold, running: asyncio.Future[Any], *, what: str, revisit: str) -> None:
    """Wait until the work reaches ``hold``; fail with a lesson if ``running`` ends first, or nothing happens."""
    __tracebackhide__ = True
    reached = asyncio.ensure_future(hold.reached.wait())
    try:
        await asyncio.wait({reached, running}, timeout=BOUND, return_when=asyncio.FIRST_COMPLETED)
    finally:
        reached.cancel()
    if hold.reached.is_set():
        return
    if not running.done():
        got = f"nothing after {BOUND:g} s: still running, and the attempt never started"
    elif running.cancelled():
        got = "the call was cancelled before the attempt started"
    elif running.exception() is not None:
        got = f"the call ended first, raising {describe_error(running.exception())}"  # type: ignore[arg-type]
    else:
        got = f"the call ended first, without that attempt: {running.result()}"
    raise AssertionError(lesson(expected=what, got=got, revisit=revisit))


async def settled(running: asyncio.Future[Any]) -> None:
    """Make sure a task a spec started is over, and its outcome read, whatever the spec found."""
    if not running.done():
        running.cancel()
        await asyncio.wait({running}, timeout=BOUND)
    if running.done() and not running.cancelled():
        running.exception()  # read: asyncio would otherwise report it later, in another spec


# ---------------------------------------------------------------- task 1: retry, then a dead letter


@pytest.mark.task(1)
async def test_a_job_that_works_at_once_is_attempted_once_and_succeeds(invoices, clock, sink, counter):
    """One attempt, with the payload; the record says succeeded, 1 attempt, when it finished; no dead letter."""
    record = a_record(clock)
    await run(record, invoices, clock, sink, counter)
    assert invoices.payloads == [PAYLOAD], lesson(
        expected=f"the handler called once, with the job's payload {PAYLOAD}", got=f"{invoices!r}", revisit=ATTEMPTS
    )
    expect_run(record, status="succeeded", attempts=1, error=None, finished_at=EPOCH + STEP)
    assert sink.letters == [], lesson(expected="no dead letter for a job that worked", got=f"{sink!r}", revisit=LETTER)


@pytest.mark.task(1)
@pytest.mark.parametrize("failures", [1, 2], ids=["fails once", "fails twice"])
async def test_a_job_that_fails_then_works_is_tried_again_until_it_works(invoices, clock, sink, counter, failures):
    """Of 3 attempts, the first ones fail and the next works: it stops there, succeeded, no dead letter."""
    invoices.will(*[ConnectionError("the partner hung up")] * failures, None)
    record = a_record(clock)
    await run(record, invoices, clock, sink, counter)
    assert invoices.payloads == [PAYLOAD] * (failures + 1), lesson(
        expected=f"{failures + 1} attempts, each with the payload, and none after the one that worked",
        got=f"{invoices!r}",
        revisit=ATTEMPTS,
    )
    expect_run(record, status="succeeded", attempts=failures + 1, error=None, finished_at=EPOCH + STEP * (failures + 1))
    assert sink.letters == [], lesson(expected="no dead letter: the job worked", got=f"{sink!r}", revisit=LETTER)


@pytest.mark.task(1)
@pytest.mark.parametrize("max_attempts", [1, 2, 3, 5])
async def test_a_job_that_always_fails_is_attempted_exactly_max_attempts_times(
    invoices, clock, sink, counter, max_attempts
):
    """A partner that never answers: exactly max_attempts attempts, then the record says failed."""
    invoices.will(ConnectionError("the partner is down"))
    record = a_record(clock)
    await run(record, invoices, clock, sink, counter, max_attempts=max_attempts)
    assert invoices.calls == max_attempts, lesson(
        expected=f"{max_attempts} attempt(s) in all, the first one included",
        got=f"{invoices.calls} attempt(s)",
        revisit=ATTEMPTS,
    )
    expect_run(
        record,
        status="failed",
        attempts=max_attempts,
        error="ConnectionError: the partner is down",
        finished_at=EPOCH + STEP * max_attempts,
    )


@pytest.mark.task(1)
async def test_a_job_that_used_up_its_attempts_becomes_one_dead_letter_with_the_last_reason(
    invoices, clock, sink, counter
):
    """Three different failures: one dead letter with the id, type, payload, the LAST reason, 3 attempts, when."""
    last = "the partner refused: 503 Service indisponible"
    invoices.will(
        ConnectionError("le partenaire ne répond pas"), TimeoutError("no answer in 30 s"), OSError(last), None
    )
    record = a_record(clock)
    await run(record, invoices, clock, sink, counter)
    assert len(sink.letters) == 1, lesson(
        expected="exactly one dead letter for the job", got=f"{len(sink.letters)}: {sink!r}", revisit=LETTER
    )
    letter = expect_type(sink.letters[0], deadletters.DeadLetter, what="the dead letter", revisit=LETTER)
    expect_type(letter.job_id, UUID, what="the letter's job_id", revisit=LETTER)
    expect_type(letter.payload, dict, what="the letter's payload", revisit=LETTER)
    expect_type(letter.attempts, int, what="the letter's attempts", revisit=LETTER)
    expect_type(letter.failed_at, datetime, what="the letter's failed_at", revisit=LETTER)
    got = (letter.job_id, letter.type, letter.payload, letter.attempts, shown_time(letter.failed_at))
    wanted = (JOB, INVOICE, PAYLOAD, 3, shown_time(EPOCH + STEP * 3))
    assert got == wanted, lesson(
        expected=f"job_id, type, payload, attempts, failed_at: {wanted}", got=f"{got}", revisit=LETTER
    )
    expect_type(letter.reason, str, what="the letter's reason", revisit=REASON)
    assert letter.reason == f"OSError: {last}", lesson(
        expected=f"the reason of the last failure, its class and message: 'OSError: {last}'",
        got=repr(letter.reason),
        revisit=REASON,
    )
    expect_run(record, status="failed", attempts=3, error=f"OSError: {last}", finished_at=EPOCH + STEP * 3)


@pytest.mark.task(1)
@pytest.mark.parametrize("transient_first", [False, True], ids=["at once", "after a transient failure"])
async def test_a_permanent_failure_is_not_tried_again(invoices, clock, sink, counter, transient_first):
    """A PermanentJobError ends the run at that attempt: failed, and a dead letter with the attempts made."""
    permanent = deadletters.PermanentJobError("customer 42 was deleted")
    invoices.will(*([ConnectionError("the partner hung up")] if transient_first else []), permanent, None)
    made = 2 if transient_first else 1
    record = a_record(clock)
    await run(record, invoices, clock, sink, counter, max_attempts=5, revisit=PERMANENT)
    assert invoices.calls == made, lesson(
        expected=f"{made} attempt(s): none after the permanent failure",
        got=f"{invoices.calls} attempt(s)",
        revisit=PERMANENT,
    )
    reason = "PermanentJobError: customer 42 was deleted"
    expect_run(record, status="failed", attempts=made, error=reason, finished_at=EPOCH + STEP * made)
    assert [(letter.reason, letter.attempts) for letter in sink.letters] == [(reason, made)], lesson(
        expected=f"one dead letter: reason {reason!r}, {made} attempt(s)", got=f"{sink!r}", revisit=PERMANENT
    )


@pytest.mark.task(1)
async def test_while_it_runs_the_record_says_running_and_counts_the_attempts_so_far(invoices, clock, sink, counter):
    """Seen during attempt 1, then attempt 2: running, attempts 1 then 2, no finish time yet."""
    invoices.will(ConnectionError("the partner hung up"), None)
    holds = [invoices.hold_next(), invoices.hold_next()]
    record = a_record(clock)
    running = asyncio.ensure_future(run(record, invoices, clock, sink, counter, revisit=RECORD))
    try:
        for attempt, hold in enumerate(holds, start=1):
            await until_held(hold, running, what=f"attempt {attempt} started", revisit=RECORD)
            expect_run(record, status="running", attempts=attempt, error=None, finished_at=None)
            hold.release()
        await running
    finally:
        for hold in holds:
            hold.release()
        await settled(running)
    expect_run(record, status="succeeded", attempts=2, error=None, finished_at=EPOCH + STEP * 2)


@pytest.mark.task(1)
async def test_a_cancelled_run_is_neither_tried_again_nor_dead_lettered(invoices, clock, sink, counter):
    """A shutdown cancels the run mid-attempt: it ends cancelled, with no second attempt and no dead letter."""
    hold = invoices.hold_next()
    record = a_record(clock)
    call = deadletters.run_job(
        record, dict(PAYLOAD), invoices, max_attempts=3, clock=clock, dead_letters=sink, stats=counter
    )
    running = asyncio.ensure_future(call)
    try:
        await until_held(hold, running, what="the first attempt started", revisit=CANCEL)
        running.cancel()
        await asyncio.wait({running}, timeout=BOUND)
        ended = "cancelled" if running.cancelled() else "normally" if running.done() else "not at all"
    finally:
        hold.release()
        await settled(running)
    assert ended == "cancelled", lesson(
        expected="the run ends cancelled, as whoever cancelled it (a shutdown) expects",
        got=f"it ended {ended}: the cancellation was caught",
        revisit=CANCEL,
    )
    assert invoices.calls == 1 and sink.letters == [] and counter.counted == [], lesson(
        expected="one attempt, no dead letter, nothing counted",
        got=f"{invoices.calls} attempt(s); {sink!r}; {counter!r}",
        revisit=CANCEL,
    )


# ---------------------------------------------------------------- task 2: a bounded store


@pytest.mark.task(2)
def test_an_empty_store_lists_nothing_and_has_nothing_to_take():
    """A new store: all() is an empty list, take() of any id is None."""
    store = deadletters.DeadLetterStore(capacity=3)
    assert listed(store, revisit=STORE) == [], lesson(
        expected="no letter in a new store", got=f"{store.all()}", revisit=STORE
    )
    taken = store.take(JOB)
    assert taken is None, lesson(expected="None: there is nothing to take", got=repr(taken), revisit=TAKE)


@pytest.mark.task(2)
def test_the_store_lists_its_letters_oldest_first():
    """Letters added 1, 2, 3 are listed 1, 2, 3."""
    store = deadletters.DeadLetterStore(capacity=5)
    letters = [a_letter(number) for number in (1, 2, 3)]
    for letter in letters:
        store.add(letter)
    got = listed(store, revisit=STORE)
    assert got == letters, lesson(
        expected="the letters 1, 2, 3, as they were added", got=f"letters {numbers(got)}", revisit=STORE
    )


@pytest.mark.task(2)
def test_take_removes_the_letter_and_returns_it_once():
    """take(id) hands the letter out and it is gone: a second take is None, the others stay, in order."""
    store = deadletters.DeadLetterStore(capacity=5)
    letters = [a_letter(number) for number in (1, 2, 3)]
    for letter in letters:
        store.add(letter)
    taken = store.take(letters[1].job_id)
    expect_type(taken, deadletters.DeadLetter, what="what take() returns for a letter in the store", revisit=TAKE)
    assert taken == letters[1], lesson(expected="letter 2", got=f"{taken}", revisit=TAKE)
    left = listed(store, revisit=TAKE)
    assert left == [letters[0], letters[2]], lesson(
        expected="letters 1 and 3 left, in that order: letter 2 is out", got=f"letters {numbers(left)}", revisit=TAKE
    )
    again = store.take(letters[1].job_id)
    assert again is None, lesson(
        expected="None for a second take of the same job: it was handed out already",
        got=repr(again),
        revisit=TAKE,
    )


@pytest.mark.task(2)
@pytest.mark.parametrize("capacity", [1, 3])
def test_at_its_capacity_the_store_keeps_every_letter_and_logs_nothing(caplog, capacity):
    """Exactly as many letters as the capacity: all of them kept, nothing dropped, nothing logged."""
    caplog.set_level(logging.DEBUG)
    store = deadletters.DeadLetterStore(capacity=capacity)
    letters = [a_letter(number) for number in range(1, capacity + 1)]
    for letter in letters:
        store.add(letter)
    got = listed(store, revisit=BOUNDED)
    assert got == letters, lesson(
        expected=f"all {capacity} letter(s): a store is full only past its capacity",
        got=f"letters {numbers(got)}",
        revisit=BOUNDED,
    )
    assert serious(caplog) == [], lesson(
        expected="nothing logged: nothing was dropped", got=shown(serious(caplog)), revisit=DROP_LOG
    )


@pytest.mark.task(2)
@pytest.mark.parametrize("capacity", [1, 3])
def test_past_its_capacity_the_store_drops_the_oldest_letter_and_logs_it_at_error(caplog, capacity):
    """Two letters past the capacity: the two oldest are dropped, each in one ERROR record naming its job."""
    caplog.set_level(logging.DEBUG)
    store = deadletters.DeadLetterStore(capacity=capacity)
    letters = [a_letter(number) for number in range(1, capacity + 3)]
    for letter in letters:
        store.add(letter)
    got = listed(store, revisit=BOUNDED)
    assert got == letters[2:], lesson(
        expected=f"the {capacity} newest letter(s), {numbers(letters[2:])}: the oldest go first",
        got=f"letters {numbers(got)}",
        revisit=BOUNDED,
    )
    records = serious(caplog)
    assert len(records) == 2, lesson(
        expected="two records at WARNING or above, one per letter dropped", got=shown(records), revisit=DROP_LOG
    )
    for record, dropped in zip(records, letters[:2], strict=True):
        assert record.levelno == logging.ERROR and record.name == deadletters.logger.name, lesson(
            expected=f"an ERROR record from the module's logger, {deadletters.logger.name!r}",
            got=f"{record.levelname} from {record.name!r}",
            revisit=DROP_LOG,
        )
        assert str(dropped.job_id) in record.getMessage(), lesson(
            expected=f"a message that names the job dropped, {dropped.job_id}",
            got=repr(record.getMessage()),
            revisit=DROP_LOG,
        )


@pytest.mark.task(2)
def test_by_default_the_store_keeps_100_letters():
    """With no capacity given: 100 letters are kept; the 101st makes the first one go."""
    store = deadletters.DeadLetterStore()
    letters = [a_letter(number) for number in range(1, 102)]
    for letter in letters[:100]:
        store.add(letter)
    got = listed(store, revisit=BOUNDED)
    assert got == letters[:100], lesson(
        expected="letters 1 to 100, all kept: the default capacity is 100",
        got=f"{len(got)} letters, the first {numbers(got[:1])}, the last {numbers(got[-1:])}",
        revisit=BOUNDED,
    )
    store.add(letters[100])
    got = listed(store, revisit=BOUNDED)
    assert got == letters[1:], lesson(
        expected="letters 2 to 101: the 101st made room by dropping letter 1",
        got=f"{len(got)} letters, the first {numbers(got[:1])}, the last {numbers(got[-1:])}",
        revisit=BOUNDED,
    )


@pytest.mark.task(2)
def test_a_letter_taken_out_makes_room(caplog):
    """A full store of 3, one taken: the next letter fits, nothing is dropped or logged."""
    caplog.set_level(logging.DEBUG)
    store = deadletters.DeadLetterStore(capacity=3)
    letters = [a_letter(number) for number in (1, 2, 3, 4)]
    for letter in letters[:3]:
        store.add(letter)
    store.take(letters[1].job_id)
    store.add(letters[3])
    got = listed(store, revisit=BOUNDED)
    assert got == [letters[0], letters[2], letters[3]], lesson(
        expected="letters 1, 3, 4: the room letter 2 left was used", got=f"letters {numbers(got)}", revisit=BOUNDED
    )
    assert serious(caplog) == [], lesson(
        expected="nothing logged: nothing was dropped", got=shown(serious(caplog)), revisit=DROP_LOG
    )


# ---------------------------------------------------------------- task 3: rates per type


def rates_of(stats: Any, *, revisit: str) -> dict[str, Any]:
    """``stats.rates()``, checked to be a dict; a division by zero is explained, not just raised."""
    __tracebackhide__ = True
    try:
        rates = stats.rates()
    except ZeroDivisionError as error:
        raise AssertionError(
            lesson(
                expected="the rates of every type, and no rate at all (None) for a type with no finished run",
                got=f"{describe_error(error)}: a count was divided by a type's finished runs, and there were none",
                revisit=ZERO,
            )
        ) from None
    return expect_type(rates, dict, what="what rates() returns", revisit=revisit)


@pytest.mark.task(3)
def test_with_no_finished_run_a_type_has_no_rate():
    """Stats of two types, nothing counted: each listed with 0 and 0, and no rate (None), without a crash."""
    stats = deadletters.Stats([INVOICE, IMAGE])
    rates = rates_of(stats, revisit=ZERO)
    assert sorted(rates) == sorted([INVOICE, IMAGE]), lesson(
        expected=f"both types listed, {INVOICE} and {IMAGE}, though none has run", got=f"{sorted(rates)}", revisit=ZERO
    )
    for job_type in (INVOICE, IMAGE):
        expect_rates(rates[job_type], succeeded=0, failed=0, what=job_type, revisit=ZERO)
    none = rates_of(deadletters.Stats(), revisit=ZERO)
    assert none == {}, lesson(expected="no type, no rates: {}", got=f"{none}", revisit=ZERO)


@pytest.mark.task(3)
def test_rates_are_each_types_successes_and_failures_over_its_own_finished_runs():
    """send_invoice 2 of 3 succeeded; resize_image 3 failed; export_report nothing: each its own rates."""
    stats = deadletters.Stats([INVOICE, IMAGE, "export_report"])
    stats.add_success(INVOICE)
    stats.add_failure(IMAGE)
    stats.add_failure(INVOICE)
    stats.add_failure(IMAGE)
    stats.add_success(INVOICE)
    stats.add_failure(IMAGE)
    rates = rates_of(stats, revisit=RATES)
    assert sorted(rates) == sorted([INVOICE, IMAGE, "export_report"]), lesson(
        expected="the three types", got=f"{sorted(rates)}", revisit=RATES
    )
    expect_rates(rates[INVOICE], succeeded=2, failed=1, what=INVOICE, revisit=RATES)
    expect_rates(rates[IMAGE], succeeded=0, failed=3, what=IMAGE, revisit=RATES)
    expect_rates(rates["export_report"], succeeded=0, failed=0, what="export_report", revisit=ZERO)


@pytest.mark.task(3)
def test_a_type_counted_for_the_first_time_is_added():
    """A type the stats were not given is added when first counted, success or failure."""
    stats = deadletters.Stats()
    stats.add_success("export_report")
    stats.add_failure("sync_calendar")
    rates = rates_of(stats, revisit=RATES)
    assert sorted(rates) == ["export_report", "sync_calendar"], lesson(
        expected="export_report and sync_calendar", got=f"{sorted(rates)}", revisit=RATES
    )
    expect_rates(rates["export_report"], succeeded=1, failed=0, what="export_report", revisit=RATES)
    expect_rates(rates["sync_calendar"], succeeded=0, failed=1, what="sync_calendar", revisit=RATES)


@pytest.mark.task(3)
@pytest.mark.parametrize(
    ("script", "counted"),
    [
        ([None], "success"),
        ([ConnectionError("down"), ConnectionError("down"), None], "success"),
        ([ConnectionError("down")], "failure"),
        (["permanent"], "failure"),
    ],
    ids=["works at once", "works at the third attempt", "fails every attempt", "fails for good"],
)
async def test_a_run_is_counted_once_when_it_ends_under_its_type(  # noqa: PLR0913, PLR0917
    images, clock, sink, counter, script, counted
):
    """Whatever the attempts, one run is one count, of its outcome, under the job's own type."""
    outcomes = [deadletters.PermanentJobError("the image is gone") if step == "permanent" else step for step in script]
    images.will(*outcomes)
    await run(a_record(clock, job_type=IMAGE), images, clock, sink, counter, revisit=COUNTS)
    assert counter.counted == [(counted, IMAGE)], lesson(
        expected=f"one {counted} of {IMAGE}, counted when the run ended",
        got=f"{counter!r}",
        revisit=COUNTS,
    )


# ---------------------------------------------------------------- task 4: expire finished records


@pytest.mark.task(4)
@pytest.mark.parametrize(
    ("ttl", "age", "evicted"),
    [
        (HOUR, timedelta(days=1, minutes=30), True),
        (HOUR, timedelta(days=3), True),
        (2 * 86400.0, timedelta(days=1, hours=23), False),
        (2 * 86400.0, timedelta(days=2, seconds=1), True),
        (90.0, timedelta(seconds=89), False),
        (90.0, timedelta(seconds=91), True),
    ],
    ids=[
        "1 h, 1 day 30 min old",
        "1 h, 3 days old",
        "2 days, 47 h old",
        "2 days, 2 days 1 s old",
        "90 s, 89 s",
        "91 s",
    ],
)
def test_the_time_to_live_is_a_number_of_seconds_whatever_the_age(clock, ttl, age, evicted):
    """Seconds, not milliseconds or minutes; and an age of days counts its days (a day is 86400 s)."""
    done_at = EPOCH
    records = {JOB: finished(EPOCH, "succeeded", finished_at=done_at)}
    gone = evict(records, done_at + age, ttl, revisit=UNITS)
    assert gone == ([JOB] if evicted else []), lesson(
        expected=f"{'evicted' if evicted else 'kept'}: {age.total_seconds():g} s old, time to live {ttl:g} s",
        got=f"{'evicted' if gone else 'kept'}",
        revisit=UNITS,
    )


@pytest.mark.task(4)
def test_the_age_of_a_record_counts_from_when_its_job_finished(clock):
    """Created 2 h before it finished, looked at 30 min after: younger than 1 h, so kept."""
    done_at = EPOCH + timedelta(hours=2)
    records = {JOB: finished(EPOCH, "succeeded", finished_at=done_at)}
    evicted = evict(records, done_at + timedelta(minutes=30), HOUR, revisit=TTL)
    assert evicted == [] and list(records) == [JOB], lesson(
        expected="kept: it finished 30 min ago, under its time to live of 1 h (it was created 2 h 30 min ago)",
        got=f"evicted {evicted}",
        revisit=TTL,
    )


@pytest.mark.task(4)
@pytest.mark.parametrize("status", ["succeeded", "failed"])
@pytest.mark.parametrize("ttl", [HOUR, 90.0, 0.5], ids=["1 h", "90 s", "half a second"])
def test_a_finished_record_is_kept_at_exactly_its_ttl_and_evicted_just_after(clock, status, ttl):
    """Aged exactly the time to live: kept. A millisecond older: evicted, and its id returned."""
    done_at = EPOCH + timedelta(minutes=10)
    records = {JOB: finished(EPOCH, status, finished_at=done_at)}
    kept = evict(records, done_at + timedelta(seconds=ttl), ttl, revisit=TTL)
    assert kept == [] and list(records) == [JOB], lesson(
        expected=f"a {status} record aged exactly {ttl:g} s kept, with a time to live of {ttl:g} s",
        got=f"evicted {kept}; left {list(records)}",
        revisit=TTL,
    )
    gone = evict(records, done_at + timedelta(seconds=ttl, milliseconds=1), ttl, revisit=TTL)
    assert gone == [JOB] and records == {}, lesson(
        expected=f"evicted, and its id returned, 1 ms past its time to live of {ttl:g} s",
        got=f"evicted {gone}; left {list(records)}",
        revisit=TTL,
    )


@pytest.mark.task(4)
@pytest.mark.parametrize("status", ["pending", "running"])
def test_a_pending_or_running_record_is_never_evicted(clock, status):
    """Accepted 30 days ago and not finished: kept, whatever the time to live."""
    record = deadletters.JobRecord(job_id=JOB, type=INVOICE, status=deadletters.Status(status), created_at=EPOCH)
    records = {JOB: record}
    for ttl in (HOUR, 0.5):
        evicted = evict(records, EPOCH + timedelta(days=30), ttl, revisit=NEVER)
        assert evicted == [] and records == {JOB: record}, lesson(
            expected=f"the {status} record kept, 30 days after it was accepted, with a time to live of {ttl:g} s",
            got=f"evicted {evicted}",
            revisit=NEVER,
        )


@pytest.mark.task(4)
def test_evict_expired_removes_only_the_expired_records_and_returns_their_ids_in_order(clock):
    """Five records: the two finished over an hour ago go, in order; the others stay, untouched, in order."""
    ids = [UUID(f"00000000-0000-4000-8000-{number:012d}") for number in range(1, 6)]
    now = EPOCH + timedelta(hours=5)
    records = {
        ids[0]: finished(EPOCH, "succeeded", finished_at=EPOCH + timedelta(hours=1), job_id=ids[0]),
        ids[1]: finished(EPOCH, "failed", finished_at=now - timedelta(minutes=5), job_id=ids[1]),
        ids[2]: deadletters.JobRecord(job_id=ids[2], type=INVOICE, status=deadletters.Status.RUNNING, created_at=EPOCH),
        ids[3]: finished(EPOCH, "failed", finished_at=EPOCH + timedelta(hours=2), job_id=ids[3]),
        ids[4]: deadletters.JobRecord(job_id=ids[4], type=INVOICE, status=deadletters.Status.PENDING, created_at=EPOCH),
    }
    before = dict(records)
    evicted = evict(records, now, HOUR, revisit=TTL)
    assert evicted == [ids[0], ids[3]], lesson(
        expected=f"the ids of records 1 and 4, in that order: {[str(ids[0]), str(ids[3])]}",
        got=f"{[str(job_id) for job_id in evicted]}",
        revisit=TTL,
    )
    left = list(records)
    assert left == [ids[1], ids[2], ids[4]] and all(records[key] is before[key] for key in left), lesson(
        expected="records 2, 3 and 5 left in the dict, in order, the same objects",
        got=f"{[str(job_id) for job_id in left]}",
        revisit=TTL,
    )


# ---------------------------------------------------------------- task 5: the app: jobs, records, rates


@pytest.mark.task(5)
async def test_a_job_is_accepted_with_202_and_its_pending_record(api, clock, ids):
    """90 s after the app was built, a job comes: 202 with its record: the first id, pending, created then."""
    clock.advance(90)
    exchange = await api.post("/jobs", json={"type": INVOICE, "payload": PAYLOAD}, revisit=SUBMIT)
    expect_status(exchange, 202, expected="202 Accepted: the job is taken, not done yet", revisit=SUBMIT)
    expect_record_json(
        json_object(exchange, revisit=SUBMIT),
        job_id=ids.script[0],
        status="pending",
        attempts=0,
        error=None,
        created_at=EPOCH + timedelta(seconds=90),
        finished_at=None,
        revisit=SUBMIT,
    )


@pytest.mark.task(5)
async def test_the_job_runs_after_the_response_with_its_payload_and_its_record_shows_the_outcome(
    api, timeline, invoices, clock, ids
):
    """The handler gets the payload after the 202 went out; then GET /jobs/{id} says succeeded, 1 attempt."""
    await api.submit()
    timeline.expect_order(
        RESPONSE_COMPLETE,
        ATTEMPT_STARTED,
        why="The job must run, and only after the response is complete.",
        revisit="task 5: the run is queued as the request's background task, so it starts once the answer "
        "is out (README: Serve jobs, records and rates)",
    )
    assert invoices.payloads == [PAYLOAD], lesson(
        expected=f"one attempt with the payload {PAYLOAD}", got=f"{invoices!r}", revisit=SUBMIT
    )
    body = await api.record(ids.script[0], revisit=SUBMIT)
    expect_record_json(
        body,
        job_id=ids.script[0],
        status="succeeded",
        attempts=1,
        error=None,
        created_at=EPOCH,
        finished_at=EPOCH + STEP,
        revisit=SUBMIT,
    )


@pytest.mark.task(5)
async def test_a_job_without_a_payload_is_given_an_empty_one(api, invoices):
    """{"type": "send_invoice"} alone is a job: its handler is given {}."""
    exchange = await api.post("/jobs", json={"type": INVOICE}, revisit=VALIDATE)
    expect_status(exchange, 202, expected="202 Accepted: the payload is optional", revisit=VALIDATE)
    assert invoices.payloads == [{}], lesson(
        expected="one attempt, given an empty payload {}", got=f"{invoices!r}", revisit=VALIDATE
    )


@pytest.mark.task(5)
async def test_a_failing_job_is_attempted_three_times_by_default_and_its_record_says_why(api, invoices, ids):
    """The app's default: 3 attempts; the record then says failed, 3 attempts, and the reason."""
    invoices.will(ConnectionError("the partner is down"))
    await api.submit()
    assert invoices.calls == 3, lesson(
        expected="3 attempts: the app's default", got=f"{invoices.calls} attempt(s)", revisit=SUBMIT
    )
    body = await api.record(ids.script[0], revisit=SUBMIT)
    expect_record_json(
        body,
        job_id=ids.script[0],
        status="failed",
        attempts=3,
        error="ConnectionError: the partner is down",
        created_at=EPOCH,
        finished_at=EPOCH + STEP * 3,
        revisit=SUBMIT,
    )


@pytest.mark.task(5)
async def test_the_app_makes_as_many_attempts_as_it_is_given(build, timeline, invoices):
    """Built with max_attempts=5, the app tries a failing job 5 times."""
    invoices.will(ConnectionError("the partner is down"))
    await Api(build(max_attempts=5), timeline).submit()
    assert invoices.calls == 5, lesson(
        expected="5 attempts, as the app was told", got=f"{invoices.calls} attempt(s)", revisit=SUBMIT
    )


BAD_JOBS = {
    "no type": b'{"payload": {}}',
    "type null": b'{"type": null}',
    "type a number": b'{"type": 7}',
    "type empty": b'{"type": ""}',
    "type unknown": b'{"type": "send_email"}',
    "type not ASCII": '{"type": "sénd_invoice"}'.encode(),
    "type with a space": b'{"type": " send_invoice"}',
    "type in capitals": b'{"type": "SEND_INVOICE"}',
    "payload a list": b'{"type": "send_invoice", "payload": [7]}',
    "payload a text": b'{"type": "send_invoice", "payload": "invoice 7"}',
    "payload null": b'{"type": "send_invoice", "payload": null}',
    "payload a number": b'{"type": "send_invoice", "payload": 7}',
    "an array": b'["send_invoice"]',
    "a string": b'"send_invoice"',
    "null": b"null",
    "not JSON": b"type=send_invoice",
    "empty": b"",
}


@pytest.mark.task(5)
@pytest.mark.parametrize("content", BAD_JOBS.values(), ids=BAD_JOBS.keys())
async def test_a_bad_job_is_a_422_runs_nothing_and_takes_no_id(api, invoices, images, ids, content):
    """A missing or unknown type, a payload that is no object, a body that is no object: 422, nothing runs."""
    exchange = await api.post("/jobs", content=content, headers={"content-type": "application/json"}, revisit=VALIDATE)
    expect_status(exchange, 422, expected=f"422 for the body {content[:60]!r}", revisit=VALIDATE)
    assert invoices.calls == 0 and images.calls == 0, lesson(
        expected="nothing run for a refused job", got=f"{invoices!r}; {images!r}", revisit=VALIDATE
    )
    body = await api.submit(revisit=VALIDATE)
    assert body.get("job_id") == str(ids.script[0]), lesson(
        expected=f"the next valid job gets the first id, {ids.script[0]}: a refused job took none",
        got=f"job_id {body.get('job_id')!r}",
        revisit=VALIDATE,
    )


@pytest.mark.task(5)
@pytest.mark.parametrize("job_type", ["send_email", "sénd_invoice"])
async def test_an_unknown_job_type_is_a_422_that_names_it(api, job_type):
    """A type the app has no handler for: 422, and the detail says which type, as the client wrote it."""
    exchange = await api.post("/jobs", json={"type": job_type, "payload": {}}, revisit=VALIDATE)
    expect_status(exchange, 422, expected=f"422 for the job type {job_type!r}", revisit=VALIDATE)
    expect_json(exchange, {"detail": f"no job type {job_type!r}"}, revisit=VALIDATE)


@pytest.mark.task(5)
async def test_an_unknown_job_is_a_404_and_a_malformed_id_a_422(api, ids):
    """A well-formed id nobody issued: 404 naming it. A path that is no UUID: 422."""
    await api.submit()
    unknown = ids.script[7]
    exchange = await api.get(f"/jobs/{unknown}", revisit=LOOKUP)
    expect_status(exchange, 404, expected=f"404 for job {unknown}, which was never issued", revisit=LOOKUP)
    expect_json(exchange, {"detail": f"no job {unknown}"}, revisit=LOOKUP)
    for bad in ("42", "abc", "00000000-0000-4000-8000", "jöb"):
        exchange = await api.get(f"/jobs/{bad}", revisit=LOOKUP)
        expect_status(exchange, 422, expected=f"422 for /jobs/{bad}: not an id at all", revisit=LOOKUP)


@pytest.mark.task(5)
async def test_the_jobs_are_listed_in_the_order_they_were_accepted(api, invoices, ids):
    """GET /jobs: [] at first; then every record kept, in the order accepted, each as it stands."""
    exchange = await api.get("/jobs", revisit=SUBMIT)
    expect_status(exchange, 200, revisit=SUBMIT)
    expect_json(exchange, [], expected="[]: no job yet", revisit=SUBMIT)
    invoices.will(None, ConnectionError("down"), ConnectionError("down"), ConnectionError("down"), None)
    for _ in range(3):
        await api.submit()
    exchange = await api.get("/jobs", revisit=SUBMIT)
    jobs = expect_type(exchange.json(), list, what="GET /jobs", revisit=SUBMIT, items=(dict,))
    got = [(job.get("job_id"), job.get("status"), job.get("attempts")) for job in jobs]
    wanted = [
        (str(ids.script[0]), "succeeded", 1),
        (str(ids.script[1]), "failed", 3),
        (str(ids.script[2]), "succeeded", 1),
    ]
    assert got == wanted, lesson(expected=f"{wanted}", got=f"{got}", revisit=SUBMIT)


@pytest.mark.task(5)
async def test_each_app_has_records_of_its_own(build, timeline, ids):
    """Two apps built in one process: a job accepted by the first is unknown to the second."""
    first, second = Api(build(), timeline), Api(build(), timeline)
    await first.submit()
    exchange = await second.get("/jobs", revisit=OWN)
    expect_json(exchange, [], expected="[]: the second app has accepted no job", revisit=OWN)
    exchange = await second.get(f"/jobs/{ids.script[0]}", revisit=OWN)
    expect_status(exchange, 404, expected=f"404 from the second app for job {ids.script[0]}", revisit=OWN)


async def expect_gone(api: Api, job_id: UUID, *, revisit: str) -> None:
    __tracebackhide__ = True
    exchange = await api.get(f"/jobs/{job_id}", revisit=revisit)
    expect_status(exchange, 404, expected=f"404 for job {job_id}: its record expired", revisit=revisit)
    listed_jobs = (await api.get("/jobs", revisit=revisit)).json()
    assert listed_jobs == [], lesson(
        expected="GET /jobs: [], the record is gone", got=f"{listed_jobs}", revisit=revisit
    )


@pytest.mark.task(5)
async def test_a_finished_record_is_kept_an_hour_by_default_then_forgotten(api, clock, ids):
    """Finished at start + 5 s: there at exactly an hour later, listed too; 1 ms later, a 404 and not listed."""
    await api.submit()
    clock.advance(HOUR)  # the job finished when its one attempt ended: an hour ago, to the moment
    body = await api.record(ids.script[0], revisit=SWEEP)
    jobs = (await api.get("/jobs", revisit=SWEEP)).json()
    assert body.get("status") == "succeeded" and len(jobs) == 1, lesson(
        expected="the record still there, an hour to the moment after the job finished", got=f"{jobs}", revisit=SWEEP
    )
    clock.advance(0.001)
    await expect_gone(api, ids.script[0], revisit=SWEEP)


@pytest.mark.task(5)
async def test_the_time_to_live_given_to_the_app_is_used_at_each_request(build, timeline, clock, ids):
    """Built with ttl_seconds=30: there 30 s after the job finished, gone 1 ms after, by the clock of that request."""
    api = Api(build(ttl_seconds=30.0), timeline)
    clock.advance(60)  # the app was built a minute before the job came
    await api.submit()
    clock.advance(30)
    await api.record(ids.script[0], revisit=SWEEP)
    clock.advance(0.001)
    await expect_gone(api, ids.script[0], revisit=SWEEP)


@pytest.mark.task(5)
async def test_a_pending_job_is_never_forgotten(app, timeline, clock, ids):
    """The server is busy, the job waits 30 days without starting: its record is still there, pending."""
    gate = BackgroundGate(timeline)
    api = Api(app, timeline)
    held = timeline.start(gate.wrap(app), "POST", "/jobs", json={"type": INVOICE, "payload": PAYLOAD})
    try:
        await within_bound(timeline.wait_for(BACKGROUND_HELD), revisit=SUBMIT, expected="the POST answered")
        clock.advance(30 * 86400)
        body = await api.record(ids.script[0], revisit=NEVER_API)
        assert body.get("status") == "pending", lesson(expected="status pending", got=f"{body}", revisit=NEVER_API)
    finally:
        gate.open()
    await within_bound(held, revisit=SUBMIT)


@pytest.mark.task(5)
async def test_a_running_job_is_never_forgotten_and_expires_an_hour_after_it_finished(
    app, timeline, invoices, clock, ids
):
    """An attempt that runs 30 days: the record stays, running; it goes an hour after the job finished."""
    hold = invoices.hold_next()
    api = Api(app, timeline)
    running = timeline.start(app, "POST", "/jobs", json={"type": INVOICE, "payload": PAYLOAD})
    try:
        await until_held(hold, running, what="the job's first attempt started", revisit=SUBMIT)
        clock.advance(30 * 86400)
        body = await api.record(ids.script[0], revisit=NEVER_API)
        assert body.get("status") == "running", lesson(expected="status running", got=f"{body}", revisit=NEVER_API)
    finally:
        hold.release()
    await within_bound(running, revisit=SUBMIT)
    clock.advance(HOUR)
    body = await api.record(ids.script[0], revisit=SWEEP)
    assert body.get("status") == "succeeded", lesson(expected="status succeeded", got=f"{body}", revisit=SWEEP)
    clock.advance(0.001)
    await expect_gone(api, ids.script[0], revisit=SWEEP)


@pytest.mark.task(5)
async def test_the_stats_list_every_job_type_with_no_rate_before_any_run(api):
    """GET /stats before any job: both types, 0 and 0, rates null."""
    stats = await api.stats()
    assert sorted(stats) == sorted([INVOICE, IMAGE]), lesson(
        expected=f"the two job types the app runs, {INVOICE} and {IMAGE}", got=f"{stats}", revisit=STATS
    )
    for job_type in (INVOICE, IMAGE):
        expect_rates(stats[job_type], succeeded=0, failed=0, what=job_type, revisit=STATS)


@pytest.mark.task(5)
async def test_the_stats_count_the_finished_runs_of_each_type(api, invoices, images):
    """Two invoices sent, one failed for good; two images failed: each type's own counts and rates."""
    invoices.will(None, None, deadletters.PermanentJobError("customer deleted"))
    images.will(ConnectionError("the resizer is down"))
    for _ in range(3):
        await api.submit(INVOICE)
    for _ in range(2):
        await api.submit(IMAGE)
    stats = await api.stats()
    expect_rates(stats.get(INVOICE), succeeded=2, failed=1, what=INVOICE, revisit=STATS)
    expect_rates(stats.get(IMAGE), succeeded=0, failed=2, what=IMAGE, revisit=STATS)


@pytest.mark.task(5)
async def test_a_running_job_is_not_counted_until_it_ends(app, timeline, invoices):
    """While a job runs, it is in no count; once it ends, it is."""
    hold = invoices.hold_next()
    api = Api(app, timeline)
    running = timeline.start(app, "POST", "/jobs", json={"type": INVOICE, "payload": PAYLOAD})
    try:
        await until_held(hold, running, what="the job's first attempt started", revisit=SUBMIT)
        stats = await api.stats()
        expect_rates(stats.get(INVOICE), succeeded=0, failed=0, what=f"{INVOICE}, while it runs", revisit=STATS)
    finally:
        hold.release()
    await within_bound(running, revisit=SUBMIT)
    stats = await api.stats()
    expect_rates(stats.get(INVOICE), succeeded=1, failed=0, what=f"{INVOICE}, once it ended", revisit=STATS)


@pytest.mark.task(5)
async def test_the_rates_outlive_the_records_they_count(api, invoices, clock, ids):
    """Two jobs ran; their records expire; the rates stay as they were."""
    invoices.will(None, ConnectionError("down"))
    await api.submit()
    await api.submit()
    clock.advance(2 * HOUR)
    await expect_gone(api, ids.script[0], revisit=SWEEP)
    stats = await api.stats(revisit=COUNTERS)
    expect_rates(stats.get(INVOICE), succeeded=1, failed=1, what=f"{INVOICE}, its records gone", revisit=COUNTERS)


# ---------------------------------------------------------------- task 6: list and replay the dead letters


async def dead_job(api: Api, invoices: FakeHandler, *, payload: dict[str, Any] | None = None) -> dict[str, Any]:
    """Submit a job whose 3 attempts all fail; its record, as the 202 gave it."""
    invoices.will(ConnectionError("the partner is down"), ConnectionError("the partner is down"), OSError("503"), None)
    return await api.submit(payload=payload, revisit=LETTERS)


def expect_letter_json(  # noqa: PLR0913 - every field of a letter
    body: object, *, job_id: UUID, reason: str, attempts: int, failed_at: datetime, payload: object, revisit: str
) -> None:
    __tracebackhide__ = True
    letter = expect_type(body, dict, what="a dead letter, a JSON object", revisit=revisit)
    assert set(letter) == LETTER_FIELDS, lesson(
        expected=f"a dead letter with exactly the fields {sorted(LETTER_FIELDS)}", got=f"{letter}", revisit=revisit
    )
    got = {key: letter[key] for key in ("job_id", "type", "payload", "reason", "attempts")}
    got["failed_at"] = shown_time(moment(letter["failed_at"], what="failed_at", revisit=revisit))
    wanted = {
        "job_id": str(job_id),
        "type": INVOICE,
        "payload": payload,
        "reason": reason,
        "attempts": attempts,
        "failed_at": shown_time(failed_at),
    }
    expect_type(letter["attempts"], int, what="attempts", revisit=revisit)
    assert got == wanted, lesson(expected=f"{wanted}", got=f"{got}", revisit=revisit)


@pytest.mark.task(6)
async def test_with_no_failed_job_there_is_no_dead_letter(api):
    """GET /dead-letters: [] at first, and still [] after a job that worked."""
    assert await api.letters() == [], lesson(expected="[]", got="a letter", revisit=LETTERS)
    await api.submit()
    letters = await api.letters()
    assert letters == [], lesson(expected="[]: the job worked", got=f"{letters}", revisit=LETTERS)


@pytest.mark.task(6)
async def test_a_job_that_failed_for_good_is_listed_with_its_payload_reason_and_attempts(api, invoices, ids):
    """One letter: the job's id, type, payload as sent (accents and all), the last reason, 3 attempts, when."""
    payload = {"invoice": 8, "client": "Ærøskøbing Bådværft", "lines": [{"item": "café", "qty": 2}]}
    await dead_job(api, invoices, payload=payload)
    letters = await api.letters()
    assert len(letters) == 1, lesson(expected="one dead letter", got=f"{letters}", revisit=LETTERS)
    expect_letter_json(
        letters[0],
        job_id=ids.script[0],
        reason="OSError: 503",
        attempts=3,
        failed_at=EPOCH + STEP * 3,
        payload=payload,
        revisit=LETTERS,
    )


@pytest.mark.task(6)
async def test_dead_letters_are_listed_oldest_first(api, invoices, ids):
    """Two jobs failed in turn: the first one's letter comes first."""
    await dead_job(api, invoices)
    await dead_job(api, invoices)
    letters = await api.letters()
    got = [letter.get("job_id") for letter in letters]
    assert got == [str(ids.script[0]), str(ids.script[1])], lesson(
        expected=f"{[str(ids.script[0]), str(ids.script[1])]}, the oldest first", got=f"{got}", revisit=LETTERS
    )


@pytest.mark.task(6)
async def test_a_replay_takes_the_letter_out_and_runs_the_job_again(api, invoices, clock, ids):
    """202 with the job's new pending record; the letter is gone; the job runs once more, with its payload."""
    await dead_job(api, invoices)
    clock.advance(600)
    exchange = await api.post(f"/dead-letters/{ids.script[0]}/replay", revisit=REPLAY)
    expect_status(exchange, 202, expected="202 Accepted: the job will run again", revisit=REPLAY)
    replayed_at = EPOCH + STEP * 3 + timedelta(seconds=600)
    expect_record_json(
        json_object(exchange, revisit=REPLAY),
        job_id=ids.script[0],
        status="pending",
        attempts=0,
        error=None,
        created_at=replayed_at,
        finished_at=None,
        revisit=REPLAY,
    )
    assert invoices.payloads == [PAYLOAD] * 4, lesson(
        expected=f"one more attempt, the 4th, with the same payload {PAYLOAD}", got=f"{invoices!r}", revisit=REPLAY
    )
    letters = await api.letters(revisit=REPLAY)
    assert letters == [], lesson(expected="no dead letter left", got=f"{letters}", revisit=REPLAY)
    body = await api.record(ids.script[0], revisit=REPLAY)
    expect_record_json(
        body,
        job_id=ids.script[0],
        status="succeeded",
        attempts=1,
        error=None,
        created_at=replayed_at,
        finished_at=replayed_at + STEP,
        revisit=REPLAY,
    )
    stats = await api.stats(revisit=REPLAY)
    expect_rates(
        stats.get(INVOICE), succeeded=1, failed=1, what=f"{INVOICE}: the failed run, the replayed one", revisit=REPLAY
    )


@pytest.mark.task(6)
async def test_a_second_replay_is_a_404_and_runs_nothing(api, invoices, ids):
    """Replayed once, the job is no longer a dead letter: a second replay is a 404 naming it."""
    await dead_job(api, invoices)
    first = await api.post(f"/dead-letters/{ids.script[0]}/replay", revisit=REPLAY)
    expect_status(first, 202, revisit=REPLAY)
    second = await api.post(f"/dead-letters/{ids.script[0]}/replay", revisit=ONCE)
    expect_status(second, 404, expected="404 for the second replay: the letter was taken by the first", revisit=ONCE)
    expect_json(second, {"detail": f"no dead letter for job {ids.script[0]}"}, revisit=ONCE)
    assert invoices.calls == 4, lesson(
        expected="4 attempts in all: 3, then 1 for the one replay", got=f"{invoices.calls}", revisit=ONCE
    )


@pytest.mark.task(6)
async def test_a_second_replay_while_the_first_still_runs_is_a_404(app, timeline, invoices, ids):
    """The first replay's run is held; a second replay comes meanwhile: 404, and the job runs only once."""
    api = Api(app, timeline)
    await dead_job(api, invoices)
    hold = invoices.hold_next()
    path = f"/dead-letters/{ids.script[0]}/replay"
    first = timeline.start(app, "POST", path)
    try:
        await until_held(hold, first, what="the replayed job's attempt started", revisit=REPLAY)
        second = await api.post(path, revisit=ONCE)
        expect_status(second, 404, expected="404 for a replay while the first replay of the job runs", revisit=ONCE)
    finally:
        hold.release()
    done = await within_bound(first, revisit=REPLAY)
    expect_status(done, 202, revisit=REPLAY)
    assert invoices.calls == 4, lesson(
        expected="4 attempts in all: 3, then 1 for the one replay", got=f"{invoices.calls}", revisit=ONCE
    )


@pytest.mark.task(6)
async def test_only_a_dead_letter_can_be_replayed_and_a_malformed_id_is_a_422(api, invoices, ids):
    """An id never issued, a job that worked: 404 naming it. A path that is no UUID: 422. Nothing runs."""
    await api.submit()
    for job_id in (ids.script[0], ids.script[9]):
        exchange = await api.post(f"/dead-letters/{job_id}/replay", revisit=NO_LETTER)
        expect_status(exchange, 404, expected=f"404: job {job_id} has no dead letter", revisit=NO_LETTER)
        expect_json(exchange, {"detail": f"no dead letter for job {job_id}"}, revisit=NO_LETTER)
    for bad in ("42", "abc", "jöb"):
        exchange = await api.post(f"/dead-letters/{bad}/replay", revisit=NO_LETTER)
        expect_status(exchange, 422, expected=f"422 for {bad!r}: not an id at all", revisit=NO_LETTER)
    assert invoices.calls == 1, lesson(expected="nothing replayed", got=f"{invoices.calls} attempts", revisit=NO_LETTER)


@pytest.mark.task(6)
async def test_a_replayed_job_that_fails_again_is_dead_lettered_again(api, invoices, clock, ids):
    """The partner is still down: after the replay's 3 attempts, one letter again, with the new time."""
    invoices.will(ConnectionError("still down"))
    await api.submit()
    clock.advance(600)
    exchange = await api.post(f"/dead-letters/{ids.script[0]}/replay", revisit=REPLAY)
    expect_status(exchange, 202, revisit=REPLAY)
    letters = await api.letters(revisit=REPLAY)
    assert len(letters) == 1, lesson(expected="one dead letter, the replay's", got=f"{letters}", revisit=REPLAY)
    expect_letter_json(
        letters[0],
        job_id=ids.script[0],
        reason="ConnectionError: still down",
        attempts=3,
        failed_at=EPOCH + STEP * 6 + timedelta(seconds=600),
        payload=PAYLOAD,
        revisit=REPLAY,
    )


@pytest.mark.task(6)
async def test_a_dead_letter_outlives_its_jobs_record_and_can_still_be_replayed(api, invoices, clock, ids):
    """Two hours later the record has expired, the letter has not; the replay brings the record back."""
    await dead_job(api, invoices)
    clock.advance(2 * HOUR)
    await expect_gone(api, ids.script[0], revisit=SWEEP)
    letters = await api.letters(revisit=REPLAY)
    assert [letter.get("job_id") for letter in letters] == [str(ids.script[0])], lesson(
        expected="the letter still listed: dead letters do not expire", got=f"{letters}", revisit=REPLAY
    )
    exchange = await api.post(f"/dead-letters/{ids.script[0]}/replay", revisit=REPLAY)
    expect_status(exchange, 202, revisit=REPLAY)
    body = await api.record(ids.script[0], revisit=REPLAY)
    assert body.get("status") == "succeeded", lesson(expected="the job ran again", got=f"{body}", revisit=REPLAY)


@pytest.mark.task(6)
async def test_the_app_keeps_as_many_dead_letters_as_it_was_given_the_oldest_dropped(build, timeline, invoices, ids):
    """Built with dead_letter_capacity=2, three jobs fail: the letters of jobs 2 and 3 are kept."""
    api = Api(build(dead_letter_capacity=2), timeline)
    invoices.will(ConnectionError("the partner is down"))
    for _ in range(3):
        await api.submit()
    letters = await api.letters(revisit=CAPACITY)
    got = [letter.get("job_id") for letter in letters]
    assert got == [str(ids.script[1]), str(ids.script[2])], lesson(
        expected=f"the letters of jobs 2 and 3: {[str(ids.script[1]), str(ids.script[2])]}",
        got=f"{got}",
        revisit=CAPACITY,
    )
    exchange = await api.post(f"/dead-letters/{ids.script[0]}/replay", revisit=CAPACITY)
    expect_status(exchange, 404, expected="404: the letter of job 1 was dropped", revisit=CAPACITY)


@pytest.mark.task(6)
async def test_by_default_the_app_keeps_100_dead_letters(app, timeline, invoices, ids):
    """With the default capacity, 100 jobs failed for good are all kept; the 101st makes the first one go."""
    invoices.will(deadletters.PermanentJobError("customer deleted"))
    api = Api(app, timeline)
    job = {"type": INVOICE, "payload": {"invoice": 7}}

    async def submit(count: int) -> list[int | None]:
        return [(await timeline.request(app, "POST", "/jobs", json=job)).status for _ in range(count)]

    statuses = await within_bound(submit(100), revisit=CAPACITY, expected="100 jobs accepted")
    assert statuses == [202] * 100, lesson(
        expected="100 jobs accepted with 202", got=f"{sorted(set(statuses), key=str)}", revisit=CAPACITY
    )
    letters = await api.letters(revisit=CAPACITY)
    assert [letter.get("job_id") for letter in letters] == [str(job_id) for job_id in ids.script[:100]], lesson(
        expected="the letters of the 100 jobs, all kept: the default capacity is 100",
        got=f"{len(letters)} letters",
        revisit=CAPACITY,
    )
    await api.submit(revisit=CAPACITY)
    letters = await api.letters(revisit=CAPACITY)
    got = [letter.get("job_id") for letter in letters]
    assert got == [str(job_id) for job_id in ids.script[1:101]], lesson(
        expected="the letters of jobs 2 to 101: the 101st made room by dropping the first",
        got=f"{len(got)} letters, from {got[:1]} to {got[-1:]}",
        revisit=CAPACITY,
    )
