"""Nothing left behind: the threads and open files a spec started and did not end.

Katas with real components (a database, an HTTP client, a worker, an SMTP connection)
turn the ``leak_check`` fixture on for every spec, in their own ``conftest.py``::

    pytestmark = pytest.mark.leaks(revisit="task 2: ... (README: ...)")   # optional
    @pytest.fixture(autouse=True)
    def _no_leaks(leak_check: None) -> None: ...

The fixture takes a snapshot of the process's threads and file descriptors before the
spec (after the session's components started, which pytest sets up first) and fails the
spec, at teardown, with what is still open: a thread by its name, a descriptor by what it
points to (a file's path, ``socket:[…]``). Threads get a short grace to end, and, when
something still looks open, the garbage collector runs once, so only what the code
really kept open counts (a clean spec does not pay for the collection).

What is not a leak: the idle worker threads of anyio's and asyncio's thread pools (they
belong to the pool, which keeps them for a while on purpose).
"""

from __future__ import annotations

import gc
import threading
import time
from dataclasses import dataclass
from pathlib import Path

#: Thread names of pools that keep idle workers on purpose.
POOL_THREADS = ("AnyIO worker thread", "asyncio_", "ThreadPoolExecutor-")
#: How long threads started by the spec get to end after it.
GRACE = 0.5

_FD_DIR = Path("/proc/self/fd") if Path("/proc/self/fd").is_dir() else Path("/dev/fd")


@dataclass(frozen=True)
class Snapshot:
    """What the process had open at one moment."""

    threads: frozenset[int]
    fds: dict[int, str]


def _target(entry: Path) -> str | None:
    try:
        return str(entry.readlink())
    except OSError:  # closed meanwhile (the listing's own descriptor, for one)
        return None


def _open_fds() -> dict[int, str]:
    try:
        entries = list(_FD_DIR.iterdir())
    except OSError:  # no way to list descriptors here: nothing is reported
        return {}
    targets = {int(entry.name): _target(entry) for entry in entries if entry.name.isdigit()}
    return {fd: target for fd, target in targets.items() if target is not None}


def snapshot() -> Snapshot:
    """The threads alive and the descriptors open now."""
    return Snapshot(frozenset(thread.ident for thread in threading.enumerate() if thread.ident), _open_fds())


def _new_threads(before: Snapshot) -> list[threading.Thread]:
    return [
        thread
        for thread in threading.enumerate()
        if thread.ident not in before.threads and thread.is_alive() and not thread.name.startswith(POOL_THREADS)
    ]


def left_open(before: Snapshot, *, grace: float = GRACE) -> list[str]:
    """What was opened since ``before`` and is still open: one line per thread or descriptor."""
    deadline = time.monotonic() + grace
    for thread in _new_threads(before):
        thread.join(max(0.0, deadline - time.monotonic()))
    found = _still_open(before)
    if found:
        # Something looks open: it may only be waiting for the garbage collector (a cycle
        # that holds a socket). A full collection costs about 0.1 s with a web stack loaded,
        # so it is paid only here, never after a spec that left nothing behind.
        gc.collect()
        found = _still_open(before)
    return found


def _still_open(before: Snapshot) -> list[str]:
    found = [f"thread {thread.name!r} (daemon={thread.daemon}) still running" for thread in _new_threads(before)]
    found += [
        f"file descriptor {fd} still open: {target}"
        for fd, target in sorted(_open_fds().items())
        if before.fds.get(fd) != target and not target.startswith("anon_inode:")  # the event loop's own epoll/eventfd
    ]
    return found
