"""Specs for kata 16: your tests, run on the given shop and on its wrong versions.

Run them with

    uv run pytest katas/k16_testing_tasks

Each spec names the README task it checks. Edit my_tests.py, not this file, and not app.py.

How it works: the specs run your my_tests.py once, in this process, with pytest itself.
Your tests get the app's factory from the ``create_app`` fixture, and that fixture hands
them the given app first, then, one after another, each wrong version of it (the same
app with one mistake a developer could make). A test of yours *catches* a wrong version
when it passes on the given app and fails on that version. Each spec below reads the
results of that one run: your tests must all pass on the given app, and each wrong
version must be caught by at least one of them. A failure names the behaviour that went
unnoticed, never the wrong version's code: finding the test that would see it is the kata.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import io
import logging
import os
import re
import signal
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastapi  # noqa: F401 - the shop's stack, imported while pytest collects rather than inside the first spec
import freezegun  # the test stack a learner's file uses: imported once here, not in every run
import freezegun.config
import httpx
import pytest
import respx  # noqa: F401

from dojo.impl import active
from dojo.teach import lesson

SLUG = "k16_testing_tasks"
LEARNER_FILE = "my_tests.py"
GIVEN = Path(__file__).with_name("app.py")
FIXTURE = "create_app"

#: A test of yours still running after this many seconds is stopped and counted as a failure.
TEST_LIMIT = 2.0
#: A test not run at all on a version: it neither passes on the given shop nor catches anything.
NOT_RUN = "not run"
#: The spec's own time limit (pytest-timeout's alarm, when grading) is left this much room.
OUTER_MARGIN = 0.2
#: What a test is told when the spec itself runs out of time: its version is run again later.
OUT_OF_TIME = "the spec ran out of its own time"
#: A version no spec is waiting for is left for later when the spec's own alarm is this close.
DEFER_AT = 2.0
#: A teardown gets at least this long, even after its test used up its time: pytest's clean-up is in it.
TEARDOWN_LIMIT = 0.5
#: After this many stopped tests, the rest are not run at all: the spec ends within a few seconds.
STOPPED_LIMIT = 2


# ---------------------------------------------------------------- the wrong versions of the shop


@dataclass(frozen=True)
class Wrong:
    """One wrong version of the shop: the behaviour it gets wrong, and the change that makes it."""

    name: str
    task: int
    unnoticed: str  # the behaviour a learner's tests did not see, in words
    question: str  # the question that leads to the test that would see it
    changes: tuple[tuple[str, str], ...]  # (text of app.py, what it becomes); each text stands once


CONFIRM = "background_tasks.add_task(guarded(send_confirmation), mailer, number, order)"
WAREHOUSE = "background_tasks.add_task(guarded(notify_warehouse), warehouse, number, order, placed_at)"

WRONG_VERSIONS = (
    Wrong(
        "answers_200",
        1,
        "an order answered 200 OK instead of 202 Accepted went unnoticed",
        "which of your tests reads the status of the answer?",
        (("status_code=202", "status_code=200"),),
    ),
    Wrong(
        "confirmation_never_sent",
        1,
        "an order whose confirmation is never sent went unnoticed",
        "which of your tests looks at the emails the app sent?",
        ((CONFIRM, "pass  # the confirmation is never queued"),),
    ),
    Wrong(
        "wrong_recipient",
        1,
        "a confirmation sent to somebody other than the customer went unnoticed",
        "which of your tests reads whom the email is to?",
        (("to=str(order.email)", 'to="orders@shop.example"'),),
    ),
    Wrong(
        "confirmation_sent_twice",
        1,
        "a customer who gets the confirmation twice went unnoticed",
        "which of your tests counts the emails?",
        ((CONFIRM, f"{CONFIRM}\n        {CONFIRM}"),),
    ),
    Wrong(
        "every_order_is_number_one",
        1,
        "every order numbered 1 went unnoticed",
        "which of your tests places a second order and reads its number?",
        (("number = next(numbers)", "number = 1"),),
    ),
    Wrong(
        "sends_before_the_response",
        2,
        "a confirmation sent before the response, while the client waits for it, went unnoticed",
        "which of your tests would see the order of the two: the response's last byte, then the email?",
        ((CONFIRM, "await guarded(send_confirmation)(mailer, number, order)"),),
    ),
    Wrong(
        "a_failure_stops_the_next_task",
        3,
        "a failing email that stops the warehouse call, and escapes the app, went unnoticed",
        "which of your tests makes the mail server fail, and then looks at the warehouse?",
        (
            ("add_task(guarded(send_confirmation),", "add_task(send_confirmation,"),
            ("add_task(guarded(notify_warehouse),", "add_task(notify_warehouse,"),
        ),
    ),
    Wrong(
        "a_failure_is_not_logged",
        3,
        "a failing task that nobody logs went unnoticed",
        "which of your tests reads the log when a task fails?",
        (('logger.exception("background task %s failed", task.__name__)', "pass"),),
    ),
    Wrong(
        "a_failure_is_logged_as_a_warning",
        3,
        "a failing task logged as a warning, without its traceback, went unnoticed",
        "which of your tests checks the level of the record and the exception it carries?",
        (("logger.exception(", "logger.warning("),),
    ),
    Wrong(
        "warehouse_never_told",
        4,
        "an order the warehouse never hears of went unnoticed",
        "which of your tests looks at what reached the warehouse?",
        ((WAREHOUSE, "pass  # the warehouse is never told"),),
    ),
    Wrong(
        "warehouse_told_one_of_each",
        4,
        "the warehouse told to ship one of each item, whatever the quantity ordered, went unnoticed",
        "which of your tests orders more than one and reads the quantity the warehouse got?",
        (('"quantity": order.quantity,', '"quantity": 1,'),),
    ),
    Wrong(
        "time_without_its_offset",
        4,
        "a time sent to the warehouse without its UTC offset went unnoticed",
        "which of your tests freezes the clock and compares the exact time the warehouse got?",
        (("datetime.now(timezone.utc)", "datetime.now()"),),
    ),
)
VERSION_IDS = {wrong.name: f"k16shop{number:02d}" for number, wrong in enumerate(WRONG_VERSIONS, start=1)}
#: The README's tasks a wrong version can belong to.
TASKS = 4
GIVEN_ID = "k16shop00"


def shop_factories() -> dict[str, Callable[..., Any]]:
    """``create_app`` of the given shop (first) and of each wrong version, built from app.py's text."""
    source = GIVEN.read_text(encoding="utf-8")
    factories = {GIVEN_ID: _load_shop(GIVEN_ID, source)}
    for wrong in WRONG_VERSIONS:
        text = source
        for old, new in wrong.changes:
            if text.count(old) != 1:
                raise RuntimeError(f"wrong version {wrong.name}: {old!r} stands {text.count(old)} times in app.py")
            text = text.replace(old, new)
        factories[VERSION_IDS[wrong.name]] = _load_shop(VERSION_IDS[wrong.name], text)
    return factories


def _load_shop(version: str, source: str) -> Callable[..., Any]:
    name = f"{SLUG}_{version}"
    module = sys.modules.get(name)
    digest = hashlib.sha256(source.encode()).hexdigest()
    if module is None or getattr(module, "_k16_source", None) != digest:
        module = types.ModuleType(name)
        module.__file__ = str(GIVEN)
        sys.modules[name] = module  # pydantic resolves the model's annotations through it
        exec(compile(source, str(GIVEN), "exec"), module.__dict__)  # noqa: S102 - our own app.py, one change applied
        module._k16_source = digest  # noqa: SLF001 - our own marker
        asyncio.run(_one_order(module.create_app, request=version == GIVEN_ID))
    return module.create_app


class _QuietMailer:
    async def asend(self, to: str, subject: str, body: str) -> None:
        """Send nothing."""


async def _one_order(create_app: Callable[..., Any], *, request: bool) -> None:
    """Build the app (and serve it one order): first-time costs are paid here, not in the learner's time limit."""
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda _request: httpx.Response(200))) as warehouse:
        app = create_app(_QuietMailer(), warehouse)
        if request:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client:
                await client.post("/orders", json={"email": "warm@example.com", "item": "Kettle", "quantity": 1})


# ---------------------------------------------------------------- running the learner's tests


class Stopped(BaseException):
    """Raised into a learner's test that ran past :data:`TEST_LIMIT`.

    A BaseException: no ``except Exception`` in the test keeps it.
    """


@dataclass
class Result:
    """How one test of the learner's ended on one version of the shop."""

    outcome: str = "passed"  # passed, failed, skipped, stopped
    message: str = ""


@dataclass
class Run:
    """What one run of the learner's file gave: per test, per version of the shop."""

    problem: str = ""  # the file did not import, or pytest could not run it
    results: dict[str, dict[str, Result]] = field(default_factory=dict)  # test -> version (or "") -> result
    sleeps: dict[str, list[str]] = field(default_factory=dict)  # test -> the real waits it made
    not_run: list[str] = field(default_factory=list)  # tests not run: the run's time was spent
    versions_run: set[str] = field(default_factory=set)  # the versions of the shop the tests were run on

    @property
    def tests(self) -> list[str]:
        return list(self.results)

    def __repr__(self) -> str:
        return f"<your tests: {len(self.results)}, run on {len(self.versions_run)} version(s) of the shop>"

    def on_given(self, test: str) -> Result:
        versions = self.results[test]
        return versions.get(GIVEN_ID) or versions.get("") or Result("failed", "not run")

    def passing_on_given(self) -> list[str]:
        return [test for test in self.tests if self.on_given(test).outcome == "passed"]

    def catchers(self, wrong: Wrong) -> list[str]:
        """The tests that pass on the given shop and fail on this wrong version."""
        version = VERSION_IDS[wrong.name]
        return [
            test
            for test in self.passing_on_given()
            if (result := self.results[test].get(version)) is not None and result.outcome == "failed"
        ]

    def stopped_on(self, wrong: Wrong) -> list[str]:
        """The tests stopped on this wrong version: a hang is not a failure a test suite can report."""
        version = VERSION_IDS[wrong.name]
        return [test for test in self.tests if (r := self.results[test].get(version)) and r.outcome == "stopped"]


def _alarm_available() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def outer_alarm() -> float:
    """Seconds until the process's own alarm rings (pytest-timeout's, when grading); 0 when none is set."""
    return signal.getitimer(signal.ITIMER_REAL)[0] if _alarm_available() else 0.0


@contextlib.contextmanager
def time_limit(seconds: float, what: str) -> Iterator[None]:
    """Raise :class:`Stopped` into the code running after ``seconds`` (again every 50 ms, until it ends).

    The process's own alarm (pytest-timeout, when grading) is put back as it was, minus the
    time spent. When it would ring first, this one rings just before it, with
    :data:`OUT_OF_TIME`: the learner's test is not to blame, and the spec's own time limit
    then rings as soon as the run is over.
    """
    if not _alarm_available() or seconds <= 0:
        yield
        return
    outer_handler = signal.getsignal(signal.SIGALRM)
    outer_delay, outer_interval = signal.getitimer(signal.ITIMER_REAL)
    if 0 < outer_delay <= seconds + OUTER_MARGIN:
        seconds, what = max(outer_delay - OUTER_MARGIN, 0.001), OUT_OF_TIME
    rang = []

    def ring(_signum: int, _frame: object) -> None:
        rang.append(what)
        raise Stopped(what)

    started = time.monotonic()
    signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds, 0.05)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, outer_handler)
        if outer_delay > 0:
            left = max(outer_delay - (time.monotonic() - started), 0.001)
            if OUT_OF_TIME in rang:
                HELD_ALARM.append(left)  # rung once the inner run is over, in the spec: never inside pytest's own code
            else:
                signal.setitimer(signal.ITIMER_REAL, left, outer_interval)


#: The process's own alarm, held back while the inner run winds down after :data:`OUT_OF_TIME`.
HELD_ALARM: list[float] = []


_ID_PART = re.compile(r"(?:(?<=\[)|-)k16shop\d\d(?=[\]-])|(?<=\[)k16shop\d\d-")


def _test_name(item: pytest.Item) -> str:
    name = _ID_PART.sub("", item.name)
    return name.removesuffix("[]")


class Harness:
    """The plugin of the inner run: the ``create_app`` fixture, a time limit per test, real waits noted."""

    def __init__(self, factories: dict[str, Callable[..., Any]], run: Run) -> None:
        self.factories = factories
        self.run = run
        self.current: str | None = None
        self.on_given = True
        self.spent: dict[str, float] = {}
        self.stopped: set[str] = set()
        self.saved: list[tuple[object, str, object]] = []
        self.caught: set[str] = set()  # the wrong versions a test has caught
        self.deferrable: set[str] = set()  # versions no spec waits for: left for later when time is short
        self.dropped: set[str] = set()  # versions left for later: their results here are not kept
        self.out_of_time = False  # the spec's own alarm is about to ring: nothing more is run
        self.unneeded: set[str] = set()  # runs skipped: not needed for any verdict

    # -- real waits

    def pytest_configure(self, config: pytest.Config) -> None:  # noqa: ARG002 - the hook's signature
        real_sleep, real_asleep = time.sleep, asyncio.sleep

        def sleep(seconds: float) -> None:
            self._note_wait("time.sleep", seconds)
            real_sleep(seconds)

        async def asleep(seconds: float, result: object = None) -> object:
            self._note_wait("asyncio.sleep", seconds)
            return await real_asleep(seconds, result)

        for owner, name, replacement in ((time, "sleep", sleep), (asyncio, "sleep", asleep)):
            self.saved.append((owner, name, getattr(owner, name)))
            setattr(owner, name, replacement)

    def pytest_unconfigure(self, config: pytest.Config) -> None:  # noqa: ARG002 - the hook's signature
        for owner, name, original in reversed(self.saved):
            setattr(owner, name, original)
        self.saved.clear()

    def _note_wait(self, how: str, seconds: object) -> None:
        if self.current is not None and isinstance(seconds, (int, float)) and seconds > 0 and self.on_given:
            waits = self.run.sleeps.setdefault(self.current, [])
            if len(waits) < 5:
                waits.append(f"{how}({seconds:g})")

    # -- each test: bounded, its outcome kept per version

    def _version(self, item: pytest.Item) -> str:
        callspec = getattr(item, "callspec", None)
        return str(callspec.params.get(FIXTURE, "")) if callspec is not None else ""

    def _phase(self, item: pytest.Item, when: str) -> Iterator[None]:
        name = _test_name(item)
        self.current = name
        self.on_given = self._version(item) in {"", GIVEN_ID}  # real waits are judged on the given shop
        if when != "teardown":  # a teardown always runs: pytest's own clean-up is in it
            if name in self.stopped:
                raise Stopped(f"{NOT_RUN}: it was stopped on an earlier run")
            if len(self.stopped) >= STOPPED_LIMIT:
                if name not in self.run.not_run:
                    self.run.not_run.append(name)
                raise Stopped(f"{NOT_RUN}: earlier tests used up the time")
        left = TEST_LIMIT - self.spent.get(item.nodeid, 0.0)
        if when == "teardown":
            left = max(left, TEARDOWN_LIMIT)
        started = time.monotonic()
        try:
            with time_limit(left, f"{name} was still running after {TEST_LIMIT:g} s: stopped"):
                yield
        finally:
            self.spent[item.nodeid] = self.spent.get(item.nodeid, 0.0) + time.monotonic() - started
            self.current = None

    @pytest.hookimpl(wrapper=True, trylast=True)  # inside pytest's own wrappers: they set up what teardown needs
    def pytest_runtest_setup(self, item: pytest.Item) -> Iterator[None]:
        version = self._version(item)
        if self.out_of_time or version in self.dropped:
            self._drop(item, version)
        if version in self.deferrable and 0 < outer_alarm() < DEFER_AT:
            self._drop(item, version)  # the spec that judges this version runs it, in its own time
        if version not in {"", GIVEN_ID}:
            given = self.run.results.get(_test_name(item), {}).get(GIVEN_ID)
            if given is None or given.outcome != "passed" or version in self.caught:
                # A test that fails on the given shop says nothing of a wrong one, and one catch
                # is enough: the rest of this version's runs are not needed.
                self.unneeded.add(item.nodeid)
                raise pytest.skip.Exception("not needed")
        return (yield from self._phase(item, "setup"))

    def _drop(self, item: pytest.Item, version: str) -> None:
        """Leave this version for a later run: none of its results from this one are kept."""
        self.dropped.add(version)
        self.unneeded.add(item.nodeid)
        raise pytest.skip.Exception("left for later")

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Iterator[None]:
        return (yield from self._phase(item, "call"))

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Iterator[None]:
        return (yield from self._phase(item, "teardown"))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        if item.nodeid in self.unneeded:
            return report
        name, version = _test_name(item), self._version(item)
        result = self.run.results.setdefault(name, {}).setdefault(version, Result())
        stopped = call.excinfo is not None and call.excinfo.errisinstance(Stopped)
        if stopped and str(call.excinfo.value).startswith(NOT_RUN):
            result.outcome, result.message = "not run", str(call.excinfo.value)
            return report
        if stopped and str(call.excinfo.value) == OUT_OF_TIME:
            self.out_of_time = True
            self.dropped.add(version)
            return report
        if stopped:
            self.stopped.add(name)
        if result.outcome != "passed":
            return report
        if report.failed:
            crash = getattr(report.longrepr, "reprcrash", None)
            text = crash.message if crash is not None else str(report.longrepr)
            result.outcome = "stopped" if stopped else "failed"
            if version not in {"", GIVEN_ID} and not stopped:
                self.caught.add(version)
            result.message = f"{'error in ' + call.when + ': ' if call.when != 'call' else ''}{text}"[:600]
        elif report.skipped:
            result.outcome = "skipped"
            result.message = "xfail" if hasattr(report, "wasxfail") else "skipped"
        return report

    @pytest.hookimpl(trylast=True)  # after pytest has grouped the tests by version of the shop
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """The given shop first, your tests in file order; on a wrong version, the tests about its task first.

        A wrong version needs one test to catch it, and the rest of its runs are skipped. Test
        files tend to follow the tasks, so a version of task ``t`` (of 4) starts ``(t - 1) / 4``
        of the way down the file and wraps around: every test still runs on it until one catches
        it, in half the runs of a start from the top.
        """
        position = {name: index for index, name in enumerate(dict.fromkeys(map(_test_name, items)))}
        count = max(len(position), 1)
        task = {VERSION_IDS[wrong.name]: wrong.task for wrong in WRONG_VERSIONS}  # the given shop's: none
        groups = {version: number for number, version in enumerate(("", GIVEN_ID, *VERSION_IDS.values()))}

        def order(item: pytest.Item) -> tuple[int, int]:
            version = self._version(item)
            start = (task.get(version, 1) - 1) * count // TASKS
            return groups.get(version, len(groups)), (position[_test_name(item)] - start) % count

        items.sort(key=order)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed and not self.run.problem:
            self.run.problem = str(report.longreprtext)[-1500:]


def shop_fixture(factories: dict[str, Callable[..., Any]]) -> object:
    """A plugin holding the ``create_app`` fixture: one parameter per version of the shop, the given one first."""

    @pytest.fixture(name=FIXTURE, scope="session", params=list(factories), ids=list(factories))
    def create_app(_self: object, request: pytest.FixtureRequest) -> Callable[..., Any]:
        """The shop's ``create_app(mailer, warehouse)``: build the app with your own fakes."""
        return factories[request.param]

    return type("ShopVersions", (), {"create_app": create_app})()


_RUNS: dict[tuple[str, str], Run] = {}
#: Packages whose modules a frozen clock need not patch: none keeps the shop's "now".
UNFROZEN = (
    "pydantic",
    "pydantic_core",
    "fastapi",
    "starlette",
    "httpx",
    "httpcore",
    "anyio",
    "respx",
    "hypothesis",
    "_pytest",
    "pytest",
    "pluggy",
    "dojo",
    "email_validator",
    "idna",
    "sqlalchemy",
    "celery",
    "kombu",
    "jinja2",
    "uvicorn",
    "redis",
    "asgi_lifespan",
    "typing_extensions",
    "annotated_types",
    "urllib3",
    "concurrent",  # its lazy attributes import multiprocessing when looked at
    "multiprocessing",
    "dateutil",
    "unittest",
)
_FROZEN_ONCE: list[bool] = []


def frozen_clocks_skip_the_libraries(*, warm: bool) -> list[str]:
    """Leave the libraries out of freezegun's look at every module (until put back); its settings before.

    freezegun looks into every loaded module when a clock is frozen, and the stack loads hundreds: the
    libraries hold no "now" of the shop's, so the learner's frozen clocks skip them (a second saved each).
    With ``warm``, its first look, the slowest, is paid now, before the tests' time starts.
    """
    ignored = list(freezegun.config.settings.default_ignore_list)
    freezegun.configure(extend_ignore_list=[name for name in UNFROZEN if name not in ignored])
    if warm and not _FROZEN_ONCE:
        with freezegun.freeze_time("2026-01-01", real_asyncio=True):
            _FROZEN_ONCE.append(True)
    return ignored


def learner_file() -> Path:
    return active().kata_dir(SLUG) / LEARNER_FILE


def run_learner_tests(path: Path, wanted: tuple[str, ...] = (GIVEN_ID,)) -> Run:
    """The learner's file, run with pytest in this process, on the given shop and every wrong version.

    One session runs them all (the given shop first), once per content of the file. When the
    spec's own time limit draws near (grading), the versions no spec is waiting for
    (``wanted`` are) are left for later: the spec that judges one runs it then.
    """
    try:
        content = path.read_bytes()
    except OSError as error:
        return Run(problem=f"{path} cannot be read: {error.strerror}")
    key = (str(path), hashlib.sha256(content).hexdigest())
    cached = _RUNS.get(key)
    if cached is not None and (cached.problem or not set(wanted) - cached.versions_run):
        return cached
    # The session fills a copy: a run cut short by the spec's own alarm leaves nothing half-done behind.
    run = copy.deepcopy(cached) if cached is not None else Run()
    todo = [version for version in (GIVEN_ID, *VERSION_IDS.values()) if version not in run.versions_run]
    run.versions_run.update(todo)
    factories = shop_factories()
    harness = Harness(factories, run)
    harness.deferrable = set(todo) - {GIVEN_ID, *wanted}
    arguments = [
        str(path),
        "-c",
        os.devnull,  # no settings file: the learner's own settings stay out
        "--rootdir",
        str(path.parent),
        # Collection starts here: by default it starts at the settings file's folder (/dev, for
        # os.devnull), so pytest would list every folder from the top of the disk down to the file.
        "--confcutdir",
        str(path.parent),
        "--noconftest",
        "--import-mode=importlib",
        "--disable-plugin-autoload",  # the plugins a test suite of this stack uses, and no other
        "-p",
        "pytest_asyncio.plugin",
        "-p",
        "respx.plugin",
        *(("-p", "_hypothesis_pytestplugin") if b"hypothesis" in content else ()),
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_mode=auto",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        "-q",
        "--tb=line",
        "-W",
        "ignore::pytest.PytestAssertRewriteWarning",
    ]
    before = set(sys.modules)
    output = io.StringIO()
    plugins = [harness, shop_fixture({name: factories[name] for name in todo})]
    outer_handlers, logging.root.handlers = logging.root.handlers, []  # the inner run's records stay in it
    ignored = frozen_clocks_skip_the_libraries(warm=b"freeze" in content)
    # The learner's file is never cached as bytecode: a .pyc could shadow a save in the same second.
    writes, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        with (
            contextlib.redirect_stdout(output),
            contextlib.redirect_stderr(output),
            time_limit(outer_alarm(), OUT_OF_TIME),  # pytest's own work too ends before the spec's alarm
        ):
            status = pytest.main(arguments, plugins=plugins)
    except Stopped:  # the spec's alarm drew near between two of pytest's steps: handled below
        status = pytest.ExitCode.INTERRUPTED
    finally:
        sys.dont_write_bytecode = writes
        logging.root.handlers = outer_handlers
        freezegun.config.settings.default_ignore_list = ignored
        for name in set(sys.modules) - before:
            module = sys.modules.get(name)
            if getattr(module, "__file__", None) and str(module.__file__).startswith(str(path.parent)):
                del sys.modules[name]
    if not run.problem and status in {pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR, 4}:
        run.problem = output.getvalue()[-1500:] or f"pytest stopped: {status!r}"
    if HELD_ALARM:  # the spec's own time is up: nothing of this run is kept, and its alarm rings now, in the spec
        HELD_ALARM.clear()
        signal.setitimer(signal.ITIMER_REAL, 0.001)
        time.sleep(1)  # the alarm interrupts this
    run.versions_run -= harness.dropped
    for results in run.results.values():
        for version in harness.dropped:
            results.pop(version, None)
    _RUNS[key] = run
    return run


def judged(wanted: str = GIVEN_ID) -> Run:
    """The learner's tests, run on the given shop and on ``wanted``; a spec out of time says so."""
    __tracebackhide__ = True
    run = run_learner_tests(learner_file(), (wanted,))
    if not run.problem and not {GIVEN_ID, wanted} <= run.versions_run:
        pytest.fail(
            "The spec ran out of time before your tests had run: the machine is very busy, or your tests are slow."
            + lesson(
                expected="your tests run on the given shop and this version within the spec's time limit",
                got="the spec's time limit came first",
                revisit=RUN_THE_SHOP,
            ),
            pytrace=False,
        )
    return run


@pytest.fixture(name="run")
def _run() -> Run:
    """The learner's tests, run on the given shop (once per content of the file)."""
    return judged()


# ---------------------------------------------------------------- what the specs say


def show(tests: list[str]) -> str:
    return ", ".join(tests) if tests else "none"


def given_failures(run: Run) -> list[str]:
    """Each test that does not pass on the given shop, with how it ended and the first line of why."""
    lines = []
    for test in run.tests:
        result = run.on_given(test)
        if result.outcome != "passed":
            first = result.message.strip().splitlines()[0] if result.message.strip() else ""
            lines.append(f"{test}: {result.outcome}: {first}")
    return lines


def check_caught(run: Run, wrong: Wrong, *, revisit: str) -> None:
    """Fail, naming the behaviour that went unnoticed, unless a test passing on the given shop fails on ``wrong``."""
    __tracebackhide__ = True
    run = judged(VERSION_IDS[wrong.name])
    if run.problem:
        pytest.fail(
            f"Your tests could not run, so no wrong version can be caught: {wrong.unnoticed}."
            + lesson(expected="my_tests.py imports and pytest collects its tests", got=run.problem, revisit=revisit),
            pytrace=False,
        )
    caught = run.catchers(wrong)
    failing_anyway = [test for test in run.tests if run.on_given(test).outcome != "passed"]
    got = f"all {len(run.passing_on_given())} of your tests that pass on the given shop pass on it too"
    if failing_anyway:
        got += f"; these fail on the given shop as well, so their failing says nothing: {show(failing_anyway)}"
    if run.stopped_on(wrong):
        got += f"; these were still running after {TEST_LIMIT:g} s and were stopped, which is no failure: "
        got += show(run.stopped_on(wrong))
    if not run.tests:
        got = "my_tests.py has no test"
    assert caught, (
        f"A wrong version of the shop passed all your tests: {wrong.unnoticed}. {wrong.question.capitalize()}"
        + lesson(
            expected="at least one test that passes on the given shop and fails on this wrong version",
            got=got,
            revisit=revisit,
        )
    )


def _by_task(task: int) -> list[Wrong]:
    return [wrong for wrong in WRONG_VERSIONS if wrong.task == task]


def _ids(wrongs: list[Wrong]) -> list[str]:
    return [wrong.name for wrong in wrongs]


# ---------------------------------------------------------------- task 1: the answer and the email

RUN_THE_SHOP = (
    "task 1: your tests get the shop from the fixture, build it with fakes of their own, "
    "and pass on it as it is given (README: Where your tests get the app)"
)
NO_REAL_WAITS = (
    "task 1: the test client returns once the background tasks have run, so a test never "
    "needs to wait for time to pass (README: The test client waits for the tasks)"
)


@pytest.mark.task(1)
def test_your_tests_run_the_given_shop_and_all_pass_on_it(run: Run) -> None:
    """my_tests.py imports, has tests, each passes on the given shop, and at least one runs the shop."""
    assert not run.problem, "Your test file could not be run." + lesson(
        expected="my_tests.py imports and pytest collects its tests", got=run.problem, revisit=RUN_THE_SHOP
    )
    assert run.tests, "my_tests.py has no test for pytest to run." + lesson(
        expected="test functions whose names start with test", got="none collected", revisit=RUN_THE_SHOP
    )
    failing = given_failures(run)
    assert not failing, "The shop as given is correct: a test that fails on it is a wrong test." + lesson(
        expected="every test passes on the given shop (a skipped or expected-to-fail test proves nothing)",
        got="\n".join(failing),
        revisit=RUN_THE_SHOP,
    )
    using = [test for test in run.tests if set(run.results[test]) != {""}]
    assert using, "None of your tests runs the shop: they can pass, and they can never catch anything." + lesson(
        expected="tests that ask for the create_app fixture and send the app a request",
        got=f"{len(run.tests)} tests, none of them asks for the fixture",
        revisit=RUN_THE_SHOP,
    )


@pytest.mark.task(1)
def test_your_tests_wait_for_the_app_and_never_for_the_clock(run: Run) -> None:
    """No test of yours sleeps for real: a test waits for the app to finish, not for time to pass."""
    running = [test for test in run.passing_on_given() if set(run.results[test]) != {""}]
    assert running, "None of your tests runs the shop and passes on it yet: there is nothing to judge." + lesson(
        expected="tests that run the given shop and pass on it, without waiting for the clock",
        got=f"{len(run.passing_on_given())} of your {len(run.tests)} tests pass on it, none of them runs it",
        revisit=NO_REAL_WAITS,
    )
    waits = [f"{test}: {', '.join(calls)}" for test, calls in run.sleeps.items()]
    assert not waits, "A test that sleeps is slow on a fast machine and wrong on a slow one." + lesson(
        expected="no real sleep in any test",
        got="\n".join(waits),
        revisit=NO_REAL_WAITS,
    )


@pytest.mark.task(1)
@pytest.mark.parametrize("wrong", _by_task(1), ids=_ids(_by_task(1)))
def test_your_tests_catch_a_wrong_answer_or_a_wrong_email(run: Run, wrong: Wrong) -> None:
    """Each wrong answer, missing, misaddressed, doubled or misnumbered email fails one of your tests."""
    check_caught(
        run,
        wrong,
        revisit=(
            "task 1: compare the whole answer and every email sent, exactly, over more than one "
            "order (README: A test must fail on a wrong app)"
        ),
    )


# ---------------------------------------------------------------- task 2: the response first


@pytest.mark.task(2)
@pytest.mark.parametrize("wrong", _by_task(2), ids=_ids(_by_task(2)))
def test_your_tests_catch_an_email_sent_before_the_response(run: Run, wrong: Wrong) -> None:
    """An app that sends the confirmation before it answers fails one of your tests."""
    check_caught(
        run,
        wrong,
        revisit=(
            "task 2: note in one list when the response's last byte leaves and when the email "
            "goes, then compare the order (README: Seeing the order with one raw call)"
        ),
    )


# ---------------------------------------------------------------- task 3: a failing task


@pytest.mark.task(3)
@pytest.mark.parametrize("wrong", _by_task(3), ids=_ids(_by_task(3)))
def test_your_tests_catch_a_failure_handled_badly(run: Run, wrong: Wrong) -> None:
    """A failure that stops the next task, or goes unlogged, or is logged as a warning, fails one of your tests."""
    check_caught(
        run,
        wrong,
        revisit=(
            "task 3: give the app a mail server that fails, then check that the warehouse still "
            "heard and that one error record carries the exception (README: Making a task fail)"
        ),
    )


# ---------------------------------------------------------------- task 4: the warehouse and the clock


@pytest.mark.task(4)
@pytest.mark.parametrize("wrong", _by_task(4), ids=_ids(_by_task(4)))
def test_your_tests_catch_a_wrong_call_to_the_warehouse(run: Run, wrong: Wrong) -> None:
    """A warehouse never told, told the wrong quantity, or given a time without its offset fails one of your tests."""
    check_caught(
        run,
        wrong,
        revisit=(
            "task 4: let a mock router answer the warehouse, freeze the clock, and compare the "
            "whole request it received (README: The outside world: a mock router and a frozen "
            "clock)"
        ),
    )
