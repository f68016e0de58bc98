"""The manifest: the katas in order, with their tasks, hints and points.

``manifest.toml`` beside this file is the one place that lists the katas. Tools and the
repository's checks read it through :func:`load`; nothing else hard-codes the list.
"""

from __future__ import annotations

import hashlib
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

REPO_ROOT = Path(__file__).resolve().parent.parent
MANIFEST_PATH = Path(__file__).resolve().parent / "manifest.toml"
KATAS_DIR = REPO_ROOT / "katas"
SOLUTIONS_DIR = REPO_ROOT / "solutions"
MUTANTS_DIR = REPO_ROOT / "tests" / "mutants"


class ManifestError(ValueError):
    """The manifest is malformed or disagrees with itself."""


@dataclass(frozen=True)
class Task:
    """One numbered task of a kata, as its README's ``## N.`` heading names it."""

    number: int
    title: str
    points: int
    hints: tuple[str, ...]


@dataclass(frozen=True)
class Kata:
    """One kata: a folder under ``katas/`` and its twin under ``solutions/``."""

    order: int
    slug: str
    title: str
    summary: str
    modules: tuple[str, ...]
    spec: str
    tasks: tuple[Task, ...]
    shipped: dict[str, str]  # module file name -> git blob id of the stub as shipped
    serve: str | None = None  # "module:factory" building the app for `kata serve` (dojo/demo.py)
    #: "code": the modules are code the specs exercise; "tests": the module is a test file the
    #: learner writes, which the specs run on the kata's given app and its wrong versions (kata 16).
    module_kind: str = "code"
    given: tuple[str, ...] = ()  # files the kata ships for the learner to read, never to edit (kata 16's app.py)

    @property
    def folder(self) -> Path:
        return KATAS_DIR / self.slug

    @property
    def solution_folder(self) -> Path:
        return SOLUTIONS_DIR / self.slug

    @property
    def spec_path(self) -> Path:
        return self.folder / self.spec

    @property
    def mutants_folder(self) -> Path:
        return MUTANTS_DIR / self.slug

    @property
    def module_files(self) -> tuple[str, ...]:
        return tuple(f"{name}.py" for name in self.modules)

    @property
    def module_is_tests(self) -> bool:
        """The learner's module is a test file (pytest and the test libraries are its imports)."""
        return self.module_kind == "tests"

    @property
    def points(self) -> int:
        return sum(task.points for task in self.tasks)

    def libraries(self, *, code: Path | None = None, specs: bool = True) -> list[str]:
        """What the kata's specs, conftest and code import from outside it (dotted names, in order).

        ``code`` is the folder of the code whose imports count (the solution by default);
        ``specs=False`` leaves out the spec file and the conftest (whoever imports them gets
        their imports anyway, and parsing the spec file is most of the cost). The files are
        only parsed, never run. The kata's own modules, ``dojo`` and the standard library's
        ``__future__`` are left out.
        """
        import ast

        own = {*self.modules, self.slug, "dojo", "katas", "solutions", "__future__"}
        folder = self.solution_folder if code is None else code
        names: list[str] = []
        ours = [self.spec_path, self.folder / "conftest.py"] if specs else []
        for path in [*ours, *(folder / name for name in self.module_files)]:
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (OSError, SyntaxError, ValueError):
                continue  # a missing or broken file is its run's business
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    found = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    found = [node.module]
                else:
                    continue
                names += [name for name in found if name.partition(".")[0] not in own and name not in names]
        return names

    def task(self, number: int) -> Task:
        for task in self.tasks:
            if task.number == number:
                return task
        raise KeyError(f"{self.slug} has no task {number}")


@dataclass(frozen=True)
class Manifest:
    """The katas in learning order."""

    katas: tuple[Kata, ...]

    def __iter__(self) -> Iterator[Kata]:
        return iter(self.katas)

    def __len__(self) -> int:
        return len(self.katas)

    @property
    def slugs(self) -> tuple[str, ...]:
        return tuple(kata.slug for kata in self.katas)

    def get(self, name: str) -> Kata:
        """Find a kata by slug, by number (``1``, ``01``, ``k01``) or by slug prefix."""
        wanted = name.strip().lower()
        for kata in self.katas:
            if wanted in {kata.slug, str(kata.order), f"{kata.order:02d}", f"k{kata.order:02d}"}:
                return kata
        matches = [kata for kata in self.katas if kata.slug.startswith(wanted)]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(self.slugs)
        raise KeyError(f"no kata called {name!r}; the katas are: {known}")


def git_blob_id(content: bytes) -> str:
    """The id git gives a file with this content (``git hash-object``), line endings as LF."""
    content = content.replace(b"\r\n", b"\n")
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()  # noqa: S324 - git's own id, not security


def parse(data: dict) -> Manifest:
    """Build the manifest from the TOML data, checking order, slugs and task numbers."""
    katas: list[Kata] = []
    for position, raw in enumerate(data.get("kata", []), start=1):
        match = re.fullmatch(r"k(\d{2})_[a-z0-9_]+", str(raw.get("slug", "")))
        if match is None:
            raise ManifestError(f"kata number {position} in {MANIFEST_PATH.name}: slug must look like k01_name")
        order = int(match.group(1))
        if katas and order <= katas[-1].order:
            raise ManifestError(f"{raw['slug']} comes after {katas[-1].slug}: list the katas in order")
        try:
            tasks = tuple(
                Task(
                    number=int(task["number"]),
                    title=str(task["title"]),
                    points=int(task["points"]),
                    hints=tuple(str(hint) for hint in task["hints"]),
                )
                for task in raw["task"]
            )
            kata = Kata(
                order=order,
                slug=str(raw["slug"]),
                title=str(raw["title"]),
                summary=str(raw.get("summary", "")),
                modules=tuple(raw["modules"]),
                spec=str(raw["spec"]),
                tasks=tasks,
                shipped=dict(raw.get("shipped", {})),
                serve=str(raw["serve"]) if "serve" in raw else None,
                module_kind=str(raw.get("module_kind", "code")),
                given=tuple(str(name) for name in raw.get("given", ())),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise ManifestError(f"kata number {order} in {MANIFEST_PATH.name}: {error!r}") from error
        if [task.number for task in tasks] != list(range(1, len(tasks) + 1)):
            raise ManifestError(f"{kata.slug}: tasks must be numbered 1, 2, 3 … in order")
        if kata.module_kind not in {"code", "tests"}:
            raise ManifestError(
                f"{kata.slug}: module_kind is 'code' (the default) or 'tests', not {kata.module_kind!r}"
            )
        servable = (*kata.modules, *(name.removesuffix(".py") for name in kata.given))
        if kata.serve is not None and (kata.serve.partition(":")[0] not in servable or ":" not in kata.serve):
            raise ManifestError(f"{kata.slug}: serve must be 'module:factory' with one of its modules {servable}")
        katas.append(kata)
    return Manifest(katas=tuple(katas))


@cache
def load(path: Path = MANIFEST_PATH) -> Manifest:
    """Read the manifest (once per process)."""
    with path.open("rb") as handle:
        return parse(tomllib.load(handle))
