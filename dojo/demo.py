"""Demo collaborators for ``kata serve``: the real-world twins of :mod:`dojo.fakes`.

A kata's app takes its collaborators as parameters (kata 1: ``create_app(mailer)``).
``kata serve`` calls the factory the manifest names (``serve = "module:factory"``) with,
for each parameter, the demo collaborator of the same name from :data:`COLLABORATORS`:
a mailer that "sends" by printing to the console after a real delay, a real clock, a
real sleep. Parameters with a default and no demo keep their default.

A new kata whose factory needs another collaborator adds a builder here, under the
parameter's name; nothing in the command line changes.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

DELAY_VAR = "KATA_DEMO_DELAY"  # seconds a demo collaborator takes per slow call (default 2)


class _Console:
    """A slow demo collaborator: waits ``delay`` real seconds per call and says so."""

    label = "demo"

    def __init__(self, delay: float | None = None, out: TextIO | None = None) -> None:
        self.delay = delay if delay is not None else float(os.environ.get(DELAY_VAR, "2"))
        self.out = out or sys.stdout
        self._lock = threading.Lock()

    def _log(self, text: str) -> None:
        with self._lock:
            stamp = datetime.now(timezone.utc).strftime("%H:%M:%S.%f")[:-3]
            self.out.write(f"[{self.label} {stamp}] {text}\n")
            self.out.flush()


class ConsoleMailer(_Console):
    """A mail server that takes ``delay`` seconds per email, then prints it to the console.

    The delay is real (``KATA_DEMO_DELAY`` seconds, 2 by default): call the API from its
    docs page and watch the response come back at once while the email is "sent" seconds
    later, in this terminal.
    """

    label = "demo mailer"

    def __init__(self, delay: float | None = None, out: TextIO | None = None) -> None:
        super().__init__(delay, out)
        self.sent = 0

    def send(self, to: str, subject: str, body: str) -> None:
        """Deliver one email, blocking for ``delay`` seconds like a slow SMTP server."""
        self._log(f"sending to {to}: {subject!r} (takes {self.delay:g} s)")
        time.sleep(self.delay)
        self.sent += 1
        self._log(f"sent to {to}: {subject!r}\n    {body}")

    async def asend(self, to: str, subject: str, body: str) -> None:
        """Deliver one email without blocking the event loop."""
        self._log(f"sending to {to}: {subject!r} (takes {self.delay:g} s)")
        await asyncio.sleep(self.delay)
        self.sent += 1
        self._log(f"sent to {to}: {subject!r}\n    {body}")


class ThreadWatchingMailer(ConsoleMailer):
    """Kata 1's demo mailer: a :class:`ConsoleMailer` that also says where each send runs.

    Each email gets a number; the console shows when it starts and ends, how many sends are
    in progress at that moment (the thread pool runs at most 40 at once), and whether it runs
    in a worker thread or, blocking everything, on the event loop's own thread.
    """

    def __init__(self, delay: float | None = None, out: TextIO | None = None) -> None:
        super().__init__(delay, out)
        self._count_lock = threading.Lock()
        self._started = 0
        self._in_progress = 0

    def send(self, to: str, subject: str, body: str) -> None:
        """Deliver one email, blocking for ``delay`` seconds, and say where and alongside how many."""
        with self._count_lock:
            self._started += 1
            self._in_progress += 1
            number, in_progress = self._started, self._in_progress
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            where = f"in {threading.current_thread().name}"
        else:
            where = "ON THE EVENT LOOP THREAD: no other request is served until it returns"
        self._log(f"email #{number} to {to}: sending, {in_progress} in progress ({where}; takes {self.delay:g} s)")
        try:
            time.sleep(self.delay)
        finally:
            with self._count_lock:
                self._in_progress -= 1
        self.sent += 1
        self._log(f"email #{number} to {to}: sent {subject!r}\n    {body[:200]}")


class ConsoleProfiles(_Console):
    """A profile store that prints each profile it creates (kata 2)."""

    label = "demo profiles"

    def create(self, user_id: int, email: str) -> None:
        time.sleep(self.delay)
        self._log(f"created the profile of user {user_id} <{email}>")


class ConsoleAnalytics(_Console):
    """An analytics sink that prints each record (kata 2)."""

    label = "demo analytics"

    def record(self, event: str, user_id: int, ip_address: str) -> None:
        self._log(f"{event}: user {user_id} from {ip_address}")


class SlowGateway(_Console):
    """A payment gateway that approves every charge after ``delay`` seconds (kata 3)."""

    label = "demo gateway"

    def __init__(self, delay: float | None = None, out: TextIO | None = None) -> None:
        super().__init__(delay, out)
        self.charges = 0

    async def charge(self, payment_id: str, amount_cents: int) -> str:
        self._log(f"charging {payment_id}: {amount_cents} cents (takes {self.delay:g} s)")
        await asyncio.sleep(self.delay)
        self.charges += 1
        self._log(f"approved {payment_id}: receipt-{self.charges}")
        return f"receipt-{self.charges}"


class ConsoleWorker(_Console):
    """A job handler or work step that takes ``delay`` seconds and prints what it did (katas 4, 5)."""

    label = "demo worker"

    async def __call__(self, item: object) -> None:
        self._log(f"working on {item!r} (takes {self.delay:g} s)")
        await asyncio.sleep(self.delay)
        self._log(f"done with {item!r}")


class RealClock:
    """The clock of the machine, with the interface of :class:`dojo.fakes.FakeClock`."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class RealSleep:
    """A real sleep, with the interface of :class:`dojo.fakes.FakeSleep`."""

    async def __call__(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def sync(self, seconds: float) -> None:
        time.sleep(seconds)


#: Parameter name -> a builder of its demo collaborator.
COLLABORATORS: dict[str, Callable[[], Any]] = {
    "mailer": ConsoleMailer,
    "clock": RealClock,
    "sleep": RealSleep,
    "profiles": ConsoleProfiles,
    "analytics": ConsoleAnalytics,
    "gateway": SlowGateway,
    "rng": lambda: random.random,
    "handler": ConsoleWorker,
    "process": ConsoleWorker,
}


#: Kata slug -> parameter name -> a builder of that kata's own demo collaborator. A kata whose
#: experiments need more than the shared demo shows adds one here, leaving the shared one as it is.
KATA_COLLABORATORS: dict[str, dict[str, Callable[[], Any]]] = {
    "k01_fire_and_forget": {"mailer": ThreadWatchingMailer},
}


class DemoError(Exception):
    """The factory needs something no demo collaborator provides."""


def _kata_of(factory: Callable[..., Any]) -> str:
    """The slug of the kata whose module defines ``factory``: the name of the module's folder."""
    try:
        return Path(inspect.getfile(factory)).parent.name
    except TypeError:  # a builtin or a C extension: no file, no kata
        return ""


def build_app(factory: Callable[..., Any]) -> Any:
    """Call ``factory`` with a demo collaborator for each parameter it names."""
    arguments: dict[str, Any] = {}
    builders = {**COLLABORATORS, **KATA_COLLABORATORS.get(_kata_of(factory), {})}
    for name, parameter in inspect.signature(factory).parameters.items():
        if parameter.kind in {parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD}:
            continue
        if name in builders:
            arguments[name] = builders[name]()
        elif parameter.default is parameter.empty:
            known = ", ".join(sorted(COLLABORATORS))
            raise DemoError(
                f"{factory.__qualname__}() needs {name!r}, and dojo/demo.py has no demo collaborator of that "
                f"name (it has: {known}). Maintainers: add one to COLLABORATORS."
            )
    if any(p.kind is p.POSITIONAL_ONLY for p in inspect.signature(factory).parameters.values()):
        return factory(*arguments.values())
    return factory(**arguments)
