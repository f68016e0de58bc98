"""Kata 11: webhooks.

Partners subscribe a URL; every event the shop publishes is POSTed to each of them as
JSON, in the background, signed so that they can tell it came from us and was not
changed on the way. A receiver that is down or busy is tried again, with waits that
grow, a bounded number of times, and the same delivery id on every attempt, so that a
receiver that already has it can say "seen it" instead of doing the work twice.

Read README.md in this folder for the tasks, then make the specs pass:

    uv run pytest katas/k11_webhooks
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID, uuid4

import httpx
from fastapi import BackgroundTasks, FastAPI, HTTPException, Request
from pydantic import BaseModel, Field, HttpUrl

#: The headers of a delivery (Standard Webhooks): the delivery's id, the time of the attempt
#: in whole seconds since the epoch, and the signature.
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"

#: How far, in seconds, a receiver lets a delivery's timestamp be from its own clock, either way.
TOLERANCE = 300

#: The longest, in seconds, each phase of one request may take: connecting, sending, waiting
#: for the answer, waiting for a free connection in the pool.
TIMEOUT = 15.0


class Clock(Protocol):
    """Tells the time: the real clock in production, a fake one in the specs."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""


#: ``await sleep(seconds)``: the real ``asyncio.sleep`` in production, a fake one in the specs.
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """How hard a delivery tries. The defaults are the ones the README states."""

    attempts: int = 5  # attempts in all, the first one included
    first_delay: float = 1.0  # seconds before the second attempt; the wait doubles after each failure
    max_delay: float = 30.0  # no backoff wait is longer than this
    max_retry_after: float = 60.0  # the longest wait a receiver's Retry-After can ask for


@dataclass
class Delivery:
    """One event on its way to one subscriber, and how far it got."""

    id: str  # the idempotency key: the same on every attempt (the webhook-id header)
    url: str  # where it goes
    payload: dict[str, Any]  # what goes, as JSON
    status: str = "pending"  # "pending", then "delivered" or "failed"
    attempts: int = 0  # attempts made so far
    last_status: int | None = None  # the HTTP status of the last attempt's answer; None if none came
    last_error: str | None = None  # the class name of the last attempt's error (httpx's); None if answered


# ------------------------------------------------------------------ task 1: sign


def sign(secret: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` of one attempt: ``v1,`` and a base64 HMAC-SHA256."""
    # The id and the timestamp are signed with the body, so neither can be swapped or replayed
    # later; the body is the exact bytes that go on the wire, never a copy serialized again.
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


# ------------------------------------------------------------------ task 2: verify


def verify(  # noqa: PLR0913 - the secret, the three headers, the body and the receiver's clock
    secret: bytes, *, msg_id: str, timestamp: str, signature: str, body: bytes, now: datetime
) -> bool:
    """Whether a delivery is genuine and fresh, as a receiver checks it. Never raises."""
    # Whole seconds in ASCII digits: anything else is not a timestamp this scheme makes.
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    sent_at = int(timestamp)
    # Too old is a replay; too far ahead is a forgery made to last. Both ends are allowed.
    if abs(now.timestamp() - sent_at) > TOLERANCE:
        return False
    expected = sign(secret, msg_id, sent_at, body).encode()
    # The header may list several signatures (a secret being rotated): any one may match.
    # compare_digest takes the same time wherever two values differ, so an attacker learns
    # nothing from the time a wrong guess takes; bytes, since it refuses non-ASCII text.
    return any(hmac.compare_digest(candidate.encode(), expected) for candidate in signature.split(" "))


# ------------------------------------------------------------------ tasks 3, 4, 5: deliver


def new_client() -> httpx.AsyncClient:
    """The HTTP client deliveries are sent with: one for the whole life of the app."""
    # httpx's own default is 5 s; None would wait for ever on a receiver that never answers.
    return httpx.AsyncClient(timeout=httpx.Timeout(TIMEOUT))


def _retryable(status: int) -> bool:
    """A receiver in trouble (5xx) or asking us to slow down (429) may answer better later."""
    return status == 429 or 500 <= status <= 599


def _retry_after(response: httpx.Response, policy: RetryPolicy) -> float | None:
    """The wait a 429 or 503 asks for in whole seconds, capped; None for anything else."""
    if response.status_code not in {429, 503}:
        return None
    value = response.headers.get("retry-after", "")
    # Seconds only: an HTTP-date, a negative or a fraction is not honoured, the backoff is used.
    if not (value.isascii() and value.isdigit()):
        return None
    return min(float(value), policy.max_retry_after)


def _backoff(retry: int, policy: RetryPolicy) -> float:
    """The wait before retry number ``retry`` (1 for the second attempt): doubling, capped."""
    return min(policy.first_delay * 2 ** (retry - 1), policy.max_delay)


async def deliver(  # noqa: PLR0913 - a delivery and every collaborator it needs
    client: httpx.AsyncClient,
    delivery: Delivery,
    *,
    secret: bytes,
    clock: Clock,
    sleep: Sleep,
    policy: RetryPolicy = RetryPolicy(),  # frozen: one shared default is safe
) -> None:
    """Send ``delivery`` until a 2xx, a final refusal, or the last attempt; keep ``delivery`` up to date."""
    # Serialized once: these very bytes are signed and sent on every attempt.
    body = json.dumps(delivery.payload, ensure_ascii=False, separators=(",", ":")).encode()
    for attempt in range(1, policy.attempts + 1):
        # The time of THIS attempt: a receiver refuses a timestamp more than five minutes old.
        timestamp = int(clock.now().timestamp())
        headers = {
            "content-type": "application/json",
            ID_HEADER: delivery.id,  # the same on every attempt: the receiver's idempotency key
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(secret, delivery.id, timestamp, body),
        }
        delivery.attempts = attempt
        wait: float | None = None
        try:
            response = await client.post(delivery.url, content=body, headers=headers)
        except httpx.TransportError as error:  # no answer: refused, reset, timed out
            delivery.last_status, delivery.last_error = None, type(error).__name__
        else:
            delivery.last_status, delivery.last_error = response.status_code, None
            if response.is_success:
                delivery.status = "delivered"
                return
            if not _retryable(response.status_code):
                break  # the request itself is wrong (4xx, 3xx): it would be refused again
            wait = _retry_after(response, policy)
        if attempt == policy.attempts:
            break  # no wait after the last attempt: nothing comes after it
        await sleep(_backoff(attempt, policy) if wait is None else wait)
    delivery.status = "failed"


# ------------------------------------------------------------------ task 6: the API


class SubscriptionRequest(BaseModel):
    """A partner's endpoint: an absolute http or https URL."""

    url: HttpUrl


class EventRequest(BaseModel):
    """Something that happened in the shop, to tell every subscriber."""

    type: str = Field(min_length=1, max_length=100)
    data: dict[str, Any]


def create_app(
    *,
    clock: Clock,
    sleep: Sleep,
    secret: bytes,
    policy: RetryPolicy = RetryPolicy(),  # frozen: one shared default is safe
    new_id: Callable[[], UUID] = uuid4,
) -> FastAPI:
    """Build the API around its collaborators (the specs pass fakes)."""
    subscriptions: list[str] = []
    deliveries: dict[str, Delivery] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One client, opened when the app starts and closed when it stops: its pool keeps the
        # connections to the receivers open between deliveries, and nothing is left behind.
        async with new_client() as client:
            app.state.client = client
            yield

    app = FastAPI(title="Kata 11: webhooks", lifespan=lifespan)

    @app.post("/subscriptions", status_code=201)
    async def subscribe(subscription: SubscriptionRequest) -> dict[str, Any]:
        """Register a partner's URL: every event from now on is delivered to it."""
        subscriptions.append(str(subscription.url))
        return {"id": len(subscriptions), "url": subscriptions[-1]}

    @app.post("/events", status_code=202)
    async def publish(event: EventRequest, request: Request, background_tasks: BackgroundTasks) -> dict[str, list[str]]:
        """Accept an event: one delivery per subscriber, each sent after the response."""
        # The time the event happened, read once: it is part of the payload, which never changes.
        payload = {"type": event.type, "timestamp": clock.now().isoformat(), "data": event.data}
        made = []
        for url in subscriptions:
            delivery = Delivery(id=str(new_id()), url=url, payload=payload)
            deliveries[delivery.id] = delivery
            background_tasks.add_task(
                deliver, request.app.state.client, delivery, secret=secret, clock=clock, sleep=sleep, policy=policy
            )
            made.append(delivery.id)
        return {"deliveries": made}

    @app.get("/deliveries/{delivery_id}")
    async def delivery_status(delivery_id: UUID) -> dict[str, Any]:
        """Where one delivery stands."""
        delivery = deliveries.get(str(delivery_id))
        if delivery is None:
            raise HTTPException(status_code=404, detail=f"no delivery {delivery_id}")
        return {
            "id": delivery.id,
            "url": delivery.url,
            "status": delivery.status,
            "attempts": delivery.attempts,
            "last_status": delivery.last_status,
            "last_error": delivery.last_error,
        }

    return app
