"""The sandbox around a grading process: bubblewrap, where the system has it.

Inside, the process sees the operating system's files, the Python environment and its
copy of our side, all read-only; its work copy and scratch folder are the only places it
can write. It has no network, its own process-ID namespace (it cannot see or signal
anything outside; nothing it starts outlives it) and dies with the grader. Neither the
classmates' folders, nor the output folder, nor the instructor's repository are mounted.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

MODES = ("auto", "bwrap", "none")

#: Said once, plainly, when grading runs without a sandbox.
WITHOUT = (
    "no sandbox (bubblewrap is not installed, or --sandbox=none): each submission still runs on fresh "
    "copies under an audit hook that refuses processes, signals, writes outside its work folder and "
    "network connections, but it runs as you, can read what you can read outside Python's audited calls, "
    "and native code could bypass the hook. Install bubblewrap (apt-get install bubblewrap) to grade untrusted code."
)


@cache
def bwrap() -> str | None:
    """The bubblewrap binary, if it is installed and works here (some containers forbid namespaces)."""
    binary = shutil.which("bwrap")
    if binary is None:
        return None
    probe = [binary, *_system_binds(), "--unshare-all", "--die-with-parent", "--", "/bin/true"]
    try:
        result = subprocess.run(probe, capture_output=True, timeout=10, check=False)  # noqa: S603 - a fixed probe
    except (OSError, subprocess.TimeoutExpired):
        return None
    return binary if result.returncode == 0 else None


def choose(mode: str) -> str | None:
    """The sandbox to use: ``"bwrap"`` or None; ``bwrap`` asked for and missing is an error (ValueError)."""
    if mode == "none":
        return None
    if bwrap() is not None:
        return "bwrap"
    if mode == "bwrap":
        raise ValueError("--sandbox=bwrap: bubblewrap is not installed or cannot create namespaces here")
    return None


def _system_binds() -> list[str]:
    args: list[str] = []
    for name in ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        path = Path(name)
        if path.is_symlink():
            args += ["--symlink", str(path.readlink()), name]
        elif path.is_dir():
            args += ["--ro-bind", name, name]
    return args


def wrap(command: list[str], *, readonly: list[Path], writable: list[Path], chdir: Path) -> list[str]:
    """``command`` inside bubblewrap: the system, the environment and ``readonly`` read-only, ``writable`` writable."""
    binary = bwrap()
    if binary is None:
        raise RuntimeError("bubblewrap is not available")
    environment = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    environment.add(Path(sys.executable).resolve().parent)
    args = [binary, "--tmpfs", "/tmp", *_system_binds()]  # noqa: S108 - an empty, private /tmp inside
    for path in sorted(environment | set(readonly)):
        if not str(path).startswith(("/usr/", "/etc/")):
            args += ["--ro-bind", str(path), str(path)]
    for path in writable:
        args += ["--bind", str(path), str(path)]
    args += [
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--unshare-all",  # network, PID, IPC, UTS, cgroup (and user where allowed)
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--chdir",
        str(chdir),
        "--",
        *command,
    ]
    return args
