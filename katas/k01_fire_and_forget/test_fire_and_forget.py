"""Specs for kata 1: fire and forget.

Run them with

    uv run pytest katas/k01_fire_and_forget

Each spec names the README task it checks. Edit notifications.py, not this file.
The fixtures (the app, the fake outbox) are in conftest.py beside it.
"""

from __future__ import annotations

import asyncio
import inspect

import pytest
from starlette.background import BackgroundTask

from dojo.fakes import EMAIL_BLOCKED_LOOP, EMAIL_STARTED, FakeOutbox
from dojo.impl import kata_module
from dojo.teach import expect_json, expect_status, expect_type, lesson
from dojo.timeline import RESPONSE_COMPLETE, Timeline

notifications = kata_module("k01_fire_and_forget", "notifications")

VALID = {"email": "ada@example.com", "message": "Your report is ready."}
SUBJECT = "You have a new notification"  # the product's subject line, the stub's SUBJECT as shipped

# The lessons each task's failures point back to (task N: the idea (README: the section)).
VALIDATE_ADDRESS = (
    "task 1: an address is validated as an email address, a stricter rule than text with an at sign "
    "(README: Validation happens before your code)"
)
VALIDATE_MESSAGE = (
    "task 1: the message has 1 to 1000 characters, counted as characters and not as bytes "
    "(README: Validation happens before your code)"
)
VALIDATE_SHAPE = (
    "task 1: both fields are required and the body must be a JSON object holding them "
    "(README: Validation happens before your code)"
)
THE_TASK = (
    "task 2: the task sends one email, to the address given, with the message as its body "
    "(README: Write the email task)"
)
THE_TASK_BLOCKS = (
    "task 2: a task that makes a blocking call must be a plain function, which Starlette runs in its thread pool "
    "(README: Why a blocking call in an async task freezes everything)"
)
THE_ANSWER = "task 3: the answer says the work is accepted and queued, not done (README: 202 Accepted, a promise)"
THE_QUEUE = (
    "task 3: queue the email task itself, with its arguments, on the background tasks of the request "
    "(README: The response first, then the tasks)"
)
NOT_IN_THE_ENDPOINT = (
    "task 3: nothing slow happens in the endpoint; the background tasks run after the response "
    "(README: The response first, then the tasks)"
)
NO_ASYNC_WRAPPER = (
    "task 3: whatever Starlette runs on the event loop must never block it "
    "(README: Why a blocking call in an async task freezes everything)"
)


def model_of(payload: dict[str, object], *, revisit: str) -> object:
    """The learner's NotificationRequest built from ``payload``, or a failure that says why not."""
    __tracebackhide__ = True
    try:
        return notifications.NotificationRequest.model_validate(payload)
    except Exception as error:  # noqa: BLE001 - a ValidationError, or whatever the learner's model raises
        errors = error.errors() if hasattr(error, "errors") else error  # pydantic lists each broken rule
        pytest.fail(
            "A valid request was refused."
            + lesson(
                expected=f"NotificationRequest to accept {payload!r:.150}",
                got=f"{type(error).__name__}: {errors!s:.400}",
                revisit=revisit,
            ),
            pytrace=False,
        )


def field(model: object, name: str, *, revisit: str) -> object:
    """A field of the learner's model, type-checked: it must be a plain str."""
    __tracebackhide__ = True
    missing = object()
    value = getattr(model, name, missing)
    if value is missing:
        pytest.fail(
            lesson(
                expected=f"NotificationRequest to have a field {name!r}", got="no such field", revisit=VALIDATE_SHAPE
            ),
            pytrace=False,
        )
    return expect_type(value, str, what=f"the model's {name}", revisit=revisit)


# ---------------------------------------------------------------- task 1: validate first

# Each of these breaks a rule of email addresses that a pattern like "text@text.text" lets through.
NOT_ADDRESSES = [
    ("not-an-email", "no at sign"),
    ("ada@", "nothing after the at sign"),
    ("@example.com", "nothing before the at sign"),
    ("ada example.com", "a space instead of the at sign"),
    ("", "empty"),
    ("ada@@example.com", "two at signs"),
    ("ada@example", "a domain without a dot"),
    ("ada@exa mple.com", "a space in the domain"),
    (".ada@example.com", "a dot at the start"),
    ("ada.@example.com", "a dot just before the at sign"),
    ("ada@example..com", "two dots in a row"),
    ("ada@-example.com", "a domain label that starts with a hyphen"),
    ("ada@example.com\r\nBcc: eve@example.com", "a line break, which would add a header to the email"),
]


@pytest.mark.task(1)
@pytest.mark.parametrize(("email", "why"), NOT_ADDRESSES, ids=[why for _, why in NOT_ADDRESSES])
async def test_an_address_that_is_not_an_email_is_rejected_with_422_and_nothing_is_sent(post, outbox, email, why):
    """A malformed address is the client's mistake (422), and no email may go out for it."""
    response = await post(json={"email": email, "message": "hi"})
    expect_status(
        response, 422, expected=f"422 Unprocessable Content for the address {email!r} ({why})", revisit=VALIDATE_ADDRESS
    )
    assert len(outbox) == 0, lesson(
        expected="no email for a rejected request", got=repr(outbox), revisit=VALIDATE_ADDRESS
    )


# Valid, if unusual: a plus tag, a two-part country domain, an apostrophe, a domain in another script.
ADDRESSES = ["ada+reports@example.co.uk", "grace.hopper@mail.example.org", "o'brien@example.com", "ada@exämple.com"]


@pytest.mark.task(1)
@pytest.mark.parametrize("email", ADDRESSES)
def test_an_unusual_but_valid_address_is_accepted_as_it_is(email):
    """Plus tags, apostrophes and international domains are valid addresses: refusing them loses real users."""
    model = model_of({"email": email, "message": "hi"}, revisit=VALIDATE_ADDRESS)
    got = field(model, "email", revisit=VALIDATE_ADDRESS)
    assert got == email, lesson(expected=f"the address {email!r}, unchanged", got=repr(got), revisit=VALIDATE_ADDRESS)


@pytest.mark.task(1)
@pytest.mark.parametrize(
    ("message", "why"),
    [
        ("", "empty"),
        ("x" * 1001, "1001 characters long"),
        ("é" * 1001, "1001 characters long, in a script of two bytes a character"),
    ],
    ids=["empty", "1001 characters", "1001 non-ASCII characters"],
)
async def test_a_message_that_is_empty_or_too_long_is_rejected_with_422(post, outbox, message, why):
    """A message has 1 to 1000 characters; outside that range is a 422 and no email."""
    response = await post(json={"email": "ada@example.com", "message": message})
    expect_status(response, 422, expected=f"422 for a message that is {why}", revisit=VALIDATE_MESSAGE)
    assert len(outbox) == 0, lesson(expected="no email", got=repr(outbox), revisit=VALIDATE_MESSAGE)


@pytest.mark.task(1)
@pytest.mark.parametrize(
    ("message", "why"),
    [
        ("x", "1 character, the shortest allowed"),
        ("é", "1 character, 2 bytes in UTF-8"),
        ("x" * 1000, "1000 characters, the longest allowed"),
        ("é" * 1000, "1000 characters, 2000 bytes in UTF-8"),
        ("\N{ENVELOPE}" * 1000, "1000 characters, 3000 bytes in UTF-8"),
    ],
    ids=["1 character", "1 non-ASCII character", "1000 characters", "1000 two-byte characters", "1000 envelopes"],
)
def test_a_message_of_1_to_1000_characters_is_accepted_in_any_script(message, why):
    """Both ends of the range are inside it, and a limit on characters does not count bytes."""
    model = model_of({"email": "ada@example.com", "message": message}, revisit=VALIDATE_MESSAGE)
    got = field(model, "message", revisit=VALIDATE_MESSAGE)
    assert got == message, lesson(
        expected=f"the message, {why}, accepted unchanged",
        got=f"{got[:40]!r}... ({len(got)} characters)",
        revisit=VALIDATE_MESSAGE,
    )


@pytest.mark.task(1)
@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ({"message": "hi"}, ["email"]),
        ({"email": "ada@example.com"}, ["message"]),
        ({}, ["email", "message"]),
    ],
    ids=["no email", "no message", "neither"],
)
async def test_a_request_missing_a_field_is_rejected_with_422_naming_it(post, outbox, body, missing):
    """Both fields are required: leaving one out is a 422 that names exactly what is missing, not a 500."""
    response = await post(json=body)
    expect_status(response, 422, expected=f"422 naming the missing field(s) {missing}", revisit=VALIDATE_SHAPE)
    detail = response.json().get("detail", [])
    named = sorted(
        str(error["loc"][-1])
        for error in detail
        if isinstance(error, dict) and error.get("type") == "missing" and error.get("loc")
    )
    assert named == missing, lesson(
        expected=f"the 422's detail to name as missing exactly {missing}",
        got=f"it names {named}: {response.text[:300]}",
        revisit=VALIDATE_SHAPE,
    )
    assert len(outbox) == 0, lesson(expected="no email", got=repr(outbox), revisit=VALIDATE_SHAPE)


NOT_OBJECTS = [
    (b"", "no body at all"),
    (b"null", "null"),
    (b"[]", "an empty list"),
    (b'[{"email": "ada@example.com", "message": "hi"}]', "a list holding a valid request"),
    (b'"ada@example.com"', "a string"),
    (b"42", "a number"),
    (b"true", "a boolean"),
    (b'{"email": "ada@example.com", "message": ', "JSON cut short"),
    (b'{"email": 42, "message": "hi"}', "an address that is a number"),
    (b'{"email": null, "message": "hi"}', "an address that is null"),
    (b'{"email": ["ada@example.com"], "message": "hi"}', "an address in a list"),
    (b'{"email": "ada@example.com", "message": 42}', "a message that is a number"),
    (b'{"email": "ada@example.com", "message": null}', "a message that is null"),
]


@pytest.mark.task(1)
@pytest.mark.parametrize(("content", "why"), NOT_OBJECTS, ids=[why for _, why in NOT_OBJECTS])
async def test_a_body_that_is_not_an_object_of_two_strings_is_rejected_with_422(post, outbox, content, why):
    """Only a JSON object with a string address and a string message is a request; anything else is a 422."""
    model = model_of(VALID, revisit=VALIDATE_SHAPE)  # the object itself is a request ...
    field(model, "email", revisit=VALIDATE_SHAPE)
    field(model, "message", revisit=VALIDATE_SHAPE)
    response = await post(content=content, headers={"content-type": "application/json"})
    expect_status(response, 422, expected=f"422 for a body that is {why}", revisit=VALIDATE_SHAPE)
    assert len(outbox) == 0, lesson(expected="no email", got=repr(outbox), revisit=VALIDATE_SHAPE)


# ---------------------------------------------------------------- task 2: the email itself


@pytest.mark.task(2)
async def test_the_email_task_sends_one_email_to_the_address_with_the_message(outbox, timeline, within, in_thread):
    """Called directly, the task sends exactly one email, before it returns: right recipient, subject and body."""
    with outbox.window():
        # Called in a worker thread, so that a task that never returns cannot hang the spec.
        task = notifications.send_notification_email
        ended, result = await within(in_thread(task, outbox, "grace@example.com", "Build finished."))
        if ended and inspect.isawaitable(result):  # an `async def` task is fine too, if it does not block
            ended, result = await within(result)
    assert ended, lesson(
        expected="the task to return once the email is sent",
        got=f"still running after {timeline.safety_timeout} s",
        revisit=THE_TASK,
    )
    assert not isinstance(result, BaseException), lesson(
        expected="the task to send without an error", got=f"{type(result).__name__}: {result}", revisit=THE_TASK
    )
    expected = [("grace@example.com", SUBJECT, "Build finished.")]
    got = outbox.sent_inside()
    for email in got:
        expect_type(email, tuple, items=(str,), what="the email's (to, subject, body)", revisit=THE_TASK)
    assert got == expected, lesson(
        expected=f"one email (to, subject, body), sent before the task returned: {expected}",
        got=f"{len(got)} sent while it ran: {got}; {outbox.sent_outside()} sent from elsewhere so far",
        revisit=THE_TASK,
    )


@pytest.mark.task(2)
async def test_the_email_task_never_blocks_the_event_loop_when_starlette_runs_it(outbox, timeline, within):
    """Run as Starlette runs a background task, a slow send must leave the event loop free for other requests."""
    outbox.hold()  # every send now blocks, as a slow mail server does, until released
    task = BackgroundTask(notifications.send_notification_email, outbox, "grace@example.com", "Build finished.")
    running = asyncio.ensure_future(task())
    started = asyncio.ensure_future(timeline.wait_for(EMAIL_STARTED))
    await asyncio.wait({running, started}, timeout=timeline.safety_timeout, return_when=asyncio.FIRST_COMPLETED)
    started.cancel()
    if started.done() and not started.cancelled():
        started.exception()  # read it (a timeout's AssertionError), so asyncio never reports it later
    blocked = timeline.count(EMAIL_BLOCKED_LOOP)
    outbox.release()
    ended, outcome = await within(running)
    assert ended, lesson(
        expected="the task to end once the mail server answers",
        got=f"still running after {timeline.safety_timeout} s",
        revisit=THE_TASK,
    )
    assert not isinstance(outcome, BaseException), lesson(
        expected="the task to send without an error", got=f"{type(outcome).__name__}: {outcome}", revisit=THE_TASK
    )
    assert blocked == 0, (
        "The slow, blocking send ran on the event loop thread: while it works, no other request is served."
        + lesson(
            expected="the blocking send to run in a worker thread, away from the event loop",
            got="it was called on the event loop thread, from async code",
            revisit=THE_TASK_BLOCKS,
        )
        + timeline.render()
    )


# ---------------------------------------------------------------- task 3: queue it, answer at once


@pytest.mark.task(3)
@pytest.mark.parametrize("email", ["ada@example.com", "grace.hopper@mail.example.org"])
async def test_a_valid_request_is_accepted_with_202_and_a_body_that_says_it_is_queued(post, email):
    """202 Accepted, not 200: the work is queued, not done. The body says so, and for whom."""
    response = await post(json={"email": email, "message": "hi"})
    expect_status(response, 202, expected="202 Accepted", revisit=THE_ANSWER)
    try:
        parsed = response.json()
    except ValueError:
        parsed = response.text  # not JSON: the type check below says so
    body = expect_type(parsed, dict, what="the JSON body", revisit=THE_ANSWER)
    for key in ("status", "email"):
        expect_type(body.get(key), str, what=f"the body's {key}", revisit=THE_ANSWER)
    expect_json(
        response,
        {"status": "queued", "email": email},
        expected=f'exactly {{"status": "queued", "email": "{email}"}}',
        revisit=THE_ANSWER,
    )


def expect_one_email(outbox: FakeOutbox, timeline: Timeline, email: str, message: str) -> None:
    """Exactly one email, this one, sent by the request's own background tasks."""
    __tracebackhide__ = True
    got = outbox.sent_inside()
    for sent in got:
        expect_type(sent, tuple, items=(str,), what="the email's (to, subject, body)", revisit=THE_QUEUE)
    expected = [(email, SUBJECT, message)]
    if got != expected:
        shown = [
            (to, subject, f"{body[:40]}... ({len(body)} characters)" if len(body) > 40 else body)
            for to, subject, body in got
        ]
        raise AssertionError(
            "One request, one email, sent by the request's own background tasks: after the response's last byte, "
            "before the request's call returns. An email sent from the endpoint, or from a task or thread started "
            "there, counts as sent from elsewhere (README: A task of your own is not a background task)."
            + lesson(
                expected=f"one email (to, subject, body): {(email, SUBJECT, message[:40])}",
                got=f"{len(got)} sent by them: {shown}; {outbox.sent_outside()} sent from elsewhere so far",
                revisit=THE_QUEUE,
            )
            + timeline.render()
        )


@pytest.mark.task(3)
async def test_the_email_is_sent_after_the_response_by_the_requests_background_tasks(call, outbox, timeline):
    """The client has its whole answer before the email task starts, and the request itself sends it."""
    exchange = await call(json=VALID)
    expect_one_email(outbox, timeline, VALID["email"], VALID["message"])
    assert exchange.error is None, lesson(
        expected="the app and its background tasks finish without an error",
        got=f"{type(exchange.error).__name__}: {exchange.error}",
        revisit=THE_QUEUE,
    )


@pytest.mark.task(3)
async def test_a_slow_mail_server_does_not_hold_the_response_back(app, outbox, timeline: Timeline, within):
    """While the mail server blocks, the client already has its 202, and the event loop is free."""
    outbox.hold()  # every send now blocks until released
    call = timeline.start(app, "POST", "/notifications", json=VALID)
    first = await timeline.wait_for(RESPONSE_COMPLETE, EMAIL_STARTED)
    outbox.release()
    ended, exchange = await within(call)
    assert ended, lesson(
        expected="the request to end once the mail server answers",
        got=f"still running after {timeline.safety_timeout} s",
        revisit=NOT_IN_THE_ENDPOINT,
    )
    expect_status(exchange, 202, revisit=THE_ANSWER)
    assert first.name == RESPONSE_COMPLETE, (
        "The response waited for the mail server."
        + lesson(
            expected="the 202 is complete while the slow send is still blocked",
            got=f"{first} came first",
            revisit=NOT_IN_THE_ENDPOINT,
        )
        + timeline.render()
    )
    assert timeline.count(EMAIL_BLOCKED_LOOP) == 0, (
        "The slow, blocking send ran on the event loop thread: while it works, no other request is served."
        + lesson(
            expected="the blocking send to run in a worker thread, away from the event loop",
            got="it was called on the event loop thread, from async code",
            revisit=NO_ASYNC_WRAPPER,
        )
        + timeline.render()
    )


UNUSUAL = [("ada+reports@example.co.uk", "x"), ("ada@exämple.com", "é" * 1000)]


@pytest.mark.task(3)
@pytest.mark.parametrize(
    ("email", "message"), UNUSUAL, ids=["plus tag, 1 character", "international domain, 1000 characters"]
)
async def test_any_valid_request_is_queued_and_sent_as_given(call, outbox, timeline, email, message):
    """The address and the message go out exactly as the client gave them, at both ends of the limits."""
    exchange = await call(json={"email": email, "message": message})
    expect_status(exchange, 202, revisit=THE_ANSWER)
    expect_json(exchange, {"status": "queued", "email": email}, revisit=THE_ANSWER)
    expect_one_email(outbox, timeline, email, message)
