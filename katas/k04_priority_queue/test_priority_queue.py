"""Specs for kata 4: a priority queue and its worker.

Run them with

    uv run pytest katas/k04_priority_queue

Each spec names the README task it checks. Edit jobs.py, not this file (nor conftest.py,
which holds the fake handler and the fixtures).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from hypothesis import given
from hypothesis import strategies as st

from dojo.impl import kata_module
from dojo.teach import expect_status, lesson

jobs = kata_module("k04_priority_queue", "jobs")

ORDER = ["urgent", "high", "normal", "low"]  # served first to served last


def make_job(number: int, priority: str, **payload: Any) -> Any:
    """A job called ``j<number>`` whose payload is a dict, as a client's would be."""
    return jobs.Job(id=f"j{number}", priority=jobs.Priority(priority), payload={"n": number, **payload})


def put_all(queue: Any, arrivals: list[Any]) -> list[int]:
    """Put each job in ``queue``; a TypeError from comparing jobs fails with its lesson."""
    __tracebackhide__ = True
    try:
        return [queue.put(job) for job in arrivals]
    except TypeError as caught:
        error = caught  # failed below, outside the except block, so the report is the lesson alone
    pytest.fail(
        "Putting two jobs of the same priority in the queue raised a TypeError."
        + lesson(
            expected="jobs of equal priority queue up, first come first served",
            got=f"TypeError: {error}",
            revisit="task 2: on equal ranks a heap compares the next item of the tuple; make it a unique "
            "arrival number (rank, arrival, job), so payloads (dicts) and jobs are never compared",
        ),
        pytrace=False,
    )


def drain(queue: Any) -> list[Any]:
    """Every waiting job, in the order the queue hands them out."""
    out = []
    with contextlib.suppress(asyncio.QueueEmpty):
        while True:
            out.append(queue.get_nowait())
    return out


def line(job_list: list[Any]) -> str:
    """``j3 (urgent), j1 (normal)``: jobs as a message shows them."""
    return ", ".join(f"{job.id} ({getattr(job.priority, 'value', job.priority)})" for job in job_list) or "(none)"


@contextlib.asynccontextmanager
async def worker_running(queue: Any, handler: Any) -> AsyncIterator[asyncio.Future[None]]:
    """``run_worker(queue, handler)`` as a task for the block; cancelled after it."""
    task = asyncio.ensure_future(jobs.run_worker(queue, handler))
    try:
        yield task
    finally:
        task.cancel()
        # The spec reports what the worker did; its exception, if any, is in its message.
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def worker_state(task: asyncio.Future[None]) -> str:
    """What became of the worker task, for a message."""
    if not task.done():
        return "the worker is still running"
    if task.cancelled():
        return "the worker was cancelled"
    error = task.exception()
    return f"the worker stopped with {type(error).__name__}: {error}" if error else "the worker returned"


async def post_job(client: httpx.AsyncClient, settle: Any, handler: Any, body: dict[str, Any]) -> httpx.Response:
    """POST /jobs and return the response, failing if it waits for the (held) handler."""
    __tracebackhide__ = True
    call = asyncio.ensure_future(client.post("/jobs", json=body))
    if not await settle(call.done):
        handler.release()
        response = await call
        pytest.fail(
            "POST /jobs did not finish while the handler was busy: the job ran inside the request."
            + lesson(
                expected="the request is over at once (202) while the one worker is busy with an earlier job",
                got=f"it finished only once the handler was released: {response.status_code} {response.text[:200]}",
                revisit="task 4: the endpoint only puts the job in the queue; the worker (task 3) runs it. Run in "
                "the endpoint, or as a BackgroundTasks task (still inside the request, after the response), each "
                "request runs its own job: there is no line, and priority decides nothing",
            ),
            pytrace=False,
        )
    return call.result()


async def busy_worker(client: httpx.AsyncClient, settle: Any, handler: Any) -> None:
    """Make the worker busy with a first job, held in the handler, so later ones wait."""
    __tracebackhide__ = True
    handler.hold()
    response = await post_job(client, settle, handler, {"payload": {"n": 0}, "priority": "low"})
    expect_status(
        response,
        202,
        expected="202 for the first job",
        revisit="task 4: the endpoint puts the job in the queue and answers 202",
    )
    assert await settle(lambda: handler.started), lesson(
        expected="the worker to take the first job posted and hand it to the handler",
        got=f"the handler was never called (the queue reports {await queue_text(client)})",
        revisit="task 3: the lifespan starts run_worker as a task; the worker awaits queue.get() and the handler",
    )


async def queue_text(client: httpx.AsyncClient) -> str:
    response = await client.get("/queue")
    return f"{response.status_code} {response.text[:200]}"


# ---------------------------------------------------------------- task 1: rank the priorities


@pytest.mark.task(1)
def test_urgent_ranks_before_high_before_normal_before_low():
    """rank() gives urgent the smallest number, then high, normal, low: smaller is served sooner."""
    ranks = {name: jobs.rank(jobs.Priority(name)) for name in ORDER}
    by_rank = sorted(ORDER, key=lambda name: ranks[name])
    assert by_rank == ORDER and len(set(ranks.values())) == 4, lesson(
        expected=f"ranks increasing in this order, all different: {' < '.join(ORDER)}",
        got=f"{ranks}, which serves {' then '.join(by_rank)}",
        revisit="task 1: spell the ranks out (urgent 0, high 1, normal 2, low 3); sorting the names gives "
        "high < low < normal < urgent, and Priority lists low first",
    )


# ---------------------------------------------------------------- task 2: the queue


@pytest.mark.task(2)
def test_the_queue_hands_out_urgent_then_high_then_normal_then_low():
    """Whatever the order of arrival, the most urgent waiting job comes out first."""
    queue = jobs.JobQueue()
    arrivals = [make_job(1, "low"), make_job(2, "normal"), make_job(3, "urgent"), make_job(4, "high")]
    put_all(queue, arrivals)
    got = drain(queue)
    expected = [arrivals[2], arrivals[3], arrivals[1], arrivals[0]]
    assert got == expected, lesson(
        expected=line(expected),
        got=line(got),
        revisit="task 2: the queue orders entries by rank(job.priority), not by the priority's name (task 1)",
    )


@pytest.mark.task(2)
def test_jobs_of_equal_priority_come_out_in_the_order_they_arrived():
    """Among equals it is first come, first served, and dict payloads never get compared."""
    queue = jobs.JobQueue()
    arrivals = [make_job(n, "normal") for n in range(1, 6)]
    put_all(queue, arrivals)
    got = drain(queue)
    assert got == arrivals, lesson(
        expected=line(arrivals),
        got=line(got),
        revisit="task 2: break ties with an arrival number that only grows: (rank, next(arrivals), job)",
    )


@pytest.mark.task(2)
def test_put_returns_the_jobs_place_in_the_line_counting_from_one():
    """The position is 1 + the waiting jobs that go before it: higher priority, or equal and earlier."""
    queue = jobs.JobQueue()
    arrivals = [make_job(1, "low"), make_job(2, "normal"), make_job(3, "normal"), make_job(4, "urgent")]
    arrivals.append(make_job(5, "high"))
    positions = put_all(queue, arrivals)
    assert positions == [1, 1, 2, 1, 2], lesson(
        expected="positions [1, 1, 2, 1, 2] for low, normal, normal, urgent, high "
        "(the second normal waits behind the first; high waits behind urgent)",
        got=str(positions),
        revisit="task 2: count the waiting jobs whose rank is smaller OR EQUAL, then add 1",
    )


@pytest.mark.task(2)
def test_depth_counts_the_waiting_jobs_of_every_priority_zeros_included():
    """depth() names all four priorities; taking a job out counts it out."""
    queue = jobs.JobQueue()
    put_all(queue, [make_job(1, "low"), make_job(2, "high"), make_job(3, "low")])
    queue.get_nowait()  # the high one
    depth = queue.depth()
    expected = {"urgent": 0, "high": 0, "normal": 0, "low": 2}
    assert depth == expected, lesson(
        expected=f"{expected} after queuing low, high, low and taking one job",
        got=str(depth),
        revisit="task 2: start every priority at 0, add one on put, take one off when a job is taken",
    )
    assert len(queue) == 2, lesson(expected="len(queue) == 2", got=str(len(queue)), revisit="task 2: __len__")


@pytest.mark.task(2)
async def test_get_waits_for_a_job_and_wakes_up_when_one_is_put(settle):
    """On an empty queue, ``await get()`` waits (no error, no busy loop) until put() gives it a job."""
    queue = jobs.JobQueue()
    waiting = asyncio.ensure_future(queue.get())
    try:
        await settle(waiting.done)
        assert not waiting.done(), lesson(
            expected="get() on an empty queue keeps waiting",
            got=f"it finished: {waiting.exception() or waiting.result()!r}",
            revisit="task 2: await the asyncio.PriorityQueue's get(); it suspends until an entry is put",
        )
        job = make_job(1, "high")
        put_all(queue, [job])
        woke = await settle(waiting.done)
        assert woke and waiting.result() == job, lesson(
            expected=f"get() returns {line([job])} once it is put",
            got=f"{waiting.result()!r}" if woke else "get() is still waiting after the put",
            revisit="task 2: put() must feed the same queue that get() awaits",
        )
    finally:
        waiting.cancel()


@pytest.mark.task(2)
@given(st.lists(st.sampled_from(ORDER), max_size=30))
def test_the_queue_serves_jobs_in_the_stable_sort_of_their_arrival_by_priority(priorities):
    """For any arrivals: out comes sorted(arrivals, key=priority's rank), ties kept in arrival order."""
    queue = jobs.JobQueue()  # built per example: hypothesis runs this body many times
    arrivals = [make_job(n, priority) for n, priority in enumerate(priorities)]
    put_all(queue, arrivals)
    got = drain(queue)
    expected = sorted(arrivals, key=lambda job: ORDER.index(job.priority.value))  # sorted() is stable
    assert got == expected, lesson(
        expected=line(expected),
        got=line(got),
        revisit="task 2: order by (rank, arrival number); hypothesis shows the smallest arrival list that breaks",
    )


@pytest.mark.task(2)
@given(st.lists(st.sampled_from(ORDER), max_size=30))
def test_each_position_put_returns_is_where_the_job_stands_in_the_line_at_that_moment(priorities):
    """After each put, the job stands at that position in the stable sort of the jobs waiting."""
    queue = jobs.JobQueue()
    waiting: list[Any] = []
    for n, priority in enumerate(priorities):
        job = make_job(n, priority)
        [position] = put_all(queue, [job])
        waiting.append(job)
        in_line = sorted(waiting, key=lambda job: ORDER.index(job.priority.value))
        assert position == in_line.index(job) + 1, lesson(
            expected=f"{job.id} ({priority}) at position {in_line.index(job) + 1} of the line {line(in_line)}",
            got=f"position {position}",
            revisit="task 2: 1 + the waiting jobs with a smaller or equal rank",
        )


# ---------------------------------------------------------------- task 3: the worker


@pytest.mark.task(3)
async def test_the_worker_hands_every_queued_job_to_the_handler_most_urgent_first(handler, settle):
    """run_worker takes each waiting job from the queue, in the queue's order, and awaits the handler."""
    queue = jobs.JobQueue()
    arrivals = [make_job(1, "normal"), make_job(2, "low"), make_job(3, "urgent"), make_job(4, "normal")]
    put_all(queue, arrivals)
    async with worker_running(queue, handler) as worker:
        await settle(lambda: len(handler.finished) == len(arrivals) or worker.done())
        expected = [arrivals[2], arrivals[0], arrivals[3], arrivals[1]]
        assert handler.finished == expected, lesson(
            expected=f"the handler gets {line(expected)}",
            got=f"{line(handler.finished)}; {worker_state(worker)}",
            revisit="task 3: loop for ever: job = await queue.get(); await handler(job)",
        )


@pytest.mark.task(3)
async def test_the_worker_runs_one_job_at_a_time(handler, settle):
    """While the handler works on a job, the others wait in the queue: that is what keeps the order."""
    queue = jobs.JobQueue()
    put_all(queue, [make_job(1, "high"), make_job(2, "high"), make_job(3, "low")])
    handler.hold()
    async with worker_running(queue, handler) as worker:
        await settle(lambda: len(handler.started) > 1 or worker.done())
        assert [job.id for job in handler.started] == ["j1"], lesson(
            expected="only j1 (high) handed out while it is still being handled",
            got=f"started: {line(handler.started)}; {worker_state(worker)}",
            revisit="task 3: await the handler before taking the next job; do not create a task per job",
        )
        handler.release()


@pytest.mark.task(3)
@pytest.mark.usefixtures("started_app")
async def test_the_app_starts_its_worker_when_it_starts(queue, handler, settle):
    """Once the app's lifespan has started, a job put in its queue is handled with no request at all."""
    job = make_job(1, "urgent")
    put_all(queue, [job])
    handled = await settle(lambda: handler.finished)
    assert handled and handler.finished == [job], lesson(
        expected=f"the worker hands {line([job])} to the handler",
        got=f"handled: {line(handler.finished)}; still waiting in the queue: {queue.depth()}",
        revisit="task 3: in the lifespan, before the yield: asyncio.create_task(run_worker(jobs, handler))",
    )


@pytest.mark.task(3)
@pytest.mark.usefixtures("started_app")
async def test_a_failing_job_is_logged_with_its_traceback_and_the_worker_goes_on(queue, handler, settle, caplog):
    """A job that raises is logged as an error and the next job is still handled."""
    caplog.set_level(logging.ERROR)
    bad, good = make_job(1, "urgent", explode=True), make_job(2, "low")
    put_all(queue, [bad, good])
    await settle(lambda: handler.finished)
    assert handler.finished == [good], lesson(
        expected=f"after {line([bad])} raised, the worker still handles {line([good])}",
        got=f"handled: {line(handler.finished)}; waiting: {queue.depth()}",
        revisit="task 3: wrap `await handler(job)` in try/except Exception, inside the loop",
    )
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info and "j1" in r.getMessage()]
    assert logged, lesson(
        expected="an ERROR record naming j1, with the traceback (logger.exception)",
        got=[f"{r.levelname}: {r.getMessage()}" for r in caplog.records] or "nothing logged",
        revisit="task 3: in the except block, logger.exception('job %s failed', job.id)",
    )


@pytest.mark.task(3)
async def test_shutting_the_app_down_stops_its_worker(app, queue, handler, settle):
    """After shutdown no task of the app is left running: the worker was cancelled and awaited."""
    before = asyncio.all_tasks()
    async with LifespanManager(app):
        put_all(queue, [make_job(1, "normal")])
        worked = await settle(lambda: handler.finished)
        assert worked, lesson(
            expected="a running worker while the app runs (it handles j1)",
            got="nothing handled j1",
            revisit="task 3: start run_worker as a task in the lifespan",
        )
    left = [task for task in asyncio.all_tasks() - before if not task.done()]
    for task in left:  # do not leave them to the next spec
        task.cancel()
    assert not left, lesson(
        expected="no task still running after the app shut down",
        got=f"still running: {[task.get_name() for task in left]}",
        revisit="task 3: after the lifespan's yield, worker.cancel(), then await it inside "
        "contextlib.suppress(asyncio.CancelledError)",
    )


# ---------------------------------------------------------------- task 4: the API


@pytest.mark.task(4)
async def test_a_job_is_accepted_with_202_its_id_priority_and_position(client):
    """202 Accepted: the job is queued, not done. The body says which job and where it stands."""
    response = await client.post("/jobs", json={"payload": {"report": "weekly"}, "priority": "high"})
    expect_status(
        response,
        202,
        expected="202 Accepted",
        revisit="task 4: the route is declared with status_code=202",
    )
    body = response.json()
    assert set(body) == {"id", "priority", "position"} and isinstance(body["id"], str) and body["id"], lesson(
        expected='{"id": "<a non-empty string>", "priority": "high", "position": 1}',
        got=response.text[:200],
        revisit="task 4: the endpoint's return value",
    )
    assert body["priority"] == "high" and body["position"] == 1, lesson(
        expected='"priority": "high" and "position": 1 (nothing was waiting)',
        got=response.text[:200],
        revisit="task 4: answer with job.priority.value and the position put() returned",
    )


@pytest.mark.task(4)
async def test_every_job_gets_its_own_id_and_normal_is_the_default_priority(client):
    """Two jobs, two ids; a job posted without a priority is a normal one."""
    first = await client.post("/jobs", json={"payload": {"n": 1}})
    second = await client.post("/jobs", json={"payload": {"n": 2}})
    assert first.status_code == second.status_code == 202, lesson(
        expected="202 twice, priority left out",
        got=f"{first.status_code} {first.text[:150]} / {second.status_code} {second.text[:150]}",
        revisit="task 4: priority: Priority = Priority.NORMAL, so it may be left out",
    )
    ids = [first.json().get("id"), second.json().get("id")]
    assert ids[0] != ids[1], lesson(expected="two different ids", got=str(ids), revisit="task 4: f'job-{next(ids)}'")
    assert first.json().get("priority") == "normal", lesson(
        expected='"priority": "normal" when the client sends none',
        got=first.text[:200],
        revisit="task 4: the field's default is Priority.NORMAL",
    )


@pytest.mark.task(4)
@pytest.mark.parametrize("priority", ["asap", "URGENT", "", 1, None])
async def test_an_unknown_priority_is_rejected_with_422_and_nothing_is_queued(client, handler, settle, priority):
    """Only urgent, high, normal and low are priorities: anything else is the client's mistake, a 422."""
    response = await client.post("/jobs", json={"payload": {"n": 1}, "priority": priority})
    expect_status(
        response,
        422,
        expected=f"422 Unprocessable Content for the priority {priority!r}",
        revisit="task 4: declare `priority: Priority` in JobRequest; FastAPI then rejects other values itself "
        "(a plain str lets 'asap' through to a KeyError or a ValueError: a 500)",
    )
    await settle(lambda: handler.started)
    assert handler.started == [], lesson(
        expected="no job for a rejected request",
        got=line(handler.started),
        revisit="task 4: validation happens before the endpoint runs, so nothing is queued",
    )


@pytest.mark.task(4)
@pytest.mark.parametrize("body", [{}, {"priority": "high"}, {"payload": "run it", "priority": "high"}])
async def test_a_job_without_a_json_object_payload_is_rejected_with_422(client, body):
    """`payload` is required and must be a JSON object."""
    response = await client.post("/jobs", json=body)
    expect_status(
        response,
        422,
        expected=f"422 for {body}",
        revisit="task 4: payload: dict[str, Any], with no default",
    )


@pytest.mark.task(4)
async def test_the_positions_in_the_answers_follow_the_priorities_while_the_worker_is_busy(client, handler, settle):
    """With the worker busy, each answer's position is the job's place in the line at that moment."""
    await busy_worker(client, settle, handler)
    posted = []
    for priority in ["low", "normal", "urgent", "high", "normal"]:
        response = await post_job(client, settle, handler, {"payload": {}, "priority": priority})
        posted.append((priority, response.json().get("position") if response.status_code == 202 else response.text))
    handler.release()
    expected = [("low", 1), ("normal", 1), ("urgent", 1), ("high", 2), ("normal", 4)]
    assert posted == expected, lesson(
        expected=f"(priority, position): {expected}",
        got=str(posted),
        revisit="task 4: answer with the position queue.put() returned (task 2 computes it). All 1s: the worker "
        "took each job at once, before the one it was busy with was done (task 3: await the handler)",
    )


@pytest.mark.task(4)
async def test_the_queue_endpoint_reports_how_many_jobs_wait_at_each_priority(client, handler, settle):
    """GET /queue: the depth of every priority, zeros included, and the total."""
    await busy_worker(client, settle, handler)
    for priority in ["low", "high", "low"]:
        await post_job(client, settle, handler, {"payload": {}, "priority": priority})
    response = await client.get("/queue")
    handler.release()
    expected = {"depth": {"urgent": 0, "high": 1, "normal": 0, "low": 2}, "total": 3}
    assert response.status_code == 200 and response.json() == expected, lesson(
        expected=f"200 {expected} (the job being worked on no longer waits)",
        got=f"{response.status_code} {response.text[:200]}",
        revisit="task 4: return {'depth': jobs.depth(), 'total': sum of the depths}. Nothing waiting: the worker "
        "took each job at once, before the one it was busy with was done (task 3: await the handler)",
    )


@pytest.mark.task(4)
async def test_jobs_posted_while_the_worker_is_busy_are_done_most_urgent_first(client, handler, settle, timeline):
    """End to end: jobs pile up behind a busy worker and come out by priority, equals in arrival order."""
    await busy_worker(client, settle, handler)
    arrivals = ["low", "normal", "urgent", "high", "normal", "urgent"]
    for number, priority in enumerate(arrivals, start=1):
        await post_job(client, settle, handler, {"payload": {"n": number}, "priority": priority})
    handler.release()
    await settle(lambda: len(handler.finished) > len(arrivals))
    got = [f"#{job.payload.get('n')} ({getattr(job.priority, 'value', job.priority)})" for job in handler.finished[1:]]
    expected = [f"#{n} ({arrivals[n - 1]})" for n in [3, 6, 4, 2, 5, 1]]
    assert got == expected, (
        "The jobs were not done in priority order (#n: the n-th job posted behind the busy worker)."
        + lesson(
            expected=", ".join(expected),
            got=", ".join(got) or "(none done)",
            revisit="tasks 2-4: the endpoint puts jobs in the queue and the one worker takes them out; sleeping "
            "less for urgent jobs (the tutorial's version) changes nothing about the order",
        )
        + timeline.render()
    )
