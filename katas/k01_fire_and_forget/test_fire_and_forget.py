"""Specs for kata 1: fire and forget.

Run them with

    uv run pytest katas/k01_fire_and_forget

Each spec names the README task it checks. Edit notifications.py, not this file.
"""

from __future__ import annotations

import inspect

import pytest

from dojo.fakes import EMAIL_BLOCKED_LOOP, EMAIL_SENT, EMAIL_STARTED, FakeOutbox
from dojo.impl import kata_module
from dojo.teach import expect_json, expect_status, lesson
from dojo.timeline import RESPONSE_COMPLETE, Timeline

notifications = kata_module("k01_fire_and_forget", "notifications")

VALID = {"email": "ada@example.com", "message": "Your report is ready."}


@pytest.fixture(name="app")
def _app(outbox: FakeOutbox):
    """The kata's app, sending through the fake outbox."""
    return notifications.create_app(mailer=outbox)


# ---------------------------------------------------------------- task 1: validate first


@pytest.mark.task(1)
@pytest.mark.parametrize("email", ["not-an-email", "ada@", "@example.com", "ada example.com", ""])
async def test_an_address_that_is_not_an_email_is_rejected_with_422_and_nothing_is_sent(client, outbox, email):
    """A malformed address is the client's mistake (422), and no email may go out for it."""
    response = await client.post("/notifications", json={"email": email, "message": "hi"})
    expect_status(
        response,
        422,
        expected=f"422 Unprocessable Content for the address {email!r}",
        revisit="task 1: declare `email` as pydantic's EmailStr so FastAPI validates it",
    )
    assert len(outbox) == 0, lesson(
        expected="no email for a rejected request",
        got=repr(outbox),
        revisit="task 1: validation happens before the endpoint runs, so nothing is queued",
    )


@pytest.mark.task(1)
async def test_a_request_without_an_address_is_rejected_with_422(client, outbox):
    """`email` is required: leaving it out is a 422 naming the field, not a 500."""
    response = await client.post("/notifications", json={"message": "hi"})
    expect_status(
        response,
        422,
        expected="422 naming the missing field `email`",
        revisit="task 1: a field with no default is required",
    )
    assert "email" in response.text, lesson(
        expected="the 422's detail to name the field `email`",
        got=response.text[:300],
        revisit="task 1: the field must be called `email`",
    )
    assert len(outbox) == 0, lesson(expected="no email", got=repr(outbox), revisit="task 1")


@pytest.mark.task(1)
@pytest.mark.parametrize(("message", "why"), [("", "empty"), ("x" * 1001, "1001 characters long")])
async def test_a_message_that_is_empty_or_too_long_is_rejected_with_422(client, outbox, message, why):
    """A message has 1 to 1000 characters; outside that range is a 422 and no email."""
    response = await client.post("/notifications", json={"email": "ada@example.com", "message": message})
    expect_status(
        response,
        422,
        expected=f"422 for a message that is {why}",
        revisit="task 1: Field(min_length=1, max_length=1000)",
    )
    assert len(outbox) == 0, lesson(expected="no email", got=repr(outbox), revisit="task 1")


# ---------------------------------------------------------------- task 2: the email itself


@pytest.mark.task(2)
async def test_the_email_task_sends_one_email_to_the_address_with_the_message(outbox):
    """Called directly, the task sends exactly one email: right recipient, subject and body."""
    result = notifications.send_notification_email(outbox, "grace@example.com", "Build finished.")
    if inspect.isawaitable(result):  # an `async def` task is fine too, if it does not block
        await result
    expected = [("grace@example.com", notifications.SUBJECT, "Build finished.")]
    got = [(email.to, email.subject, email.body) for email in outbox.sent]
    assert got == expected, lesson(
        expected=f"one email (to, subject, body): {expected}",
        got=f"{got}",
        revisit="task 2: mailer.send(to=email, subject=SUBJECT, body=message)",
    )


# ---------------------------------------------------------------- task 3: queue it, answer at once


@pytest.mark.task(3)
async def test_a_valid_request_is_accepted_with_202_and_says_it_is_queued(client):
    """202 Accepted, not 200: the work is queued, not done. The body says so."""
    response = await client.post("/notifications", json=VALID)
    expect_status(
        response,
        202,
        expected="202 Accepted",
        revisit="task 3: the route is declared with status_code=202",
    )
    expect_json(
        response,
        {"status": "queued", "email": VALID["email"]},
        expected=f'{{"status": "queued", "email": "{VALID["email"]}"}}',
        revisit="task 3: the endpoint's return value",
    )


@pytest.mark.task(3)
async def test_exactly_one_email_goes_to_the_requested_address_with_the_message(client, outbox):
    """One request, one email: to the address in the request, with its message as the body."""
    await client.post("/notifications", json=VALID)
    got = [(email.to, email.body) for email in outbox.sent]
    assert got == [(VALID["email"], VALID["message"])], lesson(
        expected=f"one email to {VALID['email']} with body {VALID['message']!r}",
        got=f"{len(got)} email(s): {got}",
        revisit="task 3: add_task(send_notification_email, mailer, email, message), in that order, once",
    )


@pytest.mark.task(3)
async def test_the_email_goes_out_only_after_the_response_is_complete(app, timeline: Timeline):
    """The client has its whole answer before the email task starts: that is fire and forget."""
    exchange = await timeline.request(app, "POST", "/notifications", json=VALID)
    timeline.expect_order(
        RESPONSE_COMPLETE,
        EMAIL_SENT,
        why="The email must go out after the response is complete, and it must go out.",
        revisit="task 3: background_tasks.add_task(func, *args) runs func after the response; "
        "add_task(func(*args)) calls it now",
    )
    assert exchange.error is None, lesson(
        expected="the app and its background task finish without an error",
        got=f"{type(exchange.error).__name__}: {exchange.error}",
        revisit="task 3: add_task takes the function itself, then its arguments",
    )


@pytest.mark.task(3)
async def test_a_slow_mail_server_does_not_hold_the_response_back(app, outbox: FakeOutbox, timeline: Timeline):
    """While the mail server blocks, the client already has its 202."""
    outbox.hold()  # every send now blocks until released
    call = timeline.start(app, "POST", "/notifications", json=VALID)
    first = await timeline.wait_for(RESPONSE_COMPLETE, EMAIL_STARTED)
    outbox.release()
    exchange = await call
    expect_status(exchange, 202, revisit="task 3: queue the email and answer 202")
    assert first.name == RESPONSE_COMPLETE, (
        "The response waited for the mail server."
        + lesson(
            expected="the 202 is complete while the slow send is still blocked",
            got=f"{first} came first",
            revisit="task 3: never call the sender in the endpoint; queue it with add_task",
        )
        + timeline.render()
    )
    assert timeline.count(EMAIL_BLOCKED_LOOP) == 0, (
        "The slow, blocking send ran on the event loop thread: while it works, no other request is served."
        + lesson(
            expected="a plain `def` task, which Starlette runs in its thread pool",
            got="the blocking mailer.send was called from async code",
            revisit="task 2: keep send_notification_email a `def` (or await asyncio.to_thread(...))",
        )
        + timeline.render()
    )
