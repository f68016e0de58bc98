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

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from fastapi import FastAPI
from pydantic import BaseModel, EmailStr, Field

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
        # A dict keeps its keys in the order they were first inserted: each recipient
        # stays where their first notification put them, and their messages pile up there.
        self._messages: dict[str, list[str]] = {}

    def add(self, recipient: str, message: str) -> None:
        """Add one notification: a new recipient's entry goes last, a known one's message joins theirs."""
        self._messages.setdefault(recipient, []).append(message)

    def __len__(self) -> int:
        """How many recipients (entries) the batch holds: what the provider's limit counts."""
        return len(self._messages)

    @property
    def notifications(self) -> int:
        """How many notifications the batch holds, every message of every recipient."""
        return sum(len(messages) for messages in self._messages.values())

    def digests(self) -> list[Digest]:
        """One digest per recipient, in the order of their first notification."""
        # Tuples: the digests handed to the provider never change behind its back.
        return [Digest(recipient, tuple(messages)) for recipient, messages in self._messages.items()]


# ------------------------------------------------------------------ tasks 2 to 4: the batcher


class Batcher:
    """Groups notifications into batches and hands each batch to the provider, one at a time, in order."""

    def __init__(self, provider: Provider, *, max_size: int = MAX_SIZE, max_wait: float = MAX_WAIT) -> None:
        """A batcher that sends a batch at ``max_size`` recipients or ``max_wait`` seconds after its first."""
        # Refused at once: a limit of 0 recipients or 0 seconds would send empty or endless batches.
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1 recipient, got {max_size}")
        if max_wait <= 0:
            raise ValueError(f"max_wait must be more than 0 seconds, got {max_wait}")
        self.provider = provider
        self.max_size = max_size
        self.max_wait = max_wait
        self._batch = Batch()
        # The open batch's deadline: set by its first notification, never moved by later ones.
        self._timer: asyncio.TimerHandle | None = None
        # Closed batches wait here for the one sender; None tells it to stop.
        self._ready: asyncio.Queue[list[Digest] | None] = asyncio.Queue()
        self._closed = False

    async def start(self) -> None:
        """Start the sender: the one task that hands the closed batches to the provider."""
        # Kept in an attribute: the event loop holds tasks only weakly.
        self._sender: asyncio.Task[None] = asyncio.create_task(self._send_in_order(), name="k17 batch sender")

    def add(self, recipient: str, message: str) -> None:
        """Put one notification in the open batch; never waits. Refused once the batcher is closed."""
        if self._closed:
            raise RuntimeError("the batcher is closed: a notification added now would never be sent")
        self._batch.add(recipient, message)
        if len(self._batch) >= self.max_size:
            self.flush()
        elif self._timer is None:
            # The first notification of the batch starts its clock; a later one leaves it alone.
            self._timer = asyncio.get_running_loop().call_later(self.max_wait, self.flush)

    def flush(self) -> None:
        """Close the open batch now, if it holds anything, and queue it for the sender."""
        if self._timer is not None:
            # Whatever closed the batch, its deadline goes with it: the next batch gets its own.
            self._timer.cancel()
            self._timer = None
        if len(self._batch):
            self._ready.put_nowait(self._batch.digests())
            self._batch = Batch()

    async def _send_in_order(self) -> None:
        """Send each closed batch in turn, until told to stop; a failed send is logged and left."""
        while True:
            digests = await self._ready.get()
            if digests is None:
                return
            try:
                await self.provider.send_batch(digests)
            except Exception:
                # One failed batch must not stop the line: log it with its traceback, go on.
                logger.exception("a batch of %d recipient(s) could not be sent", len(digests))

    async def close(self) -> None:
        """Refuse new notifications, send the open batch and every batch waiting, then stop the sender."""
        self._closed = True
        self.flush()
        # Queued after every batch: the sender sends them all before it reads it and stops.
        self._ready.put_nowait(None)
        await self._sender


# ------------------------------------------------------------------ task 5: the app


class NotificationRequest(BaseModel):
    """What a client posts: who gets the notification, and what it says."""

    recipient: EmailStr
    message: str = Field(min_length=1, max_length=500)


def create_app(provider: Provider, *, max_size: int = MAX_SIZE, max_wait: float = MAX_WAIT) -> FastAPI:
    """Build the API around an injected provider (the specs pass a fake)."""
    # One batcher for the whole app: batching only works if every request adds to the same one.
    batcher = Batcher(provider, max_size=max_size, max_wait=max_wait)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        """Run the sender while the app runs; at shutdown, send everything that waits."""
        await batcher.start()
        try:
            yield
        finally:
            # Drain, do not cancel: close() returns once the last batch has been sent.
            await batcher.close()

    app = FastAPI(title="Kata 17: batching", lifespan=lifespan)

    @app.post("/notifications", status_code=202)
    async def notify(notification: NotificationRequest) -> dict[str, str]:
        """Accept one notification for the next batch; answer at once."""
        # async def: add() runs on the event loop's thread, where the batch's timer lives.
        recipient = str(notification.recipient)
        batcher.add(recipient, notification.message)
        return {"status": "queued", "recipient": recipient}

    return app
