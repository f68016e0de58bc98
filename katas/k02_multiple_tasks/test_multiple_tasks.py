"""Specs for kata 2: multiple background tasks.

Run them with

    uv run pytest katas/k02_multiple_tasks

Each spec names the README task it checks. Edit registration.py, not this file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest
from fastapi import Request

from dojo.fakes import EMAIL_SENT, EMAIL_STARTED, FakeOutbox
from dojo.impl import kata_module
from dojo.teach import expect_json, expect_status, lesson
from dojo.timeline import CLIENT_ADDRESS, RESPONSE_COMPLETE, Timeline

registration = kata_module("k02_multiple_tasks", "registration")

VALID = {"email": "ada@example.com"}

# ---------------------------------------------------------------- fakes for this kata
# The outbox is dojo's FakeOutbox; the profile store and the analytics sink are these.
# Each records what it did on the shared timeline, and can be told to fail.

PROFILE_CREATED = "profile created"
PROFILE_FAILED = "profile failed"
ANALYTICS_RECORDED = "analytics recorded"
ANALYTICS_FAILED = "analytics failed"


@dataclass(frozen=True)
class Profile:
    """One profile as the store received it."""

    user_id: int
    email: str


@dataclass(frozen=True)
class AnalyticsEvent:
    """One analytics record as the sink received it."""

    event: str
    user_id: int
    ip_address: str


class _Collaborator:
    """A collaborator that keeps what it is asked to do, on the timeline too, and can be told to fail."""

    done = failed = ""  # the timeline's names for a call that worked / failed

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.kept: list[object] = []
        self.failure: BaseException | None = None

    def fail_with(self, error: BaseException) -> None:
        self.failure = error

    def _keep(self, item: object, detail: str) -> None:
        if self.failure is not None:
            self.timeline.record(self.failed, repr(self.failure))
            raise self.failure
        self.kept.append(item)
        self.timeline.record(self.done, detail)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kept={self.kept})"


class FakeProfiles(_Collaborator):
    """A profile store that keeps what it is asked to create."""

    done, failed = PROFILE_CREATED, PROFILE_FAILED

    @property
    def created(self) -> list[object]:
        return self.kept

    def create(self, user_id: int, email: str) -> None:
        self._keep(Profile(user_id, email), f"user {user_id}")


class FakeAnalytics(_Collaborator):
    """An analytics sink that keeps what it is asked to record."""

    done, failed = ANALYTICS_RECORDED, ANALYTICS_FAILED

    @property
    def events(self) -> list[object]:
        return self.kept

    def record(self, event: str, user_id: int, ip_address: str) -> None:
        self._keep(AnalyticsEvent(event, user_id, ip_address), f"user {user_id} from {ip_address}")


@pytest.fixture(name="profiles")
def _profiles(timeline: Timeline) -> FakeProfiles:
    return FakeProfiles(timeline)


@pytest.fixture(name="analytics")
def _analytics(timeline: Timeline) -> FakeAnalytics:
    return FakeAnalytics(timeline)


@pytest.fixture(name="app")
def _app(outbox: FakeOutbox, profiles: FakeProfiles, analytics: FakeAnalytics):
    """The kata's app, wired to the three fakes."""
    return registration.create_app(mailer=outbox, profiles=profiles, analytics=analytics)


@pytest.fixture(name="parts")
def _parts(outbox: FakeOutbox, profiles: FakeProfiles, analytics: FakeAnalytics) -> dict[str, object]:
    """The three collaborators, by the name a failure message uses."""
    return {"mail server": outbox, "profile store": profiles, "analytics sink": analytics}


def what_ran(outbox: FakeOutbox, profiles: FakeProfiles, analytics: FakeAnalytics) -> str:
    return f"{len(outbox)} email(s), {len(profiles.created)} profile(s), {len(analytics.events)} analytics record(s)"


def a_request(*, client: tuple[str, int] | None, headers: dict[str, str] | None = None) -> Request:
    """A request as a server hands it to the app: from ``client`` to api.example.com."""
    raw = [(b"host", b"api.example.com")] + [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": "/registrations",
        "raw_path": b"/registrations",
        "root_path": "",
        "query_string": b"",
        "headers": raw,
        "client": client,
        "server": ("api.example.com", 443),
    }
    return Request(scope)


def error_logs(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.ERROR]


# ---------------------------------------------------------------- task 1: validate first


@pytest.mark.task(1)
async def test_a_registration_without_an_email_is_a_422_naming_the_field_not_a_500(client, outbox, profiles, analytics):
    """Leaving `email` out is the client's mistake: a 422 that names the field, and no task runs."""
    response = await client.post("/registrations", json={"name": "Ada"})
    expect_status(
        response,
        422,
        expected="422 Unprocessable Content naming the missing field `email`",
        revisit="task 1: a field of RegistrationRequest with no default is required; FastAPI answers 422 for you "
        '(the tutorial\'s user_data["email"] on a plain dict is a KeyError, a 500)',
    )
    assert "email" in response.text, lesson(
        expected="the 422's detail to name the field `email`",
        got=response.text[:300],
        revisit="task 1: the field must be called `email`",
    )
    assert len(outbox) + len(profiles.created) + len(analytics.events) == 0, lesson(
        expected="no task for a rejected registration",
        got=what_ran(outbox, profiles, analytics),
        revisit="task 1: validation happens before the endpoint runs, so nothing is queued",
    )


@pytest.mark.task(1)
@pytest.mark.parametrize("email", ["not-an-email", "ada@", "", 42])
async def test_an_address_that_is_not_an_email_is_a_422_and_queues_nothing(client, outbox, profiles, analytics, email):
    """A malformed address is a 422, and no welcome email, profile or analytics record follows it."""
    response = await client.post("/registrations", json={"email": email})
    expect_status(
        response,
        422,
        expected=f"422 Unprocessable Content for the address {email!r}",
        revisit="task 1: declare `email` as pydantic's EmailStr so FastAPI validates it",
    )
    assert len(outbox) + len(profiles.created) + len(analytics.events) == 0, lesson(
        expected="no task for a rejected registration",
        got=what_ran(outbox, profiles, analytics),
        revisit="task 1: an invalid request must never reach the endpoint that queues the tasks",
    )


# ---------------------------------------------------------------- task 2: the client's address


@pytest.mark.task(2)
def test_the_client_address_is_the_peer_that_sent_the_request_not_the_server():
    """A request from 198.51.100.23 to api.example.com comes from 198.51.100.23."""
    got = registration.client_address(a_request(client=("198.51.100.23", 51000)))
    assert got == "198.51.100.23", lesson(
        expected="'198.51.100.23', the client's host (the server is api.example.com)",
        got=repr(got),
        revisit="task 2: request.client is the peer that sent the request; request.url and the Host header "
        "name the server",
    )


@pytest.mark.task(2)
def test_when_the_server_knows_no_peer_the_client_address_is_unknown():
    """Over a Unix socket `request.client` is None: the address is UNKNOWN_ADDRESS, not a crash."""
    try:
        got = registration.client_address(a_request(client=None))
    except AttributeError as error:
        got = f"AttributeError: {error}"
    assert got == registration.UNKNOWN_ADDRESS, lesson(
        expected=f"{registration.UNKNOWN_ADDRESS!r} when request.client is None",
        got=repr(got),
        revisit="task 2: request.client is Optional; `request.client.host` crashes when it is None",
    )


@pytest.mark.task(2)
def test_a_forwarded_for_header_written_by_the_client_is_not_trusted():
    """Any client can send X-Forwarded-For; the address is still the peer's own."""
    request = a_request(client=("198.51.100.23", 51000), headers={"X-Forwarded-For": "192.0.2.99"})
    got = registration.client_address(request)
    assert got == "198.51.100.23", lesson(
        expected="'198.51.100.23', the peer, whatever the X-Forwarded-For header claims",
        got=repr(got),
        revisit="task 2: use request.client; trusting proxy headers is the server's job "
        "(uvicorn --proxy-headers --forwarded-allow-ips), for proxies you run",
    )


# ---------------------------------------------------------------- task 3: one failure must not stop the rest


@pytest.mark.task(3)
def test_run_safely_runs_the_task_with_its_arguments(caplog):
    """`run_safely(task, *args, **kwargs)` calls `task(*args, **kwargs)` once, and logs no error."""
    calls = []

    def remember(*args, **kwargs):
        calls.append((args, kwargs))

    registration.run_safely(remember, 7, "ada@example.com", note="hi")
    assert calls == [((7, "ada@example.com"), {"note": "hi"})], lesson(
        expected="one call: remember(7, 'ada@example.com', note='hi')",
        got=f"{len(calls)} call(s): {calls}",
        revisit="task 3: call task(*args, **kwargs), once",
    )
    assert error_logs(caplog) == [], lesson(
        expected="no error logged for a task that succeeded",
        got=[record.getMessage() for record in error_logs(caplog)],
        revisit="task 3: log only when the task raises",
    )


@pytest.mark.task(3)
def test_a_failing_task_is_logged_with_its_traceback_and_does_not_raise(caplog):
    """A task's exception stops there: it is logged at ERROR, naming the task, with its traceback."""
    error = ConnectionError("the mail server hung up")

    def deliver_newsletter(email):
        raise error

    try:
        registration.run_safely(deliver_newsletter, "ada@example.com")
    except ConnectionError as escaped:
        raised = escaped
    else:
        raised = None
    assert raised is None, lesson(
        expected="run_safely returns normally when the task raises",
        got=f"the task's {raised!r} escaped run_safely",
        revisit="task 3: try: task(...) except Exception: log it; do not raise it again, or Starlette "
        "runs no later task",
    )
    logged = error_logs(caplog)
    assert len(logged) == 1 and "deliver_newsletter" in logged[0].getMessage(), lesson(
        expected="one ERROR log record whose message names the task, deliver_newsletter",
        got=[f"{logging.getLevelName(r.levelno)}: {r.getMessage()}" for r in caplog.records] or "nothing logged",
        revisit="task 3: logger.exception('background task %s failed', task.__name__); a failure "
        "nobody sees is a failure nobody fixes",
    )
    exc_info = logged[0].exc_info
    assert exc_info is not None and exc_info[1] is error, lesson(
        expected="the log record to carry the exception and its traceback (exc_info)",
        got=f"exc_info={exc_info!r}",
        revisit="task 3: logger.exception(...) inside the except block (or logger.error(..., exc_info=True)); "
        "an f-string of the error loses the traceback",
    )


@pytest.mark.task(3)
def test_run_safely_lets_system_exit_through():
    """Only an Exception is a task's failure: SystemExit and KeyboardInterrupt must still stop the server."""

    def shut_down():
        raise SystemExit(0)

    try:
        registration.run_safely(shut_down)
    except SystemExit:
        escaped = True
    else:
        escaped = False
    assert escaped, lesson(
        expected="SystemExit passes through run_safely",
        got="run_safely swallowed it",
        revisit="task 3: `except Exception:`, not `except BaseException:` or a bare `except:`",
    )


# ---------------------------------------------------------------- task 4: queue the three, in order


@pytest.mark.task(4)
async def test_a_registration_is_answered_201_with_the_new_user_id_and_email(client):
    """201 Created: the account exists and has its id; the body says which."""
    response = await client.post("/registrations", json=VALID)
    expect_status(
        response,
        201,
        expected="201 Created",
        revisit="task 4: the route is declared with status_code=201; the endpoint must return normally",
    )
    expect_json(
        response,
        {"user_id": 1, "email": VALID["email"]},
        expected=f'{{"user_id": 1, "email": "{VALID["email"]}"}} for the first registration',
        revisit="task 4: the endpoint's return value",
    )


@pytest.mark.task(4)
async def test_no_task_starts_before_the_response_is_complete(app, timeline: Timeline):
    """The client has its whole answer before the first task begins: the work is in the background."""
    exchange = await timeline.request(app, "POST", "/registrations", json=VALID)
    for work in (EMAIL_STARTED, PROFILE_CREATED, ANALYTICS_RECORDED):
        timeline.expect_order(
            RESPONSE_COMPLETE,
            work,
            why=f"'{work}' must happen, and only after the response is complete.",
            revisit="task 4: background_tasks.add_task(run_safely, task, *args) runs it after the response; "
            "calling run_safely(...) in the endpoint runs it now",
        )
    assert exchange.error is None, lesson(
        expected="the app and its background tasks finish without an error",
        got=str(exchange.error),
        revisit="task 4: each task goes through run_safely",
    )


@pytest.mark.task(4)
async def test_the_tasks_run_in_the_order_they_were_queued(app, timeline: Timeline):
    """Welcome email, then profile, then analytics: Starlette runs tasks in the order added."""
    await timeline.request(app, "POST", "/registrations", json=VALID)
    timeline.expect_order(
        EMAIL_SENT,
        PROFILE_CREATED,
        ANALYTICS_RECORDED,
        why="The three tasks ran in another order than the README asks for.",
        revisit="task 4: add_task the welcome email first, the profile second, the analytics record last",
    )


@pytest.mark.task(4)
async def test_each_task_gets_its_data_the_email_to_the_address_the_profile_for_the_new_user(
    client, outbox, profiles, analytics
):
    """One welcome email to the address; one profile for user 1 with that address; one analytics record."""
    await client.post("/registrations", json=VALID)
    emails = [(email.to, email.subject) for email in outbox.sent]
    assert emails == [(VALID["email"], registration.WELCOME_SUBJECT)], lesson(
        expected=f"one email to {VALID['email']} with the subject {registration.WELCOME_SUBJECT!r}",
        got=f"{len(emails)} email(s): {emails}",
        revisit="task 4: add_task(run_safely, send_welcome_email, mailer, email), once",
    )
    assert profiles.created == [Profile(1, VALID["email"])], lesson(
        expected=f"one profile: {Profile(1, VALID['email'])}",
        got=f"{profiles.created}",
        revisit="task 4: add_task(run_safely, create_user_profile, profiles, user_id, email), once",
    )
    got = [(event.event, event.user_id) for event in analytics.events]
    assert got == [(registration.REGISTERED, 1)], lesson(
        expected=f"one analytics record: ({registration.REGISTERED!r}, user 1)",
        got=f"{got}",
        revisit="task 4: add_task(run_safely, log_user_registration, analytics, user_id, <address>), once",
    )


@pytest.mark.task(4)
async def test_the_analytics_record_carries_the_client_address_not_the_server(client, analytics):
    """The shared client calls from 203.0.113.7 to testserver: analytics must say 203.0.113.7."""
    await client.post("/registrations", json=VALID)
    got = [event.ip_address for event in analytics.events]
    assert got == [CLIENT_ADDRESS[0]], lesson(
        expected=f"one analytics record from {CLIENT_ADDRESS[0]!r}, the client (the server is 'testserver')",
        got=f"{got}",
        revisit="task 4: pass client_address(request) to log_user_registration (task 2 finds it)",
    )


@pytest.mark.task(4)
async def test_a_registration_over_a_connection_with_no_client_address_still_succeeds(
    app, timeline: Timeline, analytics
):
    """With no peer address (a Unix socket), the user is still registered and analytics says unknown."""

    async def without_peer(scope, receive, send):
        await app({**scope, "client": None}, receive, send)

    exchange = await timeline.request(without_peer, "POST", "/registrations", json=VALID)
    assert exchange.status == 201 and exchange.error is None, lesson(
        expected="201 Created, and no error, when request.client is None",
        got=str(exchange),
        revisit="task 4: get the address through client_address(request), which handles None (task 2)",
    )
    got = [event.ip_address for event in analytics.events]
    assert got == [registration.UNKNOWN_ADDRESS], lesson(
        expected=f"one analytics record from {registration.UNKNOWN_ADDRESS!r}",
        got=f"{got}",
        revisit="task 4: pass client_address(request) to log_user_registration",
    )


@pytest.mark.task(4)
@pytest.mark.parametrize("broken", ["mail server", "profile store", "analytics sink"])
async def test_whichever_task_fails_the_others_still_run_and_the_failure_is_logged(client, parts, caplog, broken):
    """One task failing costs only its own work: the other two still run, and the failure is logged."""
    outbox, profiles, analytics = parts["mail server"], parts["profile store"], parts["analytics sink"]
    parts[broken].fail_with(ConnectionError(f"the {broken} is down"))
    response = await client.post("/registrations", json=VALID)
    expect_status(
        response,
        201,
        expected="201 Created: the tasks run after the response",
        revisit="task 4: queue the tasks with add_task; never call them in the endpoint",
    )
    done = {"mail server": len(outbox), "profile store": len(profiles.created), "analytics sink": len(analytics.events)}
    expected = {part: 0 if part == broken else 1 for part in parts}
    assert done == expected, lesson(
        expected=f"with the {broken} down, the other two tasks still do their work: {expected}",
        got=f"{done}; the app raised {[repr(e) for e in client.app_errors]}",
        revisit="task 4: queue every task through run_safely (task 3); Starlette runs no later task once one raises",
    )
    assert client.app_errors == [], lesson(
        expected="no exception escapes the background tasks",
        got=f"{[repr(error) for error in client.app_errors]}",
        revisit="task 4: queue every task through run_safely, the last one too",
    )
    assert len(error_logs(caplog)) == 1, lesson(
        expected=f"one ERROR log record for the failure of the {broken}",
        got=[record.getMessage() for record in error_logs(caplog)] or "nothing logged",
        revisit="task 3: run_safely logs the failure (logger.exception) before it carries on",
    )
