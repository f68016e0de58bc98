"""The audit hook (PEP 578) a grading process installs before any student code is imported.

It refuses what no kata needs and what a submission could use to forge its verdicts or
reach outside its copy: importing the grader or pytest's internals, walking the garbage
collector or other threads' frames, rewriting the code of functions it does not own,
building code from strings, spawning processes, sending signals, raising its limits,
ctypes, writing outside its work folder, reading outside the environment and its copies,
and network connections beyond the loopback. A hook cannot be removed once added.

"The student's code is the caller" means a frame running a file of the submission's work
copy is on the stack. Some operations are refused whoever calls them, because nothing
in a grading process needs them and code the submission scheduled (a thread, a callback,
an executor job) runs with none of its frames on the stack.

Each refusal raises PermissionError where it happened and is reported at once through
``report``, so catching the error does not hide it: the spec running is an error and the
submission is marked for review.
"""

from __future__ import annotations

import builtins
import ipaddress
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: Modules a kata's code never imports: the grader, pytest and its plugins, the collector, raw memory.
FORBIDDEN_MODULES = frozenset(
    {
        "dojo",
        "pytest",
        "_pytest",
        "pluggy",
        "pytest_timeout",
        "pytest_asyncio",
        "pytest_randomly",
        "hypothesis",
        "_hypothesis_pytestplugin",
        "gc",
        "ctypes",
        "_ctypes",
        "cffi",
        "_testcapi",
        "_testinternalcapi",
        "_xxsubinterpreters",
        "_posixsubprocess",
        "multiprocessing",
        "_multiprocessing",
        "pty",
    }
)
#: The public test libraries a learner's test file imports (kata 16: ``module_kind = "tests"``):
#: allowed to that file alone. Their internals (``_pytest``, ``pluggy``, the plugins' own
#: modules) and everything else above stay refused to it too.
TEST_LIBRARIES = frozenset({"pytest", "pytest_asyncio", "hypothesis"})
#: What pytest's assertion rewriting puts at the top of every test module it rewrites
#: (``import _pytest.assertion.rewrite as @pytest_ar``): allowed to a test file by that exact name.
REWRITTEN_TEST_IMPORTS = frozenset({"_pytest.assertion.rewrite"})
#: Frames of the import machinery are not the importer.
_IMPORT_MACHINERY = ("<frozen importlib", str(Path(__import__("importlib").__file__).parent))
#: Attributes that hand out frames or code: a spec's frames hold its verdict.
_FRAME_ATTRIBUTES = frozenset(
    {"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back", "gi_code", "cr_code", "ag_code"}
)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost", "0.0.0.0", "::"})  # noqa: S104 - binding, not serving
_REPORT_CAP = 50  # a submission that retries in a loop is reported this many times, then counted

Report = Callable[[str, str], None]


class Policy:
    """Who may do what in a grading process."""

    def __init__(
        self, *, code: Path, writable: list[Path], readable: list[Path], report: Report, test_files: list[Path] = ()
    ) -> None:
        self.code = str(code) + os.sep
        self.test_files = frozenset(str(path) for path in test_files)
        self.writable = tuple(str(path) + os.sep for path in writable)
        self.readable = tuple(str(path) for path in readable)
        self.report = report
        self.reported = 0
        self.local = threading.local()
        own = str(Path(__file__).resolve().parent)
        self.own = own + os.sep
        self.handlers: dict[str, Callable[[tuple[Any, ...]], str | None]] = {
            "import": self._import,
            "open": self._open,
            "os.listdir": self._read_folder,
            "os.scandir": self._read_folder,
            "os.remove": self._path_arg,
            "os.unlink": self._path_arg,
            "os.rmdir": self._path_arg,
            "os.mkdir": self._path_arg,
            "os.chmod": self._path_arg,
            "os.chown": self._path_arg,
            "os.utime": self._path_arg,
            "os.truncate": self._path_arg,
            "os.rename": self._two_paths,
            "os.link": self._two_paths,
            "os.symlink": self._two_paths,
            "shutil.copyfile": self._two_paths,
            "subprocess.Popen": lambda _a: "spawning a process",
            "os.system": lambda _a: "spawning a process (os.system)",
            "os.exec": lambda _a: "replacing the process (os.exec*)",
            "os.posix_spawn": lambda _a: "spawning a process (os.posix_spawn)",
            "os.spawn": lambda _a: "spawning a process (os.spawn*)",
            "os.fork": lambda _a: "forking the process",
            "os.forkpty": lambda _a: "forking the process",
            "os.kill": lambda a: f"sending signal {a[1]} to process {a[0]}",
            "os.killpg": lambda a: f"sending signal {a[1]} to process group {a[0]}",
            "signal.pthread_kill": lambda a: f"sending signal {a[1]} to a thread",
            "resource.setrlimit": lambda _a: "changing the process's limits",
            "resource.prlimit": lambda _a: "changing a process's limits",
            "sys._current_frames": self._direct("reading every thread's frames (sys._current_frames)"),
            "gc.get_objects": self._student_only("walking the garbage collector (gc.get_objects)"),
            "gc.get_referrers": self._student_only("walking the garbage collector (gc.get_referrers)"),
            "gc.get_referents": self._student_only("walking the garbage collector (gc.get_referents)"),
            "ctypes.dlopen": lambda _a: "loading a C library (ctypes)",
            "ctypes.dlsym": lambda _a: "reaching into a C library (ctypes)",
            "ctypes.cdata": lambda _a: "reading raw memory (ctypes)",
            "ctypes.addressof": lambda _a: "reading raw memory (ctypes)",
            "ctypes.string_at": lambda _a: "reading raw memory (ctypes)",
            "ctypes.wstring_at": lambda _a: "reading raw memory (ctypes)",
            "ctypes.cdata/buffer": lambda _a: "reading raw memory (ctypes)",
            "object.__setattr__": self._setattr,
            "socket.connect": self._connect,
            "socket.sendto": self._connect,
            "socket.sendmsg": self._connect,
            "sys._getframe": self._frames,
            "object.__getattr__": self._getattr,
            "sys.settrace": self._student_only("tracing other code (sys.settrace)"),
            "sys.setprofile": self._student_only("profiling other code (sys.setprofile)"),
            "compile": self._direct("compiling code from text (compile/exec/eval)"),
            "exec": self._direct("running code from text or a code object (exec/eval)"),
            "code.__new__": self._direct("building a code object"),
            "marshal.loads": self._direct("loading a code object (marshal)"),
            "sys.addaudithook": self._student_only("adding an audit hook"),
        }

    # ------------------------------------------------------------------ who is calling

    def _student_frame(self, frame: Any) -> Any:
        code = self.code
        while frame is not None:
            if frame.f_code.co_filename.startswith(code):
                return frame
            frame = frame.f_back
        return None

    def _first_caller(self, frame: Any, skip: tuple[str, ...] = ()) -> Any:
        """The first frame that is not this hook's module (nor one of ``skip``)."""
        own = self.own
        while frame is not None:
            name = frame.f_code.co_filename
            if not name.startswith(own) and not (skip and name.startswith(skip)):
                return frame
            frame = frame.f_back
        return None

    def _is_student(self, frame: Any) -> bool:
        return frame is not None and frame.f_code.co_filename.startswith(self.code)

    # ------------------------------------------------------------------ the rules

    def _student_only(self, what: str) -> Callable[[tuple[Any, ...]], str | None]:
        def rule(_args: tuple[Any, ...]) -> str | None:
            return what if self._student_frame(self.local.frame) is not None else None

        return rule

    def _direct(self, what: str) -> Callable[[tuple[Any, ...]], str | None]:
        def rule(_args: tuple[Any, ...]) -> str | None:
            return what if self._is_student(self._first_caller(self.local.frame)) else None

        return rule

    def _import(self, args: tuple[Any, ...]) -> str | None:
        name = str(args[0])
        if name.partition(".")[0] not in FORBIDDEN_MODULES:
            return None
        importer = self._first_caller(self.local.frame, _IMPORT_MACHINERY)
        if not self._is_student(importer):
            return None
        if importer.f_code.co_filename in self.test_files and (
            name.partition(".")[0] in TEST_LIBRARIES or name in REWRITTEN_TEST_IMPORTS
        ):
            return None  # a learner's test file imports the test libraries, as any test suite does
        return f"importing {name}"

    def _outside(self, path: object, roots: tuple[str, ...]) -> str | None:
        """The path, if it is outside ``roots`` once symbolic links are resolved."""
        if isinstance(path, int):
            return f"file descriptor {path}"
        try:
            text = os.fsdecode(os.fspath(path))  # type: ignore[arg-type]
            real = os.path.realpath(text)
        except (TypeError, ValueError, OSError):
            return repr(path)
        if any(real == root.rstrip(os.sep) or real.startswith(root) for root in roots):
            return None
        return text

    def _open(self, args: tuple[Any, ...]) -> str | None:
        path, mode, flags = [*list(args), None, None, 0][:3]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or bool((flags or 0) & _WRITE_FLAGS)
        if writing:
            if isinstance(path, int) and self._student_frame(self.local.frame) is None:
                return None  # pytest duplicates its own descriptors
            where = self._outside(path, self.writable)
            return None if where is None else f"writing outside its work folder: {where}"
        if isinstance(path, int) or self._student_frame(self.local.frame) is None:
            return None
        where = self._outside(path, self.readable)
        return None if where is None else f"reading outside its copy and the environment: {where}"

    def _read_folder(self, args: tuple[Any, ...]) -> str | None:
        if not args or args[0] is None or isinstance(args[0], int):
            return None
        if self._student_frame(self.local.frame) is None:
            return None
        where = self._outside(args[0], self.readable)
        return None if where is None else f"listing a folder outside its copy and the environment: {where}"

    def _path_arg(self, args: tuple[Any, ...]) -> str | None:
        if not args or args[0] is None:
            return None
        where = self._outside(args[0], self.writable)
        return None if where is None else f"changing a file outside its work folder: {where}"

    def _two_paths(self, args: tuple[Any, ...]) -> str | None:
        for path in args[:2]:
            if isinstance(path, (str, bytes, os.PathLike)):
                where = self._outside(path, self.writable)
                if where is not None:
                    return f"linking, moving or copying outside its work folder: {where}"
        return None

    def _setattr(self, args: tuple[Any, ...]) -> str | None:
        target, name = args[0], args[1]
        if name not in {"__code__", "__defaults__", "__kwdefaults__"}:
            return None
        code = getattr(target, "__code__", None)  # reading __code__ raises object.__getattr__: we are busy, it passes
        if code is not None and code.co_filename.startswith(self.code):
            return None  # its own function
        if not self._is_student(self._first_caller(self.local.frame)):
            return None  # namedtuple sets __defaults__, types.coroutine __code__, of what they build
        return f"rewriting the {name} of {getattr(target, '__qualname__', type(target).__name__)}"

    def _connect(self, args: tuple[Any, ...]) -> str | None:
        address = args[1] if len(args) > 1 else None
        if isinstance(address, tuple) and address and _loopback(str(address[0])):
            return None
        if isinstance(address, (str, bytes)):  # a Unix socket: only inside its work folder
            where = self._outside(address, self.writable)
            return None if where is None else f"connecting to a socket outside its work folder: {where}"
        return f"opening a network connection to {address!r}"

    def _frames(self, _args: tuple[Any, ...]) -> str | None:
        caller = self._first_caller(self.local.frame, (_INSPECT,))
        return "reading the call stack (sys._getframe)" if self._is_student(caller) else None

    def _getattr(self, args: tuple[Any, ...]) -> str | None:
        if len(args) < 2 or args[1] not in _FRAME_ATTRIBUTES:
            return None
        caller = self._first_caller(self.local.frame, (_INSPECT,))
        return f"reading {args[1]} (frames hold the grader's state)" if self._is_student(caller) else None

    # ------------------------------------------------------------------ the hook

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        rule = self.handlers.get(event)
        if rule is None:
            return
        local = self.local
        if getattr(local, "busy", False):
            return
        local.busy = True
        try:
            local.frame = sys._getframe(1)  # noqa: SLF001 - the frames are what the policy judges
            what = rule(args)
            if what is None:
                return
            student = self._student_frame(local.frame)
            where = (
                f"{student.f_code.co_filename.removeprefix(self.code)}:{student.f_lineno}"
                if student is not None
                else "code the submission scheduled (a thread, callback or job)"
            )
            self.reported += 1
            if self.reported <= _REPORT_CAP:
                self.report(what, where)
        finally:
            local.frame = None
            local.busy = False
        raise PermissionError(f"refused by the grader: {what} ({where})")


_INSPECT = str(Path(__import__("inspect").__file__))


def _loopback(host: str) -> bool:
    """This machine: a name for it, or any address of 127.0.0.0/8 and ::1."""
    if host in _LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(host.partition("%")[0]).is_loopback
    except ValueError:
        return False


def guard_imports(policy: Policy) -> None:
    """Cached modules raise no audit event when imported again: check the import statement too."""
    original = builtins.__import__

    def guarded_import(
        name: str,
        globals: dict[str, Any] | None = None,  # noqa: A002 - __import__'s own parameter names
        locals: dict[str, Any] | None = None,  # noqa: A002
        fromlist: tuple[str, ...] = (),
        level: int = 0,
    ) -> Any:
        if level == 0 and name.partition(".")[0] in FORBIDDEN_MODULES:
            policy.hook("import", (name,))
        return original(name, globals, locals, fromlist, level)

    builtins.__import__ = guarded_import


def test_files(code: Path) -> list[Path]:
    """The submission's modules that are test files (kata 16's ``my_tests.py``), as the manifest says."""
    from dojo.manifest import load

    return [code / kata.slug / name for kata in load() if kata.module_is_tests for name in kata.module_files]


def install(
    *, code: Path, writable: list[Path], readable: list[Path], report: Report, tests: list[Path] | None = None
) -> Policy:
    """Add the hook for good, and the import check (``tests``: the test-file modules; the manifest's by default)."""
    tests = test_files(code) if tests is None else tests
    policy = Policy(code=code, writable=writable, readable=readable, report=report, test_files=tests)
    sys.addaudithook(policy.hook)
    guard_imports(policy)
    return policy
