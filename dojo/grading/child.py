"""The grading process and its limits: one child per kata (or per relaunch), watched by the parent.

Each child gets, in a folder of its own: a fresh copy of our side written from the plan's
snapshot and verified, a fresh copy of the submission's modules, and an empty scratch
folder. It starts from :mod:`dojo.grading.bootstrap` in that copy, inside the sandbox when
there is one, in a process group of its own with a minimal environment (no classmate's or
output path on its command line or in its environment). It reports through a pipe, every
line carrying a token the parent gave it on standard input. The parent follows the stream,
kills the child's whole process group when it ends, for whatever reason, and checks the
stream: a start only for an expected spec, a verdict only for the spec that started, once,
and pytest's exit status consistent with the verdicts.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dojo.grading import sandbox as _sandbox
from dojo.grading.plan import (
    CRASHED,
    ERROR,
    FAILED,
    NOT_RUN,
    PASSED,
    SKIPPED,
    TIMED_OUT,
    GradeError,
    Interrupted,
    Limits,
    Plan,
    Spec,
    digest,
)
from dojo.manifest import Kata

POLL = 0.05  # how often the parent looks at a running child, in seconds
EXIT_GRACE = 0.5  # a child that finished its specs but does not exit (a stray thread) is killed after this
STREAM_CAP = 64 * 1024 * 1024  # a child that reports more than this is flooding its pipe: killed
PROBLEM_CAP = 20


class PlanMismatch(Exception):  # noqa: N818 - it is what was found
    """A grading process collected other specs than the plan holds (a stale or forged spec cache)."""


# --------------------------------------------------------------------------- the child's folder


def write_copy(files: dict[str, bytes], target: Path) -> None:
    """Write our side from the plan's snapshot, then read it back: a copy that differs is never used."""
    for name, content in files.items():
        path = target / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    written = {name: (target / name).read_bytes() for name in files}
    if digest(written) != digest(files):
        raise GradeError(f"the grader's copy in {target} does not match what was written (disk full?)")
    for path in sorted(target.rglob("*"), reverse=True):
        path.chmod(0o555 if path.is_dir() else 0o444)
    target.chmod(0o555)


def write_modules(modules: dict[str, dict[str, bytes]], target: Path) -> None:
    """The submission's kata modules, as read (once) when grading began."""
    for slug, files in modules.items():
        (target / slug).mkdir(parents=True, exist_ok=True)
        for name, content in files.items():
            (target / slug / name).write_bytes(content)


@dataclass
class ChildFolder:
    """One child's folder: ``grader/`` (our side, read-only), ``code/`` and ``tmp/`` (its to write), its log."""

    root: Path

    @property
    def grader(self) -> Path:
        return self.root / "grader"

    @property
    def code(self) -> Path:
        return self.root / "code"

    @property
    def scratch(self) -> Path:
        return self.root / "tmp"

    @property
    def log(self) -> Path:
        return self.root / "log"

    def remove(self) -> None:
        for path in self.root.rglob("*"):
            with contextlib.suppress(OSError):
                path.chmod(0o700 if path.is_dir() and not path.is_symlink() else 0o600)
        shutil.rmtree(self.root, ignore_errors=True)


def make_folder(work: Path, files: dict[str, bytes], modules: dict[str, dict[str, bytes]]) -> ChildFolder:
    """A new folder for one grading process, with fresh copies of our side and of the submission's modules."""
    folder = ChildFolder(Path(tempfile.mkdtemp(prefix="run-", dir=work)).resolve())
    write_copy(files, folder.grader)
    folder.code.mkdir()
    write_modules(modules, folder.code)
    folder.scratch.mkdir()
    return folder


# --------------------------------------------------------------------------- the command and its environment


def pytest_args(targets: list[str], *, folder: ChildFolder, limits: Limits) -> list[str]:
    """Our specs under our settings (from the copy), the submission's copy as the --impl."""
    return [
        *targets,
        f"--impl={folder.code}",
        f"--rootdir={folder.grader}",
        "-c",
        str(folder.grader / "pyproject.toml"),
        "-p",
        "no:randomly",  # the same order for every student
        "-p",
        "no:cacheprovider",  # nothing written beside our specs
        f"--timeout={limits.spec_timeout:g}",
        "--timeout-method=signal",
        f"--basetemp={folder.scratch / 'pytest'}",
        "-q",
        "--tb=short",
        "--show-capture=no",
        "--color=no",
    ]


def child_command(fd: int, args: list[str], *, folder: ChildFolder, limits: Limits, warm: tuple[str, ...]) -> list[str]:
    """Our interpreter running the bootstrap of the child's own copy; it reports on ``fd``."""
    return [
        sys.executable,
        str(folder.grader / "dojo" / "grading" / "bootstrap.py"),
        "--fd",
        str(fd),
        "--code",
        str(folder.code),
        "--scratch",
        str(folder.scratch),
        "--memory",
        str(limits.memory_mb),
        "--warm",
        ",".join(warm),
        "--",
        *args,
    ]


def child_env(folder: ChildFolder) -> dict[str, str]:
    """A minimal environment: none of the caller's Python or pytest settings, no path but the child's own."""
    env = {key: os.environ[key] for key in ("PATH", "LANG", "LC_ALL", "TZ") if key in os.environ}
    env.update(
        HOME=str(folder.scratch),
        TMPDIR=str(folder.scratch),
        TMP=str(folder.scratch),
        TEMP=str(folder.scratch),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONHASHSEED="0",
        PYTHONIOENCODING="utf-8",
        PYTHONNOUSERSITE="1",
        PYTHONSAFEPATH="1",
        NO_COLOR="1",
        COLUMNS="120",
        MALLOC_ARENA_MAX="2",  # fewer malloc arenas: the address-space limit measures real use
    )
    return env


# --------------------------------------------------------------------------- following a child


_LIVE: set[subprocess.Popen[bytes]] = set()
_LIVE_LOCK = threading.Lock()
STOP = threading.Event()


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the child's process group (it leads its own), then reap the child."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # what it started and left behind, now that it is gone


def kill_all() -> None:
    """Stop every grading process (Ctrl-C, SIGTERM, tampering seen)."""
    STOP.set()
    with _LIVE_LOCK:
        live = list(_LIVE)
    for process in live:
        _kill_group(process)


@dataclass
class ChildRun:
    """What one grading process reported and did, and what did not add up."""

    token: str
    expected: list[str]
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    running: str | None = None  # the spec that had started and not finished when it ended
    started: set[str] = field(default_factory=set)
    collected: list[dict[str, Any]] | None = None
    refusals: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    exitstatus: int | None = None  # pytest's, as reported at the end of the session
    returncode: int | None = None
    killed: str | None = None  # "spec" (watchdog), "submission" (time limit), "lingered", "flood", "stopped"
    log: str = ""
    started_at: float = 0.0
    finished_at: float | None = None
    notes: list[str] = field(default_factory=list)
    _pending: bytes = b""
    _size: int = 0

    def problem(self, text: str) -> None:
        if len(self.problems) < PROBLEM_CAP and text not in self.problems:
            self.problems.append(text)

    def feed(self, data: bytes, now: float) -> None:
        self._size += len(data)
        *lines, self._pending = (self._pending + data).split(b"\n")
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                self.problem("a line in its report pipe that is not JSON")
                continue
            if not isinstance(record, dict) or not secrets.compare_digest(str(record.get("token")), self.token):
                self.problem("a line in its report pipe without the grading process's token (forged)")
                continue
            self.take(record, now)

    def take(self, record: dict[str, Any], now: float) -> None:  # noqa: C901, PLR0912 - one branch per event
        event = record.get("event")
        nodeid = str(record.get("nodeid"))
        if event == "collected":
            if self.collected is not None:
                self.problem("it reported its collection twice")
            self.collected = [item for item in record.get("items", []) if isinstance(item, dict)]
        elif event == "start":
            if nodeid not in self.expected or nodeid in self.started:
                self.problem(f"a start for {nodeid}, which was not to run or had run")
                return
            if self.running is not None:
                self.problem(f"{nodeid} started while {self.running} had no verdict")
            self.running, self.started_at = nodeid, now
            self.started.add(nodeid)
        elif event == "result":
            if nodeid != self.running:
                self.problem(f"a verdict for {nodeid}, which was not the spec running")
                return
            self.results[nodeid] = record
            self.running = None
        elif event == "refused":
            self.refusals.append(
                {"what": str(record.get("what")), "where": str(record.get("where")), "spec": self.running}
            )
        elif event == "finish":
            if self.exitstatus is not None:
                self.problem("it reported the end of its session twice")
            self.exitstatus = record.get("exitstatus") if isinstance(record.get("exitstatus"), int) else -1
            self.finished_at = now
        elif event == "tampered":
            changed = record.get("changed") if isinstance(record.get("changed"), list) else []
            self.problem("it changed the grader's machinery: " + ", ".join(map(str, changed[:8])))
        elif event == "note":
            self.notes.append(str(record.get("note")))
        elif event != "exit":
            self.problem(f"an unknown event {event!r}")

    def check_exit(self) -> None:
        """Pytest's exit status, the process's and the verdicts must tell one story."""
        if self.killed is not None or self.exitstatus is None:
            return
        if self.returncode != self.exitstatus:
            self.problem(f"pytest reported exit status {self.exitstatus} but the process ended with {self.returncode}")
        verdicts = [record.get("outcome") for record in self.results.values()]
        all_passed = all(outcome in {PASSED, SKIPPED} for outcome in verdicts)
        if self.exitstatus == 0 and not all_passed:
            self.problem("pytest's exit status 0 (all passed) disagrees with the verdicts reported")
        if self.exitstatus != 0 and verdicts and all_passed and len(self.results) == len(self.expected):
            self.problem(f"pytest's exit status {self.exitstatus} disagrees with every spec reported as passed")
        if len(self.results) != len(self.expected) and self.exitstatus in {0, 1}:
            self.problem("the session ended without a verdict for every spec it was to run")

    def reason_to_kill(self, now: float, limits: Limits, deadline: float) -> str | None:
        if STOP.is_set():
            return "stopped"
        if self._size > STREAM_CAP:
            return "flood"
        if self.running is not None and now - self.started_at > limits.watchdog:
            return "spec"
        if now > deadline:
            return "submission"
        if self.finished_at is not None and now - self.finished_at > EXIT_GRACE:
            return "lingered"
        return None


def run_child(  # noqa: PLR0913 - keyword-only, one per part of the run
    make_command: Callable[[int], list[str]],
    *,
    folder: ChildFolder,
    expected: list[str],
    limits: Limits,
    deadline: float,
    sandbox: str | None,
) -> ChildRun:
    """Run one grading process, following its pipe; kill its group when it ends, or when a limit runs out."""
    run = ChildRun(token=secrets.token_hex(16), expected=expected)
    read_fd, write_fd = os.pipe()
    command = make_command(write_fd)
    if sandbox == "bwrap":
        command = _sandbox.wrap(
            command, readonly=[folder.grader], writable=[folder.code, folder.scratch], chdir=folder.scratch
        )
    try:
        with folder.log.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603 - our own interpreter running our bootstrap
                command,
                cwd=folder.scratch,
                env=child_env(folder),
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group, so a kill takes its children too
                pass_fds=(write_fd,),
            )
    finally:
        os.close(write_fd)
    with _LIVE_LOCK:
        _LIVE.add(process)
    try:
        with contextlib.suppress(OSError):
            assert process.stdin is not None
            process.stdin.write(run.token.encode() + b"\n")
            process.stdin.flush()  # kept open: the child exits when it closes (the parent is gone)
        _follow(process, run, read_fd, limits, deadline)
    finally:
        _kill_group(process)
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        with _LIVE_LOCK:
            _LIVE.discard(process)
        os.close(read_fd)
    run.returncode = process.returncode
    run.check_exit()
    with folder.log.open("rb") as log:
        log.seek(max(0, folder.log.stat().st_size - 4096))
        run.log = tail(log.read().decode("utf-8", errors="replace"), 1500)
    return run


def _follow(process: subprocess.Popen[bytes], run: ChildRun, read_fd: int, limits: Limits, deadline: float) -> None:
    eof = False
    while True:
        if not eof:
            ready, _, _ = select.select([read_fd], [], [], POLL)
            if ready:
                data = os.read(read_fd, 1 << 16)
                eof = not data
                run.feed(data, time.monotonic())
        else:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=POLL)
        if process.poll() is not None:
            os.set_blocking(
                read_fd, False
            )  # what it wrote before it ended; a grandchild holding the pipe does not hold us
            with contextlib.suppress(BlockingIOError):
                while data := os.read(read_fd, 1 << 16):
                    run.feed(data, time.monotonic())
            return
        run.killed = run.reason_to_kill(time.monotonic(), limits, deadline)
        if run.killed is not None:
            _kill_group(process)
            os.set_blocking(read_fd, False)
            with contextlib.suppress(BlockingIOError):
                while data := os.read(read_fd, 1 << 16):
                    run.feed(data, time.monotonic())
            return


def tail(text: str, size: int) -> str:
    """The last ``size`` characters of a log."""
    text = text.strip()
    return text if len(text) <= size else "[…]" + text[-size:]


# --------------------------------------------------------------------------- collecting our specs


def collect(katas: tuple[Kata, ...], limits: Limits, files: dict[str, bytes]) -> tuple[Spec, ...]:
    """Our specs, collected by a grading process on an empty copy (no kata code is imported)."""
    with tempfile.TemporaryDirectory(prefix="kata-grade-collect-") as tmp:
        folder = make_folder(Path(tmp).resolve(), files, {})
        targets = [str(folder.grader / "katas" / kata.slug / kata.spec) for kata in katas]
        try:
            run = run_child(
                lambda fd: child_command(
                    fd,
                    [*pytest_args(targets, folder=folder, limits=limits), "--collect-only"],
                    folder=folder,
                    limits=limits,
                    warm=(),
                ),
                folder=folder,
                expected=[],
                limits=Limits(limits.spec_timeout, 300.0, limits.memory_mb),
                deadline=time.monotonic() + 300,
                sandbox=None,
            )
        finally:
            folder.remove()
    if run.exitstatus != 0 or not run.collected:  # killed for lingering after it finished is no failure
        raise GradeError(f"our specs did not collect (exit {run.returncode}):\n{run.log}")
    return tuple(Spec(str(i["nodeid"]), str(i["kata"]), int(i["task"]), str(i["name"])) for i in run.collected)


# --------------------------------------------------------------------------- one submission's specs


@dataclass
class Outcome:
    """Every spec's verdict for one submission, and what was seen on the way."""

    verdicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def verdict(outcome: str, message: str | None = None, output: str | None = None) -> dict[str, Any]:
    """A verdict the parent gives (the child never ran the spec to one)."""
    return {"outcome": outcome, "message": message, "output": output, "duration": 0.0}


def _refused_failures_are_errors(verdicts: dict[str, dict[str, Any]]) -> None:
    """A spec that failed on the audit hook's own refusal is an error, like one whose refusal was reported.

    A refusal raised where no event named the spec (in a thread the spec started, say) still
    ends as the hook's PermissionError. Forging that text gains nothing: an error earns what a
    failure earns.
    """
    for nodeid, record in list(verdicts.items()):
        message = str(record.get("message") or "")
        if record.get("outcome") == FAILED and message.startswith("refused by the grader:"):
            verdicts[nodeid] = {**record, "outcome": ERROR}


def how_it_ended(returncode: int | None, killed: str | None = None) -> str:
    """How a grading process ended, in words; a process the grader killed is never "maybe out of memory"."""
    if killed is not None:
        return {
            "spec": "stopped by the grader: a spec ran past its time limit",
            "submission": "stopped by the grader: the submission's time limit ran out",
            "lingered": "stopped by the grader: it did not exit after its specs finished",
            "flood": "stopped by the grader: it flooded its report pipe",
            "stopped": "stopped by the grader: grading was interrupted",
        }.get(killed, f"stopped by the grader ({killed})")
    if returncode is None:
        return "no exit status"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        hint = ", maybe out of memory" if name == "SIGKILL" else ""
        return f"killed by {name}{hint}"
    return f"exit code {returncode}"


def unrooted(text: str, work: Path) -> str:
    """``text`` without the grading process's folders (``WORK/run-*/code/`` …): paths as the student knows them."""
    return re.sub(re.escape(str(work)) + r"/run-[^/]+/(code|grader|tmp)/", "", text)


class AsShipped:
    """Katas left exactly as shipped: each runs once in a grading run, for every submission that left it so.

    A stub is our code, not the student's: its specs give the same verdicts whoever
    submitted it (every one fails; the repository's checks see to it), so a class graded
    half-way through the course does not run each untouched kata once per student. The
    run is made like any other, in its own process and sandbox, for the first submission
    that needs it; its verdicts are kept only if it ended as a stub's run must (every spec
    failed; nothing refused, noted, killed or doubted), else the next submission runs it
    again. A pass is never kept: were a run ever forged into passing, the forgery would
    stay in that one submission's results, never reach a classmate's.
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._kept: dict[str, dict[str, dict[str, Any]]] = {}

    def run(
        self, slug: str, work: Path, outcome: Outcome, run_kata: Callable[[Outcome], None], *, wait: bool = True
    ) -> bool:
        """Put the kata's verdicts into ``outcome``: kept ones, or those of a run made now.

        Another submission may be running the stubs of this kata right now: with ``wait``,
        this one waits for that run instead of making its own; without, it returns False at
        once (and can grade its other katas meanwhile).
        """
        with self._guard:
            lock = self._locks.setdefault(slug, threading.Lock())
        if not lock.acquire(blocking=wait):
            return False
        try:
            kept = self._kept.get(slug)
            if kept is None:
                self._first_run(slug, work, outcome, run_kata)
                return True
        finally:
            lock.release()
        outcome.verdicts.update({nodeid: dict(record) for nodeid, record in kept.items()})
        return True

    def _first_run(self, slug: str, work: Path, outcome: Outcome, run_kata: Callable[[Outcome], None]) -> None:
        """Run the stubs for this submission; keep the verdicts (without its folders) if the run was clean."""
        fresh = Outcome()
        run_kata(fresh)
        outcome.verdicts.update(fresh.verdicts)
        outcome.notes.extend(note for note in fresh.notes if note not in outcome.notes)
        outcome.refusals.extend(fresh.refusals)
        outcome.problems.extend(fresh.problems)
        clean = not (fresh.notes or fresh.refusals or fresh.problems) and all(
            record.get("outcome") == FAILED for record in fresh.verdicts.values()
        )
        if clean:
            self._kept[slug] = {
                nodeid: {
                    key: unrooted(value, work) if isinstance(value, str) and key != "outcome" else value
                    for key, value in record.items()
                }
                for nodeid, record in fresh.verdicts.items()
            }


def run_specs(  # noqa: PLR0913 - the submission, where, until when, how, and what is shared
    plan: Plan,
    modules: dict[str, dict[str, bytes]],
    work: Path,
    deadline: float,
    sandbox: str | None,
    *,
    as_shipped: AsShipped | None = None,
) -> Outcome:
    """Every spec's verdict for one submission: each kata in processes of its own.

    One kata's code never shares a process with another kata's specs: what a hang or a
    crash leaves behind (a thread still spinning, a task still pending, a patched module)
    cannot cost the student points in the next kata. With ``as_shipped``, a kata the
    submission left as shipped gets the verdicts its stubs got once for the class.
    """
    outcome = Outcome()
    later = []  # katas left as shipped whose stubs another submission is running right now
    for kata in plan.katas:
        run = functools.partial(_run_kata, plan, kata, modules, work, deadline, sandbox)
        if as_shipped is None or not plan.left_as_shipped(kata.slug, modules.get(kata.slug)):
            run(outcome)
        elif not as_shipped.run(kata.slug, work, outcome, run, wait=False):
            later.append((kata.slug, run))
    for slug, run in later:  # its other katas graded meanwhile, it waits for those runs: no core idles for them
        assert as_shipped is not None  # only a shared run can be busy
        as_shipped.run(slug, work, outcome, run)
    return outcome


def _run_kata(  # noqa: C901, PLR0912, PLR0913, PLR0915, PLR0917 - run_specs's arguments, the kata, what it gathers
    plan: Plan,
    kata: Kata,
    modules: dict[str, dict[str, bytes]],
    work: Path,
    deadline: float,
    sandbox: str | None,
    outcome: Outcome,
) -> None:
    """One kata's verdicts, relaunching past a process that died, each time on fresh copies.

    A spec that kills its process (os._exit, a crash) or must be killed (it ignored the
    time limit) gets that verdict; the specs after it run in a new process. If the process
    died before any spec finished, the kata's remaining specs are "not run".
    """
    limits = plan.limits
    specs = plan.specs_of(kata.slug)
    by_id = {spec.nodeid: spec for spec in specs}
    verdicts = outcome.verdicts
    remaining = [spec.nodeid for spec in specs]
    attempt = 0
    mine = {kata.slug: modules.get(kata.slug, {})}
    while remaining:  # each pass either gets verdicts or gives some: it ends
        if STOP.is_set():
            raise Interrupted
        if time.monotonic() >= deadline:
            message = f"not run: the submission's time limit ({limits.submission_timeout:g} s) ran out first"
            verdicts.update(dict.fromkeys(remaining, verdict(NOT_RUN, message)))
            break
        attempt += 1
        folder = make_folder(work, plan.files, mine)
        root = folder.grader
        if attempt == 1:
            targets = [str(root / "katas" / kata.slug / kata.spec)]
        else:
            targets = [f"{root.as_posix()}/{nodeid}" for nodeid in remaining]
        try:
            run = run_child(
                lambda fd, targets=targets, folder=folder: child_command(
                    fd, pytest_args(targets, folder=folder, limits=limits), folder=folder, limits=limits, warm=plan.warm
                ),
                folder=folder,
                expected=list(remaining),
                limits=limits,
                deadline=deadline,
                sandbox=sandbox,
            )
        finally:
            folder.remove()
        if run.killed == "stopped" or STOP.is_set():  # a process killed by the stop did not crash
            raise Interrupted
        _check_collection(run, remaining, by_id, attempt)
        outcome.notes.extend(note for note in run.notes if note not in outcome.notes)
        outcome.problems.extend(f"{kata.slug}: {problem}" for problem in run.problems)
        before = len(verdicts)
        for nodeid, record in run.results.items():
            verdicts[nodeid] = record
            if run.problems and record.get("outcome") == PASSED:
                verdicts[nodeid] = verdict(
                    ERROR, "not trusted: the report of its grading process did not add up: " + "; ".join(run.problems)
                )
        judged: set[str] = set()  # a spec's first refusal is its verdict
        for refusal in run.refusals:
            text = f"{refusal['what']} ({refusal['where']})"
            outcome.refusals.append(f"{kata.slug}: {text}")
            spec = refusal["spec"]
            if spec in by_id and spec not in judged:
                judged.add(spec)
                output = (run.results.get(spec) or {}).get("output")
                verdicts[spec] = verdict(ERROR, f"refused by the grader: {text}", output)
        _refused_failures_are_errors(verdicts)
        if run.running in by_id and run.running not in verdicts:
            verdicts.update(_after_a_death(run, by_id, [n for n in remaining if n not in verdicts], limits))
        elif len(verdicts) == before and run.killed != "submission":  # no progress: do not try again
            message = (
                f"not run: the test process ended before running them ({how_it_ended(run.returncode, run.killed)}):"
                f"\n{run.log}"
            )
            verdicts.update({nodeid: verdict(NOT_RUN, message) for nodeid in remaining if nodeid not in verdicts})
        remaining = [nodeid for nodeid in remaining if nodeid not in verdicts]


def _check_collection(run: ChildRun, remaining: list[str], by_id: dict[str, Spec], attempt: int) -> None:
    """What the process collected is what the plan says (the spec cache is never trusted blindly)."""
    if run.collected is None:
        return
    collected = [str(item.get("nodeid")) for item in run.collected]
    wanted = remaining if attempt > 1 else list(by_id)
    same = sorted(collected) == sorted(wanted) if attempt > 1 else collected == wanted
    if not same:
        first = next(
            (f"{got} where the plan has {want}" for got, want in zip(collected, wanted, strict=False) if got != want),
            "",
        )
        raise PlanMismatch(
            f"a grading process collected {len(collected)} specs where the plan has {len(wanted)}"
            f"{': first ' + first if first else ''}: the spec cache is stale or was changed"
        )
    for item in run.collected:
        spec = by_id[str(item.get("nodeid"))]
        if (str(item.get("kata")), item.get("task"), str(item.get("name"))) != (spec.kata, spec.task, spec.name):
            raise PlanMismatch(f"{spec.nodeid}: the plan's kata, task or name differs from our spec's")


def _after_a_death(
    run: ChildRun, by_id: dict[str, Spec], remaining: list[str], limits: Limits
) -> dict[str, dict[str, Any]]:
    """The verdict of the spec a process died (or was killed) in, and of its kata's rest if not retried."""
    crashed = by_id[str(run.running)]
    if run.killed == "spec":
        return {
            crashed.nodeid: verdict(
                TIMED_OUT,
                f"timed out: still running after {limits.watchdog:g} s; the {limits.spec_timeout:g} s limit "
                "could not interrupt it, so its process was stopped",
            )
        }
    if run.killed == "submission":
        message = f"timed out: the submission's time limit ({limits.submission_timeout:g} s) ran out"
        return {crashed.nodeid: verdict(TIMED_OUT, message)}
    verdicts = {
        crashed.nodeid: verdict(
            CRASHED,
            f"crashed: the test process ended during this spec ({how_it_ended(run.returncode, run.killed)}); "
            f"os._exit or a crash in the submission's code?\n{run.log}".strip(),
        )
    }
    if not any(by_id[nodeid].kata == crashed.kata for nodeid in run.results if nodeid in by_id):
        message = (
            f"not run: the test process died during {crashed.name} before any spec of {crashed.kata} "
            "finished, so the rest of that kata was not retried"
        )
        rest = [nodeid for nodeid in remaining if nodeid != crashed.nodeid and by_id[nodeid].kata == crashed.kata]
        verdicts.update(dict.fromkeys(rest, verdict(NOT_RUN, message)))
    return verdicts
