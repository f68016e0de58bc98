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
from pydantic import BaseModel, EmailStr, Field

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
    # Double each time, but never past the cap; then add up to `jitter` seconds from the
    # injected source, so clients that failed together do not retry together.
    return min(policy.max_delay, policy.base_delay * 2**retry) + policy.jitter * rng()


async def report_failure(payment: Payment, error: Exception, attempts: int, mailer: Mailer) -> None:
    """Tell the log (one ERROR) and the payer (one email) that the payment failed, and why."""
    # One ERROR per failed payment: that is what wakes someone up, so it must be there and only once.
    logger.error("payment %s failed after %d attempt(s): %s", payment.payment_id, attempts, error)
    # The payer hears it from us, with the reason, instead of never hearing anything.
    body = f"We could not complete payment {payment.payment_id}: {error}"
    await mailer.asend(to=payment.email, subject=FAILURE_SUBJECT, body=body)


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
    last_error: Exception | None = None
    attempt = 0
    # At most max_attempts calls in all: the first attempt counts.
    for attempt in range(1, policy.max_attempts + 1):
        logger.info("payment %s: attempt %d of %d", payment.payment_id, attempt, policy.max_attempts)
        try:
            receipt = await gateway.charge(payment.payment_id, payment.amount_cents)
        except TransientGatewayError as error:
            last_error = error
            # Wait only if another attempt follows: a sleep after the last one only delays the bad news.
            if attempt < policy.max_attempts:
                delay = backoff_delay(policy, attempt - 1, rng)
                logger.warning(
                    "payment %s: attempt %d failed (%s); retrying in %.2f s", payment.payment_id, attempt, error, delay
                )
                await sleep(delay)
        except PaymentDeclinedError as error:
            # A decline is an answer, not an accident: asking again will not change it.
            last_error = error
            break
        else:
            logger.info("payment %s approved: %s", payment.payment_id, receipt)
            return receipt
    # Out of attempts (or declined): report once, with the error that ended it.
    await report_failure(payment, last_error, attempt, mailer)
    return None


class PaymentRequest(BaseModel):
    """What a client sends: which payment, how much, and whom to tell if it fails."""

    # Validated here, so a bad request is a 422 and never reaches the gateway.
    payment_id: str = Field(min_length=1, max_length=64)
    amount_cents: int = Field(gt=0, strict=True)
    email: EmailStr


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
        # Hand the task plain values; the function itself, not a call to it.
        payment = Payment(request.payment_id, request.amount_cents, str(request.email))
        background_tasks.add_task(
            process_payment, payment, gateway=gateway, mailer=mailer, sleep=sleep, rng=rng, policy=policy
        )
        return {"status": "processing", "payment_id": payment.payment_id}

    return app
