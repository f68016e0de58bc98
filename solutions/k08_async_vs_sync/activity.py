"""Kata 8: async or sync.

Each action a user logs (``POST /actions``) sets three pieces of work going: the user's
stats are counted through an asynchronous client, their monthly report is rebuilt by a
reporting library that blocks while it renders, and their followers' live feed is told.
Where each piece runs, on the event loop or in a worker thread, is decided by how it is
declared and how it is started; getting it wrong freezes the server, loses the work, or
cuts it off at shutdown.

Read README.md in this folder for the tasks, then make the specs pass:

    uv run pytest katas/k08_async_vs_sync
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any, Protocol

import anyio.to_thread
from fastapi import BackgroundTasks, FastAPI
from pydantic import BaseModel, Field

logger = logging.getLogger(__name__)


class StatsStore(Protocol):
    """The stats service: its client is asynchronous."""

    async def record(self, user_id: int, action: str) -> None:
        """Count one action of one user."""


class Reports(Protocol):
    """The reporting library: it blocks while it renders a report."""

    def rebuild(self, user_id: int) -> None:
        """Render the user's monthly report again; slow, and it blocks."""


class Feed(Protocol):
    """The live feed service: its client is asynchronous."""

    async def publish(self, user_id: int, action: str) -> None:
        """Tell the user's followers about one action."""


class ActionRequest(BaseModel):
    """One action a user logs."""

    user_id: int = Field(ge=1)
    action: str = Field(min_length=1, max_length=40)


async def update_user_stats(stats: StatsStore, user_id: int, action: str) -> None:
    """Count the action in the user's stats: a coroutine function, as the stats client is async."""
    await stats.record(user_id, action)


# ------------------------------------------------------------------ tasks somebody keeps


class Keeper:
    """Fire-and-forget asyncio tasks that somebody keeps: referenced while they run, drained at shutdown."""

    def __init__(self) -> None:
        # The event loop keeps only weak references to its tasks: this set is what keeps them alive.
        self._running: set[asyncio.Task[Any]] = set()

    def spawn(self, work: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Start ``work`` as a task named ``name`` on the running loop, and keep it until it ends."""
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._running.add(task)
        task.add_done_callback(self._forget)
        return task

    def _forget(self, task: asyncio.Task[Any]) -> None:
        """A task ended: drop it, and log its failure, which nobody else will ever read."""
        self._running.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if error is not None:
            logger.error("task %s failed", task.get_name(), exc_info=error)

    async def drain(self, timeout: float) -> None:  # noqa: ASYNC109 - the bound is what a drain is about
        """Wait for the running tasks, ``timeout`` seconds at most; cancel the rest and wait until they end."""
        if not self._running:
            return
        # A copy: tasks leave the set as they end, while asyncio.wait looks at them.
        _, late = await asyncio.wait(set(self._running), timeout=timeout)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)  # their clean-up runs before the shutdown goes on


# ------------------------------------------------------------------ the app


def create_app(
    stats: StatsStore, reports: Reports, feed: Feed, *, threads: int = 40, drain_timeout: float = 5.0
) -> FastAPI:
    """Build the API around its injected collaborators (the specs pass fakes)."""
    keeper = Keeper()

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # The thread pool belongs to the running event loop: it can be sized only once that loop runs.
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        yield
        await keeper.drain(drain_timeout)

    app = FastAPI(title="Kata 8: async or sync", lifespan=lifespan)

    @app.post("/actions", status_code=202)
    async def log_action(body: ActionRequest, background_tasks: BackgroundTasks) -> dict[str, Any]:
        """Accept one action; the work it sets going runs after the response, or beside it."""
        # A coroutine function: Starlette awaits it on the event loop, after the response.
        background_tasks.add_task(update_user_stats, stats, body.user_id, body.action)
        # A plain (blocking) callable: Starlette runs it in a worker thread of the pool.
        background_tasks.add_task(reports.rebuild, body.user_id)
        # Beside the request, not after it: a task of our own, kept until it ends.
        keeper.spawn(feed.publish(body.user_id, body.action), name=f"publish for user {body.user_id}")
        return {"status": "accepted", "user_id": body.user_id, "action": body.action}

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        """Answer at once: an endpoint on the event loop, which answers only while the loop is free."""
        return {"status": "ok"}

    return app
