"""Specs for kata 2: multiple background tasks.

Run them with

    uv run pytest katas/k02_multiple_tasks

Each spec names the README task it checks. Edit registration.py, not this file.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from fastapi import Request
from pydantic import ValidationError

from dojo.fakes import EMAIL_SENT, EMAIL_STARTED, FakeOutbox
from dojo.impl import kata_module
from dojo.teach import expect_json, expect_status, expect_type, lesson
from dojo.timeline import BOUND, CLIENT_ADDRESS, RESPONSE_COMPLETE, Exchange, Timeline, within_bound

registration = kata_module("k02_multiple_tasks", "registration")

VALID = {"email": "ada@example.com"}
UNKNOWN = "unknown"  # the README's UNKNOWN_ADDRESS
REGISTERED = "user_registered"  # the README's analytics event
WELCOME = "Welcome aboard"  # the README's subject of the welcome email
PEER = ("198.51.100.23", 51000)  # TEST-NET-2: the client that opened the connection
FORGED = "192.0.2.99"  # TEST-NET-1: the address a client claims in a header it wrote itself
RUNAWAY = 20  # calls of one fake in one spec: past this, it is a loop that would never end
T = TypeVar("T")

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

    user_id: object
    email: object


@dataclass(frozen=True)
class AnalyticsEvent:
    """One analytics record as the sink received it."""

    event: object
    user_id: object
    ip_address: object


class Runaway(BaseException):
    """Raised by a fake called RUNAWAY times in one spec: it ends a loop in the learner's code.

    A BaseException, so that a guard which (rightly) stops only Exception lets it out, and
    the thread running that loop ends instead of keeping the process alive for ever.
    """


def count_call(attempts: int, who: str) -> None:
    if attempts > RUNAWAY:
        raise Runaway(f"the {who} was called {attempts} times in one spec: a loop that never ends?")


class _Collaborator:
    """A collaborator that keeps what it is asked to do, on the timeline too, and can be down for one call.

    Down for ONE call only, like a server that hiccups: a task that is run again would get
    through, so a guard that retries is seen (``attempts``) instead of looping for ever.
    """

    done = failed = ""  # the timeline's names for a call that worked / failed

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.kept: list[Any] = []
        self.attempts = 0
        self.failure: BaseException | None = None

    def fail_with(self, error: BaseException) -> None:
        self.failure = error

    def _keep(self, item: object, detail: str) -> None:
        self.attempts += 1
        count_call(self.attempts, type(self).__name__)
        failure, self.failure = self.failure, None
        if failure is not None:
            self.timeline.record(self.failed, repr(failure))
            raise failure
        self.kept.append(item)
        self.timeline.record(self.done, detail)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kept={self.kept})"


class FakeProfiles(_Collaborator):
    """A profile store that keeps what it is asked to create."""

    done, failed = PROFILE_CREATED, PROFILE_FAILED

    def create(self, user_id: int, email: str) -> None:
        self._keep(Profile(user_id, email), f"user {user_id}")


class FakeAnalytics(_Collaborator):
    """An analytics sink that keeps what it is asked to record."""

    done, failed = ANALYTICS_RECORDED, ANALYTICS_FAILED

    def record(self, event: str, user_id: int, ip_address: str) -> None:
        self._keep(AnalyticsEvent(event, user_id, ip_address), f"user {user_id} from {ip_address}")


class OutboxDownForOneSend(FakeOutbox):
    """dojo's fake mail server, down for one send only when told to fail (see _Collaborator)."""

    def _finish(self, to: str, subject: str, body: str) -> None:
        count_call(self.attempts, "mail server")
        try:
            super()._finish(to, subject, body)
        finally:
            self._failure = None

    @property
    def attempts(self) -> int:
        return self.timeline.count(EMAIL_STARTED)

    @property
    def kept(self) -> list[Any]:
        return self.sent


@pytest.fixture(name="outbox")
def _outbox(timeline: Timeline) -> OutboxDownForOneSend:
    return OutboxDownForOneSend(timeline)


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
def _parts(outbox: OutboxDownForOneSend, profiles: FakeProfiles, analytics: FakeAnalytics) -> dict[str, Any]:
    """The three collaborators, by the name a failure message uses."""
    return {"mail server": outbox, "profile store": profiles, "analytics sink": analytics}


@pytest.fixture(name="log")
def _log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every log record, whatever its level: a spec can then count them exactly."""
    caplog.set_level(logging.DEBUG)
    return caplog


def what_ran(outbox: FakeOutbox, profiles: FakeProfiles, analytics: FakeAnalytics) -> str:
    return f"{len(outbox)} email(s), {len(profiles.kept)} profile(s), {len(analytics.kept)} analytics record(s)"


def nothing_ran(outbox: FakeOutbox, profiles: FakeProfiles, analytics: FakeAnalytics) -> bool:
    return len(outbox) + len(profiles.kept) + len(analytics.kept) == 0 and outbox.timeline.count(EMAIL_STARTED) == 0


def serious(log: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """The records a person is meant to read: WARNING and above."""
    return [record for record in log.records if record.levelno >= logging.WARNING]


def shown(records: list[logging.LogRecord]) -> list[str] | str:
    return [f"{record.levelname} from {record.name!r}: {record.getMessage()}" for record in records] or "nothing"


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


async def bounded(call: Awaitable[T], *, revisit: str) -> T:
    """Await the learner's app within the shared bound; a runaway retry loop is a lesson too."""
    __tracebackhide__ = True
    try:
        return await within_bound(
            call, revisit=revisit, expected="the registration, its background tasks included, finished"
        )
    except Runaway as error:
        raise AssertionError(lesson(expected="each task run once", got=str(error), revisit=GUARD)) from None


async def post(client, *, revisit: str, json: object = VALID, **kwargs: Any):
    """POST /registrations through the shared client, bounded."""
    __tracebackhide__ = True
    return await bounded(client.post("/registrations", json=json, **kwargs), revisit=revisit)


async def post_raw(client, body: bytes, *, revisit: str):
    """POST /registrations with exactly these bytes as a JSON body."""
    __tracebackhide__ = True
    headers = {"content-type": "application/json"}
    return await bounded(client.post("/registrations", content=body, headers=headers), revisit=revisit)


async def exchange(timeline: Timeline, app, *, revisit: str, **kwargs: Any) -> Exchange:
    """One registration driven through the timeline, bounded."""
    __tracebackhide__ = True
    return await bounded(timeline.start(app, "POST", "/registrations", json=VALID, **kwargs), revisit=revisit)


# ---------------------------------------------------------------- a task for run_safely to run


@dataclass
class Calls:
    """What happened to a task given to run_safely: its calls, and whether it was called again."""

    made: list[tuple[tuple[object, ...], dict[str, object]]] = field(default_factory=list)
    again: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)


def a_task(
    name: str, *, raises: BaseException | None = None, returns: object = None
) -> tuple[Callable[..., object], Calls]:
    """A plain function called ``name`` that records each call; the first raises ``raises`` or returns ``returns``.

    A second call is a retry: it is noted at once and then parks (until the spec ends), so a
    guard that runs a failed task again is seen immediately instead of spinning for ever.
    """
    calls = Calls()

    def task(*args: object, **kwargs: object) -> object:
        calls.made.append((args, kwargs))
        count_call(len(calls.made), f"task {name}")
        if len(calls.made) > 1:
            calls.again.set()
            calls.release.wait(BOUND * 2)
            return returns
        if raises is not None:
            raise raises
        return returns

    task.__name__ = task.__qualname__ = name
    return task, calls


@dataclass
class Outcome:
    """How a call to run_safely ended."""

    finished: bool = False
    returned: object = None
    escaped: BaseException | None = None


def run_guard(task: Callable[..., object], calls: Calls, *args: object, **kwargs: object) -> Outcome:
    """Call run_safely(task, *args, **kwargs) in a thread of its own, and wait for it (at most BOUND s).

    The wait also ends the moment the task is called a second time: that is the verdict.
    """
    outcome = Outcome()
    settled = threading.Event()

    def call() -> None:
        try:
            outcome.returned = registration.run_safely(task, *args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - whatever escapes is what the spec judges
            outcome.escaped = error
        outcome.finished = True
        settled.set()

    def watch_retries() -> None:
        if calls.again.wait(BOUND):
            settled.set()

    for target in (call, watch_retries):
        threading.Thread(target=target, name=f"k02 spec: {target.__name__}", daemon=True).start()
    settled.wait(BOUND)
    return outcome


@pytest.fixture(name="tasks")
def _tasks():
    """Makes tasks for run_safely, and lets any parked retry go when the spec ends."""
    made: list[Calls] = []

    def make(name: str, **script: Any) -> tuple[Callable[..., object], Calls]:
        task, calls = a_task(name, **script)
        made.append(calls)
        return task, calls

    yield make
    for calls in made:
        calls.release.set()
        calls.again.set()  # ends the spec's watcher thread too


GUARD = (
    "task 3: the guard runs the task once and must return when it is done, failed or not "
    "(README: A guard around each task)"
)


# ---------------------------------------------------------------- task 1: validate first

VALIDATE = (
    "task 1: declare the body as a model with a required, validated address, so FastAPI answers 422 "
    "before any task is queued (README: Validation before the endpoint)"
)


@pytest.mark.task(1)
@pytest.mark.parametrize("body", [{}, {"name": "Ada Lovelace"}, {"Email": "ada@example.com"}], ids=repr)
async def test_a_registration_without_an_email_is_a_422_naming_the_field_and_queues_nothing(
    client, outbox, profiles, analytics, body
):
    """Leaving `email` out is the client's mistake: a 422 whose detail names the field, and no task runs."""
    response = await post(client, json=body, revisit=VALIDATE)
    expect_status(
        response,
        422,
        expected=f"422 Unprocessable Content for {body!r}, which has no `email`",
        revisit="task 1: a field with no default is required, and FastAPI answers 422 when it is missing; "
        "a dictionary read by key would crash with a KeyError, a 500 (README: Validation before the endpoint)",
    )
    detail = response.json().get("detail")
    named = isinstance(detail, list) and any(
        isinstance(error, dict) and error.get("loc") == ["body", "email"] and error.get("type") == "missing"
        for error in detail
    )
    assert named, lesson(
        expected='a 422 whose detail says the field is missing: {"type": "missing", "loc": ["body", "email"], ...}',
        got=response.text[:300],
        revisit="task 1: the field must be called email, exactly, and be part of the request body "
        "(README: Validate the registration)",
    )
    assert nothing_ran(outbox, profiles, analytics), lesson(
        expected="no task for a rejected registration",
        got=what_ran(outbox, profiles, analytics),
        revisit=VALIDATE,
    )


NOT_AN_OBJECT = [b"", b"null", b"[]", b'["ada@example.com"]', b'"ada@example.com"', b"42", b"true", b"{not json"]


@pytest.mark.task(1)
async def test_a_body_that_is_not_a_json_object_is_a_422_and_queues_nothing(client, outbox, profiles, analytics):
    """No body, null, a list, a string, a number, a boolean or broken JSON: each is a 422, never a 500."""
    for body in NOT_AN_OBJECT:
        response = await post_raw(client, body, revisit=VALIDATE)
        expect_status(
            response,
            422,
            expected=f"422 Unprocessable Content for the body {body.decode() or '(none at all)'}",
            revisit="task 1: let FastAPI read and check the body against the model; code that takes the body "
            "apart by hand crashes, a 500, on a body that is not an object (README: Validation before the endpoint)",
        )
    assert nothing_ran(outbox, profiles, analytics), lesson(
        expected="no task for a rejected registration",
        got=what_ran(outbox, profiles, analytics),
        revisit=VALIDATE,
    )


LONGEST = "a" * 64 + "@" + ".".join(["b" * 63, "c" * 63, "d" * 57]) + ".com"  # 254 characters in all
assert len(LONGEST) == 254  # a check of the spec's own data, at import

MALFORMED = [
    "",
    "ada",
    "ada@",
    "@example.com",
    "ada@example",
    "ada@localhost",
    "ada@@example.com",
    "ada@example..com",
    ".ada@example.com",
    "ada.@example.com",
    "ada..lovelace@example.com",
    "ada lovelace@example.com",
    "ada@exam ple.com",
    "ada@exam_ple.com",
    "ada@-example.com",
    "ada@example-.com",
    "ada@example.com.",
    "ada@example.com,bob@example.com",
    "ada\n@example.com",
    LONGEST[:-4] + "x.com",  # 255 characters: one past the limit
    None,
    42,
    ["ada@example.com"],
    {"address": "ada@example.com"},
]


@pytest.mark.task(1)
async def test_a_malformed_address_is_a_422_and_queues_nothing(client, outbox, profiles, analytics):
    """Through the API: a malformed address is a 422, and no welcome email, profile or analytics record follows it."""
    for email in ["not-an-email", "ada@example", "ada..lovelace@example.com", None, 42]:
        response = await post(client, json={"email": email}, revisit=VALIDATE)
        expect_status(
            response,
            422,
            expected=f"422 Unprocessable Content for the address {email!r}",
            revisit="task 1: the endpoint takes its body as the model, whose address is checked before the "
            "endpoint runs (README: Validation before the endpoint)",
        )
    assert nothing_ran(outbox, profiles, analytics), lesson(
        expected="no task for a rejected registration",
        got=what_ran(outbox, profiles, analytics),
        revisit=VALIDATE,
    )


@pytest.mark.task(1)
@pytest.mark.parametrize("email", MALFORMED, ids=lambda email: repr(email)[:40])
def test_the_model_rejects_every_malformed_address(email):
    """Two @, no dot in the domain, a dot in the wrong place, a space, 255 characters, not a string..."""
    try:
        model = registration.RegistrationRequest.model_validate({"email": email})
    except ValidationError:
        rejected, got = True, "rejected"
    except Exception as error:  # noqa: BLE001 - anything else is a crash: FastAPI would answer 500
        rejected, got = False, f"a crash, not a validation error: {type(error).__name__}: {error}"
    else:
        rejected, got = False, f"accepted: {getattr(model, 'email', 'a model with no field email')!r}"
    assert rejected, lesson(
        expected=f"the address {email!r} rejected",
        got=got,
        revisit="task 1: a plain string, or a pattern of your own, lets malformed addresses through; "
        "pydantic's email type checks the address the way mail servers read it "
        "(README: Validation before the endpoint)",
    )


UNUSUAL = [
    "x@example.com",
    "o'brien@example.com",
    "ada+katas@example.com",
    "ada.lovelace@mail.example.co.uk",
    "#!$%&'*+-/=?^_`{}|~@example.com",
    "ADA@example.com",
    "josé@example.com",
    LONGEST,
]


@pytest.mark.task(1)
@pytest.mark.parametrize("email", UNUSUAL, ids=lambda email: email[:40])
def test_unusual_but_valid_addresses_are_accepted_as_they_are(email):
    """Real people have these addresses: one letter, an apostrophe, a plus, non-ASCII, 254 characters."""
    try:
        model = registration.RegistrationRequest.model_validate({"email": email})
    except Exception as error:  # noqa: BLE001 - a rejection is what this spec reports
        got: object = f"rejected: {str(error)[:300]}"
    else:
        got = getattr(model, "email", "a model with no field email")
    got = expect_type(got, str, what=f"the validated address of {email!r}", revisit=VALIDATE)
    assert got == email, lesson(
        expected=f"{email!r} accepted, as it is",
        got=repr(got),
        revisit="task 1: a valid address has more shapes than a simple pattern allows; pydantic's email type "
        "accepts them all (README: Validation before the endpoint)",
    )


# ---------------------------------------------------------------- task 2: the client's address

PEER_REVISIT = (
    "task 2: the client is the peer at the other end of the connection; the server's own name "
    "and any header are something else (README: Whose address is it)"
)


@pytest.mark.task(2)
@pytest.mark.parametrize("peer", [PEER, ("2001:db8::17", 51000)], ids=["IPv4", "IPv6"])
def test_the_client_address_is_the_peer_that_sent_the_request_not_the_server(peer):
    """A request from the peer to api.example.com comes from the peer's host (without its port)."""
    got = registration.client_address(a_request(client=peer))
    got = expect_type(got, str, what="the client's address", revisit=PEER_REVISIT)
    assert got == peer[0], lesson(
        expected=f"{peer[0]!r}, the peer's host (the server is api.example.com, the peer's port {peer[1]})",
        got=repr(got),
        revisit=PEER_REVISIT,
    )


@pytest.mark.task(2)
def test_when_the_server_knows_no_peer_the_client_address_is_unknown():
    """Over a Unix socket the request has no peer: the address is UNKNOWN_ADDRESS, not a crash."""
    try:
        got = registration.client_address(a_request(client=None))
    except AttributeError as error:
        got = f"AttributeError: {error}"
    got = expect_type(got, str, what="the client's address", revisit=PEER_REVISIT)
    assert got == UNKNOWN, lesson(
        expected=f"{UNKNOWN!r} when the request has no peer (the scope's client is None)",
        got=repr(got),
        revisit="task 2: a server may know no peer at all, and then the request says so instead of "
        "giving an address (README: Whose address is it)",
    )


CLIENT_WRITABLE = {
    "X-Forwarded-For": FORGED,
    "X-Real-IP": FORGED,
    "Forwarded": f"for={FORGED};proto=https",
    "True-Client-IP": FORGED,
    "CF-Connecting-IP": FORGED,
    "X-Client-IP": FORGED,
    "X-Cluster-Client-IP": FORGED,
    "Fastly-Client-IP": FORGED,
    "X-Forwarded": f"for={FORGED}",
    "Forwarded-For": FORGED,
    "X-Originating-IP": FORGED,
    "Client-IP": FORGED,
}


@pytest.mark.task(2)
@pytest.mark.parametrize("peer", [PEER, None], ids=["with a peer", "with no peer"])
@pytest.mark.parametrize("header", list(CLIENT_WRITABLE))
def test_a_header_any_client_can_write_does_not_change_the_address(header, peer):
    """X-Forwarded-For, X-Real-IP, Forwarded and the rest are claims a client makes; the address is the peer's."""
    request = a_request(client=peer, headers={header: CLIENT_WRITABLE[header]})
    got = registration.client_address(request)
    got = expect_type(got, str, what="the client's address", revisit=PEER_REVISIT)
    wanted = peer[0] if peer else UNKNOWN
    assert got == wanted, lesson(
        expected=f"{wanted!r}, whatever the header {header}: {CLIENT_WRITABLE[header]} claims",
        got=repr(got),
        revisit="task 2: any client can write any header, so a header proves nothing; trusting a proxy's "
        "header is the server's job, set up for the proxies you run (README: Whose address is it)",
    )


# ---------------------------------------------------------------- task 3: one failure must not stop the rest


@pytest.mark.task(3)
def test_run_safely_runs_the_task_once_with_its_arguments_and_logs_nothing(tasks, log):
    """`run_safely(task, *args, **kwargs)` calls `task(*args, **kwargs)` once, returns None, and logs no problem."""
    task, calls = tasks("remember", returns="the task's own result")
    outcome = run_guard(task, calls, 7, "ada@example.com", note="hi")
    assert outcome.escaped is None, lesson(
        expected="run_safely returns, having run the task", got=f"it raised {outcome.escaped!r}", revisit=GUARD
    )
    assert calls.made == [((7, "ada@example.com"), {"note": "hi"})], lesson(
        expected="one call: remember(7, 'ada@example.com', note='hi')",
        got=f"{len(calls.made)} call(s): {calls.made}",
        revisit="task 3: the guard passes the task every argument it was given, the named ones too, "
        "and calls it once (README: A guard around each task)",
    )
    assert outcome.finished, lesson(
        expected="run_safely returns, having run the task", got="it had not returned", revisit=GUARD
    )
    expect_type(outcome.returned, type(None), what="what run_safely returns", revisit=GUARD)
    assert serious(log) == [], lesson(
        expected="no warning or error logged for a task that succeeded",
        got=shown(serious(log)),
        revisit="task 3: log only when the task fails (README: Logging a failure)",
    )


class TaskError(Exception):
    """An error of the kata's own: a guard must catch every Exception, not a list of them."""


FAILURES = [
    ConnectionError("the mail server hung up"),
    TimeoutError("the profile store timed out"),
    KeyError("user_id"),
    ValueError("not a valid profile"),
    RuntimeError("analytics quota exceeded"),
    TaskError("something of our own"),
]


@pytest.mark.task(3)
@pytest.mark.parametrize("error", FAILURES, ids=lambda error: type(error).__name__)
def test_a_failing_task_is_logged_once_at_error_with_its_traceback_and_nothing_escapes(tasks, log, error):
    """Any Exception stops in run_safely: one ERROR record, naming the task, with the traceback; no retry."""
    task, calls = tasks("deliver_newsletter", raises=error)
    outcome = run_guard(task, calls, "ada@example.com")
    assert len(calls.made) == 1, lesson(
        expected="the failing task called once",
        got=f"called {len(calls.made)} times",
        revisit="task 3: the guard runs the task once; trying again is another design, with limits "
        "and delays of its own (README: A guard around each task)",
    )
    assert outcome.finished, lesson(
        expected="run_safely returns when the task has failed", got="it had not returned", revisit=GUARD
    )
    assert outcome.escaped is None, lesson(
        expected="run_safely returns normally when the task raises",
        got=f"the task's {outcome.escaped!r} escaped run_safely",
        revisit="task 3: once a task raises, Starlette runs no later task, so the guard must stop every "
        "Exception there, after logging it (README: How Starlette runs several tasks)",
    )
    expect_type(outcome.returned, type(None), what="what run_safely returns", revisit=GUARD)
    with_error = [record for record in log.records if record.exc_info and record.exc_info[1] is error]
    assert len(with_error) == 1 and len(serious(log)) == 1, lesson(
        expected="exactly one record at WARNING or above, and it carries the exception and its traceback",
        got=f"{len(with_error)} record(s) with the exception; at WARNING or above: {shown(serious(log))}",
        revisit="task 3: one failure, one record; the traceback travels with the record, not pasted into "
        "its text (README: Logging a failure)",
    )
    record = with_error[0]
    assert record.levelno == logging.ERROR, lesson(
        expected="the record at ERROR: a task failed, the server itself is fine",
        got=f"{record.levelname}: {record.getMessage()}",
        revisit="task 3: the level says how bad it is, and a failed task is an error, not a warning and "
        "not critical (README: Logging a failure)",
    )
    assert "deliver_newsletter" in record.getMessage(), lesson(
        expected="a message that names the task, deliver_newsletter",
        got=repr(record.getMessage()),
        revisit="task 3: the person reading the log must know which task failed (README: Logging a failure)",
    )
    assert record.name == registration.logger.name, lesson(
        expected=f"the record from the module's logger, {registration.logger.name!r}",
        got=f"from {record.name!r}",
        revisit="task 3: log through the logger the module defines, so the app's logging settings apply "
        "to it (README: Logging a failure)",
    )
    assert record.exc_info is not None and record.exc_info[2] is not None, lesson(
        expected="the record's traceback", got=f"exc_info={record.exc_info!r}", revisit=GUARD
    )


@pytest.mark.task(3)
def test_a_failing_task_that_is_not_a_plain_function_is_logged_by_name_too(tasks, log):
    """A task may be any callable, a functools.partial say, with no __name__: the guard must not crash on it."""
    task, calls = tasks("deliver_newsletter", raises=ConnectionError("the mail server hung up"))
    outcome = run_guard(functools.partial(task, "ada@example.com"), calls)
    assert outcome.finished and outcome.escaped is None, lesson(
        expected="run_safely returns normally when a partial of a function raises",
        got=f"{outcome.escaped!r} escaped run_safely" if outcome.escaped else "it had not returned",
        revisit="task 3: a guard that can crash itself protects nothing; not every callable has a "
        "name attribute (README: A guard around each task)",
    )
    logged = [record for record in serious(log) if "deliver_newsletter" in record.getMessage()]
    assert len(logged) == 1 and logged[0].levelno == logging.ERROR, lesson(
        expected="one ERROR record whose message names deliver_newsletter (a partial shows it in its repr)",
        got=shown(serious(log)),
        revisit="task 3: name the task in the message even when it is not a plain function (README: Logging a failure)",
    )


@pytest.mark.task(3)
@pytest.mark.parametrize(
    "stop",
    [SystemExit(0), KeyboardInterrupt(), asyncio.CancelledError()],
    ids=lambda stop: type(stop).__name__,
)
def test_shutdown_and_cancellation_get_through_run_safely_untouched_and_unlogged(tasks, log, stop):
    """SystemExit, KeyboardInterrupt and CancelledError are not task failures: they pass through, not logged."""
    task, calls = tasks("shut_down", raises=stop)
    outcome = run_guard(task, calls)
    assert len(calls.made) == 1, lesson(
        expected="the task called once", got=f"called {len(calls.made)} times", revisit=GUARD
    )
    assert outcome.escaped is stop, lesson(
        expected=f"the task's {type(stop).__name__} passes through run_safely, the same object",
        got=f"{outcome.escaped!r} escaped" if outcome.escaped else "run_safely swallowed it",
        revisit="task 3: the guard stops Exception and nothing wider; shutdown and cancellation are "
        "BaseExceptions, and stopping them keeps a server from stopping (README: Exception and BaseException)",
    )
    assert serious(log) == [], lesson(
        expected=f"nothing logged for a {type(stop).__name__}: it is not a failure of the task",
        got=shown(serious(log)),
        revisit="task 3: only an Exception is logged as the task's failure (README: Exception and BaseException)",
    )


# ---------------------------------------------------------------- task 4: queue the three, in order

QUEUE = "task 4: queue all three through the guard, then answer (README: Queue the three tasks in order)"


@pytest.mark.task(4)
async def test_a_registration_is_answered_201_with_the_new_user_id_and_email(client):
    """201 Created: the account exists and has its id; the body says which."""
    response = await post(client, revisit=QUEUE)
    expect_status(
        response,
        201,
        expected="201 Created",
        revisit="task 4: the route answers 201 Created when the endpoint returns normally "
        "(README: Queue the three tasks in order)",
    )
    body = response.json()
    expect_type(body, dict, what="the JSON body", revisit=QUEUE)
    expect_type(body.get("user_id"), int, what="the body's user_id", revisit=QUEUE)
    expect_type(body.get("email"), str, what="the body's email", revisit=QUEUE)
    expect_json(
        response,
        {"user_id": 1, "email": VALID["email"]},
        expected=f'{{"user_id": 1, "email": "{VALID["email"]}"}} for the first registration, and nothing more',
        revisit="task 4: the answer gives the new user's id and address (README: Queue the three tasks in order)",
    )


@pytest.mark.task(4)
async def test_no_task_starts_before_the_response_is_complete(app, timeline: Timeline):
    """The client has its whole answer before the first task begins: the work is in the background."""
    done = await exchange(timeline, app, revisit=QUEUE)
    for work in (EMAIL_STARTED, PROFILE_CREATED, ANALYTICS_RECORDED):
        timeline.expect_order(
            RESPONSE_COMPLETE,
            work,
            why=f"'{work}' must happen, and only after the response is complete.",
            revisit="task 4: a queued task runs after the response; calling the guard in the endpoint runs "
            "the task now, while the client waits (README: How Starlette runs several tasks)",
        )
    assert done.error is None, lesson(
        expected="the app and its background tasks finish without an error",
        got=str(done.error),
        revisit=QUEUE,
    )


@pytest.mark.task(4)
async def test_the_tasks_run_in_the_order_email_profile_analytics(app, timeline: Timeline):
    """Welcome email, then profile, then analytics: Starlette runs tasks in the order they were added."""
    await exchange(timeline, app, revisit=QUEUE)
    timeline.expect_order(
        EMAIL_SENT,
        PROFILE_CREATED,
        ANALYTICS_RECORDED,
        why="The three tasks ran in another order than the README asks for.",
        revisit="task 4: the tasks run in the order they were queued, one after another "
        "(README: How Starlette runs several tasks)",
    )


@pytest.mark.task(4)
async def test_each_task_gets_its_data_and_each_registration_its_own_id(client, outbox, profiles, analytics):
    """Two registrations: each answer, email, profile and analytics record carries its own user's id and address."""
    addresses = ["ada@example.com", "grace@example.org"]
    answers = [await post(client, json={"email": address}, revisit=QUEUE) for address in addresses]
    ids = [answer.json().get("user_id") if answer.status_code == 201 else answer.text[:200] for answer in answers]
    expect_type(ids, list, items=(int,), what="the user ids of the two answers", revisit=QUEUE)
    assert ids == [1, 2], lesson(expected="the ids 1 and 2 in the two answers", got=f"{ids}", revisit=QUEUE)
    for email in outbox.sent:
        expect_type(email.to, str, what="the address the welcome email went to", revisit=QUEUE)
    emails = [(email.to, email.subject, email.body) for email in outbox.sent]
    assert emails == [(address, WELCOME, f"{WELCOME}, {address}!") for address in addresses], lesson(
        expected=f"one welcome email to each address, in turn, subject {WELCOME!r}: {addresses}",
        got=f"{len(emails)} email(s): {emails}",
        revisit="task 4: the welcome email goes to the address of the registration "
        "(README: Queue the three tasks in order)",
    )
    for profile in profiles.kept:
        expect_type(profile.user_id, int, what="the user id given to the profile store", revisit=QUEUE)
        expect_type(profile.email, str, what="the address given to the profile store", revisit=QUEUE)
    wanted = [Profile(number, address) for number, address in enumerate(addresses, start=1)]
    assert profiles.kept == wanted, lesson(
        expected=f"one profile per registration: {wanted}",
        got=f"{profiles.kept}",
        revisit="task 4: the profile is created for the new user's id and address "
        "(README: Queue the three tasks in order)",
    )
    for event in analytics.kept:
        expect_type(event.user_id, int, what="the user id given to analytics", revisit=QUEUE)
        expect_type(event.event, str, what="the event given to analytics", revisit=QUEUE)
    got = [(event.event, event.user_id) for event in analytics.kept]
    assert got == [(REGISTERED, 1), (REGISTERED, 2)], lesson(
        expected=f"one analytics record per registration: ({REGISTERED!r}, 1), then 2",
        got=f"{got}",
        revisit="task 4: analytics records the registration of the new user's id "
        "(README: Queue the three tasks in order)",
    )


@pytest.mark.task(4)
async def test_the_analytics_record_carries_the_client_address_not_the_server(client, analytics):
    """The shared client calls from 203.0.113.7 to testserver: analytics must say 203.0.113.7."""
    await post(client, revisit=QUEUE)
    got = [expect_type(e.ip_address, str, what="the address given to analytics", revisit=QUEUE) for e in analytics.kept]
    assert got == [CLIENT_ADDRESS[0]], lesson(
        expected=f"one analytics record from {CLIENT_ADDRESS[0]!r}, the client (the server is 'testserver')",
        got=f"{got}",
        revisit="task 4: analytics gets the address your task 2 finds (README: Whose address is it)",
    )


@pytest.mark.task(4)
async def test_forged_headers_do_not_reach_the_analytics_record(client, analytics):
    """A client that claims another address in every header it can write is still recorded from its own."""
    await post(client, headers=CLIENT_WRITABLE, revisit=QUEUE)
    got = [expect_type(e.ip_address, str, what="the address given to analytics", revisit=QUEUE) for e in analytics.kept]
    assert got == [CLIENT_ADDRESS[0]], lesson(
        expected=f"one analytics record from {CLIENT_ADDRESS[0]!r}, the peer, whatever these headers claim: "
        f"{', '.join(CLIENT_WRITABLE)}",
        got=f"{got}",
        revisit="task 4: the endpoint asks your task 2 for the address and reads no header itself "
        "(README: Whose address is it)",
    )


@pytest.mark.task(4)
async def test_a_registration_over_a_connection_with_no_client_address_still_succeeds(
    app, timeline: Timeline, analytics
):
    """With no peer address (a Unix socket), the user is still registered and analytics says unknown."""

    async def without_peer(scope, receive, send):
        await app({**scope, "client": None}, receive, send)

    done = await exchange(timeline, without_peer, revisit=QUEUE)
    assert done.status == 201 and done.error is None, lesson(
        expected="201 Created, and no error, when the request has no peer",
        got=str(done),
        revisit="task 4: the endpoint gets the address from your task 2, which knows what to say when "
        "there is no peer (README: Whose address is it)",
    )
    got = [expect_type(e.ip_address, str, what="the address given to analytics", revisit=QUEUE) for e in analytics.kept]
    assert got == [UNKNOWN], lesson(
        expected=f"one analytics record from {UNKNOWN!r}",
        got=f"{got}",
        revisit="task 4: analytics gets the address your task 2 finds (README: Whose address is it)",
    )


BROKEN = [["mail server"], ["profile store"], ["analytics sink"], ["mail server", "profile store"]]
BROKEN.append(["mail server", "profile store", "analytics sink"])


@pytest.mark.task(4)
@pytest.mark.parametrize("broken", BROKEN, ids=" and ".join)
async def test_whichever_tasks_fail_the_others_still_run_and_each_failure_is_logged(client, parts, log, broken):
    """A failing task costs only its own work: the others still run, nothing escapes, each failure is logged once."""
    for part in broken:
        parts[part].fail_with(ConnectionError(f"the {part} is down"))
    response = await post(client, revisit=QUEUE)
    expect_status(
        response,
        201,
        expected="201 Created: the tasks run after the response",
        revisit="task 4: the tasks are queued, never run in the endpoint (README: How Starlette runs several tasks)",
    )
    attempts = {part: parts[part].attempts for part in parts}
    assert all(count <= 1 for count in attempts.values()), lesson(
        expected="each collaborator asked once",
        got=f"{attempts}",
        revisit="task 3: the guard runs the task once, failed or not (README: A guard around each task)",
    )
    done = {part: len(parts[part].kept) for part in parts}
    expected = {part: 0 if part in broken else 1 for part in parts}
    assert done == expected, lesson(
        expected=f"with the {' and the '.join(broken)} down, the other tasks still do their work: {expected}",
        got=f"{done}; the app raised {[repr(e) for e in client.app_errors]}",
        revisit="task 4: each task goes through a guard of its own, because Starlette runs no later task once "
        "one raises, and one guard around several stops at the first failure too (README: A guard around each task)",
    )
    assert client.app_errors == [], lesson(
        expected="no exception escapes the background tasks",
        got=f"{[repr(error) for error in client.app_errors]}",
        revisit="task 4: every task goes through the guard, the last one too (README: A guard around each task)",
    )
    errors = [record for record in serious(log) if record.levelno == logging.ERROR]
    assert len(errors) == len(broken), lesson(
        expected=f"{len(broken)} ERROR record(s), one for each failure",
        got=shown(serious(log)),
        revisit="task 3: the guard logs each failure once before it lets the next task run (README: Logging a failure)",
    )
