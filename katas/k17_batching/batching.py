"""Kata 17: batching.

Every notification the app accepts could be one call to the email provider: one HTTP
request, one charge, one step closer to the provider's rate limit. The batcher groups
them instead: one digest per recipient, and one call for a whole batch of recipients,
made when the batch is full or when its first notification has waited long enough,
whichever comes first. At shutdown, whatever is still waiting is sent: nothing is lost.

Read README.md in this folder for the tasks, then make the specs pass:

    uv run pytest katas/k17_batching
"""

from __future__ import annotations

import asyncio  # noqa: F401 - you will need it
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from fastapi import FastAPI, Request
from pydantic import BaseModel, EmailStr, Field  # noqa: F401 - you will need them

logger = logging.getLogger(__name__)

#: A batch is sent once it holds this many recipients (the provider takes no more per call).
MAX_SIZE = 5
#: ... or once its first notification has waited this many seconds, whichever comes first.
MAX_WAIT = 10.0


@dataclass(frozen=True)
class Digest:
    """What one recipient gets from one batch: their messages, in the order they came."""

    recipient: str
    messages: tuple[str, ...]


class Provider(Protocol):
    """The email provider's batch call: one request delivers a digest to each recipient."""

    async def send_batch(self, digests: list[Digest]) -> None:
        """Deliver one batch: one email per digest."""


# ------------------------------------------------------------------ task 1: the batch


class Batch:
    """The notifications waiting to be sent together: one entry per recipient."""

    def __init__(self) -> None:
        """An empty batch."""
        # TODO(k17) task 1: an empty batch, ready to keep, for each recipient, their messages in
        # the order they came, and the recipients in the order of their first notification.

    def add(self, recipient: str, message: str) -> None:
        """Add one notification: a new recipient's entry goes last, a known one's message joins theirs."""
        # TODO(k17) task 1: a recipient seen before in this batch keeps their one entry, at its
        # place, and the new message goes after their earlier ones; a new recipient comes last.
        raise NotImplementedError("TODO(k17) task 1: add a notification to the batch")

    def __len__(self) -> int:
        """How many recipients (entries) the batch holds: what the provider's limit counts."""
        # TODO(k17) task 1: the number of recipients, not of notifications.
        raise NotImplementedError("TODO(k17) task 1: count the recipients")

    @property
    def notifications(self) -> int:
        """How many notifications the batch holds, every message of every recipient."""
        # TODO(k17) task 1: every message counts, a recipient's second one too.
        raise NotImplementedError("TODO(k17) task 1: count the notifications")

    def digests(self) -> list[Digest]:
        """One digest per recipient, in the order of their first notification."""
        # TODO(k17) task 1: a new list of `Digest`, one per recipient, each with every message
        # of theirs, oldest first, as a tuple; a list and digests that later adds never change.
        raise NotImplementedError("TODO(k17) task 1: the digests of the batch")


# ------------------------------------------------------------------ tasks 2 to 4: the batcher


class Batcher:
    """Groups notifications into batches and hands each batch to the provider, one at a time, in order."""

    def __init__(self, provider: Provider, *, max_size: int = MAX_SIZE, max_wait: float = MAX_WAIT) -> None:
        """A batcher that sends a batch at ``max_size`` recipients or ``max_wait`` seconds after its first."""
        # TODO(k17) task 3: a `max_size` below 1 is refused with a ValueError that says why.
        # TODO(k17) task 4: a `max_wait` of 0 seconds or less is refused with a ValueError that
        # says why.
        self.provider = provider
        self.max_size = max_size
        self.max_wait = max_wait
        # TODO(k17) task 2: what the batcher keeps: the open batch, the closed batches waiting
        # for the provider, whatever sends them, and whether it is closed.

    async def start(self) -> None:
        """Start the sender: the one task that hands the closed batches to the provider."""
        # TODO(k17) task 2: from now on, each closed batch goes to `provider`, one call per
        # batch, one call at a time, in the order the batches closed. A call that fails is
        # logged once at ERROR with its traceback through `logger`, saying how many recipients
        # the batch had, and the next batch still goes.
        raise NotImplementedError("TODO(k17) task 2: start the sender")

    def add(self, recipient: str, message: str) -> None:
        """Put one notification in the open batch; never waits. Refused once the batcher is closed."""
        # TODO(k17) task 2: the notification joins the open batch and nothing waits. Once the
        # batcher is closed, a RuntimeError that says why: it would never be sent.
        # TODO(k17) task 3: the batch closes the moment it holds `max_size` recipients.
        # TODO(k17) task 4: the batch closes `max_wait` seconds after its first notification,
        # by the event loop's clock, if nothing closed it before; later ones never move that.
        raise NotImplementedError("TODO(k17) task 2: add a notification")

    def flush(self) -> None:
        """Close the open batch now, if it holds anything, and queue it for the sender."""
        # TODO(k17) task 2: the open batch, unless it is empty, goes to the sender, and a new
        # empty batch opens; returns at once.
        # TODO(k17) task 4: whatever closes a batch, the next batch's wait starts at its own
        # first notification.
        raise NotImplementedError("TODO(k17) task 2: close the open batch")

    async def close(self) -> None:
        """Refuse new notifications, send the open batch and every batch waiting, then stop the sender."""
        # TODO(k17) task 2: nothing is lost: the open batch and every closed batch reach the
        # provider, in order, before this returns, and then no task of the batcher is left.
        raise NotImplementedError("TODO(k17) task 2: send what is left, then stop")


# ------------------------------------------------------------------ task 5: the app


class NotificationRequest(BaseModel):
    """What a client posts: who gets the notification, and what it says."""

    # TODO(k17) task 5: `recipient`, a valid email address, and `message`, 1 to 500
    # characters, both required.


def create_app(provider: Provider, *, max_size: int = MAX_SIZE, max_wait: float = MAX_WAIT) -> FastAPI:
    """Build the API around an injected provider (the specs pass a fake)."""
    # TODO(k17) task 5: one batcher for the whole app, with these limits.

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        """Run the sender while the app runs; at shutdown, send everything that waits."""
        # TODO(k17) task 5: the batcher's sender runs from start-up; at shutdown, everything
        # still waiting reaches the provider before the app stops.
        yield

    app = FastAPI(title="Kata 17: batching", lifespan=lifespan)

    @app.post("/notifications", status_code=202)
    async def notify(request: Request) -> dict[str, str]:
        """Accept one notification for the next batch; answer at once."""
        # TODO(k17) task 5: the body is a `NotificationRequest`. The notification joins the
        # app's batcher, and the answer says `status` queued and the `recipient`, at once.
        raise NotImplementedError("TODO(k17) task 5: accept a notification")

    return app
