"""Specs for kata 4: a priority queue and its worker.

Run them with

    uv run pytest katas/k04_priority_queue

Each spec names the README task it checks. Edit jobs.py, not this file (nor conftest.py,
which holds the fake handler, the fixtures and the specs' virtual clock).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dojo.impl import kata_module
from dojo.plugin import KataClient
from dojo.teach import expect_status, expect_type, lesson
from dojo.timeline import BOUND, CatchAppErrors, every_case
from dojo.virtual_clock import Lifespan, after_time_passes, idle_wait, stop_task

jobs = kata_module("k04_priority_queue", "jobs")

ORDER = ["urgent", "high", "normal", "low"]  # served first to served last

#: A bound on any wait for the code under test, in seconds of the specs' virtual clock: a
#: correct app needs no time at all, a stuck one reaches the bound at once.

ANSWER = "task 4: the answer says which job, at which priority, and where it stands (README: Accept jobs over HTTP)"
COUNTS = "task 4: counts of jobs are whole numbers (README: Accept jobs over HTTP)"


def make_job(number: int, priority: str, **payload: Any) -> Any:
    """A job called ``j<number>`` whose payload is a dict, as a client's would be."""
    return jobs.Job(id=f"j{number}", priority=jobs.Priority(priority), payload={"n": number, **payload})


def put_all(queue: Any, arrivals: list[Any]) -> list[int]:
    """Put each job in ``queue``; the positions, each checked to be an int."""
    __tracebackhide__ = True
    try:
        positions = [queue.put(job) for job in arrivals]
    except TypeError as caught:
        error = caught  # failed below, outside the except block, so the report is the lesson alone
    else:
        return [
            expect_type(
                position,
                int,
                what=f"the position put returned for {job.id}",
                revisit="task 2: a position is a whole number, one for the job that is next "
                "(README: Keep the jobs in a priority queue)",
            )
            for job, position in zip(arrivals, positions, strict=True)
        ]
    pytest.fail(
        "Putting two jobs of the same priority in the queue raised a TypeError."
        + lesson(
            expected="jobs of equal priority queue up, first come first served",
            got=f"TypeError: {error}",
            revisit="task 2: on equal ranks the heap compares whatever comes next in an entry, and two dicts "
            "cannot be ordered; what comes next must differ for every job and grow with arrival "
            "(README: A priority queue, and order among equals)",
        ),
        pytrace=False,
    )


def expect_job(value: Any, what: str) -> Any:
    """``value`` if it is a Job (exactly), else a lesson."""
    __tracebackhide__ = True
    return expect_type(
        value,
        jobs.Job,
        what=what,
        revisit="task 2: the queue hands out the very jobs it was given (README: Keep the jobs in a priority queue)",
    )


def drain(queue: Any) -> list[Any]:
    """Every waiting job, in the order the queue hands them out."""
    out = []
    with contextlib.suppress(asyncio.QueueEmpty):
        while len(out) < 1000:
            out.append(expect_job(queue.get_nowait(), "what get_nowait returned"))
    return out


def line(job_list: list[Any]) -> str:
    """``j3 (urgent), j1 (normal)``: jobs as a message shows them."""
    return ", ".join(f"{job.id} ({getattr(job.priority, 'value', job.priority)})" for job in job_list) or "(none)"


@contextlib.asynccontextmanager
async def worker_running(queue: Any, handler: Any) -> AsyncIterator[asyncio.Future[None]]:
    """``run_worker(queue, handler)`` as a task for the block; stopped (bounded) after it."""
    task = asyncio.ensure_future(jobs.run_worker(queue, handler))
    try:
        yield task
    finally:
        await stop_task(task)  # what the worker did is in the spec's message


def worker_state(task: asyncio.Future[None]) -> str:
    """What became of the worker task, for a message."""
    if not task.done():
        return "the worker is still running"
    if task.cancelled():
        return "the worker was cancelled"
    error = task.exception()
    return f"the worker stopped with {type(error).__name__}: {error}" if error else "the worker returned"


async def started(app: Any) -> Lifespan:
    """The app's lifespan, started; a start-up that does not complete fails with its lesson."""
    __tracebackhide__ = True
    lifespan = Lifespan(app)
    outcome = await lifespan.start()
    assert outcome == "complete", lesson(
        expected="the app's start-up completes at once, with the worker running beside it",
        got=f"start-up {outcome}",
        revisit="task 3: the lifespan starts the worker as a task of its own and goes on to serve; waiting for "
        "a worker that never ends keeps the app from ever starting (README: A worker that lives as long as the app)",
    )
    return lifespan


async def post_job(client: httpx.AsyncClient, settle: Any, handler: Any, body: dict[str, Any]) -> httpx.Response:
    """POST /jobs and return the response, failing if it waits for the (held) handler."""
    __tracebackhide__ = True
    call = asyncio.ensure_future(client.post("/jobs", json=body))
    if not await settle(call.done):
        handler.release()
        done, _ = await asyncio.wait({call}, timeout=BOUND)
        response = f"{call.result().status_code} {call.result().text[:200]}" if done else "still no answer"
        pytest.fail(
            "POST /jobs did not finish while the handler was busy: the job ran inside the request."
            + lesson(
                expected="the request is over at once (202) while the one worker is busy with an earlier job",
                got=f"it finished only once the handler was released: {response}",
                revisit="task 4: the endpoint only puts the job in the line and answers; the worker runs it. Run "
                "inside the request, or as a background task of the request, each job runs on its own: there "
                "is no line, and priority decides nothing (README: Accept jobs over HTTP)",
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
        revisit="task 4: the endpoint puts the job in the line and answers 202 (README: Accept jobs over HTTP)",
    )
    assert await settle(lambda: handler.started), lesson(
        expected="the worker to take the first job posted and hand it to the handler",
        got=f"the handler was never called (the queue reports {await queue_text(client)})",
        revisit="task 3: the app's start-up starts the worker, which takes each job as it comes "
        "(README: A worker that lives as long as the app)",
    )


async def queue_text(client: httpx.AsyncClient) -> str:
    response = await client.get("/queue")
    return f"{response.status_code} {response.text[:200]}"


# ---------------------------------------------------------------- task 1: rank the priorities


@pytest.mark.task(1)
def test_urgent_ranks_before_high_before_normal_before_low():
    """rank() gives urgent the smallest number, then high, normal, low: smaller is served sooner."""
    ranks = {
        name: expect_type(
            jobs.rank(jobs.Priority(name)),
            int,
            what=f"the rank of {name}",
            revisit="task 1: a rank is a whole number, the smaller the sooner (README: Rank the priorities)",
        )
        for name in ORDER
    }
    by_rank = sorted(ORDER, key=lambda name: ranks[name])
    assert by_rank == ORDER and len(set(ranks.values())) == 4, lesson(
        expected=f"ranks increasing in this order, all different: {' < '.join(ORDER)}",
        got=f"{ranks}, which serves {' then '.join(by_rank)}",
        revisit="task 1: spell the order out; the names sorted give high, low, normal, urgent, and the enum lists "
        "low first (README: Rank the priorities)",
    )
    expected = {"urgent": 0, "high": 1, "normal": 2, "low": 3}
    assert ranks == expected, lesson(
        expected=str(expected),
        got=str(ranks),
        revisit="task 1: the ranks count from zero for urgent, one more for each priority after it "
        "(README: Rank the priorities)",
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
        revisit="task 2: a heap hands out its smallest entry first, so an entry must start with the rank of task 1, "
        "not with the priority's name (README: A priority queue, and order among equals)",
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
        revisit="task 2: among equal ranks the heap orders by what comes next in the entry: a number that grows "
        "with every arrival keeps them first come, first served (README: A priority queue, and order among equals)",
    )


@pytest.mark.task(2)
def test_a_waiting_job_cannot_be_changed_behind_the_queues_back():
    """The heap placed each job by its rank when it was put: a job that changed later would break its order."""
    queue = jobs.JobQueue()
    job = make_job(1, "low")
    put_all(queue, [job])
    outcome = "it changed"
    try:
        job.priority = jobs.Priority.URGENT
    except AttributeError as error:  # dataclasses.FrozenInstanceError is one
        outcome = f"refused ({type(error).__name__})"
    assert outcome.startswith("refused"), lesson(
        expected="setting the priority of a queued job is refused: a Job is frozen",
        got=f"{outcome}: the job now says {job.priority.value}, but the heap still holds it where low jobs go",
        revisit="task 2: a heap orders its entries when they are put and never looks again, so what it holds "
        "must not change while it waits (README: A priority queue, and order among equals)",
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
        revisit="task 2: count the waiting jobs of a more urgent or the same priority, then add one "
        "(README: Keep the jobs in a priority queue)",
    )


@pytest.mark.task(2)
async def test_depth_counts_the_waiting_jobs_of_every_priority_zeros_included():
    """depth() names all four priorities, from the start; taking a job out, either way, counts it out."""
    queue = jobs.JobQueue()
    zeros = {"urgent": 0, "high": 0, "normal": 0, "low": 0}
    moments = [("an empty queue", queue.depth(), len(queue), zeros)]
    put_all(queue, [make_job(1, "low"), make_job(2, "high"), make_job(3, "low"), make_job(4, "urgent")])
    moments.append(
        ("low, high, low, urgent queued", queue.depth(), len(queue), zeros | {"high": 1, "low": 2, "urgent": 1})
    )
    queue.get_nowait()  # the urgent one
    got = await asyncio.wait_for(queue.get(), BOUND)  # the high one
    expect_job(got, "what get returned")
    moments.append(("two of them taken out", queue.depth(), len(queue), zeros | {"low": 2}))
    for moment, depth, length, expected in moments:
        expect_type(
            depth,
            dict,
            items=(str,),
            what=f"depth() of {moment}, keyed by the priorities' names",
            revisit="task 2: depth names each priority by its text, the way a client writes it "
            "(README: Keep the jobs in a priority queue)",
        )
        for count in depth.values():
            expect_type(
                count,
                int,
                what=f"each count in depth() of {moment}",
                revisit="task 2: depth counts jobs, in whole numbers (README: Keep the jobs in a priority queue)",
            )
        expect_type(
            length,
            int,
            what=f"len of {moment}",
            revisit="task 2: the length of the queue is the number of waiting jobs "
            "(README: Keep the jobs in a priority queue)",
        )
        assert depth == expected and length == sum(expected.values()), lesson(
            expected=f"depth {expected} and length {sum(expected.values())} for {moment}",
            got=f"depth {depth} and length {length}",
            revisit="task 2: every priority counts from zero, one more for each job put, one less for each job "
            "taken out, by either of the two ways out (README: Keep the jobs in a priority queue)",
        )


@pytest.mark.task(2)
def test_taking_a_job_at_once_from_an_empty_queue_raises_queue_empty():
    """get_nowait() on an empty queue raises asyncio.QueueEmpty, as asyncio's own queues do."""
    queue = jobs.JobQueue()
    outcome = "returned"
    try:
        returned = queue.get_nowait()
    except asyncio.QueueEmpty:
        outcome = "QueueEmpty"
    except Exception as error:  # noqa: BLE001 - any other exception is the mistake to show
        outcome = f"{type(error).__name__}: {error}"
    else:
        outcome = f"it returned {returned!r}"
    assert outcome == "QueueEmpty", lesson(
        expected="asyncio.QueueEmpty when nothing waits",
        got=outcome,
        revisit="task 2: taking a job at once from an empty line is an error the caller can catch, the one "
        "asyncio's queues raise (README: Keep the jobs in a priority queue)",
    )


@pytest.mark.task(2)
async def test_get_hands_out_the_most_urgent_waiting_job_too():
    """The waiting way out serves the same line as the immediate one: most urgent first, then first come."""
    queue = jobs.JobQueue()
    arrivals = [make_job(1, "low"), make_job(2, "high"), make_job(3, "high")]
    put_all(queue, arrivals)
    got = [expect_job(await asyncio.wait_for(queue.get(), BOUND), "what get returned") for _ in arrivals]
    expected = [arrivals[1], arrivals[2], arrivals[0]]
    assert got == expected, lesson(
        expected=line(expected),
        got=line(got),
        revisit="task 2: both ways out take the next entry of the same heap "
        "(README: Keep the jobs in a priority queue)",
    )


@pytest.mark.task(2)
async def test_get_waits_for_a_job_and_wakes_up_as_soon_as_one_is_put(settle):
    """On an empty queue, ``await get()`` waits; put() wakes it within a few turns of the loop, no time passing."""
    queue = jobs.JobQueue()
    waiting = asyncio.ensure_future(queue.get())
    try:
        await settle(waiting.done)
        assert not waiting.done(), lesson(
            expected="get() on an empty queue keeps waiting",
            got=f"it finished: {waiting.exception() or waiting.result()!r}",
            revisit="task 2: the waiting way out suspends until a job is put (README: Park, do not poll)",
        )
        job = make_job(1, "high")
        put_all(queue, [job])
        woke = await settle(waiting.done)
        got = "it returned"
        if not woke:
            got = (
                "get() noticed the job only after time had passed on the clock: it sleeps and looks again "
                "(it polls), so it wakes late, and only if its sleep happens to end in time"
                if await after_time_passes(waiting.done)
                else "get() was still waiting, even after time passed"
            )
        assert woke, lesson(
            expected=f"get() returns {line([job])} within a few turns of the event loop, with no time passing",
            got=got,
            revisit="task 2: park the waiting caller on something that put wakes, instead of sleeping and "
            "looking again (README: Park, do not poll)",
        )
        result = expect_job(waiting.result(), "what get returned")
        assert result == job, lesson(
            expected=line([job]),
            got=line([result]),
            revisit="task 2: put feeds the same line that get waits on (README: Keep the jobs in a priority queue)",
        )
    finally:
        await stop_task(waiting)


@pytest.mark.task(2)
async def test_waiting_on_an_empty_queue_leaves_the_event_loop_idle(settle):
    """A parked get() costs nothing: while it waits, the loop has nothing to run and no timer to wake for."""
    queue = jobs.JobQueue()
    waiting = asyncio.ensure_future(queue.get())
    try:
        await settle(lambda: False, rounds=10)  # let it reach its wait
        busy, wakeups = await idle_wait(10.0)
        got = (
            f"{busy} busy turns of the loop and {wakeups} timer wake-ups: get() keeps checking the queue "
            "(polling) instead of waiting to be woken"
        )
        if waiting.done():
            got = f"get() did not wait: {waiting.exception() or waiting.result()!r}"
        assert busy <= 5 and wakeups <= 1 and not waiting.done(), lesson(
            expected="during 10 s of waiting on an empty queue, a get() still waiting and an idle event loop "
            "(a turn or two, one wake-up: the spec's own)",
            got=got,
            revisit="task 2: a waiting get parks on something put wakes, so it costs nothing while the line is "
            "empty (README: Park, do not poll)",
        )
    finally:
        await stop_task(waiting)


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
        revisit="task 2: order by rank, then by arrival; hypothesis shows the smallest list of arrivals that "
        "breaks (README: A priority queue, and order among equals)",
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
            revisit="task 2: one more than the waiting jobs of a more urgent or the same priority "
            "(README: Keep the jobs in a priority queue)",
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
            revisit="task 3: the worker loops for ever, taking the next job from the queue and waiting for the "
            "handler to finish it (README: Run the worker with the app)",
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
            revisit="task 3: wait for the handler to finish a job before taking the next; a task per job hands "
            "the whole line out at once (README: Run the worker with the app)",
        )


@pytest.mark.task(3)
async def test_a_waiting_worker_takes_a_new_job_as_soon_as_it_is_put(handler, settle):
    """A worker waiting on an empty queue gets a job put later within a few turns of the loop, no time passing."""
    queue = jobs.JobQueue()
    async with worker_running(queue, handler) as worker:
        await settle(worker.done, rounds=20)
        job = make_job(1, "urgent")
        put_all(queue, [job])
        taken = await settle(lambda: handler.started or worker.done())
        got = f"handed to the handler: {line(handler.started)}; {worker_state(worker)}"
        if not taken:
            got = (
                "the worker took j1 only after time had passed on the clock: it sleeps and looks again (it "
                "polls), so every job waits for its next look, and the loop wakes for nothing while the line "
                "is empty"
                if await after_time_passes(lambda: handler.started)
                else f"the worker never took j1; {worker_state(worker)}"
            )
        assert taken and handler.started == [job], lesson(
            expected=f"the handler gets {line([job])} within a few turns of the event loop, with no time passing",
            got=got,
            revisit="task 3: the worker waits on the queue itself, which wakes it when a job is put, instead "
            "of sleeping and looking again (README: Park, do not poll)",
        )


@pytest.mark.task(3)
async def test_an_idle_worker_leaves_the_event_loop_idle(handler, settle):
    """With nothing to do, the worker is parked: the loop has nothing to run and no timer to wake for."""
    queue = jobs.JobQueue()
    async with worker_running(queue, handler) as worker:
        await settle(worker.done, rounds=10)
        busy, wakeups = await idle_wait(10.0)
        assert busy <= 5 and wakeups <= 1 and not worker.done(), lesson(
            expected="during 10 s with an empty queue, an idle event loop (a turn or two, one wake-up: "
            "the spec's own) and a worker still waiting",
            got=f"{busy} busy turns of the loop and {wakeups} timer wake-ups; {worker_state(worker)}",
            revisit="task 3: an idle worker parks on the queue; looping to check it keeps the processor busy "
            "and wakes the loop for nothing (README: Park, do not poll)",
        )


@pytest.mark.task(3)
async def test_the_app_starts_its_worker_when_it_starts(app, queue, handler, settle):
    """Once the app's lifespan has started, a job put in its queue is handled with no request at all."""
    lifespan = await started(app)
    job = make_job(1, "urgent")
    put_all(queue, [job])
    handled = await settle(lambda: handler.finished)
    assert handled and handler.finished == [job], lesson(
        expected=f"the worker hands {line([job])} to the handler",
        got=f"handled: {line(handler.finished)}; still waiting in the queue: {queue.depth()}",
        revisit="task 3: the app's start-up starts the worker as a task and keeps it "
        "(README: A worker that lives as long as the app)",
    )
    await lifespan.stop()


@pytest.mark.task(3)
async def test_a_failing_job_is_handled_once_logged_at_error_with_its_traceback_and_the_worker_goes_on(
    handler, settle, caplog
):
    """A job that raises is not retried, is logged at ERROR with its traceback, and the next job still runs."""
    caplog.set_level(logging.DEBUG)
    queue = jobs.JobQueue()
    bad, good = make_job(1, "urgent", explode=True), make_job(2, "low")
    put_all(queue, [bad, good])
    async with worker_running(queue, handler) as worker:
        await settle(lambda: handler.finished or worker.done())
        assert handler.finished == [good], lesson(
            expected=f"after {line([bad])} raised, the worker still handles {line([good])}",
            got=f"handled: {line(handler.finished)}; {worker_state(worker)}",
            revisit="task 3: a job that raises is caught inside the loop, so the loop goes on "
            "(README: Run the worker with the app)",
        )
    calls = handler.ids("started").count("j1")
    assert calls == 1, lesson(
        expected="the failing job handed to the handler exactly once",
        got=f"{calls} times",
        revisit="task 3: a failed job is logged and left; retrying is kata 3's business "
        "(README: Run the worker with the app)",
    )
    about_j1 = [record for record in caplog.records if "j1" in record.getMessage()]
    shown = [f"{r.levelname}: {r.getMessage()} (traceback: {'yes' if r.exc_info else 'no'})" for r in about_j1]
    right = [
        record
        for record in about_j1
        if record.levelno == logging.ERROR and record.exc_info and isinstance(record.exc_info[1], RuntimeError)
    ]
    assert len(right) == 1 and len(about_j1) == 1, lesson(
        expected="one record naming j1, at ERROR exactly, with the handler's RuntimeError and its traceback",
        got="; ".join(shown) or "nothing logged about j1",
        revisit="task 3: the logger's way of reporting an error from inside the handler of an exception "
        "records it at ERROR with the traceback (README: Run the worker with the app)",
    )


@pytest.mark.task(3)
async def test_shutting_the_app_down_stops_its_idle_worker(app, queue, handler, settle):
    """After shutdown no task the app started is left running."""
    lifespan = await started(app)
    put_all(queue, [make_job(1, "normal")])
    worked = await settle(lambda: handler.finished)
    assert worked, lesson(
        expected="a running worker while the app runs (it handles j1)",
        got="nothing handled j1",
        revisit="task 3: the app's start-up starts the worker (README: A worker that lives as long as the app)",
    )
    outcome = await lifespan.stop()
    left = lifespan.still_running()
    assert outcome == "complete" and not left, lesson(
        expected="shutdown complete, and no task the app started still running",
        got=f"shutdown {outcome}; still running: {[task.get_name() for task in left] or 'nothing'}",
        revisit="task 3: at shutdown the lifespan cancels its worker, then waits for it to end "
        "(README: Cancelling a task and waiting for it)",
    )


@pytest.mark.task(3)
async def test_shutting_the_app_down_mid_job_cancels_the_worker_and_waits_until_it_has_cleaned_up(
    app, queue, handler, settle, caplog
):
    """Shutdown while a job runs: the job is cancelled, and shutdown completes only once the worker has ended."""
    caplog.set_level(logging.DEBUG)
    lifespan = await started(app)
    job = make_job(1, "normal")
    handler.hold()
    put_all(queue, [job])
    assert await settle(lambda: handler.started), lesson(
        expected="the worker takes j1 and holds it in the handler",
        got="the handler was never called",
        revisit="task 3: the app's start-up starts the worker (README: A worker that lives as long as the app)",
    )
    outcome = await lifespan.stop()
    left = lifespan.still_running()
    cleaned = list(handler.cleaned_up)  # at the moment shutdown completed: no turn of the loop since
    if outcome == "never finished" and not handler.cancelled:
        why = "shutdown waited for a worker that was never cancelled: it would wait for ever"
    elif outcome == "never finished":
        logged = [r.getMessage() for r in caplog.records if r.exc_info and r.exc_info[0] is asyncio.CancelledError]
        why = (
            "the worker was cancelled, caught the cancellation as if the job had failed"
            f"{' (logged: ' + logged[0] + ')' if logged else ''} and went on waiting for jobs, so shutdown never ended"
        )
    elif outcome != "complete":
        why = f"shutdown {outcome}: the cancellation the worker ends with reached the server as a failure"
    elif not handler.cancelled:
        why = f"shutdown completed and the job was never cancelled; still running: {len(left)} task(s)"
    else:
        why = (
            f"shutdown completed while the worker was still cleaning up its job (cleaned up: {line(cleaned)}; "
            f"still running: {len(left)} task(s)): nobody waited for the cancelled worker to end"
        )
    assert outcome == "complete" and cleaned == [job] and not left, lesson(
        expected="shutdown cancels the busy worker, waits while the job cleans up, then completes, with "
        "no task left running",
        got=why,
        revisit="task 3: cancelling only asks; the worker ends at its next await, after its clean-up, and "
        "shutdown must wait for that and accept the cancellation it ends with "
        "(README: Cancelling a task and waiting for it)",
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
        revisit="task 4: the route answers 202 Accepted, since the work is only queued (README: Accept jobs over HTTP)",
    )
    body = expect_type(
        response.json(),
        dict,
        what="the response body",
        revisit="task 4: the endpoint answers with a JSON object (README: Accept jobs over HTTP)",
    )
    assert set(body) == {"id", "priority", "position"}, lesson(
        expected='{"id": "<a non-empty string>", "priority": "high", "position": 1}',
        got=response.text[:200],
        revisit="task 4: the answer has exactly the fields id, priority and position (README: Accept jobs over HTTP)",
    )
    expect_type(body["id"], str, what="the id", revisit=ANSWER)
    expect_type(body["priority"], str, what="the priority", revisit=ANSWER)
    expect_type(body["position"], int, what="the position", revisit=ANSWER)
    assert body["id"] and body["priority"] == "high" and body["position"] == 1, lesson(
        expected='a non-empty id, "priority": "high" and "position": 1 (nothing was waiting)',
        got=response.text[:200],
        revisit="task 4: the priority as the client wrote it, and the position the queue gave "
        "(README: Accept jobs over HTTP)",
    )


@pytest.mark.task(4)
async def test_every_job_gets_its_own_id_and_normal_is_the_default_priority(client, handler, settle):
    """Two jobs, two ids; a job posted without a priority is a normal one; the worker gets the job announced."""
    first = await client.post("/jobs", json={"payload": {"n": 1}})
    second = await client.post("/jobs", json={"payload": {"n": 2}})
    assert first.status_code == second.status_code == 202, lesson(
        expected="202 twice, priority left out",
        got=f"{first.status_code} {first.text[:150]} / {second.status_code} {second.text[:150]}",
        revisit="task 4: the priority may be left out, and then it is normal (README: Accept jobs over HTTP)",
    )
    ids = [first.json().get("id"), second.json().get("id")]
    assert ids[0] != ids[1], lesson(
        expected="two different ids",
        got=str(ids),
        revisit="task 4: every job gets an id no other job has (README: Accept jobs over HTTP)",
    )
    assert first.json().get("priority") == "normal", lesson(
        expected='"priority": "normal" when the client sends none',
        got=first.text[:200],
        revisit="task 4: the priority field defaults to normal (README: Accept jobs over HTTP)",
    )
    await settle(lambda: len(handler.finished) >= 2)
    handed = [(job.id, getattr(job.priority, "value", job.priority), job.payload) for job in handler.finished]
    expected = [(ids[0], "normal", {"n": 1}), (ids[1], "normal", {"n": 2})]
    assert handed == expected, lesson(
        expected=f"the worker gets the jobs announced: {expected}",
        got=str(handed),
        revisit="task 4: the job put in the line carries the id announced, the priority and the payload as "
        "posted (README: Accept jobs over HTTP)",
    )


@pytest.mark.task(4)
async def test_ids_never_repeat_even_after_the_worker_has_emptied_the_queue(client, handler, settle):
    """An id names one job for good: counting the waiting jobs would hand the same id out again."""
    ids = []
    for n in range(3):
        response = await client.post("/jobs", json={"payload": {"n": n}})
        expect_status(response, 202, revisit="task 4: a valid job is accepted (README: Accept jobs over HTTP)")
        ids.append(
            expect_type(
                response.json().get("id"),
                str,
                what="the id",
                revisit="task 4: an id is a string (README: Accept jobs over HTTP)",
            )
        )
        await settle(lambda n=n: len(handler.finished) > n)  # the worker empties the queue each time
    assert ids == ["job-1", "job-2", "job-3"], lesson(
        expected="job-1, job-2, job-3: three different ids, each job posted once the worker had emptied the queue",
        got=str(ids),
        revisit="task 4: an id comes from a counter of its own that never goes back, not from how many jobs "
        "are waiting (README: Accept jobs over HTTP)",
    )


async def nothing_was_queued(handler, settle, *, before: int, sent: str) -> None:
    """After a rejected request, let the worker run: no job may reach the handler beyond the ``before`` it had."""
    __tracebackhide__ = True
    await settle(lambda: len(handler.started) > before)
    assert handler.started[before:] == [], lesson(
        expected=f"no job for a rejected request ({sent})",
        got=line(handler.started[before:]),
        revisit="task 4: validation happens before the endpoint runs, so nothing is queued "
        "(README: Accept jobs over HTTP)",
    )


async def a_moment_apart() -> None:
    """Let the loop go idle for a moment of virtual time (the clock jumps to its end at once) before a case.

    A spec of many inputs settles after each one, and settling keeps the loop busy; back to
    back, the cases would be one busy stretch long enough for the virtual clock to move on to
    the next timer anyway, which is the bound on all the cases. A moment of idle between them
    starts that count again, as a spec of its own per input did.
    """
    await idle_wait(0.001)


#: Priorities that are none of urgent, high, normal and low, by the JSON a client sends for them.
UNKNOWN_PRIORITIES = {
    json.dumps(priority, ensure_ascii=False): priority
    for priority in ["asap", "URGENT", "Urgent", " urgent", "ürgent", "", 1, None, ["urgent"]]
}
ENUM = (
    "task 4: typed as the enum, the priority is checked before the endpoint runs; as plain text, "
    "a wrong one gets through to a crash, a 500 (README: Accept jobs over HTTP)"
)


@pytest.mark.task(4)
async def test_an_unknown_priority_is_rejected_with_422_and_nothing_is_queued(client, handler, settle):
    """Only urgent, high, normal and low are priorities: anything else is the client's mistake, a 422.

    The requests go to one app, one after another; each is judged by the jobs it made reach the handler.
    """

    async def check(priority: object) -> None:
        await a_moment_apart()
        before = len(handler.started)
        response = await client.post("/jobs", json={"payload": {"n": 1}, "priority": priority})
        expect_status(response, 422, expected=f"422 Unprocessable Content for the priority {priority!r}", revisit=ENUM)
        await nothing_was_queued(handler, settle, before=before, sent=f"the priority {priority!r}")

    await every_case(UNKNOWN_PRIORITIES, check, what="unknown priorities", revisit=ENUM)


#: Bodies whose payload is missing or no JSON object.
WITHOUT_AN_OBJECT = {
    "empty body": {},
    "missing": {"priority": "high"},
    "string": {"payload": "run it", "priority": "high"},
    "list": {"payload": ["run", "it"]},
    "empty list": {"payload": []},
    "int": {"payload": 3},
    "float": {"payload": 2.5},
    "bool": {"payload": True},
    "null": {"payload": None},
}
OBJECT = (
    "task 4: the payload is a required JSON object, nothing else and never left out (README: Accept jobs over HTTP)"
)


@pytest.mark.task(4)
async def test_a_job_without_a_json_object_payload_is_rejected_with_422(client, handler, settle):
    """`payload` is required and must be a JSON object: missing, a list, text, a number or null are 422s.

    The requests go to one app, one after another; each is judged by the jobs it made reach the handler.
    """

    async def check(body: dict[str, Any]) -> None:
        await a_moment_apart()
        before = len(handler.started)
        response = await client.post("/jobs", json=body)
        expect_status(response, 422, expected=f"422 for {body}", revisit=OBJECT)
        await nothing_was_queued(handler, settle, before=before, sent=f"the body {body}")

    await every_case(WITHOUT_AN_OBJECT, check, what="bodies without an object payload", revisit=OBJECT)


#: Payloads that are JSON objects: the empty one, and one with non-ASCII text and nesting.
PAYLOADS = {"empty": {}, "any": {"note": "Zoë's café ☕", "nested": {"list": [1, 2]}}}
AS_POSTED = "task 4: the job carries the payload as posted (README: Accept jobs over HTTP)"


@pytest.mark.task(4)
async def test_any_json_object_is_a_payload_handed_to_the_worker_unchanged(client, handler, settle):
    """An empty object is a payload; so is any object, non-ASCII text and nesting included.

    The jobs go to one app, one after another; each is judged by the payloads the handler got after it was posted.
    """

    async def check(payload: dict[str, Any]) -> None:
        await a_moment_apart()
        before = len(handler.finished)
        response = await client.post("/jobs", json={"payload": payload, "priority": "low"})
        expect_status(
            response,
            202,
            expected=f"202 Accepted for the payload {payload}",
            revisit="task 4: any JSON object is a payload, the empty one too (README: Accept jobs over HTTP)",
        )
        await settle(lambda: len(handler.finished) > before)
        got = [job.payload for job in handler.finished[before:]]
        assert got == [payload], lesson(
            expected=f"the worker gets the payload {payload}", got=str(got), revisit=AS_POSTED
        )

    await every_case(PAYLOADS, check, what="payloads", revisit=AS_POSTED)


@pytest.mark.task(4)
async def test_an_app_built_without_a_queue_makes_its_own(handler, settle):
    """`kata serve` builds the app with a handler only: it must make its own queue and worker."""
    app = jobs.create_app(handler=handler)
    lifespan = await started(app)
    async with KataClient(CatchAppErrors(app)) as client:
        response = await client.post("/jobs", json={"payload": {"n": 1}, "priority": "high"})
        await settle(lambda: handler.finished)
        depth = await client.get("/queue")
    await lifespan.stop()
    got = f"{response.status_code} {response.text[:150]}; handled: {line(handler.finished)}; /queue: {depth.text[:150]}"
    assert response.status_code == 202 and len(handler.finished) == 1 and depth.status_code == 200, lesson(
        expected="202, the job handled by the app's own worker, and 200 from GET /queue",
        got=got,
        revisit="task 4: with no queue given, the app makes one of its own, which its endpoints and its worker "
        "share (README: Accept jobs over HTTP)",
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
        revisit="task 4: answer with the position the queue gave when the job was put. All ones: the worker took "
        "each job at once, before the one it was busy with was done (README: Accept jobs over HTTP)",
    )


@pytest.mark.task(4)
async def test_the_queue_endpoint_reports_how_many_jobs_wait_at_each_priority(client, handler, settle):
    """GET /queue: the depth of every priority, zeros included, and the total."""
    empty = await client.get("/queue")
    await busy_worker(client, settle, handler)
    for priority in ["low", "high", "low"]:
        await post_job(client, settle, handler, {"payload": {}, "priority": priority})
    response = await client.get("/queue")
    handler.release()
    for moment, got, expected in [
        ("a new app", empty, {"depth": {"urgent": 0, "high": 0, "normal": 0, "low": 0}, "total": 0}),
        (
            "low, high, low behind a busy worker",
            response,
            {"depth": {"urgent": 0, "high": 1, "normal": 0, "low": 2}, "total": 3},
        ),
    ]:
        expect_status(
            got,
            200,
            revisit="task 4: the queue's depth is read, never changed, so it is a plain 200 "
            "(README: Accept jobs over HTTP)",
        )
        body = got.json()
        if isinstance(body, dict):
            expect_type(body.get("total"), int, what=f"the total, for {moment}", revisit=COUNTS)
            for count in (body.get("depth") or {}).values():
                expect_type(count, int, what=f"each depth, for {moment}", revisit=COUNTS)
        assert body == expected, lesson(
            expected=f"200 {expected} for {moment} (the job being worked on no longer waits)",
            got=f"{got.status_code} {got.text[:200]}",
            revisit="task 4: answer with the queue's depth and their total. Nothing waiting behind a busy worker: "
            "the worker took each job at once, before the one it was busy with was done "
            "(README: Accept jobs over HTTP)",
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
            revisit="task 4: the endpoint puts jobs in the line and the one worker takes them out; running each "
            "job in its own request after a shorter sleep for urgent ones changes nothing about the order "
            "(README: Accept jobs over HTTP)",
        )
        + timeline.render()
    )
