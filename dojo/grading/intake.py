"""Reading a submission: only regular files inside it, once, and what they try to do.

Symbolic links, and any path that leaves the submission's folder, are refused with a
note: a module linked to a classmate's file, to our solutions or to any file the
instructor can read is never read, graded or quoted. What is read is kept in memory and
is exactly what every grading process of the submission gets.

A static scan of the modules flags, before anything runs, what the audit hook refuses at
run time (:mod:`dojo.grading.audit`): such a submission is marked for review.
"""

from __future__ import annotations

import ast
import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dojo.grading.audit import FORBIDDEN_MODULES, TEST_LIBRARIES
from dojo.grading.plan import MODULE_CAP, Plan, Submission, same_text
from dojo.manifest import Kata


@dataclass
class Intake:
    """One submission as read: its modules' bytes, per kata what we saw, and the scan's flags."""

    modules: dict[str, dict[str, bytes]] = field(default_factory=dict)
    katas: dict[str, dict[str, Any]] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)


def _inside(submission: Submission, path: Path) -> str | None:  # noqa: PLR0911 - one reason each
    """Why ``path`` may not be read (a link on the way, not a regular file, too big), or None."""
    try:
        relative = path.relative_to(submission.path)
    except ValueError:
        return "outside the submission"
    current = submission.path
    for part in relative.parts:
        current = current / part
        try:
            info = current.lstat()
        except FileNotFoundError:
            return "absent"
        except OSError as error:
            return f"unreadable ({error.strerror})"
        if stat.S_ISLNK(info.st_mode):
            target = current.readlink()
            return f"a symbolic link (to {target}): refused, not followed"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if info.st_size > MODULE_CAP:
        return f"bigger than {MODULE_CAP // 1024} KiB"
    return None


def read_file(submission: Submission, path: Path) -> tuple[bytes | None, str | None]:
    """The file's bytes, read without following a link; or None and why not."""
    why = _inside(submission, path)
    if why is not None:
        return None, why
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError as error:
        return None, f"unreadable ({error.strerror})"
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            return None, "not a regular file"
        return handle.read(MODULE_CAP + 1)[:MODULE_CAP], None


def inspect_kata(  # noqa: C901 - each kind of file in the folder
    submission: Submission, kata: Kata, ours: dict[str, bytes]
) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The kata's module files (read safely) and what else the submission's kata folder holds."""
    source = submission.root / kata.slug
    modules: dict[str, bytes] = {}
    missing, refused = [], []
    for name in kata.module_files:
        content, why = read_file(submission, source / name)
        if content is not None:
            modules[name] = content
        elif why == "absent":
            missing.append(name)
        else:
            refused.append(f"{name}: {why}")
    spec_file = "absent"
    theirs, why = read_file(submission, source / kata.spec)
    if theirs is not None:
        spec_file = "unchanged" if same_text(theirs, ours[f"katas/{kata.slug}/{kata.spec}"]) else "modified"
    elif why != "absent":
        spec_file = "refused"
        refused.append(f"{kata.spec}: {why}")
    # Files we ship in the kata folder (README.md, a kata's own conftest.py) are ours when
    # unchanged, and are never used from a submission; a changed one is worth a note.
    ignored, modified = [], []
    folder_ok = _inside(submission, source) in {None, "not a regular file"}
    entries = sorted(source.iterdir()) if folder_ok and source.is_dir() else []
    for path in entries:
        if path.name in {*kata.module_files, kata.spec, "__pycache__"}:
            continue
        shipped = ours.get(f"katas/{kata.slug}/{path.name}")
        if shipped is None:
            ignored.append(path.name)
            continue
        content, _why = read_file(submission, path)
        if content is None or not same_text(content, shipped):
            modified.append(path.name)
    if not folder_ok and (submission.root / kata.slug).is_symlink():
        refused.append(f"the folder {kata.slug}: a symbolic link (to {source.readlink()}): refused, not followed")
    info = {
        "spec_file": spec_file,
        "missing_modules": missing,
        "refused_files": refused,
        "ignored_files": ignored,
        "modified_files": modified,
    }
    return modules, info


def read_submission(submission: Submission, plan: Plan) -> Intake:
    """Everything grading uses of a submission, read once, before anything runs."""
    intake = Intake()
    for kata in plan.katas:
        modules, info = inspect_kata(submission, kata, plan.files)
        info["as_shipped"] = plan.left_as_shipped(kata.slug, modules)
        intake.modules[kata.slug] = modules
        intake.katas[kata.slug] = info
        for name, content in modules.items():
            flags = scan(content, test_file=kata.module_is_tests)
            intake.flags.extend(f"{kata.slug}/{name}: {flag}" for flag in flags)
    return intake


def fingerprint(intake: Intake, plan: Plan) -> str:
    """A hash of everything the grade depends on: our side, the limits, and what was read from the submission."""
    hasher = hashlib.sha256(plan.grader.encode())
    for slug in sorted(intake.modules):
        for name, content in sorted(intake.modules[slug].items()):
            hasher.update(f"{slug}/{name}\0{len(content)}\0".encode() + content)
        hasher.update(repr(sorted(intake.katas[slug].items())).encode())
    return hasher.hexdigest()


# --------------------------------------------------------------------------- the static scan

#: Names a kata's code has no use for: reaching into the grader, the interpreter or the system.
_SUSPECT_NAMES = {
    "__import__": "calls __import__",
    "importlib": "uses importlib",
    "builtins": "touches builtins",
    "__builtins__": "touches __builtins__",
    "exec": "calls exec",
    "eval": "calls eval",
    "compile": "calls compile",
    "breakpoint": "calls breakpoint",
}
_SUSPECT_ATTRIBUTES = {
    "modules": "reads sys.modules",
    "_getframe": "reads the call stack (sys._getframe)",
    "_current_frames": "reads every thread's frames",
    "currentframe": "reads the call stack (inspect.currentframe)",
    "stack": None,  # inspect.stack: only with inspect, below
    "f_back": "walks frames (f_back)",
    "f_locals": "reads another frame's variables (f_locals)",
    "f_globals": "reads another frame's globals (f_globals)",
    "tb_frame": "reads frames from a traceback",
    "__code__": "touches a function's __code__",
    "__globals__": "reads a function's __globals__",
    "__closure__": "reads a function's __closure__",
    "__subclasses__": "walks classes (__subclasses__)",
    "get_objects": "walks the garbage collector",
    "get_referrers": "walks the garbage collector",
    "addaudithook": "adds an audit hook",
    "settrace": "sets a trace function",
    "setprofile": "sets a profile function",
    "system": None,
    "popen": "spawns a process (popen)",
    "fork": "forks the process",
    "kill": "sends a signal",
    "killpg": "sends a signal",
    "setsid": "leaves its session (setsid)",
    "setrlimit": "changes its limits",
    "pluginmanager": "reaches pytest's plugin manager",
}
_SUSPECT_MODULES = FORBIDDEN_MODULES | {
    "subprocess",
    "signal",
    "socket",
    "marshal",
    "inspect",
    "sys",
    "os",
    "importlib",
}
_HARMLESS_FROM = {"os": {"environ", "getenv", "path", "sep", "linesep"}, "sys": {"stdout", "stderr", "version_info"}}


def scan(content: bytes, *, test_file: bool = False) -> list[str]:  # noqa: C901, PLR0912 - one branch per kind of node
    """What the module's text shows it tries (empty for ordinary kata code).

    A test-file module (``test_file``, kata 16) may import the public test libraries, as the hook allows it.
    """
    allowed = TEST_LIBRARIES if test_file else frozenset()
    try:
        tree = ast.parse(content)
    except (SyntaxError, ValueError):
        return []  # it will not import either: the specs say so
    flags: list[str] = []

    def flag(text: str, node: ast.AST) -> None:
        entry = f"{text} (line {getattr(node, 'lineno', '?')})"
        if entry not in flags and len(flags) < 20:
            flags.append(entry)

    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.partition(".")[0]
                imported.add(top)
                if top in allowed:
                    continue
                if top in FORBIDDEN_MODULES or top in {"subprocess", "signal", "marshal", "socket"}:
                    flag(f"imports {alias.name}", node)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            top = node.module.partition(".")[0]
            imported.add(top)
            names = {alias.name for alias in node.names}
            if top in allowed:
                continue
            if top in FORBIDDEN_MODULES or top in {"subprocess", "signal", "marshal", "socket"}:
                flag(f"imports from {node.module}", node)
            elif top in _HARMLESS_FROM and not names <= _HARMLESS_FROM[top]:
                flag(f"imports {', '.join(sorted(names - _HARMLESS_FROM[top]))} from {node.module}", node)
        elif isinstance(node, ast.Name) and node.id in _SUSPECT_NAMES:
            flag(_SUSPECT_NAMES[node.id], node)
        elif isinstance(node, ast.Attribute):
            what = _SUSPECT_ATTRIBUTES.get(node.attr)
            owner = node.value.id if isinstance(node.value, ast.Name) else None
            if node.attr == "system" and owner == "os":
                what = "spawns a process (os.system)"
            elif node.attr == "stack" and owner == "inspect":
                what = "reads the call stack (inspect.stack)"
            elif node.attr.startswith(("exec", "spawn", "posix_spawn")) and owner == "os":
                what = f"spawns a process (os.{node.attr})"
            if what is not None:
                flag(what, node)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            lowered = node.value.lower()
            if any(word in lowered for word in ("/proc/", "conftest.py", "results.json", "gradebook", ".pth")):
                flag(f"names {node.value[:60]!r}", node)
    return flags
