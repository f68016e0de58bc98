"""Specs for kata 15: analytics off the hot path.

Run them with

    uv run pytest katas/k15_analytics

Each spec names the README task it checks. Edit analytics.py, not this file (nor
conftest.py, which sets the specs' virtual clock).

Time here is two clocks, both the specs' own: the server's wall clock is a fake that
moves only when a spec moves it, and the event loop's clock, which the aggregation's
period runs on, is virtual: ten minutes of runs pass in no time at all (see conftest.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any

import fastapi
import pydantic
import pytest
from bs4 import BeautifulSoup

from dojo.fakes import BACKGROUND_HELD, BackgroundGate, FakeClock
from dojo.impl import kata_module
from dojo.plugin import KataClient
from dojo.teach import expect_json, expect_status, expect_type, lesson
from dojo.timeline import RESPONSE_COMPLETE, CatchAppErrors, Timeline, within_bound
from dojo.virtual_clock import Lifespan, idle_wait, settle

analytics = kata_module("k15_analytics", "analytics")


class _Warm(pydantic.BaseModel):
    name: str = pydantic.Field(min_length=1)
    at: pydantic.AwareDatetime | None = None


async def _warm(body: _Warm) -> None:
    """A route like the kata's: FastAPI imports more of itself and of pydantic the first time it makes one."""


# Paid while pytest collects, rather than inside whichever spec builds the first app.
fastapi.FastAPI().post("/")(_warm)
# Character references cost a fifth of a second the first time the parser meets one.
BeautifulSoup("<!DOCTYPE html><p title='&quot;'>&lt;b&gt; &amp; &#x27;</p>", "html.parser").get_text()

#: The server's wall clock when a spec starts (the fake clock's).
NOW = datetime(2026, 3, 29, 0, 5, 30, tzinfo=timezone.utc)
#: A moment on the loop's clock too short for anything but a wrong schedule to fall in it.
EPSILON = 0.001
#: Turns of the event loop a spec lets pass to be sure nothing more happens: correct code needs none.
QUIET = 50
# ---------------------------------------------------------------- the fake store

APPEND_STARTED = "store: append started"
EVENT_STORED = "store: event stored"
READ = "store: read"


class FakeStore:
    """The event store, faked: ``append`` and ``read`` are its only methods, as the real one's, both async.

    ``hold()`` makes each append (and each read) wait inside the store until ``release()``,
    as a slow database would. ``fail_next_read(error)`` makes the next read raise it. Every
    read is kept in ``reads`` with the virtual moment it came and the position asked for.
    A read cancelled while it waits takes a few turns of the loop to clean up, as real
    I/O does.
    """

    CLEANUP_TURNS = 25

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.events: list[Any] = []
        self.reads: list[tuple[float, object]] = []
        self.read_cleaned_up = False
        self._failures: list[BaseException] = []
        self._gate = asyncio.Event()
        self._gate.set()

    def hold(self) -> None:
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def fail_next_read(self, error: BaseException) -> None:
        self._failures.append(error)

    def seed(self, *events: Any) -> None:
        """Put events in the log directly, as if they had been appended."""
        self.events.extend(events)

    async def append(self, event: Any) -> None:
        """Keep one event at the end of the log; yields like a network call, holds while told to."""
        self.timeline.record(APPEND_STARTED, shown(event))
        await asyncio.sleep(0)
        await self._gate.wait()
        self.events.append(event)
        self.timeline.record(EVENT_STORED, shown(event))

    async def read(self, start: int) -> list[Any]:
        """Every event from position ``start`` on, in arrival order (a copy)."""
        self.reads.append((asyncio.get_running_loop().time(), start))
        self.timeline.record(READ, f"from {start!r}")
        try:
            await asyncio.sleep(0)
            await self._gate.wait()
        except asyncio.CancelledError:
            for _ in range(self.CLEANUP_TURNS):
                await asyncio.sleep(0)
            self.read_cleaned_up = True
            raise
        if self._failures:
            raise self._failures.pop(0)
        if type(start) is not int or start < 0:
            raise TypeError(f"read(start) takes a position from 0 up, got {start!r}")
        return list(self.events[start:])

    def __repr__(self) -> str:
        return f"FakeStore({len(self.events)} events: {[shown(event) for event in self.events]})"


def shown(event: object) -> str:
    """``signup at 2026-03-28T23:30:10+00:00``: an event as a message shows it, whatever it holds."""
    name, at = getattr(event, "name", "?"), getattr(event, "at", "?")
    return f"{name!s:.40} at {at.isoformat() if isinstance(at, datetime) else at!r}"


@pytest.fixture(name="store")
def _store(timeline: Timeline) -> Iterator[FakeStore]:
    """The fake store (released after the spec, so nothing stays held)."""
    store = FakeStore(timeline)
    yield store
    store.release()


@pytest.fixture(name="clock")
def _clock() -> FakeClock:
    """The server's wall clock: it shows ``NOW`` until a spec moves it."""
    return FakeClock(NOW)


def when(text: str) -> datetime:
    return datetime.fromisoformat(text)


def event(name: str, at: str) -> Any:
    """An event as the store keeps it: the module's own ``TrackedEvent``."""
    return analytics.TrackedEvent(name, when(at))


# ---------------------------------------------------------------- what the failures teach

MINUTE = (
    "task 1: turn the moment into UTC first, then drop its seconds and fractions: the minute is the one UTC "
    "shows (README: Minutes of UTC time)"
)
NAIVE = (
    "task 1: a time without an offset could be anyone's local time, so it has no UTC minute, and guessing "
    "one is worse than refusing it (README: Minutes of UTC time)"
)
HOT_PATH = (
    "task 2: the client gets its answer first; the store hears of the event after the response, in a "
    "background task (README: Off the hot path)"
)
ACCEPT = "task 2: a valid event is answered 202 with its status, and stored once, as it came (README: Off the hot path)"
VALIDATE = (
    "task 2: declare the body as a model, a name of 1 to 64 characters and a time that carries its offset, so "
    "FastAPI answers 422 before anything is queued (README: Track an event without making the client wait)"
)
STAMP = (
    "task 2: an event that comes without a time is stamped with the server's clock at the request, the moment "
    "the server heard of it (README: Track an event without making the client wait)"
)
STORED_IN_UTC = (
    "task 2: the stored event carries the same moment, written in UTC, whatever offset the client used "
    "(README: Minutes of UTC time)"
)
COUNT = (
    "task 3: each run reads the events that arrived since the last one and adds each to its own minute "
    "and its name (README: Count the events per minute, once each)"
)
ONCE = (
    "task 3: the aggregator remembers how far into the store it has counted, in arrival order, so a second "
    "run counts nothing twice (README: Counting each event once)"
)
LATE = (
    "task 3: the place in the store says what is new, the moment the event carries says its minute: a late "
    "event is new and belongs to an old minute (README: Counting each event once)"
)
ORDER = (
    "task 3: buckets come oldest minute first; totals come most counted first, names in alphabetical order "
    "among equals (README: Count the events per minute, once each)"
)
PERIOD = (
    "task 4: the worker waits one period on the event loop's clock, runs the aggregation, and waits again, "
    "the first run one period after start-up (README: A worker on a period)"
)
PARKED = (
    "task 4: between runs the worker sleeps the whole period in one wait, leaving the loop idle, instead of "
    "waking to look at the time (README: A worker on a period)"
)
LIFESPAN = (
    "task 4: the lifespan starts the worker at start-up, and at shutdown cancels it and waits until it has "
    "stopped (README: A worker on a period)"
)
SURVIVES = (
    "task 4: a run that fails is logged once at ERROR with its traceback and the worker goes on; the events "
    "wait in the store for the next run (README: A worker on a period)"
)
REFUSE_PERIOD = (
    "task 4: a period of zero or less would make the worker spin, so building the app refuses it "
    "(README: Aggregate on a period)"
)
JSON = (
    "task 5: the JSON dashboard gives the buckets, oldest first, with their minute in UTC, the totals per "
    "name, and the number of events (README: The dashboard as JSON)"
)
AGGREGATED = (
    "task 5: the dashboard shows what the last run counted, never the raw events read again on every view "
    "(README: Counting each event once)"
)
PAGE = (
    "task 6: the page draws one bar per minute, its height in proportion to its count, each with a title a "
    "screen reader reads (README: The dashboard as a page)"
)
OFFLINE = (
    "task 6: everything the page needs is in the page: no script, no file, font or style sheet fetched from "
    "anywhere (README: A page that needs no network)"
)
ESCAPE = (
    "task 6: a name came from a client, so the page writes it as text, with every special character escaped "
    "(README: Escaping what clients wrote)"
)
EMPTY = (
    "task 6: with no events there is nothing to scale the bars by: the page says so instead "
    "(README: The dashboard as a page)"
)


# ---------------------------------------------------------------- driving the loop, the app and the client


def now() -> float:
    return asyncio.get_running_loop().time()


async def quiet() -> None:
    """Let the loop turn a while with no time passing: long enough for anything wrong to happen."""
    await settle(lambda: False, rounds=QUIET)


async def until(moment: float) -> None:
    """Sleep on the virtual clock until ``moment``, then let the loop settle."""
    await asyncio.sleep(max(0.0, moment - now()))
    await quiet()


def new_tasks(before: set[asyncio.Task[Any]]) -> list[str]:
    """The tasks started since ``before`` that are still running, by name."""
    current = asyncio.current_task()
    return [task.get_name() for task in asyncio.all_tasks() - before if task is not current and not task.done()]


@contextlib.asynccontextmanager
async def serving(store: FakeStore, clock: FakeClock, **options: Any) -> AsyncIterator[tuple[Any, Lifespan]]:
    """The kata's app over the fakes, started; shut down after the block unless the spec did."""
    __tracebackhide__ = True
    app = analytics.create_app(store, clock, **options)
    lifespan = Lifespan(app)
    outcome = await lifespan.start()
    assert outcome == "complete", lesson(
        expected="the app's start-up completes at once, with the aggregation's worker running",
        got=f"start-up {outcome}",
        revisit=LIFESPAN,
    )
    try:
        yield app, lifespan
    finally:
        if not lifespan.stopped:
            store.release()
            await lifespan.stop()


@contextlib.asynccontextmanager
async def client_of(app: Any) -> AsyncIterator[KataClient]:
    async with KataClient(CatchAppErrors(app)) as client:
        yield client


async def call(request: Any, *, revisit: str) -> Any:
    """A request through the client; an answer that does not come at once fails with the lesson."""
    __tracebackhide__ = True
    return await within_bound(request, revisit=revisit, expected="the answer")


async def track(client: KataClient, body: object, *, revisit: str = ACCEPT) -> Any:
    """POST /events and expect 202."""
    __tracebackhide__ = True
    response = await call(client.post("/events", json=body), revisit=revisit)
    expect_status(response, 202, expected=f"202 Accepted for {body!r}"[:200], revisit=revisit)
    return response


async def runs_reach(store: FakeStore, count: int) -> None:
    await settle(lambda: len(store.reads) >= count)


def stored(store: FakeStore, *, revisit: str) -> list[tuple[str, str]]:
    """The events the store holds as ``(name, at in ISO form)``, each checked to be a TrackedEvent first."""
    __tracebackhide__ = True
    out = []
    for kept in store.events:
        expect_type(kept, analytics.TrackedEvent, what="what the app hands the store", revisit=revisit)
        expect_type(kept.name, str, what="the stored event's name", revisit=revisit)
        expect_type(kept.at, datetime, what="the stored event's time", revisit=revisit)
        out.append((kept.name, kept.at.isoformat()))
    return out


# ---------------------------------------------------------------- task 1: the minute of an event


@pytest.mark.task(1)
@pytest.mark.parametrize(
    ("at", "minute"),
    [
        ("2026-03-29T01:30:45.123456+02:00", "2026-03-28T23:30:00+00:00"),
        ("2026-03-28T23:30:00+00:00", "2026-03-28T23:30:00+00:00"),
        ("2026-03-28T23:30:59.999999+00:00", "2026-03-28T23:30:00+00:00"),
        ("2026-03-28T23:31:00+00:00", "2026-03-28T23:31:00+00:00"),
        ("2026-12-31T21:59:59-03:00", "2027-01-01T00:59:00+00:00"),
        ("2026-06-01T06:00:10+05:45", "2026-06-01T00:15:00+00:00"),
        ("2026-06-01T00:00:10-09:30", "2026-06-01T09:30:00+00:00"),
    ],
    ids=[
        "+02:00 back a day",
        "on the minute",
        "a microsecond before the next",
        "the next",
        "-03:00 into a new year",
        "+05:45",
        "-09:30",
    ],
)
def test_an_event_belongs_to_the_utc_minute_in_which_it_happened(at, minute):
    """The first moment of the UTC minute, as an aware datetime in UTC, whatever offset the time came with."""
    got = analytics.minute_of(when(at))
    expect_type(got, datetime, what="the minute", revisit=MINUTE)
    assert got.utcoffset() == timedelta(0) and got.isoformat() == minute, lesson(
        expected=f"for {at}: {minute}, in UTC",
        got=got.isoformat(),
        revisit=MINUTE,
    )


class NoOffset(tzinfo):
    """A time zone that knows no offset: Python counts a time in it as naive."""

    def utcoffset(self, _dt: datetime | None) -> timedelta | None:
        return None

    def dst(self, _dt: datetime | None) -> timedelta | None:
        return None

    def tzname(self, _dt: datetime | None) -> str | None:
        return None


@pytest.mark.task(1)
@pytest.mark.parametrize("zone", [None, NoOffset()], ids=["no tzinfo", "a tzinfo with no offset"])
def test_a_time_without_an_offset_has_no_utc_minute_and_is_refused(zone):
    """A naive datetime is a ValueError that says why: nobody knows which minute of UTC it was."""
    naive = datetime(2026, 3, 29, 1, 30, 45, tzinfo=zone)
    got: object
    try:
        got = analytics.minute_of(naive)
    except Exception as error:  # noqa: BLE001 - whatever comes out is the finding
        got = error
    assert type(got) is ValueError and str(got).strip(), lesson(
        expected=f"a ValueError that says why, for {naive} ({type(zone).__name__})", got=repr(got), revisit=NAIVE
    )


@pytest.fixture(name="server_zone")
def _server_zone() -> Iterator[str]:
    """The server's own time zone, for the spec, is Kathmandu's (five hours 45 minutes ahead of UTC)."""
    zone = "NPT-05:45"  # POSIX: the name, then the hours to ADD to get UTC
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", zone)
        time.tzset()
        yield zone
    time.tzset()


@pytest.mark.task(1)
def test_the_servers_own_time_zone_changes_no_minute(server_zone):
    """On a server whose local time is UTC+05:45, an event's minute is still UTC's."""
    got = analytics.minute_of(when("2026-03-29T01:30:45+02:00"))
    expect_type(got, datetime, what="the minute", revisit=MINUTE)
    assert got.isoformat() == "2026-03-28T23:30:00+00:00", lesson(
        expected="2026-03-28T23:30:00+00:00, on a server whose local time is UTC+05:45",
        got=f"{got.isoformat()}: the server's local time leaked in",
        revisit=MINUTE,
    )


# ---------------------------------------------------------------- task 2: tracking off the hot path


@pytest.mark.task(2)
async def test_an_event_is_answered_202_before_the_store_has_it(store, clock, timeline):
    """With the store slow, the client has its whole 202 while the event is still on its way to the store."""
    body = {"name": "signup", "at": "2026-03-28T23:30:10+00:00"}
    store.hold()
    async with serving(store, clock) as (app, _):
        running = timeline.start(app, "POST", "/events", json=body)
        first = await timeline.wait_for(APPEND_STARTED, RESPONSE_COMPLETE)
        await quiet()
        answered = timeline.first(RESPONSE_COMPLETE)
        assert first.name == RESPONSE_COMPLETE or answered is not None, lesson(
            expected="the response complete while the store still holds the event back",
            got="no response yet: the request waits for the store"
            if answered is None
            else f"{timeline.render((RESPONSE_COMPLETE, EVENT_STORED))}",
            revisit=HOT_PATH,
        )
        store.release()
        done = await within_bound(running, revisit=HOT_PATH)
        expect_status(done, 202, expected="202 Accepted", revisit=ACCEPT)
        expect_json(done, {"status": "accepted"}, revisit=ACCEPT)
        await settle(lambda: bool(store.events))
        assert stored(store, revisit=ACCEPT) == [("signup", "2026-03-28T23:30:10+00:00")], lesson(
            expected="the event stored once, after the response", got=repr(store), revisit=ACCEPT
        )
        timeline.expect_order(
            RESPONSE_COMPLETE, EVENT_STORED, why="The event is stored after the response.", revisit=HOT_PATH
        )


@pytest.mark.task(2)
async def test_each_event_is_stored_once_in_the_order_it_came(store, clock):
    """Three requests, three events in the store, in that order, each as it was sent."""
    bodies = [
        {"name": "signup", "at": "2026-03-28T23:30:10+00:00"},
        {"name": "page_view", "at": "2026-03-28T23:31:00+00:00"},
        {"name": "signup", "at": "2026-03-28T23:29:59+00:00"},
    ]
    async with serving(store, clock) as (app, _), client_of(app) as client:
        for body in bodies:
            await track(client, body)
        await quiet()
        expected = [(body["name"], body["at"]) for body in bodies]
        got = stored(store, revisit=ACCEPT)
        assert got == expected, lesson(expected=f"{expected}", got=f"{got}", revisit=ACCEPT)


@pytest.mark.task(2)
async def test_an_event_stamped_in_another_time_zone_is_stored_in_utc(store, clock):
    """2026-03-29T01:30:10+02:00 is stored as the same moment written in UTC: 2026-03-28T23:30:10+00:00."""
    async with serving(store, clock) as (app, _), client_of(app) as client:
        await track(client, {"name": "signup", "at": "2026-03-29T01:30:10+02:00"})
        await quiet()
        got = stored(store, revisit=STORED_IN_UTC)
        assert got == [("signup", "2026-03-28T23:30:10+00:00")], lesson(
            expected="one event, signup at 2026-03-28T23:30:10+00:00", got=f"{got}", revisit=STORED_IN_UTC
        )


@pytest.mark.task(2)
async def test_an_event_without_a_time_is_stamped_with_the_servers_clock_at_the_request(store, clock, timeline):
    """No ``at``: the clock is read at the request, not later, when the stored event is written."""
    gate = BackgroundGate(timeline)
    async with serving(store, clock) as (app, _):
        running = timeline.start(gate.wrap(app), "POST", "/events", json={"name": "export"})
        await timeline.wait_for(BACKGROUND_HELD)
        clock.advance(90)  # the server is busy: the background tasks run a minute and a half later
        gate.open()
        done = await within_bound(running, revisit=STAMP)
        expect_status(done, 202, revisit=ACCEPT)
        await quiet()
        got = stored(store, revisit=STAMP)
        assert got == [("export", NOW.isoformat())], lesson(
            expected=f"one event, export at {NOW.isoformat()}, the clock when the request came",
            got=f"{got}",
            revisit=STAMP,
        )


@pytest.mark.task(2)
@pytest.mark.parametrize(
    "body",
    [
        {"at": "2026-03-28T23:30:10+00:00"},
        {"name": "", "at": "2026-03-28T23:30:10+00:00"},
        {"name": "x" * 65},
        {"name": "é" * 65},
        {"name": None},
        {"name": 42},
        {"name": "signup", "at": "2026-03-28T23:30:10"},
        {"name": "signup", "at": "yesterday"},
        None,
        [],
        "signup",
    ],
    ids=[
        "no name",
        "empty name",
        "65 characters",
        "65 accented characters",
        "null name",
        "number name",
        "time without offset",
        "not a time",
        "null body",
        "list body",
        "string body",
    ],
)
async def test_a_bad_event_is_a_422_and_nothing_is_stored(store, clock, body):
    """A missing or empty name, a name past 64 characters, a time without its offset, a body that is no object."""
    async with serving(store, clock) as (app, _), client_of(app) as client:
        response = await call(client.post("/events", json=body), revisit=VALIDATE)
        expect_status(response, 422, expected=f"422 Unprocessable Content for {body!r}"[:200], revisit=VALIDATE)
        await quiet()
        assert store.events == [] and client.app_errors == [], lesson(
            expected="nothing stored, nothing raised, for a rejected request",
            got=f"{store!r}; raised {[repr(error) for error in client.app_errors]}",
            revisit=VALIDATE,
        )


@pytest.mark.task(2)
@pytest.mark.parametrize(
    "name",
    ["x", "x" * 64, "é", "é" * 64, "<script>alert(1)</script>"],
    ids=["1", "64", "1 é", "64 é", "markup"],
)
async def test_a_name_of_1_to_64_characters_is_accepted_and_stored_as_it_is(store, clock, name):
    """Both limits are allowed, a character is a character (not a byte), and any text is kept as it came."""
    async with serving(store, clock) as (app, _), client_of(app) as client:
        await track(client, {"name": name, "at": "2026-03-28T23:30:10+00:00"}, revisit=VALIDATE)
        await quiet()
        got = stored(store, revisit=ACCEPT)
        assert got == [(name, "2026-03-28T23:30:10+00:00")], lesson(
            expected=f"one event named {name!r}, {len(name)} characters", got=f"{got}"[:300], revisit=ACCEPT
        )


# ---------------------------------------------------------------- task 3: counting, once each

# (name, time) pairs, made into the module's events inside each spec: collecting never imports it.
SIGNUP_0130_HELSINKI = ("signup", "2026-03-29T01:30:10+02:00")  # 23:30 UTC, the day before
VIEW_2330 = ("page_view", "2026-03-28T23:30:59.999999+00:00")
VIEW_1831_CHICAGO = ("page_view", "2026-03-28T18:31:00-05:00")  # 23:31 UTC


def events(*pairs: tuple[str, str]) -> list[Any]:
    return [event(name, at) for name, at in pairs]


async def run(aggregator: Any, *, revisit: str = COUNT) -> int:
    """One aggregation run, bounded; what it returns, type-checked."""
    __tracebackhide__ = True
    counted = await within_bound(aggregator.run(), revisit=revisit, expected="the run finished")
    return expect_type(counted, int, what="what a run returns, the number of events it counted", revisit=revisit)


def buckets(aggregator: Any, *, revisit: str = COUNT) -> list[tuple[str, int]]:
    """The aggregator's buckets as ``(minute in ISO form, count)``, type-checked."""
    __tracebackhide__ = True
    got = expect_type(aggregator.per_minute(), list, what="the buckets", revisit=revisit, items=(analytics.Bucket,))
    for bucket in got:
        expect_type(bucket.minute, datetime, what="a bucket's minute", revisit=revisit)
        expect_type(bucket.count, int, what="a bucket's count", revisit=revisit)
    return [(bucket.minute.isoformat(), bucket.count) for bucket in got]


def totals(aggregator: Any, *, revisit: str = COUNT) -> list[tuple[str, int]]:
    """The aggregator's totals as ``(name, count)``, type-checked."""
    __tracebackhide__ = True
    got = expect_type(aggregator.totals(), list, what="the totals", revisit=revisit, items=(analytics.Total,))
    for total in got:
        expect_type(total.name, str, what="a total's name", revisit=revisit)
        expect_type(total.count, int, what="a total's count", revisit=revisit)
    return [(total.name, total.count) for total in got]


@pytest.mark.task(3)
async def test_a_new_aggregator_has_counted_nothing(store):
    """Before any run, and after a run over an empty store: no bucket, no total, 0 counted."""
    aggregator = analytics.Aggregator(store)
    assert buckets(aggregator) == [] and totals(aggregator) == [], lesson(
        expected="no buckets and no totals before the first run", got=f"{buckets(aggregator)}", revisit=COUNT
    )
    counted = await run(aggregator)
    assert counted == 0 and buckets(aggregator) == [] and totals(aggregator) == [], lesson(
        expected="0 counted, nothing in the buckets or the totals, with nothing in the store",
        got=f"{counted} counted; {buckets(aggregator)}; {totals(aggregator)}",
        revisit=COUNT,
    )


@pytest.mark.task(3)
async def test_a_run_counts_each_event_in_its_utc_minute_and_under_its_name(store):
    """+02:00 and UTC events of 23:30 UTC share a bucket; -05:00's 18:31 is 23:31 UTC."""
    store.seed(*events(SIGNUP_0130_HELSINKI, VIEW_1831_CHICAGO, VIEW_2330))
    aggregator = analytics.Aggregator(store)
    counted = await run(aggregator)
    expected = [("2026-03-28T23:30:00+00:00", 2), ("2026-03-28T23:31:00+00:00", 1)]
    got = buckets(aggregator)
    assert counted == 3 and got == expected, lesson(
        expected=f"3 counted, buckets {expected}", got=f"{counted} counted, buckets {got}", revisit=COUNT
    )
    assert totals(aggregator) == [("page_view", 2), ("signup", 1)], lesson(
        expected="totals: page_view 2, then signup 1", got=f"{totals(aggregator)}", revisit=COUNT
    )


@pytest.mark.task(3)
async def test_running_again_counts_nothing_twice(store):
    """A second and a third run with nothing new leave every count as it was and return 0."""
    store.seed(*events(SIGNUP_0130_HELSINKI, VIEW_2330))
    aggregator = analytics.Aggregator(store)
    await run(aggregator)
    before = (buckets(aggregator), totals(aggregator))
    again = [await run(aggregator, revisit=ONCE), await run(aggregator, revisit=ONCE)]
    after = (buckets(aggregator, revisit=ONCE), totals(aggregator, revisit=ONCE))
    assert again == [0, 0] and after == before, lesson(
        expected=f"runs that count 0 and leave {before}",
        got=f"runs that counted {again}, leaving {after}",
        revisit=ONCE,
    )


@pytest.mark.task(3)
async def test_events_that_arrive_between_runs_are_each_counted_once(store):
    """Run, two more events, run, one more, run, run: every event once, each run counting only the new."""
    aggregator = analytics.Aggregator(store)
    store.seed(event("signup", "2026-03-28T23:30:10+00:00"))
    counted = [await run(aggregator, revisit=ONCE)]
    store.seed(event("signup", "2026-03-28T23:30:20+00:00"), event("export", "2026-03-28T23:31:05+00:00"))
    counted.append(await run(aggregator, revisit=ONCE))
    store.seed(event("signup", "2026-03-28T23:31:06+00:00"))
    counted += [await run(aggregator, revisit=ONCE), await run(aggregator, revisit=ONCE)]
    got = buckets(aggregator, revisit=ONCE)
    expected = [("2026-03-28T23:30:00+00:00", 2), ("2026-03-28T23:31:00+00:00", 2)]
    assert counted == [1, 2, 1, 0] and got == expected, lesson(
        expected=f"runs counting [1, 2, 1, 0], buckets {expected}",
        got=f"runs counting {counted}, buckets {got}",
        revisit=ONCE,
    )
    starts = [start for _, start in store.reads]
    assert starts == [0, 1, 3, 4], lesson(
        expected="each run reads only what arrived since the last: from positions 0, 1, 3 and 4",
        got=f"reads from {starts}",
        revisit=ONCE,
    )


@pytest.mark.task(3)
async def test_a_late_event_lands_in_its_own_minute(store):
    """23:35 is counted; an event of 23:30 arrives late: the 23:30 bucket grows, no other does."""
    aggregator = analytics.Aggregator(store)
    store.seed(event("signup", "2026-03-28T23:30:10+00:00"), event("signup", "2026-03-28T23:35:10+00:00"))
    await run(aggregator, revisit=LATE)
    store.seed(event("signup", "2026-03-29T01:30:40+02:00"))  # 23:30 UTC, arriving after 23:35 was counted
    counted = await run(aggregator, revisit=LATE)
    got = buckets(aggregator, revisit=LATE)
    expected = [("2026-03-28T23:30:00+00:00", 2), ("2026-03-28T23:35:00+00:00", 1)]
    assert counted == 1 and got == expected, lesson(
        expected=f"the late event counted in 23:30: {expected}", got=f"{counted} counted, {got}", revisit=LATE
    )


@pytest.mark.task(3)
async def test_a_run_whose_read_fails_counts_nothing_and_the_next_run_counts_everything(store):
    """The store fails a read: that run raises its error, and the next run counts both events."""
    store.seed(*events(SIGNUP_0130_HELSINKI, VIEW_2330))
    aggregator = analytics.Aggregator(store)
    error = ConnectionError("the analytics database is down")
    store.fail_next_read(error)
    try:
        await within_bound(aggregator.run(), revisit=COUNT)
    except ConnectionError as raised:
        got: object = raised
    else:
        got = "nothing raised"
    counted = await run(aggregator)
    assert got is error and counted == 2 and buckets(aggregator) == [("2026-03-28T23:30:00+00:00", 2)], lesson(
        expected="the store's error out of the failed run, then a run that counts both events in 23:30",
        got=f"{got!r}; then {counted} counted, buckets {buckets(aggregator)}",
        revisit=COUNT,
    )


@pytest.mark.task(3)
async def test_totals_come_most_counted_first_and_alphabetically_among_equals(store):
    """Counts 3, 2, 2 and 1: export 3, then café and signup (2 each, alphabetical), then zoom."""
    names = ["signup", "export", "café", "zoom", "export", "signup", "café", "export"]
    store.seed(*(event(name, "2026-03-28T23:30:10+00:00") for name in names))
    aggregator = analytics.Aggregator(store)
    await run(aggregator, revisit=ORDER)
    expected = [("export", 3), ("café", 2), ("signup", 2), ("zoom", 1)]
    assert totals(aggregator, revisit=ORDER) == expected, lesson(
        expected=f"{expected}", got=f"{totals(aggregator, revisit=ORDER)}", revisit=ORDER
    )


@pytest.mark.task(3)
async def test_buckets_come_oldest_minute_first_whatever_order_the_events_came_in(store):
    """Events of 23:32, 23:30 and 23:31 give buckets 23:30, 23:31, 23:32."""
    store.seed(*(event("signup", f"2026-03-28T23:3{minute}:00+00:00") for minute in (2, 0, 1, 2)))
    aggregator = analytics.Aggregator(store)
    await run(aggregator, revisit=ORDER)
    expected = [(f"2026-03-28T23:3{minute}:00+00:00", count) for minute, count in ((0, 1), (1, 1), (2, 2))]
    got = buckets(aggregator, revisit=ORDER)
    assert got == expected, lesson(expected=f"{expected}", got=f"{got}", revisit=ORDER)


# ---------------------------------------------------------------- task 4: the worker


@pytest.mark.task(4)
async def test_the_worker_starts_with_the_app_not_when_the_app_is_built(store, clock):
    """An app built and not started runs nothing, however long; started, it runs 10 s later."""
    before = asyncio.all_tasks()
    app = analytics.create_app(store, clock)
    await until(now() + 30.0)
    left, idle_reads = new_tasks(before), len(store.reads)
    lifespan = Lifespan(app)
    outcome = await lifespan.start()
    start = now()
    await until(start + 10.0)
    at = [round(moment - start, 6) for moment, _ in store.reads]
    await lifespan.stop()
    assert not left and idle_reads == 0 and outcome == "complete" and at == [10.0], lesson(
        expected="no task and no run while the app is only built; start-up complete, then a run 10 s later",
        got=f"while built: tasks {left or 'none'}, {idle_reads} run(s); start-up {outcome}, then runs at {at} s",
        revisit=LIFESPAN,
    )


@pytest.mark.task(4)
async def test_by_default_the_aggregation_runs_every_10_seconds_the_first_10_seconds_after_start_up(store, clock):
    """Built with a store and a clock alone (as kata serve builds it): runs at 10, 20 and 30 s, not before."""
    async with serving(store, clock):
        start = now()
        await until(start + 10.0 - EPSILON)
        early = len(store.reads)
        await until(start + 30.0)
        at = [round(moment - start, 6) for moment, _ in store.reads]
        assert early == 0 and at == [10.0, 20.0, 30.0], lesson(
            expected="runs at 10, 20 and 30 s after start-up, none before", got=f"runs at {at} s", revisit=PERIOD
        )


@pytest.mark.task(4)
async def test_the_app_runs_the_aggregation_on_the_period_it_was_given(store, clock):
    """Period 2.5 s: runs at 2.5, 5 and 7.5 s."""
    async with serving(store, clock, period=2.5):
        start = now()
        await until(start + 2.5 - EPSILON)
        early = len(store.reads)
        await until(start + 7.5)
        at = [round(moment - start, 6) for moment, _ in store.reads]
        assert early == 0 and at == [2.5, 5.0, 7.5], lesson(
            expected="runs at 2.5, 5 and 7.5 s, none before", got=f"runs at {at} s", revisit=PERIOD
        )


@pytest.mark.task(4)
async def test_between_runs_the_worker_leaves_the_event_loop_idle(store, clock):
    """Over 30 s of period 10 s the loop wakes for the runs only: three jumps of the clock, a few turns of work."""
    async with serving(store, clock):
        busy, jumps = await idle_wait(30.0)
        await quiet()  # the run due at the very moment the wait ends
        runs = len(store.reads)
        assert runs == 3 and jumps <= 3 and busy <= 30, lesson(
            expected="3 runs in 30 s, and at most 3 jumps of the clock (one a run) and a few turns of work",
            got=f"{runs} run(s), {jumps} jumps and {busy} busy turns"
            + (": the worker keeps waking up to look at the time" if jumps > 3 or busy > 30 else ""),
            revisit=PARKED,
        )


@pytest.mark.task(4)
async def test_a_failed_run_is_logged_once_at_error_and_the_next_run_counts_the_events(store, clock, caplog):
    """The store fails the first read: one ERROR with its traceback; ten seconds later the events are counted."""
    caplog.set_level(logging.DEBUG)
    error = ConnectionError("the analytics database is down")
    store.fail_next_read(error)
    async with serving(store, clock) as (app, _), client_of(app) as client:
        await track(client, {"name": "signup", "at": "2026-03-28T23:30:10+00:00"})
        start = now()
        await until(start + 10.0)
        records = [record for record in caplog.records if record.levelno >= logging.WARNING]
        assert len(records) == 1 and records[0].levelno == logging.ERROR, lesson(
            expected="one record at ERROR for the failed run, nothing else at WARNING or above",
            got=f"{[(record.levelname, record.getMessage()) for record in records]}",
            revisit=SURVIVES,
        )
        record = records[0]
        assert record.exc_info is not None and record.exc_info[1] is error and record.name == analytics.logger.name, (
            lesson(
                expected=f"the store's ConnectionError, traceback and all, logged through {analytics.logger.name!r}",
                got=f"from {record.name!r}, carrying {record.exc_info and record.exc_info[1]!r}",
                revisit=SURVIVES,
            )
        )
        await until(start + 20.0)
        reads = [(round(moment - start, 6), position) for moment, position in store.reads]
        assert reads == [(10.0, 0), (20.0, 0)], lesson(
            expected="a second run at 20 s, which reads the store from its first event again: nothing was counted",
            got=f"runs at (seconds, position read from): {reads}",
            revisit=SURVIVES,
        )


@pytest.mark.task(4)
async def test_shutdown_stops_the_worker_and_leaves_no_task(store, clock):
    """After two runs the app stops: shutdown completes, no task is left, no run comes after."""
    before = asyncio.all_tasks()
    async with serving(store, clock) as (_, lifespan):
        await until(now() + 20.0)
        outcome = await lifespan.stop()
        left = new_tasks(before)
        runs = len(store.reads)
        await until(now() + 60.0)
        assert runs == 2 and outcome == "complete" and not left and len(store.reads) == runs, lesson(
            expected="2 runs in 20 s; then shutdown complete, no task left running, no run after it",
            got=f"{runs} run(s) in 20 s; shutdown {outcome}; still running: {left or 'nothing'}; "
            f"{len(store.reads) - runs} run(s) after it",
            revisit=LIFESPAN,
        )


@pytest.mark.task(4)
async def test_shutdown_in_the_middle_of_a_run_waits_until_the_worker_has_stopped(store, clock):
    """A run waits on a slow store when the app stops: shutdown completes only once the worker has stopped."""
    async with serving(store, clock) as (_, lifespan):
        store.hold()
        await until(now() + 10.0)
        stopping = asyncio.ensure_future(lifespan.stop())
        await within_bound(asyncio.shield(stopping), revisit=LIFESPAN)
        outcome = stopping.result()
        assert outcome == "complete" and store.read_cleaned_up, lesson(
            expected="shutdown complete once the run, cancelled mid-read, has finished cleaning up",
            got=f"shutdown {outcome}, "
            + ("with the read cleaned up" if store.read_cleaned_up else "before the cancelled run had stopped"),
            revisit=LIFESPAN,
        )


@pytest.mark.task(4)
@pytest.mark.parametrize("period", [0.0, -1.0])
def test_a_period_of_zero_or_less_is_refused(store, clock, period):
    """A worker with no time between runs would spin: building the app refuses it with a ValueError."""
    got: object
    try:
        got = analytics.create_app(store, clock, period=period)
    except Exception as error:  # noqa: BLE001 - whatever comes out is the finding
        got = error
    assert type(got) is ValueError and str(got).strip(), lesson(
        expected=f"a ValueError that says why, for a period of {period:g}",
        got="an app" if not isinstance(got, Exception) else repr(got),
        revisit=REFUSE_PERIOD,
    )


@pytest.mark.task(4)
async def test_a_period_of_a_millisecond_is_kept(store, clock):
    """The smallest period a spec tries, 0.001 s: runs at 1, 2 and 3 ms."""
    async with serving(store, clock, period=0.001):
        start = now()
        await until(start + 0.003)
        at = [round(moment - start, 6) for moment, _ in store.reads]
        assert at == [0.001, 0.002, 0.003], lesson(
            expected="runs at 0.001, 0.002 and 0.003 s", got=f"runs at {at} s", revisit=REFUSE_PERIOD
        )


# ---------------------------------------------------------------- task 5: the JSON dashboard

EVENTS = [
    {"name": "signup", "at": "2026-03-29T01:30:10+02:00"},
    {"name": "page_view", "at": "2026-03-28T23:30:40+00:00"},
    {"name": "page_view", "at": "2026-03-28T18:31:00-05:00"},
    {"name": "café ☕", "at": "2026-03-28T23:33:00+00:00"},
    {"name": "page_view", "at": "2026-03-28T23:33:59+00:00"},
]
DASHBOARD = {
    "buckets": [
        {"minute": "2026-03-28T23:30:00+00:00", "count": 2},
        {"minute": "2026-03-28T23:31:00+00:00", "count": 1},
        {"minute": "2026-03-28T23:33:00+00:00", "count": 2},
    ],
    "totals": [{"name": "page_view", "count": 3}, {"name": "café ☕", "count": 1}, {"name": "signup", "count": 1}],
    "events": 5,
}


async def counted(client: KataClient, bodies: list[Any], *, revisit: str) -> None:
    """Track every body, then let one period pass, so a run has counted them."""
    for body in bodies:
        await track(client, body, revisit=revisit)
    await until(now() + analytics.PERIOD)


async def get(client: KataClient, path: str, *, revisit: str) -> Any:
    __tracebackhide__ = True
    response = await call(client.get(path), revisit=revisit)
    expect_status(response, 200, expected=f"200 OK for GET {path}", revisit=revisit)
    return response


@pytest.mark.task(5)
async def test_the_json_dashboard_of_an_app_with_no_events_is_empty(store, clock):
    """No buckets, no totals, 0 events."""
    async with serving(store, clock) as (app, _), client_of(app) as client:
        await until(now() + analytics.PERIOD)
        response = await get(client, "/dashboard.json", revisit=JSON)
        expect_json(response, {"buckets": [], "totals": [], "events": 0}, revisit=JSON)


@pytest.mark.task(5)
async def test_the_json_dashboard_gives_the_buckets_the_totals_and_the_number_of_events(store, clock):
    """Five events in three UTC minutes, three names: every count, minutes in UTC with their offset."""
    async with serving(store, clock) as (app, _), client_of(app) as client:
        await counted(client, EVENTS, revisit=JSON)
        response = await get(client, "/dashboard.json", revisit=JSON)
        expect_type(response.json(), dict, what="the JSON body", revisit=JSON)
        expect_json(response, DASHBOARD, expected=f"{DASHBOARD}", revisit=JSON)


@pytest.mark.task(5)
async def test_the_dashboard_shows_what_the_last_run_counted_not_events_stored_since(store, clock):
    """Events tracked after a run are not on the dashboard until the next run has counted them."""
    async with serving(store, clock) as (app, _), client_of(app) as client:
        await counted(client, EVENTS[:1], revisit=AGGREGATED)
        await track(client, EVENTS[1], revisit=AGGREGATED)
        await quiet()
        between = (await get(client, "/dashboard.json", revisit=AGGREGATED)).json()
        await until(now() + analytics.PERIOD)
        after = (await get(client, "/dashboard.json", revisit=AGGREGATED)).json()
        got = (between.get("events"), after.get("events"))
        assert got == (1, 2), lesson(
            expected="1 event on the dashboard between the runs, 2 after the next run",
            got=f"{got[0]} between, {got[1]} after",
            revisit=AGGREGATED,
        )


# ---------------------------------------------------------------- task 6: the page


async def page_of(store: FakeStore, clock: FakeClock, bodies: list[Any], *, revisit: str) -> tuple[Any, str]:
    """The dashboard page (parsed, and as text) of an app that tracked ``bodies`` and ran once."""
    __tracebackhide__ = True
    async with serving(store, clock) as (app, _), client_of(app) as client:
        await counted(client, bodies, revisit=revisit)
        response = await get(client, "/dashboard", revisit=revisit)
    kind = response.headers.get("content-type", "")
    assert kind.startswith("text/html"), lesson(
        expected="a page, content-type text/html", got=f"content-type {kind!r}: {response.text[:200]}", revisit=revisit
    )
    return BeautifulSoup(response.text, "html.parser"), response.text


def bars(soup: Any) -> list[Any]:
    """The chart's bars: the ``rect`` elements of its ``svg`` that carry a ``title``."""
    return [rect for svg in soup.find_all("svg") for rect in svg.find_all("rect") if rect.find("title")]


def rows(soup: Any) -> list[list[str]]:
    return [[cell.get_text(strip=True) for cell in row.find_all("td")] for row in soup.find_all("tr")]


@pytest.mark.task(6)
async def test_the_page_draws_one_bar_per_minute_each_titled_with_its_minute_and_count(store, clock):
    """Three minutes, three bars, oldest first, each with a title such as 2026-03-28 23:30 UTC: 2 events."""
    soup, _ = await page_of(store, clock, EVENTS, revisit=PAGE)
    titles = [rect.find("title").get_text(strip=True) for rect in bars(soup)]
    expected = ["2026-03-28 23:30 UTC: 2 events", "2026-03-28 23:31 UTC: 1 event", "2026-03-28 23:33 UTC: 2 events"]
    assert titles == expected, lesson(expected=f"bars titled {expected}", got=f"{titles}", revisit=PAGE)


@pytest.mark.task(6)
async def test_each_bar_is_as_tall_as_its_count_in_proportion_to_the_busiest_minute(store, clock):
    """Counts 3, 1 and 2: heights in the ratio 3 : 1 : 2, the busiest minute the tallest, all on one baseline."""
    bodies = [{"name": "signup", "at": f"2026-03-28T23:3{minute}:00+00:00"} for minute in (0, 0, 0, 1, 2, 2)]
    soup, _ = await page_of(store, clock, bodies, revisit=PAGE)
    try:
        heights = [float(rect["height"]) for rect in bars(soup)]
        bottoms = {round(float(rect.get("y", 0)) + float(rect["height"]), 3) for rect in bars(soup)}
    except (KeyError, ValueError) as error:
        raise AssertionError(lesson(expected="bars with a height in numbers", got=repr(error), revisit=PAGE)) from None
    ratios = [round(height / max(heights), 3) for height in heights] if heights and max(heights) > 0 else heights
    assert ratios == [1.0, 0.333, 0.667], lesson(
        expected="three bars, heights in proportion 1, 0.333, 0.667 of the tallest",
        got=f"heights {heights}",
        revisit=PAGE,
    )
    assert len(bottoms) == 1, lesson(
        expected="every bar standing on the same baseline: its top at the chart's height less its own",
        got=f"bars ending at {sorted(bottoms)}: they hang from the top",
        revisit=PAGE,
    )


@pytest.mark.task(6)
async def test_the_page_has_the_numbers_in_two_tables_beside_the_chart(store, clock):
    """A table of minutes (label, count) and a table of names (name, total), each with a header row."""
    soup, _ = await page_of(store, clock, EVENTS, revisit=PAGE)
    tables = [table for table in soup.find_all("table") if table.find_parent("svg") is None]
    found = [([cell.get_text(strip=True) for cell in table.find_all("th")], rows(table)) for table in tables]
    minutes = [["2026-03-28 23:30 UTC", "2"], ["2026-03-28 23:31 UTC", "1"], ["2026-03-28 23:33 UTC", "2"]]
    names = [["page_view", "3"], ["café ☕", "1"], ["signup", "1"]]
    shape = [(bool(headers), [row for row in body if row]) for headers, body in found]
    assert shape == [(True, minutes), (True, names)], lesson(
        expected=f"beside the chart, two tables with a header row each: rows {minutes}, then rows {names}",
        got=f"{len(tables)} table(s) outside the chart: "
        + "; ".join(f"header {headers or 'none'}, rows {body}" for headers, body in found),
        revisit=PAGE,
    )


@pytest.mark.task(6)
async def test_the_page_is_a_whole_document_a_browser_reads_the_same_offline(store, clock):
    """A doctype, a head with its charset (UTF-8) and a title, a heading, the chart and the tables in the body."""
    soup, text = await page_of(store, clock, EVENTS, revisit=PAGE)
    head = soup.find("head")
    charset = soup.find("meta", attrs={"charset": True})
    title = head.find("title", recursive=False) if head is not None else None
    svg = soup.find("svg")
    problems = [
        problem
        for problem, wrong in [
            ("no doctype first", not text.lstrip().lower().startswith("<!doctype html>")),
            ("no head", head is None),
            ("no meta charset of utf-8", charset is None or str(charset["charset"]).lower() != "utf-8"),
            ("no title in the head", head is None or not title or not title.get_text(strip=True)),
            ("the chart outside the body", svg is None or svg.find_parent("body") is None),
            ("no h1 heading", not (soup.find("h1") and soup.find("h1").get_text(strip=True))),
        ]
        if wrong
    ]
    assert not problems, lesson(
        expected="a whole HTML document: doctype, a head with charset UTF-8 and a title, an h1, the chart in the body",
        got="; ".join(problems),
        revisit=OFFLINE,
    )


@pytest.mark.task(6)
async def test_the_bars_stand_side_by_side_inside_the_chart(store, clock):
    """Each bar has a width, none overlaps the next, and all of them fit in the drawing the svg declares."""
    bodies = [{"name": "signup", "at": f"2026-03-28T23:3{minute}:00+00:00"} for minute in (0, 0, 0, 1, 2, 2, 4)]
    soup, _ = await page_of(store, clock, bodies, revisit=PAGE)
    svg = soup.find("svg")
    try:
        box = [float(part) for part in str(svg.get("viewbox") or svg.get("viewBox") or "").replace(",", " ").split()]
        if len(box) != 4:
            box = [0.0, 0.0, float(svg["width"]), float(svg["height"])]
        shapes = [tuple(float(rect.get(name, 0)) for name in ("x", "y", "width", "height")) for rect in bars(soup)]
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        raise AssertionError(
            lesson(
                expected="an svg with a viewBox (or width and height) and bars in numbers",
                got=repr(error),
                revisit=PAGE,
            )
        ) from None
    left, top, width, height = box
    inside = all(
        x >= left and y >= top and x + w <= left + width + 1e-6 and y + h <= top + height + 1e-6
        for x, y, w, h in shapes
    )
    apart = all(a[0] + a[2] <= b[0] + 1e-6 for a, b in itertools.pairwise(shapes))
    assert len(shapes) == 4 and all(w > 0 for _, _, w, _ in shapes) and apart and inside, lesson(
        expected=f"4 bars, each with a width, left to right without overlapping, inside the viewBox {box}",
        got=f"bars (x, y, width, height): {shapes}",
        revisit=PAGE,
    )


@pytest.mark.task(6)
async def test_every_name_on_the_page_is_text_never_markup(store, clock):
    """Names holding a script, an image with a handler and an ampersand show as written, and run nothing."""
    names = ["<script>alert(1)</script>", '"><img src=x onerror=alert(2)>', "Tom & Jerry's <b>"]
    bodies = [{"name": name, "at": "2026-03-28T23:30:10+00:00"} for name in names]
    soup, _ = await page_of(store, clock, bodies, revisit=ESCAPE)
    scripts = [tag for tag in soup.find_all("script") if "alert" in tag.get_text()]
    tags = [tag.name for tag in [*scripts, *soup.find_all(["img", "b"])]]
    handlers = [attr for tag in soup.find_all(True) for attr in tag.attrs if attr.lower().startswith("on")]
    assert not tags and not handlers, lesson(
        expected="no script, img or b element made of a name, no event handler: the names are text",
        got=f"elements {tags}, handlers {handlers}",
        revisit=ESCAPE,
    )
    text = soup.get_text()
    shown_as_text = [name for name in names if name in text]
    assert shown_as_text == names, lesson(
        expected=f"each name readable on the page as written: {names}", got=f"{shown_as_text}", revisit=ESCAPE
    )


@pytest.mark.task(6)
async def test_the_page_needs_nothing_from_the_network(store, clock):
    """No script, no link, img, iframe or other element that loads, no src or href, no address, no url() or @import."""
    soup, text = await page_of(store, clock, EVENTS, revisit=OFFLINE)
    loading = [str(tag)[:80] for tag in soup.find_all(["script", "link", "img", "iframe", "object", "embed", "use"])]
    pointing = [
        f"{tag.name} {attr}"
        for tag in soup.find_all(True)
        for attr in tag.attrs
        if attr.lower().split(":")[-1] in {"src", "href", "srcset", "action", "data"}
    ]
    addresses = re.findall(r"https?:|//[\w.-]+\.|url\(|@import", text.replace('xmlns="http://www.w3.org/2000/svg"', ""))
    assert not loading and not pointing and not addresses, lesson(
        expected="a page with everything inside it",
        got=f"elements {loading}; attributes {pointing}; addresses {addresses}",
        revisit=OFFLINE,
    )
    assert soup.find("svg") is not None, lesson(expected="the chart, an inline svg", got="no svg", revisit=OFFLINE)


@pytest.mark.task(6)
async def test_a_dashboard_with_no_events_is_a_page_that_says_so(store, clock):
    """No events: a 200 page saying there are none yet, with no bar, rather than an error."""
    soup, _ = await page_of(store, clock, [], revisit=EMPTY)
    text = " ".join(soup.get_text().split())
    assert "No events yet" in text and bars(soup) == [], lesson(
        expected="a page that says No events yet, with no bar", got=text[:300], revisit=EMPTY
    )
