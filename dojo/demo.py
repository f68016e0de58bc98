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
import re
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


class ScriptedGateway(_Console):
    """Kata 3's demo gateway: the payment id says how the charges of that payment go.

    - an id with ``fail`` and a number (``pay_fail2``): its first N charges time out, then
      the next one is approved (``fail9`` outlasts the default three attempts);
    - an id with ``decline`` (``pay_decline``): every charge is declined;
    - any other id: approved.

    Each charge takes ``delay`` seconds (``KATA_DEMO_DELAY``) and prints what happened, with
    a timestamp, so the waits between the charges of one payment show in the terminal. The
    errors raised are the kata's own ``TransientGatewayError`` and ``PaymentDeclinedError``,
    taken from the module ``kata serve`` imported.
    """

    label = "demo gateway"
    FAILURES = re.compile(r"fail(\d+)")

    def __init__(self, delay: float | None = None, out: TextIO | None = None) -> None:
        super().__init__(delay, out)
        self.charges: dict[str, int] = {}

    async def charge(self, payment_id: str, amount_cents: int) -> str:
        number = self.charges[payment_id] = self.charges.get(payment_id, 0) + 1
        self._log(f"charge {number} of {payment_id}: {amount_cents} cents (takes {self.delay:g} s)")
        await asyncio.sleep(self.delay)
        scripted = self.FAILURES.search(payment_id)
        if "decline" in payment_id:
            self._log(f"charge {number} of {payment_id}: DECLINED")
            raise _kata_error("PaymentDeclinedError")("card declined (demo: the id says decline)")
        if scripted and number <= int(scripted.group(1)):
            self._log(f"charge {number} of {payment_id}: TIMED OUT ({number} of {scripted.group(1)} scripted failures)")
            raise _kata_error("TransientGatewayError")(
                f"gateway timed out (demo: failure {number} of {scripted.group(1)})"
            )
        self._log(f"charge {number} of {payment_id}: approved, receipt-{payment_id}-{number}")
        return f"receipt-{payment_id}-{number}"


def _kata_error(name: str) -> type[Exception]:
    """Kata 3's exception class ``name``, from the module ``kata serve`` imported (a plain one if absent)."""
    error = getattr(sys.modules.get("k03_retry.payments"), name, None)
    if isinstance(error, type) and issubclass(error, Exception):
        return error
    return type(name, (Exception,), {})


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


class ConsoleSleep(RealSleep):
    """A real sleep that says how long it waits (kata 3's backoff: watch the waits grow)."""

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout

    async def __call__(self, seconds: float) -> None:
        stamp = datetime.now(timezone.utc).strftime("%H:%M:%S.%f")[:-3]
        self.out.write(f"[demo sleep {stamp}] waiting {seconds:.3f} s\n")
        self.out.flush()
        await asyncio.sleep(seconds)


#: Parameter name -> a builder of its demo collaborator.
COLLABORATORS: dict[str, Callable[[], Any]] = {
    "mailer": ConsoleMailer,
    "clock": RealClock,
    "sleep": ConsoleSleep,
    "profiles": ConsoleProfiles,
    "analytics": ConsoleAnalytics,
    "gateway": ScriptedGateway,
    "rng": lambda: random.random,
    "handler": ConsoleWorker,
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
