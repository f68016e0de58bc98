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


class ConsoleJobHandler(_Console):
    """Kata 4's job handler: each job takes ``delay`` seconds and says when it starts and ends.

    Cancelled mid-job (the server shuts down), it says so, takes a moment to clean up and
    says that too, so the terminal shows whether shutdown waited for it; the jobs still
    waiting in the queue are never mentioned again.
    """

    label = "demo worker"

    async def __call__(self, job: Any) -> None:
        name = f"{getattr(job, 'id', job)} ({getattr(getattr(job, 'priority', ''), 'value', '?')})"
        self._log(f"{name} {getattr(job, 'payload', '')}: working (takes {self.delay:g} s)")
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self._log(f"{name}: interrupted by the shutdown, cleaning up; nothing will run this job again")
            await asyncio.sleep(min(self.delay, 0.5))
            self._log(f"{name}: cleaned up")
            raise
        self._log(f"{name}: done")


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
    "handler": ConsoleJobHandler,
    "process": ConsoleWorker,
}


class DemoError(Exception):
    """The factory needs something no demo collaborator provides."""


def build_app(factory: Callable[..., Any]) -> Any:
    """Call ``factory`` with a demo collaborator for each parameter it names."""
    arguments: dict[str, Any] = {}
    for name, parameter in inspect.signature(factory).parameters.items():
        if parameter.kind in {parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD}:
            continue
        if name in COLLABORATORS:
            arguments[name] = COLLABORATORS[name]()
        elif parameter.default is parameter.empty:
            known = ", ".join(sorted(COLLABORATORS))
            raise DemoError(
                f"{factory.__qualname__}() needs {name!r}, and dojo/demo.py has no demo collaborator of that "
                f"name (it has: {known}). Maintainers: add one to COLLABORATORS."
            )
    if any(p.kind is p.POSITIONAL_ONLY for p in inspect.signature(factory).parameters.values()):
        return factory(*arguments.values())
    return factory(**arguments)
