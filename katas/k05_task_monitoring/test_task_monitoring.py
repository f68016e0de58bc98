"""Specs for kata 5: task monitoring.

Run them with

    uv run pytest katas/k05_task_monitoring

Each spec names the README task it checks. Edit monitoring.py, not this file (nor
conftest.py beside it, which holds the busy server, the fake worker and the scripted ids).

The specs of tasks 1 and 2 look only at what the client is told: the work each POST
queues is held back, as on a busy server, and never runs. Tasks 3 and 4 let it run.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dojo.fakes import EPOCH, FakeClock
from dojo.impl import kata_module
from dojo.teach import expect_status, expect_type, lesson
from dojo.timeline import CALL_FINISHED, RESPONSE_COMPLETE, Exchange, Timeline

monitoring = kata_module("k05_task_monitoring", "monitoring")

ITEMS = ["orders.csv", "stock.csv", "prices.csv"]
STEP = timedelta(seconds=3)  # the fake worker's time per item (conftest.py)
FIELDS = {"task_id", "status", "progress", "created_at", "started_at", "finished_at", "result", "error"}

# ------------------------------------------------------------------ what each failure sends you back to

ACCEPT = "task 1: the answer to the POST is 202 with the new task's record (README: Accept the task)"
PENDING = (
    "task 1: a task just accepted is pending: nothing has started, nothing is done yet "
    "(README: A status that only moves forward)"
)
LOCATION = (
    "task 1: the 202 says where the client will find the task, the address of its status "
    "(README: 202 Accepted and a Location to poll)"
)
FRESH_ID = (
    "task 1: every accepted job gets its own id, drawn from the injected id source once per request "
    "(README: Ids: random, unguessable, typed)"
)
RANDOM_ID = "task 1: by default an id is a random version 4 UUID (README: Ids: random, unguessable, typed)"
CREATED_AT = (
    "task 1: the time a task was created is read from the injected clock when the POST comes, "
    "not once when the app is built (README: Time from an injected clock, in UTC)"
)
CREATED_ZONE = (
    "task 1: a time without its offset is ambiguous, so every time is an aware UTC time "
    "(README: Time from an injected clock, in UTC)"
)
VALID_JOB = (
    "task 1: the request model decides what a job is; FastAPI refuses anything else before your "
    "endpoint runs (README: Accept the task)"
)
STORED = (
    "task 2: the record is stored by the endpoint, before the answer goes out, so the client can ask "
    "at once (README: The record exists before the answer)"
)
KEY_TYPE = (
    "task 2: the id is looked up with the same type it was stored under; a text never equals a UUID "
    "(README: Ids: random, unguessable, typed)"
)
OWN_RECORD = "task 2: each id leads to its own record, the one stored under it (README: Store it and answer about it)"
UNKNOWN = (
    "task 2: an id nobody issued names no task, which is the client's mistake, a 404, never a crash "
    "(README: Ids: random, unguessable, typed)"
)
MALFORMED = (
    "task 2: a path parameter declared with a type is checked by FastAPI, and a malformed id is a 422 "
    "(README: Ids: random, unguessable, typed)"
)
PER_APP = (
    "task 2: the records belong to one app, not to the module every app shares (README: Store it and answer about it)"
)
PERCENT = "task 3: progress is a whole percent, rounded down, in integers (README: Progress in whole percent)"
RUNS_LATER = (
    "task 3: the work is queued as the request's background task: it runs after the answer, inside "
    "the request, every item once and in order (README: Run it and report progress)"
)
CLIMBS = (
    "task 3: a running task shows the share of items done so far, counted as they finish "
    "(README: Progress in whole percent)"
)
LIFECYCLE = (
    "task 3: the work marks the task running when it begins and completed at its end "
    "(README: A status that only moves forward)"
)
SAME_RECORD = (
    "task 3: the work updates the very record the status answers with, and only that one "
    "(README: Run it and report progress)"
)
WORK_TIMES = (
    "task 3: each time is read from the injected clock at the moment it names "
    "(README: Time from an injected clock, in UTC)"
)
WORK_ZONE = (
    "task 3: a time without its offset is ambiguous, so every time is an aware UTC time "
    "(README: Time from an injected clock, in UTC)"
)
FAILED = (
    "task 4: a failure becomes the task's outcome, failed with a one-line message naming the kind "
    "of error and what it said (README: A failure is a message, not a traceback)"
)
STOPS = (
    "task 4: a failed task stops at the failing item, keeps the progress it reached and records "
    "when it ended (README: Record a failure)"
)
CONTAINED = "task 4: the failure is recorded, not raised again into the server (README: Record a failure)"


# ------------------------------------------------------------------ helpers


@pytest.fixture(name="app")
def _app(worker, clock: FakeClock, ids):
    """The kata's app: fake work, a clock that stands still, task ids known in advance."""
    return monitoring.create_app(process=worker, clock=clock, new_id=ids)


def record_of(exchange: Exchange, *, revisit: str) -> dict:
    """The JSON object of a response's body; fail with a lesson if it is not one."""
    __tracebackhide__ = True
    try:
        body = exchange.json()
    except ValueError:
        body = exchange.text
    return expect_type(body, dict, what="the body: the task's record, a JSON object", revisit=revisit)


def expect_moment(body: dict, key: str, expected: datetime, *, revisit: str, zone: str) -> datetime:
    """Fail with the right lesson unless ``body[key]`` is ``expected``, written in ISO 8601 with a UTC offset."""
    __tracebackhide__ = True
    value = expect_type(body.get(key), str, what=f"{key}: an ISO 8601 time", revisit=revisit)
    wanted = f"{key}: {expected.isoformat().replace('+00:00', 'Z')}, the injected clock's time then"
    try:
        moment = datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        raise AssertionError(
            lesson(expected=wanted, got=f"{key}: {value!r}, not an ISO 8601 time", revisit=revisit)
        ) from None
    if moment.tzinfo is None:
        raise AssertionError(
            lesson(
                expected=f"{wanted}, with its UTC offset (Z or +00:00)",
                got=f"{key}: {value!r}, which has no offset: a client cannot tell in which zone it is",
                revisit=zone,
            )
        )
    if moment.utcoffset() != timedelta(0):
        raise AssertionError(
            lesson(expected=f"{wanted}, in UTC", got=f"{key}: {value!r}, at offset {moment.utcoffset()}", revisit=zone)
        )
    if moment != expected:
        note = ""
        if abs(moment - EPOCH) > timedelta(days=1):
            note = ": far from any time the injected clock has shown, it looks like the machine's own clock"
        elif moment < expected:
            note = f": {(expected - moment).total_seconds():g} s too early, the clock was read before that moment"
        else:
            note = f": {(moment - expected).total_seconds():g} s too late, the clock was read after that moment"
        raise AssertionError(lesson(expected=wanted, got=f"{key}: {value!r}{note}", revisit=revisit))
    return moment


def path_id_type(app) -> str:
    """How the app's GET route declares the task id of its path, as OpenAPI says it: 'uuid', 'string', ..."""
    try:
        route = app.openapi()["paths"]["/tasks/{task_id}"]["get"]
        schema = next(parameter["schema"] for parameter in route["parameters"] if parameter["in"] == "path")
    except (KeyError, StopIteration, TypeError, AttributeError, ValueError):
        return "unknown"
    return str(schema.get("format") or schema.get("type") or "unknown")


async def status_of(server, app, task_id: UUID | str, *, revisit: str) -> dict:
    """GET the task's record, which must be there: a 404 is explained (the key's type, or a late store)."""
    __tracebackhide__ = True
    exchange = await server.request("GET", f"/tasks/{task_id}")
    if exchange.status == 404 and path_id_type(app) == "string":
        raise AssertionError(
            f"The POST issued task {task_id}, yet GET /tasks/{task_id} answered 404."
            + lesson(
                expected=f"200 and the record of task {task_id}",
                got=f"{exchange}; the GET route declares the id in its path as plain text (str). Records "
                "stored under the UUID the id source gives are never found by a text, however alike they "
                "print: a str and a UUID are different keys",
                revisit=KEY_TYPE,
            )
        )
    if exchange.status == 404:
        raise AssertionError(
            f"The client had its 202 for task {task_id}, asked at once, and was told it does not exist."
            + lesson(expected=f"200 and the record of task {task_id}", got=f"{exchange}", revisit=STORED)
            + server.timeline.render()
        )
    expect_status(exchange, 200, expected=f"200 and the record of task {task_id}", revisit=revisit)
    return record_of(exchange, revisit=revisit)


async def accept(server, items: list[str]) -> dict:
    """POST a job; fail with a lesson unless it is accepted with 202 and a record."""
    __tracebackhide__ = True
    exchange = await server.request("POST", "/tasks", json={"items": items})
    expect_status(exchange, 202, expected="the POST answered 202 Accepted", revisit=ACCEPT)
    return record_of(exchange, revisit=ACCEPT)


def uuid_version(text: str) -> int | None:
    """The version of the UUID written in ``text``; None if it is not one."""
    try:
        return UUID(text).version
    except ValueError:
        return None


def summary(body: dict) -> tuple:
    """The fields a client watches, in one line."""
    return (body.get("status"), body.get("progress"))


def watched(body: dict, *, revisit: str) -> tuple:
    """``summary``, with the types checked first: the status a text, the progress an integer."""
    __tracebackhide__ = True
    expect_type(body.get("status"), str, what="status", revisit=revisit)
    expect_type(body.get("progress"), int, what="progress, a whole percent", revisit=revisit)
    return summary(body)


def crashes(server) -> str:
    """What the app raised in the requests so far, for a failure message."""
    errors = server.errors()
    return f"\n  the app raised: {'; '.join(errors)}" if errors else ""


# ---------------------------------------------------------------- task 1: accept the task


@pytest.mark.task(1)
async def test_a_new_task_is_accepted_with_202_and_its_pending_record(server, ids, worker):
    """The POST answers 202 with the new task's record: its id, pending, 0 %, nothing started, nothing done."""
    exchange = await server.request("POST", "/tasks", json={"items": ITEMS})
    expect_status(exchange, 202, expected="202 Accepted: the job is taken, its work is not done yet", revisit=ACCEPT)
    body = record_of(exchange, revisit=ACCEPT)
    assert set(body) == FIELDS, lesson(
        expected=f"the task's record, with exactly the fields {sorted(FIELDS)}",
        got=f"{body}",
        revisit=ACCEPT,
    )
    expect_type(body["task_id"], str, what="task_id", revisit=FRESH_ID)
    assert body["task_id"] == str(ids.script[0]), lesson(
        expected=f"task_id {ids.script[0]}, the first id of the injected id source",
        got=f"task_id {body['task_id']!r}",
        revisit=FRESH_ID,
    )
    got = {key: body[key] for key in ("status", "progress", "started_at", "finished_at", "result", "error")}
    expected = {
        "status": "pending",
        "progress": 0,
        "started_at": None,
        "finished_at": None,
        "result": None,
        "error": None,
    }
    expect_type(body["progress"], int, what="progress, a whole percent", revisit=PENDING)
    assert got == expected and worker.started == [], lesson(
        expected=f"a record of work not started yet: {expected}, and no item touched before the answer",
        got=f"{got}; items started before the answer: {worker.started}",
        revisit=PENDING,
    )


@pytest.mark.task(1)
async def test_created_at_is_the_clocks_time_when_the_post_comes(server, clock: FakeClock):
    """The app is built; 90 s later a job comes: created_at is that moment, in UTC, from the injected clock."""
    clock.advance(90)
    body = await accept(server, ITEMS)
    expect_moment(body, "created_at", EPOCH + timedelta(seconds=90), revisit=CREATED_AT, zone=CREATED_ZONE)
    clock.advance(30)
    later = await accept(server, ITEMS)
    expect_moment(later, "created_at", EPOCH + timedelta(seconds=120), revisit=CREATED_AT, zone=CREATED_ZONE)


@pytest.mark.task(1)
async def test_the_location_header_names_the_new_tasks_status_url(server, ids):
    """The 202 says where to ask: its Location header is the task's status URL, with the task's own id."""
    exchange = await server.request("POST", "/tasks", json={"items": ITEMS})
    expect_status(exchange, 202, expected="the POST answered 202 Accepted", revisit=ACCEPT)
    locations = [value for name, value in exchange.headers if name == "location"]
    expected_path = f"/tasks/{ids.script[0]}"
    assert len(locations) == 1 and urlsplit(locations[0]).path == expected_path, lesson(
        expected=f"one Location header, with the path {expected_path}",
        got=f"Location: {locations or 'none'}",
        revisit=LOCATION,
    )
    assert ids.issued == ids.script[:1], lesson(
        expected="one id drawn from the id source for one POST",
        got=f"{len(ids.issued)} drawn: {[str(task_id) for task_id in ids.issued]}",
        revisit=FRESH_ID,
    )


@pytest.mark.task(1)
async def test_each_post_draws_exactly_one_fresh_id_from_the_id_source(server, ids):
    """Three jobs, three ids, the next ones from the id source: one drawn per request, never one per app."""
    got = []
    for _ in range(3):
        body = await accept(server, ["orders.csv"])
        got.append(body.get("task_id"))
    expected = [str(task_id) for task_id in ids.script[:3]]
    assert got == expected, lesson(expected=f"the ids {expected}, one per POST", got=f"{got}", revisit=FRESH_ID)
    assert ids.issued == ids.script[:3], lesson(
        expected="exactly three ids drawn for three POSTs",
        got=f"{len(ids.issued)} drawn",
        revisit=FRESH_ID,
    )


@pytest.mark.task(1)
async def test_by_default_task_ids_are_random_uuid4s_that_never_repeat(worker, clock, serve):
    """With no id source injected, each task's id is a fresh random (version 4) UUID."""
    server = serve(monitoring.create_app(process=worker, clock=clock))
    got = []
    for _ in range(20):
        body = await accept(server, ["orders.csv"])
        got.append(expect_type(body.get("task_id"), str, what="task_id", revisit=RANDOM_ID))
    versions = [uuid_version(task_id) for task_id in got]
    assert len(set(got)) == len(got) and versions == [4] * len(got), lesson(
        expected="20 different version 4 UUIDs, one per POST",
        got=f"{len(set(got))} different, versions {sorted(set(versions), key=str)}: {got[:3]} ...",
        revisit=RANDOM_ID,
    )


@pytest.mark.task(1)
@pytest.mark.parametrize(
    "items",
    [["orders.csv"], [f"part-{number:03d}.csv" for number in range(100)], ["commandes-été.csv", "commandes-été.csv"]],
    ids=["1 item", "100 items", "a name twice, not ASCII"],
)
async def test_a_job_of_1_to_100_items_is_accepted(server, ids, items):
    """The limits themselves are accepted: one item, a hundred items; any file name, even twice."""
    exchange = await server.request("POST", "/tasks", json={"items": items})
    expect_status(
        exchange, 202, expected=f"202 Accepted for a job of {len(items)} item(s): within the limits", revisit=VALID_JOB
    )
    body = record_of(exchange, revisit=ACCEPT)
    assert body.get("task_id") == str(ids.script[0]), lesson(
        expected=f"task_id {ids.script[0]}", got=f"{body.get('task_id')!r}", revisit=FRESH_ID
    )


INVALID_JOBS = {
    "no items": b'{"items": []}',
    "101 items": ('{"items": [' + ", ".join(f'"part-{n:03d}.csv"' for n in range(101)) + "]}").encode(),
    "items missing": b"{}",
    "items misnamed": b'{"files": ["orders.csv"]}',
    "items null": b'{"items": null}',
    "items a text": b'{"items": "orders.csv"}',
    "items not texts": b'{"items": [1, 2]}',
    "an array": b'["orders.csv"]',
    "a string": b'"orders.csv"',
    "a number": b"42",
    "null": b"null",
    "not JSON": b"items=orders.csv",
    "empty": b"",
}


@pytest.mark.task(1)
@pytest.mark.parametrize("content", INVALID_JOBS.values(), ids=INVALID_JOBS.keys())
async def test_an_invalid_job_is_a_422_and_takes_no_id(server, ids, content):
    """Anything but an object with 1 to 100 texts under items is refused, before an id is drawn for it."""
    exchange = await server.request("POST", "/tasks", content=content, headers={"content-type": "application/json"})
    expect_status(exchange, 422, expected=f"422 for the body {content[:60]!r}", revisit=VALID_JOB)
    body = await accept(server, ITEMS)
    assert body.get("task_id") == str(ids.script[0]), lesson(
        expected=f"the next valid job gets the first id, {ids.script[0]}: a refused job took none",
        got=f"task_id {body.get('task_id')!r}",
        revisit=FRESH_ID,
    )


# ---------------------------------------------------------------- task 2: store it and answer about it


def identity(body: dict) -> dict:
    """What names a task and does not change while its work runs: its id and when it was accepted."""
    return {"task_id": body.get("task_id"), "created_at": body.get("created_at")}


@pytest.mark.task(2)
async def test_asked_right_after_the_202_the_task_is_there_not_404(server, app, ids):
    """The client has its 202; the work has not started; it asks at once and gets the task of the 202."""
    accepted = await accept(server, ITEMS)
    body = await status_of(server, app, ids.script[0], revisit=STORED)
    assert identity(body) == identity(accepted), lesson(
        expected=f"the record the 202 carried: {accepted}",
        got=f"{body}",
        revisit=OWN_RECORD,
    )


@pytest.mark.task(2)
async def test_each_id_leads_to_its_own_record(server, app, ids, clock: FakeClock):
    """Three tasks accepted a minute apart: each id answers with its own record, the one of its 202."""
    accepted = []
    for _ in range(3):
        accepted.append(identity(await accept(server, ITEMS)))
        clock.advance(60)
    got = [identity(await status_of(server, app, task_id, revisit=OWN_RECORD)) for task_id in ids.script[:3]]
    assert got == accepted, lesson(
        expected="each task's own record, as its 202 gave it:\n" + "\n".join(map(str, accepted)),
        got="\n".join(map(str, got)),
        revisit=OWN_RECORD,
    )


@pytest.mark.task(2)
@pytest.mark.parametrize("written", [str.upper, lambda text: UUID(text).hex], ids=["in capitals", "without hyphens"])
async def test_the_same_id_written_another_way_names_the_same_task(server, app, ids, written):
    """A UUID is a number, not a text: written in capitals or without hyphens, it is the same id."""
    accepted = await accept(server, ITEMS)
    other = written(str(ids.script[0]))
    exchange = await server.request("GET", f"/tasks/{other}")
    expect_status(
        exchange, 200, expected=f"200 and the record of task {ids.script[0]}, asked as {other}", revisit=KEY_TYPE
    )
    body = record_of(exchange, revisit=KEY_TYPE)
    assert identity(body) == identity(accepted), lesson(expected=f"{accepted}", got=f"{body}", revisit=KEY_TYPE)


@pytest.mark.task(2)
async def test_an_id_that_was_never_issued_is_a_404(server, ids):
    """Asking about a task that does not exist is the client's mistake: 404, never a 500, and it says which id."""
    await accept(server, ITEMS)
    for unknown in (uuid4(), ids.script[1]):
        exchange = await server.request("GET", f"/tasks/{unknown}")
        expect_status(exchange, 404, expected=f"404 Not Found for the unknown task {unknown}", revisit=UNKNOWN)
        detail = record_of(exchange, revisit=UNKNOWN).get("detail")
        assert isinstance(detail, str) and str(unknown) in detail, lesson(
            expected=f"a 404 whose detail names the id it could not find, {unknown}",
            got=f"detail {detail!r}",
            revisit=UNKNOWN,
        )


@pytest.mark.task(2)
@pytest.mark.parametrize(
    "malformed",
    ["not-a-task", "42", "00000000-0000-4000-8000", "00000000-0000-4000-8000-00000000000g", "tâche-1"],
)
async def test_a_malformed_id_is_a_422(server, malformed):
    """An id that is not a UUID cannot name any task: 422, like any invalid input."""
    await accept(server, ITEMS)
    exchange = await server.request("GET", f"/tasks/{malformed}")
    expect_status(exchange, 422, expected=f"422 Unprocessable Content for the id {malformed!r}", revisit=MALFORMED)


@pytest.mark.task(2)
async def test_an_app_knows_only_its_own_tasks(server, ids, worker, clock, serve):
    """Records live in the app, not in a module-level dict that every app (and every test) shares."""
    await accept(server, ITEMS)
    other = serve(monitoring.create_app(process=worker, clock=clock))
    exchange = await other.request("GET", f"/tasks/{ids.script[0]}")
    expect_status(
        exchange,
        404,
        expected=f"404 from a second app asked about the first app's task {ids.script[0]}",
        revisit=PER_APP,
    )


# ---------------------------------------------------------------- task 3: run it, report progress


@pytest.mark.task(3)
@pytest.mark.parametrize(
    ("done", "total", "percent"),
    [
        (0, 1, 0),
        (1, 1, 100),
        (0, 3, 0),
        (1, 3, 33),
        (2, 3, 66),
        (3, 3, 100),
        (1, 8, 12),
        (29, 100, 29),
        (57, 100, 57),
        (3, 200, 1),
        (199, 200, 99),
    ],
)
def test_progress_is_the_percentage_of_items_done_rounded_down(done, total, percent):
    """Whole percent, rounded down: 1 of 3 is 33, 3 of 200 is 1, and 199 of 200 is 99, not yet 100."""
    got = expect_type(
        monitoring.progress_percent(done, total), int, what=f"progress_percent({done}, {total})", revisit=PERCENT
    )
    assert got == percent, lesson(
        expected=f"progress_percent({done}, {total}) == {percent}", got=f"{got!r}", revisit=PERCENT
    )


@pytest.mark.task(3)
@given(total=st.integers(min_value=1, max_value=10_000), data=st.data())
def test_progress_only_goes_up_and_is_100_only_when_every_item_is_done(total, data):
    """For any job size: 0 before the first item, one more item never lowers it, 100 means all done."""
    done = data.draw(st.integers(min_value=0, max_value=total - 1), label="done")
    now = expect_type(monitoring.progress_percent(done, total), int, what="progress", revisit=PERCENT)
    after = expect_type(monitoring.progress_percent(done + 1, total), int, what="progress", revisit=PERCENT)
    assert 0 <= now <= after <= 100, lesson(
        expected=f"0 <= progress({done} of {total}) <= progress({done + 1} of {total}) <= 100",
        got=f"{now} then {after}",
        revisit=PERCENT,
    )
    assert now < 100 and (after == 100) == (done + 1 == total) and (done > 0 or now == 0), lesson(
        expected=f"0 with nothing done, and 100 only when all {total} items are done",
        got=f"{now} after {done}, {after} after {done + 1}",
        revisit=PERCENT,
    )


@pytest.mark.task(3)
async def test_the_work_runs_after_the_answer_inside_the_request(server, worker, timeline: Timeline):
    """Queued behind the answer: nothing before it, then every item once, in order, before the request ends."""
    await accept(server, ITEMS)
    await server.stay_busy()  # the answer is out; the server is busy a while before the work's turn
    waiting = [event for event in timeline.events if event.name == worker.WAITS]
    assert waiting == [], (
        "The request's background work was held back, and yet the work reached process: it runs on its own."
        + lesson(
            expected="no item touched until the request's background work runs",
            got=f"the work called process with {[event.detail for event in waiting]} while it was held",
            revisit=RUNS_LATER,
        )
        + timeline.render()
    )
    before = list(worker.started)
    await server.finish()
    assert before == [] and worker.started == ITEMS, lesson(
        expected=f"no item before the answer; after it, each item once, in order: {ITEMS}",
        got=f"before the answer {before}; in all {worker.started}{crashes(server)}",
        revisit=RUNS_LATER,
    )
    last_step = max(event.seq for event in timeline.events if event.name == worker.FINISHED)
    end = timeline.first(CALL_FINISHED)
    assert end is not None and last_step < end.seq, (
        "The work must run as the request's background task, which the request awaits before it ends."
        + lesson(
            expected=f"{RESPONSE_COMPLETE}, {server.RELEASED}, the steps, then {CALL_FINISHED}",
            got="the request ended before its work did: the work runs on its own, outside the request",
            revisit=RUNS_LATER,
        )
        + timeline.render()
    )


@pytest.mark.task(3)
async def test_while_it_runs_its_progress_climbs_item_by_item(server, app, ids, worker, timeline: Timeline):
    """Asked before each item, a running task shows the share done so far; at the end, completed at 100."""
    items = ["orders.csv", "stock.csv", "orders.csv", "prices.csv"]  # a file listed twice counts twice
    holds = [worker.hold_at(item) for item in items]
    await accept(server, items)
    server.release()
    seen = []
    for hold in holds:
        if not await worker.until(hold):
            break
        body = await status_of(server, app, ids.script[0], revisit=CLIMBS)
        seen.append(watched(body, revisit=CLIMBS))
        hold.release()
    await server.finish()
    seen.append(watched(await status_of(server, app, ids.script[0], revisit=CLIMBS), revisit=CLIMBS))
    expected = [("running", 0), ("running", 25), ("running", 50), ("running", 75), ("completed", 100)]
    asked = "(status, progress) asked before each of the 4 items, then at the end:"
    never_changed = seen == [("pending", 0)] * len(seen) and worker.processed == items
    assert not never_changed, (
        asked
        + lesson(
            expected=f"{expected}",
            got=f"{seen}, though every item was processed: the record asked about never saw the work",
            revisit=SAME_RECORD,
        )
        + timeline.render()
    )
    statuses = [status for status, _ in seen]
    assert statuses == [status for status, _ in expected], (
        asked + lesson(expected=f"{expected}", got=f"{seen}{crashes(server)}", revisit=LIFECYCLE) + timeline.render()
    )
    assert seen == expected, (
        asked + lesson(expected=f"{expected}", got=f"{seen}{crashes(server)}", revisit=CLIMBS) + timeline.render()
    )


@pytest.mark.task(3)
async def test_a_finished_task_is_completed_at_100_with_its_result(server, app, ids, worker):
    """Every item processed once; then completed, 100 %, a result that counts the items, and no error."""
    items = ["orders.csv", "stock.csv", "orders.csv", "prices.csv"]
    await accept(server, items)
    await server.finish()
    body = await status_of(server, app, ids.script[0], revisit=LIFECYCLE)
    watched(body, revisit=LIFECYCLE)
    got = {key: body.get(key) for key in ("status", "progress", "result", "error")}
    expected = {"status": "completed", "progress": 100, "result": "imported 4 items", "error": None}
    assert got == expected and worker.processed == items, lesson(
        expected=f"{expected}, each item processed once",
        got=f"{got}, items processed {worker.processed}{crashes(server)}",
        revisit=LIFECYCLE,
    )


@pytest.mark.task(3)
async def test_created_started_and_finished_times_are_read_when_each_happens(server, app, ids, clock: FakeClock):
    """Accepted at +30 s, started when the server gets to it (+90 s), finished after 3 items of 3 s each."""
    clock.advance(30)
    await accept(server, ITEMS)
    clock.advance(60)  # the work waits a minute for the busy server
    await server.finish()
    body = await status_of(server, app, ids.script[0], revisit=WORK_TIMES)
    started = EPOCH + timedelta(seconds=90)
    expect_moment(body, "started_at", started, revisit=WORK_TIMES, zone=WORK_ZONE)
    expect_moment(body, "finished_at", started + len(ITEMS) * STEP, revisit=WORK_TIMES, zone=WORK_ZONE)
    expect_moment(body, "created_at", EPOCH + timedelta(seconds=30), revisit=WORK_TIMES, zone=WORK_ZONE)


@pytest.mark.task(3)
async def test_concurrent_tasks_are_tracked_independently(server, app, ids, worker, timeline: Timeline):
    """While one task is half done, another starts and finishes: each record tells its own story."""
    hold = worker.hold_at("a2.csv")
    await accept(server, ["a1.csv", "a2.csv"])
    server.release()
    reached = await worker.until(hold)
    await accept(server, ["b1.csv"])  # released already: this one runs to its end
    await server.settle(1)
    first = watched(await status_of(server, app, ids.script[0], revisit=SAME_RECORD), revisit=SAME_RECORD)
    second = watched(await status_of(server, app, ids.script[1], revisit=SAME_RECORD), revisit=SAME_RECORD)
    hold.release()
    await server.finish()
    first_at_end = watched(await status_of(server, app, ids.script[0], revisit=SAME_RECORD), revisit=SAME_RECORD)
    expected = [("running", 50), ("completed", 100), ("completed", 100)]
    got = [first, second, first_at_end]
    assert reached and got == expected, (
        "Task A (2 items) is held after its first item; task B (1 item) starts and finishes meanwhile."
        + lesson(
            expected=f"A mid-way, B done, then A done: {expected}", got=f"{got}{crashes(server)}", revisit=SAME_RECORD
        )
        + timeline.render()
    )


# ---------------------------------------------------------------- task 4: record a failure


class PriceError(Exception):
    """An error of the import itself, as a real importer would define one."""


FAILURES = {
    "ValueError": (ValueError("row 7: price is not a number"), "ValueError: row 7: price is not a number"),
    "FileNotFoundError": (FileNotFoundError("stock.csv is gone"), "FileNotFoundError: stock.csv is gone"),
    "an error of its own, not ASCII": (PriceError("prix « 7,5 € » illisible"), "PriceError: prix « 7,5 € » illisible"),
}


@pytest.mark.task(4)
@pytest.mark.parametrize(("error", "message"), FAILURES.values(), ids=FAILURES.keys())
async def test_a_failing_item_marks_the_task_failed_with_a_one_line_message(  # noqa: PLR0913, PLR0917 - fixtures
    server, app, ids, worker, error, message
):
    """The client learns that it failed and why, in one line: the kind of error and its message, no traceback."""
    worker.fail_at("stock.csv", error)
    await accept(server, ITEMS)
    await server.finish()
    body = await status_of(server, app, ids.script[0], revisit=FAILED)
    got = {key: body.get(key) for key in ("status", "error", "result")}
    expected = {"status": "failed", "error": message, "result": None}
    assert got == expected, lesson(expected=f"{expected}", got=f"{got}{crashes(server)}", revisit=FAILED)


@pytest.mark.task(4)
@pytest.mark.parametrize(
    ("failing", "progress"), [("orders.csv", 0), ("stock.csv", 33), ("prices.csv", 66)], ids=["first", "second", "last"]
)
async def test_a_failed_task_stops_keeps_its_progress_and_records_when_it_ended(  # noqa: PLR0913, PLR0917 - fixtures
    server, app, ids, worker, failing, progress
):
    """No item after the failing one runs; progress stays at the share done before it; finished_at is then."""
    worker.fail_at(failing, ValueError("row 7: price is not a number"))
    await accept(server, ITEMS)
    await server.finish()
    body = await status_of(server, app, ids.script[0], revisit=STOPS)
    position = ITEMS.index(failing) + 1
    got = {"status": body.get("status"), "progress": body.get("progress"), "items started": worker.started}
    expected = {"status": "failed", "progress": progress, "items started": ITEMS[:position]}
    watched(body, revisit=STOPS)
    assert got == expected, lesson(
        expected=f"{expected}: {position - 1} of {len(ITEMS)} items done before the failure",
        got=f"{got}{crashes(server)}",
        revisit=STOPS,
    )
    expect_moment(body, "finished_at", EPOCH + position * STEP, revisit=STOPS, zone=WORK_ZONE)
    expect_moment(body, "started_at", EPOCH, revisit=STOPS, zone=WORK_ZONE)


@pytest.mark.task(4)
async def test_a_failure_is_recorded_not_raised_into_the_server(server, worker):
    """The failure is the task's outcome: the request and its background work end normally."""
    worker.fail_at("stock.csv", ValueError("row 7: price is not a number"))
    await accept(server, ITEMS)
    exchanges = await server.finish()
    errors = server.errors()
    ran = worker.started == ITEMS[:2]
    assert [exchange.status for exchange in exchanges] == [202] and ran and errors == [], lesson(
        expected="a 202; the work ran up to the failing item; no exception escaping from the background work",
        got=f"HTTP {[exchange.status for exchange in exchanges]}; items started {worker.started}; exceptions: {errors}",
        revisit=CONTAINED,
    )
