"""Specs for kata 3: retry.

Run them with

    uv run pytest katas/k03_retry

Each spec names the README task it checks. Edit payments.py, not this file.

Nothing here waits: the sleep is a fake that only writes down how long it was asked to
sleep, the random source is scripted, and the gateway follows a script of outcomes.
The specs marked "property" let hypothesis try a hundred scripts and policies; when one
fails, its "Falsifying example" is the smallest case it found.
"""

from __future__ import annotations

import logging
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dojo.fakes import CHARGE_ATTEMPTED, AsyncFakeOutbox, FakeClock, FakeGateway, FakeSleep
from dojo.impl import kata_module
from dojo.teach import expect_json, expect_status, lesson
from dojo.timeline import RESPONSE_COMPLETE, Timeline

payments = kata_module("k03_retry", "payments")

PAYMENT = {"payment_id": "pay_42", "amount_cents": 1250, "email": "ada@example.com"}
DEFAULTS = {"max_attempts": 3, "base_delay": 0.5, "max_delay": 8.0, "jitter": 0.25}

# Error texts the specs look for in emails and logs; none of them says "attempt".
TIMEOUT = "gateway timed out after 10 s"
UNAVAILABLE = "503 Service Unavailable"
RESET = "connection reset by peer"
DECLINE = "card declined: insufficient funds"


@pytest.fixture(name="outbox")
def _outbox(timeline) -> AsyncFakeOutbox:
    """This kata's code sends from async code: its fake mail server offers only ``await asend``."""
    return AsyncFakeOutbox(timeline)


@pytest.fixture(name="app")
def _app(gateway: FakeGateway, outbox: AsyncFakeOutbox, sleep: FakeSleep):
    """The kata's app with fakes: scripted gateway, outbox, instant sleep, fixed dice, its own policy."""
    return payments.create_app(gateway, outbox, sleep=sleep, rng=always(0.5), policy=app_policy())


def app_policy():
    """The policy the app fixture passes to create_app: not the default, so ignoring it shows."""
    return policy(max_attempts=4, base_delay=0.25)


def policy(**changes):
    return payments.RetryPolicy(**{**DEFAULTS, **changes})


def no_jitter() -> float:
    return 0.0


def always(value: float):
    return lambda: value


def transient(text: str = TIMEOUT):
    return payments.TransientGatewayError(text)


def declined(text: str = DECLINE):
    return payments.PaymentDeclinedError(text)


async def pay(gateway, outbox, sleep, *, rng=no_jitter, **policy_changes):
    """Run process_payment on the standard payment with these collaborators."""
    payment = payments.Payment(**PAYMENT)
    return await payments.process_payment(
        payment, gateway=gateway, mailer=outbox, sleep=sleep, rng=rng, policy=policy(**policy_changes)
    )


def show_log(records) -> str:
    return "\n".join(f"{r.levelname} {r.getMessage()}" for r in records) or "(nothing logged)"


def capped(p, retry: int) -> float:
    return min(p.max_delay, p.base_delay * 2**retry)


# ---------------------------------------------------------------- task 1: the backoff delay


@pytest.mark.task(1)
async def test_with_no_jitter_the_first_retry_waits_the_base_delay_and_each_next_one_twice_as_long():
    """Retry 0 waits base_delay, retry 1 twice that, then 4x, 8x …: exponential backoff."""
    p = policy(max_delay=100.0)
    got = [payments.backoff_delay(p, retry, no_jitter) for retry in range(5)]
    expected = [0.5, 1.0, 2.0, 4.0, 8.0]
    assert got == pytest.approx(expected), lesson(
        expected=f"delays for retries 0..4 with base_delay 0.5 and rng() == 0: {expected}",
        got=str(got),
        revisit="task 1: base_delay * 2 ** retry (retry 0 is the first wait, so it is base_delay itself)",
    )


@pytest.mark.task(1)
async def test_the_delay_stops_growing_at_max_delay():
    """However many retries, the wait before the next one is never more than max_delay (plus jitter)."""
    p = policy(max_delay=8.0)
    got = {retry: payments.backoff_delay(p, retry, no_jitter) for retry in (4, 5, 10, 30)}
    assert all(delay == pytest.approx(8.0) for delay in got.values()), lesson(
        expected="8.0 s for retries 4, 5, 10 and 30 (max_delay 8.0, rng() == 0)",
        got=", ".join(f"retry {retry}: {delay:g} s" for retry, delay in got.items()),
        revisit="task 1: min(max_delay, base_delay * 2 ** retry); without a cap, retry 30 waits 17 years",
    )


@pytest.mark.task(1)
@pytest.mark.parametrize(("draw", "expected"), [(0.0, 1.0), (0.5, 1.125), (0.999, 1.0 + 0.25 * 0.999)])
async def test_jitter_comes_from_the_injected_random_source(draw, expected):
    """Jitter is jitter * rng(), from the `rng` passed in: the specs choose the dice, so they can check."""
    got = payments.backoff_delay(policy(), 1, always(draw))
    assert got == pytest.approx(expected), lesson(
        expected=f"{expected:g} s for retry 1 (1.0 s) plus 0.25 * {draw}, when rng() returns {draw}",
        got=f"{got:g} s",
        revisit="task 1: add policy.jitter * rng(); call the rng you are given, not the random module",
    )


@pytest.mark.task(1)
async def test_jitter_is_added_on_top_of_the_cap_so_capped_retries_still_spread_out():
    """At the cap the jitter still counts: otherwise every client that reached it retries in step."""
    got = payments.backoff_delay(policy(max_delay=8.0), 10, always(0.5))
    assert got == pytest.approx(8.125), lesson(
        expected="8.125 s for retry 10: the cap (8.0) plus 0.25 * 0.5 of jitter",
        got=f"{got:g} s",
        revisit="task 1: cap the exponential part first, then add the jitter: min(...) + jitter * rng()",
    )


@st.composite
def policies(draw):
    """A random, valid RetryPolicy."""
    base = draw(st.floats(0.01, 2.0))
    return payments.RetryPolicy(
        max_attempts=draw(st.integers(1, 6)),
        base_delay=base,
        max_delay=base * draw(st.floats(1.0, 64.0)),
        jitter=draw(st.floats(0.0, 1.0)),
    )


@pytest.mark.task(1)
@given(p=policies(), retry=st.integers(0, 40), draw=st.floats(0.0, 1.0, exclude_max=True))
def test_property_every_delay_lies_between_the_capped_backoff_and_that_plus_the_jitter(p, retry, draw):
    """For any policy, retry and draw: capped <= delay <= capped + jitter, capped = min(max_delay, base * 2^retry)."""
    low = capped(p, retry)
    got = payments.backoff_delay(p, retry, always(draw))
    assert low - 1e-9 <= got <= low + p.jitter + 1e-9, lesson(
        expected=f"between {low:g} and {low + p.jitter:g} s for retry {retry} of {p}, rng() == {draw}",
        got=f"{got:g} s",
        revisit="task 1: min(max_delay, base_delay * 2 ** retry) + jitter * rng()",
    )


# ---------------------------------------------------------------- task 2: report a failure


@pytest.mark.task(2)
async def test_a_failure_report_sends_the_payer_one_email_naming_the_payment_and_the_error(outbox):
    """One email to the payer, with FAILURE_SUBJECT, whose body names the payment and the error."""
    await payments.report_failure(payments.Payment(**PAYMENT), transient(RESET), 3, outbox)
    got = [(email.to, email.subject) for email in outbox.sent]
    assert got == [(PAYMENT["email"], payments.FAILURE_SUBJECT)], lesson(
        expected=f"one email to {PAYMENT['email']} with subject {payments.FAILURE_SUBJECT!r}",
        got=repr(outbox),
        revisit="task 2: await mailer.asend(to=payment.email, subject=FAILURE_SUBJECT, body=...)",
    )
    body = outbox.sent[0].body
    assert PAYMENT["payment_id"] in body and RESET in body, lesson(
        expected=f"a body that names the payment {PAYMENT['payment_id']!r} and the error {RESET!r}",
        got=repr(body),
        revisit="task 2: put payment.payment_id and str(error) in the body: the payer needs both",
    )


@pytest.mark.task(2)
async def test_a_failure_report_logs_one_error_naming_the_payment_and_the_error(outbox, caplog):
    """Exactly one ERROR record, with the payment id and the error text: the one line that pages someone."""
    caplog.set_level(logging.INFO)
    await payments.report_failure(payments.Payment(**PAYMENT), declined(), 1, outbox)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, lesson(
        expected="exactly one ERROR record",
        got=f"{len(errors)}; the log:\n{show_log(caplog.records)}",
        revisit="task 2: logger.error(...) once, in report_failure",
    )
    message = errors[0].getMessage()
    assert PAYMENT["payment_id"] in message and DECLINE in message, lesson(
        expected=f"an ERROR that names the payment {PAYMENT['payment_id']!r} and the error {DECLINE!r}",
        got=message,
        revisit="task 2: logger.error('payment %s failed after %d attempt(s): %s', payment_id, attempts, error)",
    )


# ---------------------------------------------------------------- task 3: retry, but not forever


@pytest.mark.task(3)
async def test_a_payment_approved_at_once_is_charged_once_and_never_waits(gateway, outbox, sleep):
    """Success at the first attempt: one charge, its receipt returned, no sleep, no email."""
    gateway.will("receipt-1")
    result = await pay(gateway, outbox, sleep)
    assert (result, len(gateway), sleep.calls, len(outbox)) == ("receipt-1", 1, [], 0), lesson(
        expected="returns 'receipt-1' after 1 charge, 0 sleeps, 0 emails",
        got=f"returned {result!r} after {len(gateway)} charge(s), sleeps {sleep.calls}, {len(outbox)} email(s)",
        revisit="task 3: return the gateway's receipt as soon as a charge goes through",
    )


@pytest.mark.task(3)
async def test_transient_errors_are_retried_after_growing_waits_until_the_charge_goes_through(gateway, outbox, sleep):
    """timeout, 503, then approved: three charges, waits of 0.5 s then 1.0 s, and the receipt returned."""
    gateway.will(transient(TIMEOUT), transient(UNAVAILABLE), "receipt-3")
    result = await pay(gateway, outbox, sleep)
    assert result == "receipt-3" and len(gateway) == 3, lesson(
        expected="the receipt 'receipt-3' after 3 charges",
        got=f"returned {result!r}; the gateway saw {gateway!r}",
        revisit="task 3: catch TransientGatewayError, wait, try again; return the receipt on success",
    )
    assert sleep.calls == pytest.approx([0.5, 1.0]), lesson(
        expected="sleep(0.5) after the first failure, sleep(1.0) after the second (rng() == 0 here)",
        got=f"sleeps: {sleep.calls}",
        revisit="task 3: await sleep(backoff_delay(policy, attempt - 1, rng)): retry 0 is the first wait",
    )


@pytest.mark.task(3)
@pytest.mark.parametrize("max_attempts", [1, 3, 5])
async def test_it_charges_at_most_max_attempts_times_counting_the_first(gateway, outbox, sleep, max_attempts):
    """A gateway that always times out is charged exactly max_attempts times, the first attempt included."""
    gateway.will(transient(TIMEOUT))
    await pay(gateway, outbox, sleep, max_attempts=max_attempts)
    assert len(gateway) == max_attempts, lesson(
        expected=f"{max_attempts} charge(s) in all (max_attempts={max_attempts})",
        got=f"{len(gateway)}: {gateway!r}",
        revisit="task 3: for attempt in range(1, policy.max_attempts + 1): max_attempts counts every try",
    )


@pytest.mark.task(3)
async def test_it_does_not_sleep_after_the_last_attempt(gateway, outbox, sleep):
    """Three failed attempts have two waits between them; a third wait would only delay the bad news."""
    gateway.will(transient(TIMEOUT))
    await pay(gateway, outbox, sleep)
    assert sleep.calls == pytest.approx([0.5, 1.0]), lesson(
        expected="two sleeps, [0.5, 1.0], for three attempts: one between each pair",
        got=f"{len(sleep.calls)} sleep(s): {sleep.calls}",
        revisit="task 3: sleep only when another attempt follows (attempt < policy.max_attempts)",
    )


@pytest.mark.task(3)
@pytest.mark.parametrize(
    ("script", "charges"), [(["declined"], 1), (["transient", "declined"], 2)], ids=["at once", "after a timeout"]
)
async def test_a_declined_payment_is_never_retried(gateway, outbox, sleep, script, charges):
    """A decline is the bank's answer: the charge that was declined is the last one, and no wait follows it."""
    gateway.will(*[transient() if step == "transient" else declined() for step in script])
    await pay(gateway, outbox, sleep, max_attempts=5)
    assert len(gateway) == charges and len(sleep.calls) == charges - 1, lesson(
        expected=f"{charges} charge(s) and {charges - 1} sleep(s): stop at the decline",
        got=f"{len(gateway)} charge(s), sleeps {sleep.calls}: {gateway!r}",
        revisit="task 3: retry only TransientGatewayError; on PaymentDeclinedError stop at once",
    )


@pytest.mark.task(3)
@pytest.mark.parametrize(
    ("script", "last_error"),
    [
        ([TIMEOUT, UNAVAILABLE, RESET], RESET),
        ([TIMEOUT, DECLINE], DECLINE),
    ],
    ids=["out of attempts", "declined"],
)
async def test_when_it_gives_up_the_payer_gets_exactly_one_email_with_the_last_error(
    gateway, outbox, sleep, script, last_error
):
    """Out of attempts or declined: one failure email, after the last charge, naming the error that ended it."""
    gateway.will(*[declined(text) if text == DECLINE else transient(text) for text in script])
    result = await pay(gateway, outbox, sleep)
    assert result is None, lesson(
        expected="None: there is no receipt", got=repr(result), revisit="task 3: return None after reporting"
    )
    assert len(outbox) == 1, lesson(
        expected="exactly one failure email, once it has given up",
        got=f"{len(outbox)} email(s): {outbox!r}",
        revisit="task 3: call report_failure once, after the loop, not on every failed attempt (and not never)",
    )
    body = outbox.sent[0].body
    assert last_error in body, lesson(
        expected=f"the email names the last error, {last_error!r}",
        got=repr(body),
        revisit="task 3: keep the latest error as you go and pass it to report_failure",
    )


@pytest.mark.task(3)
async def test_when_it_gives_up_one_error_is_logged_with_the_last_error(gateway, outbox, sleep, caplog):
    """Three timeouts: warnings for the retried failures if you like, but exactly one ERROR, with the last error."""
    caplog.set_level(logging.INFO)
    gateway.will(transient(TIMEOUT), transient(UNAVAILABLE), transient(RESET))
    await pay(gateway, outbox, sleep)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and RESET in errors[0].getMessage(), lesson(
        expected=f"one ERROR record, naming the last error {RESET!r}",
        got=f"{len(errors)} ERROR record(s); the log:\n{show_log(caplog.records)}",
        revisit="task 3: log retried failures as WARNING; the final failure goes through report_failure, once",
    )


@pytest.mark.task(3)
async def test_a_payment_that_goes_through_after_retries_reports_no_failure(gateway, outbox, sleep, caplog):
    """Two timeouts then approved: the payer gets no failure email and the log has no ERROR."""
    caplog.set_level(logging.INFO)
    gateway.will(transient(TIMEOUT), transient(UNAVAILABLE), "receipt-3")
    await pay(gateway, outbox, sleep)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(outbox) == 0 and not errors, lesson(
        expected="no email and no ERROR record: the payment went through",
        got=f"{outbox!r}; the log:\n{show_log(caplog.records)}",
        revisit="task 3: report only when it has given up; a retried failure is a WARNING, not an ERROR",
    )


@pytest.mark.task(3)
async def test_each_attempt_is_logged_with_its_number(gateway, outbox, sleep, caplog):
    """Three attempts (timeout, 503, approved) leave 'attempt 1', 'attempt 2' and 'attempt 3' in the log."""
    caplog.set_level(logging.INFO)
    gateway.will(transient(TIMEOUT), transient(UNAVAILABLE), "receipt-3")
    await pay(gateway, outbox, sleep)
    numbers: list[int] = []
    for record in caplog.records:
        for number in re.findall(r"\battempt (\d+)", record.getMessage(), flags=re.IGNORECASE):
            if int(number) not in numbers:
                numbers.append(int(number))
    assert numbers == [1, 2, 3], lesson(
        expected="log lines that say 'attempt 1', 'attempt 2', 'attempt 3', in that order (INFO or above)",
        got=f"attempt numbers {numbers}; the log:\n{show_log(caplog.records)}",
        revisit="task 3: logger.info('payment %s: attempt %d of %d', ...) before each charge, counting from 1",
    )


def scripted(steps: list[str]) -> list[object]:
    """A gateway script from step names: transient, declined, approved."""
    errors = [TIMEOUT, UNAVAILABLE, RESET]
    return [
        transient(errors[n % 3]) if step == "transient" else declined() if step == "declined" else "receipt-ok"
        for n, step in enumerate(steps)
    ]


# k transient failures, then approved, declined, or never anything but failures.
scripts = st.tuples(st.integers(0, 8), st.sampled_from(["approved", "declined", "never"])).map(
    lambda case: ["transient"] * case[0] + ([case[1]] if case[1] != "never" else ["transient"])
)


@pytest.mark.task(3)
@given(steps=scripts, max_attempts=st.integers(1, 6))
async def test_property_attempts_are_the_first_final_answer_plus_one_capped_at_max_attempts(steps, max_attempts):
    """For any script: charges == min(first approve or decline + 1, max_attempts); one email iff no receipt."""
    gateway, outbox, sleep = FakeGateway(scripted(steps)), AsyncFakeOutbox(), FakeSleep(FakeClock())
    result = await pay(gateway, outbox, sleep, max_attempts=max_attempts)
    final = next((n for n, step in enumerate(steps) if step != "transient"), None)
    expected = max_attempts if final is None else min(final + 1, max_attempts)
    assert len(gateway) == expected, lesson(
        expected=f"{expected} charge(s) for the script {steps} with max_attempts={max_attempts}",
        got=f"{len(gateway)}: {gateway!r}",
        revisit="task 3: stop at a receipt or a decline, and after max_attempts charges in all",
    )
    approved = final is not None and final < max_attempts and steps[final] == "approved"
    assert (result == "receipt-ok", len(outbox)) == (approved, 0 if approved else 1), lesson(
        expected="the receipt and no email" if approved else "None and exactly one failure email",
        got=f"returned {result!r}, {len(outbox)} email(s), for the script {steps} with max_attempts={max_attempts}",
        revisit="task 3: return the receipt on success; otherwise call report_failure once, at the end",
    )


@pytest.mark.task(3)
@given(steps=scripts, p=policies(), rng=st.randoms(use_true_random=False))
async def test_property_one_wait_between_attempts_and_each_within_its_bounds(steps, p, rng):
    """For any script, policy and dice: sleeps == charges - 1, and wait i lies in [capped(i), capped(i) + jitter]."""
    gateway, outbox, sleep = FakeGateway(scripted(steps)), AsyncFakeOutbox(), FakeSleep(FakeClock())
    await payments.process_payment(
        payments.Payment(**PAYMENT), gateway=gateway, mailer=outbox, sleep=sleep, rng=rng.random, policy=p
    )
    assert len(sleep.calls) == max(len(gateway) - 1, 0), lesson(
        expected=f"{max(len(gateway) - 1, 0)} sleep(s) for {len(gateway)} charge(s): one between each pair",
        got=f"{len(sleep.calls)}: {sleep.calls}, for the script {steps} with {p}",
        revisit="task 3: sleep after a transient failure only when another attempt follows",
    )
    bounds = [(capped(p, retry), capped(p, retry) + p.jitter) for retry in range(len(sleep.calls))]
    outside = [
        f"wait {n}: {delay:g} s not in [{low:g}, {high:g}]"
        for n, (delay, (low, high)) in enumerate(zip(sleep.calls, bounds, strict=True))
        if not low - 1e-9 <= delay <= high + 1e-9
    ]
    assert not outside, lesson(
        expected=f"each wait i within [min(max_delay, base_delay * 2^i), that + jitter] for {p}",
        got="; ".join(outside),
        revisit="task 3: sleep(backoff_delay(policy, attempt - 1, rng)), with the rng you were given",
    )


# ---------------------------------------------------------------- task 4: validate, queue, answer


@pytest.mark.task(4)
async def test_a_valid_payment_is_accepted_with_202_and_says_it_is_processing(client):
    """202 Accepted and {"status": "processing", "payment_id": ...}: the charge has not happened yet."""
    response = await client.post("/payments", json=PAYMENT)
    expect_status(
        response,
        202,
        expected="202 Accepted",
        revisit="task 4: the route declares status_code=202; the endpoint queues and returns",
    )
    expect_json(
        response,
        {"status": "processing", "payment_id": PAYMENT["payment_id"]},
        expected=f'{{"status": "processing", "payment_id": "{PAYMENT["payment_id"]}"}}',
        revisit="task 4: the endpoint's return value",
    )


INVALID = [
    ({"payment_id": None}, "no payment_id"),
    ({"payment_id": ""}, "an empty payment_id"),
    ({"payment_id": "p" * 65}, "a 65-character payment_id"),
    ({"amount_cents": 0}, "an amount of 0"),
    ({"amount_cents": -500}, "a negative amount"),
    ({"amount_cents": 12.5}, "a fraction of a cent"),
    ({"amount_cents": "twelve"}, "an amount that is not a number"),
    ({"email": None}, "no email"),
    ({"email": "ada-at-example.com"}, "an email that is not an address"),
]


@pytest.mark.task(4)
@pytest.mark.parametrize(("change", "why"), [pytest.param(change, why, id=why) for change, why in INVALID])
async def test_an_invalid_payment_is_rejected_with_422_and_never_charged(client, gateway, change, why):
    """Bad input is the client's mistake: 422 naming the field, and the gateway never hears of it."""
    body = {key: value for key, value in {**PAYMENT, **change}.items() if value is not None}
    response = await client.post("/payments", json=body)
    expect_status(
        response,
        422,
        expected=f"422 for {why}",
        revisit="task 4: declare the fields of PaymentRequest with their limits; FastAPI answers 422 itself",
    )
    assert len(gateway) == 0, lesson(
        expected="no charge for a rejected request", got=repr(gateway), revisit="task 4: validate before queueing"
    )


@pytest.mark.task(4)
async def test_the_charge_happens_after_the_response_is_complete(app, gateway: FakeGateway, timeline: Timeline):
    """The client has its whole 202 before the first charge: the payment runs as a background task."""
    exchange = await timeline.request(app, "POST", "/payments", json=PAYMENT)
    timeline.expect_order(
        RESPONSE_COMPLETE,
        CHARGE_ATTEMPTED,
        why="The charge must start after the response is complete, and it must start.",
        revisit="task 4: background_tasks.add_task(process_payment, payment, gateway=..., ...)",
    )
    got = [(call.payment_id, call.amount_cents) for call in gateway.calls]
    assert got == [(PAYMENT["payment_id"], PAYMENT["amount_cents"])] and exchange.error is None, lesson(
        expected=f"one charge of {PAYMENT['amount_cents']} cents for {PAYMENT['payment_id']}, and no error",
        got=f"{gateway!r}; app error: {exchange.error!r}",
        revisit="task 4: build the Payment from the request's fields and queue process_payment once",
    )


@pytest.mark.task(4)
async def test_a_failing_payment_is_retried_and_reported_in_the_background_after_the_202(
    app, gateway: FakeGateway, outbox: AsyncFakeOutbox, sleep: FakeSleep, timeline: Timeline
):
    """Timeouts only: the 202 goes out first; then the app's policy: four charges, three waits, one failure email."""
    gateway.will(transient(TIMEOUT))
    exchange = await timeline.request(app, "POST", "/payments", json=PAYMENT)
    assert exchange.status == 202 and exchange.error is None, lesson(
        expected="202, and a background task that ends without raising",
        got=str(exchange),
        revisit="task 4: queue process_payment; it handles its own failure (task 3)",
    )
    got = (len(gateway), sleep.calls, [email.to for email in outbox.sent])
    expected = (4, pytest.approx([0.375, 0.625, 1.125]), [PAYMENT["email"]])
    assert got == expected, lesson(
        expected="the policy given to create_app (max_attempts=4, base_delay=0.25, jitter 0.25 * rng() == 0.125): "
        f"4 charges, waits [0.375, 0.625, 1.125] on the injected sleep, 1 email to {PAYMENT['email']}",
        got=f"{got[0]} charge(s), waits {got[1]}, emails to {got[2]}" + "\n" + timeline.render(),
        revisit="task 4: pass the injected gateway, mailer, sleep, rng and policy on to process_payment",
    )
    timeline.expect_order(
        RESPONSE_COMPLETE,
        CHARGE_ATTEMPTED,
        why="The retries belong in the background, after the response.",
        revisit="task 4: add_task(process_payment, ...), never await it in the endpoint",
    )
