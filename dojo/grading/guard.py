"""The instructor's side, watched: our repository's grading files and the Python environment.

Taken when grading begins and checked before each submission starts and again before its
results are written. A change means code reached out of its sandbox or past the audit
hook: the run stops before any later grade is written, our files are put back from the
snapshot, and the changes are named (an environment changed is for the instructor to
reinstall: ``uv sync --reinstall``).
"""

from __future__ import annotations

import hashlib
import os
import site
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from dojo.manifest import REPO_ROOT, SOLUTIONS_DIR, Kata

_HASHED_SUFFIXES = (".pth",)
_HASHED_NAMES = ("sitecustomize.py", "usercustomize.py")


def _environment_folders() -> list[Path]:
    folders = {Path(path) for path in site.getsitepackages()}  # the environment's site-packages
    paths = sysconfig.get_paths()
    folders.update(Path(paths[key]) for key in ("stdlib", "platstdlib", "purelib", "platlib") if key in paths)
    return sorted({folder.resolve() for folder in folders if folder.is_dir()})


#: Not importable by a grading process (its sys.path keeps the environment's own site-packages), or never imported.
_SKIPPED = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "lib2to3", "ensurepip", "__phello__"}


def _signature(folders: list[Path]) -> dict[str, tuple[int, int, int, str]]:
    """Every file of the environment by size, time and mode; .pth files and *customize.py by content too."""
    seen: dict[str, tuple[int, int, int, str]] = {}
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            if dirpath == str(folder) and folder.name != "site-packages":
                dirnames[:] = [name for name in dirnames if name not in _SKIPPED]
            for name in (*filenames, *dirnames):
                path = os.path.join(dirpath, name)  # noqa: PTH118 - os.walk speaks strings; this runs per file
                try:
                    info = os.lstat(path)
                except OSError:
                    continue
                content = ""
                if name.endswith(_HASHED_SUFFIXES) or name in _HASHED_NAMES:
                    try:
                        content = hashlib.sha256(Path(path).read_bytes()).hexdigest()
                    except OSError:
                        content = "unreadable"
                seen[path] = (info.st_size, info.st_mtime_ns, info.st_mode, content)
    return seen


def _tree(katas: tuple[Kata, ...]) -> dict[Path, bytes]:
    paths = [REPO_ROOT / "conftest.py", REPO_ROOT / "pyproject.toml", *sorted((REPO_ROOT / "dojo").rglob("*"))]
    for kata in katas:
        paths.extend(path for path in sorted(kata.folder.iterdir()) if path.name not in kata.module_files)
    if SOLUTIONS_DIR.is_dir():
        paths.extend(sorted(SOLUTIONS_DIR.rglob("*")))
    return {path: path.read_bytes() for path in paths if path.is_file() and "__pycache__" not in path.parts}


@dataclass
class Snapshot:
    """Our files' bytes and the environment's signature, as they were when grading began."""

    tree: dict[Path, bytes]
    folders: list[Path]
    environment: dict[str, tuple[int, int, int, str]]

    @classmethod
    def take(cls, katas: tuple[Kata, ...]) -> Snapshot:
        folders = _environment_folders()
        return cls(_tree(katas), folders, _signature(folders))

    def changes(self) -> list[str]:
        """What differs now, by path (ours relative to the repository)."""
        changed = [str(path.relative_to(REPO_ROOT)) for path, content in self.tree.items() if _differs(path, content)]
        now = _signature(self.folders)
        changed.extend(
            f"{path} (changed)" for path, sig in now.items() if self.environment.get(path) not in {None, sig}
        )
        changed.extend(f"{path} (added)" for path in now.keys() - self.environment.keys())
        changed.extend(f"{path} (removed)" for path in self.environment.keys() - now.keys())
        return sorted(changed)

    def restore(self) -> list[str]:
        """Put back our files that changed or vanished; name them."""
        restored = []
        for path, content in self.tree.items():
            if _differs(path, content):
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content)
                restored.append(str(path.relative_to(REPO_ROOT)))
        return restored


def _differs(path: Path, content: bytes) -> bool:
    """Whether the file at ``path`` no longer holds ``content`` (a file gone differs too)."""
    try:
        return path.read_bytes() != content
    except OSError:
        return True
