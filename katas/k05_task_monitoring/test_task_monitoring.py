"""Specs for kata 5: task monitoring.

Run them with

    uv run pytest katas/k05_task_monitoring

Each spec names the README task it checks. Edit monitoring.py, not this file (nor
conftest.py beside it, which holds the fake worker and the scripted task ids).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dojo.fakes import BACKGROUND_HELD, EPOCH, BackgroundGate, FakeClock
from dojo.impl import kata_module
from dojo.teach import expect_status, lesson
from dojo.timeline import Exchange, Timeline

monitoring = kata_module("k05_task_monitoring", "monitoring")

ITEMS = ["orders.csv", "stock.csv", "prices.csv"]
STEP = timedelta(seconds=3)  # the fake worker's time per item (conftest.py)


@pytest.fixture(name="app")
def _app(worker, clock: FakeClock, ids):
    """The kata's app: fake work, a clock that stands still, task ids known in advance."""
    return monitoring.create_app(process=worker, clock=clock, new_id=ids)


async def status_of(client, task_id: UUID | str, *, revisit: str) -> dict:
    """GET the task's status document; fail with a lesson unless it is a 200."""
    __tracebackhide__ = True
    response = await client.get(f"/tasks/{task_id}")
    expect_status(
        response,
        200,
        expected=f"200 and the status document of task {task_id}",
        revisit=revisit,
    )
    return response.json()


def expect_accepted(exchange: Exchange) -> None:
    """Fail with a lesson unless the POST was answered 202."""
    __tracebackhide__ = True
    expect_status(
        exchange,
        202,
        expected="the POST answered 202 Accepted",
        revisit="task 1: build the pending record, store it, queue run_task, return the record",
    )


def instant(value: object) -> datetime | None:
    """An ISO 8601 timestamp from a JSON body as an aware datetime (None stays None)."""
    if value is None:
        return None
    text = str(value)
    parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    return parsed if parsed.tzinfo is not None else None  # a naive time says nothing about UTC


def uuid_version(text: str) -> int | None:
    """The version of the UUID written in ``text``; None if it is not one."""
    try:
        return UUID(text).version
    except (TypeError, ValueError):
        return None


def summary(body: dict) -> tuple:
    """The fields a client watches, in one line."""
    return (body.get("status"), body.get("progress"))


# ---------------------------------------------------------------- task 1: accept the task


@pytest.mark.task(1)
async def test_a_new_task_is_accepted_with_202_and_a_pending_record(client, ids):
    """The POST answers 202 with the task's record: its fresh id, pending, 0 %, created now."""
    response = await client.post("/tasks", json={"items": ITEMS})
    expect_status(
        response,
        202,
        expected="202 Accepted: the work is queued, not done",
        revisit="task 1: build the pending record, queue run_task, return the record",
    )
    body = response.json()
    expected = {"task_id": str(ids.script[0]), "status": "pending", "progress": 0, "started_at": None}
    got = {key: body.get(key) for key in expected}
    assert got == expected, lesson(
        expected=f"the new task's record: {expected}",
        got=f"{got}",
        revisit="task 1: TaskRecord(task_id=new_id(), status=TaskStatus.PENDING, created_at=clock.now())",
    )
    assert instant(body.get("created_at")) == EPOCH, lesson(
        expected=f"created_at: the injected clock's time at the POST, {EPOCH.isoformat()}",
        got=f"created_at: {body.get('created_at')!r}",
        revisit="task 1: take the time from the injected clock (clock.now()), never from datetime.now()",
    )


@pytest.mark.task(1)
async def test_the_location_header_leads_to_the_new_tasks_status(client, ids):
    """The 202 says where to ask: its Location header is the task's status URL."""
    response = await client.post("/tasks", json={"items": ITEMS})
    location = response.headers.get("location")
    expected_path = f"/tasks/{ids.script[0]}"
    assert location is not None and urlsplit(location).path == expected_path, lesson(
        expected=f"a Location header with the path {expected_path}",
        got=f"Location: {location!r} (HTTP {response.status_code})",
        revisit="task 1: take `response: Response` and set response.headers['Location']",
    )
    followed = await client.get(location)
    assert followed.status_code == 200 and followed.json().get("task_id") == str(ids.script[0]), lesson(
        expected=f"GET {location} answers 200 with the status of task {ids.script[0]}",
        got=f"{followed.status_code} {followed.text[:300]}",
        revisit="task 2: answer with the record stored under that id",
    )


@pytest.mark.task(1)
async def test_right_after_the_post_the_task_is_pending_not_404(  # noqa: PLR0913, PLR0917 - fixtures
    app, client, ids, worker, timeline: Timeline, background_gate: BackgroundGate
):
    """The client has its 202 before the task starts: asking then must say pending, not 404."""
    call = timeline.start(background_gate.wrap(app), "POST", "/tasks", json={"items": ITEMS})
    await timeline.wait_for(BACKGROUND_HELD)  # the client has the 202; the task has not started
    response = await client.get(f"/tasks/{ids.script[0]}")
    started_before = list(worker.started)
    background_gate.open()
    expect_accepted(await call)
    assert response.status_code == 200, (
        ("The client got its 202 and the task id, asked at once, and was told the task does not exist.")
        * (response.status_code == 404)
        + lesson(
            expected=f"200 and a pending record for task {ids.script[0]}",
            got=f"{response.status_code} {response.text[:300]}",
            revisit="task 1: store the record in the endpoint, before answering; the background task "
            "starts later (under a busy server, much later)",
        )
        + timeline.render()
    )
    body = response.json()
    assert summary(body) == ("pending", 0) and body.get("started_at") is None, lesson(
        expected="status 'pending', progress 0, started_at null: nothing has run yet",
        got=f"status {body.get('status')!r}, progress {body.get('progress')!r}, started_at {body.get('started_at')!r}",
        revisit="task 1: a new record is pending; only run_task makes it running",
    )
    assert started_before == [], lesson(
        expected="no item processed before the response was complete",
        got=f"processed {started_before} already",
        revisit="task 1: queue the work with background_tasks.add_task; do not run it in the endpoint",
    )


@pytest.mark.task(1)
async def test_each_task_gets_its_own_id_from_the_id_source(client, ids):
    """Three jobs, three ids: the next ones from new_id(), each with its own record."""
    got = []
    for _ in range(3):
        response = await client.post("/tasks", json={"items": ["orders.csv"]})
        got.append(response.json().get("task_id") if response.status_code == 202 else response.status_code)
    expected = [str(task_id) for task_id in ids.script[:3]]
    assert got == expected, lesson(
        expected=f"the ids {expected}, one per POST",
        got=f"{got}",
        revisit="task 1: call new_id() inside the endpoint, once per request (not once per app)",
    )
    for task_id in ids.script[:3]:
        body = await status_of(client, task_id, revisit="task 1: store every record under its own id")
        assert body.get("task_id") == str(task_id), lesson(
            expected=f"the record of task {task_id}",
            got=f"{body}",
            revisit="task 1: tasks[record.task_id] = record",
        )


@pytest.mark.task(1)
async def test_by_default_task_ids_are_random_uuid4s_and_never_repeat(worker, clock, timeline: Timeline):
    """With no id source injected, ids come from uuid4: unguessable, and never the same twice."""
    app = monitoring.create_app(process=worker, clock=clock)
    exchanges = [await timeline.request(app, "POST", "/tasks", json={"items": ["orders.csv"]}) for _ in range(5)]
    ids = [exchange.json().get("task_id") if exchange.status == 202 else str(exchange) for exchange in exchanges]
    versions = [uuid_version(task_id) for task_id in ids]
    assert len(set(ids)) == 5 and versions == [4] * 5, lesson(
        expected="5 different version-4 UUIDs",
        got=f"{ids}",
        revisit="task 1: new_id defaults to uuid.uuid4; call it for each task",
    )


# ---------------------------------------------------------------- task 2: report its status


@pytest.mark.task(2)
async def test_an_id_that_was_never_issued_is_a_404(client):
    """Asking about a task that does not exist is the client's mistake: 404, never a 500."""
    await client.post("/tasks", json={"items": ITEMS})
    unknown = uuid4()
    response = await client.get(f"/tasks/{unknown}")
    expect_status(
        response,
        404,
        expected=f"404 Not Found for the unknown task {unknown}",
        revisit="task 2: look the id up with tasks.get(...) and raise HTTPException(status_code=404) "
        "when it is missing (tasks[task_id] would be a KeyError, a 500)",
    )


@pytest.mark.task(2)
@pytest.mark.parametrize("malformed", ["not-a-task", "42", "00000000-0000-4000-8000"])
async def test_a_malformed_id_is_a_422(client, malformed):
    """An id that is not a UUID cannot name any task: 422, like any invalid input."""
    await client.post("/tasks", json={"items": ITEMS})
    response = await client.get(f"/tasks/{malformed}")
    expect_status(
        response,
        422,
        expected=f"422 Unprocessable Content for the id {malformed!r}",
        revisit="task 2: declare the path parameter as `task_id: UUID`; FastAPI then validates it",
    )


@pytest.mark.task(2)
async def test_an_app_knows_only_its_own_tasks(client, ids, worker, clock, timeline: Timeline):
    """Records live in the app, not in a module-level dict that every app (and test) shares."""
    await client.post("/tasks", json={"items": ITEMS})
    other_app = monitoring.create_app(process=worker, clock=clock)
    exchange = await timeline.request(other_app, "GET", f"/tasks/{ids.script[0]}")
    expect_status(
        exchange,
        404,
        expected=f"404 from a second app asked about the first app's task {ids.script[0]}",
        revisit="task 2: keep the records in create_app's own `tasks` dict, one per app",
    )


# ---------------------------------------------------------------- task 3: run it, report progress


@pytest.mark.task(3)
@pytest.mark.parametrize(
    ("done", "total", "percent"),
    [(0, 3, 0), (1, 3, 33), (2, 3, 66), (3, 3, 100), (1, 1, 100), (1, 8, 12), (29, 100, 29), (199, 200, 99)],
)
def test_progress_is_the_percentage_of_items_done_rounded_down(done, total, percent):
    """Whole percent, rounded down: 1 of 3 is 33, and 199 of 200 is 99, not yet 100."""
    got = monitoring.progress_percent(done, total)
    assert got == percent, lesson(
        expected=f"progress_percent({done}, {total}) == {percent}",
        got=f"{got!r}",
        revisit="task 3: done * 100 // total (integers: no float rounding, and never 100 before the end)",
    )


@pytest.mark.task(3)
@given(total=st.integers(min_value=1, max_value=10_000), data=st.data())
def test_progress_only_goes_up_and_is_100_only_when_every_item_is_done(total, data):
    """For any job size, one more item done never lowers the progress; 100 means all done."""
    done = data.draw(st.integers(min_value=0, max_value=total - 1), label="done")
    now, after = monitoring.progress_percent(done, total), monitoring.progress_percent(done + 1, total)
    assert 0 <= now <= after <= 100, lesson(
        expected=f"0 <= progress({done} of {total}) <= progress({done + 1} of {total}) <= 100",
        got=f"{now} then {after}",
        revisit="task 3: progress grows with the items done",
    )
    assert now < 100 and (after == 100) == (done + 1 == total), lesson(
        expected=f"100 only when all {total} items are done",
        got=f"{now} after {done}, {after} after {done + 1}",
        revisit="task 3: round down, so the last item is the only one that reaches 100",
    )


@pytest.mark.task(3)
async def test_while_it_runs_it_is_running_and_its_progress_climbs_step_by_step(
    app, client, ids, worker, timeline: Timeline
):
    """Asked before each item, a running task shows the share done so far, never less than before."""
    items = ["orders.csv", "stock.csv", "orders.csv", "prices.csv"]  # a file listed twice counts twice
    holds = [worker.hold_at(item) for item in items]
    call = timeline.start(app, "POST", "/tasks", json={"items": items})
    seen = []
    for hold in holds:
        if not await worker.until(hold, call):
            break
        body = await status_of(client, ids.script[0], revisit="task 2: answer with the task's record")
        seen.append(summary(body))
        hold.release()
    expect_accepted(await call)
    seen.append(summary(await status_of(client, ids.script[0], revisit="task 2: answer with the task's record")))
    expected = [("running", 0), ("running", 25), ("running", 50), ("running", 75), ("completed", 100)]
    assert seen == expected, (
        "(status, progress) asked before each of the 4 items, then at the end:"
        + lesson(
            expected=f"{expected}",
            got=f"{seen}",
            revisit="task 3: mark the record running first; after each item set "
            "progress = progress_percent(items done so far, len(items)), counting items, not looking them up "
            "(items.index finds the first copy of a repeated name)",
        )
        + timeline.render()
    )


@pytest.mark.task(3)
async def test_a_finished_task_is_completed_at_100_with_its_result(client, ids, worker):
    """Every item processed once, in order; then completed, 100 %, and a result that says what was done."""
    await client.post("/tasks", json={"items": ITEMS})
    assert worker.processed == ITEMS, lesson(
        expected=f"each item processed once, in order: {ITEMS}",
        got=f"{worker.processed}",
        revisit="task 3: `await process(item)` for each item of the job, in order",
    )
    body = await status_of(client, ids.script[0], revisit="task 2: answer with the task's record")
    got = {key: body.get(key) for key in ("status", "progress", "result", "error")}
    expected = {"status": "completed", "progress": 100, "result": "imported 3 items", "error": None}
    assert got == expected, lesson(
        expected=f"{expected}",
        got=f"{got}",
        revisit="task 3: at the end, status COMPLETED, progress 100, result f'imported {len(items)} items'",
    )


@pytest.mark.task(3)
async def test_created_started_and_finished_times_come_from_the_injected_clock(  # noqa: PLR0913, PLR0917 - fixtures
    app, client, ids, clock: FakeClock, timeline: Timeline, background_gate: BackgroundGate
):
    """created_at at the POST, started_at when the work begins, finished_at at its end: ISO 8601, UTC."""
    call = timeline.start(background_gate.wrap(app), "POST", "/tasks", json={"items": ITEMS})
    await timeline.wait_for(BACKGROUND_HELD)
    clock.advance(60)  # the task waits a minute for the server before it starts
    background_gate.open()
    expect_accepted(await call)
    body = await status_of(client, ids.script[0], revisit="task 2: answer with the task's record")
    expected = {
        "created_at": EPOCH,
        "started_at": EPOCH + timedelta(seconds=60),
        "finished_at": EPOCH + timedelta(seconds=60) + len(ITEMS) * STEP,
    }
    got = {key: instant(body.get(key)) for key in expected}
    assert got == expected, lesson(
        expected="\n".join(f"{key}: {value.isoformat()}" for key, value in expected.items()),
        got="\n".join(f"{key}: {body.get(key)!r}" for key in expected),
        revisit="task 1 (created_at) and task 3 (started_at, finished_at): clock.now() at the moment each "
        "happens, as aware UTC datetimes",
    )
    assert all(value.utcoffset() == timedelta(0) for value in got.values()), lesson(
        expected="times in UTC", got=f"{body}", revisit="task 3: use the injected clock"
    )


@pytest.mark.task(3)
async def test_concurrent_tasks_are_tracked_independently(app, client, ids, worker, timeline: Timeline):
    """While one task is half done, another starts and finishes: each record tells its own story."""
    hold = worker.hold_at("a2.csv")
    call = timeline.start(app, "POST", "/tasks", json={"items": ["a1.csv", "a2.csv"]})
    reached = await worker.until(hold, call)
    await client.post("/tasks", json={"items": ["b1.csv"]})  # the second task runs to its end
    if not reached:
        expect_accepted(await call)
    first = await status_of(client, ids.script[0], revisit="task 2: answer with the task's record")
    second = await status_of(client, ids.script[1], revisit="task 2: answer with the task's record")
    hold.release()
    expect_accepted(await call)
    first_at_end = await status_of(client, ids.script[0], revisit="task 2: answer with the task's record")
    expected = [("running", 50), ("completed", 100), ("completed", 100)]
    got = [summary(first), summary(second), summary(first_at_end)]
    assert reached and got == expected, (
        "Task A (2 items) is held after its first item; task B (1 item) starts and finishes meanwhile."
        + lesson(
            expected=f"A mid-way, B done, then A done: {expected}",
            got=f"{got}",
            revisit="task 3: run_task changes only the record it was given; keep no progress or "
            "status anywhere that two tasks share",
        )
        + timeline.render()
    )


# ---------------------------------------------------------------- task 4: record a failure


@pytest.mark.task(4)
async def test_a_failing_item_marks_the_task_failed_with_a_one_line_message(client, ids, worker):
    """The client learns that it failed and why, in one line: a message, not a traceback."""
    worker.fail_at("stock.csv", ValueError("row 7: price is not a number"))
    await client.post("/tasks", json={"items": ITEMS})
    body = await status_of(client, ids.script[0], revisit="task 2: answer with the task's record")
    got = {key: body.get(key) for key in ("status", "error", "result")}
    expected = {"status": "failed", "error": "ValueError: row 7: price is not a number", "result": None}
    assert got == expected, lesson(
        expected=f"{expected}",
        got=f"{got}",
        revisit="task 4: catch the exception around `await process(item)`; set status FAILED and "
        "error f'{type(error).__name__}: {error}' (a traceback is for your logs, not for clients)",
    )


@pytest.mark.task(4)
async def test_a_failed_task_stops_keeps_its_progress_and_records_when_it_finished(client, ids, worker):
    """After a failure no further item runs; progress stays at the share done; finished_at is set."""
    worker.fail_at("stock.csv", ValueError("row 7: price is not a number"))
    await client.post("/tasks", json={"items": ITEMS})
    body = await status_of(client, ids.script[0], revisit="task 2: answer with the task's record")
    expected = {"progress": 33, "finished_at": EPOCH + 2 * STEP, "items started": ["orders.csv", "stock.csv"]}
    got = {
        "progress": body.get("progress"),
        "finished_at": instant(body.get("finished_at")),
        "items started": worker.started,
    }
    assert got == expected, lesson(
        expected=f"{expected}",
        got=f"{got}",
        revisit="task 4: on failure stop at once (return), keep the progress reached (1 of 3 items: 33), "
        "and set finished_at = clock.now()",
    )


@pytest.mark.task(4)
async def test_a_failure_is_recorded_not_raised_into_the_server(client, worker):
    """The failure is the task's outcome: the background task itself ends normally."""
    worker.fail_at("stock.csv", ValueError("row 7: price is not a number"))
    response = await client.post("/tasks", json={"items": ITEMS})
    errors = [f"{type(error).__name__}: {error}" for error in client.app_errors]
    assert response.status_code == 202 and errors == [], lesson(
        expected="a 202, and no exception escaping from the app or its background task",
        got=f"HTTP {response.status_code}; exceptions: {errors}",
        revisit="task 4: catch the exception, record it, and return; re-raising it crashes the request "
        "in the server (and skips any later background task)",
    )
