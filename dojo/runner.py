"""Run one kata's specs and read the verdict: each spec's outcome, task and message.

The learner's command line (:mod:`dojo.cli`) never shows pytest's own report: it runs
pytest in process with a tiny plugin (:class:`_Collector`) that keeps, for every spec,
its ``@pytest.mark.task(N)`` and the message of its failure (our specs' messages say
"expected / got / revisit"), and renders that itself.

Three ways to get a :class:`Verdict`:

- :func:`run_in_process`: here, now (the bare ``kata`` command: one run, shared by two
  processes when it is long and the machine has two cores, see :class:`_SecondProcess`);
- :class:`ForkServer`: a long-lived process that imported pytest, FastAPI and httpx
  once and forks a fresh child per run, so a run costs the specs and not the imports
  (``kata watch``, and ``python -m dojo.mutation`` with one server per worker; POSIX
  only). The child for the next run is forked ahead of time and has configured pytest
  and collected the specs while the learner edits; the learner's code is imported only
  once it is told to go, so it always runs what was just saved. A :class:`Request`
  may name other code than ``katas/`` (any value of ``--impl``), more pytest options and
  a time limit;
- :class:`Spawner`: a new ``python -m dojo.runner SLUG`` per run, where there is no fork.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, NoReturn

import pytest

from dojo import impl as _impl
from dojo import manifest as _manifest
from dojo.plugin import task_of
from dojo.teach import without_pytest_explanation

#: A run that takes longer than this is stopped: the learner's code is stuck in a loop.
RUN_TIMEOUT = 60.0

PYTEST_ARGS = (
    "-p",
    "no:randomly",  # the first failure must be the same on every run (dev-only plugin anyway)
    "-p",
    "no:cacheprovider",  # nothing written into the learner's tree
    "--tb=no",  # the CLI renders failures itself; pytest's tracebacks cost ~40 ms a run
    # A warm process (the fork server) imported fastapi, hence anyio, before pytest loads
    # anyio's plugin: pytest then warns that it cannot rewrite asserts in anyio itself,
    # which is none of the specs' business. Only this warning, only here.
    "-W",
    "ignore::pytest.PytestAssertRewriteWarning",
)

#: What a warm process imports ahead of any run: the stack every kata's specs stand on.
WARM_IMPORTS = (
    "pytest",
    "fastapi",
    "httpx",
    "pydantic",
    "email_validator",
    "asgi_lifespan",
    "hypothesis",
    "dojo.plugin",
)


@dataclass
class SpecResult:
    """One spec's outcome: ``passed``, ``failed``, ``error`` or ``skipped``."""

    name: str
    task: int | None
    outcome: str
    message: str = ""


@dataclass
class Verdict:
    """The outcome of one run of one kata's specs (``problem``: the run itself broke)."""

    slug: str
    specs: list[SpecResult] = field(default_factory=list)
    problem: str = ""
    seconds: float = 0.0
    timed_out: bool = False  # stopped at the run's time limit (``problem`` says so too)

    @property
    def green(self) -> bool:
        return not self.problem and bool(self.specs) and all(s.outcome == "passed" for s in self.specs)

    @property
    def passed(self) -> int:
        return sum(1 for spec in self.specs if spec.outcome == "passed")

    @property
    def first_failure(self) -> SpecResult | None:
        return next((spec for spec in self.specs if spec.outcome != "passed"), None)

    def by_task(self) -> dict[int | None, tuple[int, int]]:
        """Task number -> (specs passed, specs in all)."""
        counts: dict[int | None, tuple[int, int]] = {}
        for spec in self.specs:
            passed, total = counts.get(spec.task, (0, 0))
            counts[spec.task] = (passed + (spec.outcome == "passed"), total + 1)
        return counts

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Verdict:
        data = json.loads(text)
        specs = [SpecResult(**spec) for spec in data.pop("specs")]
        return cls(specs=specs, **data)


def failure_message(error: BaseException) -> str:
    """What the learner reads: a spec's own message, or the exception and the learner's line."""
    from dojo.timeline import describe_error

    text = str(error)
    if isinstance(error, AssertionError) and text.strip():
        return without_pytest_explanation(text).strip("\n")
    if type(error).__name__ == "Failed":  # pytest.fail(...): CANNOT IMPORT, MISSING NAME
        return text.strip("\n")
    return describe_error(error)


class _Collector:
    """A pytest plugin that keeps each spec's task marker, outcome and failure message."""

    def __init__(
        self,
        slug: str,
        before_run: Callable[[], None] | None = None,
        on_finish: Callable[[Verdict], None] | None = None,
    ) -> None:
        self.slug = slug
        self.tasks: dict[str, int | None] = {}
        self.specs: dict[str, SpecResult] = {}
        self.messages: dict[str, str] = {}
        self.problems: list[str] = []
        self.started = time.perf_counter()
        self._before_run = before_run
        self._on_finish = on_finish

    def verdict(self) -> Verdict:
        verdict = Verdict(slug=self.slug, specs=list(self.specs.values()), problem="\n".join(self.problems))
        verdict.seconds = time.perf_counter() - self.started
        return verdict

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self) -> None:
        """Configured and collected: a prepared child waits here for the go (see :class:`ForkServer`)."""
        if self._before_run is not None:
            self._before_run()
            self.started = time.perf_counter()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, exitstatus: int) -> None:
        """Every outcome is in: hand the verdict over before pytest's own clean-up (~60 ms)."""
        if self._on_finish is not None and exitstatus in {0, 1} and self.specs and not self.problems:
            self._on_finish(self.verdict())

    def pytest_collection_modifyitems(self, items: list[Any]) -> None:
        for item in items:
            self.tasks[item.nodeid] = task_of(item)

    def pytest_collectreport(self, report: Any) -> None:
        if report.failed:
            self.problems.append(f"pytest could not collect {report.nodeid or 'the specs'}:\n{report.longreprtext}")

    def pytest_runtest_makereport(self, item: Any, call: Any) -> None:
        """Keep the failure's message while the exception itself is at hand (``--tb=no``)."""
        excinfo = call.excinfo
        if (
            excinfo is not None
            and call.when in {"setup", "call", "teardown"}
            and item.nodeid not in self.messages
            and type(excinfo.value).__name__ not in {"Skipped", "XFailed"}
        ):
            self.messages[item.nodeid] = failure_message(excinfo.value)

    def pytest_runtest_logreport(self, report: Any) -> None:
        known = self.specs.get(report.nodeid)
        if known is not None:
            if report.when == "teardown" and report.failed and known.outcome == "passed":
                # Its clean-up failed (a fixture found the app in a state it must never be in): not green.
                message = self.messages.get(report.nodeid) or report.longreprtext.strip() or "failed in teardown"
                known.outcome = "error"
                known.message = f"(while cleaning the spec up) {message}"
            return
        if not (report.when == "call" or report.failed or report.skipped):
            return
        outcome = report.outcome if report.when == "call" or report.skipped else "error"
        message = ""
        if report.failed:
            message = self.messages.get(report.nodeid) or report.longreprtext.strip() or f"failed in {report.when}"
            if report.when == "setup" and not message.startswith("CANNOT IMPORT"):
                message = f"(while setting the spec up) {message}"
        name = report.nodeid.split("::", 1)[-1]
        self.specs[report.nodeid] = SpecResult(name, self.tasks.get(report.nodeid), outcome, message)


#: A run of at least this many specs is shared with a second process (see :class:`_SecondProcess`).
SHARE_AT = 40


class _SecondProcess:
    """A pytest plugin that shares a long run with a forked child: it runs every other spec.

    Once pytest has collected, and before any spec runs (nothing of the learner's is
    imported yet), the process forks: the child runs the specs at odd places, this one
    those at even places, each of its own, and the child sends its outcomes back through a
    pipe and leaves with ``os._exit``. :meth:`join` puts them back in the specs' order, so
    the verdict is the one a single process gives, in about half the time on two cores.
    Only where ``os.fork`` is, with two cores or more, and when no other thread runs here.
    """

    def __init__(self, collector: _Collector) -> None:
        self.collector = collector
        self.order: dict[str, int] = {}
        self.theirs: list[str] = []  # the child's specs
        self.child: tuple[int, int] | None = None  # in the parent: the child's pid and the pipe's read end
        self.pipe: int | None = None  # in the child: the pipe's write end

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtestloop(self, session: pytest.Session) -> None:
        items = session.items
        if len(items) < SHARE_AT or not hasattr(os, "fork") or (os.cpu_count() or 1) < 2:
            return
        if threading.active_count() > 1:  # a fork copies only this thread: whatever the others hold stays held
            return
        self.order = {item.nodeid: index for index, item in enumerate(items)}
        self.theirs = [item.nodeid for item in items[1::2]]
        read, write = os.pipe()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # "use of fork() may lead to deadlocks": no thread
            pid = os.fork()
        if pid == 0:
            os.close(read)
            self.pipe = write
            items[:] = items[1::2]
        else:
            os.close(write)
            self.child = (pid, read)
            items[:] = items[0::2]

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self) -> None:
        if self.pipe is not None:
            self._send()

    def _send(self) -> NoReturn:
        """In the child: its outcomes to the parent, then leave (none of pytest's clean-up is needed)."""
        pipe = self.pipe
        specs = {nodeid: asdict(spec) for nodeid, spec in self.collector.specs.items()}
        data = json.dumps({"specs": specs, "problems": self.collector.problems}).encode()
        try:
            while data and pipe is not None:
                data = data[os.write(pipe, data) :]
        finally:
            os._exit(0)

    def join(self) -> None:
        """In the parent: the child's outcomes (its specs are errors if it died or hung), in the specs' order."""
        if self.pipe is not None:  # the child's pytest stopped before its session finished
            self._send()
        if self.child is None:
            return
        pid, read = self.child
        data = _read_child(read, pid, RUN_TIMEOUT)
        os.close(read)
        os.waitpid(pid, 0)
        why = (
            f"the specs ran for over {RUN_TIMEOUT:.0f} s: is there an endless loop?"
            if data is None
            else "the process that ran it ended first: does your code end the process, for example with os._exit()?"
        )
        collector = self.collector
        try:
            sent = json.loads(data or b"")
        except ValueError:
            sent = {"specs": {}, "problems": []}
        for nodeid, spec in sent["specs"].items():
            collector.specs[nodeid] = SpecResult(**spec)
        collector.problems += [problem for problem in sent["problems"] if problem not in collector.problems]
        for nodeid in self.theirs:
            if nodeid not in collector.specs:
                name = nodeid.split("::", 1)[-1]
                collector.specs[nodeid] = SpecResult(name, collector.tasks.get(nodeid), "error", f"not run: {why}")
        last = len(self.order)
        collector.specs = dict(sorted(collector.specs.items(), key=lambda entry: self.order.get(entry[0], last)))


def _read_child(fd: int, pid: int, seconds: float) -> bytes | None:
    """All a forked child writes to ``fd`` until it closes it; ``None``, and the child killed, after ``seconds``."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + seconds
    while True:
        ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return None
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
        yield buffer


def run_in_process(  # noqa: PLR0913 - the kata and code, then keyword-only options
    slug: str,
    impl: str = "katas",
    *,
    before_run: Callable[[], None] | None = None,
    on_finish: Callable[[Verdict], None] | None = None,
    options: tuple[str, ...] = (),
    share: bool = False,
) -> Verdict:
    """Run kata ``slug``'s specs against ``impl`` here, and return the verdict.

    ``before_run`` is called once pytest has configured itself and collected the specs,
    before the first spec runs (and imports the learner's code); ``on_finish`` gets the
    verdict as soon as the last spec ran, before pytest's clean-up. ``options`` are more
    pytest options (``-x``: stop at the first failing spec). With ``share``, a long run is
    shared with a second process (:class:`_SecondProcess`).
    """
    kata = _manifest.load().get(slug)
    collector = _Collector(kata.slug, before_run, on_finish)
    second = _SecondProcess(collector) if share else None
    args = [
        str(kata.spec_path),
        f"--impl={impl}",
        f"--rootdir={_manifest.REPO_ROOT}",
        "-c",
        str(_manifest.REPO_ROOT / "pyproject.toml"),
        *PYTEST_ARGS,
        *options,
    ]
    with _quiet() as output:
        code = pytest.main(args, plugins=[collector, *([second] if second is not None else [])])
    if second is not None:
        second.join()
    verdict = collector.verdict()
    if not verdict.problem and (not verdict.specs or code not in {pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED}):
        verdict.problem = f"pytest stopped ({code!r}) before any spec ran:\n{output.getvalue().strip()[-2000:]}"
    return verdict


def run_fresh(slug: str) -> Verdict:
    """:func:`run_in_process`, with the stack imported first, a long run shared by two processes.

    No bytecode of the learner's code is ever written (:func:`dojo.impl.import_kata_module`
    sees to it: a ``.pyc`` could shadow a save made in the same second); the stack's and the
    specs' are cached as usual, so a big kata's specs are not rewritten and compiled again
    on every run (~0.2 s for kata 10's).
    """
    from dojo.plugin import uses_hypothesis

    # hypothesis costs ~0.3 s to import: only for a kata with property specs.
    _import_stack(skip=() if uses_hypothesis(_manifest.load().get(slug).spec_path) else ("hypothesis",))
    return run_in_process(slug, share=True)


def _crashed(slug: str, detail: str) -> Verdict:
    return Verdict(
        slug=slug,
        problem=f"the run of {slug}'s specs crashed ({detail}): does your code end the process, "
        "for example with sys.exit() or os._exit()?",
    )


# --------------------------------------------------------------------------- warm runners


class Spawner:
    """A fresh ``python -m dojo.runner SLUG`` per run: slower, but needs no fork."""

    def run(self, slug: str) -> Verdict:
        try:
            result = subprocess.run(  # noqa: S603 - our own module, no shell
                [sys.executable, "-m", "dojo.runner", slug],
                cwd=_manifest.REPO_ROOT,
                capture_output=True,
                text=True,
                timeout=RUN_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return Verdict(slug=slug, problem=f"the specs ran for over {RUN_TIMEOUT:.0f} s: is there an endless loop?")
        lines = result.stdout.strip().splitlines()
        if result.returncode != 0 or not lines:
            return _crashed(slug, f"exit status {result.returncode}")
        return Verdict.from_json(lines[-1])

    def close(self) -> None:
        """Nothing to stop."""


@dataclass(frozen=True)
class Request:
    """One run for the fork server: a kata's specs, against which code, how, for how long.

    On the wire it is one line: a bare slug (the learner's code, the default limit) or
    this dataclass as JSON.
    """

    slug: str
    impl: str = "katas"
    options: tuple[str, ...] = ()
    timeout: float = RUN_TIMEOUT
    again: bool = True  # the next request is likely the same: prepare a child for it ahead of time

    def to_line(self) -> str:
        if self == Request(self.slug):
            return self.slug
        return json.dumps(asdict(self))

    @classmethod
    def from_line(cls, line: str) -> Request:
        line = line.strip()
        if not line.startswith("{"):
            return cls(line)
        data = json.loads(line)
        return cls(
            str(data["slug"]), str(data["impl"]), tuple(data["options"]), float(data["timeout"]), bool(data["again"])
        )


class ForkServer:
    """A long-lived ``python -m dojo.runner --serve``: warm imports, a fresh fork per run.

    It reads one :class:`Request` per line on its stdin (a kata slug, or JSON) and answers
    one JSON verdict per line.
    """

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dojo.runner", "--serve"],
            cwd=_manifest.REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
            start_new_session=True,  # Ctrl-C in the terminal is for `kata watch`, which stops us
        )

    def run(self, request: str | Request) -> Verdict:
        assert self.process.stdin is not None and self.process.stdout is not None
        request = request if isinstance(request, Request) else Request(request)
        slug = request.slug
        try:
            self.process.stdin.write(request.to_line() + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            return _crashed(slug, f"the fork server stopped with status {self.process.poll()}")
        return Verdict.from_json(line)

    def close(self) -> None:
        """Stop the server (closing its stdin ends it; a stuck one is killed)."""
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def warm_runner() -> ForkServer | Spawner:
    """The fastest runner this platform allows."""
    return ForkServer() if hasattr(os, "fork") else Spawner()


def _import_stack(skip: tuple[str, ...] = ()) -> None:
    import importlib

    for name in WARM_IMPORTS:
        if name not in skip:
            importlib.import_module(name)


def _exercise_stack() -> None:
    """Serve one request through an app like a kata's: FastAPI and pydantic import more on first use.

    Building a route with a model body imports ``pydantic.v1`` (FastAPI checks each model
    against it, ~0.25 s), the lifespan manager its asyncio backend: once here, not in
    every forked run.
    """
    import asyncio

    import fastapi
    import httpx
    import pydantic
    from asgi_lifespan import LifespanManager

    class Body(pydantic.BaseModel):
        name: str = ""

    app = fastapi.FastAPI()

    @app.post("/warm-up", status_code=202)
    async def warm_up(body: Body, background_tasks: fastapi.BackgroundTasks) -> dict[str, str]:
        background_tasks.add_task(lambda: None)
        return {"name": body.name}

    async def request() -> None:
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://warm-up") as client:
                await client.post("/warm-up", json={"name": "x"})

    asyncio.run(request())


def _freeze() -> None:
    """Keep what is imported so far out of the garbage collector's sight in every forked child.

    A child's collections then scan only what its run made, not the whole warm stack (and
    leave the parent's pages shared instead of copying them on write).
    """
    import gc

    gc.collect()
    gc.freeze()


def _warm_up() -> None:
    """Import the stack and let pytest load its plugins once, so each fork starts warm."""
    _import_stack()
    with contextlib.suppress(Exception):  # only a head start: a run that needs what failed here fails on its own
        _exercise_stack()
    _freeze()
    with _quiet():
        pytest.main(
            [
                "--collect-only",
                f"--rootdir={_manifest.REPO_ROOT}",
                "-c",
                str(_manifest.REPO_ROOT / "pyproject.toml"),
                *PYTEST_ARGS,
                str(_manifest.MANIFEST_PATH.parent / "__init__.py"),  # collects nothing: loading plugins is the point
            ],
        )


@dataclass
class _Prepared:
    """A forked child that has configured pytest and collected one kata's specs, waiting for go."""

    request: Request
    pid: int
    go: int  # write end: one byte starts the run; closing it makes the child leave
    result: int  # read end: the verdict as JSON, then end of file


def _child(request: Request, go: int, result: int) -> None:
    """In the forked child: wait for go after collection, run, answer, and always leave.

    Nothing may return from here: the child would carry on in the server's own loop.
    """
    level = _impl.depth()  # what the run pushes above it is this child's to remove

    def answer(verdict: Verdict) -> None:
        with contextlib.suppress(OSError):  # the server is gone: nobody to tell
            os.write(result, verdict.to_json().encode())
        leave(0)

    def leave(code: int) -> NoReturn:
        _impl.close_above(level)  # a mutant's or the stubs' folder: pytest_unconfigure will not run
        os._exit(code)  # the parent has its answer; pytest's clean-up would only cost time

    def wait_for_go() -> None:
        if not os.read(go, 1):
            leave(0)  # not needed after all: the learner moved to another kata, or quit

    try:
        try:
            verdict = run_in_process(
                request.slug, request.impl, before_run=wait_for_go, on_finish=answer, options=request.options
            )
        except BaseException as error:  # noqa: BLE001 - whatever happens, the parent gets an answer
            verdict = Verdict(slug=request.slug, problem=f"the run failed: {type(error).__name__}: {error}")
        answer(verdict)
    finally:
        leave(1)


def _prepare(request: Request) -> _Prepared:
    go_read, go_write = os.pipe()
    result_read, result_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(go_write)
        os.close(result_read)
        _child(request, go_read, result_write)
    os.close(go_read)
    os.close(result_write)
    return _Prepared(request, pid, go_write, result_read)


def _discard(prepared: _Prepared) -> None:
    os.close(prepared.go)  # the child reads end of file and leaves
    os.close(prepared.result)
    os.waitpid(prepared.pid, 0)


def _collect(prepared: _Prepared) -> Verdict:
    with contextlib.suppress(BrokenPipeError):  # a child that stopped early has already answered
        os.write(prepared.go, b"g")
    limit = prepared.request.timeout
    data = _read_child(prepared.result, prepared.pid, limit)
    if data is None:
        _discard(prepared)
        return Verdict(
            slug=prepared.request.slug,
            problem=f"the specs ran for over {limit:g} s: is there an endless loop?",
            timed_out=True,
        )
    _, status = os.waitpid(prepared.pid, 0)
    os.close(prepared.go)
    os.close(prepared.result)
    if not data:
        return _crashed(prepared.request.slug, f"wait status {status}")
    return Verdict.from_json(data.decode())


def kata_imports(slug: str) -> list[str]:
    """The libraries a kata's spec, conftest and stubs import (top-level names, theirs excluded).

    A kata may stand on more than the common stack (a task queue, an ORM): the fork
    server imports these too, once, so that no run pays for them.
    """
    kata = _manifest.load().get(slug)
    return kata.libraries(code=kata.folder)


def _warm_for(slug: str) -> None:
    import importlib

    for name in kata_imports(slug):
        with contextlib.suppress(Exception):  # whatever fails here fails again, and is reported, in the run
            importlib.import_module(name)


def _serve() -> int:
    """Answer one verdict per request read; keep a child prepared for the next run of the same request."""
    _warm_up()
    prepared: _Prepared | None = None
    warmed: set[str] = set()
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            request = Request.from_line(line)
            if prepared is not None and prepared.request != request:
                _discard(prepared)
                prepared = None
            if request.slug not in warmed:
                _warm_for(request.slug)
                warmed.add(request.slug)
                _freeze()
            child, prepared = prepared or _prepare(request), None
            verdict = _collect(child)
            try:
                sys.stdout.write(verdict.to_json() + "\n")
                sys.stdout.flush()
            except BrokenPipeError:  # `kata watch` has quit: leave quietly, even at exit
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                break
            if request.again:
                prepared = _prepare(request)  # configured and collected while the learner reads and edits
    finally:
        if prepared is not None:
            _discard(prepared)
    return 0


def main(argv: list[str]) -> int:
    """``python -m dojo.runner SLUG`` prints one JSON verdict; ``--serve`` is the fork server."""
    os.chdir(_manifest.REPO_ROOT)
    if argv == ["--serve"]:
        return _serve()
    if len(argv) != 1:
        sys.stderr.write("usage: python -m dojo.runner SLUG | --serve\n")
        return 2
    sys.stdout.write(run_fresh(argv[0]).to_json() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
