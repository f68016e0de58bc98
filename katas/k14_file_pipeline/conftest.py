"""Fixtures for kata 14: a folder of the spec's own, a guard on every write, a fake inventory.

Read them if you like; you do not need to change them.

**The folders.** Each spec gets a fresh folder (pytest's ``tmp_path``); the app's upload
folder is ``srv/uploads`` inside it, two levels down, so that a name such as
``../../etc/passwd`` that climbs out of the upload folder still lands inside the spec's
folder, where the spec finds it.

**The guard.** While a spec runs, every attempt of this process to write, create, rename
or remove a file outside the spec's folder is refused (``PermissionError``) and noted, so
that no wrong version can touch the machine's own files (``/etc/passwd`` included), and
the spec can say which path it tried. It watches Python's audit events (PEP 578), which
see every ``open`` for writing, whatever the library that makes it. Bytecode caches
(``__pycache__``), which Python writes on its own, are left alone.

**The fake inventory.** ``save(counts)`` keeps each chunk it is given, in order. It blocks,
as a real client does; a spec can *hold* it (each chunk waits until the spec lets it go,
so the spec can look at the status in between) or make it fail. Called on the event
loop's thread, it notes that instead of blocking the loop (and the spec with it).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dojo.fakes import on_event_loop_thread
from dojo.impl import kata_module
from dojo.teach import lesson
from dojo.timeline import BOUND, Timeline

pipeline = kata_module("k14_file_pipeline", "pipeline")

CHUNK_HELD = "inventory holds chunk"
CHUNK_SAVED = "inventory saved chunk"
INVENTORY_FAILED = "inventory failed"
INVENTORY_ON_LOOP = "inventory called on the event loop thread"

_WRITING = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
#: Audit events that change the file system, and which of their arguments are paths.
_CHANGES = {
    "os.mkdir": (0,),
    "os.remove": (0,),
    "os.rmdir": (0,),
    "os.rename": (0, 1),
    "os.truncate": (0,),
    "os.symlink": (1,),
    "os.link": (1,),
    "shutil.rmtree": (0,),
    "shutil.copyfile": (1,),
    "shutil.move": (1,),
}


class WriteGuard:
    """Refuses, and notes, every change to the file system outside ``root`` while it is on."""

    def __init__(self) -> None:
        self.root: Path | None = None
        self.refused: list[str] = []

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        root = self.root
        if root is None:
            return
        if event == "open":
            path, _mode, flags = args
            if isinstance(path, int) or not isinstance(flags, int) or not flags & _WRITING:
                return
            paths = [path]
        elif event in _CHANGES:
            paths = [args[index] for index in _CHANGES[event] if index < len(args)]
        else:
            return
        for path in paths:
            if isinstance(path, int) or path is None:
                continue
            text = os.fsdecode(path)
            if "__pycache__" in text:
                continue
            resolved = Path(os.path.abspath(text))  # noqa: PTH100 - no symlink lookups inside an audit hook
            if not resolved.is_relative_to(root):
                self.refused.append(f"{event} {text!r}")
                raise PermissionError(f"the spec refused a write outside its folder: {text!r}")


GUARD = WriteGuard()
sys.addaudithook(GUARD)  # once per process: an audit hook cannot be removed, only turned off


@pytest.fixture(name="guard")
def _guard(tmp_path: Path) -> Iterator[WriteGuard]:
    """The write guard, on for this spec, around its folder."""
    GUARD.refused = []
    GUARD.root = Path(os.path.abspath(tmp_path))  # noqa: PTH100 - the same spelling the hook compares
    try:
        yield GUARD
    finally:
        GUARD.root = None
    if GUARD.refused:
        pytest.fail(
            "The code tried to write outside the spec's folder, and the spec refused."
            + lesson(
                expected="every write inside the upload folder",
                got="; ".join(GUARD.refused),
                revisit="task 2: nothing the app writes may land outside its upload folder, whatever name the "
                "client sends (README: The client's name is data, not a path)",
            ),
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def _no_leaks(leak_check: None, guard: WriteGuard) -> None:
    """Every spec: nothing left open, nothing written outside its folder."""


@pytest.fixture(name="upload_dir")
def _upload_dir(tmp_path: Path) -> Path:
    """The app's upload folder, two levels down in the spec's folder."""
    folder = tmp_path / "srv" / "uploads"
    folder.mkdir(parents=True)
    return folder


class FakeInventory:
    """The inventory: keeps every chunk; ``hold()`` makes each chunk wait for ``release()``; ``broken`` fails."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.chunks: list[list[Any]] = []
        self.calls = 0
        self.broken: Exception | None = None
        self.held = False
        self._permits = threading.Semaphore(0)

    def hold(self) -> None:
        self.held = True

    def release(self) -> None:
        self._permits.release()

    def save(self, counts: list[Any]) -> None:
        self.calls += 1
        number = self.calls
        if on_event_loop_thread():
            # Blocking here would freeze the event loop, and the spec with it: say so instead.
            self.timeline.record(INVENTORY_ON_LOOP, f"chunk {number}: a blocking call made on the event loop thread")
            return
        if self.held:
            self.timeline.record(f"{CHUNK_HELD} {number}", f"{len(counts)} counts")
            if not self._permits.acquire(timeout=BOUND):
                self.timeline.record("inventory gave up", "the spec never let it go")
        if self.broken is not None:
            self.timeline.record(INVENTORY_FAILED, repr(self.broken))
            raise self.broken
        self.chunks.append(list(counts))
        self.timeline.record(CHUNK_SAVED, f"chunk {number}: {len(counts)} counts")

    def sizes(self) -> list[int]:
        return [len(chunk) for chunk in self.chunks]

    def __repr__(self) -> str:
        return f"FakeInventory(chunk sizes {self.sizes()}, {self.calls} call(s))"


@pytest.fixture(name="inventory")
def _inventory(timeline: Timeline) -> FakeInventory:
    return FakeInventory(timeline)


@pytest.fixture(name="settings")
def _settings(upload_dir: Path) -> Any:
    """Small limits for most specs: a 4096-byte body, chunks of 2 rows."""
    return pipeline.Settings(upload_dir=upload_dir, max_upload_bytes=4096, chunk_rows=2)


@pytest.fixture(name="app")
def _app(settings: Any, inventory: FakeInventory) -> Any:
    """The kata's app, wired to the spec's settings and the fake inventory."""
    return pipeline.create_app(settings=settings, inventory=inventory)
