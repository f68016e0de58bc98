"""The plan: what every submission is graded on, fixed before any student code runs.

The katas, their specs (collected once from our spec files), the points each spec is
worth, the limits, and a snapshot of our side (the files every grading process imports,
held in memory so that each process gets a fresh copy of them, whatever happened on disk).
"""

from __future__ import annotations

import ast
import hashlib
import json
import textwrap
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from dojo.manifest import MANIFEST_PATH, REPO_ROOT, Kata

#: Exercism's test-runner interface caps a test's ``output`` at 500 characters; so do we.
OUTPUT_CAP = 500
OUTPUT_CUT = "\n[output cut at 500 characters]"
#: A failure message is cut to 2000 characters: its first line and its end (where the assertion's lesson is).
MESSAGE_CAP = 2000
#: No file the grading process writes may grow past this (a flood of output fills the disk).
FILE_CAP = 256 * 1024 * 1024
#: A kata module bigger than this is not graded (nobody writes a megabyte of kata code).
MODULE_CAP = 1024 * 1024

DEFAULT_SPEC_TIMEOUT = 5.0
DEFAULT_SUBMISSION_TIMEOUT = 600.0
DEFAULT_MEMORY_MB = 1024

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
    """Grading was stopped (Ctrl-C, SIGTERM, tampering seen); what finished is kept."""


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
class Submission:
    """One student's folder, named as the instructor gave it (a symbolic link is not followed to name it)."""

    path: Path  # absolute, not resolved
    student: str

    @property
    def root(self) -> Path:
        """The folder holding one sub-folder per kata (a clone's ``katas/``, or the folder itself)."""
        katas = self.path / "katas"
        return katas if katas.is_dir() and not katas.is_symlink() else self.path


def grader_files(katas: tuple[Kata, ...]) -> dict[str, bytes]:
    """Our side, read once: settings, conftest.py, ``dojo/``, our kata folders without the stubs.

    Every grading process gets a fresh copy of exactly these bytes, so what one process
    does to its copy never reaches another, and a change on disk during the run does not
    reach any (the guard reports it).
    """
    files: dict[str, bytes] = {}
    for name in ("conftest.py", "pyproject.toml"):
        files[name] = (REPO_ROOT / name).read_bytes()
    for path in sorted((REPO_ROOT / "dojo").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            files[path.relative_to(REPO_ROOT).as_posix()] = path.read_bytes()
    for kata in katas:
        for path in sorted(kata.folder.iterdir()):
            if path.is_file() and path.name not in kata.module_files:
                files[f"katas/{kata.slug}/{path.name}"] = path.read_bytes()
    return files


def digest(files: dict[str, bytes]) -> str:
    """One hash for a set of files (names and contents)."""
    hasher = hashlib.sha256()
    for name in sorted(files):
        content = files[name]
        hasher.update(f"{name}\0{len(content)}\0".encode() + content)
    return hasher.hexdigest()


@dataclass(frozen=True)
class Plan:
    """What every submission is graded on: the katas, their specs, the limits, our side."""

    katas: tuple[Kata, ...]
    specs: tuple[Spec, ...]
    limits: Limits
    warm: tuple[str, ...]
    files: dict[str, bytes]  # our side, as read when grading began
    grader: str  # a hash of our side, the manifest and the limits
    stubs: dict[str, dict[str, bytes]] = field(default_factory=dict)  # slug -> its modules as shipped

    def left_as_shipped(self, slug: str, modules: dict[str, bytes] | None) -> bool:
        """Whether a submission's modules of a kata are its stubs as shipped (line endings aside)."""
        stubs = self.stubs.get(slug)
        return (
            bool(stubs)
            and modules is not None
            and modules.keys() == stubs.keys()
            and all(same_text(modules[name], stubs[name]) for name in stubs)
        )

    def specs_of(self, slug: str) -> list[Spec]:
        return [spec for spec in self.specs if spec.kata == slug]

    def worth(self, spec: Spec) -> Fraction:
        """A task's points split evenly across its specs."""
        task = next(kata for kata in self.katas if kata.slug == spec.kata).task(spec.task)
        count = sum(1 for other in self.specs if other.kata == spec.kata and other.task == spec.task)
        return Fraction(task.points, count)


def same_text(theirs: bytes, ours: bytes) -> bool:
    """Byte for byte, except line endings (a Windows checkout is not an edit)."""
    return theirs.replace(b"\r\n", b"\n") == ours.replace(b"\r\n", b"\n")


def shipped_stubs(katas: tuple[Kata, ...]) -> dict[str, dict[str, bytes]]:
    """Each kata's modules as shipped; a kata whose stubs cannot be recovered is left out (never reused)."""
    from dojo.impl import ImplError, shipped_source

    def stubs_of(kata: Kata) -> dict[str, bytes] | None:
        try:
            return {name: shipped_source(kata, name) for name in kata.module_files}
        except ImplError:
            return None

    return {kata.slug: stubs for kata in katas if (stubs := stubs_of(kata)) is not None}


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


def grader_hash(files: dict[str, bytes], limits: Limits) -> str:
    """A hash of our side, the manifest and the limits: a result graded under others is not kept."""
    hasher = hashlib.sha256(digest(files).encode())
    hasher.update(MANIFEST_PATH.read_bytes())
    hasher.update(json.dumps(limits.as_dict(), sort_keys=True).encode())
    return hasher.hexdigest()


def make_plan(katas: tuple[Kata, ...], limits: Limits, files: dict[str, bytes], cache: Path | None = None) -> Plan:
    """Collect our specs once (they import no kata code while collecting) and fix the points.

    With ``cache`` (a file in the output folder), a rerun on the same specs and limits
    reuses the collection instead of starting pytest again. The cache is a hint, never
    trusted: every grading process reports what it collected, and a difference stops the
    run (see :mod:`dojo.grading.child`).
    """
    from dojo.grading.child import collect

    warm = warm_modules(katas)
    grader = grader_hash(files, limits)
    if cache is not None:
        try:
            saved = json.loads(cache.read_text(encoding="utf-8"))
            if saved["grader"] == grader:
                specs = tuple(
                    Spec(str(s["nodeid"]), str(s["kata"]), int(s["task"]), str(s["name"])) for s in saved["specs"]
                )
                if specs and {spec.kata for spec in specs} == {kata.slug for kata in katas}:
                    return Plan(katas, specs, limits, warm, files, grader, shipped_stubs(katas))
        except (OSError, ValueError, KeyError, TypeError):
            pass
    specs = collect(katas, limits, files)
    if cache is not None:
        from dojo.grading.outputs import write_atomically

        write_atomically(cache, json.dumps({"grader": grader, "specs": [asdict(spec) for spec in specs]}) + "\n")
    return Plan(katas, specs, limits, warm, files, grader, shipped_stubs(katas))


@dataclass(frozen=True)
class Source:
    """Where a spec is written, and its code: what a results.json shows as ``test_code``."""

    file: str  # relative to the repository: katas/<slug>/<spec file>
    line: int
    code: str  # the spec function's body, without its docstring, dedented


def spec_sources(plan: Plan) -> dict[str, Source]:
    """Each spec's file, line and body, read from our spec files as the plan holds them (no code is run)."""
    sources: dict[str, Source] = {}
    for kata in plan.katas:
        name = f"katas/{kata.slug}/{kata.spec}"
        text = plan.files[name].decode("utf-8")
        functions = {
            node.name: node
            for node in ast.parse(text).body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test")
        }
        for spec in plan.specs_of(kata.slug):
            function = functions.get(spec.name.partition("[")[0])
            if function is None:
                continue
            body = function.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
                body = body[1:] or body  # the docstring is the spec's description, not its code
            lines = text.splitlines()[body[0].lineno - 1 : function.end_lineno]
            sources[spec.nodeid] = Source(name, function.lineno, textwrap.dedent("\n".join(lines)).strip("\n"))
    return sources
