"""Specs for kata 6: safe background tasks.

Run them with

    uv run pytest katas/k06_safe_tasks

Each spec names the README task it checks. Edit safe.py, not this file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import fastapi  # noqa: F401 - the kata's stack, imported while pytest collects rather than inside the first spec
import pytest
from starlette.background import BackgroundTasks

from dojo.fakes import EMAIL_SENT, AsyncFakeOutbox, on_event_loop_thread
from dojo.impl import kata_module
from dojo.teach import expect_json, expect_status, expect_type, lesson
from dojo.timeline import BOUND, RESPONSE_COMPLETE, Exchange, StillRunningError, Timeline, within_bound

safe = kata_module("k06_safe_tasks", "safe")

T = TypeVar("T")

PASSWORD = "Tr0ub4dor&3-pelican"  # noqa: S105 - a secret a task is given; it must never reach a log, a record or a notification
TOKEN = "tok_live_5f9a1c7e2b"  # noqa: S105 - another one, given by keyword

VALID = {"email": "ada@example.com", "password": PASSWORD}

# ---------------------------------------------------------------- fakes for this kata

FAILURE_KEPT = "failure recorded"
NOTIFIED = "someone notified"
DIRECTORY_STARTED = "directory call started"
DIRECTORY_DONE = "account created"
DIRECTORY_FAILED = "directory call failed"
DIRECTORY_ON_LOOP = "directory call blocked the event loop"
JOB_STARTED = "job started"
JOB_ON_LOOP = "job blocked the event loop"
JOB_DONE = "job done"


class FakeFailures:
    """A failure store that keeps what it is given; ``broken`` makes every ``add`` raise."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.kept: list[Any] = []
        self.attempts = 0
        self.broken: Exception | None = None

    def add(self, failure: object) -> None:
        self.attempts += 1
        if self.broken is not None:
            raise self.broken
        self.kept.append(failure)
        self.timeline.record(FAILURE_KEPT, repr(failure))

    def all(self) -> list[Any]:
        return list(self.kept)

    def __repr__(self) -> str:
        return f"FakeFailures(kept={self.kept})"


class FakeNotifier:
    """Someone to tell: keeps every notification; ``broken`` makes every ``notify`` raise after noting it."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.calls: list[Any] = []
        self.broken: Exception | None = None

    def notify(self, failure: object) -> None:
        self.calls.append(failure)
        self.timeline.record(NOTIFIED, repr(failure))
        if self.broken is not None:
            raise self.broken

    def __repr__(self) -> str:
        return f"FakeNotifier(calls={self.calls})"


class FakeDirectory:
    """The account directory: a blocking ``create_account``, which can be held (a slow server) or fail."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.accounts: list[tuple[object, object]] = []
        self.attempts = 0
        self.failure: Exception | None = None
        self.gate = threading.Event()
        self.gate.set()

    def create_account(self, email: str, password: str) -> None:
        self.attempts += 1
        if on_event_loop_thread():
            # Blocking here would freeze the event loop, and the spec with it: say so instead.
            self.timeline.record(DIRECTORY_ON_LOOP, f"for {email}: a blocking call made on the event loop thread")
            return
        self.timeline.record(DIRECTORY_STARTED, f"for {email}")
        if not self.gate.wait(BOUND):
            self.timeline.record("directory gave up", "the spec never let it go")
        if self.failure is not None:
            self.timeline.record(DIRECTORY_FAILED, repr(self.failure))
            raise self.failure
        self.accounts.append((email, password))
        self.timeline.record(DIRECTORY_DONE, f"for {email}")


@pytest.fixture(name="failures")
def _failures(timeline: Timeline) -> FakeFailures:
    return FakeFailures(timeline)


@pytest.fixture(name="notifier")
def _notifier(timeline: Timeline) -> FakeNotifier:
    return FakeNotifier(timeline)


@pytest.fixture(name="log")
def _log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record, whatever its level: a spec can then count them exactly."""
    caplog.set_level(logging.DEBUG)
    return caplog


def serious(log: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The records a person is meant to read: WARNING and above."""
    return [record for record in log.records if record.levelno >= logging.WARNING]


def shown(records: list[logging.LogRecord]) -> list[str] | str:
    return [f"{record.levelname} from {record.name!r}: {record.getMessage()}" for record in records] or "nothing"


def carrying(log: pytest.LogCaptureFixture, error: BaseException) -> list[logging.LogRecord]:
    """The records that carry ``error`` itself as their exception."""
    return [record for record in log.records if record.exc_info and record.exc_info[1] is error]


# ---------------------------------------------------------------- tasks for safe to wrap


@dataclass
class Calls:
    """What happened to a task: each call's arguments."""

    made: list[tuple[tuple[object, ...], dict[str, object]]] = field(default_factory=list)


def a_def_task(*, raises: BaseException | None = None) -> tuple[Callable[..., str], Calls]:
    """A plain ``def`` task, ``export_report``, that records its calls and raises ``raises`` if given."""
    calls = Calls()

    def export_report(report_id: int, *, fmt: str = "pdf") -> str:
        """Export one report to the archive."""
        calls.made.append(((report_id,), {"fmt": fmt}))
        if raises is not None:
            raise raises
        return f"report-{report_id}.{fmt}"

    return export_report, calls


def an_async_task(*, raises: BaseException | None = None) -> tuple[Callable[..., Awaitable[str]], Calls]:
    """An ``async def`` task, ``sync_calendar``, that records its calls and raises ``raises`` if given."""
    calls = Calls()

    async def sync_calendar(user_id: int, *, days: int = 7) -> str:
        """Copy a user's calendar to the partner service."""
        calls.made.append(((user_id,), {"days": days}))
        await asyncio.sleep(0)  # a point where other tasks may run, as real I/O is
        if raises is not None:
            raise raises
        return f"synced {days} days for user {user_id}"

    return sync_calendar, calls


def guard(failures: FakeFailures, notifier: FakeNotifier) -> Callable[[T], T]:
    """The decorator under test, with the spec's store and notifier."""
    return safe.safe(failures=failures, notifier=notifier)


@dataclass
class Outcome:
    """How a call to a wrapped task ended."""

    finished: bool = False
    returned: object = None
    escaped: BaseException | None = None


def call_in_thread(wrapped: Callable[..., object], *args: object, **kwargs: object) -> Outcome:
    """Call a wrapped ``def`` task in a thread of its own, as Starlette's thread pool does; wait at most BOUND s."""
    outcome = Outcome()

    def call() -> None:
        try:
            outcome.returned = wrapped(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - whatever escapes is what the spec judges
            outcome.escaped = error
        outcome.finished = True

    thread = threading.Thread(target=call, name="k06 spec: a worker thread", daemon=True)
    thread.start()
    thread.join(BOUND)
    if inspect.iscoroutine(outcome.returned):
        outcome.returned.close()  # never awaited: closed here, so Python does not warn about it later
    return outcome


async def await_bounded(call: object, *, revisit: str) -> Outcome:
    """Await what a wrapped ``async def`` task returned, at most BOUND seconds."""
    __tracebackhide__ = True
    outcome = Outcome()
    if not inspect.isawaitable(call):
        raise AssertionError(
            lesson(
                expected="calling the wrapped async task gives something to await, as calling the task does",
                got=f"{type(call).__name__}: {call!r}"[:200],
                revisit=revisit,
            )
        )
    try:
        outcome.returned = await within_bound(call, revisit=revisit, expected="the wrapped task finished")
    except StillRunningError:
        raise
    except BaseException as error:  # noqa: BLE001 - what escapes the wrapper, cancellation included, is the finding
        outcome.escaped = error
    outcome.finished = True
    if inspect.iscoroutine(outcome.returned):
        outcome.returned.close()
    return outcome


def expect_failure(value: object, *, task: str, error: str, message: str, what: str, revisit: str) -> None:  # noqa: PLR0913
    """A Failure of the module, with exactly these three fields."""
    __tracebackhide__ = True
    expect_type(value, safe.Failure, what=what, revisit=revisit)
    for name in ("task", "error", "message"):
        expect_type(getattr(value, name), str, what=f"the {name} of {what}", revisit=revisit)
    got = (value.task, value.error, value.message)  # type: ignore[attr-defined]
    assert got == (task, error, message), lesson(
        expected=f"{what}: task {task!r}, error {error!r}, message {message!r}",
        got=f"task {got[0]!r}, error {got[1]!r}, message {got[2]!r}",
        revisit=revisit,
    )


# ---------------------------------------------------------------- task 1: a def task, wrapped

WRAP = "task 1: the wrapper runs the task once and hands back what it returns (README: Wrap a blocking task)"
THREAD_POOL = (
    "task 1: Starlette looks at the function it is given to choose between the thread pool and the event "
    "loop; a wrapper that is a coroutine function makes a blocking task run on the loop (README: Thread pool "
    "or event loop)"
)
LOGGING = "task 1: one failure, one record at ERROR, with its traceback and the task's name (README: Logging a failure)"


@pytest.mark.task(1)
def test_a_wrapped_def_task_runs_once_with_its_arguments_and_returns_what_it_returns(failures, notifier, log):
    """The wrapper is invisible when all goes well: same arguments in, same value out, nothing logged."""
    task, calls = a_def_task()
    wrapped = guard(failures, notifier)(task)
    assert not inspect.iscoroutinefunction(wrapped), lesson(
        expected="the wrapper of a def task is a def too, which calling runs",
        got="a coroutine function: calling it runs nothing, and Starlette would await it on the event loop thread",
        revisit=THREAD_POOL,
    )
    outcome = call_in_thread(wrapped, 7, fmt="csv")
    assert outcome.finished and outcome.escaped is None, lesson(
        expected="the wrapped task returns normally",
        got=f"{outcome.escaped!r} escaped" if outcome.escaped else "it had not returned",
        revisit=WRAP,
    )
    assert calls.made == [((7,), {"fmt": "csv"})], lesson(
        expected="the task called once, with the positional and the keyword argument it was given: 7, fmt csv",
        got=f"{len(calls.made)} call(s): {calls.made}",
        revisit=WRAP,
    )
    expect_type(outcome.returned, str, what="what the wrapped task returns", revisit=WRAP)
    assert outcome.returned == "report-7.csv", lesson(
        expected="the task's own return value, 'report-7.csv'", got=repr(outcome.returned), revisit=WRAP
    )
    assert serious(log) == [] and failures.attempts == 0 and notifier.calls == [], lesson(
        expected="no warning, no error, nothing recorded, nobody notified: the task worked",
        got=f"logged {shown(serious(log))}; {failures!r}; {notifier!r}",
        revisit=WRAP,
    )


@pytest.mark.task(1)
@pytest.mark.parametrize(
    "error",
    [ConnectionError("the report server hung up"), KeyError("report 7"), type("ArchiveFull", (Exception,), {})()],
    ids=lambda error: type(error).__name__,
)
def test_a_failing_def_task_is_logged_once_at_error_with_its_traceback_and_nothing_escapes(
    failures, notifier, log, error
):
    """Any Exception: one ERROR record through the module's logger, naming the task, with the traceback; None back."""
    task, calls = a_def_task(raises=error)
    outcome = call_in_thread(guard(failures, notifier)(task), 7)
    assert outcome.finished, lesson(expected="the wrapped task returns", got="it had not returned", revisit=WRAP)
    assert outcome.escaped is None, lesson(
        expected="the wrapped task returns normally when the task raises",
        got=f"the task's {outcome.escaped!r} escaped the wrapper",
        revisit="task 1: a failure that escapes a background task ends up as one line in a server log, and "
        "stops the tasks queued after it; the wrapper stops every Exception (README: When a background task raises)",
    )
    assert len(calls.made) == 1, lesson(
        expected="the task called once",
        got=f"called {len(calls.made)} times",
        revisit="task 1: the wrapper reports a failure, it does not try again (README: Wrap a blocking task)",
    )
    expect_type(outcome.returned, type(None), what="what the wrapped task returns when it failed", revisit=WRAP)
    with_error = carrying(log, error)
    assert len(with_error) == 1 and len(serious(log)) == 1, lesson(
        expected="exactly one record at WARNING or above, and it carries the exception and its traceback",
        got=f"{len(with_error)} record(s) with the exception; at WARNING or above: {shown(serious(log))}",
        revisit=LOGGING,
    )
    record = with_error[0]
    assert record.levelno == logging.ERROR, lesson(
        expected="the record at ERROR: a task failed, the server itself is fine",
        got=f"{record.levelname}: {record.getMessage()}",
        revisit="task 1: the level says how bad it is, and a failed task is an error, not a warning and "
        "not critical (README: Logging a failure)",
    )
    assert record.exc_info is not None and record.exc_info[2] is not None, lesson(
        expected="the record carries the traceback", got=f"exc_info {record.exc_info!r}", revisit=LOGGING
    )
    assert "export_report" in record.getMessage(), lesson(
        expected="a message that names the task, export_report",
        got=repr(record.getMessage()),
        revisit="task 1: the person reading the log must know which task failed (README: Logging a failure)",
    )
    assert record.name == safe.logger.name, lesson(
        expected=f"the record from the module's logger, {safe.logger.name!r}",
        got=f"from {record.name!r}",
        revisit="task 1: log through the logger the module defines, so the app's logging settings apply "
        "to it (README: Logging a failure)",
    )


@pytest.mark.task(1)
@pytest.mark.parametrize(
    "stop",
    [SystemExit(0), KeyboardInterrupt(), asyncio.CancelledError()],
    ids=lambda stop: type(stop).__name__,
)
def test_shutdown_and_cancellation_pass_through_a_wrapped_def_task_untouched(failures, notifier, log, stop):
    """SystemExit, KeyboardInterrupt and CancelledError are orders to stop, not failures: through, unlogged."""
    task, calls = a_def_task(raises=stop)
    outcome = call_in_thread(guard(failures, notifier)(task), 7)
    assert len(calls.made) == 1, lesson(expected="the task called once", got=f"{len(calls.made)} calls", revisit=WRAP)
    assert outcome.escaped is stop, lesson(
        expected=f"the task's {type(stop).__name__} passes through the wrapper, the same object",
        got=f"{outcome.escaped!r} escaped" if outcome.escaped else "the wrapper swallowed it",
        revisit="task 1: the wrapper stops Exception and nothing wider; shutdown and cancellation are "
        "BaseExceptions, and stopping them keeps a server from stopping (README: Exception and BaseException)",
    )
    assert serious(log) == [] and failures.attempts == 0 and notifier.calls == [], lesson(
        expected=f"nothing logged, recorded or announced for a {type(stop).__name__}: it is not a failure",
        got=f"logged {shown(serious(log))}; {failures!r}; {notifier!r}",
        revisit="task 1: only an Exception is the task's failure (README: Exception and BaseException)",
    )


def a_blocking_job(timeline: Timeline, gate: threading.Event) -> Callable[[int], str]:
    """A ``def`` task that blocks until ``gate`` opens, as a slow client library does, and says where it ran."""

    def rebuild_index(shard: int) -> str:
        """Rebuild one search shard; blocks while it works."""
        if on_event_loop_thread():
            timeline.record(JOB_ON_LOOP, f"shard {shard}: blocking code ran on the event loop thread")
            return "ran on the loop"
        timeline.record(JOB_STARTED, f"shard {shard} in {threading.current_thread().name}")
        if not gate.wait(BOUND):
            timeline.record("job gave up", "the spec never let it go")
        timeline.record(JOB_DONE, f"shard {shard}")
        return f"shard {shard}"

    return rebuild_index


@pytest.mark.task(1)
async def test_starlette_still_runs_a_wrapped_def_task_in_its_thread_pool(failures, notifier, timeline):
    """While a wrapped blocking task waits, the event loop is free: it runs in a worker thread, not on the loop."""
    gate = threading.Event()
    wrapped = guard(failures, notifier)(a_blocking_job(timeline, gate))
    assert not inspect.iscoroutinefunction(wrapped), lesson(
        expected="the wrapper of a def task is a def too",
        got="a coroutine function, which Starlette awaits on the event loop thread",
        revisit=THREAD_POOL,
    )
    tasks = BackgroundTasks()
    tasks.add_task(wrapped, 3)
    running = asyncio.ensure_future(tasks())
    try:
        first = await timeline.wait_for(JOB_STARTED, JOB_ON_LOOP, during=running)
        assert first.name == JOB_STARTED, lesson(
            expected="the blocking task runs in a worker thread while the event loop goes on",
            got=f"{first}",
            revisit=THREAD_POOL,
        )
    finally:
        gate.set()
    await within_bound(running, revisit=THREAD_POOL)
    timeline.expect_order(JOB_STARTED, JOB_DONE, why="The job must run to its end.", revisit=WRAP)


# ---------------------------------------------------------------- task 2: record it, tell someone

RECORD = (
    "task 2: a failure is kept once in the store and announced once to the notifier, with the task's name, "
    "the exception's class name and its message (README: Record the failure and tell someone)"
)
NET = (
    "task 2: a store or a notifier that fails is logged and forgotten, and never stops the other "
    "(README: When the safety net fails)"
)


@pytest.mark.task(2)
def test_a_failure_is_recorded_once_and_announced_once(failures, notifier):
    """The store keeps one Failure and the notifier hears of it once: task name, error class, message."""
    task, _ = a_def_task(raises=ConnectionError("the report server hung up"))
    outcome = call_in_thread(guard(failures, notifier)(task), 7)
    assert outcome.finished and outcome.escaped is None, lesson(
        expected="the wrapped task returns normally", got=f"{outcome}", revisit=WRAP
    )
    assert len(failures.kept) == 1, lesson(
        expected="one failure in the store", got=f"{len(failures.kept)}: {failures!r}", revisit=RECORD
    )
    expect_failure(
        failures.kept[0],
        task="export_report",
        error="ConnectionError",
        message="the report server hung up",
        what="the failure kept in the store",
        revisit=RECORD,
    )
    assert len(notifier.calls) == 1, lesson(
        expected="the notifier told once", got=f"{len(notifier.calls)} time(s): {notifier!r}", revisit=RECORD
    )
    try:
        notifier.calls[0].message = "changed by the notifier"
    except dataclasses.FrozenInstanceError:
        changed = False
    else:
        changed = True
    assert not changed, lesson(
        expected="a failure that cannot be changed once made: the store and the notifier may hold the same one",
        got="the notifier could change its message",
        revisit=RECORD,
    )
    expect_failure(
        notifier.calls[0],
        task="export_report",
        error="ConnectionError",
        message="the report server hung up",
        what="the failure the notifier is told of",
        revisit=RECORD,
    )


@pytest.mark.task(2)
def test_a_task_that_works_is_neither_recorded_nor_announced(failures, notifier):
    """Success is not news: nothing in the store, nobody notified."""
    task, _ = a_def_task()
    call_in_thread(guard(failures, notifier)(task), 7)
    assert failures.attempts == 0 and notifier.calls == [], lesson(
        expected="nothing recorded and nobody notified", got=f"{failures!r}; {notifier!r}", revisit=RECORD
    )


@pytest.mark.task(2)
def test_a_notifier_that_fails_is_logged_and_swallowed_and_the_failure_is_still_kept(failures, notifier, log):
    """The chat service is down too: the failure is still kept, both failures are logged, nothing escapes."""
    error = ConnectionError("the report server hung up")
    notifier_error = RuntimeError("the chat service is down")
    notifier.broken = notifier_error
    task, _ = a_def_task(raises=error)
    outcome = call_in_thread(guard(failures, notifier)(task), 7)
    assert outcome.finished and outcome.escaped is None, lesson(
        expected="the wrapped task returns normally though the notifier failed",
        got=f"{outcome.escaped!r} escaped" if outcome.escaped else "it had not returned",
        revisit=NET,
    )
    expect_type(outcome.returned, type(None), what="what the wrapped task returns when it failed", revisit=NET)
    assert len(failures.kept) == 1 and len(notifier.calls) == 1, lesson(
        expected="the failure kept once and the notifier tried once",
        got=f"{failures!r}; {notifier!r}",
        revisit=NET,
    )
    task_records, notifier_records = carrying(log, error), carrying(log, notifier_error)
    assert len(task_records) == 1 and len(notifier_records) == 1 and len(serious(log)) == 2, lesson(
        expected="two records at WARNING or above: one carrying the task's exception, one the notifier's",
        got=f"{len(task_records)} with the task's, {len(notifier_records)} with the notifier's; {shown(serious(log))}",
        revisit=NET,
    )
    record = notifier_records[0]
    assert record.levelno == logging.ERROR and record.exc_info[2] is not None, lesson(
        expected="the notifier's failure at ERROR, with its traceback: someone must fix the alerting too",
        got=f"{record.levelname}: {record.getMessage()}",
        revisit=NET,
    )
    assert record.name == safe.logger.name and "export_report" in record.getMessage(), lesson(
        expected=f"from {safe.logger.name!r}, naming the task whose news was lost, export_report",
        got=f"from {record.name!r}: {record.getMessage()!r}",
        revisit=NET,
    )


@pytest.mark.task(2)
def test_a_store_that_fails_is_logged_and_the_notifier_still_hears(failures, notifier, log):
    """The store is down: its failure is logged at ERROR with its traceback, the notifier still told."""
    store_error = OSError("the failure table is locked")
    failures.broken = store_error
    task, _ = a_def_task(raises=ConnectionError("the report server hung up"))
    outcome = call_in_thread(guard(failures, notifier)(task), 7)
    assert outcome.finished and outcome.escaped is None, lesson(
        expected="the wrapped task returns normally though the store failed",
        got=f"{outcome.escaped!r} escaped" if outcome.escaped else "it had not returned",
        revisit=NET,
    )
    assert failures.attempts == 1 and len(notifier.calls) == 1, lesson(
        expected="the store tried once, and the notifier told once all the same",
        got=f"store tried {failures.attempts} time(s); {notifier!r}",
        revisit=NET,
    )
    records = carrying(log, store_error)
    assert len(records) == 1 and records[0].levelno == logging.ERROR and len(serious(log)) == 2, lesson(
        expected="one ERROR record carrying the store's exception, beside the task's own record",
        got=f"{len(records)} with the store's exception; {shown(serious(log))}",
        revisit=NET,
    )


# ---------------------------------------------------------------- task 3: keep its face

FACE = (
    "task 3: a wrapper copies the task's name, qualified name, module and docstring, and points back at it, "
    "so the signature seen through it is the task's (README: Keeping the task's name)"
)


@pytest.mark.task(3)
@pytest.mark.parametrize("kind", ["def", "async def"])
def test_a_wrapped_task_keeps_its_name_docstring_and_signature(failures, notifier, kind):
    """Logs, Starlette, error trackers and help() see the task, not a function called wrapper."""
    task, _ = a_def_task() if kind == "def" else an_async_task()
    wrapped = guard(failures, notifier)(task)
    wanted = {name: getattr(task, name) for name in ("__name__", "__qualname__", "__module__", "__doc__")}
    got = {name: getattr(wrapped, name, None) for name in wanted}
    assert got == wanted, lesson(expected=f"the {kind} task's own {wanted}", got=f"{got}", revisit=FACE)
    assert getattr(wrapped, "__wrapped__", None) is task, lesson(
        expected="the wrapper points back at the task it wraps",
        got=f"{getattr(wrapped, '__wrapped__', 'nothing')!r}",
        revisit=FACE,
    )
    assert str(inspect.signature(wrapped)) == str(inspect.signature(task)), lesson(
        expected=f"the task's signature {inspect.signature(task)}",
        got=f"{inspect.signature(wrapped)}",
        revisit=FACE,
    )


# ---------------------------------------------------------------- task 4: an async def task, wrapped

ASYNC = (
    "task 4: the wrapper of a coroutine function is a coroutine function that awaits the task "
    "(README: Wrap an async task)"
)
LOGGING_ASYNC = (
    "task 4: one failure, one record at ERROR, with its traceback and the task's name (README: Logging a failure)"
)
LOOP = (
    "task 4: Starlette awaits a coroutine function on the event loop and sends anything else to the thread pool, "
    "where a coroutine returned is never awaited (README: Thread pool or event loop)"
)


@pytest.mark.task(4)
async def test_a_wrapped_async_task_is_a_coroutine_function_and_returns_what_the_task_returns(failures, notifier, log):
    """Awaiting the wrapper awaits the task: same arguments in, same value out, nothing logged."""
    task, calls = an_async_task()
    wrapped = guard(failures, notifier)(task)
    assert inspect.iscoroutinefunction(wrapped), lesson(
        expected="the wrapper of an async def task is an async def too",
        got="a plain function: Starlette would run it in a worker thread and never await what it returns",
        revisit=LOOP,
    )
    outcome = await await_bounded(wrapped(5, days=30), revisit=ASYNC)
    assert outcome.escaped is None, lesson(
        expected="the wrapped task returns", got=f"{outcome.escaped!r}", revisit=ASYNC
    )
    assert calls.made == [((5,), {"days": 30})], lesson(
        expected="the task called once, with its positional and keyword arguments: 5, days 30",
        got=f"{len(calls.made)} call(s): {calls.made}",
        revisit=ASYNC,
    )
    expect_type(outcome.returned, str, what="what awaiting the wrapped task gives", revisit=ASYNC)
    assert outcome.returned == "synced 30 days for user 5", lesson(
        expected="the task's own return value", got=repr(outcome.returned), revisit=ASYNC
    )
    assert serious(log) == [] and failures.attempts == 0 and notifier.calls == [], lesson(
        expected="nothing logged, recorded or announced: the task worked",
        got=f"logged {shown(serious(log))}; {failures!r}; {notifier!r}",
        revisit=ASYNC,
    )


@pytest.mark.task(4)
async def test_a_failing_async_task_is_logged_recorded_and_announced_and_nothing_escapes(failures, notifier, log):
    """The same safety net for async def: one ERROR with traceback and name, one record, one notification, None back."""
    error = TimeoutError("the partner service did not answer")
    task, calls = an_async_task(raises=error)
    wrapped = guard(failures, notifier)(task)
    outcome = await await_bounded(wrapped(5), revisit=ASYNC)
    assert outcome.escaped is None, lesson(
        expected="awaiting the wrapped task ends normally when the task raises",
        got=f"{outcome.escaped!r} escaped",
        revisit="task 4: the async wrapper stops every Exception as the def one does (README: Wrap an async task)",
    )
    assert len(calls.made) == 1, lesson(expected="the task called once", got=f"{len(calls.made)}", revisit=ASYNC)
    expect_type(outcome.returned, type(None), what="what the wrapped task gives when it failed", revisit=ASYNC)
    records = carrying(log, error)
    assert len(records) == 1 and len(serious(log)) == 1, lesson(
        expected="exactly one record at WARNING or above, carrying the exception",
        got=f"{len(records)} with it; {shown(serious(log))}",
        revisit=LOGGING_ASYNC,
    )
    record = records[0]
    assert record.levelno == logging.ERROR and record.exc_info[2] is not None, lesson(
        expected="at ERROR, with the traceback", got=f"{record.levelname}", revisit=ASYNC
    )
    assert "sync_calendar" in record.getMessage() and record.name == safe.logger.name, lesson(
        expected=f"a record from {safe.logger.name!r} naming sync_calendar",
        got=f"from {record.name!r}: {record.getMessage()!r}",
        revisit=ASYNC,
    )
    assert len(failures.kept) == 1 and len(notifier.calls) == 1, lesson(
        expected="one failure kept, one notification", got=f"{failures!r}; {notifier!r}", revisit=ASYNC
    )
    for value, what in ((failures.kept[0], "the failure kept"), (notifier.calls[0], "the failure announced")):
        expect_failure(
            value,
            task="sync_calendar",
            error="TimeoutError",
            message="the partner service did not answer",
            what=what,
            revisit=ASYNC,
        )


@pytest.mark.task(4)
@pytest.mark.parametrize(
    "stop",
    [SystemExit(0), KeyboardInterrupt(), asyncio.CancelledError()],
    ids=lambda stop: type(stop).__name__,
)
async def test_shutdown_and_cancellation_pass_through_a_wrapped_async_task_untouched(failures, notifier, log, stop):
    """A BaseException raised by an async task passes through the wrapper, the same object, unlogged."""
    task, _ = an_async_task(raises=stop)
    wrapped = guard(failures, notifier)(task)
    call = wrapped(5)
    if not inspect.iscoroutine(call):
        pytest.fail(lesson(expected="a coroutine to await", got=repr(call)[:200], revisit=ASYNC), pytrace=False)
    # Stepped by hand, not on the loop: asyncio lets SystemExit and KeyboardInterrupt out of the loop itself.
    escaped, steps = None, 0
    try:
        while steps < 100:
            steps += 1
            call.send(None)
    except StopIteration:
        pass
    except BaseException as error:  # noqa: BLE001 - whatever escapes is what the spec judges
        escaped = error
    finally:
        call.close()
    assert escaped is stop, lesson(
        expected=f"the task's {type(stop).__name__} passes through the wrapper, the same object",
        got=f"{escaped!r} escaped" if escaped else "the wrapper swallowed it",
        revisit="task 4: the wrapper stops Exception and nothing wider; cancellation and shutdown are "
        "BaseExceptions (README: Exception and BaseException)",
    )
    assert serious(log) == [] and failures.attempts == 0 and notifier.calls == [], lesson(
        expected=f"nothing logged, recorded or announced for a {type(stop).__name__}",
        got=f"logged {shown(serious(log))}; {failures!r}; {notifier!r}",
        revisit="task 4: only an Exception is the task's failure (README: Exception and BaseException)",
    )


@pytest.mark.task(4)
async def test_a_wrapped_async_task_can_still_be_cancelled_while_it_waits(failures, notifier, log):
    """Cancel a wrapped task mid-await: it ends cancelled, as an unwrapped one would; nothing logged or recorded."""
    started = asyncio.Event()
    never = asyncio.Event()

    async def watch_feed(feed: str) -> None:
        """Follow a feed until cancelled."""
        started.set()
        await never.wait()

    wrapped = guard(failures, notifier)(watch_feed)
    call = wrapped("news")
    if not inspect.isawaitable(call):
        pytest.fail(lesson(expected="something to await", got=repr(call)[:200], revisit=ASYNC), pytrace=False)
    running = asyncio.ensure_future(call)
    try:
        await asyncio.wait_for(started.wait(), BOUND)
    except asyncio.TimeoutError:
        running.cancel()
        pytest.fail(lesson(expected="the task started", got="it never ran", revisit=ASYNC), pytrace=False)
    running.cancel()
    done, _ = await asyncio.wait({running}, timeout=BOUND)
    assert done and running.cancelled(), lesson(
        expected="the wrapped task ends cancelled, so whoever cancelled it (a shutdown, a timeout) sees it stop",
        got="it ended normally: the wrapper swallowed the cancellation" if done else "still running",
        revisit="task 4: CancelledError is how asyncio stops a task; a wrapper that stops it makes the task "
        "impossible to cancel (README: Exception and BaseException)",
    )
    assert serious(log) == [] and failures.attempts == 0 and notifier.calls == [], lesson(
        expected="a cancelled task is not a failure: nothing logged, recorded or announced",
        got=f"logged {shown(serious(log))}; {failures!r}; {notifier!r}",
        revisit="task 4: only an Exception is the task's failure (README: Exception and BaseException)",
    )


@pytest.mark.task(4)
async def test_starlette_awaits_a_wrapped_async_task_on_the_event_loop(failures, notifier):
    """Queued as a background task, the wrapped async task really runs, on the event loop's own thread."""
    ran_on: list[str] = []

    async def refresh_cache(key: str) -> None:
        """Refresh one cache entry."""
        ran_on.append(threading.current_thread().name)
        await asyncio.sleep(0)

    tasks = BackgroundTasks()
    tasks.add_task(guard(failures, notifier)(refresh_cache), "home")
    await within_bound(tasks(), revisit=LOOP)
    assert ran_on == [threading.current_thread().name], lesson(
        expected=f"the task ran once, on the event loop's thread ({threading.current_thread().name})",
        got=f"ran on {ran_on}" if ran_on else "it never ran: a coroutine was made and never awaited",
        revisit=LOOP,
    )


# ---------------------------------------------------------------- task 5: secrets stay out

SECRETS = (
    "task 5: the wrapper writes the task's name and the exception, never the arguments, which may hold "
    "passwords and tokens (README: Secrets and the log)"
)


def every_text(log: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    """Everything the log records hold as text: message, arguments, traceback, stack."""
    formatter = logging.Formatter()
    texts = []
    for record in log.records:
        where = f"{record.levelname} record {record.getMessage()[:60]!r}"
        texts.append((f"the message of the {where}", record.getMessage()))
        texts.append((f"the arguments of the {where}", repr(record.args)))
        texts.append((f"the raw message of the {where}", str(record.msg)))
        if record.exc_info:
            texts.append((f"the traceback of the {where}", formatter.formatException(record.exc_info)))
        if record.exc_text:
            texts.append((f"the traceback text of the {where}", record.exc_text))
        if record.stack_info:
            texts.append((f"the stack of the {where}", record.stack_info))
    return texts


def leaks(log: pytest.LogCaptureFixture, failures: FakeFailures, notifier: FakeNotifier) -> list[str]:
    texts = [*every_text(log), ("the store", repr(failures.kept)), ("the notifications", repr(notifier.calls))]
    return [where for where, text in texts if PASSWORD in text or TOKEN in text]


def a_def_login_task(raises: Exception | None) -> Callable[..., None]:
    def sign_in_partner(user: str, password: str, *, token: str) -> None:
        """Sign a user in at the partner's site."""
        if raises is not None:
            raise raises

    return sign_in_partner


def an_async_login_task(raises: Exception | None) -> Callable[..., Awaitable[None]]:
    async def sign_in_partner(user: str, password: str, *, token: str) -> None:
        """Sign a user in at the partner's site."""
        await asyncio.sleep(0)
        if raises is not None:
            raise raises

    return sign_in_partner


@pytest.mark.task(5)
@pytest.mark.parametrize("kind", ["def", "async def"])
@pytest.mark.parametrize("fails", [False, True], ids=["works", "fails"])
async def test_no_log_record_store_or_notification_holds_the_tasks_secret_arguments(
    failures, notifier, log, kind, fails
):
    """A task given a password and a token: neither appears in any log record, traceback, record or notification."""
    error = PermissionError("the partner refused the sign-in") if fails else None
    if kind == "def":
        wrapped = guard(failures, notifier)(a_def_login_task(error))
        outcome = call_in_thread(wrapped, "ada", PASSWORD, token=TOKEN)
    else:
        wrapped = guard(failures, notifier)(an_async_login_task(error))
        outcome = await await_bounded(wrapped("ada", PASSWORD, token=TOKEN), revisit=ASYNC)
    assert outcome.finished and outcome.escaped is None, lesson(
        expected="the wrapped task returns normally", got=f"{outcome}", revisit=WRAP
    )
    found = leaks(log, failures, notifier)
    assert not found, lesson(
        expected="the password and the token nowhere: not in a log record, its arguments or traceback, "
        "not in the store, not in a notification",
        got=f"a secret argument in {found}",
        revisit=SECRETS,
    )
    if fails:
        assert len(carrying(log, error)) == 1, lesson(
            expected="the failure itself still logged, once", got=f"{shown(log.records)}", revisit=LOGGING
        )


# ---------------------------------------------------------------- task 6: the app

QUEUE = "task 6: the endpoint queues the two wrapped tasks and answers 202 at once (README: Queue the safe tasks)"
OFF_THE_LOOP = (
    "task 6: queue the wrapped def task itself, after the response, so that Starlette sends it to the thread "
    "pool (README: Thread pool or event loop)"
)
VALIDATE = (
    "task 6: declare the body as a model, with an email address and a password of 8 to 128 characters, so "
    "FastAPI answers 422 before anything is queued (README: Queue the safe tasks)"
)


@pytest.fixture(name="directory")
def _directory(timeline: Timeline) -> FakeDirectory:
    return FakeDirectory(timeline)


@pytest.fixture(name="mailer")
def _mailer(timeline: Timeline) -> AsyncFakeOutbox:
    return AsyncFakeOutbox(timeline)


@pytest.fixture(name="app")
def _app(directory: FakeDirectory, mailer: AsyncFakeOutbox, failures: FakeFailures, notifier: FakeNotifier):
    """The kata's app, wired to the fakes."""
    return safe.create_app(directory=directory, mailer=mailer, failures=failures, notifier=notifier)


async def post(client, *, revisit: str, json: object = VALID):
    __tracebackhide__ = True
    return await within_bound(client.post("/accounts", json=json), revisit=revisit)


async def get(client, path: str, *, revisit: str):
    __tracebackhide__ = True
    return await within_bound(client.get(path), revisit=revisit)


def expect_the_directory_off_the_loop(timeline: Timeline) -> None:
    """Fail with the lesson if the blocking directory call was made on the event loop's thread."""
    __tracebackhide__ = True
    blocked = timeline.first(DIRECTORY_ON_LOOP)
    assert blocked is None, lesson(
        expected="the blocking directory call made in a worker thread of the thread pool",
        got=f"{blocked}: while it blocks, no other request is served",
        revisit=OFF_THE_LOOP,
    )


def nothing_queued(directory: FakeDirectory, mailer: AsyncFakeOutbox) -> bool:
    return directory.attempts == 0 and mailer.timeline.count("email started") == 0


@pytest.mark.task(6)
async def test_a_new_account_is_accepted_with_202_and_the_password_is_not_echoed(client):
    """202 Accepted with the status and the address; the password never comes back."""
    response = await post(client, revisit=QUEUE)
    expect_status(response, 202, expected="202 Accepted", revisit=QUEUE)
    body = response.json()
    expect_type(body, dict, what="the JSON body", revisit=QUEUE)
    expect_json(
        response,
        {"status": "queued", "email": VALID["email"]},
        expected=f'{{"status": "queued", "email": "{VALID["email"]}"}}, and nothing more',
        revisit=QUEUE,
    )


@pytest.mark.task(6)
@pytest.mark.parametrize(
    "body",
    [
        {"password": PASSWORD},
        {"email": "ada@example.com"},
        {"email": "not-an-email", "password": PASSWORD},
        {"email": "ada@example.com", "password": "x" * 7},
        {"email": "ada@example.com", "password": "x" * 129},
        {"email": "ada@example.com", "password": "é" * 129},
        {"email": "ada@example.com", "password": None},
        {"email": "ada@example.com", "password": 12345678},
        None,
        [],
        "ada@example.com",
    ],
    ids=[
        "no email",
        "no password",
        "malformed email",
        "7-character password",
        "129-character password",
        "129 accented characters",
        "null password",
        "number password",
        "null body",
        "list body",
        "string body",
    ],
)
async def test_a_bad_request_is_a_422_and_queues_nothing(client, directory, mailer, body):
    """A missing field, a malformed address, a password outside 8 to 128 characters, a body that is no object."""
    response = await post(client, json=body, revisit=VALIDATE)
    expect_status(response, 422, expected=f"422 Unprocessable Content for {body!r}"[:200], revisit=VALIDATE)
    assert nothing_queued(directory, mailer), lesson(
        expected="nothing queued for a rejected request",
        got=f"{directory.attempts} directory call(s), {mailer.timeline.count('email started')} email(s)",
        revisit=VALIDATE,
    )


@pytest.mark.task(6)
@pytest.mark.parametrize("password", ["x" * 8, "x" * 128, "é" * 8, "é" * 128], ids=["8", "128", "8 é", "128 é"])
async def test_a_password_of_8_to_128_characters_is_accepted_as_it_is(client, directory, password):
    """Both limits are allowed, and a character is a character, accented or not (not a byte)."""
    response = await post(client, json={"email": "ada@example.com", "password": password}, revisit=VALIDATE)
    expect_status(
        response, 202, expected=f"202 Accepted for a password of {len(password)} characters", revisit=VALIDATE
    )
    expect_the_directory_off_the_loop(directory.timeline)
    assert directory.accounts == [("ada@example.com", password)], lesson(
        expected="the account created with exactly that password",
        got=f"{directory.accounts}",
        revisit=QUEUE,
    )


@pytest.mark.task(6)
async def test_both_tasks_run_after_the_response_with_their_arguments(app, timeline, directory, mailer):
    """The directory gets the address and the password, the sales team its email, both after the 202."""
    done: Exchange = await within_bound(timeline.start(app, "POST", "/accounts", json=VALID), revisit=QUEUE)
    expect_status(done, 202, revisit=QUEUE)
    expect_the_directory_off_the_loop(timeline)
    for work in (DIRECTORY_DONE, EMAIL_SENT):
        timeline.expect_order(
            RESPONSE_COMPLETE,
            work,
            why=f"'{work}' must happen, and only after the response is complete.",
            revisit="task 6: a queued task runs after the response; calling it in the endpoint runs it while "
            "the client waits (README: When a background task raises)",
        )
    assert directory.accounts == [(VALID["email"], PASSWORD)], lesson(
        expected=f"one account: ({VALID['email']!r}, the password)", got=f"{directory.accounts}", revisit=QUEUE
    )
    sent = [(email.to, email.subject) for email in mailer.sent]
    assert sent == [("sales@example.com", "New sign-up")] and VALID["email"] in mailer.sent[0].body, lesson(
        expected=f"one email to sales@example.com, subject 'New sign-up', about {VALID['email']}",
        got=f"{mailer!r}",
        revisit=QUEUE,
    )


@pytest.mark.task(6)
async def test_the_blocking_directory_call_runs_in_the_thread_pool_while_the_app_answers_others(
    app, timeline, directory
):
    """While the directory call blocks, the same app still answers GET /failures: the event loop is free."""
    directory.gate.clear()
    running = timeline.start(app, "POST", "/accounts", json=VALID)
    try:
        first = await timeline.wait_for(DIRECTORY_STARTED, DIRECTORY_ON_LOOP, during=running)
        assert first.name == DIRECTORY_STARTED, lesson(
            expected="the blocking directory call made in a worker thread",
            got=f"{first}",
            revisit=OFF_THE_LOOP,
        )
        meanwhile = await within_bound(timeline.request(app, "GET", "/failures"), revisit=QUEUE)
        expect_status(meanwhile, 200, expected="200 from GET /failures while the directory call blocks", revisit=QUEUE)
    finally:
        directory.gate.set()
    done = await within_bound(running, revisit=QUEUE)
    assert done.error is None, lesson(expected="no error", got=str(done), revisit=QUEUE)


@pytest.mark.task(6)
@pytest.mark.parametrize("broken", ["directory", "mailer", "both"])
async def test_a_failing_task_is_logged_kept_and_listed_and_the_other_still_runs(  # noqa: PLR0913, PLR0917
    client, directory, mailer, notifier, log, broken
):
    """A task fails: the client had its 202, nothing escapes, the other task runs, GET /failures lists it."""
    account = {"task": "create_account", "error": "ConnectionError", "message": "the directory is down"}
    signup = {"task": "announce_signup", "error": "OSError", "message": "the mail relay refused"}
    wanted = []
    if broken in ("directory", "both"):
        directory.failure = ConnectionError("the directory is down")
        wanted.append(account)
    if broken in ("mailer", "both"):
        mailer.fail_with(OSError("the mail relay refused"))
        wanted.append(signup)
    response = await post(client, revisit=QUEUE)
    expect_status(response, 202, revisit=QUEUE)
    assert client.app_errors == [], lesson(
        expected="no exception escapes the background tasks",
        got=f"{[repr(error) for error in client.app_errors]}",
        revisit="task 6: queue the wrapped tasks, not the bare ones (README: When a background task raises)",
    )
    worked = {"directory": len(directory.accounts), "mailer": len(mailer.sent)}
    expected = {part: 0 if broken in (part, "both") else 1 for part in worked}
    assert worked == expected, lesson(
        expected=f"with the {broken} down, the other task still does its work: {expected}",
        got=f"{worked}",
        revisit=QUEUE,
    )
    assert len(notifier.calls) == len(wanted), lesson(
        expected=f"{len(wanted)} notification(s)", got=f"{notifier!r}", revisit=QUEUE
    )
    listed = await get(client, "/failures", revisit=QUEUE)
    expect_json(listed, wanted, expected=f"every failure, oldest first: {wanted}", revisit=QUEUE)
    for number, failure in enumerate(wanted, start=1):
        one = await get(client, f"/failures/{number}", revisit=QUEUE)
        expect_json(one, failure, expected=f"failure {number}: {failure}", revisit=QUEUE)
    found = [where for where, text in every_text(log) if PASSWORD in text]
    assert not found, lesson(expected="the password in no log record", got=f"in {found}", revisit=SECRETS)


@pytest.mark.task(6)
async def test_no_failures_is_an_empty_list(client):
    """Before anything failed, GET /failures is an empty JSON list."""
    listed = await get(client, "/failures", revisit=QUEUE)
    expect_status(listed, 200, revisit=QUEUE)
    expect_json(listed, [], revisit=QUEUE)


@pytest.mark.task(6)
async def test_an_unknown_failure_is_a_404_and_a_malformed_number_a_422(client, directory):
    """Failures count from 1: 0, -1 and one past the last are 404; a number that is not an integer is 422."""
    directory.failure = ConnectionError("the directory is down")
    await post(client, revisit=QUEUE)
    found = await get(client, "/failures/1", revisit=QUEUE)
    expect_status(found, 200, expected="200 for failure 1, the only one", revisit=QUEUE)
    for number in ("0", "-1", "2", "99"):
        response = await get(client, f"/failures/{number}", revisit=QUEUE)
        expect_status(
            response,
            404,
            expected=f"404 Not Found for failure {number}: there is one failure, number 1",
            revisit="task 6: only the numbers 1 to the count of failures exist; a list read with a number "
            "out of range crashes, and a negative one counts from the end (README: Queue the safe tasks)",
        )
        expect_json(
            response,
            {"detail": f"no failure number {number}"},
            revisit="task 6: the 404 says which number has no failure (README: Queue the safe tasks)",
        )
    for number in ("abc", "1.5", "one"):
        response = await get(client, f"/failures/{number}", revisit=QUEUE)
        expect_status(
            response,
            422,
            expected=f"422 Unprocessable Content for {number!r}, which is not an integer",
            revisit="task 6: declare the number as an integer and FastAPI answers 422 for anything else "
            "(README: Queue the safe tasks)",
        )
