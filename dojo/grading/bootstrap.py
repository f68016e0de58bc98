"""The trusted start of a grading process: run as a script from the process's fresh copy of our side.

    python <copy>/dojo/grading/bootstrap.py --fd N --code DIR --scratch DIR --memory MiB --warm a,b -- PYTEST-ARGS

Before any student code is imported, in this order: it reads the parent's token from
standard input (every line it reports carries it; a line without it is a forgery), moves
the report pipe to an unlisted descriptor, lowers the process's limits for good, keeps on
``sys.path`` only the standard library, the environment and its copy of our side (not the
instructor's repository), installs the audit hook (:mod:`dojo.grading.audit`), imports the
modules the katas use, then runs pytest with the recorder (:mod:`dojo.grading.recorder`).
It leaves with ``os._exit``: no exit handler the submission registered runs.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

FILE_CAP = 256 * 1024 * 1024  # the plan's FILE_CAP: this file runs before dojo is importable


def _arguments(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    split = argv.index("--")
    options = dict(zip(argv[:split:2], argv[1:split:2], strict=True))
    return options, argv[split + 1 :]


def _limits(memory_mb: int) -> list[str]:
    """Lower this process's limits for good (hard limits too); say which could not be set."""
    import resource
    import signal

    failures = []

    def lower(name: str, kind: int, value: int) -> None:
        _soft, hard = resource.getrlimit(kind)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        try:
            resource.setrlimit(kind, (value, value))
        except (ValueError, OSError) as error:
            failures.append(f"{name} not set on this system: {error}")

    if memory_mb:
        lower("the memory limit (RLIMIT_AS)", resource.RLIMIT_AS, memory_mb * 1024 * 1024)
    lower("RLIMIT_CORE", resource.RLIMIT_CORE, 0)
    lower("the file-size limit (RLIMIT_FSIZE)", resource.RLIMIT_FSIZE, FILE_CAP)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past FILE_CAP a write fails; it does not kill us
    return failures


def _emitter(fd: int, token: str):  # noqa: ANN202 - a closure; its type is Emit
    import json
    import threading

    lock = threading.Lock()

    def emit(**record: object) -> None:
        data = (json.dumps({**record, "token": token}) + "\n").encode()
        with lock:
            while data:
                try:
                    written = os.write(fd, data)
                except BrokenPipeError:
                    return
                data = data[written:]

    return emit


def main(argv: list[str]) -> None:
    """Start the grading process; see the module's docstring for the order of things."""
    options, pytest_args = _arguments(argv)
    import fcntl
    import secrets
    import threading

    token = b""
    while not token.endswith(b"\n"):  # unbuffered: nothing after the token may be read by anyone else
        byte = os.read(0, 1)
        if not byte:
            os._exit(70)
        token += byte
    parent = fcntl.fcntl(0, getattr(fcntl, "F_DUPFD_CLOEXEC", fcntl.F_DUPFD), 100 + secrets.randbelow(800))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)

    def die_with_the_parent() -> None:
        """The parent holds our standard input open while it watches us: when it is gone, so are we."""
        with contextlib.suppress(OSError):
            os.read(parent, 1)
        os._exit(70)

    threading.Thread(target=die_with_the_parent, name="kata-grade-parent", daemon=True).start()

    given = int(options["--fd"])
    fd = fcntl.fcntl(given, getattr(fcntl, "F_DUPFD_CLOEXEC", fcntl.F_DUPFD), 100 + secrets.randbelow(800))
    os.set_inheritable(fd, False)  # nothing the submission starts gets it
    os.close(given)
    emit = _emitter(fd, token.decode().strip())

    failures = _limits(int(options.get("--memory", "0")))
    copy = Path(__file__).resolve().parent.parent.parent
    code = Path(options["--code"])
    scratch = Path(options["--scratch"])
    environment = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix)}
    sys.path[:] = [str(copy)] + [
        entry for entry in sys.path if entry and any(Path(entry).resolve().is_relative_to(root) for root in environment)
    ]

    # ctypes opens the C library while it is imported, which the hook refuses whoever asks:
    # Celery's stack (billiard, through kombu) imports it, so it is imported while that is
    # still allowed. Loading another library or touching raw memory stays refused.
    import ctypes  # noqa: F401

    from dojo.grading import audit

    audit.install(
        code=code,
        writable=[code, scratch, Path(os.devnull)],
        readable=[*environment, copy, code, scratch, Path("/dev"), Path("/etc"), Path("/usr")],
        report=lambda what, where: emit(event="refused", what=what, where=where),
    )
    for failure in failures:
        emit(event="note", note=failure)
    import pytest

    from dojo.grading.recorder import Recorder

    status = pytest.main(pytest_args, plugins=[Recorder(emit, warm=options.get("--warm", ""))])
    emit(event="exit", status=int(status))
    with contextlib.suppress(Exception):  # the submission may have replaced them
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(int(status))


if __name__ == "__main__":
    main(sys.argv[1:])
