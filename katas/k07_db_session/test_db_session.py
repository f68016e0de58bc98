"""Specs for kata 7: a database session of its own.

Run them with

    uv run pytest katas/k07_db_session

Each spec names the README task it checks. Edit users.py, not this file. The database is
real (SQLite, a file per spec, opened by your app through SQLAlchemy and aiosqlite); the
mailer is fake. conftest.py says how both work, and how the specs watch your sessions.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

import aiosqlite  # noqa: F401 - the kata's stack, imported while pytest collects rather than inside the first spec
import pytest
import sqlalchemy
import sqlalchemy.exc
from asgi_lifespan import LifespanManager
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from dojo.fakes import EMAIL_STARTED, Email
from dojo.impl import kata_module
from dojo.plugin import KataClient
from dojo.teach import expect_json, expect_status, expect_type, lesson
from dojo.timeline import (
    BOUND,
    RESPONSE_COMPLETE,
    RESPONSE_START,
    CatchAppErrors,
    Timeline,
    describe_error,
    every_case,
    wait_until,
    within_bound,
)

users = kata_module("k07_db_session", "users")

pytestmark = pytest.mark.leaks(
    revisit="task 1: every connection, session and file the app opens is closed again: the sessions "
    "when their work ends, the engine when the app stops (README: Engine, pool, session)"
)

ADA = {"email": "ada@example.com", "name": "Ada Lovelace"}
GRACE = {"email": "grace@example.com", "name": "Grace Hopper"}
SUBJECT = "Welcome aboard"
MAX_ID = 2**63 - 1
BUSY = {"detail": "the database is busy, try again later"}


def document(user_id: int, person: dict[str, str], status: str = "pending", error: str | None = None) -> dict:
    """The status document the API gives for one user."""
    return {"id": user_id, "email": person["email"], "name": person["name"], "status": status, "error": error}


def welcome(person: dict[str, str]) -> Email:
    """The welcome email a person gets."""
    return Email(person["email"], SUBJECT, f"Hello {person['name']}, your account is ready.")


@pytest.fixture(name="log")
def _log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every record at WARNING or above, from any logger: a spec can count them exactly."""
    caplog.set_level(logging.WARNING)
    return caplog


def serious(log: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in log.records if record.levelno >= logging.WARNING]


def shown(records: list[logging.LogRecord]) -> list[str] | str:
    return [f"{record.levelname} from {record.name!r}: {record.getMessage()}" for record in records] or "nothing"


async def post(client: Any, body: object = ADA, *, revisit: str) -> Any:
    __tracebackhide__ = True
    return await within_bound(client.post("/users", json=body), revisit=revisit)


async def get(client: Any, path: str, *, revisit: str) -> Any:
    __tracebackhide__ = True
    return await within_bound(client.get(path), revisit=revisit)


def expect_row(database: Any, user_id: int, *, status: str, error: str | None, revisit: str) -> None:
    """The user's row, as committed, has this status and error."""
    __tracebackhide__ = True
    row = database.user(user_id)
    got = None if row is None else (row["status"], row["error"])
    assert got == (status, error), (
        lesson(
            expected=f"user {user_id} committed as {status!r} with error {error!r}",
            got="no such user in the database" if got is None else f"{got[0]!r} with error {got[1]!r}: {row}",
            revisit=revisit,
        )
        + database.timeline.render()
    )


def expect_nothing_held(watch: Any, *, when: str, revisit: str) -> None:
    """Every connection the app took from its pool has been given back."""
    __tracebackhide__ = True
    assert watch.held == 0, (
        lesson(
            expected=f"{when}, every connection back in its pool",
            got=f"{watch.held} connection(s) still held by a session nobody closed",
            revisit=revisit,
        )
        + watch.timeline.render()
    )


def expect_the_work_did_not_fail(log: pytest.LogCaptureFixture, *, revisit: str) -> None:
    """No record with an exception attached: the work did not catch and log a failure."""
    __tracebackhide__ = True
    failures = [record for record in serious(log) if record.exc_info and record.exc_info[1] is not None]
    assert not failures, lesson(
        expected="the work done, no failure logged",
        got="; ".join(f"{record.getMessage()}: {describe_error(record.exc_info[1])}" for record in failures)[:600],  # type: ignore[index]
        revisit=revisit,
    )


def expect_no_app_error(client: Any, *, revisit: str) -> None:
    __tracebackhide__ = True
    assert client.app_errors == [], lesson(
        expected="nothing escapes the app, its endpoints or its background work",
        got=f"{[repr(error) for error in client.app_errors]}"[:400],
        revisit=revisit,
    )


# ---------------------------------------------------------------- task 1: open the database

FACTORY = (
    "task 1: one factory makes every session of the app: bound to the app's engine, keeping the values "
    "it committed, refusing to be used once closed (README: Engine, pool, session)"
)
EXPIRED = (
    "task 1: by default a commit expires every object, and reading it again needs a query, which async "
    "code cannot make behind your back (README: Values after a commit)"
)
READ = (
    "task 1: the endpoint reads the user with the request's session and answers its status (README: Open the database)"
)
PER_REQUEST = (
    "task 1: each request gets a session of its own from the factory, closed when the endpoint returns, "
    "which gives its connection back to the pool (README: Engine, pool, session)"
)
CLOSED_FIRST = (
    "task 1: the request's session is closed when its endpoint returns, before the response is sent; "
    "that is what the dependency's function scope gives (README: When the request's session closes)"
)
ONE_ENGINE = (
    "task 1: an engine holds a pool of open connections and is made once, for the app's whole life, and "
    "disposed of when the app stops (README: Engine, pool, session)"
)
IDS = (
    "task 1: an id is a whole number from one to the largest integer SQLite stores; anything else is "
    "malformed, and a well-formed id with no user is not found (README: Open the database)"
)


@pytest.mark.task(1)
async def test_the_session_factory_keeps_committed_values_and_refuses_a_closed_session(watch, database):
    """make_session_factory: sessions on the engine given, values readable after commit, no reuse once closed."""
    engine = create_async_engine(database.url)
    try:
        factory = users.make_session_factory(engine)
        expect_type(factory, async_sessionmaker, what="what make_session_factory returns", revisit=FACTORY)
        session = factory()
        expect_type(session, AsyncSession, what="a session from the factory", revisit=FACTORY)
        assert session.bind is engine, lesson(
            expected="sessions bound to the engine the factory was given", got=f"{session.bind!r}", revisit=FACTORY
        )
        user = users.User(email=ADA["email"], name=ADA["name"], status="pending")
        session.add(user)
        await within_bound(session.commit(), revisit=FACTORY)
        expired = sorted(sqlalchemy.inspect(user).expired_attributes)
        assert not expired, lesson(
            expected="after the commit, the user's values still loaded: the endpoint answers with them",
            got=f"expired by the commit: {expired}",
            revisit=EXPIRED,
        )
        await within_bound(session.close(), revisit=FACTORY)
        try:
            await within_bound(session.get(users.User, 1), revisit=FACTORY)
        except sqlalchemy.exc.InvalidRequestError:
            refused = True
        else:
            refused = False
            await session.close()
        assert refused, lesson(
            expected="a closed session refuses to be used again (InvalidRequestError)",
            got="it opened a new transaction: code that keeps a closed session works by accident",
            revisit=FACTORY,
        )
    finally:
        await engine.dispose()


@pytest.mark.task(1)
async def test_a_user_is_read_as_the_database_has_it(client, database):
    """GET /users/{id}: 200 and the user's id, email, name, status and error, as committed."""
    zoe = {"email": "zoe@example.com", "name": "Zoë Ñúñez"}
    pending = database.add_user(ADA["email"], ADA["name"])
    done = database.add_user(GRACE["email"], GRACE["name"], "processed")
    failed = database.add_user(zoe["email"], zoe["name"], "failed", "OSError")
    for user_id, wanted in (
        (pending, document(pending, ADA)),
        (done, document(done, GRACE, "processed")),
        (failed, document(failed, zoe, "failed", "OSError")),
    ):
        response = await get(client, f"/users/{user_id}", revisit=READ)
        expect_status(response, 200, expected=f"200 OK for user {user_id}", revisit=READ)
        expect_type(response.json(), dict, what="the JSON body", revisit=READ)
        expect_json(response, wanted, revisit=READ)


@pytest.mark.task(1)
async def test_each_request_has_a_session_of_its_own_and_gives_its_connection_back(client, database, watch):
    """Three requests, three sessions; after each, no connection is held."""
    user_id = database.add_user(ADA["email"], ADA["name"])
    sessions: list[set[int | None]] = []
    for number in (1, 2, 3):
        before = len(watch.statements)
        response = await get(client, f"/users/{user_id}", revisit=READ)
        expect_status(response, 200, revisit=READ)
        sessions.append({statement.session for statement in watch.statements[before:]})
        expect_nothing_held(watch, when=f"after request {number}", revisit=PER_REQUEST)
    distinct = {number for used in sessions for number in used}
    assert len(distinct) == 3 and all(len(used) == 1 and None not in used for used in sessions), (
        lesson(
            expected="each request read through a session of its own: three requests, three sessions",
            got=f"the sessions each request used: {[sorted(used, key=str) for used in sessions]}",
            revisit=PER_REQUEST,
        )
        + watch.timeline.render()
    )


@pytest.mark.task(1)
async def test_the_requests_session_is_closed_before_the_response_goes_out(started_app, timeline, database, watch):
    """The request's session is closed when the endpoint returns: before the response, not after it."""
    user_id = database.add_user(ADA["email"], ADA["name"])
    done = await within_bound(timeline.request(started_app, "GET", f"/users/{user_id}"), revisit=READ)
    expect_status(done, 200, revisit=READ)
    sessions = {statement.session for statement in watch.statements if statement.session is not None}
    response_at = timeline.first(RESPONSE_START).seq
    ended = {session: watch.last_end(session) for session in sessions}
    assert len(ended) == 1 and all(at is not None and at < response_at for at in ended.values()), (
        lesson(
            expected="the request's session closed as soon as the endpoint returned, before the response started",
            got=f"its reading transaction ended at {ended} (timeline positions; None: never), the response "
            f"started at {response_at}",
            revisit=CLOSED_FIRST,
        )
        + timeline.render()
    )


@pytest.mark.task(1)
async def test_the_app_keeps_one_engine_for_all_its_requests(client, database, watch):
    """However many requests, their connections come from one engine."""
    user_id = database.add_user(ADA["email"], ADA["name"])
    for _ in range(3):
        response = await get(client, f"/users/{user_id}", revisit=READ)
        expect_status(response, 200, revisit=READ)
    assert len(watch.engines) == 1, lesson(
        expected="one engine for the app, used by every request",
        got=f"{len(watch.engines)} engines for 3 requests",
        revisit=ONE_ENGINE,
    )


@pytest.mark.task(1)
async def test_an_unknown_user_is_a_404_and_an_id_out_of_range_a_422(client):
    """No user 1, 99 or 2**63-1 is a 404 saying so; 0, -1, 2**63 and text are 422s, never a 500."""
    for user_id in (1, 99, MAX_ID):
        response = await get(client, f"/users/{user_id}", revisit=READ)
        expect_status(response, 404, expected=f"404 Not Found for user {user_id}, who does not exist", revisit=IDS)
        expect_json(
            response,
            {"detail": f"no user {user_id}"},
            revisit="task 1: the 404 says which user it did not find (README: Open the database)",
        )
    for user_id in ("0", "-1", str(MAX_ID + 1), "abc", "1.5"):
        response = await get(client, f"/users/{user_id}", revisit=READ)
        expect_status(response, 422, expected=f"422 Unprocessable Content for the id {user_id}", revisit=IDS)


@pytest.mark.task(1)
async def test_the_engine_is_disposed_when_the_app_stops(app, database, watch):
    """While the app runs its pool keeps a connection open; once it has stopped, none is left open."""
    user_id = database.add_user(ADA["email"], ADA["name"])
    lifespan = LifespanManager(app, startup_timeout=BOUND, shutdown_timeout=BOUND)
    async with lifespan as manager, KataClient(CatchAppErrors(manager.app)) as client:
        response = await get(client, f"/users/{user_id}", revisit=READ)
        expect_status(response, 200, revisit=READ)
    assert watch.open_connections == 0, (
        lesson(
            expected="no database connection open once the app has stopped",
            got=f"{watch.open_connections} still open: the engine's pool still has them",
            revisit=ONE_ENGINE,
        )
        + watch.timeline.render()
    )


# ---------------------------------------------------------------- task 2: register a pending user

REGISTER = (
    "task 2: the endpoint stores the user as pending with the request's session, commits, and answers 202 "
    "with the user's status and where to ask for it (README: Register a pending user)"
)
VALIDATE = (
    "task 2: the body is a model with a valid address and a name of 1 to 100 characters, so FastAPI answers "
    "422 before anything is stored (README: Register a pending user)"
)
INLINE = (
    "task 3: the work is queued, to run after the response; run inside the endpoint, it makes the client wait, "
    "and the user is no longer pending when the answer goes out (README: A session of its own)"
)
TWICE = (
    "task 2: the address is unique in the table, so the second insert fails at the commit; that failure is "
    "the client's mistake, a conflict, not a crash (README: Register a pending user)"
)


@pytest.mark.task(2)
async def test_a_registration_is_stored_pending_and_answered_202_with_where_to_find_it(held, database, mailer):
    """202, the new user's status document, a Location; the user committed as pending before any work runs."""
    response = await held.request("POST", "/users", json=ADA)
    expect_status(response, 202, expected="202 Accepted", revisit=REGISTER)
    body = response.json()
    expect_type(body, dict, what="the JSON body", revisit=REGISTER)
    rows = database.rows()
    assert len(rows) == 1, (
        lesson(
            expected="the new user committed before the response went out: one row",
            got=f"{len(rows)} rows: {rows}",
            revisit=REGISTER,
        )
        + database.timeline.render()
    )
    user_id = rows[0]["id"]
    assert rows[0]["status"] == "pending" and not mailer.attempts, lesson(
        expected="the user still pending when the answer goes out, no welcome sent yet",
        got=f"{rows[0]['status']!r}, emails to {mailer.attempts}: the work ran before the response",
        revisit=INLINE,
    )
    expect_json(
        response,
        document(user_id, ADA),
        expected=f"the new user's document, its id the database's: {document(user_id, ADA)}",
        revisit=REGISTER,
    )
    assert rows[0] == document(user_id, ADA), lesson(
        expected=f"committed as {document(user_id, ADA)}", got=f"{rows[0]}", revisit=REGISTER
    )
    location = dict(response.headers).get("location")
    assert location == f"/users/{user_id}", lesson(
        expected=f"a Location header that says where to follow the registration: /users/{user_id}",
        got=f"{location!r}",
        revisit=REGISTER,
    )


#: Registrations to refuse: a field missing, a malformed address, a name outside 1 to 100 characters, no object.
BAD_REGISTRATIONS = {
    "no email": {"name": "Ada Lovelace"},
    "no name": {"email": "ada@example.com"},
    "malformed email": {"email": "not-an-email", "name": "Ada Lovelace"},
    "empty name": {"email": "ada@example.com", "name": ""},
    "101-character name": {"email": "ada@example.com", "name": "x" * 101},
    "101 accented characters": {"email": "ada@example.com", "name": "é" * 101},
    "null name": {"email": "ada@example.com", "name": None},
    "number name": {"email": "ada@example.com", "name": 42},
    "null body": None,
    "list body": [],
    "string body": "ada@example.com",
}


@pytest.mark.task(2)
async def test_a_bad_registration_is_a_422_and_stores_nothing(client, database, mailer):
    """A missing field, a malformed address, a name outside 1 to 100 characters, a body that is no object.

    The eleven requests go to one app, one after another; each is judged by what it changed.
    """

    async def check(body: object) -> None:
        rows, attempts = database.rows(), len(mailer.attempts)
        response = await post(client, body, revisit=VALIDATE)
        expect_status(response, 422, expected=f"422 Unprocessable Content for {body!r}"[:200], revisit=VALIDATE)
        stored = [row for row in database.rows() if row not in rows]
        assert not stored and len(mailer.attempts) == attempts, lesson(
            expected="nothing stored and nothing sent for a rejected request",
            got=f"rows {stored}; emails to {mailer.attempts[attempts:]}",
            revisit=VALIDATE,
        )

    await every_case(BAD_REGISTRATIONS, check, what="bad registrations", revisit=VALIDATE)


#: Names to keep as they are: both limits, in plain and accented characters, and accents among spaces.
GOOD_NAMES = {"1": "A", "100": "x" * 100, "100 é": "é" * 100, "accents": "Zoë Ñúñez"}


@pytest.mark.task(2)
async def test_a_name_of_1_to_100_characters_is_stored_as_it_is(held, database):
    """Both limits are allowed, and a character is a character, accented or not.

    The four registrations (each of its own address) go to one app, one after another.
    """
    numbers = itertools.count(1)

    async def check(name: str) -> None:
        rows = database.rows()
        person = {"email": f"zoe{next(numbers)}@example.com", "name": name}
        response = await held.request("POST", "/users", json=person)
        expect_status(response, 202, expected=f"202 Accepted for a name of {len(name)} characters", revisit=VALIDATE)
        stored = [row["name"] for row in database.rows() if row not in rows]
        assert stored == [name], lesson(
            expected=f"one user named exactly {name!r}"[:200],
            got=f"{stored}"[:200],
            revisit=REGISTER,
        )

    await every_case(GOOD_NAMES, check, what="names of 1 to 100 characters", revisit=REGISTER)


@pytest.mark.task(2)
async def test_an_address_registered_twice_is_a_409_and_the_first_registration_stays(held, database, watch):
    """The second registration of an address: 409 Conflict saying so, the first user untouched, nothing crashed."""
    first = await held.request("POST", "/users", json=ADA)
    expect_status(first, 202, revisit=REGISTER)
    again = await held.request("POST", "/users", json={"email": ADA["email"], "name": "Someone Else"})
    expect_status(again, 409, expected="409 Conflict for an address already registered", revisit=TWICE)
    expect_json(
        again,
        {"detail": f"{ADA['email']} is already registered"},
        revisit="task 2: the conflict says which address is taken (README: Register a pending user)",
    )
    rows = database.rows()
    assert [(row["email"], row["name"]) for row in rows] == [(ADA["email"], ADA["name"])], lesson(
        expected="the first registration alone in the table", got=f"{rows}", revisit=TWICE
    )
    assert held.errors == [], lesson(
        expected="nothing raised: the conflict was answered", got=f"{[repr(e) for e in held.errors]}", revisit=TWICE
    )
    expect_nothing_held(watch, when="after the conflict", revisit=PER_REQUEST)


# ---------------------------------------------------------------- task 3: a session of its own

WORK = (
    "task 3: the work opens a session of its own from the factory it is given, finds the user by id, sends "
    "the welcome, marks the user processed and commits (README: A session of its own)"
)
OWN = (
    "task 3: when the work runs, the request's session is already closed; the work opens its own, from the "
    "factory, and closes it when done (README: When the request's session closes)"
)
BY_ID = (
    "task 3: the work is given the user's id and reads the user with its own session, as the database has "
    "it when the work runs (README: Pass the id, not the object)"
)
AFTER_WORK = (
    "task 3: processed means the welcome went out: the status changes after the email, in the same commit "
    "(README: A session of its own)"
)
QUEUED = (
    "task 3: the endpoint queues the work with the user's id and answers; the work runs after the response "
    "(README: A session of its own)"
)


@pytest.fixture(name="started")
async def _started(factory: Any, mailer: Any) -> Any:
    """Start the work for a user id as a task of its own; whatever a spec leaves running is stopped after it."""
    tasks: list[asyncio.Task[Any]] = []

    def start(user_id: int) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(users.process_registration(factory, user_id, mailer))
        tasks.append(task)
        return task

    yield start
    for task in tasks:
        if not task.done():
            task.cancel()
            await asyncio.wait({task}, timeout=BOUND)
        if task.done() and not task.cancelled():
            task.exception()  # read, so that asyncio does not report it during a later spec


async def run_work(factory: Any, user_id: int, mailer: Any, *, revisit: str) -> None:
    """Call the work directly, as Starlette would after a response; at most BOUND seconds."""
    __tracebackhide__ = True
    result = await within_bound(users.process_registration(factory, user_id, mailer), revisit=revisit)
    expect_type(result, type(None), what="what the work returns", revisit=revisit)


async def email_started(timeline: Timeline, running: asyncio.Future[Any]) -> None:
    """Wait until the work is sending the welcome; fail at once if it ended before, and after BOUND if it never does."""
    __tracebackhide__ = True
    waiting = asyncio.ensure_future(timeline.wait_for(EMAIL_STARTED))
    try:
        await asyncio.wait({waiting, running}, timeout=BOUND, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
    if timeline.first(EMAIL_STARTED) is not None:
        return
    if running.done():
        error = None if running.cancelled() else running.exception()
        got = f"the work ended without sending: {describe_error(error) if error else 'it returned'}"
    else:
        got = f"no email started after {BOUND:g} s"
    raise AssertionError(
        lesson(expected="the work sending the welcome email", got=got, revisit=WORK) + timeline.render()
    )


def expect_one_session_closed(factory: Any, *, revisit: str) -> None:
    __tracebackhide__ = True
    made = factory.made
    assert len(made) == 1 and made[0].closed, lesson(
        expected="one session opened from the factory, and closed when the work ended",
        got=f"{len(made)} session(s) opened, {sum(session.closed for session in made)} closed",
        revisit=OWN,
    )


@pytest.mark.task(3)
async def test_a_registration_is_processed_after_the_response_on_a_session_of_its_own(  # noqa: PLR0913, PLR0917
    started_app, timeline, database, mailer, watch, log
):
    """POST /users: 202, then the welcome and the processed mark, on a session begun after the response."""
    done = await within_bound(timeline.start(started_app, "POST", "/users", json=ADA), revisit=QUEUED)
    expect_status(done, 202, revisit=QUEUED)
    assert done.error is None, lesson(expected="nothing escapes the app", got=str(done), revisit=OWN)
    expect_the_work_did_not_fail(log, revisit=OWN)
    user_id = done.json()["id"]
    expect_row(database, user_id, status="processed", error=None, revisit=WORK)
    assert mailer.sent == [welcome(ADA)], lesson(expected=f"{welcome(ADA)}", got=f"{mailer.sent}", revisit=QUEUED)
    timeline.expect_order(
        RESPONSE_COMPLETE,
        EMAIL_STARTED,
        why="The welcome is background work: it starts after the response is complete.",
        revisit=QUEUED,
    )
    response_at = timeline.first(RESPONSE_COMPLETE).seq
    marks = watch.writes("UPDATE", value="processed")
    request_sessions = watch.sessions_before(response_at)
    work_sessions = {statement.session for statement in marks}
    assert (
        len(marks) == 1
        and None not in work_sessions
        and not work_sessions & request_sessions
        and all(watch.first_begin(session) > response_at for session in work_sessions)  # type: ignore[arg-type]
    ), (
        lesson(
            expected="the user marked processed once, on a session first begun after the response, not the request's",
            got=f"marked {len(marks)} time(s), on session(s) {sorted(work_sessions, key=str)}; the request used "
            f"{sorted(request_sessions)}",
            revisit=OWN,
        )
        + timeline.render()
    )
    expect_nothing_held(watch, when="after the work", revisit=OWN)


@pytest.mark.task(3)
async def test_the_work_reads_the_user_as_the_database_has_it_when_it_runs(held, database, mailer, timeline):
    """The user fixed their name after registering, before the work ran: the welcome uses the new name."""
    response = await held.request("POST", "/users", json=ADA)
    expect_status(response, 202, revisit=QUEUED)
    user_id = database.rows()[0]["id"]
    database.rename(user_id, "Ada King")
    await held.finish()
    fixed = {"email": ADA["email"], "name": "Ada King"}
    assert mailer.sent == [welcome(fixed)], (
        lesson(
            expected=f"the welcome to the name as it is now: {welcome(fixed)}",
            got=f"{mailer.sent}: the work used what the request had read",
            revisit=BY_ID,
        )
        + timeline.render()
    )
    expect_row(database, user_id, status="processed", error=None, revisit=WORK)


@pytest.mark.task(3)
async def test_concurrent_registrations_each_have_a_session_of_their_own(
    started_app, timeline, database, mailer, watch
):
    """Two registrations at once, both mid-email: two sessions for the work, neither a request's; both processed."""
    mailer.hold()
    calls = [timeline.start(started_app, "POST", "/users", json=person) for person in (ADA, GRACE)]
    try:
        await wait_until(
            lambda: timeline.count(EMAIL_STARTED) == 2,
            expected="both welcome emails being sent at once",
            got=lambda: f"{timeline.count(EMAIL_STARTED)} welcome email(s) being sent\n{timeline.render()}",
            revisit=QUEUED,
            during=calls,
        )
    finally:
        mailer.release()
    exchanges = [await within_bound(call, revisit=QUEUED) for call in calls]
    for exchange in exchanges:
        expect_status(exchange, 202, revisit=QUEUED)
        assert exchange.error is None, lesson(expected="nothing escapes", got=str(exchange), revisit=OWN)
    for row in database.rows():
        expect_row(database, row["id"], status="processed", error=None, revisit=WORK)
    marks = watch.writes("UPDATE", value="processed")
    inserts = watch.writes("INSERT")
    work_sessions = {statement.session for statement in marks}
    request_sessions = {statement.session for statement in inserts}
    assert len(marks) == 2 and len(work_sessions) == 2 and not work_sessions & request_sessions, (
        lesson(
            expected="each registration's work on a session of its own: two sessions, neither of them a request's",
            got=f"processed marks on session(s) {sorted(work_sessions, key=str)}; the requests inserted on "
            f"{sorted(request_sessions, key=str)}",
            revisit="task 3: a session is one unit of work and is never shared: every run of the work opens its "
            "own (README: Engine, pool, session)",
        )
        + timeline.render()
    )
    expect_nothing_held(watch, when="after both", revisit=OWN)


@pytest.mark.task(3)
async def test_the_work_welcomes_the_user_and_marks_them_processed(factory, database, mailer, watch, log):
    """Given a pending user's id: one welcome email, the user committed as processed, one session, closed."""
    user_id = database.add_user(ADA["email"], ADA["name"])
    await run_work(factory, user_id, mailer, revisit=WORK)
    assert mailer.sent == [welcome(ADA)], lesson(
        expected=f"one email: {welcome(ADA)}", got=f"{mailer.sent}", revisit=WORK
    )
    expect_row(database, user_id, status="processed", error=None, revisit=WORK)
    expect_one_session_closed(factory, revisit=OWN)
    expect_nothing_held(watch, when="after the work", revisit=OWN)
    assert serious(log) == [], lesson(expected="nothing logged: it worked", got=f"{shown(serious(log))}", revisit=WORK)


@pytest.mark.task(3)
async def test_the_user_is_still_pending_while_the_welcome_email_is_being_sent(
    factory, database, mailer, timeline, started
):
    """Processed is committed only after the email went out: while it is being sent, the user is pending."""
    user_id = database.add_user(ADA["email"], ADA["name"])
    mailer.hold()
    running = started(user_id)
    try:
        await email_started(timeline, running)
        expect_row(database, user_id, status="pending", error=None, revisit=AFTER_WORK)
    finally:
        mailer.release()
    await within_bound(running, revisit=WORK)
    expect_row(database, user_id, status="processed", error=None, revisit=WORK)


@pytest.mark.task(3)
async def test_work_for_a_user_who_is_gone_logs_a_warning_and_sends_nothing(factory, database, mailer, watch, log):
    """No user with that id (deleted meanwhile): one WARNING naming the id, no email, nothing written."""
    other = database.add_user(GRACE["email"], GRACE["name"])
    await run_work(factory, 42, mailer, revisit=WORK)
    assert mailer.attempts == [], lesson(expected="no email", got=f"emails to {mailer.attempts}", revisit=BY_ID)
    expect_row(database, other, status="pending", error=None, revisit=BY_ID)
    records = serious(log)
    assert len(records) == 1 and records[0].levelno == logging.WARNING, lesson(
        expected="one WARNING: the work had nothing to do, which is odd but no failure",
        got=f"{shown(records)}",
        revisit="task 3: work for a user who is not there anymore has nothing to do; it says so and "
        "stops (README: A session of its own)",
    )
    assert "42" in records[0].getMessage() and records[0].name == users.logger.name, lesson(
        expected=f"from {users.logger.name!r}, naming the user id 42",
        got=f"from {records[0].name!r}: {records[0].getMessage()!r}",
        revisit=WORK,
    )
    expect_one_session_closed(factory, revisit=OWN)
    expect_nothing_held(watch, when="after the work", revisit=OWN)


# ---------------------------------------------------------------- task 4: when the work fails

FAILED = (
    "task 4: a failure of the work is caught, logged with its traceback, rolled back, and recorded on the "
    "user as failed with the kind of error, in the work's own session (README: When the work fails)"
)
ROLLBACK = (
    "task 4: after a write fails, the session refuses everything until it is rolled back; the rollback "
    "also throws away what it had changed (README: Commit, rollback, and a failed write)"
)
PUBLIC = (
    "task 4: the status document is public, so the user's error holds the name of the exception's class "
    "only: its message may carry SQL, addresses or paths (README: When the work fails)"
)
GIVE_UP = (
    "task 4: when even the failure cannot be written, the work logs that too and gives up: the user stays "
    "pending, and nothing escapes (README: When the work fails)"
)
CANCEL = (
    "task 4: cancellation is an order to stop, not a failure of the work: it passes through untouched "
    "(README: When the work fails)"
)


class BounceError(Exception):
    """A mail client's own error class."""


def expect_errors_logged(log: pytest.LogCaptureFixture, count: int, user_id: int, *, revisit: str) -> None:
    """Exactly ``count`` records at WARNING or above, each at ERROR, with a traceback, naming the user."""
    __tracebackhide__ = True
    records = serious(log)
    assert len(records) == count, lesson(
        expected=f"{count} record(s) at WARNING or above", got=f"{shown(records)}", revisit=revisit
    )
    for record in records:
        assert (
            record.levelno == logging.ERROR
            and record.exc_info is not None
            and record.name == users.logger.name
            and str(user_id) in record.getMessage()
        ), lesson(
            expected=f"an ERROR record from {users.logger.name!r}, with its traceback, naming user {user_id}",
            got=f"{record.levelname} from {record.name!r}: {record.getMessage()!r}, traceback "
            f"{'attached' if record.exc_info else 'missing'}",
            revisit=revisit,
        )


@pytest.mark.task(4)
@pytest.mark.parametrize(
    "error",
    [OSError("the mail relay refused ada@example.com"), TimeoutError("no answer from smtp.example.com"), BounceError()],
    ids=lambda error: type(error).__name__,
)
async def test_a_failing_welcome_marks_the_user_failed_with_the_kind_of_failure(  # noqa: PLR0913, PLR0917
    factory, database, mailer, watch, log, error
):
    """The mailer raises: nothing escapes, one ERROR with traceback, the user failed with the class name only."""
    user_id = database.add_user(ADA["email"], ADA["name"])
    mailer.fail_for(ADA["email"], error)
    try:
        await run_work(factory, user_id, mailer, revisit=FAILED)
    except AssertionError:
        raise
    except Exception as escaped:  # noqa: BLE001 - what escapes the work is the finding
        pytest.fail(lesson(expected="nothing escapes the work", got=f"{escaped!r}", revisit=FAILED), pytrace=False)
    row = database.user(user_id)
    assert row is not None and row["status"] == "failed", (
        lesson(expected=f"user {user_id} committed as failed", got=f"{row}", revisit=FAILED)
        + database.timeline.render()
    )
    assert row["error"] == type(error).__name__, lesson(
        expected=f"the error recorded as the kind of failure only: {type(error).__name__!r}",
        got=f"{row['error']!r}",
        revisit=PUBLIC,
    )
    assert mailer.attempts == [ADA["email"]], lesson(
        expected="one attempt at the welcome: the work reports a failure, it does not try again",
        got=f"attempts to {mailer.attempts}",
        revisit=FAILED,
    )
    expect_errors_logged(log, 1, user_id, revisit=FAILED)
    expect_one_session_closed(factory, revisit=OWN)
    expect_nothing_held(watch, when="after the failed work", revisit=OWN)


@pytest.mark.task(4)
@pytest.mark.locks_the_database
async def test_a_write_refused_by_a_locked_database_is_rolled_back_and_the_user_marked_failed(  # noqa: PLR0913, PLR0917
    factory, database, mailer, watch, timeline, log, started
):
    """Locked while the email goes out: the processed mark is refused, rolled back, the user marked failed."""
    user_id = database.add_user(ADA["email"], ADA["name"])
    mailer.hold()
    running = started(user_id)
    try:
        await email_started(timeline, running)
        database.lock("IMMEDIATE")
        watch.when_locked(database.unlock)  # the other program lets go right after the app was refused
    finally:
        mailer.release()
    try:
        await within_bound(running, revisit=ROLLBACK)
    finally:
        database.unlock()
    assert timeline.first(watch.LOCKED_OUT) is not None, (
        lesson(
            expected="the app tried to write while the database was locked, and was refused",
            got="no write was refused",
            revisit=WORK,
        )
        + timeline.render()
    )
    expect_row(database, user_id, status="failed", error="OperationalError", revisit=ROLLBACK)
    expect_errors_logged(log, 1, user_id, revisit=FAILED)
    expect_one_session_closed(factory, revisit=OWN)
    expect_nothing_held(watch, when="after the failed work", revisit=OWN)


@pytest.mark.task(4)
@pytest.mark.locks_the_database
async def test_when_even_the_failure_cannot_be_written_the_user_stays_pending_and_both_are_logged(  # noqa: PLR0913, PLR0917
    factory, database, mailer, watch, timeline, log, started
):
    """The database stays locked: the mark and the failure both refused, two ERRORs, user pending, nothing raised."""
    user_id = database.add_user(ADA["email"], ADA["name"])
    mailer.hold()
    running = started(user_id)
    try:
        await email_started(timeline, running)
        database.lock("IMMEDIATE")
    finally:
        mailer.release()
    try:
        outcome = await within_bound(running, revisit=GIVE_UP)
    except AssertionError:
        raise
    except Exception as escaped:  # noqa: BLE001 - what escapes the work is the finding
        pytest.fail(lesson(expected="nothing escapes the work", got=f"{escaped!r}", revisit=GIVE_UP), pytrace=False)
    finally:
        database.unlock()
    expect_type(outcome, type(None), what="what the work returns", revisit=GIVE_UP)
    assert timeline.count(watch.LOCKED_OUT) == 2, (
        lesson(
            expected="two writes refused: the processed mark, then the failed mark",
            got=f"{timeline.count(watch.LOCKED_OUT)} refused",
            revisit=GIVE_UP,
        )
        + timeline.render()
    )
    expect_row(database, user_id, status="pending", error=None, revisit=GIVE_UP)
    expect_errors_logged(log, 2, user_id, revisit=GIVE_UP)
    expect_one_session_closed(factory, revisit=OWN)
    expect_nothing_held(watch, when="after the failed work", revisit=OWN)


@pytest.mark.task(4)
async def test_cancelled_work_stays_cancelled_and_the_user_pending(  # noqa: PLR0913, PLR0917
    factory, database, mailer, watch, timeline, log, started
):
    """A shutdown cancels the work mid-email: it ends cancelled, the user stays pending, nothing logged."""
    user_id = database.add_user(ADA["email"], ADA["name"])
    mailer.hold()
    running = started(user_id)
    try:
        await email_started(timeline, running)
        running.cancel()
        done, _ = await asyncio.wait({running}, timeout=BOUND)
    finally:
        mailer.release()
    assert done and running.cancelled(), lesson(
        expected="the work ends cancelled, so whoever cancelled it sees it stop",
        got="it ended normally: the cancellation was caught" if done else "still running",
        revisit=CANCEL,
    )
    expect_row(database, user_id, status="pending", error=None, revisit=CANCEL)
    assert serious(log) == [], lesson(
        expected="nothing logged: a cancellation is no failure", got=f"{shown(serious(log))}", revisit=CANCEL
    )
    expect_one_session_closed(factory, revisit=OWN)
    expect_nothing_held(watch, when="after the cancelled work", revisit=OWN)


@pytest.mark.task(4)
async def test_one_failed_registration_leaves_the_other_alone(started_app, timeline, database, mailer):
    """Two registrations at once, Ada's welcome bounces: Ada reads failed, Grace processed, nothing escapes."""
    mailer.hold()
    mailer.fail_for(ADA["email"], OSError("the mail relay refused"))
    calls = [timeline.start(started_app, "POST", "/users", json=person) for person in (ADA, GRACE)]
    try:
        await wait_until(
            lambda: timeline.count(EMAIL_STARTED) == 2,
            expected="both welcome emails being sent at once",
            got=lambda: f"{timeline.count(EMAIL_STARTED)} welcome email(s) being sent\n{timeline.render()}",
            revisit=QUEUED,
            during=calls,
        )
    finally:
        mailer.release()
    exchanges = [await within_bound(call, revisit=QUEUED) for call in calls]
    for exchange in exchanges:
        expect_status(exchange, 202, revisit=QUEUED)
        assert exchange.error is None, lesson(expected="nothing escapes the app", got=str(exchange), revisit=FAILED)
    ids = [exchange.json()["id"] for exchange in exchanges]
    for user_id, person, status, error in ((ids[0], ADA, "failed", "OSError"), (ids[1], GRACE, "processed", None)):
        response = await within_bound(timeline.request(started_app, "GET", f"/users/{user_id}"), revisit=READ)
        expect_status(response, 200, revisit=READ)
        expect_json(response, document(user_id, person, status, error), revisit=FAILED)


# ---------------------------------------------------------------- task 5: when the database is busy or gone

UNAVAILABLE = (
    "task 5: a database that is locked or cannot be opened is a passing condition, not a bug: the client "
    "gets 503 and how long to wait before it tries again (README: SQLite locks, and a 503)"
)


def expect_busy(response: Any) -> None:
    __tracebackhide__ = True
    expect_status(response, 503, expected="503 Service Unavailable", revisit=UNAVAILABLE)
    expect_json(response, BUSY, revisit=UNAVAILABLE)
    retry = dict(response.headers).get("retry-after")
    assert retry == "1", lesson(expected="a Retry-After header of 1 second", got=f"{retry!r}", revisit=UNAVAILABLE)


@pytest.mark.task(5)
@pytest.mark.locks_the_database
async def test_a_registration_while_the_database_is_locked_is_a_503_and_queues_nothing(client, database, mailer, watch):
    """Another program holds the write lock: 503 with Retry-After, nothing stored or sent; once free, 202."""
    database.lock("IMMEDIATE")
    try:
        response = await post(client, ADA, revisit=UNAVAILABLE)
    finally:
        database.unlock()
    expect_busy(response)
    assert database.rows() == [] and mailer.attempts == [], lesson(
        expected="nothing stored and nothing sent",
        got=f"rows {database.rows()}; emails to {mailer.attempts}",
        revisit=UNAVAILABLE,
    )
    expect_no_app_error(client, revisit=UNAVAILABLE)
    expect_nothing_held(watch, when="after the refused request", revisit=PER_REQUEST)
    again = await post(client, ADA, revisit=UNAVAILABLE)
    expect_status(again, 202, expected="202 Accepted once the lock is gone", revisit=UNAVAILABLE)


@pytest.mark.task(5)
@pytest.mark.locks_the_database
async def test_reading_a_user_while_the_database_is_locked_is_a_503(client, database, watch):
    """Another program holds an exclusive lock: GET is a 503 with Retry-After; once free, 200."""
    user_id = database.add_user(ADA["email"], ADA["name"])
    database.lock("EXCLUSIVE")
    try:
        response = await get(client, f"/users/{user_id}", revisit=UNAVAILABLE)
    finally:
        database.unlock()
    expect_busy(response)
    expect_no_app_error(client, revisit=UNAVAILABLE)
    expect_nothing_held(watch, when="after the refused request", revisit=PER_REQUEST)
    again = await get(client, f"/users/{user_id}", revisit=UNAVAILABLE)
    expect_status(again, 200, expected="200 OK once the lock is gone", revisit=UNAVAILABLE)


@pytest.mark.task(5)
async def test_an_app_whose_database_cannot_be_opened_starts_and_answers_503(watch, mailer, tmp_path):
    """The database file's folder is gone: the app still starts, answers 503 to both endpoints, and stops."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'gone' / 'app.sqlite3'}?timeout=0.05"
    app = users.create_app(database_url=url, mailer=mailer)
    lifespan = LifespanManager(app, startup_timeout=BOUND, shutdown_timeout=BOUND)
    async with lifespan as manager, KataClient(CatchAppErrors(manager.app)) as client:
        for response in (
            await get(client, "/users/1", revisit=UNAVAILABLE),
            await post(client, ADA, revisit=UNAVAILABLE),
        ):
            expect_busy(response)
        expect_no_app_error(client, revisit=UNAVAILABLE)
    assert mailer.attempts == [], lesson(expected="no email", got=f"{mailer.attempts}", revisit=UNAVAILABLE)
