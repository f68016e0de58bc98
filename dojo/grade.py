"""Grade a class: our specs, untouched, against each student's kata modules.

    uv run kata grade SUBMISSION... --out DIR [--kata SLUG ...]
    uv run python -m dojo.grade SUBMISSION... --out DIR [--kata SLUG ...]
    uv run python -m dojo.grade classroom [--output PATH]

A submission is a folder: a clone of this repository, or just its ``katas/``. Each one is
graded in its own process, on a temporary copy that holds only the manifest's module
files of each kata. The process runs OUR spec files under OUR settings (``pytest <our
spec> --impl=<the copy>``, rootdir = this repository), so the submission's spec files,
``conftest.py``, pytest settings and plugins never load. A submission's spec file that
differs from ours is reported as modified, and ignored.

Limits, stated in every results.json: a time per spec (pytest-timeout's signal method,
backed by a watchdog that kills the process when the signal cannot stop the spec), a
time per submission, an address-space limit (RLIMIT_AS) and a cap on each spec's
captured output (500 characters, as in Exercism's test-runner interface).

Written to ``--out``: ``<student>/results.json`` (Exercism's test-runner interface,
version 3, plus points), ``gradebook.csv`` and ``junit.xml``. Results are written
atomically; a rerun keeps each submission whose results are there and whose content is
unchanged, and grades the rest.

This module is also the small pytest plugin (``-p dojo.grade``) that the grading process
loads: it sets the limits and streams each spec's verdict to a file the moment the spec
finishes, so a process killed halfway loses nothing that already ran.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import csv
import datetime as dt
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from dojo import impl as _impl
from dojo import manifest as _manifest
from dojo.manifest import MANIFEST_PATH, REPO_ROOT, Kata

#: Exercism's test-runner interface caps a test's ``output`` at 500 characters; so do we.
OUTPUT_CAP = 500
OUTPUT_CUT = "\n[output cut at 500 characters]"
#: A failure message is cut to 2000 characters: its first line and its end (where the assertion's lesson is).
MESSAGE_CAP = 2000
#: No file the grading process writes may grow past this (a flood of output fills the disk).
FILE_CAP = 256 * 1024 * 1024

DEFAULT_SPEC_TIMEOUT = 5.0
DEFAULT_SUBMISSION_TIMEOUT = 600.0
DEFAULT_MEMORY_MB = 1024

POLL = 0.05  # how often the parent looks at a running child, in seconds
EXIT_GRACE = 0.5  # a child that finished its specs but does not exit (a stray thread) is killed after this

PASSED, FAILED, ERROR, TIMED_OUT, CRASHED, NOT_RUN, SKIPPED = (
    "passed",
    "failed",
    "error",
    "timed out",
    "crashed",
    "not run",
    "skipped",
)
#: Each outcome as the three statuses of Exercism's interface say it.
STATUS = {PASSED: "pass", FAILED: "fail"} | dict.fromkeys((ERROR, TIMED_OUT, CRASHED, NOT_RUN, SKIPPED), "error")


class GradeError(Exception):
    """Something the person running the grader must fix; the message says what."""


class Interrupted(Exception):  # noqa: N818 - it is what happened, not an error of the grader
    """Grading was stopped (Ctrl-C, SIGTERM); what finished is kept."""


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Limits:
    """What a submission may use."""

    spec_timeout: float = DEFAULT_SPEC_TIMEOUT
    submission_timeout: float = DEFAULT_SUBMISSION_TIMEOUT
    memory_mb: int = DEFAULT_MEMORY_MB

    @property
    def watchdog(self) -> float:
        """A spec still running this long (the signal could not stop it) has its process killed."""
        return self.spec_timeout + max(2.0, self.spec_timeout)

    def describe(self) -> str:
        return (
            f"{self.spec_timeout:g} s per spec (process killed at {self.watchdog:g} s), "
            f"{self.submission_timeout:g} s per submission, {self.memory_mb} MiB of address space (RLIMIT_AS), "
            f"output cut at {OUTPUT_CAP} characters per spec"
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"spec_watchdog": self.watchdog, "output_cap": OUTPUT_CAP, "message_cap": MESSAGE_CAP}


@dataclass(frozen=True)
class Spec:
    """One spec as collected from our spec files (a parametrized case is one spec)."""

    nodeid: str
    kata: str
    task: int
    name: str


@dataclass(frozen=True)
class Plan:
    """What every submission is graded on: the katas, their specs, the limits."""

    katas: tuple[Kata, ...]
    specs: tuple[Spec, ...]
    limits: Limits
    warm: tuple[str, ...]
    grader: str  # a hash of our side: specs, manifest, this file, the limits

    def specs_of(self, slug: str) -> list[Spec]:
        return [spec for spec in self.specs if spec.kata == slug]

    def worth(self, spec: Spec) -> Fraction:
        """A task's points split evenly across its specs."""
        task = next(kata for kata in self.katas if kata.slug == spec.kata).task(spec.task)
        count = sum(1 for other in self.specs if other.kata == spec.kata and other.task == spec.task)
        return Fraction(task.points, count)


@dataclass(frozen=True)
class Submission:
    """One student's folder."""

    path: Path
    student: str

    @property
    def root(self) -> Path:
        """The folder holding one sub-folder per kata (a clone's ``katas/``, or the folder itself)."""
        return self.path / "katas" if (self.path / "katas").is_dir() else self.path


def warm_modules(katas: tuple[Kata, ...]) -> tuple[str, ...]:
    """What the reference solutions import at their top: loaded before the first spec starts.

    The first spec would otherwise pay for importing FastAPI and friends inside its time limit.
    """
    names: set[str] = set()
    for kata in katas:
        for file_name in kata.module_files:
            path = kata.solution_folder / file_name
            if not path.is_file():
                continue
            for node in ast.parse(path.read_text(encoding="utf-8")).body:
                if isinstance(node, ast.Import):
                    names.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names.add(node.module)
    names.discard("__future__")
    return tuple(sorted(names))


def _grader_hash(katas: tuple[Kata, ...], limits: Limits) -> str:
    digest = hashlib.sha256()
    for path in (Path(__file__), MANIFEST_PATH, *(kata.spec_path for kata in katas)):
        digest.update(path.read_bytes())
    digest.update(json.dumps(limits.as_dict(), sort_keys=True).encode())
    return digest.hexdigest()


def make_plan(katas: tuple[Kata, ...], limits: Limits, cache: Path | None = None) -> Plan:
    """Collect our specs once (they import no kata code while collecting) and fix the points.

    With ``cache`` (a file in the output folder), a rerun on the same specs and limits
    reuses the collection instead of starting pytest again.
    """
    warm = warm_modules(katas)
    grader = _grader_hash(katas, limits)
    if cache is not None:
        try:
            saved = json.loads(cache.read_text(encoding="utf-8"))
            if saved["grader"] == grader:
                return Plan(katas, tuple(Spec(**spec) for spec in saved["specs"]), limits, warm, grader)
        except (OSError, ValueError, KeyError, TypeError):
            pass
    with tempfile.TemporaryDirectory(prefix="kata-grade-collect-") as tmp:
        work = Path(tmp)
        stream = work / "collect.jsonl"
        command = child_command(
            [str(kata.spec_path) for kata in katas],
            root=REPO_ROOT,
            code="solutions",
            stream=stream,
            limits=limits,
            warm=(),
        )
        try:
            result = subprocess.run(  # noqa: S603 - our own interpreter running pytest on our specs
                [*command, "--collect-only"],
                cwd=work,
                env=child_env(work, REPO_ROOT),
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
        except subprocess.TimeoutExpired as error:
            raise GradeError("collecting our specs took more than 300 s") from error
        items = [record for record in _Stream(stream).read() if record.get("event") == "item"]
    if result.returncode != 0 or not items:
        raise GradeError(f"our specs did not collect (exit {result.returncode}):\n{_tail(result.stdout, 1500)}")
    specs = tuple(Spec(item["nodeid"], item["kata"], int(item["task"]), item["name"]) for item in items)
    if cache is not None:
        write_atomically(cache, json.dumps({"grader": grader, "specs": [asdict(spec) for spec in specs]}) + "\n")
    return Plan(katas, specs, limits, warm, grader)


# --------------------------------------------------------------------------- the grading process


GRADER_COPY = "grader"  # in a submission's work folder: its own copy of our side


def copy_grader(target: Path, katas: tuple[Kata, ...]) -> None:
    """Our side for one submission's process: settings, conftest.py, dojo/, our kata folders without stubs.

    The process imports all of it from here, so code that rewrites "the grader's" files
    while it runs changes only its own copy, never another submission's grading.
    """
    target.mkdir()
    for name in ("conftest.py", "pyproject.toml"):
        shutil.copy2(REPO_ROOT / name, target / name)
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO_ROOT / "dojo", target / "dojo", ignore=skip)
    for kata in katas:
        stubs = shutil.ignore_patterns("__pycache__", "*.pyc", *kata.module_files)
        shutil.copytree(kata.folder, target / "katas" / kata.slug, ignore=stubs)


def child_command(  # noqa: PLR0913 - keyword-only, one per part of the command
    targets: list[str], *, root: Path, code: str, stream: Path, limits: Limits, warm: tuple[str, ...]
) -> list[str]:
    """The child's command: our specs, our settings (from ``root``), the submission's copy as the --impl."""
    return [
        sys.executable,
        "-m",
        "pytest",
        *targets,
        f"--impl={code}",
        f"--rootdir={root}",
        "-c",
        str(root / "pyproject.toml"),
        "-p",
        "dojo.grade",
        f"--grade-stream={stream}",
        f"--grade-memory={limits.memory_mb}",
        f"--grade-warm={','.join(warm)}",
        "-p",
        "no:randomly",  # the same order for every student
        "-p",
        "no:cacheprovider",  # nothing written beside our specs
        f"--timeout={limits.spec_timeout:g}",
        "--timeout-method=signal",
        "-q",
        "--tb=short",
        "--show-capture=no",
        "--color=no",
    ]


_DROPPED_ENV = (
    "PYTEST_ADDOPTS",
    "PYTEST_PLUGINS",
    "PYTEST_DISABLE_PLUGIN_AUTOLOAD",
    "PYTEST_CURRENT_TEST",
    "PYTEST_TIMEOUT",
    "PYTHONSTARTUP",
    "PYTHONBREAKPOINT",
    "PYTHONWARNINGS",
    _impl.ENV_VAR,
)


def child_env(work: Path, root: Path) -> dict[str, str]:
    """The environment of a grading process: none of the caller's pytest settings."""
    env = {key: value for key, value in os.environ.items() if key not in _DROPPED_ENV}
    env.update(
        PYTHONPATH=str(root),  # our dojo from there, ahead of the installed one
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONHASHSEED="0",
        PYTHONIOENCODING="utf-8",
        NO_COLOR="1",
        COLUMNS="120",
        MALLOC_ARENA_MAX="2",  # fewer malloc arenas: the address-space limit measures real use
        TMPDIR=str(work),
        TMP=str(work),
        TEMP=str(work),
    )
    return env


class _Stream:
    """Reads the child's JSON lines as they arrive; a half-written last line waits."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._pending = b""

    def read(self) -> list[dict[str, Any]]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        *lines, self._pending = (self._pending + data).split(b"\n")
        records = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records


_LIVE: set[subprocess.Popen[bytes]] = set()
_LIVE_LOCK = threading.Lock()
_STOP = threading.Event()


def _kill(process: subprocess.Popen[bytes]) -> None:
    """Kill the child and everything it started (it leads its own process group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def kill_all() -> None:
    """Stop every grading process (on Ctrl-C or SIGTERM)."""
    _STOP.set()
    with _LIVE_LOCK:
        live = list(_LIVE)
    for process in live:
        _kill(process)


@dataclass
class ChildRun:
    """What one grading process did before it ended."""

    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    running: str | None = None  # the spec that had started and not finished when it ended
    returncode: int | None = None
    killed: str | None = None  # "spec" (watchdog), "submission" (time limit), "lingered", "stopped"
    log: str = ""
    started_at: float = 0.0
    finished_at: float | None = None
    notes: list[str] = field(default_factory=list)

    def take(self, records: list[dict[str, Any]], now: float) -> None:
        """Follow the stream: which spec runs, which verdicts came, whether the session ended."""
        for record in records:
            event = record.get("event")
            if event == "start":
                self.running, self.started_at = str(record.get("nodeid")), now
            elif event == "result":
                self.results[str(record.get("nodeid"))] = record
                self.running = None
            elif event == "finish":
                self.finished_at = now
            elif event == "note":
                self.notes.append(str(record.get("note")))

    def reason_to_kill(self, now: float, limits: Limits, deadline: float) -> str | None:
        if _STOP.is_set():
            return "stopped"
        if self.running is not None and now - self.started_at > limits.watchdog:
            return "spec"
        if now > deadline:
            return "submission"
        if self.finished_at is not None and now - self.finished_at > EXIT_GRACE:
            return "lingered"
        return None


def run_child(command: list[str], work: Path, stream: Path, limits: Limits, deadline: float) -> ChildRun:
    """Run one grading process, watching its stream; kill it if a spec or the submission runs out of time."""
    run = ChildRun()
    log_path = stream.with_suffix(".log")
    reader = _Stream(stream)
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - our own interpreter running pytest on our specs
            command,
            cwd=work,
            env=child_env(work, work / GRADER_COPY),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so a kill takes its children too
        )
    with _LIVE_LOCK:
        _LIVE.add(process)
    try:
        while run.returncode is None and run.killed is None:
            try:
                run.returncode = process.wait(timeout=POLL)
            except subprocess.TimeoutExpired:
                run.returncode = None
            now = time.monotonic()
            run.take(reader.read(), now)  # read after the wait: an exited child's last lines are there
            if run.returncode is None:
                run.killed = run.reason_to_kill(now, limits, deadline)
        if run.killed:
            _kill(process)
            run.returncode = process.returncode
            run.take(reader.read(), time.monotonic())
    finally:
        if process.poll() is None:
            _kill(process)
        with _LIVE_LOCK:
            _LIVE.discard(process)
    with log_path.open("rb") as log:
        log.seek(max(0, log_path.stat().st_size - 4096))
        run.log = _tail(log.read().decode("utf-8", errors="replace"), 1500)
    return run


def _how_it_ended(returncode: int | None) -> str:
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


def _verdict(outcome: str, message: str | None = None, output: str | None = None) -> dict[str, Any]:
    return {"outcome": outcome, "message": message, "output": output, "duration": 0.0}


def run_specs(code: Path, work: Path, plan: Plan, deadline: float, notes: list[str]) -> dict[str, dict[str, Any]]:
    """Every spec's verdict for one submission's copy: each kata in processes of its own.

    One kata's code never shares a process with another kata's specs: what a hang or a
    crash leaves behind (a thread still spinning, a task still pending, a patched module)
    cannot cost the student points in the next kata.
    """
    verdicts: dict[str, dict[str, Any]] = {}
    for kata in plan.katas:
        verdicts.update(_run_kata_specs(code, work, plan, kata, deadline=deadline, notes=notes))
    return verdicts


def _run_kata_specs(  # noqa: PLR0913 - run_specs's arguments, and the kata
    code: Path, work: Path, plan: Plan, kata: Kata, *, deadline: float, notes: list[str]
) -> dict[str, dict[str, Any]]:
    """One kata's verdicts, relaunching past a process that died.

    A spec that kills its process (os._exit, a crash) or must be killed (it ignored the
    time limit) gets that verdict; the specs after it run in a new process. If the process
    died before any spec finished, the kata's remaining specs are "not run".
    """
    limits = plan.limits
    specs = [spec for spec in plan.specs if spec.kata == kata.slug]
    by_id = {spec.nodeid: spec for spec in specs}
    verdicts: dict[str, dict[str, Any]] = {}
    remaining = [spec.nodeid for spec in specs]
    attempt = 0
    while remaining:  # each pass either gets verdicts or gives some: it ends
        if _STOP.is_set():
            raise Interrupted
        if time.monotonic() >= deadline:
            message = f"not run: the submission's time limit ({limits.submission_timeout:g} s) ran out first"
            verdicts.update(dict.fromkeys(remaining, _verdict(NOT_RUN, message)))
            break
        attempt += 1
        root = work / GRADER_COPY
        if attempt == 1:
            targets = [str(root / "katas" / kata.slug / kata.spec)]
        else:
            targets = [f"{root.as_posix()}/{nodeid}" for nodeid in remaining]
        stream = work / f"{kata.slug}-run{attempt}.jsonl"
        run = run_child(
            child_command(targets, root=root, code=str(code), stream=stream, limits=limits, warm=plan.warm),
            work,
            stream,
            limits,
            deadline,
        )
        if run.killed == "stopped" or _STOP.is_set():  # a process killed by the stop did not crash
            raise Interrupted
        notes.extend(note for note in run.notes if note not in notes)
        before = len(verdicts)
        verdicts.update({nodeid: record for nodeid, record in run.results.items() if nodeid in by_id})
        if run.running in by_id and run.running not in verdicts:
            verdicts.update(
                _after_a_death(run, by_id, [nodeid for nodeid in remaining if nodeid not in verdicts], limits)
            )
        elif len(verdicts) == before and run.killed != "submission":  # no progress: do not try again
            message = (
                f"not run: the test process ended before running them ({_how_it_ended(run.returncode)}):\n{run.log}"
            )
            verdicts.update({nodeid: _verdict(NOT_RUN, message) for nodeid in remaining if nodeid not in verdicts})
        remaining = [nodeid for nodeid in remaining if nodeid not in verdicts]
    return verdicts


def _after_a_death(
    run: ChildRun, by_id: dict[str, Spec], remaining: list[str], limits: Limits
) -> dict[str, dict[str, Any]]:
    """The verdict of the spec a process died (or was killed) in, and of its kata's rest if not retried."""
    crashed = by_id[str(run.running)]
    if run.killed == "spec":
        return {
            crashed.nodeid: _verdict(
                TIMED_OUT,
                f"timed out: still running after {limits.watchdog:g} s; the {limits.spec_timeout:g} s limit "
                "could not interrupt it, so its process was stopped",
            )
        }
    if run.killed == "submission":
        message = f"timed out: the submission's time limit ({limits.submission_timeout:g} s) ran out"
        return {crashed.nodeid: _verdict(TIMED_OUT, message)}
    verdicts = {
        crashed.nodeid: _verdict(
            CRASHED,
            f"crashed: the test process ended during this spec ({_how_it_ended(run.returncode)}); "
            f"os._exit or a crash in the submission's code?\n{run.log}".strip(),
        )
    }
    if not any(by_id[nodeid].kata == crashed.kata for nodeid in run.results if nodeid in by_id):
        message = (
            f"not run: the test process died during {crashed.name} before any spec of {crashed.kata} "
            "finished, so the rest of that kata was not retried"
        )
        rest = [nodeid for nodeid in remaining if nodeid != crashed.nodeid and by_id[nodeid].kata == crashed.kata]
        verdicts.update(dict.fromkeys(rest, _verdict(NOT_RUN, message)))
    return verdicts


# --------------------------------------------------------------------------- one submission


def _same_text(theirs: Path, ours: Path) -> bool:
    """Byte for byte, except line endings (a Windows checkout is not an edit)."""
    return theirs.read_bytes().replace(b"\r\n", b"\n") == ours.read_bytes().replace(b"\r\n", b"\n")


def fingerprint(submission: Submission, plan: Plan) -> str:
    """A hash of everything the grade depends on: our side and the submission's files we read."""
    digest = hashlib.sha256(plan.grader.encode())
    for kata in plan.katas:
        folder = submission.root / kata.slug
        for name in (*kata.module_files, kata.spec):
            path = folder / name
            content = path.read_bytes() if path.is_file() else b"\0absent"
            digest.update(f"{kata.slug}/{name}:{len(content)}:".encode() + content)
    return digest.hexdigest()


def _inspect(submission: Submission, kata: Kata, code: Path) -> dict[str, Any]:
    """Copy the kata's module files into ``code`` and note what else the submission holds."""
    source = submission.root / kata.slug
    target = code / kata.slug
    target.mkdir(parents=True)
    missing = []
    for name in kata.module_files:
        if (source / name).is_file():
            shutil.copyfile(source / name, target / name)
        else:
            missing.append(name)
    theirs = source / kata.spec
    spec_file = "absent"
    if theirs.is_file():
        spec_file = "unchanged" if _same_text(theirs, kata.spec_path) else "modified"
    # Files we ship in the kata folder (README.md, a kata's own conftest.py) are ours when
    # unchanged, and are never used from a submission; a changed one is worth a note.
    ours = kata.folder
    ignored, modified = [], []
    for path in sorted(source.iterdir()) if source.is_dir() else []:
        if path.name in {*kata.module_files, kata.spec, "__pycache__"}:
            continue
        if not (ours / path.name).is_file():
            ignored.append(path.name)
        elif not path.is_file() or not _same_text(path, ours / path.name):
            modified.append(path.name)
    return {"spec_file": spec_file, "missing_modules": missing, "ignored_files": ignored, "modified_files": modified}


def readable(spec: Spec) -> str:
    """A spec's name as a sentence: ``k01_x: an address … is rejected [ada@]``."""
    function, bracket, case = spec.name.partition("[")
    sentence = function.removeprefix("test_").replace("_", " ")
    return f"{spec.kata}: {sentence}" + (f" [{case}" if bracket else "")


def _clean(text: str | None, work: Path, cap: int, *, keep_end: bool) -> str | None:
    if not text:
        return None
    for prefix in (work / "code", work / GRADER_COPY, REPO_ROOT):
        text = text.replace(f"{prefix}{os.sep}", "")
    if len(text) <= cap:
        return text
    if keep_end:
        return shorten(text, cap)
    return text[: cap - len(OUTPUT_CUT)] + OUTPUT_CUT


def shorten(text: str, cap: int) -> str:
    """At most ``cap`` characters: the first line says what happened, the end holds the assertion's lesson."""
    if len(text) <= cap:
        return text
    first = text.split("\n", 1)[0][: cap // 4]
    return first + "\n[…]" + text[-(cap - len(first) - 4) :]


def _num(value: Fraction) -> float | int:
    """Points as JSON shows them: whole numbers whole, the rest to 4 decimals."""
    return int(value) if value.denominator == 1 else round(float(value), 4)


def grade(submission: Submission, plan: Plan, fingerprint_: str) -> dict[str, Any]:
    """Grade one submission: its results.json content."""
    started = time.monotonic()
    deadline = started + plan.limits.submission_timeout
    with tempfile.TemporaryDirectory(prefix="kata-grade-") as tmp:
        work = Path(tmp)
        code = work / "code"
        inspected = {kata.slug: _inspect(submission, kata, code) for kata in plan.katas}
        copy_grader(work / GRADER_COPY, plan.katas)
        limit_notes: list[str] = []
        verdicts = run_specs(code, work, plan, deadline, limit_notes)
        tests = []
        for spec in plan.specs:
            verdict = verdicts.get(spec.nodeid) or _verdict(NOT_RUN, "not run: no verdict came back")
            outcome = verdict.get("outcome") if verdict.get("outcome") in STATUS else ERROR
            worth = plan.worth(spec)
            tests.append(
                {
                    "name": readable(spec),
                    "status": STATUS[outcome],
                    "message": None
                    if outcome == PASSED
                    else _clean(verdict.get("message"), work, MESSAGE_CAP, keep_end=True),
                    "output": _clean(verdict.get("output"), work, OUTPUT_CAP, keep_end=False),
                    "task_id": spec.task,
                    "kata": spec.kata,
                    "nodeid": spec.nodeid,
                    "outcome": outcome,
                    "points": _num(worth if outcome == PASSED else Fraction(0)),
                    "max_points": _num(worth),
                    "duration": round(float(verdict.get("duration") or 0.0), 3),
                }
            )
    result = _summarize(submission, plan, fingerprint_, tests, inspected)
    result["notes"].extend(limit_notes)
    result["duration"] = round(time.monotonic() - started, 2)
    return result


def _summarize(
    submission: Submission,
    plan: Plan,
    fingerprint_: str,
    tests: list[dict[str, Any]],
    inspected: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    katas = []
    notes = []
    total = Fraction(0)
    for kata in plan.katas:
        mine = [test for test, spec in zip(tests, plan.specs, strict=True) if spec.kata == kata.slug]
        earned = {
            task.number: sum(
                (
                    plan.worth(spec)
                    for test, spec in zip(tests, plan.specs, strict=True)
                    if spec.kata == kata.slug and spec.task == task.number and test["outcome"] == PASSED
                ),
                Fraction(0),
            )
            for task in kata.tasks
        }
        points = sum(earned.values(), Fraction(0))
        total += points
        counts = Counter(test["outcome"] for test in mine)
        info = inspected[kata.slug]
        katas.append(
            {
                "slug": kata.slug,
                "title": kata.title,
                "points": _num(points),
                "max_points": kata.points,
                "status": _overall([test["outcome"] for test in mine]),
                "outcomes": dict(counts),
                "tasks": [
                    {
                        "task_id": task.number,
                        "title": task.title,
                        "points": _num(earned[task.number]),
                        "max_points": task.points,
                        "specs": sum(1 for spec in plan.specs_of(kata.slug) if spec.task == task.number),
                    }
                    for task in kata.tasks
                ],
                **info,
            }
        )
        notes.extend(_notes(kata.slug, counts, info))
    outcomes = [test["outcome"] for test in tests]
    status = _overall(outcomes)
    message = None
    if status == "error":
        counts = Counter(outcomes)
        first = next((test["message"] for test in tests if test["message"]), "")
        message = "no spec ran to a verdict (" + ", ".join(f"{n} {o}" for o, n in counts.items()) + f"): {first}"
    return {
        "version": 3,
        "status": status,
        "message": message,
        "tests": tests,
        "student": submission.student,
        "submission": str(submission.path),
        "points": _num(total),
        "max_points": sum(kata.points for kata in plan.katas),
        "katas": katas,
        "notes": notes,
        "limits": plan.limits.as_dict(),
        "fingerprint": fingerprint_,
        "graded_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "duration": 0.0,
    }


def _overall(outcomes: list[str]) -> str:
    if outcomes and all(outcome == PASSED for outcome in outcomes):
        return "pass"
    if any(outcome in {PASSED, FAILED} for outcome in outcomes):
        return "fail"
    return "error"


def _notes(slug: str, counts: Counter[str], info: dict[str, Any]) -> list[str]:
    notes = []
    if info["spec_file"] == "modified":
        notes.append(f"{slug}: the submission's spec file is modified (ignored: graded with ours)")
    if info["missing_modules"]:
        notes.append(f"{slug}: missing {', '.join(info['missing_modules'])}")
    if info["ignored_files"]:
        notes.append(f"{slug}: ignored {', '.join(info['ignored_files'])}")
    if info.get("modified_files"):
        notes.append(f"{slug}: modified {', '.join(info['modified_files'])} (ignored: graded with ours)")
    notes.extend(f"{slug}: {counts[outcome]} {outcome}" for outcome in (TIMED_OUT, CRASHED, NOT_RUN) if counts[outcome])
    return notes


class Guard:
    """Our repository's grading files as they were when grading began.

    Each submission runs on its own copy of them, so a change here means code reached
    out for this repository on purpose; it is put back and reported.
    """

    def __init__(self, katas: tuple[Kata, ...]) -> None:
        paths = [REPO_ROOT / "conftest.py", REPO_ROOT / "pyproject.toml", *sorted((REPO_ROOT / "dojo").rglob("*"))]
        for kata in katas:
            paths.extend(path for path in sorted(kata.folder.iterdir()) if path.name not in kata.module_files)
        self._saved = {path: path.read_bytes() for path in paths if path.is_file() and "__pycache__" not in path.parts}

    def restore(self) -> list[str]:
        """Put back every file that changed (or vanished); name them."""
        changed = []
        for path, content in self._saved.items():
            try:
                same = path.read_bytes() == content
            except OSError:
                same = False
            if not same:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
                changed.append(str(path.relative_to(REPO_ROOT)))
        return changed


# --------------------------------------------------------------------------- outputs


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _points_text(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def gradebook(results: list[dict[str, Any]], katas: tuple[Kata, ...]) -> str:
    """The class gradebook: a row per student, a column per kata, the total; maximum points first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", *(kata.slug for kata in katas), "total", "notes"])
    writer.writerow(["(maximum)", *(kata.points for kata in katas), sum(kata.points for kata in katas), ""])
    for result in sorted(results, key=lambda result: result["student"]):
        earned = {kata["slug"]: kata["points"] for kata in result["katas"]}
        writer.writerow(
            [
                result["student"],
                *(_points_text(earned[kata.slug]) if kata.slug in earned else "" for kata in katas),
                _points_text(result["points"]),
                "; ".join(result.get("notes", [])),
            ]
        )
    return buffer.getvalue()


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(text: str | None) -> str:
    return _NOT_XML.sub("\ufffd", text or "")


def junit(results: list[dict[str, Any]]) -> str:
    """JUnit XML for CI systems: a test suite per student, a test case per spec."""
    root = ET.Element("testsuites", name="kata grade")
    for result in sorted(results, key=lambda result: result["student"]):
        tests = result["tests"]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=_xml_text(result["student"]),
            tests=str(len(tests)),
            failures=str(sum(test["status"] == "fail" for test in tests)),
            errors=str(sum(test["status"] == "error" for test in tests)),
            time=f"{sum(test['duration'] for test in tests):.3f}",
        )
        properties = ET.SubElement(suite, "properties")
        for name in ("points", "max_points"):
            ET.SubElement(properties, "property", name=name, value=str(result[name]))
        for test in tests:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=_xml_text(f"{result['student']}.{test['kata']}"),
                name=_xml_text(test["nodeid"].split("::", 1)[-1]),
                time=f"{test['duration']:.3f}",
            )
            if test["status"] != "pass":
                tag = "failure" if test["status"] == "fail" else "error"
                message = _xml_text(test["message"])
                problem = ET.SubElement(
                    case, tag, message=f"{test['outcome']}: {message.splitlines()[0] if message else ''}"
                )
                problem.text = message
            if test["output"]:
                ET.SubElement(case, "system-out").text = _xml_text(test["output"])
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def classroom_config(katas: tuple[Kata, ...], *, minutes: int, setup: str) -> dict[str, Any]:
    """GitHub Classroom's ``.github/classroom/autograding.json``: a test per kata, with its points.

    The classroom's runners then grade each student's repository (with the specs in that
    repository: protect ``katas/*/test_*.py`` there, or collect the repositories and run
    ``kata grade``).
    """
    return {
        "tests": [
            {
                "name": f"{kata.slug}: {kata.title}",
                "setup": setup,
                "run": f"uv run pytest katas/{kata.slug}",
                "input": "",
                "output": "",
                "comparison": "included",
                "timeout": minutes,
                "points": kata.points,
            }
            for kata in katas
        ]
    }


# --------------------------------------------------------------------------- the command


def _cores() -> int:
    """The cores this process may use (a container or taskset may allow fewer than the machine has)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _tail(text: str, size: int) -> str:
    text = text.strip()
    return text if len(text) <= size else "[…]" + text[-size:]


def _submissions(paths: list[str]) -> list[Submission]:
    found = []
    for raw in paths:
        path = Path(raw).expanduser()
        if not path.is_dir():
            raise GradeError(
                f"{raw}: not a folder; a submission is a folder: a clone of the repository, or its katas/ folder"
            )
        path = path.resolve()
        student = path.parent.name if path.name == "katas" else path.name
        if not student:
            raise GradeError(f"{raw}: cannot name a student after this folder")
        found.append(Submission(path, student))
    seen: dict[str, Path] = {}
    for submission in found:
        if submission.student in seen and seen[submission.student] != submission.path:
            raise GradeError(
                f"two submissions are both called {submission.student!r} ({seen[submission.student]} and "
                f"{submission.path}); results are kept per folder name: rename one"
            )
        seen[submission.student] = submission.path
    return list({submission.student: submission for submission in found}.values())


def _katas(names: list[str] | None) -> tuple[Kata, ...]:
    manifest = _manifest.load()
    if not names:
        return tuple(manifest)
    try:
        wanted = {manifest.get(name).slug for name in names}
    except KeyError as error:
        raise GradeError(error.args[0]) from None
    return tuple(kata for kata in manifest if kata.slug in wanted)


def _kept(out: Path, submission: Submission, fingerprint_: str) -> dict[str, Any] | None:
    try:
        result = json.loads((out / submission.student / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return result if isinstance(result, dict) and result.get("fingerprint") == fingerprint_ else None


def _grade_and_write(submission: Submission, plan: Plan, fingerprint_: str, out: Path) -> dict[str, Any]:
    result = grade(submission, plan, fingerprint_)
    if _STOP.is_set():  # it may have seen its process killed by the stop: grade it on the next run
        raise Interrupted
    write_atomically(out / submission.student / "results.json", json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result


def _line(result: dict[str, Any], note: str = "") -> str:
    return (
        f"{result['student']}: {_points_text(result['points'])}/{_points_text(result['max_points'])} points "
        f"({result['status']}){note}"
    )


def _on_sigterm(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kata grade",
        description="Grade a class: our specs, untouched, against each submission's kata modules, each in its own "
        "process. Writes OUT/<student>/results.json, OUT/gradebook.csv and OUT/junit.xml. "
        "`kata grade classroom --help`: GitHub Classroom's autograding.json.",
    )
    parser.add_argument(
        "submissions", nargs="+", metavar="SUBMISSION", help="a student's folder: a clone or its katas/"
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="where results go")
    parser.add_argument("--kata", action="append", metavar="SLUG", help="grade only this kata (repeatable; k01, 1, …)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_SPEC_TIMEOUT,
        metavar="S",
        help="seconds per spec (default %(default)s)",
    )
    parser.add_argument(
        "--submission-timeout",
        type=float,
        default=DEFAULT_SUBMISSION_TIMEOUT,
        metavar="S",
        help="seconds per submission, all katas (default %(default)s)",
    )
    parser.add_argument(
        "--memory", type=int, default=DEFAULT_MEMORY_MB, metavar="MiB", help="address space (default %(default)s)"
    )
    parser.add_argument("--jobs", type=int, default=None, metavar="N", help="submissions at once (default: the cores)")
    parser.add_argument("--regrade", action="store_true", help="grade again even what is unchanged since the last run")
    return parser


def _classroom_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="kata grade classroom",
        description="Write GitHub Classroom's .github/classroom/autograding.json from the manifest: "
        "a test per kata with its points (to stdout, or to --output).",
    )
    parser.add_argument("--output", type=Path, metavar="PATH", help="write here instead of stdout")
    parser.add_argument("--kata", action="append", metavar="SLUG", help="only this kata (repeatable)")
    parser.add_argument("--minutes", type=int, default=10, help="each test's timeout in minutes (default %(default)s)")
    parser.add_argument("--setup", default="", help="a setup command run before each test (e.g. installing uv)")
    options = parser.parse_args(argv)
    if not 1 <= options.minutes <= 60:  # GitHub Classroom's own bounds
        raise GradeError("--minutes must be between 1 and 60 (GitHub Classroom's limit)")
    text = json.dumps(classroom_config(_katas(options.kata), minutes=options.minutes, setup=options.setup), indent=2)
    if options.output is None:
        sys.stdout.write(text + "\n")
    else:
        write_atomically(options.output, text + "\n")
        sys.stdout.write(f"wrote {options.output}\n")
    return 0


def _grade_main(argv: list[str]) -> int:  # noqa: C901, PLR0915 - one command, read top to bottom
    options = _parser().parse_args(argv)
    if os.name != "posix":
        raise GradeError("grading needs Linux or macOS (process groups, signals and resource limits)")
    if options.timeout <= 0 or options.submission_timeout <= 0 or options.memory < 256:
        raise GradeError("--timeout and --submission-timeout must be positive, --memory at least 256 MiB")
    katas = _katas(options.kata)
    submissions = _submissions(options.submissions)
    out: Path = options.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise GradeError(f"--out {out}: {error.strerror}") from None
    jobs = options.jobs or _cores()
    jobs = max(1, min(jobs, len(submissions)))
    limits = Limits(options.timeout, options.submission_timeout, options.memory)
    print(f"grading {len(submissions)} submission(s) on {', '.join(kata.slug for kata in katas)}")
    print(f"limits: {limits.describe()}; {jobs} at a time")
    started = time.monotonic()
    guard = Guard(katas)
    plan = make_plan(katas, limits, cache=out / ".specs.json")
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for submission in submissions:
        fingerprint_ = fingerprint(submission, plan)
        kept = None if options.regrade else _kept(out, submission, fingerprint_)
        if kept is not None:
            results[submission.student] = kept
            print(_line(kept, ", kept: unchanged since it was graded"))
        else:
            todo.append((submission, fingerprint_))
    problems = 0
    previous = (
        signal.signal(signal.SIGTERM, _on_sigterm) if threading.current_thread() is threading.main_thread() else None
    )
    _STOP.clear()
    executor = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="kata-grade")
    try:
        futures: dict[Future[dict[str, Any]], Submission] = {
            executor.submit(_grade_and_write, submission, plan, fingerprint_, out): submission
            for submission, fingerprint_ in todo
        }
        for future in as_completed(futures):
            submission = futures[future]
            try:
                result = future.result()
            except Interrupted:
                continue
            except Exception as error:  # noqa: BLE001 - one submission's failure must not stop the class
                problems += 1
                print(f"{submission.student}: NOT GRADED, the grader failed: {type(error).__name__}: {error}")
                continue
            results[submission.student] = result
            print(_line(result, f" in {result['duration']:.1f} s"))
    except KeyboardInterrupt:
        kill_all()
        executor.shutdown(wait=True, cancel_futures=True)
        _report_tampering(guard)
        print(
            f"interrupted: {len(results)} of {len(submissions)} graded and kept; "
            "run the same command again to grade the rest",
            file=sys.stderr,
        )
        return 130
    finally:
        executor.shutdown(wait=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    tampered = _report_tampering(guard)
    ordered = [results[submission.student] for submission in submissions if submission.student in results]
    write_atomically(out / "gradebook.csv", gradebook(ordered, katas))
    write_atomically(out / "junit.xml", junit(ordered))
    elapsed = time.monotonic() - started
    print(
        f"{len(todo) - problems} graded, {len(submissions) - len(todo)} kept, in {elapsed:.1f} s "
        f"→ {out / 'gradebook.csv'}, {out / 'junit.xml'}"
    )
    return 1 if problems or tampered else 0


def _report_tampering(guard: Guard) -> int:
    changed = guard.restore()
    if changed:
        print(
            f"WARNING: while grading, code wrote to this repository's grading files: {', '.join(changed)}. "
            "They are restored. A submission did it on purpose: grade again one at a time "
            "(--jobs 1 --regrade) to see which, and grade untrusted code in a container.",
            file=sys.stderr,
        )
    return len(changed)


def main(argv: list[str] | None = None) -> int:
    """``kata grade ...`` and ``python -m dojo.grade ...``: grade submissions, or ``classroom``."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args[:1] == ["classroom"]:
            return _classroom_main(args[1:])
        return _grade_main(args)
    except GradeError as error:
        print(f"kata grade: {error}", file=sys.stderr)
        return 2
    except SystemExit as error:  # argparse: --help, or a usage error it already explained
        return error.code if isinstance(error.code, int) else 2


# --------------------------------------------------------------------------- the plugin in the grading process


def pytest_addoption(parser: pytest.Parser) -> None:
    """Options the grader passes to its child (not for people)."""
    group = parser.getgroup("kata-grade", "kata grade (set by the grader)")
    group.addoption("--grade-stream", default=None, help="write each spec's verdict to this file as JSON lines")
    group.addoption("--grade-memory", type=int, default=0, help="address-space limit in MiB")
    group.addoption("--grade-warm", default="", help="modules to import before the first spec")


def pytest_configure(config: pytest.Config) -> None:
    """In a grading process: set the limits, warm the imports, stream the verdicts."""
    stream = config.getoption("grade_stream")
    if not stream:
        return
    failures = _set_limits(config.getoption("grade_memory"))
    for name in filter(None, config.getoption("grade_warm").split(",")):
        with contextlib.suppress(Exception):  # warming only saves time; a spec reports any real error
            __import__(name)
    recorder = _Recorder(Path(stream), config)
    config.pluginmanager.register(recorder, "kata-grade-recorder")
    for failure in failures:
        recorder.emit(event="note", note=failure)


def _set_limits(memory_mb: int) -> list[str]:
    """Lower this process's limits for good; say which could not be set (some systems refuse RLIMIT_AS)."""
    import resource

    failures = []

    def lower(name: str, kind: int, value: int) -> None:
        _soft, hard = resource.getrlimit(kind)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        try:
            resource.setrlimit(kind, (value, value))  # hard too: the submission cannot raise it back
        except (ValueError, OSError) as error:
            failures.append(f"{name} not set on this system: {error}")

    if memory_mb:
        lower("the memory limit (RLIMIT_AS)", resource.RLIMIT_AS, memory_mb * 1024 * 1024)
    lower("RLIMIT_CORE", resource.RLIMIT_CORE, 0)
    lower("the file-size limit (RLIMIT_FSIZE)", resource.RLIMIT_FSIZE, FILE_CAP)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past FILE_CAP a write fails; it does not kill us
    return failures


def _timed_out(error: BaseException | None, depth: int = 0) -> bool:
    """Is this pytest-timeout's failure, maybe wrapped in an exception group by the app's task group?"""
    if error is None or depth > 5:  # deep enough for nested task groups
        return False
    if isinstance(error, pytest.fail.Exception) and str(error).startswith("Timeout (>"):
        return True
    nested = getattr(error, "exceptions", ())
    return any(_timed_out(inner, depth + 1) for inner in nested) or _timed_out(error.__context__, depth + 1)


class _Recorder:
    """Writes one JSON line per event: each collected spec, each start, each verdict, the end."""

    def __init__(self, path: Path, config: pytest.Config) -> None:
        self._config = config
        self._out = path.open("a", encoding="utf-8")
        self._reports: dict[str, list[pytest.TestReport]] = {}
        self._timed_out: set[str] = set()

    def emit(self, **record: Any) -> None:
        self._out.write(json.dumps(record) + "\n")
        self._out.flush()

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if not session.config.option.collectonly:
            return
        from dojo.plugin import task_of  # loaded in the test process, never in the instructor's

        for item in session.items:
            self.emit(
                event="item",
                nodeid=item.nodeid,
                kata=item.path.parent.name,
                task=task_of(item) or 0,
                name=item.name,
            )

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self._reports[nodeid] = []
        self.emit(event="start", nodeid=nodeid)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        if call.excinfo is not None and _timed_out(call.excinfo.value):
            self._timed_out.add(item.nodeid)
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._reports.setdefault(report.nodeid, []).append(report)

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        reports = self._reports.pop(nodeid, [])
        duration = sum(report.duration for report in reports)
        limit = self._config.getoption("timeout", None)
        limit = float(limit) if isinstance(limit, (int, float)) and limit > 0 else None
        outcome, message = PASSED, None
        for report in reports:
            if report.failed:
                text = report.longreprtext
                if nodeid in self._timed_out or "from pytest-timeout" in text:
                    outcome = TIMED_OUT
                    crash = getattr(report.longrepr, "reprcrash", None)
                    where = f" (stopped at {crash.path}:{crash.lineno})" if crash is not None else ""
                    after = f"after {limit:g} s" if limit else "after the time limit"
                    message = f"timed out: still running {after}{where}\n{text}"
                elif limit and duration >= limit:
                    # The alarm fired in a task the app started, not in the spec: the spec failed later, out of time.
                    outcome = TIMED_OUT
                    message = f"timed out: ran {duration:.1f} s, past the {limit:g} s limit\n{text}"
                else:
                    outcome = FAILED if report.when == "call" else ERROR
                    message = text if report.when == "call" else f"error in {report.when}: {text}"
                break
            if report.skipped:
                outcome, message = SKIPPED, f"skipped: {report.longreprtext}"
        output = ""
        if reports:
            output = "".join(
                content
                for title, content in reports[-1].sections
                if title.startswith(("Captured stdout", "Captured stderr"))
            )
        if message is not None:
            message = shorten(message, MESSAGE_CAP * 2)  # cut for good by the parent, which also strips paths
        self.emit(
            event="result",
            nodeid=nodeid,
            outcome=outcome,
            message=message,
            output=output[: OUTPUT_CAP * 2],
            duration=duration,
        )

    def pytest_sessionfinish(self, exitstatus: int) -> None:
        self.emit(event="finish", exitstatus=int(exitstatus))


if __name__ == "__main__":
    sys.exit(main())
