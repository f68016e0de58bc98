"""Fakes the katas inject instead of real collaborators: plain objects, not mocks.

Each records what it was asked to do, and, when given a :class:`~dojo.timeline.Timeline`,
records it there too, so a spec can say *when* it happened relative to the response.
"""

from __future__ import annotations

import asyncio
import copy
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from dojo.timeline import ASGIApp, Timeline

EMAIL_STARTED = "email started"
EMAIL_SENT = "email sent"
EMAIL_FAILED = "email failed"
EMAIL_BLOCKED_LOOP = "email blocked the event loop"


def on_event_loop_thread() -> bool:
    """Whether the caller runs on a thread with a running event loop (blocking there freezes it)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


@dataclass(frozen=True)
class Email:
    """One email as the outbox received it."""

    to: str
    subject: str
    body: str


class _Outbox:
    """What both fake mail servers share: the record of what was sent, holding, failing.

    ``hold()`` makes every send block until ``release()``, the way a slow mail server
    does, with no real waiting. ``fail_with(error)`` makes every send raise ``error``.
    Each kind offers ONE way to send, the one the kata's code should use, so code that
    calls the other kind fails instead of passing by accident.
    """

    def __init__(self, timeline: Timeline | None = None) -> None:
        self.timeline = timeline or Timeline()
        self.sent: list[Email] = []
        self._gate = threading.Event()
        self._gate.set()
        self._failure: BaseException | None = None

    # -------------------------------------------------------------- scripting
    def hold(self) -> None:
        """From now on, a send blocks until :meth:`release`."""
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def fail_with(self, error: BaseException | None) -> None:
        """Every send raises ``error`` from now on (``None`` mends the server)."""
        self._failure = error

    def _begin(self, to: str) -> None:
        self.timeline.record(EMAIL_STARTED, f"to {to}")

    def _finish(self, to: str, subject: str, body: str) -> None:
        if self._failure is not None:
            self.timeline.record(EMAIL_FAILED, f"to {to}: {self._failure!r}")
            raise self._failure
        self.sent.append(Email(to, subject, body))
        self.timeline.record(EMAIL_SENT, f"to {to}")

    # -------------------------------------------------------------- reading
    def to(self, address: str) -> list[Email]:
        return [email for email in self.sent if email.to == address]

    def __len__(self) -> int:
        return len(self.sent)

    def __repr__(self) -> str:
        name = type(self).__name__
        if not self.sent:
            return f"{name}(no email sent)"
        return f"{name}(" + ", ".join(f"to={e.to!r} subject={e.subject!r}" for e in self.sent) + ")"


class FakeOutbox(_Outbox):
    """A mail server with a blocking ``send``, like ``smtplib``: for code that sends from a ``def``."""

    def send(self, to: str, subject: str, body: str) -> None:
        """Deliver one email. Blocks while held, as a slow server would."""
        self._begin(to)
        if not self._gate.is_set():
            if on_event_loop_thread():
                # Blocking here would freeze the event loop and the whole test with it.
                self.timeline.record(EMAIL_BLOCKED_LOOP, f"to {to}: a def sender was called from async code")
            elif not self._gate.wait(self.timeline.safety_timeout):
                self.timeline.record("email gave up", f"to {to}: the outbox was never released")
        self._finish(to, subject, body)


class AsyncFakeOutbox(_Outbox):
    """A mail server with an ``async`` ``asend``, like aiosmtplib: for code that sends from ``async def``."""

    async def asend(self, to: str, subject: str, body: str) -> None:
        """Deliver one email without blocking the event loop."""
        self._begin(to)
        if not self._gate.is_set() and not await asyncio.to_thread(self._gate.wait, self.timeline.safety_timeout):
            self.timeline.record("email gave up", f"to {to}: the outbox was never released")
        self._finish(to, subject, body)


EPOCH = datetime(2026, 1, 5, 9, 0, 0, tzinfo=timezone.utc)


class FakeClock:
    """A clock that moves only when told to (or when :class:`FakeSleep` sleeps)."""

    def __init__(self, start: datetime = EPOCH) -> None:
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime (UTC)")
        self._now = start
        self._monotonic = 1000.0

    def now(self) -> datetime:
        """The wall-clock time, timezone-aware UTC."""
        return self._now

    def time(self) -> float:
        """Seconds since the epoch, like :func:`time.time`."""
        return self._now.timestamp()

    def monotonic(self) -> float:
        """Like :func:`time.monotonic`: only differences mean anything."""
        return self._monotonic

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._now += timedelta(seconds=seconds)
        self._monotonic += seconds


class FakeSleep:
    """An injectable ``await sleep(seconds)`` that returns at once, moves the clock, and keeps a log.

    It is ``async`` only: code that must not block the event loop cannot call it from a ``def``
    by mistake.
    """

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock()
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self._note(seconds)
        await asyncio.sleep(0)  # still a point where other tasks may run, as a real sleep is

    def _note(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"sleep length must be non-negative, got {seconds}")
        self.calls.append(seconds)
        self.clock.advance(seconds)

    @property
    def total(self) -> float:
        return sum(self.calls)


# ------------------------------------------------------------------ a payment gateway

CHARGE_ATTEMPTED = "charge attempted"
CHARGE_APPROVED = "charge approved"
CHARGE_FAILED = "charge failed"


@dataclass(frozen=True)
class Charge:
    """One call to the gateway: what was charged, and how it ended (a receipt or an error)."""

    payment_id: str
    amount_cents: int
    outcome: str


def _fresh(error: BaseException) -> BaseException:
    """A copy of ``error`` with no traceback, or ``error`` itself if its class cannot be copied."""
    try:
        return copy.copy(error).with_traceback(None)
    except Exception:  # noqa: BLE001 - an exception class whose __init__ does not take its args
        return error.with_traceback(None)


class FakeGateway:
    """A payment gateway that follows a script of outcomes, one per charge.

    Each outcome is an exception (a class or an instance) to raise, or a value to return
    as the receipt. Once the script is used up its last outcome repeats, so a retry loop
    that goes one attempt too far meets the same failure again and the spec sees the
    extra call. With no script, every charge is approved with a receipt ``receipt-N``.

        gateway.will(TransientError("timeout"), TransientError("timeout"), "receipt-1")

    An instance is raised as a fresh copy each time, so tracebacks never pile up on it.
    ``charge`` is ``async`` like an HTTP client's call, and the only way to charge.
    """

    def __init__(self, script: Iterable[object] = (), timeline: Timeline | None = None) -> None:
        self.timeline = timeline or Timeline()
        self.calls: list[Charge] = []
        self._script: list[object] = []
        self._position = 0
        self.will(*script)

    def will(self, *outcomes: object) -> FakeGateway:
        """From now on, answer charge N with ``outcomes[N]`` (the last one repeats)."""
        self._script = list(outcomes)
        self._position = 0
        return self

    async def charge(self, payment_id: str, amount_cents: int) -> object:
        """Charge once; raise or return what the script says. Yields to the loop like I/O."""
        await asyncio.sleep(0)
        return self._charge(payment_id, amount_cents)

    def _charge(self, payment_id: str, amount_cents: int) -> object:
        number = len(self.calls) + 1
        self.timeline.record(CHARGE_ATTEMPTED, f"{payment_id}, {amount_cents} cents, call {number}")
        self._position += 1
        if not self._script:
            outcome: object = f"receipt-{number}"
        else:
            outcome = self._script[min(self._position, len(self._script)) - 1]
        if isinstance(outcome, type) and issubclass(outcome, BaseException):
            outcome = outcome(f"scripted failure of charge {number}")
        if isinstance(outcome, BaseException):
            error = _fresh(outcome)
            self.calls.append(Charge(payment_id, amount_cents, f"{type(error).__name__}: {error}"))
            self.timeline.record(CHARGE_FAILED, f"{payment_id}: {type(error).__name__}: {error}")
            raise error
        self.calls.append(Charge(payment_id, amount_cents, repr(outcome)))
        self.timeline.record(CHARGE_APPROVED, f"{payment_id}: {outcome!r}")
        return outcome

    def __len__(self) -> int:
        return len(self.calls)

    def __repr__(self) -> str:
        if not self.calls:
            return "FakeGateway(never charged)"
        lines = (f"  {n}. {c.payment_id} {c.amount_cents} cents -> {c.outcome}" for n, c in enumerate(self.calls, 1))
        return "FakeGateway(\n" + "\n".join(lines) + "\n)"


# ------------------------------------------------------------------ holding background tasks back

BACKGROUND_HELD = "background tasks held"
BACKGROUND_RELEASED = "background tasks released"


class BackgroundGate:
    """Holds an app's background tasks back, after its response is complete, until opened.

    Starlette runs a request's background tasks right after it sends the response's last
    body chunk, in the same call, so a test sees no moment between the two. Wrap the app:
    a request through ``gate.wrap(app)`` gets its whole response, then waits at the gate
    before its background tasks start, as if the server were busy. Meanwhile a spec can
    ask the app what it says of the work it accepted ("pending", not yet started).
    :meth:`open` lets every held request go on. Requests to the unwrapped app never wait.

        held = timeline.start(gate.wrap(app), "POST", "/tasks", json={...})
        await timeline.wait_for(BACKGROUND_HELD)
        ...  # the client has its answer; no background task has started
        gate.open()
        await held
    """

    def __init__(self, timeline: Timeline | None = None) -> None:
        self.timeline = timeline or Timeline()
        self._open = asyncio.Event()

    def open(self) -> None:
        """Let the held requests' background tasks run (and every later one at once)."""
        if not self._open.is_set():
            self._open.set()
            self.timeline.record(BACKGROUND_RELEASED)

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """``app``, but each response's background tasks wait for the gate to open."""

        async def held_app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
            async def held_send(message: Mapping[str, Any]) -> None:
                await send(message)
                last_chunk = message["type"] == "http.response.body" and not message.get("more_body", False)
                if last_chunk and not self._open.is_set():
                    self.timeline.record(BACKGROUND_HELD, f"{scope.get('method', '')} {scope.get('path', '')}")
                    try:
                        await asyncio.wait_for(self._open.wait(), self.timeline.safety_timeout)
                    except asyncio.TimeoutError:  # an alias of TimeoutError from 3.11
                        self.timeline.record("background gate gave up", "the gate was never opened")

            await app(scope, receive, held_send)

        return held_app
