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

import asyncio
import contextlib
import html
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Protocol

from fastapi import BackgroundTasks, FastAPI
from fastapi.responses import HTMLResponse
from pydantic import AwareDatetime, BaseModel, Field

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
    if at.tzinfo is None or at.utcoffset() is None:
        # A naive time could be anyone's local time: guessing would put it in the wrong minute.
        raise ValueError(f"a naive datetime has no time zone, so no UTC minute: {at.isoformat()}")
    # Into UTC first, then cut: the minute is UTC's, whatever offset the time came with.
    return at.astimezone(timezone.utc).replace(second=0, microsecond=0)


# ------------------------------------------------------------------ task 3: aggregation


class Aggregator:
    """Counts the store's events per UTC minute and per name; each event exactly once, however often it runs."""

    def __init__(self, store: EventStore) -> None:
        """An aggregator that has counted nothing yet."""
        self.store = store
        # The watermark: how many events of the store's log are counted. Arrival order, not
        # event time: a late event arrives after the watermark whatever moment it carries.
        self._counted = 0
        self._per_minute: dict[datetime, int] = {}
        self._per_name: dict[str, int] = {}

    async def run(self) -> int:
        """Count the events that arrived since the last run into their minutes; return how many."""
        new = await self.store.read(self._counted)
        for event in new:
            minute = minute_of(event.at)
            self._per_minute[minute] = self._per_minute.get(minute, 0) + 1
            self._per_name[event.name] = self._per_name.get(event.name, 0) + 1
        # Moved only once they are all counted: a run that fails counts nothing, and the next one takes them.
        self._counted += len(new)
        return len(new)

    def per_minute(self) -> list[Bucket]:
        """One bucket per minute that has events, oldest minute first."""
        return [Bucket(minute, count) for minute, count in sorted(self._per_minute.items())]

    def totals(self) -> list[Total]:
        """One total per event name, the most counted first; names in alphabetical order among equals."""
        ranked = sorted(self._per_name.items(), key=lambda item: (-item[1], item[0]))
        return [Total(name, count) for name, count in ranked]


# ------------------------------------------------------------------ task 4: the worker


async def aggregate_every(aggregator: Aggregator, period: float) -> None:
    """Run the aggregation every ``period`` seconds, the first one ``period`` after the start, until cancelled."""
    while True:
        await asyncio.sleep(period)  # parked on the loop's clock: nothing runs until the moment comes
        try:
            await aggregator.run()
        except Exception:
            # One failed run must not end the worker: the events wait in the store for the next run.
            logger.exception("the aggregation failed; the next run is in %g s", period)


# ------------------------------------------------------------------ task 6: the page

CHART_HEIGHT = 160
BAR_WIDTH = 28
GAP = 8
STYLE = (
    "body{font:15px/1.5 system-ui,sans-serif;margin:2rem;color:#1d2433;max-width:60rem}"
    "table{border-collapse:collapse;margin:1rem 0}td,th{padding:.2rem .8rem;border-bottom:1px solid #ccd}"
    "th{text-align:left}td.n{text-align:right}.bar{fill:#3b6fd8}svg text{font:11px system-ui,sans-serif;fill:#1d2433}"
)


def _events(count: int) -> str:
    return f"{count} event" if count == 1 else f"{count} events"


def _label(minute: datetime) -> str:
    return f"{minute:%Y-%m-%d %H:%M} UTC"


def render_dashboard(per_minute: list[Bucket], totals: list[Total]) -> str:
    """The dashboard as one HTML page: a bar chart of events per minute in inline SVG, and the numbers."""
    esc = html.escape  # every value that came from a client is text, never markup
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Analytics</title><style>{STYLE}</style></head><body>",
        "<h1>Events per minute</h1>",
    ]
    if not per_minute:
        # Nothing to scale the bars by: say so rather than divide by the tallest of no bars.
        parts.append("<p>No events yet. Track one with POST /events; the chart shows it after the next run.</p>")
        parts.append("</body></html>")
        return "\n".join(parts)
    tallest = max(bucket.count for bucket in per_minute)
    width = len(per_minute) * (BAR_WIDTH + GAP)
    parts.append(
        f'<svg role="img" aria-labelledby="chart-title" viewBox="0 0 {width} {CHART_HEIGHT + 20}" '
        f'width="{width}" height="{CHART_HEIGHT + 20}" xmlns="http://www.w3.org/2000/svg">'
        '<title id="chart-title">Events per minute, UTC</title>'
    )
    for index, bucket in enumerate(per_minute):
        height = CHART_HEIGHT * bucket.count / tallest  # the busiest minute fills the chart
        x = index * (BAR_WIDTH + GAP)
        parts.append(
            f'<rect class="bar" x="{x}" y="{CHART_HEIGHT - height:.2f}" width="{BAR_WIDTH}" height="{height:.2f}">'
            f"<title>{esc(_label(bucket.minute))}: {_events(bucket.count)}</title></rect>"
            f'<text x="{x + BAR_WIDTH / 2:g}" y="{CHART_HEIGHT + 14}" text-anchor="middle">'
            f"{bucket.minute:%H:%M}</text>"
        )
    parts.append("</svg>")
    parts.append("<h2>Per minute</h2><table><tr><th>minute</th><th>events</th></tr>")
    parts.extend(
        f'<tr><td>{esc(_label(bucket.minute))}</td><td class="n">{bucket.count}</td></tr>' for bucket in per_minute
    )
    parts.append("</table><h2>Per event</h2><table><tr><th>event</th><th>count</th></tr>")
    parts.extend(f'<tr><td>{esc(total.name)}</td><td class="n">{total.count}</td></tr>' for total in totals)
    parts.append("</table></body></html>")
    return "\n".join(parts)


# ------------------------------------------------------------------ tasks 2, 4 and 5: the app


class EventIn(BaseModel):
    """What a client posts: the event's name and, if it knows, when it happened."""

    name: str = Field(min_length=1, max_length=MAX_NAME)
    # AwareDatetime: a time without its offset is a 422, never a guess. None: stamped by the server.
    at: AwareDatetime | None = None


def create_app(store: EventStore, clock: Clock, *, period: float = PERIOD) -> FastAPI:
    """Build the API around its injected store and clock (the specs pass fakes)."""
    if period <= 0:
        raise ValueError(f"period must be more than 0 seconds, got {period}")
    aggregator = Aggregator(store)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        """Aggregate periodically while the app runs; stop the worker, and wait for it, at shutdown."""
        worker = asyncio.create_task(aggregate_every(aggregator, period), name="k15 aggregation")
        try:
            yield
        finally:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    app = FastAPI(title="Kata 15: analytics", lifespan=lifespan)

    @app.post("/events", status_code=202)
    async def track(event: EventIn, background_tasks: BackgroundTasks) -> dict[str, str]:
        """Accept one event; it is stored after the response, so the client never waits for the store."""
        # Read the clock now, at the request: the moment the server heard of it.
        at = event.at if event.at is not None else clock.now()
        background_tasks.add_task(store.append, TrackedEvent(event.name, at.astimezone(timezone.utc)))
        return {"status": "accepted"}

    @app.get("/dashboard.json")
    async def dashboard_json() -> dict[str, object]:
        """The counts as of the last aggregation run: per minute, per name, and all together."""
        per_minute = aggregator.per_minute()
        return {
            "buckets": [{"minute": bucket.minute.isoformat(), "count": bucket.count} for bucket in per_minute],
            "totals": [{"name": total.name, "count": total.count} for total in aggregator.totals()],
            "events": sum(bucket.count for bucket in per_minute),
        }

    @app.get("/dashboard", response_class=HTMLResponse)
    async def dashboard() -> str:
        """The same counts as a page with a chart, drawn on the server: no script, nothing from the network."""
        return render_dashboard(aggregator.per_minute(), aggregator.totals())

    return app
