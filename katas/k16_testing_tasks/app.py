"""Kata 16: the shop you write the tests for. It is given, and correct: do not edit it.

``POST /orders`` takes an order, answers ``202 Accepted`` at once with the order's
number, and after the response two background tasks do the work:

1. ``send_confirmation`` emails the customer: to the order's address, the subject
   ``Order <number> confirmed``, the body ``<quantity> x <item>``;
2. ``notify_warehouse`` posts the order to the warehouse, ``WAREHOUSE_URL``, as JSON:
   ``{"order": <number>, "item": ..., "quantity": ..., "placed_at": ...}``, where
   ``placed_at`` is the moment the request was accepted, in UTC, in ISO 8601 with its
   offset (``2026-03-01T12:00:00+00:00``).

Each task runs inside a guard: if it raises, the failure is logged at ERROR, with its
traceback, through the ``shop`` logger, and the next task still runs. Orders are
numbered 1, 2, 3 ... per app. A body that breaks the rules of ``Order`` is a ``422``,
and nothing is queued.

The mail client and the warehouse's HTTP client are handed to ``create_app``: your tests
hand it theirs (read README.md, "Where your tests get the app").
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any, Protocol

import httpx
from fastapi import BackgroundTasks, FastAPI
from pydantic import BaseModel, EmailStr, Field

logger = logging.getLogger("shop")

WAREHOUSE_URL = "https://warehouse.example/orders"


class Mailer(Protocol):
    """An asynchronous mail client."""

    async def asend(self, to: str, subject: str, body: str) -> None:
        """Deliver one email without blocking the event loop."""


class Order(BaseModel):
    """What a customer sends: who they are, what they want, how many."""

    email: EmailStr
    item: str = Field(min_length=1, max_length=80)
    quantity: int = Field(ge=1, le=10)


async def send_confirmation(mailer: Mailer, number: int, order: Order) -> None:
    """Email the customer that their order is confirmed."""
    await mailer.asend(
        to=str(order.email), subject=f"Order {number} confirmed", body=f"{order.quantity} x {order.item}"
    )


async def notify_warehouse(warehouse: httpx.AsyncClient, number: int, order: Order, placed_at: datetime) -> None:
    """Tell the warehouse what to ship; an answer that is not 2xx is a failure."""
    payload = {"order": number, "item": order.item, "quantity": order.quantity, "placed_at": placed_at.isoformat()}
    response = await warehouse.post(WAREHOUSE_URL, json=payload)
    response.raise_for_status()


def guarded(task: Callable[..., Awaitable[None]]) -> Callable[..., Awaitable[None]]:
    """The task, made safe to queue: a failure is logged with its traceback, never raised."""

    @functools.wraps(task)
    async def run(*args: Any) -> None:
        try:
            await task(*args)
        except Exception:
            logger.exception("background task %s failed", task.__name__)

    return run


def create_app(mailer: Mailer, warehouse: httpx.AsyncClient) -> FastAPI:
    """The shop's API, around the mail client and the warehouse's HTTP client it is given."""
    app = FastAPI(title="Kata 16: the shop under test")
    numbers = itertools.count(1)

    @app.post("/orders", status_code=202)
    async def place_order(order: Order, background_tasks: BackgroundTasks) -> dict[str, Any]:
        """Accept an order; the customer and the warehouse hear of it after the response."""
        number = next(numbers)
        placed_at = datetime.now(timezone.utc)
        background_tasks.add_task(guarded(send_confirmation), mailer, number, order)
        background_tasks.add_task(guarded(notify_warehouse), warehouse, number, order, placed_at)
        return {"order": number, "status": "accepted"}

    return app
