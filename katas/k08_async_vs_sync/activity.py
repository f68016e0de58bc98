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

import anyio.to_thread  # noqa: F401 - you will need it
from fastapi import BackgroundTasks, FastAPI, Request
from pydantic import BaseModel, Field  # noqa: F401 - you will need them

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

    # TODO(k08) task 1: `user_id`, a whole number of 1 or more, and `action`, a text of 1 to 40
    # characters, both required. Anything else is answered 422 and sets nothing going.


async def update_user_stats(stats: StatsStore, user_id: int, action: str) -> None:
    """Count the action in the user's stats: a coroutine function, as the stats client is async."""
    await stats.record(user_id, action)


# ------------------------------------------------------------------ tasks somebody keeps


class Keeper:
    """Fire-and-forget asyncio tasks that somebody keeps: referenced while they run, drained at shutdown."""

    def __init__(self) -> None:
        # TODO(k08) task 4: whatever the keeper needs to refer to the tasks it started.
        pass

    def spawn(self, work: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Start ``work`` as a task named ``name`` on the running loop, and keep it until it ends."""
        # TODO(k08) task 4: the work runs as a task of the running loop, named `name`, without
        # anybody awaiting it, and is returned. The keeper refers to it while it runs and lets
        # go of it once it has ended, however it ended. A task that failed is logged once at
        # ERROR through `logger`, naming it, with its traceback; a cancelled one is not.
        raise NotImplementedError("TODO(k08) task 4: spawn and keep the task")

    async def drain(self, timeout: float) -> None:  # noqa: ASYNC109 - the bound is what a drain is about
        """Wait for the running tasks, ``timeout`` seconds at most; cancel the rest and wait until they end."""
        # TODO(k08) task 5: returns as soon as every task the keeper still runs has ended, and
        # never later than `timeout` seconds: then the tasks still running are cancelled, and
        # the drain returns once they have finished cancelling.
        raise NotImplementedError("TODO(k08) task 5: drain the tasks")


# ------------------------------------------------------------------ the app


def create_app(
    stats: StatsStore, reports: Reports, feed: Feed, *, threads: int = 40, drain_timeout: float = 5.0
) -> FastAPI:
    """Build the API around its injected collaborators (the specs pass fakes)."""
    keeper = Keeper()  # noqa: F841 - the app's keeper, for task 4

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # TODO(k08) task 3: once the app's event loop runs, and before it serves anything, the
        # thread pool Starlette runs blocking work in has `threads` threads.
        yield
        # TODO(k08) task 5: when the app stops serving, the keeper's tasks are drained, with
        # `drain_timeout` as the bound.

    app = FastAPI(title="Kata 8: async or sync", lifespan=lifespan)

    @app.post("/actions", status_code=202)
    async def log_action(request: Request, background_tasks: BackgroundTasks) -> dict[str, Any]:
        """Accept one action; the work it sets going runs after the response, or beside it."""
        # TODO(k08) task 1: the body is an `ActionRequest`. After the response, `update_user_stats`
        # runs once with the user and the action, awaited on the app's event loop, and the
        # request's call ends only once it is done. Answer with `status` accepted, `user_id`
        # and `action`.
        # TODO(k08) task 2: after the response too, the report of the user is rebuilt once
        # through `reports`, in a worker thread, never on the event loop.
        # TODO(k08) task 4: beside the request, the `feed` publishes the action, in a task the
        # keeper keeps: the request does not wait for it.
        raise NotImplementedError("TODO(k08) task 1: accept the action and queue the stats update")

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        """Answer at once: an endpoint on the event loop, which answers only while the loop is free."""
        return {"status": "ok"}

    return app
