"""Specs for kata 9: limits and timeouts.

Run them with

    uv run pytest katas/k09_limits_and_timeouts

Each spec names the README task it checks. Edit reports.py, not this file (nor
conftest.py beside it, which puts every spec on the specs' own virtual clock).

The work the runner is given is a fake (``FakeWork`` below): each report's work does
what the spec planned for it (held until released, some seconds of the virtual clock, a
failure, a hang), and the fake records when each began and ended, and how many were at
work at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import fastapi  # noqa: F401 - the kata's stack, imported while pytest collects rather than inside the first spec
import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dojo.impl import kata_module
from dojo.plugin import KataClient
from dojo.teach import expect_json, expect_status, expect_type, lesson
from dojo.timeline import CatchAppErrors, within_bound
from dojo.virtual_clock import (
    Lifespan,
    VirtualClockLoop,
    after_time_passes,
    idle_wait,
    running_loop,
    settle,
    stop_leftovers,
)

reports = kata_module("k09_limits_and_timeouts", "reports")

# ---------------------------------------------------------------- the fake work


class ReportBrokenError(Exception):
    """What a report planned to fail raises."""


@dataclass
class Plan:
    """What the fake work does for one report: held until released (the default), or timed."""

    seconds: float | None = None  # virtual seconds it takes; None: held until released
    fails: bool = False  # raise ReportBrokenError at the end instead of finishing
    hangs: bool = False  # never ends on its own: only a cancellation stops it


@dataclass
class Run:
    """One call of the fake work: which report, when it began, and how and when it ended."""

    report: str
    started: float
    ended: float | None = None
    how: str = "at work"  # then "done", "failed" or "cancelled" (after "cleaning up")


class FakeWork:
    """The report builder a runner is given: ``await work(report)``, and nothing else.

    ``plan(report, ...)`` says what the call for that report does; by default it is held
    until ``release(report)`` or ``release_all()``. Every call is kept in ``runs``, in the
    order they began; ``peak`` is the most calls at work at the same moment. A call that
    is cancelled records the moment, cleans up for `cleanup_turns` turns of the loop, and ends cancelled.
    """

    def __init__(self) -> None:
        self.runs: list[Run] = []
        self.cleanup_turns = 0  # turns of the loop a cancelled call takes to clean up, as real work does
        self.at_work = 0
        self.peak = 0
        self._plans: dict[str, Plan] = {}
        self._gates: dict[str, asyncio.Event] = {}
        self._open = False

    def plan(self, report: str, *, seconds: float | None = None, fails: bool = False, hangs: bool = False) -> str:
        """Say what the work for ``report`` will do; returns the report's name."""
        self._plans[report] = Plan(seconds=seconds, fails=fails, hangs=hangs)
        return report

    def _gate(self, report: str) -> asyncio.Event:
        return self._gates.setdefault(report, asyncio.Event())

    def release(self, report: str) -> None:
        """A held report ends now: done, or failed if it was planned to fail."""
        self._gate(report).set()

    def release_all(self) -> None:
        """Every held report ends now, and any report's work ends as soon as it begins."""
        self._open = True
        for gate in self._gates.values():
            gate.set()

    async def __call__(self, report: str) -> None:
        """Build the report: what its plan says."""
        loop = asyncio.get_running_loop()
        run = Run(report=report, started=loop.time())
        self.runs.append(run)
        self.at_work += 1
        self.peak = max(self.peak, self.at_work)
        plan = self._plans.get(report, Plan())
        try:
            if plan.hangs:
                await loop.create_future()  # nothing ever sets it
            elif plan.seconds is not None:
                await asyncio.sleep(plan.seconds)
            elif not self._open:
                await self._gate(report).wait()
        except asyncio.CancelledError:
            run.how, run.ended = "cleaning up", loop.time()
            for _ in range(self.cleanup_turns):
                await asyncio.sleep(0)
            run.how = "cancelled"
            raise
        finally:
            self.at_work -= 1
        run.ended = loop.time()
        if plan.fails:
            run.how = "failed"
            raise ReportBrokenError(f"the renderer choked on {report}")
        run.how = "done"

    # ------------------------------------------------------------ reading
    def started(self) -> list[str]:
        """The reports whose work began, in the order it began."""
        return [run.report for run in self.runs]

    def working(self) -> list[str]:
        """The reports at work right now, in the order they began."""
        return [run.report for run in self.runs if run.ended is None]

    def run_of(self, report: str) -> Run | None:
        return next((run for run in self.runs if run.report == report), None)

    def calls(self, report: str) -> int:
        return sum(1 for run in self.runs if run.report == report)

    def story(self) -> str:
        """Every call so far, as a message shows it."""
        if not self.runs:
            return "no report's work ever began"
        lines = []
        for run in self.runs:
            end = "still at work" if run.ended is None else f"{run.how} at {run.ended:g} s"
            lines.append(f"{run.report}: began at {run.started:g} s, {end}")
        return "; ".join(lines)


#: Turns of the loop a cancelled call of the fake work takes to clean up, when a spec asks for it:
#: more than a shutdown that does not wait for its jobs lets pass.
CLEANUP_TURNS = 25


@pytest.fixture(name="work")
def _work() -> FakeWork:
    return FakeWork()


# ---------------------------------------------------------------- what each failure sends you back to

ACCEPTED = (
    "task 1: submit accepts the job and hands it back queued, with an id of its own; its work begins "
    "later, in the background (README: Run at most N jobs at once)"
)
LIFE = (
    "task 1: a job is queued until it holds a slot, running while its work runs, then done or failed "
    "for good (README: Run at most N jobs at once)"
)
SLOTS = (
    "task 1: one limit for every job of the runner, made once: a job begins its work only while fewer "
    "jobs than the limit are at work (README: Slots for the whole app)"
)
OWN_SLOTS = (
    "task 1: each runner has slots of its own, as many as its own limits say, not one set shared by "
    "every runner (README: Slots for the whole app)"
)
PARK = (
    "task 1: a waiting job parks on something that wakes it the moment a slot frees, first come first "
    "served, instead of sleeping and looking again (README: Waiting without polling)"
)
FAILED = (
    "task 1: a work that raises ends its job as failed, logged once at ERROR with its traceback, and "
    "gives its slot back (README: Run at most N jobs at once)"
)
LINE = (
    "task 2: submit counts the jobs it accepted that have not ended, running or waiting; at the sum of "
    "the two limits it refuses at once, and keeps nothing of the refused job (README: A line with a length)"
)
ROOM = (
    "task 2: a job that ends, however it ends, leaves the line and makes room for exactly one more "
    "(README: A line with a length)"
)
TIMEOUT = (
    "task 3: the work of a job has the time limit, from the moment it holds a slot; past it the work is "
    "cancelled and the job is timed out (README: A time limit that cancels)"
)
NOT_FAILED = (
    "task 3: running out of time raises a TimeoutError, which is an Exception too: tell it apart before "
    "treating the rest as failures (README: A time limit that cancels)"
)
SLOT_BACK = (
    "task 3: a job that ran out of time ends there: its work stops, and its slot goes to the next job "
    "at once (README: A time limit that cancels)"
)
FROM_SLOT = (
    "task 3: the time limit counts from the moment the job holds its slot, not from its arrival: the "
    "wait in line is not the job's own time (README: A time limit that cancels)"
)
PROPERTY = (
    "task 3: whatever the arrivals, at most the limit at work, the line bounded, every accepted job "
    "ending done, failed or timed out; hypothesis shows the smallest arrivals that break it "
    "(README: Give every job a time limit)"
)
API_ACCEPT = (
    "task 4: an accepted report is a 202 with the job's id and the address of its status, answered at "
    "once while the work goes on (README: Serve it over HTTP)"
)
API_SHARED = (
    "task 4: every request hands its job to the one runner the app made, so its limits hold across all "
    "the requests (README: Background tasks come with no limit)"
)
API_BUSY = (
    "task 4: a refused job is a 503 whose Retry-After header says, in whole seconds, when to ask again "
    "(README: 503 and Retry-After)"
)
API_STATUS = "task 4: the status document says where the job stands, as its runner sees it (README: Serve it over HTTP)"
API_VALIDATE = (
    "task 4: the request model decides what a job is, a report name of 1 to 100 characters; FastAPI "
    "refuses anything else before the endpoint runs (README: Serve it over HTTP)"
)
API_IDS = (
    "task 4: an id declared as a UUID is checked by FastAPI, so a malformed one is a 422; an id no job "
    "has is a 404 (README: Serve it over HTTP)"
)
DEFAULTS = "task 4: an app built without limits runs with the defaults the README states (README: Serve it over HTTP)"
SHUTDOWN = "task 4: at shutdown the app cancels its jobs and waits for them (README: Serve it over HTTP)"

# ---------------------------------------------------------------- helpers


def runner_with(work: FakeWork, *, max_running: int = 2, max_waiting: int = 8, timeout: float = 30.0) -> Any:
    """The learner's runner, with these limits."""
    limits = reports.Limits(max_running=max_running, max_waiting=max_waiting, timeout=timeout)
    return reports.JobRunner(work, limits)


def accept(runner: Any, report: str, *, room: str = LINE) -> Any:
    """``runner.submit(report)``, which must accept: the Job it returns, type-checked.

    ``room`` is the lesson for a refusal: why there was room for the job.
    """
    __tracebackhide__ = True
    try:
        job = runner.submit(report)
    except reports.Busy as error:
        refused = f"Busy: {error}"
    else:
        if inspect.iscoroutine(job):
            job.close()  # never awaited: closed here, so Python does not warn about it in a later spec
        expect_type(job, reports.Job, what=f"what submit returned for {report}", revisit=ACCEPTED)
        expect_type(job.id, UUID, what=f"the id of the job for {report}", revisit=ACCEPTED)
        expect_type(job.report, str, what=f"the report of the job for {report}", revisit=ACCEPTED)
        assert job.report == report, lesson(
            expected=f"a job for the report {report!r}", got=f"a job for {job.report!r}", revisit=ACCEPTED
        )
        return job
    raise AssertionError(
        lesson(
            expected=f"{report} accepted: there was room for it",
            got=f"refused, {refused}",
            revisit=room,
        )
    )


def refuse(runner: Any, report: str, *, why: str) -> None:
    """``runner.submit(report)``, which must raise Busy."""
    __tracebackhide__ = True
    try:
        job = runner.submit(report)
    except reports.Busy:
        return
    got = f"it was accepted: {job!r}"[:200]
    raise AssertionError(lesson(expected=f"{report} refused with Busy: {why}", got=got, revisit=LINE))


def status(runner: Any, job: Any) -> str:
    """Where ``job`` stands, as ``runner.get`` says: the status's text, type-checked."""
    __tracebackhide__ = True
    found = runner.get(job.id)
    expect_type(found, reports.Job, what=f"what get returned for the job of {job.report}", revisit=ACCEPTED)
    expect_type(found.status, reports.JobStatus, what=f"the status of the job of {job.report}", revisit=LIFE)
    return found.status.value


def statuses(runner: Any, jobs: list[Any]) -> dict[str, str]:
    __tracebackhide__ = True
    return {job.report: status(runner, job) for job in jobs}


def now() -> float:
    """The virtual clock's time."""
    return asyncio.get_running_loop().time()


async def calm(turns: int = 40) -> None:
    """Let the loop run everything that can run with no time passing (a bounded number of turns)."""
    await settle(lambda: False, rounds=turns)


def expect_statuses(got: dict[str, str], expected: dict[str, str], *, work: FakeWork, revisit: str) -> None:
    __tracebackhide__ = True
    assert got == expected, lesson(expected=f"{expected}", got=f"{got}; the work: {work.story()}", revisit=revisit)


# ---------------------------------------------------------------- task 1: at most N at once


@pytest.mark.task(1)
async def test_a_job_is_queued_when_accepted_then_running_then_done(work):
    """The runner hands back a queued job at once; its work begins in the background, and when it ends it is done."""
    runner = runner_with(work)
    job = accept(runner, "sales-q1")
    at_submit = status(runner, job)
    assert at_submit == "queued" and work.runs == [], lesson(
        expected="the job queued when submit returns, its work not begun: submit only accepts",
        got=f"status {at_submit!r}; the work: {work.story()}",
        revisit=ACCEPTED,
    )
    await calm()
    assert work.started() == ["sales-q1"] and status(runner, job) == "running", lesson(
        expected="the work begun for sales-q1, in the background, and the job running",
        got=f"status {status(runner, job)!r}; the work: {work.story()}",
        revisit=LIFE,
    )
    work.release("sales-q1")
    await calm()
    assert status(runner, job) == "done" and work.calls("sales-q1") == 1, lesson(
        expected="the job done once its work returned, the work called once",
        got=f"status {status(runner, job)!r}; the work: {work.story()}",
        revisit=LIFE,
    )


@pytest.mark.task(1)
async def test_every_job_has_an_id_of_its_own_and_an_unknown_id_finds_nothing(work):
    """Three jobs, three ids, each finding its own job; an id the runner never gave finds None."""
    runner = runner_with(work)
    jobs = [accept(runner, report) for report in ("north", "south", "east")]
    ids = [job.id for job in jobs]
    assert len(set(ids)) == len(ids), lesson(expected="three different ids", got=f"{ids}", revisit=ACCEPTED)
    for job in jobs:
        found = runner.get(job.id)
        expect_type(found, reports.Job, what=f"what get returned for the id of {job.report}", revisit=ACCEPTED)
        expect_type(found.id, UUID, what=f"the id of what get returned for {job.report}", revisit=ACCEPTED)
        expect_type(found.report, str, what=f"the report of what get returned for {job.report}", revisit=ACCEPTED)
        assert found.id == job.id and found.report == job.report, lesson(
            expected=f"get finds the job of {job.report} under its id",
            got=f"{found!r}"[:200],
            revisit=ACCEPTED,
        )
    unknown = runner.get(uuid4())
    assert unknown is None, lesson(
        expected="None for an id the runner never gave",
        got=f"{unknown!r}"[:200],
        revisit="task 1: get finds only the jobs submit accepted (README: Run at most N jobs at once)",
    )


@pytest.mark.task(1)
@pytest.mark.parametrize("limit", [1, 2, 3, None], ids=["1", "2", "3", "no limits given: 4"])
async def test_the_limit_of_jobs_run_at_once_and_the_next_one_waits(work, limit):
    """With a limit of N, N jobs are at work and the N+1-th waits, queued, its work not begun."""
    if limit is None:  # a runner made without limits has the README's defaults: 4 at once
        runner, limit = reports.JobRunner(work), 4
    else:
        runner = runner_with(work, max_running=limit)
    jobs = [accept(runner, f"report-{number}") for number in range(1, limit + 2)]
    await calm()
    first = [job.report for job in jobs[:limit]]
    expected = {job.report: "running" for job in jobs[:limit]} | {jobs[-1].report: "queued"}
    assert work.working() == first and work.peak == limit, lesson(
        expected=f"{limit} at work at once, the first {limit} submitted: {first}; {jobs[-1].report} waiting",
        got=f"{work.peak} at work at once; the work: {work.story()}",
        revisit=SLOTS,
    )
    expect_statuses(statuses(runner, jobs), expected, work=work, revisit=LIFE)


@pytest.mark.task(1)
async def test_two_runners_do_not_share_their_slots(work):
    """Each runner has its own limit: two runners allowed one job each run one job each."""
    first, second = runner_with(work, max_running=1), runner_with(work, max_running=1)
    accept(first, "first-runner")
    accept(second, "second-runner")
    await calm()
    assert sorted(work.working()) == ["first-runner", "second-runner"], lesson(
        expected="one job at work in each runner: first-runner and second-runner",
        got=work.story(),
        revisit=OWN_SLOTS,
    )


@pytest.mark.task(1)
async def test_when_a_job_ends_the_first_job_waiting_takes_its_slot_at_once(work):
    """One slot, three jobs: as each ends, the next in order of arrival begins, with no time passing."""
    runner = runner_with(work, max_running=1)
    jobs = [accept(runner, report) for report in ("a", "b", "c")]
    await calm()
    for ending, following in (("a", "b"), ("b", "c")):
        work.release(ending)
        when = now()
        await calm()
        began = following in work.started()
        got = f"{following} began within a few turns of the loop" if began else f"{following} had not begun"
        if not began:
            got = (
                f"{following} began only after time passed on the clock: the waiting job sleeps and looks again "
                "(it polls), so a slot stays empty for nothing"
                if await after_time_passes(lambda following=following: following in work.started())
                else f"{following} never began, even after time passed; the work: {work.story()}"
            )
        assert began and now() == when, lesson(
            expected=f"when {ending} ends, {following} begins at once, with no time passing",
            got=got,
            revisit=PARK,
        )
        assert work.started()[-1] == following and len(work.working()) == 1, lesson(
            expected=f"{following}, the first still waiting, at work alone",
            got=work.story(),
            revisit=PARK,
        )
    expect_statuses(statuses(runner, jobs), {"a": "done", "b": "done", "c": "running"}, work=work, revisit=LIFE)


@pytest.mark.task(1)
async def test_a_job_waiting_for_a_slot_leaves_the_event_loop_idle(work):
    """While the one slot is taken, a waiting job costs nothing: no busy turns, no timer of its own."""
    runner = runner_with(work, max_running=1)
    accept(runner, "busy")
    waiting = accept(runner, "waiting")
    await calm()
    busy_turns, wakeups = await idle_wait(5.0)
    assert busy_turns <= 5 and wakeups <= 1, lesson(
        expected="during 5 s of waiting for the slot, an idle event loop (a turn or two, one wake-up: the spec's own)",
        got=f"{busy_turns} busy turns and {wakeups} timer wake-ups: the waiting job keeps looking whether the slot "
        "is free (it polls) instead of waiting to be woken",
        revisit=PARK,
    )
    assert status(runner, waiting) == "queued" and work.started() == ["busy"], lesson(
        expected="the waiting job still queued, its work not begun",
        got=f"status {status(runner, waiting)!r}; the work: {work.story()}",
        revisit=SLOTS,
    )


@pytest.mark.task(1)
async def test_a_failing_job_is_failed_logged_once_with_its_traceback_and_frees_its_slot(work, caplog):
    """The work raises: the job is failed, one ERROR record with the traceback names it, the next job begins."""
    caplog.set_level(logging.DEBUG)
    runner = runner_with(work, max_running=1)
    broken = accept(runner, work.plan("broken", fails=True))
    following = accept(runner, "following")
    await calm()
    work.release("broken")
    await calm()
    expect_statuses(
        statuses(runner, [broken, following]), {"broken": "failed", "following": "running"}, work=work, revisit=FAILED
    )
    serious = [record for record in caplog.records if record.levelno >= logging.WARNING]
    shown = [f"{record.levelname} from {record.name!r}: {record.getMessage()}" for record in serious] or "nothing"
    carrying = [r for r in serious if r.exc_info and isinstance(r.exc_info[1], ReportBrokenError)]
    assert len(serious) == 1 and len(carrying) == 1, lesson(
        expected="exactly one record at WARNING or above, carrying the work's exception and its traceback",
        got=f"{shown}",
        revisit=FAILED,
    )
    record = carrying[0]
    assert record.levelno == logging.ERROR and record.name == reports.logger.name, lesson(
        expected=f"the record at ERROR, from the module's logger {reports.logger.name!r}",
        got=f"{record.levelname} from {record.name!r}",
        revisit=FAILED,
    )
    assert str(broken.id) in record.getMessage(), lesson(
        expected=f"a message that names the job's id, {broken.id}",
        got=repr(record.getMessage()),
        revisit=FAILED,
    )


# ---------------------------------------------------------------- task 2: a bounded line


@pytest.mark.task(2)
@pytest.mark.parametrize(
    ("limit", "line"), [(2, 3), (1, 1), (3, 0)], ids=["2 running, 3 waiting", "1 running, 1 waiting", "no line"]
)
async def test_the_line_takes_jobs_up_to_its_length_and_refuses_the_next(work, limit, line):
    """N running and L waiting are accepted; the next is refused with Busy, and its work never runs."""
    runner = runner_with(work, max_running=limit, max_waiting=line)
    jobs = [accept(runner, f"report-{number}") for number in range(1, limit + line + 1)]
    await calm()
    expected = {job.report: "running" if n < limit else "queued" for n, job in enumerate(jobs)}
    expect_statuses(statuses(runner, jobs), expected, work=work, revisit=LINE)
    refuse(runner, "one-too-many", why=f"{limit} jobs running and {line} waiting, the most the limits allow")
    work.release_all()
    await calm()
    assert work.calls("one-too-many") == 0 and sorted(work.started()) == sorted(expected), lesson(
        expected="every accepted job's work run once everything was released, and never the refused one",
        got=work.story(),
        revisit=LINE,
    )


@pytest.mark.task(2)
async def test_room_in_the_line_comes_back_as_each_job_ends(work):
    """One running, one waiting: when a job ends, done or failed, exactly one more job fits."""
    runner = runner_with(work, max_running=1, max_waiting=1)
    accept(runner, "a")
    accept(runner, work.plan("b", fails=True))
    refuse(runner, "c", why="a running and b waiting")
    await calm()
    work.release("a")
    await calm()
    accept(runner, "d", room=ROOM)
    refuse(runner, "e", why="a is done, b running, d waiting; the refused c took no room")
    work.release("b")
    await calm()
    assert work.working() == ["d"], lesson(expected="b failed, d at work", got=work.story(), revisit=ROOM)
    accept(runner, "f", room=ROOM)
    refuse(runner, "g", why="b failed, d running, f waiting")


# ---------------------------------------------------------------- task 3: a time limit per job


@pytest.mark.task(3)
@pytest.mark.parametrize("timeout", [10.0, 2.5])
async def test_a_job_past_its_time_limit_is_cancelled_timed_out_and_its_slot_goes_to_the_next(work, timeout):
    """A hanging job is cancelled at exactly the limit, timed out; the waiting job begins at that moment."""
    runner = runner_with(work, max_running=1, max_waiting=1, timeout=timeout)
    stuck = accept(runner, work.plan("stuck", hangs=True))
    following = accept(runner, "following")
    await asyncio.sleep(timeout * 1.5)
    run = work.run_of("stuck")
    assert run is not None and run.how == "cancelled", lesson(
        expected=f"the work of stuck cancelled when its {timeout:g} s ran out",
        got=f"stuck is {status(runner, stuck)}; the work: {work.story()}",
        revisit=TIMEOUT,
    )
    assert run.ended == timeout, lesson(
        expected=f"stuck cancelled at {timeout:g} s, exactly its time limit after it began",
        got=f"cancelled at {run.ended:g} s",
        revisit=TIMEOUT,
    )
    got = status(runner, stuck)
    assert got == "timed_out", lesson(expected="stuck timed out", got=f"stuck {got}", revisit=NOT_FAILED)
    following_run = work.run_of("following")
    if following_run is None and status(runner, following) == "timed_out":
        pytest.fail(
            "The job waiting for the slot ran out of time before it began."
            + lesson(
                expected=f"following begins at {timeout:g} s, when stuck's slot is free, with {timeout:g} s of its own",
                got=f"following timed out while it waited in line; the work: {work.story()}",
                revisit=FROM_SLOT,
            ),
            pytrace=False,
        )
    assert following_run is not None and following_run.started == timeout and work.peak == 1, lesson(
        expected=f"following begins at {timeout:g} s, the moment stuck is cancelled, alone at work",
        got=f"{work.peak} at work at once at most; the work: {work.story()}",
        revisit=SLOT_BACK,
    )
    assert status(runner, following) == "running", lesson(
        expected="following running", got=f"following {status(runner, following)}", revisit=LIFE
    )
    accept(runner, "after", room=SLOT_BACK)  # stuck left the line: one job running, room for one waiting


@pytest.mark.task(3)
async def test_a_job_just_within_its_limit_is_done_and_one_just_past_it_is_timed_out(work):
    """With 10 s each: 9.99 s of work is done, 10.01 s is cancelled at 10 s and timed out."""
    runner = runner_with(work, max_running=2, timeout=10.0)
    within = accept(runner, work.plan("within", seconds=9.99))
    past = accept(runner, work.plan("past", seconds=10.01))
    await asyncio.sleep(20)
    ends = {run.report: (run.how, run.ended) for run in work.runs}
    assert ends == {"within": ("done", 9.99), "past": ("cancelled", 10.0)}, lesson(
        expected="within done at 9.99 s; past cancelled at 10 s",
        got=work.story(),
        revisit=TIMEOUT,
    )
    expect_statuses(
        statuses(runner, [within, past]), {"within": "done", "past": "timed_out"}, work=work, revisit=NOT_FAILED
    )


@pytest.mark.task(3)
async def test_the_time_limit_counts_from_the_slot_not_from_the_arrival(work):
    """One slot, two jobs of 8 s with 10 s each: the second waits 8 s, then has its full 10 s, and is done."""
    runner = runner_with(work, max_running=1, timeout=10.0)
    jobs = [accept(runner, work.plan(report, seconds=8.0)) for report in ("first", "second")]
    await asyncio.sleep(20)
    ends = [(run.report, run.started, run.how, run.ended) for run in work.runs]
    assert ends == [("first", 0.0, "done", 8.0), ("second", 8.0, "done", 16.0)], lesson(
        expected="first from 0 to 8 s, done; second from 8 s (its slot) to 16 s, done",
        got=work.story(),
        revisit=FROM_SLOT,
    )
    expect_statuses(statuses(runner, jobs), {"first": "done", "second": "done"}, work=work, revisit=FROM_SLOT)


# The property: arrivals of jobs whose work takes some seconds, fails or hangs, a second apart or more.
PROPERTY_TIMEOUT = 5.0
PROPERTY_EXAMPLES = 25  # each example is a whole scenario on its own loop: fewer than the profile's 50 keep it quick
PROPERTY_TURNS = 6  # turns of the loop after each arrival: a correct runner needs about five to hand a slot on
KINDS = {  # what a job's work does -> (seconds it takes, fails, hangs), and how its job must end
    "quick": ((1.5, False, False), "done"),
    "long": ((4.5, False, False), "done"),
    "broken": ((0.5, True, False), "failed"),
    "late-broken": ((2.5, True, False), "failed"),
    "slow": ((8.5, False, False), "timed_out"),
    "hanging": ((None, False, True), "timed_out"),
}
arrivals = st.lists(st.tuples(st.sampled_from([0.0, 1.0, 3.0]), st.sampled_from(sorted(KINDS))), max_size=8)


#: Busy turns of the loop while the clock should move on: far more than a runner whose waiting jobs park needs.
RESTLESS = 1000


async def rest(seconds: float) -> bool:
    """Let ``seconds`` pass on the virtual clock; False if the loop never rested meanwhile (something polls)."""
    loop = running_loop()
    busy = loop.busy_turns
    await asyncio.sleep(seconds)
    return loop.busy_turns - busy <= RESTLESS


POLLING = "the loop never rested while jobs waited: something looks again and again whether a slot is free (it polls)"


async def arrive(runner: Any, work: FakeWork, pattern: list[tuple[float, str]]) -> tuple[list[str], dict[str, Any]]:
    """Submit the jobs as they arrive: the rules broken on the way, and the jobs accepted, by report."""
    limit, room = runner.limits.max_running, runner.limits.max_running + runner.limits.max_waiting
    broken: list[str] = []
    accepted: dict[str, Any] = {}
    for number, (gap, kind) in enumerate(pattern):
        if not await rest(gap):
            return [*broken, POLLING], accepted
        await calm(PROPERTY_TURNS)
        (seconds, fails, hangs), _ = KINDS[kind]
        report = work.plan(f"#{number} {kind}", seconds=seconds, fails=fails, hangs=hangs)
        unended = [name for name in accepted if (run := work.run_of(name)) is None or run.ended is None]
        at = f"at {now():g} s"
        if len(work.working()) != min(limit, len(unended)):
            broken.append(f"{at}, {len(work.working())} at work while {len(unended)} jobs had not ended")
        try:
            job = runner.submit(report)
        except reports.Busy:
            if len(unended) < room:
                broken.append(f"{report} refused {at} with only {len(unended)} jobs accepted and not ended")
            continue
        if len(unended) >= room:
            broken.append(f"{report} accepted {at} with {len(unended)} jobs accepted and not ended already")
        if inspect.iscoroutine(job):
            job.close()
        expect_type(job, reports.Job, what=f"what submit returned for {report}", revisit=ACCEPTED)
        accepted[report] = (job, now())
    return broken, accepted


def judge(runner: Any, work: FakeWork, accepted: dict[str, Any]) -> list[str]:
    """Once every job has ended: the rules its end broke."""
    broken = []
    if work.peak > runner.limits.max_running:
        broken.append(f"{work.peak} at work at once, with a limit of {runner.limits.max_running}")
    # A job begins when it arrives to a free slot, or when another job ends and hands it its slot: never between.
    moments = [arrived for _, arrived in accepted.values()] + [run.ended for run in work.runs if run.ended is not None]
    for report, (job, _) in accepted.items():
        _, expected = KINDS[report.split()[1]]
        got, run = status(runner, job), work.run_of(report)
        if got != expected or run is None or work.calls(report) != 1:
            broken.append(f"{report} ended {got}, its work called {work.calls(report)} times (expected: {expected})")
            continue
        if min(abs(run.started - moment) for moment in moments) > 1e-6:
            broken.append(f"{report} began at {run.started:g} s, when no job ended and none arrived: it began late")
        if expected == "timed_out" and abs((run.ended or 0) - run.started - PROPERTY_TIMEOUT) > 1e-6:
            broken.append(
                f"{report} cancelled {(run.ended or 0) - run.started:g} s after it began, not {PROPERTY_TIMEOUT:g}"
            )
    broken.extend(f"{run.report} was refused, yet its work ran" for run in work.runs if run.report not in accepted)
    return broken


async def run_arrivals(limit: int, line: int, pattern: list[tuple[float, str]]) -> list[str]:
    """Submit the jobs as they arrive, let them all end; every rule broken on the way, in order."""
    work = FakeWork()
    runner = reports.JobRunner(work, reports.Limits(max_running=limit, max_waiting=line, timeout=PROPERTY_TIMEOUT))
    broken, accepted = await arrive(runner, work, pattern)
    if POLLING not in broken:
        if await rest(100):  # far past the end of every job
            await calm(PROPERTY_TURNS)
            broken += judge(runner, work, accepted)
        else:
            broken.append(POLLING)
    if broken:
        broken.append(f"the work: {work.story()}")
    return broken


@pytest.mark.task(3)
@settings(max_examples=PROPERTY_EXAMPLES)
@given(limit=st.integers(1, 3), line=st.integers(0, 3), pattern=arrivals)
def test_for_any_arrivals_at_most_the_limit_run_and_every_accepted_job_ends(limit, line, pattern):
    """For any arrivals: never more than N at work, refused only when full, each accepted job ends as it must."""
    loop = VirtualClockLoop()
    logging.disable(logging.ERROR)  # this spec does not read the log: formatting tracebacks would only cost time
    try:
        broken = loop.run_until_complete(run_arrivals(limit, line, pattern))
    finally:
        logging.disable(logging.NOTSET)
        loop.run_until_complete(stop_leftovers(set()))
        loop.close()
    shown = ", ".join(f"+{gap:g} s {kind}" for gap, kind in pattern) or "none"
    assert not broken, lesson(
        expected=f"with {limit} running, {line} waiting and {PROPERTY_TIMEOUT:g} s each, for the arrivals "
        f"[{shown}]: at most {limit} at work, a refusal only when {limit + line} jobs had not ended, "
        "quick and long jobs done, broken ones failed, slow and hanging ones timed out",
        got="; ".join(broken),
        revisit=PROPERTY,
    )


# ---------------------------------------------------------------- task 4: over HTTP

APP_LIMITS = {"max_running": 2, "max_waiting": 1, "timeout": 10.0, "retry_after": 7}


@pytest.fixture(name="client")
async def _client(app: Any) -> AsyncIterator[KataClient]:
    """A client over the app, its lifespan started, and stopped after the spec (bounded: a stuck one is left)."""
    lifespan = Lifespan(app)
    await lifespan.started(revisit=API_ACCEPT)
    async with KataClient(CatchAppErrors(app)) as client:
        yield client
    await lifespan.stop()  # how it went is the shutdown spec's business; the leftovers are stopped after the spec


@pytest.fixture(name="app")
def _app(work: FakeWork) -> Any:
    """The kata's app, its jobs handed to the fake work, with small limits: 2 running, 1 waiting, 10 s, retry 7 s."""
    return reports.create_app(work=work, limits=reports.Limits(**APP_LIMITS))


async def post(client: httpx.AsyncClient, report: object, *, revisit: str = API_ACCEPT) -> httpx.Response:
    __tracebackhide__ = True
    return await within_bound(
        client.post("/jobs", json={"report": report}), revisit=revisit, expected="an answer to POST /jobs"
    )


async def get(client: httpx.AsyncClient, path: str, *, revisit: str = API_STATUS) -> httpx.Response:
    __tracebackhide__ = True
    return await within_bound(client.get(path), revisit=revisit, expected=f"an answer to GET {path}")


async def accepted_id(client: httpx.AsyncClient, report: str) -> str:
    """POST a report that must be accepted; the job's id."""
    __tracebackhide__ = True
    response = await post(client, report)
    expect_status(response, 202, expected=f"202 Accepted for {report}", revisit=API_ACCEPT)
    body = expect_type(response.json(), dict, what="the body of the 202", revisit=API_ACCEPT)
    expect_type(body.get("id"), str, what="the id in the body", revisit=API_ACCEPT)
    return body["id"]


async def status_of(client: httpx.AsyncClient, job_id: str) -> str:
    __tracebackhide__ = True
    response = await get(client, f"/jobs/{job_id}")
    expect_status(response, 200, expected=f"200 for the status of job {job_id}", revisit=API_STATUS)
    body = expect_type(response.json(), dict, what="the status document", revisit=API_STATUS)
    return expect_type(body.get("status"), str, what="the status in the document", revisit=API_STATUS)


@pytest.mark.task(4)
async def test_a_report_is_accepted_with_202_its_id_and_the_address_of_its_status(client, work):
    """202 with exactly the id, a Location naming the status; the status document follows the job to done."""
    response = await post(client, "sales-q1")
    expect_status(response, 202, revisit=API_ACCEPT)
    body = expect_type(response.json(), dict, what="the body of the 202", revisit=API_ACCEPT)
    job_id = expect_type(body.get("id"), str, what="the id", revisit=API_ACCEPT)
    try:
        UUID(job_id)
    except ValueError:
        job_id = f"not a UUID: {job_id!r}"
    assert set(body) == {"id"} and not job_id.startswith("not"), lesson(
        expected='{"id": "<the job\'s UUID>"}, nothing more', got=response.text[:200], revisit=API_ACCEPT
    )
    location = response.headers.get("location")
    assert location == f"/jobs/{job_id}", lesson(
        expected=f"a Location header: /jobs/{job_id}", got=f"{location!r}", revisit=API_ACCEPT
    )
    await calm()
    document = await get(client, location)
    expect_json(document, {"id": job_id, "report": "sales-q1", "status": "running"}, revisit=API_STATUS)
    work.release("sales-q1")
    await calm()
    document = await get(client, location)
    expect_json(document, {"id": job_id, "report": "sales-q1", "status": "done"}, revisit=API_STATUS)


@pytest.mark.task(4)
async def test_at_most_the_limit_of_jobs_run_at_once_across_all_requests(client, work):
    """Three requests, a limit of 2: two jobs at work, the third queued, whichever request brought them."""
    ids = [await accepted_id(client, report) for report in ("one", "two", "three")]
    await calm()
    assert work.working() == ["one", "two"] and work.peak == 2, lesson(
        expected="one and two at work, three waiting: 2 at once, across the three requests",
        got=f"{work.peak} at work at once; the work: {work.story()}",
        revisit=API_SHARED,
    )
    got = [await status_of(client, job_id) for job_id in ids]
    assert got == ["running", "running", "queued"], lesson(
        expected="running, running, queued", got=f"{got}", revisit=API_STATUS
    )


@pytest.mark.task(4)
async def test_a_full_line_is_a_503_with_retry_after_and_that_job_never_runs(client, work):
    """Two running and one waiting: the next request is 503, Retry-After 7, and its report is never built."""
    for report in ("one", "two", "three"):
        await accepted_id(client, report)
    response = await post(client, "four", revisit=API_BUSY)
    expect_status(response, 503, expected="503 Service Unavailable: 2 running and 1 waiting", revisit=API_BUSY)
    retry_after = response.headers.get("retry-after")
    assert retry_after == "7", lesson(
        expected="a Retry-After header of 7, the limits' whole seconds", got=f"{retry_after!r}", revisit=API_BUSY
    )
    expect_json(response, {"detail": "too many jobs, try again later"}, revisit=API_BUSY)
    work.release_all()
    await calm()
    assert work.calls("four") == 0 and work.started() == ["one", "two", "three"], lesson(
        expected="one, two and three built, and never four", got=work.story(), revisit=API_BUSY
    )


@pytest.mark.task(4)
async def test_each_way_a_job_ends_shows_in_its_status(client, work):
    """A job that works is done, one whose work raises is failed, one that hangs past 10 s is timed_out."""
    plans = {"works": {"seconds": 1.0}, "raises": {"seconds": 1.0, "fails": True}, "hangs": {"hangs": True}}
    ids = {kind: await accepted_id(client, work.plan(kind, **plan)) for kind, plan in plans.items()}
    await asyncio.sleep(20)
    got = {kind: await status_of(client, job_id) for kind, job_id in ids.items()}
    assert got == {"works": "done", "raises": "failed", "hangs": "timed_out"}, lesson(
        expected="works done, raises failed, hangs timed_out",
        got=f"{got}; the work: {work.story()}",
        revisit=API_STATUS,
    )


@pytest.mark.task(4)
async def test_an_unknown_job_is_a_404_and_a_malformed_id_a_422(client):
    """A UUID no job has is 404 with its detail; anything that is not a UUID is 422."""
    unknown = uuid4()
    response = await get(client, f"/jobs/{unknown}", revisit=API_IDS)
    expect_status(response, 404, expected=f"404 Not Found for {unknown}, which no job has", revisit=API_IDS)
    expect_json(response, {"detail": f"no job {unknown}"}, revisit=API_IDS)
    for malformed in ("abc", "12345", f"{unknown}x", "ünïcode"):
        response = await get(client, f"/jobs/{malformed}", revisit=API_IDS)
        expect_status(response, 422, expected=f"422 for {malformed!r}, which is not a UUID", revisit=API_IDS)


@pytest.mark.task(4)
@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": "sales"},
        {"report": ""},
        {"report": "x" * 101},
        {"report": "é" * 101},
        {"report": None},
        {"report": 42},
        {"report": ["sales"]},
        None,
        [],
        "sales",
    ],
    ids=[
        "empty object",
        "no report",
        "empty report",
        "101 characters",
        "101 accented characters",
        "null report",
        "number report",
        "list report",
        "null body",
        "list body",
        "string body",
    ],
)
async def test_a_bad_request_is_a_422_and_runs_nothing(client, work, body):
    """A missing or empty report, one over 100 characters, not text, or a body that is no object: 422."""
    response = await within_bound(client.post("/jobs", json=body), revisit=API_VALIDATE)
    expect_status(response, 422, expected=f"422 Unprocessable Content for {body!r}"[:120], revisit=API_VALIDATE)
    await calm()
    assert work.runs == [], lesson(expected="no work for a rejected request", got=work.story(), revisit=API_VALIDATE)


@pytest.mark.task(4)
@pytest.mark.parametrize(
    "report", ["x", "x" * 100, "é", "é" * 100, "Zoë's café ☕ Q1"], ids=["1", "100", "1 é", "100 é", "any text"]
)
async def test_a_report_name_of_1_to_100_characters_is_accepted_as_it_is(client, work, report):
    """Both limits are allowed, and a character is a character, accented or not (not a byte)."""
    await accepted_id(client, report)
    await calm()
    assert work.started() == [report], lesson(
        expected=f"the work given exactly {report!r}", got=work.story(), revisit=API_VALIDATE
    )


@contextlib.asynccontextmanager
async def serving(app: Any, *, revisit: str) -> AsyncIterator[KataClient]:
    """The app with its lifespan running, and a client; a shutdown that does not complete fails the spec."""
    lifespan = Lifespan(app)
    await lifespan.started(revisit=revisit)
    try:
        async with KataClient(CatchAppErrors(app)) as client:
            yield client
    except BaseException:
        await lifespan.stop()  # the spec failed already: that failure is the one to read
        raise
    outcome = await lifespan.stop()
    if outcome != "complete":
        pytest.fail(
            "The app's shutdown did not complete."
            + lesson(
                expected="the jobs cancelled, their ends waited for, and the shutdown complete at once",
                got=f"shutdown {outcome}",
                revisit=revisit,
            ),
            pytrace=False,
        )


@pytest.mark.task(4)
async def test_an_app_built_without_limits_uses_the_readmes_defaults(work):
    """4 at once, 8 waiting, a 13th refused with Retry-After 10, and 30 s for each job; limits never change."""
    limits = reports.Limits()
    with contextlib.suppress(AttributeError):  # a frozen dataclass refuses with FrozenInstanceError, one of them
        limits.max_running = 40
    assert limits.max_running == 4, lesson(
        expected="limits that cannot be changed once made, 4 running by default",
        got=f"{limits!r}",
        revisit=DEFAULTS,
    )
    app = reports.create_app(work=work)
    async with serving(app, revisit=DEFAULTS) as client:
        work.plan("report-1", hangs=True)
        for number in range(1, 13):
            await accepted_id(client, f"report-{number}")
        response = await post(client, "report-13", revisit=DEFAULTS)
        expect_status(response, 503, expected="503 for the 13th: 4 running and 8 waiting", revisit=DEFAULTS)
        retry_after = response.headers.get("retry-after")
        assert retry_after == "10", lesson(expected="Retry-After: 10", got=f"{retry_after!r}", revisit=DEFAULTS)
        await calm()
        assert work.working() == [f"report-{number}" for number in range(1, 5)], lesson(
            expected="report-1 to report-4 at work", got=work.story(), revisit=DEFAULTS
        )
        await asyncio.sleep(40)
        first, fifth = work.run_of("report-1"), work.run_of("report-5")
        assert first is not None and (first.how, first.ended) == ("cancelled", 30.0), lesson(
            expected="report-1, which hangs, cancelled at 30 s", got=work.story(), revisit=DEFAULTS
        )
        assert fifth is not None and fifth.started == 30.0, lesson(
            expected="report-5 begins at 30 s, in the slot of report-1", got=work.story(), revisit=DEFAULTS
        )
        work.release_all()


@pytest.mark.task(4)
async def test_shutdown_cancels_the_jobs_at_work_waits_for_them_and_the_waiting_one_never_begins(app, work, caplog):
    """Two jobs at work and one waiting when the app stops: both cancelled and cleaned up, the third never run."""
    caplog.set_level(logging.DEBUG)
    work.cleanup_turns = CLEANUP_TURNS
    async with serving(app, revisit=SHUTDOWN) as client:
        for report in ("held", work.plan("stuck", hangs=True), "waiting"):
            await accepted_id(client, report)
        await calm()
    ends = [(run.report, run.how) for run in work.runs]  # the moment the shutdown is over: no turn since
    assert ends == [("held", "cancelled"), ("stuck", "cancelled")], lesson(
        expected="held and stuck cancelled, and their clean-up over, when the shutdown is; waiting never begun",
        got=work.story(),
        revisit=SHUTDOWN,
    )
    serious = [f"{r.levelname}: {r.getMessage()}" for r in caplog.records if r.levelno >= logging.WARNING]
    assert serious == [], lesson(
        expected="nothing logged as a warning or an error: a job stopped by the shutdown did not fail",
        got=f"{serious}",
        revisit="task 4: a cancellation is an order to stop, not a failure of the work: it is a BaseException "
        "that the jobs let through, so the shutdown can end them (README: A time limit that cancels)",
    )
