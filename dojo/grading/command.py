"""The command line: ``kata grade SUBMISSION... --out DIR``, ``kata grade classroom`` and ``kata grade analysis``.

The parent reads every submission once, checks our side and the environment before each
submission and before writing its results, grades submissions in parallel (each in its own
processes, see :mod:`dojo.grading.child`), writes every result itself, and checks them all
again before it writes the gradebook.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from dojo import manifest as _manifest
from dojo.grading import analysis as _analysis
from dojo.grading import sandbox as _sandbox
from dojo.grading.child import STOP, AsShipped, PlanMismatch, kill_all
from dojo.grading.guard import Snapshot
from dojo.grading.intake import Intake, fingerprint, read_submission
from dojo.grading.outputs import (
    LEDGER,
    SUMMARY,
    classroom_workflow,
    gradebook,
    junit,
    points_text,
    sha,
    student_files,
    student_folder,
    summary_path,
    write_atomically,
)
from dojo.grading.plan import (
    DEFAULT_MEMORY_MB,
    DEFAULT_SPEC_TIMEOUT,
    DEFAULT_SUBMISSION_TIMEOUT,
    GradeError,
    Interrupted,
    Limits,
    Plan,
    Source,
    Submission,
    grader_files,
    make_plan,
    spec_sources,
)
from dojo.grading.results import grade, recount, safe
from dojo.manifest import Kata


class Tampered(Exception):  # noqa: N818 - it is what was found
    """Our side or the environment changed while grading."""

    def __init__(self, changes: list[str]) -> None:
        super().__init__(", ".join(changes))
        self.changes = changes


def _say(text: str, *, error: bool = False) -> None:
    print(safe(text), file=sys.stderr if error else sys.stdout, flush=True)


def _cores() -> int:
    """The cores this process may use (a container or taskset may allow fewer than the machine has)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _submissions(paths: list[str]) -> list[Submission]:
    """The folders named, each named as given (a link is not resolved to name it); anything else skipped."""
    found: list[Submission] = []
    skipped: list[str] = []
    for raw in paths:
        path = Path(os.path.abspath(Path(raw).expanduser()))  # noqa: PTH100 - normalizes '..' without resolving links
        if not path.is_dir():
            skipped.append(raw)
            continue
        student = path.parent.name if path.name == "katas" else path.name
        if not student:
            skipped.append(raw)
            continue
        found.append(Submission(path, student))
    if not found:
        first = skipped[0] if skipped else "?"
        raise GradeError(
            f"{first}: not a folder; a submission is a folder: a clone of the repository, or its katas/ folder"
        )
    for raw in skipped:
        _say(f"skipped {raw}: not a folder (a submission is a folder)")
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


def _line(result: dict[str, Any], note: str = "") -> str:
    review = f" — REVIEW: {len(result['review'])} attempt(s) flagged" if result.get("review") else ""
    return (
        f"{result['student']}: {points_text(result['points'])}/{points_text(result['max_points'])} points "
        f"({result['status']}){note}{review}"
    )


def _on_sigterm(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


class Run:
    """One grading run's shared state: the ledger of what the parent wrote, who is being graded."""

    def __init__(self, out: Path, plan: Plan, snapshot: Snapshot, sandbox: str | None) -> None:
        self.out = out
        self.plan = plan
        self.snapshot = snapshot
        self.sandbox = sandbox
        self.lock = threading.Lock()
        self.running: set[str] = set()
        self.as_shipped = AsShipped()  # the katas left as shipped, run once for the class
        self.sources: dict[str, Source] = spec_sources(plan) if plan is not None else {}
        try:
            ledger = json.loads((out / LEDGER).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            ledger = {}
        # student -> {file under their folder -> sha256 of the text the grader wrote}
        self.ledger: dict[str, dict[str, str]] = {
            str(student): {str(name): str(digest) for name, digest in files.items()}
            for student, files in (ledger.items() if isinstance(ledger, dict) else ())
            if isinstance(files, dict)
        }

    def kept(self, submission: Submission, fingerprint_: str) -> dict[str, Any] | None:
        """Results a previous run wrote, if they are what it wrote and still what grading would give."""
        try:
            text = summary_path(self.out, submission.student).read_text(encoding="utf-8")
            result = json.loads(text)
        except (OSError, ValueError):
            return None
        if self.ledger.get(submission.student, {}).get(SUMMARY) != sha(text) or not isinstance(result, dict):
            return None
        if result.get("fingerprint") != fingerprint_ or result.get("sandbox") != (self.sandbox or "none"):
            return None
        return result if recount(result, self.plan) else None

    def check(self) -> None:
        changes = self.snapshot.changes()
        if changes:
            raise Tampered(changes)

    def grade_and_write(self, submission: Submission, intake: Intake, fingerprint_: str) -> dict[str, Any]:
        with self.lock:
            self.running.add(submission.student)
        try:
            self.check()
            result = grade(submission, self.plan, intake, fingerprint_, self.sandbox, as_shipped=self.as_shipped)
            if STOP.is_set():  # it may have seen its process killed by the stop: grade it on the next run
                raise Interrupted
            self.check()
            self.write(submission.student, result)
        finally:
            with self.lock:
                self.running.discard(submission.student)
        return result

    def write(self, student: str, result: dict[str, Any]) -> None:
        files = student_files(result, self.sources)
        folder = student_folder(self.out, student)
        with self.lock:
            if STOP.is_set():
                raise Interrupted
            for name, text in files.items():
                write_atomically(folder / name, text)
            self.ledger[student] = {name: sha(text) for name, text in files.items()}
            write_atomically(self.out / LEDGER, json.dumps(self.ledger, indent=1, ensure_ascii=False) + "\n")

    def verify(self, results: dict[str, dict[str, Any]]) -> list[str]:
        """Every file written for a student is still what the parent wrote; put back and name any that is not."""
        changed = []
        for student, result in results.items():
            folder = student_folder(self.out, student)
            written = self.ledger.get(student, {})
            same = bool(written) and all(_unchanged(folder / name, digest) for name, digest in written.items())
            if not same or set(written) != set(student_files(result, self.sources)):
                changed.append(student)
                self.write(student, result)
        return changed


def _unchanged(path: Path, digest: str) -> bool:
    try:
        return sha(path.read_text(encoding="utf-8")) == digest
    except (OSError, ValueError):
        return False


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kata grade",
        description="Grade a class: our specs, untouched, against each submission's kata modules, each in its own "
        "processes. Writes OUT/students/<student>/summary.json and a results.json per kata (Exercism's format) "
        "beside it, OUT/gradebook.csv, OUT/junit.xml and the item analysis in OUT/analysis/. "
        "`kata grade classroom --help`: GitHub Classroom's workflow; `kata grade analysis --help`: the item "
        "analysis again.",
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
    parser.add_argument(
        "--sandbox",
        choices=_sandbox.MODES,
        default="auto",
        help="bwrap: grade inside bubblewrap (an error if it is missing); none: without; auto (default): bwrap if "
        "it works here",
    )
    return parser


def _classroom_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="kata grade classroom",
        description="Write GitHub Classroom's workflow, .github/workflows/classroom.yml, from the manifest: one "
        "graded step per task of each kata, worth the task's points, and the classroom's reporter (to stdout, or "
        "to --output).",
    )
    parser.add_argument("--output", type=Path, metavar="PATH", help="write here instead of stdout")
    parser.add_argument("--kata", action="append", metavar="SLUG", help="only this kata (repeatable)")
    parser.add_argument(
        "--minutes", type=int, default=2, help="each step's time limit in minutes (default %(default)s)"
    )
    options = parser.parse_args(argv)
    if not 1 <= options.minutes <= 60:
        raise GradeError("--minutes must be between 1 and 60 (a step of one task's specs takes seconds)")
    text = classroom_workflow(_katas(options.kata), minutes=options.minutes)
    if options.output is None:
        sys.stdout.write(text)
    else:
        write_atomically(options.output, text)
        sys.stdout.write(f"wrote {options.output}\n")
    return 0


def _analysis_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="kata grade analysis",
        description="Write the item analysis (OUT/analysis/: items.csv, failures.csv, points.csv, review.csv and "
        "index.html, a page that works offline) again from the results a grading run wrote in OUT.",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="the folder a grading run wrote")
    parser.add_argument("--kata", action="append", metavar="SLUG", help="only this kata (repeatable)")
    options = parser.parse_args(argv)
    out: Path = options.out
    try:
        ledger = json.loads((out / LEDGER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise GradeError(f"{out} holds no grading run (no readable {LEDGER}): grade the class first") from None
    results = []
    for student, files in sorted(ledger.items()):
        digest = files.get(SUMMARY) if isinstance(files, dict) else None
        path = summary_path(out, student)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            _say(f"{student}: left out, {path} is missing", error=True)
            continue
        if sha(text) != digest:
            _say(f"{student}: left out, {path} is not what the grader wrote (grade again to rewrite it)", error=True)
            continue
        results.append(json.loads(text))
    katas = _katas(options.kata)
    page = _analysis.write(out, results, katas)
    _say(f"{len(results)} student(s) on {len(katas)} kata(s) → {page}")
    return 0


def _grade_main(argv: list[str]) -> int:  # noqa: C901, PLR0912, PLR0915 - one command, read top to bottom
    options = _parser().parse_args(argv)
    if os.name != "posix":
        raise GradeError("grading needs Linux or macOS (process groups, signals and resource limits)")
    if options.timeout <= 0 or options.submission_timeout <= 0 or options.memory < 256:
        raise GradeError("--timeout and --submission-timeout must be positive, --memory at least 256 MiB")
    try:
        sandbox = _sandbox.choose(options.sandbox)
    except ValueError as error:
        raise GradeError(str(error)) from None
    katas = _katas(options.kata)
    submissions = _submissions(options.submissions)
    out: Path = options.out
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise GradeError(f"--out {out}: {error.strerror}") from None
    sys.dont_write_bytecode = True  # the environment is watched: the grader itself must not change it
    jobs = max(1, min(options.jobs or _cores(), len(submissions)))
    limits = Limits(options.timeout, options.submission_timeout, options.memory)
    _say(f"grading {len(submissions)} submission(s) on {', '.join(kata.slug for kata in katas)}")
    _say(f"limits: {limits.describe()}; {jobs} at a time")
    _say(
        "sandbox: bubblewrap (read-only system and environment, no network, own process IDs)"
        if sandbox
        else f"sandbox: {_sandbox.WITHOUT}"
    )
    started = time.monotonic()
    snapshot = Snapshot.take(katas)
    cache = out / ".specs.json"
    plan = make_plan(katas, limits, grader_files(katas), cache=cache)
    run = Run(out, plan, snapshot, sandbox)
    results: dict[str, dict[str, Any]] = {}
    todo = []
    for submission in submissions:
        intake = read_submission(submission, plan)
        fingerprint_ = fingerprint(intake, plan)
        kept = None if options.regrade else run.kept(submission, fingerprint_)
        if kept is not None:
            results[submission.student] = kept
            _say(_line(kept, ", kept: unchanged since it was graded"))
        else:
            todo.append((submission, intake, fingerprint_))
    problems = 0
    previous = (
        signal.signal(signal.SIGTERM, _on_sigterm) if threading.current_thread() is threading.main_thread() else None
    )
    STOP.clear()
    stopped: str | None = None
    executor = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="kata-grade")
    try:
        futures: dict[Future[dict[str, Any]], Submission] = {
            executor.submit(run.grade_and_write, submission, intake, fingerprint_): submission
            for submission, intake, fingerprint_ in todo
        }
        for future in as_completed(futures):
            submission = futures[future]
            try:
                result = future.result()
            except Interrupted:
                continue
            except Tampered as error:
                stopped = stopped or _tampered(run, error)
                continue
            except PlanMismatch as error:
                if stopped is None:
                    kill_all()
                    cache.unlink(missing_ok=True)
                    stopped = f"stopped: {error}; the cache is removed: run the same command again"
                continue
            except Exception as error:  # noqa: BLE001 - one submission's failure must not stop the class
                problems += 1
                _say(f"{submission.student}: NOT GRADED, the grader failed: {type(error).__name__}: {error}")
                continue
            results[submission.student] = result
            _say(_line(result, f" in {result['duration']:.1f} s"))
    except KeyboardInterrupt:
        kill_all()
        executor.shutdown(wait=True, cancel_futures=True)
        _say(
            f"interrupted: {len(results)} of {len(submissions)} graded and kept; "
            "run the same command again to grade the rest",
            error=True,
        )
        return 130
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if stopped is not None:
        _say(stopped, error=True)
        return 1
    try:
        run.check()
    except Tampered as error:
        _say(_tampered(run, error), error=True)
        return 1
    rewritten = run.verify(results)
    if rewritten:
        _say(
            f"WARNING: the results of {', '.join(rewritten)} changed after the grader wrote it; written again "
            "from the grader's own record",
            error=True,
        )
    ordered = [results[submission.student] for submission in submissions if submission.student in results]
    write_atomically(out / "gradebook.csv", gradebook(ordered, katas))
    write_atomically(out / "junit.xml", junit(ordered, run.sources))
    page = _analysis.write(out, ordered, katas)
    flagged = [result["student"] for result in ordered if result.get("review")]
    if flagged:
        _say(f"marked for review (what was attempted is in summary.json and the gradebook): {', '.join(flagged)}")
    elapsed = time.monotonic() - started
    _say(
        f"{len(todo) - problems} graded, {len(submissions) - len(todo)} kept, in {elapsed:.1f} s "
        f"→ {out / 'gradebook.csv'}, {out / 'junit.xml'}; what the class did not get: {page}"
    )
    return 1 if problems or rewritten else 0


def _tampered(run: Run, error: Tampered) -> str:
    kill_all()
    restored = run.snapshot.restore()
    with run.lock:
        suspects = sorted(run.running)
    shown = error.changes[:20] + ([f"… {len(error.changes) - 20} more"] if len(error.changes) > 20 else [])
    return (
        "STOPPED: our grading files or the Python environment changed while grading: "
        + ", ".join(shown)
        + (f". Put back: {', '.join(restored)}" if restored else "")
        + f". Being graded then: {', '.join(suspects) or 'none'}. No later grade was written; reinstall the "
        "environment if it changed (uv sync --reinstall), then grade the suspects one at a time (--jobs 1), "
        "in the sandbox."
    )


def main(argv: list[str] | None = None) -> int:
    """``kata grade ...`` and ``python -m dojo.grade ...``: grade submissions, or ``classroom``."""
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        if args[:1] == ["classroom"]:
            return _classroom_main(args[1:])
        if args[:1] == ["analysis"]:
            return _analysis_main(args[1:])
        return _grade_main(args)
    except GradeError as error:
        _say(f"kata grade: {error}", error=True)
        return 2
    except SystemExit as error:  # argparse: --help, or a usage error it already explained
        return error.code if isinstance(error.code, int) else 2
