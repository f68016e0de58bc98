"""Kata 3: retry a payment, politely.

A client asks us to charge a payment. The payment gateway sometimes fails for a moment
(a timeout, a 503) and sometimes answers "declined". We answer ``202 Accepted`` at
once and charge in a background task: a moment's failure is tried again, a few times,
waiting longer each time (with a little randomness, so a thousand clients do not retry
in step); a decline is final. When we give up, the payer gets one email saying why,
and the log gets one ERROR.

The gateway, the mailer, the sleep and the random source are all injected, so the
specs never wait and never roll real dice.

Read README.md in this folder for the tasks, then make the specs pass:

    uv run pytest katas/k03_retry
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from fastapi import BackgroundTasks, FastAPI
from pydantic import BaseModel, EmailStr, Field  # noqa: F401 - you will need them

logger = logging.getLogger(__name__)

FAILURE_SUBJECT = "Your payment could not be completed"

#: A random source: each call returns a float in [0, 1), like ``random.Random(seed).random``.
Rng = Callable[[], float]
#: An asynchronous sleep, like ``asyncio.sleep``.
Sleep = Callable[[float], Awaitable[None]]


class TransientGatewayError(Exception):
    """The gateway failed for a moment (timeout, 503, connection reset): trying again may work."""


class PaymentDeclinedError(Exception):
    """The gateway answered, and the answer is no: trying again will not change it."""


class PaymentGateway(Protocol):
    """Whatever charges cards: an HTTP client in production, a scripted fake in the specs."""

    async def charge(self, payment_id: str, amount_cents: int) -> str:
        """Charge once and return the receipt id; raise TransientGatewayError or PaymentDeclinedError."""


class Mailer(Protocol):
    """Whatever delivers email, without blocking the event loop."""

    async def asend(self, to: str, subject: str, body: str) -> None:
        """Deliver one email."""


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: attempts in all, and how long to wait between them (seconds)."""

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts counts the first attempt too: it must be at least 1")
        if self.base_delay < 0 or self.max_delay < self.base_delay or self.jitter < 0:
            raise ValueError("need 0 <= base_delay <= max_delay and jitter >= 0")


@dataclass(frozen=True)
class Payment:
    """What the background task needs: plain values, no request object."""

    payment_id: str
    amount_cents: int
    email: str


def backoff_delay(policy: RetryPolicy, retry: int, rng: Rng) -> float:
    """Seconds to wait before retry number ``retry`` (0: the wait after the first failed attempt)."""
    # TODO(k03) task 1: the delay before retry number `retry`: the base delay doubled once per
    # retry, never more than the cap, plus a share of the jitter drawn once from `rng` (and
    # from nowhere else).
    raise NotImplementedError("TODO(k03) task 1: compute the backoff delay")


async def report_failure(payment: Payment, error: Exception, attempts: int, mailer: Mailer) -> None:
    """Tell the log (one ERROR) and the payer (one email) that the payment failed, and why."""
    # TODO(k03) task 2: log one ERROR naming the payment, the attempts made and the error, and
    # send the payer one email (subject `FAILURE_SUBJECT`) whose body names the payment and the error.
    raise NotImplementedError("TODO(k03) task 2: report the failed payment")


async def process_payment(  # noqa: PLR0913 - every collaborator is injected, by keyword
    payment: Payment,
    *,
    gateway: PaymentGateway,
    mailer: Mailer,
    sleep: Sleep,
    rng: Rng,
    policy: RetryPolicy,
) -> str | None:
    """Charge ``payment``, retrying transient errors; return the receipt, or None after reporting failure."""
    # TODO(k03) task 3: at most `max_attempts` charges of the same payment, each announced at
    # INFO with its number. A `TransientGatewayError` is retried after the delay of that retry,
    # with a WARNING, but nothing waits after the last attempt; a `PaymentDeclinedError` is never
    # retried. Return the receipt when a charge goes through; when it ends in failure, report it
    # once, with the last error and the attempts made, and return None.
    raise NotImplementedError("TODO(k03) task 3: charge with retries")


class PaymentRequest(BaseModel):
    """What a client sends: which payment, how much, and whom to tell if it fails."""

    # TODO(k03) task 4: declare `payment_id` (1 to 64 characters), `amount_cents` (a JSON
    # integer above 0, not a string, a boolean or a number with a decimal point) and `email`
    # (a valid address). Anything else must get a 422.


def create_app(
    gateway: PaymentGateway,
    mailer: Mailer,
    *,
    sleep: Sleep,
    rng: Rng,
    policy: RetryPolicy | None = None,
) -> FastAPI:
    """Build the API around its injected collaborators (the specs pass fakes)."""
    app = FastAPI(title="Kata 3: retry")
    policy = policy or RetryPolicy()

    @app.post("/payments", status_code=202)
    async def start_payment(request: PaymentRequest, background_tasks: BackgroundTasks) -> dict[str, str]:
        """Accept a payment and charge it in the background, retrying as the policy says."""
        # TODO(k03) task 4: build a `Payment` from the request, queue `process_payment` in the
        # request's background tasks with every injected collaborator, and answer
        # {"status": "processing", "payment_id": <the id>}.
        raise NotImplementedError("TODO(k03) task 4: queue the payment and answer 202")

    return app
