"""The switch: which code do the specs exercise?

One value chooses it, ``--impl`` on the pytest command line or ``KATA_IMPL`` in the
environment:

``katas`` (the default)
    the learner's code in ``katas/``;
``solutions``
    the reference implementations in ``solutions/``;
``shipped``
    the stubs exactly as the repository shipped them, recovered from git's objects
    even after a learner has edited (and committed) their own;
``mutant:SLUG/NAME``
    the solution of one kata with one deliberate mistake from
    ``tests/mutants/SLUG/NAME.toml`` applied;
any other value
    a folder holding a submission: a clone of this repository or just its ``katas/``
    folder. Only its kata modules are used, never its specs or settings.

Specs never import ``katas.`` or ``solutions.``: they ask :func:`kata_module` for a
module by name and get it from whichever code the switch chose.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import types
from dataclasses import dataclass, field
from pathlib import Path

from dojo import manifest as _manifest
from dojo.manifest import REPO_ROOT, git_blob_id, tomllib

ENV_VAR = "KATA_IMPL"
DEFAULT = "katas"


class ImplError(Exception):
    """The switch names code that cannot be used; the message says why."""


@dataclass
class Implementation:
    """A folder holding one sub-folder per kata, each with the kata's modules."""

    spec: str
    label: str
    root: Path
    _temporary: list[Path] = field(default_factory=list, repr=False)

    def kata_dir(self, slug: str) -> Path:
        return self.root / slug

    def close(self) -> None:
        """Remove what was materialized for this implementation (mutants, shipped stubs)."""
        for folder in self._temporary:
            shutil.rmtree(folder, ignore_errors=True)
        self._temporary.clear()


# --------------------------------------------------------------------------- mutants


@dataclass(frozen=True)
class Replacement:
    """Replace ``old`` (which must stand once) with ``new`` in ``file``."""

    file: str
    old: str
    new: str


@dataclass(frozen=True)
class Mutant:
    """A wrong version of a kata: its solution with one mistake applied."""

    slug: str
    name: str
    description: str
    replacements: tuple[Replacement, ...]
    path: Path
    task: int | None = None  # the README task whose spec must be the first to reject it

    @property
    def spec(self) -> str:
        return f"mutant:{self.slug}/{self.name}"

    def apply(self, folder: Path) -> None:
        """Apply the mistake to a copy of the solution in ``folder``.

        Each ``old`` text must stand exactly once in its file, so a mutant that no longer
        matches the solution fails loudly instead of silently testing the solution.
        """
        for number, replacement in enumerate(self.replacements, start=1):
            target = folder / replacement.file
            if not target.is_file():
                raise ImplError(f"{self.path}: replacement {number} names {replacement.file}, which the solution lacks")
            text = target.read_text(encoding="utf-8")
            count = text.count(replacement.old)
            if count != 1:
                raise ImplError(
                    f"{self.path}: replacement {number} expects its 'old' text once in "
                    f"{replacement.file}, found it {count} times; update the mutant to the solution"
                )
            target.write_text(text.replace(replacement.old, replacement.new), encoding="utf-8")


def load_mutant(path: Path) -> Mutant:
    """Read one mutant file: a description and its ``[[replace]]`` entries."""
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    try:
        replacements = tuple(Replacement(str(r["file"]), str(r["old"]), str(r["new"])) for r in data["replace"])
        description = str(data["description"]).strip()
    except (KeyError, TypeError) as error:
        raise ImplError(f"{path}: a mutant needs 'description' and [[replace]] entries with file, old, new") from error
    if not replacements:
        raise ImplError(f"{path}: a mutant needs at least one [[replace]] entry")
    task = data.get("task")
    if task is not None and (type(task) is not int or task < 1):
        raise ImplError(f"{path}: 'task' is the number of the README task that teaches this mistake")
    return Mutant(
        slug=path.parent.name,
        name=path.stem,
        description=description,
        replacements=replacements,
        path=path,
        task=task,
    )


def mutants(slug: str) -> list[Mutant]:
    """Every mutant kept for one kata, by name."""
    folder = _manifest.MUTANTS_DIR / slug
    return [load_mutant(path) for path in sorted(folder.glob("*.toml"))]


# --------------------------------------------------------------------------- shipped stubs


def shipped_source(kata: _manifest.Kata, file_name: str) -> bytes:
    """The stub file as the repository shipped it, whatever the learner did since.

    The manifest keeps the git blob id of each stub. The working-tree file is used when
    it still has that id; otherwise git's object store has it (a learner's commits do not
    remove it), and no network is needed.
    """
    blob = kata.shipped.get(file_name)
    if blob is None:
        raise ImplError(f"the manifest records no shipped version of {kata.slug}/{file_name}")
    working = kata.folder / file_name
    if working.is_file():
        content = working.read_bytes()
        if git_blob_id(content) == blob:
            return content.replace(b"\r\n", b"\n")
    try:
        result = subprocess.run(  # noqa: S603 - a fixed git command, no shell
            ["git", "cat-file", "blob", blob],  # noqa: S607 - git from PATH is the point
            cwd=REPO_ROOT,
            capture_output=True,
            check=False,
        )
    except FileNotFoundError as error:
        raise ImplError(f"{kata.slug}/{file_name} was edited and git is not installed to recover it") from error
    if result.returncode != 0:
        raise ImplError(
            f"{kata.slug}/{file_name} was edited and git has no object {blob[:12]} to recover the shipped "
            f"version from ({result.stderr.decode(errors='replace').strip()})"
        )
    return result.stdout


# --------------------------------------------------------------------------- resolving the switch


def _materialize(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"kata-{prefix}-"))


def resolve(spec: str | None, *, cwd: Path | None = None) -> Implementation:
    """Turn the switch's value into a folder of kata code."""
    spec = (spec or DEFAULT).strip()
    if spec == "katas":
        return Implementation(spec, "katas/ (your code)", _manifest.KATAS_DIR)
    if spec == "solutions":
        return Implementation(spec, "solutions/ (the reference solutions)", _manifest.SOLUTIONS_DIR)
    if spec == "shipped":
        return _shipped()
    if spec.startswith("mutant:"):
        return _mutant(spec)
    return _submission(spec, cwd)


def _shipped() -> Implementation:
    spec = "shipped"
    root = _materialize("shipped")
    impl = Implementation(spec, "the stubs as shipped", root, [root])
    try:
        for kata in _manifest.load():
            (root / kata.slug).mkdir()
            for file_name in kata.module_files:
                (root / kata.slug / file_name).write_bytes(shipped_source(kata, file_name))
    except Exception:
        impl.close()
        raise
    return impl


def _mutant(spec: str) -> Implementation:
    slug, _, name = spec.removeprefix("mutant:").partition("/")
    path = _manifest.MUTANTS_DIR / slug / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(m.spec for m in mutants(slug)) if (_manifest.MUTANTS_DIR / slug).is_dir() else "none"
        raise ImplError(f"no mutant {spec!r} (looked for {path}); known for {slug!r}: {known}")
    mutant = load_mutant(path)
    root = _materialize("mutant")
    impl = Implementation(spec, f"mutant {slug}/{name}: {mutant.description.splitlines()[0]}", root, [root])
    try:
        shutil.copytree(
            _manifest.SOLUTIONS_DIR / slug,
            root / slug,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        mutant.apply(root / slug)
    except Exception:
        impl.close()
        raise
    return impl


def _submission(spec: str, cwd: Path | None) -> Implementation:
    folder = Path(spec).expanduser()
    if not folder.is_absolute():
        folder = (cwd or Path.cwd()) / folder
    if not folder.is_dir():
        raise ImplError(f"--impl={spec!r}: not katas, solutions, shipped, mutant:SLUG/NAME, nor an existing folder")
    folder = folder.resolve()
    root = folder / "katas" if (folder / "katas").is_dir() else folder
    return Implementation(spec, f"submission {root}", root)


# --------------------------------------------------------------------------- importing kata code


def import_kata_module(root: Path, slug: str, module: str) -> types.ModuleType:
    """Import ``module`` of kata ``slug`` from ``root/slug``, fresh.

    The kata folder becomes a package named after the slug, so a kata's modules can
    import each other (``from .store import Store``) and tracebacks point at the real
    file the learner edits.
    """
    folder = root / slug
    if not (folder / f"{module}.py").is_file():
        raise ModuleNotFoundError(f"{folder / (module + '.py')} does not exist", name=f"{slug}.{module}")
    package = sys.modules.get(slug)
    if package is None or list(getattr(package, "__path__", [])) != [str(folder)]:
        for name in [name for name in sys.modules if name == slug or name.startswith(slug + ".")]:
            del sys.modules[name]
        spec = importlib.machinery.ModuleSpec(slug, None, is_package=True)
        spec.submodule_search_locations = [str(folder)]
        package = importlib.util.module_from_spec(spec)
        sys.modules[slug] = package
    # The learner's bytecode is never written: Python trusts a ``.pyc`` whose source has the
    # same size and mtime to the second, so one written now could shadow a save later in the
    # same second. Our side (the stack, the specs pytest rewrote) is cached as usual.
    writes, sys.dont_write_bytecode = sys.dont_write_bytecode, True
    try:
        return importlib.import_module(f"{slug}.{module}")
    finally:
        sys.dont_write_bytecode = writes


_ACTIVE: list[Implementation] = []


def push(impl: Implementation) -> None:
    """Make ``impl`` the code that :func:`kata_module` serves (pytest_configure does this)."""
    _ACTIVE.append(impl)


def pop(impl: Implementation) -> None:
    """Stop serving ``impl`` (pytest_unconfigure does this) and remove what it materialized."""
    if impl in _ACTIVE:
        _ACTIVE.remove(impl)
    impl.close()


def depth() -> int:
    """How many implementations are served now: :func:`close_above` takes it back."""
    return len(_ACTIVE)


def close_above(level: int) -> None:
    """Remove what the implementations pushed above ``level`` materialized.

    For a forked child that leaves with ``os._exit``: pytest_unconfigure never runs
    there, and the folders a mutant or the shipped stubs were written to would stay.
    What the parent pushed before the fork is the parent's: it is left alone.
    """
    for impl in _ACTIVE[level:]:
        impl.close()


def active() -> Implementation:
    """The code the specs exercise right now (the default switch outside pytest)."""
    if not _ACTIVE:
        _ACTIVE.append(resolve(None))
    return _ACTIVE[-1]


class KataModule(types.ModuleType):
    """A kata module, imported from the chosen code on first use.

    A spec writes ``notifications = kata_module("k01_fire_and_forget", "notifications")``
    at the top. Nothing is imported while pytest collects, so a learner's syntax error or
    missing function fails each spec with a message, instead of breaking collection.
    """

    def __init__(self, slug: str, module: str) -> None:
        super().__init__(f"{slug}.{module}")
        self._slug = slug
        self._module = module
        self._loaded: tuple[Path, types.ModuleType] | None = None

    def _load(self) -> types.ModuleType:
        impl = active()
        cached = self._loaded
        if cached is not None and cached[0] == impl.root and sys.modules.get(self.__name__) is cached[1]:
            return cached[1]
        module = import_kata_module(impl.root, self._slug, self._module)
        self._loaded = (impl.root, module)
        return module

    def __getattr__(self, name: str) -> object:
        # Specs use the public names only. Tools probe module-level objects for private ones
        # while collecting (pytest 9 looks up ``_mock_name`` on each): such a probe must not
        # import the learner's code, which may hang or exit, before a spec runs.
        if name.startswith("_"):
            raise AttributeError(name)
        from dojo.teach import missing_name, unimportable

        __tracebackhide__ = True
        try:
            module = self._load()
        except Exception as error:  # noqa: BLE001 - the learner's code may raise anything while importing
            unimportable(self._slug, self._module, active(), error)
        try:
            return getattr(module, name)
        except AttributeError:
            missing_name(self._slug, self._module, name, module)


def kata_module(slug: str, module: str) -> KataModule:
    """The kata module a spec exercises, from whichever code the switch chose."""
    return KataModule(slug, module)
