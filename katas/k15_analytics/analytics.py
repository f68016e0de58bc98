"""Kata 15: analytics off the hot path.

A product counts what its users do: sign-ups, page views, exports. Every one of those
events must be tracked without making the user wait for the analytics store, counted
per minute of UTC time (whatever the time zone the event came stamped in, and however
late it came), and drawn on a small dashboard a person would rather look at than read,
which works with no network at all.

Read README.md in this folder for the tasks, then make the specs pass:

    uv run pytest katas/k15_analytics
"""

from __future__ import annotations

import asyncio  # noqa: F401 - you will need it
import contextlib
import html  # noqa: F401 - you will need it
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone  # noqa: F401 - you will need them
from typing import Protocol

from fastapi import BackgroundTasks, FastAPI, Request
from fastapi.responses import HTMLResponse
from pydantic import AwareDatetime, BaseModel, Field  # noqa: F401 - you will need them

logger = logging.getLogger(__name__)

#: Seconds between two runs of the aggregation, unless the app is built with another period.
PERIOD = 10.0
#: The longest event name accepted, in characters.
MAX_NAME = 64


@dataclass(frozen=True)
class TrackedEvent:
    """One thing a user did: its name, and the moment it happened, in UTC."""

    name: str
    at: datetime


@dataclass(frozen=True)
class Bucket:
    """How many events happened in one minute of UTC time (``minute``: its first moment)."""

    minute: datetime
    count: int


@dataclass(frozen=True)
class Total:
    """How many events of one name were counted, all minutes together."""

    name: str
    count: int


class EventStore(Protocol):
    """Where tracked events are kept, in the order they arrived: a table in production, a list in the specs."""

    async def append(self, event: TrackedEvent) -> None:
        """Keep one event at the end of the log; slow, as a write over the network is."""

    async def read(self, start: int) -> list[TrackedEvent]:
        """Every event from position ``start`` (0: the first ever kept) to the end, in arrival order."""


class Clock(Protocol):
    """The server's wall clock (a fake one in the specs)."""

    def now(self) -> datetime:
        """The current moment, timezone-aware, in UTC."""


# ------------------------------------------------------------------ task 1: the minute of an event


def minute_of(at: datetime) -> datetime:
    """The first moment of the UTC minute in which ``at`` happened; a naive ``at`` is a ValueError."""
    # TODO(k15) task 1: an aware datetime in UTC, with no seconds and no fraction of a second:
    # the minute UTC shows for that moment, whatever offset `at` came with, and whatever the
    # server's own time zone. A naive `at` is refused with a ValueError.
    raise NotImplementedError(f"TODO(k15) task 1: the UTC minute of {at!r}")


# ------------------------------------------------------------------ task 3: aggregation


class Aggregator:
    """Counts the store's events per UTC minute and per name; each event exactly once, however often it runs."""

    def __init__(self, store: EventStore) -> None:
        """An aggregator that has counted nothing yet."""
        self.store = store
        # TODO(k15) task 3: what the aggregator remembers between runs: its counts per minute
        # and per name, and how far into the store's log it has counted.

    async def run(self) -> int:
        """Count the events that arrived since the last run into their minutes; return how many."""
        # TODO(k15) task 3: each event of the store counted exactly once, however many runs:
        # in the bucket of its own UTC minute (a late event too) and under its name. A run
        # whose read fails raises, and counts nothing.
        raise NotImplementedError("TODO(k15) task 3: count the new events")

    def per_minute(self) -> list[Bucket]:
        """One bucket per minute that has events, oldest minute first."""
        # TODO(k15) task 3: a `Bucket` per minute counted so far, oldest minute first.
        raise NotImplementedError("TODO(k15) task 3: the buckets")

    def totals(self) -> list[Total]:
        """One total per event name, the most counted first; names in alphabetical order among equals."""
        # TODO(k15) task 3: a `Total` per name counted so far, the most counted first, and in
        # alphabetical order among equal counts.
        raise NotImplementedError("TODO(k15) task 3: the totals")


# ------------------------------------------------------------------ task 4: the worker


async def aggregate_every(aggregator: Aggregator, period: float) -> None:
    """Run the aggregation every ``period`` seconds, the first one ``period`` after the start, until cancelled."""
    # TODO(k15) task 4: one run every `period` seconds of the event loop's clock, the first one
    # period after the start; parked in between, never polling. A run that fails is logged once
    # at ERROR with its traceback, through `logger`, and the next run still comes.
    raise NotImplementedError("TODO(k15) task 4: run the aggregation on a period")


# ------------------------------------------------------------------ task 6: the page

CHART_HEIGHT = 160
BAR_WIDTH = 28
GAP = 8
STYLE = (
    "body{font:15px/1.5 system-ui,sans-serif;margin:2rem;color:#1d2433;max-width:60rem}"
    "table{border-collapse:collapse;margin:1rem 0}td,th{padding:.2rem .8rem;border-bottom:1px solid #ccd}"
    "th{text-align:left}td.n{text-align:right}.bar{fill:#3b6fd8}svg text{font:11px system-ui,sans-serif;fill:#1d2433}"
)


def render_dashboard(per_minute: list[Bucket], totals: list[Total]) -> str:
    """The dashboard as one HTML page: a bar chart of events per minute in inline SVG, and the numbers."""
    # TODO(k15) task 6: one page that needs nothing from the network: a bar chart in inline SVG,
    # one `rect` per minute, oldest first, its height in proportion to its count (the busiest
    # minute the tallest), each with a `title` that reads like 2026-03-28 23:30 UTC: 2 events
    # (or 1 event); a table row per minute and a table row per name with their counts. Every
    # name is shown as text, never as markup. With no minute at all: a page that says No events yet.
    raise NotImplementedError("TODO(k15) task 6: draw the dashboard")


# ------------------------------------------------------------------ tasks 2, 4 and 5: the app


class EventIn(BaseModel):
    """What a client posts: the event's name and, if it knows, when it happened."""

    # TODO(k15) task 2: `name`, required, 1 to 64 characters; `at`, optional, a time that
    # carries its UTC offset (one without is a 422). Anything else is answered 422.


def create_app(store: EventStore, clock: Clock, *, period: float = PERIOD) -> FastAPI:
    """Build the API around its injected store and clock (the specs pass fakes)."""
    # TODO(k15) task 4: a period of zero or less is refused with a ValueError.
    aggregator = Aggregator(store)  # noqa: F841 - the one aggregator of this app: the worker and the dashboard share it

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        """Aggregate periodically while the app runs; stop the worker, and wait for it, at shutdown."""
        # TODO(k15) task 4: the aggregation's worker runs while the app runs: started at
        # start-up, and at shutdown cancelled and waited for, leaving no task behind.
        yield

    app = FastAPI(title="Kata 15: analytics", lifespan=lifespan)

    @app.post("/events", status_code=202)
    async def track(request: Request, background_tasks: BackgroundTasks) -> dict[str, str]:
        """Accept one event; it is stored after the response, so the client never waits for the store."""
        # TODO(k15) task 2: the body is an `EventIn`. Answer 202 with status accepted at once;
        # the store gets a `TrackedEvent` after the response: its name, and its time in UTC,
        # the server's clock at this request when the client sent none.
        raise NotImplementedError("TODO(k15) task 2: track the event off the hot path")

    @app.get("/dashboard.json")
    async def dashboard_json() -> dict[str, object]:
        """The counts as of the last aggregation run: per minute, per name, and all together."""
        # TODO(k15) task 5: the buckets (each minute in ISO form, with its offset, and its
        # count), the totals (each name and its count), and the number of events, all as the
        # last run counted them.
        raise NotImplementedError("TODO(k15) task 5: the dashboard as JSON")

    @app.get("/dashboard", response_class=HTMLResponse)
    async def dashboard() -> str:
        """The same counts as a page with a chart, drawn on the server: no script, nothing from the network."""
        # TODO(k15) task 6: the page of `render_dashboard`, with the last run's counts.
        raise NotImplementedError("TODO(k15) task 6: the dashboard as a page")

    return app
