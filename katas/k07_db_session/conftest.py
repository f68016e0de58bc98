"""Fixtures for kata 7: a real SQLite database per spec, a watch on its sessions, a fake mailer.

Read them if you like; you do not need to change them.

**The database is real.** Each spec gets its own SQLite file in its temporary folder, a
copy of a template whose tables were made once per run from the kata's own ``Base``. Your
app opens it through SQLAlchemy and aiosqlite, as it would in production. The URL asks
SQLite to wait at most a twentieth of a second for a lock (``?timeout=0.05``), so the
specs that lock the database on purpose answer in milliseconds, not in SQLite's default
five seconds; those specs (marked ``locks_the_database``) make it a hundredth: while
another program holds the lock, nothing of your app's own writes at the same time.

**The mailer is fake**: it keeps what it is given, and a spec can hold it (a slow mail
server) or make it fail for one address.

**The watch** listens to SQLAlchemy's own events, for every engine, session and pooled
connection in the process, and writes what it sees on the spec's timeline: which session
ran which statement, each commit and rollback, each connection opened and closed. That is
how a spec tells the request's session from the task's, and sees a connection left open.
When a spec ends, a connection still open fails it, and the watch closes that connection,
so that one spec's leak never hangs the run or spills into the next spec.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import re
import shutil
import sqlite3
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from asgi_lifespan import LifespanManager
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import Pool

from dojo.fakes import EMAIL_FAILED, EMAIL_SENT, EMAIL_STARTED, BackgroundGate, Email
from dojo.impl import kata_module
from dojo.teach import lesson
from dojo.timeline import BOUND, ASGIApp, CatchAppErrors, Exchange, Timeline

users = kata_module("k07_db_session", "users")

# The stack the kata's module stands on, imported while pytest collects, so that its cost
# (a second or two where no bytecode is cached) never lands inside whichever spec comes first.
for _name in (
    "aiosqlite",
    "email_validator",
    "fastapi",
    "pydantic.v1",  # FastAPI checks each model against it when it builds a route
    "sqlalchemy.dialects.sqlite.aiosqlite",
    "sqlalchemy.ext.asyncio",
    "sqlalchemy.orm",
):
    importlib.import_module(_name)

#: Seconds a connection of the app waits for a lock before SQLite answers "database is locked".
LOCK_TIMEOUT = 0.05
#: The same, in a spec that locks the database on purpose (``@pytest.mark.locks_the_database``).
LOCKED_ON_PURPOSE_TIMEOUT = 0.01
#: Seconds the threads of closed connections get to end after a spec.
THREAD_GRACE = 0.5

SESSION_BEGAN = "session began"
SESSION_ENDED = "session ended"
STATEMENT = "SQL"
COMMITTED = "commit"
ROLLED_BACK = "rollback"
CONNECTION_OPENED = "connection opened"
CONNECTION_CLOSED = "connection closed"
DATABASE_LOCKED = "database locked by another program"
DATABASE_UNLOCKED = "database unlocked"
LOCKED_OUT = "the app was told: database is locked"

COLUMNS = ("id", "email", "name", "status", "error")


# ------------------------------------------------------------------ the database file


@dataclass
class Database:
    """The spec's own SQLite file, and what another program could do to it meanwhile.

    The spec reads and writes it with Python's plain ``sqlite3`` module, beside your app:
    what it reads is what is committed, whatever your code believes.
    """

    path: Path
    timeline: Timeline
    lock_timeout: float = LOCK_TIMEOUT
    _locks: list[sqlite3.Connection] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The URL your app is given: aiosqlite, this file, a short wait for locks."""
        return f"sqlite+aiosqlite:///{self.path}?timeout={self.lock_timeout}"

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.path, timeout=BOUND, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA synchronous = OFF")  # no wait for the disk: see DatabaseWatch
        return connection

    def rows(self) -> list[dict[str, Any]]:
        """Every user as committed, by id."""
        with contextlib.closing(self._connect()) as connection:
            found = connection.execute(f"SELECT {', '.join(COLUMNS)} FROM users ORDER BY id").fetchall()  # noqa: S608 - our own column names
        return [dict(zip(COLUMNS, row, strict=True)) for row in found]

    def user(self, user_id: int) -> dict[str, Any] | None:
        """One user as committed, or None."""
        return next((row for row in self.rows() if row["id"] == user_id), None)

    def add_user(self, email: str, name: str, status: str = "pending", error: str | None = None) -> int:
        """Insert a user directly, as an earlier registration would have; its id."""
        with contextlib.closing(self._connect()) as connection:
            cursor = connection.execute(
                "INSERT INTO users (email, name, status, error) VALUES (?, ?, ?, ?)", (email, name, status, error)
            )
            return int(cursor.lastrowid or 0)

    def rename(self, user_id: int, name: str) -> None:
        """Change a user's name directly, as another request would."""
        with contextlib.closing(self._connect()) as connection:
            connection.execute("UPDATE users SET name = ? WHERE id = ?", (name, user_id))

    def lock(self, how: str = "IMMEDIATE") -> None:
        """Another program takes a lock and keeps it: IMMEDIATE stops other writers, EXCLUSIVE readers too."""
        connection = self._connect()
        connection.execute(f"BEGIN {how}")
        self._locks.append(connection)
        self.timeline.record(DATABASE_LOCKED, f"BEGIN {how}")

    def unlock(self) -> None:
        """The other program lets go of its locks."""
        while self._locks:
            connection = self._locks.pop()
            connection.execute("ROLLBACK")
            connection.close()
            self.timeline.record(DATABASE_UNLOCKED)


@pytest.fixture(scope="session", name="template")
def _template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty database with the kata's tables, made once per run (each spec copies it)."""
    path = tmp_path_factory.mktemp("k07-template") / "template.sqlite3"
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")  # a plain engine: no event loop, no thread
    try:
        users.Base.metadata.create_all(engine)
    finally:
        engine.dispose()
    return path


def pytest_configure(config: pytest.Config) -> None:
    """Register this kata's marker."""
    config.addinivalue_line(
        "markers", "locks_the_database: the spec locks the database on purpose; the app waits less for it"
    )


@pytest.fixture(name="database")
def _database(template: Path, tmp_path: Path, timeline: Timeline, request: pytest.FixtureRequest) -> Iterator[Database]:
    """This spec's database: a fresh copy of the template, in the spec's temporary folder."""
    path = tmp_path / "app.sqlite3"
    shutil.copyfile(template, path)
    locks = request.node.get_closest_marker("locks_the_database") is not None
    database = Database(path, timeline, LOCKED_ON_PURPOSE_TIMEOUT if locks else LOCK_TIMEOUT)
    yield database
    database.unlock()


# ------------------------------------------------------------------ watching SQLAlchemy


@dataclass(frozen=True)
class Statement:
    """One SQL statement as the watch saw it: on which session, and where on the timeline."""

    session: int | None
    verb: str
    text: str
    parameters: tuple[Any, ...]
    seq: int


def _table(statement: str) -> str:
    found = re.search(r"\b(?:FROM|INTO|UPDATE)\s+(\w+)", statement, re.IGNORECASE)
    return found.group(1) if found else ""


class DatabaseWatch:
    """What every SQLAlchemy session, engine and pooled connection did during one spec.

    Sessions are numbered in the order they first begin a transaction; a session that
    begins again (after a commit, or after it was closed) keeps its number.
    """

    LOCKED_OUT = LOCKED_OUT
    COMMITTED = COMMITTED
    ROLLED_BACK = ROLLED_BACK

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.statements: list[Statement] = []
        self.engines: weakref.WeakSet[Engine] = weakref.WeakSet()
        self.held = 0  # connections handed out by a pool and not given back
        self._numbers: weakref.WeakKeyDictionary[Session, int] = weakref.WeakKeyDictionary()
        self._on_connection: dict[int, int] = {}  # id of a Connection -> number of the session using it
        self._open: dict[int, Any] = {}  # id of a driver connection -> itself, while open
        self._began: dict[int, list[int]] = {}  # session number -> seq of each begin
        self._ends: dict[int, list[int]] = {}  # session number -> seq of each end of a transaction
        self._when_locked: list[Callable[[], None]] = []
        self._listeners: list[tuple[Any, str, Callable[..., Any]]] = [
            (Session, "after_begin", self._session_began),
            (Session, "after_commit", self._committed),
            (Session, "after_rollback", self._rolled_back),
            (Session, "after_transaction_end", self._ended),
            (Engine, "engine_connect", self._engine_used),
            (Engine, "before_cursor_execute", self._statement),
            (Engine, "handle_error", self._error),
            (Pool, "connect", self._connected),
            (Pool, "checkout", self._checked_out),
            (Pool, "checkin", self._checked_in),
            (Pool, "close", self._closed),
            (Pool, "close_detached", self._closed),
        ]

    # -------------------------------------------------------------- listening
    def start(self) -> None:
        for target, name, listener in self._listeners:
            event.listen(target, name, listener)

    def stop(self) -> None:
        for target, name, listener in self._listeners:
            if event.contains(target, name, listener):
                event.remove(target, name, listener)

    def _number(self, session: Session) -> int:
        number = self._numbers.get(session)
        if number is None:
            number = self._numbers[session] = len(self._began) + 1
            self._began[number] = []
        return number

    def _session_began(self, session: Session, _transaction: Any, connection: Any) -> None:
        number = self._number(session)
        self._on_connection[id(connection)] = number
        self._began[number].append(self.timeline.record(SESSION_BEGAN, f"session {number}").seq)

    def _committed(self, session: Session) -> None:
        self.timeline.record(COMMITTED, f"session {self._number(session)}")

    def _rolled_back(self, session: Session) -> None:
        self.timeline.record(ROLLED_BACK, f"session {self._number(session)}")

    def _ended(self, session: Session, transaction: Any) -> None:
        # The session's transaction is over (committed, rolled back, or the session closed):
        # its connection is back in the pool. Only the outermost transaction counts.
        if transaction.parent is None:
            number = self._number(session)
            self._ends.setdefault(number, []).append(self.timeline.record(SESSION_ENDED, f"session {number}").seq)

    def last_end(self, session: int) -> int | None:
        """Where on the timeline ``session`` last ended a transaction, if it ever did."""
        ends = self._ends.get(session)
        return ends[-1] if ends else None

    def _engine_used(self, connection: Any) -> None:
        self.engines.add(connection.engine)

    def _statement(self, connection: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        number = self._on_connection.get(id(connection))
        verb = statement.split(maxsplit=1)[0].upper() if statement.strip() else ""
        values = parameters if isinstance(parameters, (list, tuple)) else (parameters,)
        shown = tuple(getattr(value, "value", value) for value in values)  # an enum member as its value
        where = f"session {number}" if number is not None else "no session"
        text = " ".join(statement.split())
        brief = re.sub(r"^SELECT .*? FROM", "SELECT ... FROM", text)
        seq = self.timeline.record(STATEMENT, f"on {where}: {brief[:80]} {shown!r}"[:160]).seq
        self.statements.append(Statement(number, verb, text, shown, seq))

    def _error(self, context: Any) -> None:
        if "locked" in str(context.original_exception):
            self.timeline.record(LOCKED_OUT, str(context.original_exception))
            callbacks, self._when_locked = self._when_locked, []
            for callback in callbacks:
                callback()

    def _connected(self, dbapi_connection: Any, _record: Any) -> None:
        # Speed, not behaviour: SQLite normally waits for the disk at every commit (fsync,
        # 5 to 30 ms here). A spec's database is thrown away after it, so its connections
        # skip that wait. Locks, transactions and errors are SQLite's own, unchanged.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA synchronous = OFF")
        cursor.close()
        self._open[id(dbapi_connection)] = dbapi_connection
        self.timeline.record(CONNECTION_OPENED, f"{len(self._open)} open")

    def _checked_out(self, *_: Any) -> None:
        self.held += 1

    def _checked_in(self, *_: Any) -> None:
        self.held -= 1

    def _closed(self, dbapi_connection: Any, *_: Any) -> None:
        if self._open.pop(id(dbapi_connection), None) is not None:
            self.timeline.record(CONNECTION_CLOSED, f"{len(self._open)} open")

    # -------------------------------------------------------------- reading
    @property
    def open_connections(self) -> int:
        return len(self._open)

    def when_locked(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` the next time the app is told the database is locked."""
        self._when_locked.append(callback)

    def first_begin(self, session: int) -> int:
        """The timeline position where ``session`` first began a transaction."""
        return self._began[session][0]

    def writes(self, verb: str, *, value: object = None) -> list[Statement]:
        """The statements of ``verb`` on the users table (with ``value`` among their parameters, if given)."""
        return [
            statement
            for statement in self.statements
            if statement.verb == verb
            and _table(statement.text) == "users"
            and (value is None or value in statement.parameters)
        ]

    def sessions_before(self, seq: int) -> set[int]:
        """The sessions that ran a statement before timeline position ``seq``."""
        return {s.session for s in self.statements if s.seq < seq and s.session is not None}

    # -------------------------------------------------------------- after the spec
    def rescue(self) -> list[str]:
        """Close every connection still open (a leak) and say what each was; an empty list when none."""
        left = []
        for dbapi_connection in list(self._open.values()):
            left.append(type(dbapi_connection).__name__)
            driver = getattr(dbapi_connection, "driver_connection", None)
            stop = getattr(driver, "stop", None)
            with contextlib.suppress(Exception):  # whatever state the leak is in, end its thread and file
                if stop is not None:
                    stop()  # aiosqlite: close the SQLite connection and end its thread
                else:
                    dbapi_connection.close()
        self._open.clear()
        return left


LEFT_IDLE = (
    "task 1: the engine keeps its connections open in its pool until it is disposed, so the app "
    "disposes of it when it shuts down (README: Engine, pool, session)"
)
LEFT_HELD_BY_A_REQUEST = (
    "task 1: a session holds its connection until it is closed, so the request's session is closed "
    "when its endpoint returns (README: Engine, pool, session)"
)
LEFT_HELD_BY_THE_WORK = (
    "task 3: the work's own session is closed when the work ends, whether it worked or failed, which "
    "gives its connection back (README: Engine, pool, session)"
)


def fail_left_open(watch: DatabaseWatch, left: list[str], *, revisit: str) -> None:
    """Fail the spec that ended with database connections still open."""
    __tracebackhide__ = True
    pytest.fail(
        "The spec is over, the app has shut down, and database connections are still open."
        + lesson(
            expected="every connection closed: the sessions closed, the engine disposed",
            got=f"{len(left)} connection(s) still open ({', '.join(left)}), "
            f"{watch.held} of them still held by a session that was never closed",
            revisit=revisit,
        )
        + watch.timeline.render(),
        pytrace=False,
    )


@pytest.fixture(name="watch")
def _watch(database: Database, timeline: Timeline, request: pytest.FixtureRequest) -> Iterator[DatabaseWatch]:
    """Watches SQLAlchemy for the whole spec; fails it if a connection is left open at the end."""
    watch = DatabaseWatch(timeline)
    watch.start()
    try:
        yield watch
    finally:
        watch.stop()
        held = watch.held
        left = watch.rescue()
    if left:
        marker = request.node.get_closest_marker("task")
        task = int(marker.args[0]) if marker is not None else 0
        if not held:
            fail_left_open(watch, left, revisit=LEFT_IDLE)
        elif task in (3, 4):
            fail_left_open(watch, left, revisit=LEFT_HELD_BY_THE_WORK)
        else:
            fail_left_open(watch, left, revisit=LEFT_HELD_BY_A_REQUEST)


# ------------------------------------------------------------------ sessions the specs hand out


class WatchedSession(AsyncSession):
    """SQLAlchemy's own AsyncSession, which also notes whether it was closed."""

    closed = False

    async def close(self) -> None:
        self.closed = True
        await super().close()


class CountingSessionmaker(async_sessionmaker):  # type: ignore[type-arg]
    """A session factory like the app's, that keeps every session it makes."""

    def __init__(self, engine: Any) -> None:
        super().__init__(engine, class_=WatchedSession, expire_on_commit=False, close_resets_only=False)
        self.made: list[WatchedSession] = []

    def __call__(self, **local_kw: Any) -> Any:
        session = super().__call__(**local_kw)
        self.made.append(session)
        return session

    def __repr__(self) -> str:
        return "the session factory"


@pytest.fixture(name="factory")
async def _factory(watch: DatabaseWatch, database: Database) -> AsyncIterator[CountingSessionmaker]:
    """A session factory on the spec's database, for the specs that call the work directly."""
    engine = create_async_engine(database.url)
    try:
        yield CountingSessionmaker(engine)
    finally:
        await engine.dispose()


# ------------------------------------------------------------------ the mailer


class FakeMailer:
    """An asynchronous mail client with one call, ``await asend(to, subject, body)``.

    ``hold()`` makes each send wait until ``release()``, as a slow mail server would;
    ``fail_for(address, error)`` makes the sends to one address raise.
    """

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.sent: list[Email] = []
        self.attempts: list[str] = []
        self._open = asyncio.Event()
        self._open.set()
        self._failures: dict[str, BaseException] = {}

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def fail_for(self, address: str, error: BaseException) -> None:
        self._failures[address] = error

    async def asend(self, to: str, subject: str, body: str) -> None:
        """Deliver one email without blocking the event loop; waits while held."""
        self.attempts.append(to)
        self.timeline.record(EMAIL_STARTED, f"to {to}")
        if not self._open.is_set():
            try:
                await asyncio.wait_for(self._open.wait(), BOUND)
            except asyncio.TimeoutError:
                self.timeline.record("email gave up", "the spec never released the mail server")
        failure = self._failures.get(to)
        if failure is not None:
            self.timeline.record(EMAIL_FAILED, f"to {to}: {failure!r}")
            raise failure
        self.sent.append(Email(to, subject, body))
        self.timeline.record(EMAIL_SENT, f"to {to}")

    def __repr__(self) -> str:
        return f"FakeMailer(sent={[(email.to, email.subject) for email in self.sent]})"


@pytest.fixture(name="mailer")
def _mailer(timeline: Timeline) -> FakeMailer:
    return FakeMailer(timeline)


# ------------------------------------------------------------------ the app


@pytest.fixture(name="app")
def _app(watch: DatabaseWatch, database: Database, mailer: FakeMailer) -> Any:
    """The kata's app on the spec's database, with the fake mailer."""
    return users.create_app(database_url=database.url, mailer=mailer)


LIFESPAN = (
    "task 1: the lifespan does nothing slow at start, and at the end only disposes of the engine "
    "(README: Engine, pool, session)"
)


@pytest.fixture(name="started_app")
async def _started_app(app: ASGIApp) -> AsyncIterator[ASGIApp]:
    """The app with its lifespan running; its start and its stop each get at most BOUND seconds."""
    try:
        async with LifespanManager(app, startup_timeout=BOUND, shutdown_timeout=BOUND) as manager:
            yield manager.app
    except (TimeoutError, asyncio.TimeoutError):  # one class from Python 3.11 on
        pytest.fail(
            lesson(
                expected=f"the app starts and stops within {BOUND:g} s",
                got="its lifespan was still running",
                revisit=LIFESPAN,
            ),
            pytrace=False,
        )


ANSWERS_AT_ONCE = "task 2: the endpoint stores the user and answers at once (README: Register a pending user)"
ENDS_AT_ONCE = "task 3: the work needs no real time, so it ends within moments (README: A session of its own)"


class HeldServer:
    """Drives the app so that each response goes out at once and its background work waits.

    ``await held.request(...)`` returns as soon as the response is complete, with what the
    client got; the work queued behind it has not started. ``await held.finish()`` lets
    it all run and waits until it has (at most BOUND seconds). Work still held when the
    spec ends never runs: the requests are stopped where they wait. What the app raised,
    in an endpoint or in the work, is in ``errors``.
    """

    def __init__(self, app: ASGIApp, timeline: Timeline, gate: BackgroundGate) -> None:
        self.app = app
        self.timeline = timeline
        self.gate = gate
        self.errors: list[BaseException] = []
        self.running: list[asyncio.Task[Exchange]] = []

    async def request(self, method: str, path: str, *, json: object = None) -> Exchange:
        seen = Exchange()
        complete = asyncio.Event()
        catcher = CatchAppErrors(self.app, on_error=self.errors.append)

        async def tapped(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
            async def tap(message: Mapping[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    seen.status = message["status"]
                    seen.headers = [(k.decode().lower(), v.decode()) for k, v in message.get("headers", [])]
                elif message["type"] == "http.response.body":
                    seen.body += message.get("body", b"")
                    if not message.get("more_body", False):
                        complete.set()
                await send(message)  # on the last chunk, the gate holds the background work here

            await catcher(scope, receive, tap)

        running = self.timeline.start(self.gate.wrap(tapped), method, path, json=json)
        self.running.append(running)
        waiter = asyncio.ensure_future(complete.wait())
        try:
            await asyncio.wait({running, waiter}, timeout=BOUND, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if not complete.is_set():
            raise AssertionError(
                lesson(
                    expected=f"the response to {method} {path}, complete",
                    got=f"none after {BOUND:g} s: the endpoint waits for something",
                    revisit=ANSWERS_AT_ONCE,
                )
            )
        return seen

    async def finish(self) -> None:
        """Let the held work run, and wait until every request is over."""
        self.gate.open()
        _, pending = await asyncio.wait(self.running, timeout=BOUND)
        if pending:
            raise AssertionError(
                lesson(
                    expected="the background work of every request finished",
                    got=f"{len(pending)} still running after {BOUND:g} s",
                    revisit=ENDS_AT_ONCE,
                )
            )

    async def stop(self) -> None:
        """Stop the requests still waiting: their held work never runs."""
        waiting = [call for call in self.running if not call.done()]
        for call in waiting:
            call.cancel()
        if waiting:
            await asyncio.wait(waiting, timeout=BOUND)


@pytest.fixture(name="held")
async def _held(started_app: ASGIApp, timeline: Timeline, background_gate: BackgroundGate) -> AsyncIterator[HeldServer]:
    """The app behind a gate that holds each request's background work (before the app stops)."""
    server = HeldServer(started_app, timeline, background_gate)
    yield server
    await server.stop()


# ------------------------------------------------------------------ every spec


@pytest.fixture(scope="session", autouse=True)
def _settle_the_imports() -> None:
    """Everything imported so far lives for the whole run: keep it out of the collector's work.

    The leak check collects garbage after every spec; without this, each collection walks
    every object of SQLAlchemy, FastAPI and pydantic again (about 30 ms a spec). Freezing
    moves them aside at once; collecting first would cost as much as one of those walks.
    """
    gc.freeze()


@pytest.fixture(autouse=True)
def _no_leaks(leak_check: None) -> None:
    """No thread (aiosqlite runs one per connection), file or socket left open after any spec."""


@pytest.fixture(autouse=True)
async def _aiosqlite_threads_end_with_their_spec() -> AsyncIterator[None]:
    """The thread of an aiosqlite connection ends a moment after the connection closed (or failed to open).

    That thread's last act is a call into the spec's event loop, so it must be over before the
    loop is closed, or it fails with "Event loop is closed" in the middle of a later spec.
    """
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + THREAD_GRACE
    for thread in threading.enumerate():
        if thread not in before and thread.name.endswith("(_connection_worker_thread)"):
            thread.join(max(0.0, deadline - time.monotonic()))
