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

import base64  # noqa: F401 - you will need it
import hashlib  # noqa: F401 - you will need it
import hmac  # noqa: F401 - you will need it
import json  # noqa: F401 - you will need it
from collections.abc import AsyncIterator, Awaitable, Callable  # noqa: F401 - you will need them
from contextlib import asynccontextmanager  # noqa: F401 - you will need it
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID, uuid4

import httpx
from fastapi import BackgroundTasks, FastAPI, HTTPException, Request  # noqa: F401 - you will need them
from pydantic import BaseModel, Field, HttpUrl  # noqa: F401 - you will need them

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
    # TODO(k11) task 1: `v1,` followed by the standard base64 (with its padding) of the
    # HMAC-SHA256, keyed with `secret`, of the id, a full stop, the timestamp, a full stop,
    # and then every byte of `body` exactly as given.
    raise NotImplementedError("TODO(k11) task 1: sign the id, the timestamp and the body")


# ------------------------------------------------------------------ task 2: verify


def verify(  # noqa: PLR0913 - the secret, the three headers, the body and the receiver's clock
    secret: bytes, *, msg_id: str, timestamp: str, signature: str, body: bytes, now: datetime
) -> bool:
    """Whether a delivery is genuine and fresh, as a receiver checks it. Never raises."""
    # TODO(k11) task 2: true only if `timestamp` is whole seconds in ASCII digits, at most
    # TOLERANCE seconds from `now` either way, and one of the space-separated signatures in
    # `signature` is the one `sign` gives for these values. Compare signatures in constant
    # time. Any text at all gives true or false, never an exception.
    raise NotImplementedError("TODO(k11) task 2: check a delivery as its receiver would")


# ------------------------------------------------------------------ tasks 3, 4, 5: deliver


def new_client() -> httpx.AsyncClient:
    """The HTTP client deliveries are sent with: one for the whole life of the app."""
    # TODO(k11) task 3: an httpx `AsyncClient` whose requests give up after TIMEOUT seconds
    # in each phase (connect, write, read, pool).
    raise NotImplementedError("TODO(k11) task 3: make the client deliveries are sent with")


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
    # TODO(k11) task 3: each attempt POSTs the payload as JSON to the delivery's URL with
    # `client`: the content type, the three webhook headers (the id, the time of this attempt
    # from `clock` in whole seconds, the signature of the very bytes sent). A 2xx answer
    # means delivered. The delivery's `attempts`, `last_status` and `last_error` always
    # say how far it got.
    # TODO(k11) task 4: a 5xx answer or an httpx transport error (no answer at all) is tried
    # again, after waits through `sleep` that start at the policy's first delay and double,
    # never above its `max_delay`, until the policy's attempts are used up; then failed.
    # Any other status fails at once. Every attempt carries the same id and the same bytes,
    # and nothing waits after the last attempt.
    # TODO(k11) task 5: a 429 is tried again too; a 429 or 503 whose Retry-After is whole
    # seconds waits that long instead of the backoff, never more than `max_retry_after`.
    raise NotImplementedError("TODO(k11) task 3: send the delivery")


# ------------------------------------------------------------------ task 6: the API


class SubscriptionRequest(BaseModel):
    """A partner's endpoint: an absolute http or https URL."""

    # TODO(k11) task 6: `url`, required, an http or https URL with a host, at most 2083
    # characters. Anything else is answered 422.


class EventRequest(BaseModel):
    """Something that happened in the shop, to tell every subscriber."""

    # TODO(k11) task 6: `type`, required text of 1 to 100 characters, and `data`, a required
    # JSON object. Anything else is answered 422.


def create_app(
    *,
    clock: Clock,
    sleep: Sleep,
    secret: bytes,
    policy: RetryPolicy = RetryPolicy(),  # frozen: one shared default is safe
    new_id: Callable[[], UUID] = uuid4,
) -> FastAPI:
    """Build the API around its collaborators (the specs pass fakes)."""
    # TODO(k11) task 7: one client from `new_client` for the app's whole life: opened when the
    # app starts, shared by every delivery, closed when the app shuts down.
    app = FastAPI(title="Kata 11: webhooks")

    @app.post("/subscriptions", status_code=201)
    async def subscribe(request: Request) -> dict[str, Any]:
        """Register a partner's URL: every event from now on is delivered to it."""
        # TODO(k11) task 6: the body is a `SubscriptionRequest`. Keep the URL; answer with its
        # `id`, counting from 1, and the `url` as it will be called.
        raise NotImplementedError("TODO(k11) task 6: keep the subscription")

    @app.post("/events", status_code=202)
    async def publish(request: Request, background_tasks: BackgroundTasks) -> dict[str, list[str]]:
        """Accept an event: one delivery per subscriber, each sent after the response."""
        # TODO(k11) task 6: the body is an `EventRequest`. The payload is its `type`, the
        # `timestamp` of now in ISO 8601 with its UTC offset, and its `data`. One new
        # `Delivery` per subscription, oldest first, each with an id of its own from
        # `new_id`, kept, and delivered after the response; answer with the `deliveries` ids.
        raise NotImplementedError("TODO(k11) task 6: queue one delivery per subscriber")

    @app.get("/deliveries/{delivery_id}")
    async def delivery_status(delivery_id: str) -> dict[str, Any]:
        """Where one delivery stands."""
        # TODO(k11) task 6: the delivery's `id`, `url`, `status`, `attempts`, `last_status` and
        # `last_error`; an id no delivery has is a 404, an id that is not a UUID a 422.
        raise NotImplementedError(f"TODO(k11) task 6: find delivery {delivery_id}")

    return app
