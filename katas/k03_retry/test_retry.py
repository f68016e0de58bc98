"""Specs for kata 3: retry.

Run them with

    uv run pytest katas/k03_retry

Each spec names the README task it checks. Edit payments.py, not this file.

Nothing here waits: the sleep is a fake that only writes down how long it was asked to
sleep, the random source is scripted, and the gateway follows a script of outcomes.
Every call into your code is given two seconds of real time at most (the fakes answer
at once, so a right answer takes milliseconds): code that waits for real is stopped
and told so, instead of keeping you waiting.
The specs marked "property" let hypothesis try fifty scripts and policies; when one
fails, its "Falsifying example" is the smallest case it found.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dojo.fakes import CHARGE_ATTEMPTED, EMAIL_SENT, AsyncFakeOutbox, FakeClock, FakeGateway, FakeSleep
from dojo.impl import kata_module
from dojo.teach import expect_json, expect_status, expect_type, lesson
from dojo.timeline import BOUND, CALL_FINISHED, RESPONSE_COMPLETE, Timeline, every_case

payments = kata_module("k03_retry", "payments")

PAYMENT = {"payment_id": "pay_42", "amount_cents": 1250, "email": "ada@example.com"}
# The policy the README states; the specs build it themselves, to check the stub's defaults too.
DEFAULTS = {"max_attempts": 3, "base_delay": 0.5, "max_delay": 8.0, "jitter": 0.25}
# A policy with short waits: for specs about counts, so that code which sleeps for real
# (the mistake some specs catch) does not hold these ones up as well.
QUICK = {"base_delay": 0.01, "max_delay": 0.04, "jitter": 0.0}

# Error texts the specs look for in emails and logs; none of them says "attempt" or holds a lone digit.
TIMEOUT = "gateway timed out"
UNAVAILABLE = "503 Service Unavailable"
RESET = "connection reset by peer"
DECLINE = "card declined: insufficient funds"

SLEPT = "slept"
SUBJECT = "Your payment could not be completed"  # FAILURE_SUBJECT, as the README states it

# ---------------------------------------------------------------- bounding every call into the kata


class StillRunning(BaseException):
    """The kata's code was still running at its bound of real time.

    Not an ``Exception``: hypothesis stops a property at once on it instead of shrinking
    the example (each try would wait again), and pytest reports it as the spec's failure.
    """


class WaitedElsewhere(BaseException):
    """A property's example retried without one call to the injected sleep: it waits for real, or not at all.

    Stops the property at once, like :class:`StillRunning`: shrinking would run code that
    may sleep for real again and again.
    """


async def bounded(awaitable, *, what: str, revisit: str, gateway=None, sleep=None):
    """Await the kata's code for at most :data:`BOUND` real seconds; say how far it got if it is stopped."""
    try:
        return await asyncio.wait_for(awaitable, BOUND)
    except asyncio.TimeoutError:  # an alias of TimeoutError from 3.11
        progress = ""
        if gateway is not None and sleep is not None:
            progress = (
                f"; by then the gateway was charged {len(gateway)} time(s) and the sleep called {len(sleep.calls)}"
            )
        raise StillRunning(
            lesson(
                expected=f"{what} to be done at once: the gateway, the mailer and the sleep it was given "
                "are fakes that never wait",
                got=f"still running after {BOUND:.1f} s of real time, so the spec stopped it{progress}",
                revisit=revisit,
            )
        ) from None


REAL_WAIT = "task 3: the attempts come to an end, and every wait between them goes through the sleep you were given, never a sleep of your own (README: Injected time and randomness)"  # noqa: E501
REAL_WAIT_IN_REPORT = "task 2: tell the payer through the mailer you were given; nothing in a report waits for real (README: Injected time and randomness)"  # noqa: E501
REAL_WAIT_IN_APP = "task 4: answer at once and leave the charging, with its waits on the injected sleep, to the background (README: Injected time and randomness)"  # noqa: E501


# ---------------------------------------------------------------- fakes and fixtures


class RecordingSleep(FakeSleep):
    """The fake sleep, also writing each wait on the timeline, between the charges and the log lines."""

    def __init__(self, timeline: Timeline, clock: FakeClock | None = None) -> None:
        super().__init__(clock)
        self.timeline = timeline

    async def __call__(self, seconds: float) -> None:
        self.timeline.record(SLEPT, _show(seconds))
        await super().__call__(seconds)


class LogToTimeline(logging.Handler):
    """Keeps every log record, and writes it on the timeline too ("log WARNING ...")."""

    def __init__(self, timeline: Timeline) -> None:
        super().__init__(logging.DEBUG)
        self.timeline = timeline
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.timeline.record(f"log {record.levelname}", message(record))

    def at(self, level: int) -> list[logging.LogRecord]:
        """The records at exactly this level."""
        return [record for record in self.records if record.levelno == level]

    def at_least(self, level: int) -> list[logging.LogRecord]:
        return [record for record in self.records if record.levelno >= level]

    def __str__(self) -> str:
        return "\n".join(f"{r.levelname} {message(r)}" for r in self.records) or "(nothing logged)"


def message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # noqa: BLE001 - a format string whose arguments do not fit
        return f"(a log call whose arguments do not fit its text: {record.msg!r})"


def _show(value: object) -> str:
    """A number the kata's code passed us, shown without trusting its repr."""
    if type(value) in (int, float):
        return f"{value:g} s"
    return f"a {type(value).__name__}"


@pytest.fixture(name="outbox")
def _outbox(timeline: Timeline) -> AsyncFakeOutbox:
    """This kata's code sends from async code: its fake mail server offers only ``await asend``."""
    return AsyncFakeOutbox(timeline)


@pytest.fixture(name="sleep")
def _sleep(clock: FakeClock, timeline: Timeline) -> RecordingSleep:
    """The fake sleep, writing each wait on the timeline."""
    return RecordingSleep(timeline, clock)


@contextlib.contextmanager
def logged_to(timeline: Timeline) -> Iterator[LogToTimeline]:
    """Every log record while it is open (at any level the loggers let through), also on ``timeline``."""
    handler = LogToTimeline(timeline)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


@pytest.fixture(name="log")
def _log(timeline: Timeline, caplog: pytest.LogCaptureFixture) -> Iterator[LogToTimeline]:
    """Every log record of the spec, at any level, also on the timeline."""
    caplog.set_level(logging.DEBUG)  # and back to what it was after the spec
    with logged_to(timeline) as handler:
        yield handler


@dataclasses.dataclass(frozen=True)
class Collaborators:
    """One case's own fakes, on a timeline of their own: its charges, waits, emails and log lines, no one else's."""

    timeline: Timeline
    gateway: FakeGateway
    outbox: AsyncFakeOutbox
    sleep: RecordingSleep
    log: LogToTimeline


@contextlib.contextmanager
def own_collaborators(*script: object) -> Iterator[Collaborators]:
    """A gateway that follows ``script``, an outbox, a sleep and a log, made for one case of a spec of many."""
    timeline = Timeline()
    with logged_to(timeline) as log:
        yield Collaborators(
            timeline, FakeGateway(script, timeline), AsyncFakeOutbox(timeline), RecordingSleep(timeline), log
        )


@pytest.fixture(name="fresh")
def _fresh(caplog: pytest.LogCaptureFixture) -> Callable[..., contextlib.AbstractContextManager[Collaborators]]:
    """``with fresh(*script) as fakes``: a case's own collaborators (its log sees every level)."""
    caplog.set_level(logging.DEBUG)  # and back to what it was after the spec
    return own_collaborators


Case = TypeVar("Case")


def named(cases: Mapping[str, Case]) -> dict[str, tuple[str, Case]]:
    """Each case with its name beside it, for a check whose lesson says which input it was given."""
    return {name: (name, case) for name, case in cases.items()}


#: The policy the app fixture passes to create_app: not the default one, so ignoring it shows.
APP_POLICY = {"max_attempts": 4, "base_delay": 0.05, "max_delay": 0.15, "jitter": 0.1}


@pytest.fixture(name="app")
def _app(gateway: FakeGateway, outbox: AsyncFakeOutbox, sleep: RecordingSleep):
    """The kata's app with fakes: scripted gateway, outbox, instant sleep, fixed dice, its own policy."""
    return payments.create_app(gateway, outbox, sleep=sleep, rng=always(0.5), policy=payments.RetryPolicy(**APP_POLICY))


def policy(**changes):
    return payments.RetryPolicy(**{**DEFAULTS, **changes})


def no_jitter() -> float:
    return 0.0


def always(value: float):
    return lambda: value


class Dice:
    """A random source that returns the given draws in turn and counts the calls."""

    def __init__(self, *draws: float) -> None:
        self.draws = list(draws)
        self.calls = 0

    def __call__(self) -> float:
        draw = self.draws[min(self.calls, len(self.draws) - 1)]
        self.calls += 1
        return draw


def transient(text: str = TIMEOUT):
    return payments.TransientGatewayError(text)


def declined(text: str = DECLINE):
    return payments.PaymentDeclinedError(text)


async def pay(gateway, outbox, sleep, *, rng=no_jitter, **policy_changes):
    """Run process_payment on the standard payment with these collaborators, bounded in real time."""
    payment = payments.Payment(**PAYMENT)
    return await bounded(
        payments.process_payment(
            payment, gateway=gateway, mailer=outbox, sleep=sleep, rng=rng, policy=policy(**policy_changes)
        ),
        what="process_payment",
        revisit=REAL_WAIT,
        gateway=gateway,
        sleep=sleep,
    )


def capped(p, retry: int) -> float:
    return min(p.max_delay, p.base_delay * 2**retry)


def delay(p, retry: int, rng) -> float:
    """The kata's backoff_delay, its result checked to be a plain number before anyone compares it."""
    return expect_type(
        payments.backoff_delay(p, retry, rng),
        float,
        int,
        what=f"the delay for retry {retry}",
        revisit="task 1: a delay is a plain number of seconds (README: Exponential backoff with a cap)",
    )


def waits(sleep: FakeSleep, gateway: FakeGateway | None = None) -> list[float]:
    """What the kata's code passed to the sleep, checked to be plain numbers.

    Given the gateway, retries with no call to the injected sleep are told as such first: a
    real sleep short enough to end within the bound leaves no wait here, and blaming the
    backoff would send the learner to the wrong idea.
    """
    if gateway is not None:
        used_the_injected_sleep(gateway, sleep, "this payment")
    return expect_type(
        sleep.calls,
        list,
        items=(float, int),
        what="each wait passed to the sleep",
        revisit="task 3: the sleep takes a plain number of seconds, the delay for that retry (README: Exponential backoff with a cap)",  # noqa: E501
    )


def receipt_of(result: object) -> object:
    """process_payment's result: None, or checked to be the plain text the gateway returned."""
    if result is None:
        return None
    return expect_type(
        result,
        str,
        what="what process_payment returns after a charge goes through",
        revisit="task 3: a charge that goes through ends the task with the gateway's receipt (README: Bounded attempts)",  # noqa: E501
    )


# ---------------------------------------------------------------- task 1: the backoff delay


@pytest.mark.task(1)
def test_with_no_jitter_the_first_retry_waits_the_base_delay_and_each_next_one_twice_as_long():
    """Retry 0 waits base_delay, retry 1 twice that, then 4x, 8x …: exponential backoff."""
    p = policy(max_delay=100.0)
    got = [delay(p, retry, no_jitter) for retry in range(5)]
    expected = [0.5, 1.0, 2.0, 4.0, 8.0]
    assert got == pytest.approx(expected), lesson(
        expected=f"delays for retries 0..4 with base_delay 0.5, max_delay 100 and rng() == 0: {expected}",
        got=str(got),
        revisit="task 1: the first retry waits the base delay itself, and each later one twice the one before (README: Exponential backoff with a cap)",  # noqa: E501
    )


@pytest.mark.task(1)
def test_the_delay_stops_growing_at_max_delay():
    """However many retries, the wait before the next one is never more than max_delay (plus jitter)."""
    p = policy(max_delay=8.0)
    got = {retry: delay(p, retry, no_jitter) for retry in (3, 4, 5, 10, 30)}
    expected = {3: 4.0, 4: 8.0, 5: 8.0, 10: 8.0, 30: 8.0}
    assert got == pytest.approx(expected), lesson(
        expected="4.0 s for retry 3, then 8.0 s for retries 4, 5, 10 and 30 (max_delay 8.0, rng() == 0)",
        got=", ".join(f"retry {retry}: {value:g} s" for retry, value in got.items()),
        revisit="task 1: the doubling stops at the cap; without one, retry 30 would wait seventeen years (README: Exponential backoff with a cap)",  # noqa: E501
    )


@pytest.mark.task(1)
def test_the_stated_default_policy_waits_half_a_second_doubling_to_eight_plus_a_quarter_second_of_jitter():
    """RetryPolicy() as the README states it: 0.5 s doubling up to 8 s, plus 0.25 * rng() on top."""
    p = payments.RetryPolicy()
    got = [delay(p, retry, always(0.5)) for retry in range(7)]
    expected = [0.625, 1.125, 2.125, 4.125, 8.125, 8.125, 8.125]
    assert got == pytest.approx(expected), lesson(
        expected=f"with the default policy and rng() == 0.5, retries 0..6 wait {expected}",
        got=str(got),
        revisit="task 1: the default policy waits half a second, doubling up to eight, plus up to a quarter second (README: Exponential backoff with a cap)",  # noqa: E501
    )


#: What rng() returns, from its lowest to nearly its highest, and the delay of retry 1 it makes (1.0 s + 0.25 * it).
DRAWS = {
    "rng() == 0": (0.0, 1.0),
    "rng() == 0.5": (0.5, 1.125),
    "rng() == 0.999": (0.999, 1.0 + 0.25 * 0.999),
}
JITTER = "task 1: the jitter is a share of the policy's jitter, chosen by the random source you were given and by nothing else (README: Full, equal and additive jitter)"  # noqa: E501


@pytest.mark.task(1)
async def test_jitter_comes_from_the_injected_random_source_one_draw_per_delay():
    """The jitter is jitter * rng(), from the `rng` passed in, drawn once: the specs choose the dice.

    Each draw is rolled by dice of its own.
    """

    async def check(case: tuple[float, float]) -> None:
        draw, expected = case
        dice = Dice(draw, 0.0)
        got = delay(policy(), 1, dice)
        assert got == pytest.approx(expected), lesson(
            expected=f"{expected:g} s for retry 1 (1.0 s) plus 0.25 * {draw}, when rng() returns {draw}",
            got=f"{got:g} s",
            revisit=JITTER,
        )
        assert dice.calls == 1, lesson(
            expected=f"one draw from rng per delay (rng() returning {draw})",
            got=f"{dice.calls} draws",
            revisit="task 1: one delay, one draw; the same dice must give the same waits (README: Injected time and randomness)",  # noqa: E501
        )

    await every_case(DRAWS, check, what="draws", revisit=JITTER)


def refusal(change: dict[str, float], field: str) -> str:
    """What is wrong with how RetryPolicy takes ``change`` (which it must refuse, naming ``field``), or ''."""
    try:
        made = payments.RetryPolicy(**{**DEFAULTS, **change})
    except ValueError as error:
        return "" if field in str(error) else f"{change}: a ValueError that does not name {field}: {error}"
    return f"{change} was accepted: {made}"


@pytest.mark.task(1)
def test_a_policy_is_checked_when_it_is_made_its_edges_work_and_it_cannot_change():
    """RetryPolicy takes 1 attempt, no delay, a cap equal to the base and no jitter; it refuses less; it is frozen."""
    edge = payments.RetryPolicy(max_attempts=1, base_delay=0.0, max_delay=0.0, jitter=0.0)
    flat = payments.RetryPolicy(max_attempts=1, base_delay=2.0, max_delay=2.0, jitter=0.0)
    got = [delay(p, retry, always(0.5)) for p in (edge, flat) for retry in range(3)]
    assert got == pytest.approx([0.0, 0.0, 0.0, 2.0, 2.0, 2.0]), lesson(
        expected="[0, 0, 0] with no delay and no jitter, then [2, 2, 2] with a cap equal to the base delay",
        got=str(got),
        revisit="task 1: the capped doubling, plus a share of the jitter (README: Exponential backoff with a cap)",
    )
    problems = [
        problem
        for change, field in [
            ({"max_attempts": 0}, "max_attempts"),
            ({"base_delay": -0.5}, "base_delay"),
            ({"base_delay": 1.0, "max_delay": 0.5}, "max_delay"),
            ({"jitter": -0.5}, "jitter"),
        ]
        if (problem := refusal(change, field))
    ]
    assert not problems, lesson(
        expected="a ValueError naming the field: for no attempt, a negative delay, a cap below the base, a negative jitter",  # noqa: E501
        got="; ".join(problems),
        revisit="task 1: a policy that makes no sense is refused when it is made (README: Bounded attempts)",
    )
    with contextlib.suppress(AttributeError):  # dataclasses.FrozenInstanceError
        edge.max_attempts = 5
    assert edge.max_attempts == 1, lesson(
        expected="a policy that cannot be changed once made (one app's policy is shared by all its payments)",
        got=f"its max_attempts could be set to {edge.max_attempts}",
        revisit="task 1: a policy is a frozen set of values (README: Injected time and randomness)",
    )


@pytest.mark.task(1)
def test_jitter_is_added_on_top_of_the_cap_so_capped_retries_still_spread_out():
    """At the cap the jitter still counts: otherwise every client that reached it retries in step."""
    got = delay(policy(max_delay=8.0), 10, always(0.5))
    assert got == pytest.approx(8.125), lesson(
        expected="8.125 s for retry 10: the cap (8.0) plus 0.25 * 0.5 of jitter",
        got=f"{got:g} s",
        revisit="task 1: cap the doubling first, then add the jitter, so that clients at the cap still spread out (README: Jitter and the thundering herd)",  # noqa: E501
    )


@st.composite
def policies(draw, *, most: float = 2.0, cap: float | None = None):
    """A random, valid RetryPolicy: base delay at most ``most`` seconds, max_delay at most ``cap``."""
    base = draw(st.floats(most / 200, most))
    ceiling = base * draw(st.floats(1.0, 64.0))
    return payments.RetryPolicy(
        max_attempts=draw(st.integers(1, 6)),
        base_delay=base,
        max_delay=ceiling if cap is None else max(base, min(ceiling, cap)),
        jitter=draw(st.floats(0.0, most / 2)),
    )


@pytest.mark.task(1)
@given(p=policies(), retry=st.integers(0, 40), draw=st.floats(0.0, 1.0, exclude_max=True))
def test_property_every_delay_lies_between_the_capped_backoff_and_that_plus_the_jitter(p, retry, draw):
    """For any policy, retry and draw: capped <= delay <= capped + jitter, capped = min(max_delay, base * 2^retry)."""
    low = capped(p, retry)
    got = delay(p, retry, always(draw))
    assert low - 1e-9 <= got <= low + p.jitter + 1e-9, lesson(
        expected=f"between {low:g} and {low + p.jitter:g} s for retry {retry} of {p}, rng() == {draw}",
        got=f"{got:g} s",
        revisit="task 1: the capped doubling, plus a share of the jitter (README: Full, equal and additive jitter)",
    )


# ---------------------------------------------------------------- task 2: report a failure


async def report(outbox, error, attempts: int):
    result = await bounded(
        payments.report_failure(payments.Payment(**PAYMENT), error, attempts, outbox),
        what="report_failure",
        revisit=REAL_WAIT_IN_REPORT,
    )
    assert result is None, lesson(
        expected="report_failure returns nothing (None): it reports, it does not answer",
        got=f"a {type(result).__name__}",
        revisit="task 2: a report tells the log and the payer, and gives nothing back (README: What the log and the payer are told)",  # noqa: E501
    )


@pytest.mark.task(2)
async def test_a_failure_report_sends_the_payer_one_email_naming_the_payment_and_the_error(outbox):
    """One email to the payer, with FAILURE_SUBJECT, whose body names the payment and the error."""
    await report(outbox, transient(RESET), 3)
    got = [
        expect_type(
            (email.to, email.subject, email.body),
            tuple,
            items=(str,),
            what="an email's address, subject and body",
            revisit="task 2: an email is made of plain text (README: What the log and the payer are told)",
        )
        for email in outbox.sent
    ]
    assert [(to, subject) for to, subject, _ in got] == [(PAYMENT["email"], SUBJECT)], lesson(
        expected=f"one email to {PAYMENT['email']} with subject {SUBJECT!r}",
        got=repr(outbox),
        revisit="task 2: exactly one email, to the payer, with the failure subject (README: What the log and the payer are told)",  # noqa: E501
    )
    body = got[0][2]
    assert PAYMENT["payment_id"] in body and RESET in body, lesson(
        expected=f"a body that names the payment {PAYMENT['payment_id']!r} and the error {RESET!r}",
        got=repr(body),
        revisit="task 2: the payer needs to know which payment failed and why (README: What the log and the payer are told)",  # noqa: E501
    )


@pytest.mark.task(2)
async def test_a_failure_report_logs_exactly_one_error_naming_the_payment_the_attempts_and_the_error(outbox, log):
    """Exactly one record at ERROR level (not WARNING, not CRITICAL), naming the payment, the attempts and the error."""
    await report(outbox, declined(), 7)
    loud = log.at_least(logging.WARNING)
    assert [record.levelno for record in loud] == [logging.ERROR], lesson(
        expected="exactly one record at WARNING or above, and it is an ERROR",
        got=f"the log:\n{log}",
        revisit="task 2: a failed payment is one ERROR: the level that wakes someone up, said once (README: What the log and the payer are told)",  # noqa: E501
    )
    text = message(loud[0])
    named = PAYMENT["payment_id"] in text and DECLINE in text and re.search(r"(?<![\w.])7(?![\w.])", text)
    assert named, lesson(
        expected=f"an ERROR that names the payment {PAYMENT['payment_id']!r}, the 7 attempts made and the error {DECLINE!r}",  # noqa: E501
        got=text,
        revisit="task 2: the ERROR says which payment failed, after how many attempts, and why (README: What the log and the payer are told)",  # noqa: E501
    )


# ---------------------------------------------------------------- task 3: retry, but not forever


def story(timeline: Timeline) -> str:
    return "\n" + timeline.render()


@pytest.mark.task(3)
async def test_a_payment_approved_at_once_is_charged_once_and_never_waits(gateway, outbox, sleep, log, timeline):
    """Success at the first attempt: one charge, its receipt returned, no sleep, no email, nothing above INFO."""
    gateway.will("receipt-1")
    result = receipt_of(await pay(gateway, outbox, sleep))
    loud = log.at_least(logging.WARNING)
    assert (result, len(gateway), len(sleep.calls), len(outbox), len(loud)) == ("receipt-1", 1, 0, 0, 0), lesson(
        expected="returns 'receipt-1' after 1 charge, 0 sleeps, 0 emails, no WARNING or ERROR",
        got=f"returned {result!r} after {len(gateway)} charge(s), {len(sleep.calls)} sleep(s), {len(outbox)} email(s), "
        f"{len(loud)} WARNING or worse" + story(timeline),
        revisit="task 3: a charge that goes through ends the task with the gateway's receipt (README: Bounded attempts)",  # noqa: E501
    )
    receipts = [message(record) for record in log.at(logging.INFO) if "receipt-1" in message(record)]
    assert receipts, lesson(
        expected="an INFO line naming the receipt 'receipt-1', once the charge went through",
        got=f"the log:\n{log}",
        revisit="task 3: the log says how each payment ended, a success too, with its receipt (README: What the log and the payer are told)",  # noqa: E501
    )


@pytest.mark.task(3)
async def test_transient_errors_are_retried_after_growing_waits_until_the_charge_goes_through(
    gateway, outbox, sleep, timeline
):
    """timeout, 503, then approved: three charges, waits of 0.5 s then 1.0 s, and the receipt returned."""
    gateway.will(transient(TIMEOUT), transient(UNAVAILABLE), "receipt-3")
    result = receipt_of(await pay(gateway, outbox, sleep))
    assert result == "receipt-3" and len(gateway) == 3, lesson(
        expected="the receipt 'receipt-3' after 3 charges",
        got=f"returned {result!r}; the gateway saw {gateway!r}",
        revisit="task 3: a transient error is worth another try, after a wait (README: Transient and permanent errors)",
    )
    got = waits(sleep, gateway)
    assert got == pytest.approx([0.5, 1.0]), lesson(
        expected="a wait of 0.5 s after the first failure and 1.0 s after the second (rng() == 0 here)",
        got=f"waits: {got}" + story(timeline),
        revisit="task 3: after the first failure comes the delay of the first retry, then of the second (README: Exponential backoff with a cap)",  # noqa: E501
    )


@pytest.mark.task(3)
async def test_every_attempt_charges_the_same_payment_id_and_amount(gateway, outbox, sleep):
    """Two timeouts then approved: three charges, all of the same payment id and amount (an idempotency key)."""
    gateway.will(transient(TIMEOUT), transient(UNAVAILABLE), "receipt-3")
    await pay(gateway, outbox, sleep, **QUICK)
    got = [(call.payment_id, call.amount_cents) for call in gateway.calls]
    same = [(PAYMENT["payment_id"], PAYMENT["amount_cents"])] * 3
    typed = all(type(pid) is str and type(cents) is int for pid, cents in got)
    assert typed and got == same, lesson(
        expected=f"three charges, each of {PAYMENT['payment_id']!r} for {PAYMENT['amount_cents']} cents",
        got=repr(gateway),
        revisit="task 3: a retry is the same charge again, so the gateway can tell it from a new one (README: Idempotency keys)",  # noqa: E501
    )


#: Policies' maximum of attempts: one (no retry at all), the fewest that retries, the default, more.
MAX_ATTEMPTS = {f"max_attempts={number}": number for number in (1, 2, 3, 5)}
COUNTED = "task 3: the maximum counts every attempt, the first one too (README: Bounded attempts)"


@pytest.mark.task(3)
async def test_it_charges_at_most_max_attempts_times_counting_the_first(fresh):
    """A gateway that always times out is charged exactly max_attempts times, the first attempt included.

    Each maximum is tried with a gateway, an outbox and a sleep of its own.
    """

    async def check(max_attempts: int) -> None:
        with fresh(transient(TIMEOUT)) as fakes:
            await pay(fakes.gateway, fakes.outbox, fakes.sleep, max_attempts=max_attempts, **QUICK)
        assert len(fakes.gateway) == max_attempts, lesson(
            expected=f"{max_attempts} charge(s) in all (max_attempts={max_attempts})",
            got=f"{len(fakes.gateway)}: {fakes.gateway!r}",
            revisit=COUNTED,
        )

    await every_case(MAX_ATTEMPTS, check, what="maximums of attempts", revisit=REAL_WAIT)


@pytest.mark.task(3)
async def test_it_does_not_sleep_after_the_last_attempt(gateway, outbox, sleep, timeline):
    """Three failed attempts have two waits between them; a third wait would only delay the bad news."""
    gateway.will(transient(TIMEOUT))
    await pay(gateway, outbox, sleep)
    got = waits(sleep, gateway)
    assert got == pytest.approx([0.5, 1.0]), lesson(
        expected="two waits, [0.5, 1.0], for three attempts: one between each pair",
        got=f"{len(got)} wait(s): {got}" + story(timeline),
        revisit="task 3: wait only when another attempt follows (README: Bounded attempts)",
    )


@pytest.mark.task(3)
async def test_each_wait_draws_its_jitter_once_from_the_injected_random_source(gateway, outbox, sleep, timeline):
    """Two timeouts, then approved, with dice 0.2 then 0.8: waits of 0.5 + 0.05 and 1.0 + 0.2, two draws in all."""
    gateway.will(transient(TIMEOUT), transient(UNAVAILABLE), "receipt-3")
    dice = Dice(0.2, 0.8, 0.0)
    await pay(gateway, outbox, sleep, rng=dice)
    got = waits(sleep, gateway)
    assert got == pytest.approx([0.55, 1.2]) and dice.calls == 2, lesson(
        expected="waits [0.55, 1.2]: each wait takes one draw, in turn (0.25 * 0.2 and 0.25 * 0.8 of jitter)",
        got=f"waits {got} after {dice.calls} draw(s)" + story(timeline),
        revisit="task 3: each wait is the delay of its retry, one draw of the dice each (README: Full, equal and additive jitter)",  # noqa: E501
    )


#: The gateway's answers to a payment that is declined, and the charges it takes: declined at once, after a timeout.
DECLINED = {"at once": ([DECLINE], 1), "after a timeout": ([TIMEOUT, DECLINE], 2)}
FINAL = "task 3: a decline is an answer, and asking again will not change it (README: Transient and permanent errors)"


def answers(script: list[str]) -> list[Exception]:
    """The gateway's script for these error texts: the decline declined, the others transient."""
    return [declined(text) if text == DECLINE else transient(text) for text in script]


@pytest.mark.task(3)
async def test_a_declined_payment_is_never_retried(fresh):
    """A decline is the bank's answer: the charge that was declined is the last one, and no wait follows it.

    Each script is played by a gateway of its own, with an outbox and a sleep of its own.
    """

    async def check(case: tuple[list[str], int]) -> None:
        script, charges = case
        with fresh(*answers(script)) as fakes:
            await pay(fakes.gateway, fakes.outbox, fakes.sleep, max_attempts=5, **QUICK)
        gateway, sleep = fakes.gateway, fakes.sleep
        assert len(gateway) == charges and len(sleep.calls) == charges - 1, lesson(
            expected=f"{charges} charge(s) and {charges - 1} wait(s) for the answers {script}: stop at the decline",
            got=f"{len(gateway)} charge(s), {len(sleep.calls)} wait(s)" + story(fakes.timeline),
            revisit=FINAL,
        )

    await every_case(DECLINED, check, what="declined payments", revisit=REAL_WAIT)


#: The gateway's answers to a payment it gives up on, and the error that ended it: out of attempts, or declined.
GIVING_UP = {"out of attempts": ([TIMEOUT, UNAVAILABLE, RESET], RESET), "declined": ([TIMEOUT, DECLINE], DECLINE)}
ONCE = "task 3: the payer hears once, when it is over, not after every failed attempt, and not never (README: What the log and the payer are told)"  # noqa: E501


@pytest.mark.task(3)
async def test_when_it_gives_up_the_payer_gets_exactly_one_email_with_the_last_error(fresh):
    """Out of attempts or declined: one failure email, after the last charge, naming the error that ended it.

    Each script is played by a gateway of its own, with an outbox and a sleep of its own.
    """

    async def check(case: tuple[list[str], str]) -> None:
        script, last_error = case
        with fresh(*answers(script)) as fakes:
            result = await pay(fakes.gateway, fakes.outbox, fakes.sleep, **QUICK)
        outbox = fakes.outbox
        assert result is None, lesson(
            expected=f"None for the answers {script}: there is no receipt",
            got=f"a {type(result).__name__}",
            revisit="task 3: a payment that failed ends the task with nothing to return (README: Bounded attempts)",
        )
        assert len(outbox) == 1, lesson(
            expected=f"exactly one failure email, once it has given up after the answers {script}",
            got=f"{len(outbox)} email(s)" + story(fakes.timeline),
            revisit=ONCE,
        )
        body = outbox.sent[0].body
        assert type(body) is str and last_error in body, lesson(
            expected=f"the email names the last error, {last_error!r}",
            got=repr(body),
            revisit="task 3: the error that ended it is the last one, not the first (README: What the log and the payer are told)",  # noqa: E501
        )

    await every_case(GIVING_UP, check, what="payments it gives up on", revisit=REAL_WAIT)


#: The gateway's answers to a payment that fails, and the attempts made: out of attempts (3 of 3), declined
#: after a timeout (2 of 5), declined at once (1 of 5).
FAILING = {
    "out of attempts": ([TIMEOUT, UNAVAILABLE, RESET], 3),
    "declined after a timeout": ([TIMEOUT, DECLINE], 2),
    "declined at once": ([DECLINE], 1),
}
LEVELS = "task 3: a failure that will be retried is worth a WARNING, each one, and the last failure is not one of them (README: What the log and the payer are told)"  # noqa: E501


@pytest.mark.task(3)
async def test_a_warning_for_each_retried_failure_and_exactly_one_error_at_the_end(fresh):
    """A WARNING per retried failure, naming its error; then one ERROR, naming the attempts made and the last error.

    Each script is played by a gateway of its own, and judged by the lines of a log of its own.
    """

    async def check(case: tuple[list[str], int]) -> None:
        script, attempts = case
        with fresh(*answers(script)) as fakes:
            await pay(fakes.gateway, fakes.outbox, fakes.sleep, max_attempts=3 if attempts == 3 else 5, **QUICK)
        log = fakes.log
        retried = script[:-1]
        warnings = [message(record) for record in log.at(logging.WARNING)]
        named = len(warnings) == len(retried) and all(
            error in text and PAYMENT["payment_id"] in text for error, text in zip(retried, warnings, strict=False)
        )
        assert named, lesson(
            expected=f"{len(retried)} WARNING record(s), one per retried failure, naming the payment and each error "
            f"in turn: {retried}",
            got=f"{len(warnings)} WARNING record(s); the log:\n{log}",
            revisit=LEVELS,
        )
        errors = log.at_least(logging.ERROR)
        last = script[-1]
        assert [record.levelno for record in errors] == [logging.ERROR], lesson(
            expected=f"exactly one record at ERROR or above, and it is an ERROR, after the answers {script}",
            got=f"{len(errors)} record(s) at ERROR or above; the log:\n{log}",
            revisit="task 3: the end of a failed payment is reported once, at ERROR level (README: What the log and the payer are told)",  # noqa: E501
        )
        text = message(errors[0])
        assert last in text and re.search(rf"(?<![\w.]){attempts}(?![\w.])", text), lesson(
            expected=f"the ERROR names the last error {last!r} and the {attempts} attempt(s) made",
            got=text,
            revisit="task 3: the report gets the error that ended it and how many attempts were really made (README: What the log and the payer are told)",  # noqa: E501
        )

    await every_case(FAILING, check, what="failed payments", revisit=REAL_WAIT)


@pytest.mark.task(3)
async def test_a_payment_that_goes_through_after_retries_reports_no_failure(gateway, outbox, sleep, log, timeline):
    """Two timeouts then approved: two WARNINGs, no ERROR, and the payer gets no failure email."""
    gateway.will(transient(TIMEOUT), transient(UNAVAILABLE), "receipt-3")
    await pay(gateway, outbox, sleep, **QUICK)
    levels = [record.levelname for record in log.at_least(logging.WARNING)]
    assert len(outbox) == 0 and levels == ["WARNING", "WARNING"], lesson(
        expected="no email, and two WARNINGs (one per retried failure) with no ERROR: the payment went through",
        got=f"{len(outbox)} email(s); the log:\n{log}",
        revisit="task 3: report only when it has given up; a retried failure is a WARNING, not an ERROR (README: What the log and the payer are told)",  # noqa: E501
    )


@pytest.mark.task(3)
async def test_each_attempt_is_logged_at_info_with_its_number_before_its_charge(gateway, outbox, sleep, log, timeline):
    """timeout, 503, approved: INFO lines saying 'attempt 1', 'attempt 2', 'attempt 3', each before its charge."""
    gateway.will(transient(TIMEOUT), transient(UNAVAILABLE), "receipt-3")
    await pay(gateway, outbox, sleep, **QUICK)
    numbers: list[int] = []
    late: list[int] = []
    charges = 0
    for event in timeline.events:
        if event.name == CHARGE_ATTEMPTED:
            charges += 1
        elif event.name == "log INFO":
            for found in re.findall(r"\battempt (\d+)", event.detail, flags=re.IGNORECASE):
                number = int(found)
                if number not in numbers:
                    numbers.append(number)
                    if charges >= number:
                        late.append(number)
    assert numbers == [1, 2, 3] and not late, lesson(
        expected="INFO lines that say 'attempt 1', 'attempt 2', 'attempt 3', in that order, each before its charge",
        got=f"INFO attempt numbers {numbers}"
        + (f", logged after their charge: {late}" if late else "")
        + story(timeline),
        revisit="task 3: each attempt is announced at INFO level with its number, counting from one, before it is made (README: What the log and the payer are told)",  # noqa: E501
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


def used_the_injected_sleep(gateway: FakeGateway, sleep: FakeSleep, case: str) -> None:
    """Stop a property at once if its example retried without calling the injected sleep."""
    if len(gateway) > 1 and not sleep.calls:
        raise WaitedElsewhere(
            lesson(
                expected=f"{len(gateway) - 1} call(s) to the injected sleep between {len(gateway)} charges",
                got=f"none, for {case}: the waits happened somewhere else, or not at all",
                revisit=REAL_WAIT,
            )
        )


@pytest.mark.task(3)
@given(steps=scripts, max_attempts=st.integers(1, 6))
async def test_property_attempts_are_the_first_final_answer_plus_one_capped_at_max_attempts(steps, max_attempts):
    """For any script: charges == min(first approve or decline + 1, max_attempts); one email iff no receipt."""
    gateway, outbox, sleep = FakeGateway(scripted(steps)), AsyncFakeOutbox(), FakeSleep(FakeClock())
    result = receipt_of(await pay(gateway, outbox, sleep, max_attempts=max_attempts, **QUICK))
    used_the_injected_sleep(gateway, sleep, f"the script {steps} with max_attempts={max_attempts}")
    final = next((n for n, step in enumerate(steps) if step != "transient"), None)
    expected = max_attempts if final is None else min(final + 1, max_attempts)
    assert len(gateway) == expected, lesson(
        expected=f"{expected} charge(s) for the script {steps} with max_attempts={max_attempts}",
        got=f"{len(gateway)}: {gateway!r}",
        revisit="task 3: stop at a receipt or a decline, and after the maximum of attempts in all (README: Bounded attempts)",  # noqa: E501
    )
    approved = final is not None and final < max_attempts and steps[final] == "approved"
    assert (result == "receipt-ok", len(outbox)) == (approved, 0 if approved else 1), lesson(
        expected="the receipt and no email" if approved else "None and exactly one failure email",
        got=f"returned {result!r}, {len(outbox)} email(s), for the script {steps} with max_attempts={max_attempts}",
        revisit="task 3: the receipt when a charge goes through, otherwise one report at the end (README: Bounded attempts)",  # noqa: E501
    )


@pytest.mark.task(3)
@given(steps=scripts, p=policies(most=0.02, cap=0.08), rng=st.randoms(use_true_random=False))
async def test_property_one_wait_between_attempts_and_each_within_its_bounds(steps, p, rng):
    """For any script, policy and dice: sleeps == charges - 1, and wait i lies in [capped(i), capped(i) + jitter]."""
    gateway, outbox, sleep = FakeGateway(scripted(steps)), AsyncFakeOutbox(), FakeSleep(FakeClock())
    await bounded(
        payments.process_payment(
            payments.Payment(**PAYMENT), gateway=gateway, mailer=outbox, sleep=sleep, rng=rng.random, policy=p
        ),
        what="process_payment",
        revisit=REAL_WAIT,
    )
    used_the_injected_sleep(gateway, sleep, f"the script {steps} with {p}")
    got = waits(sleep)
    assert len(got) == max(len(gateway) - 1, 0), lesson(
        expected=f"{max(len(gateway) - 1, 0)} wait(s) for {len(gateway)} charge(s): one between each pair",
        got=f"{len(got)}: {got}, for the script {steps} with {p}",
        revisit="task 3: wait after a transient failure only when another attempt follows (README: Bounded attempts)",
    )
    bounds = [(capped(p, retry), capped(p, retry) + p.jitter) for retry in range(len(got))]
    outside = [
        f"wait {n}: {value:g} s not in [{low:g}, {high:g}]"
        for n, (value, (low, high)) in enumerate(zip(got, bounds, strict=True))
        if not low - 1e-9 <= value <= high + 1e-9
    ]
    assert not outside, lesson(
        expected=f"each wait i within [min(max_delay, base_delay * 2^i), that + jitter] for {p}",
        got="; ".join(outside),
        revisit="task 3: the wait after failure number one is the delay of retry zero, and so on (README: Exponential backoff with a cap)",  # noqa: E501
    )


# ---------------------------------------------------------------- task 4: validate, queue, answer


async def post(client, body: object):
    """POST this JSON (any JSON value, null included) to /payments, as UTF-8, bounded in real time."""
    content = json.dumps(body, ensure_ascii=False).encode()
    request = client.post("/payments", content=content, headers={"content-type": "application/json"})
    return await bounded(request, what="POST /payments", revisit=REAL_WAIT_IN_APP)


@pytest.mark.task(4)
async def test_a_valid_payment_is_accepted_with_202_and_says_it_is_processing(client):
    """202 Accepted and {"status": "processing", "payment_id": ...}: the charge has not happened yet."""
    response = await post(client, PAYMENT)
    expect_status(
        response,
        202,
        expected="202 Accepted",
        revisit="task 4: the answer says the payment was accepted, not that it is done (README: Validate and queue the payment)",  # noqa: E501
    )
    expect_json(
        response,
        {"status": "processing", "payment_id": PAYMENT["payment_id"]},
        expected=f'{{"status": "processing", "payment_id": "{PAYMENT["payment_id"]}"}}',
        revisit="task 4: the answer names the payment and says it is processing (README: Validate and queue the payment)",  # noqa: E501
    )


#: Payments at the limits, each with the change it makes to the standard one: 64 characters (not bytes), 1
#: character, 1 cent, a non-ASCII address.
ACCEPTED = {
    "a 64-character payment_id": {"payment_id": "p" * 64},
    "a payment_id of 64 'é' (64 characters, 128 bytes)": {"payment_id": "é" * 64},
    "a 1-character payment_id": {"payment_id": "p"},
    "an amount of 1 cent": {"amount_cents": 1},
    "an address with a non-ASCII letter": {"email": "josé@example.com"},
}
LIMITS = (
    "task 4: a limit includes its own value, and a length counts characters, not bytes (README: Validation at the door)"
)


def charges_since(gateway: FakeGateway, before: int) -> list[tuple[str, int]]:
    """The payment id and amount of each charge made since the gateway had ``before`` of them."""
    return [(call.payment_id, call.amount_cents) for call in gateway.calls[before:]]


def shown(charges: list[tuple[str, int]]) -> str:
    return ", ".join(f"{amount} cents for {payment_id!r}" for payment_id, amount in charges) or "no charge"


@pytest.mark.task(4)
async def test_a_payment_at_the_limits_is_accepted_and_charged(client, gateway):
    """At each limit, the payment still goes through: 64 characters (not bytes), 1 character, 1 cent.

    The payments go to one app, one after another; each is judged by the charges it made.
    """

    async def check(case: tuple[str, dict[str, object]]) -> None:
        why, change = case
        body = {**PAYMENT, **change}
        before = len(gateway)
        response = await post(client, body)
        expect_status(response, 202, expected=f"202 for {why}", revisit=LIMITS)
        got = charges_since(gateway, before)
        assert got == [(body["payment_id"], body["amount_cents"])], lesson(
            expected=f"one charge of {body['amount_cents']} cents for {body['payment_id']!r}",
            got=shown(got),
            revisit="task 4: the background task charges exactly what the client sent (README: Validate and queue the payment)",  # noqa: E501
        )

    await every_case(named(ACCEPTED), check, what="payments at the limits", revisit=REAL_WAIT_IN_APP)


#: Payments the app must turn away, each with the change it makes to the standard one (None: the field left out).
INVALID = {
    "no payment_id": {"payment_id": None},
    "an empty payment_id": {"payment_id": ""},
    "a 65-character payment_id": {"payment_id": "p" * 65},
    "a payment_id of 65 'é'": {"payment_id": "é" * 65},
    "a payment_id that is a number": {"payment_id": 42},
    "no amount_cents": {"amount_cents": None},
    "an amount of 0": {"amount_cents": 0},
    "an amount of -1": {"amount_cents": -1},
    "a fraction of a cent": {"amount_cents": 12.5},
    "an amount with a decimal point": {"amount_cents": 1250.0},
    "an amount in a string": {"amount_cents": "1250"},
    "an amount that is true": {"amount_cents": True},
    "an amount that is not a number": {"amount_cents": "twelve"},
    "no email": {"email": None},
    "an email without an @": {"email": "ada-at-example.com"},
    "an email whose domain has no dot": {"email": "ada@example"},
    "an email with a space": {"email": "ada @example.com"},
    "an email with two @": {"email": "ada@@example.com"},
    "an email with nothing before the @": {"email": "@example.com"},
}
DECLARED = "task 4: declare each field with its type and limits, and the framework turns bad input away with a 422 (README: Validation at the door)"  # noqa: E501
TURNED_AWAY = "task 4: nothing is queued for a request that was turned away (README: Validation at the door)"


@pytest.mark.task(4)
async def test_an_invalid_payment_is_rejected_with_422_and_never_charged(client, gateway):
    """Bad input is the client's mistake: 422, and the gateway never hears of it.

    The payments go to one app, one after another; each is judged by the charges it made.
    """

    async def check(case: tuple[str, dict[str, object]]) -> None:
        why, change = case
        body = {key: value for key, value in {**PAYMENT, **change}.items() if value is not None}
        before = len(gateway)
        response = await post(client, body)
        expect_status(response, 422, expected=f"422 for {why}", revisit=DECLARED)
        got = charges_since(gateway, before)
        assert not got, lesson(
            expected=f"no charge for a rejected request ({why})", got=shown(got), revisit=TURNED_AWAY
        )

    await every_case(named(INVALID), check, what="invalid payments", revisit=REAL_WAIT_IN_APP)


#: JSON bodies that are no object.
NOT_OBJECTS = {"a list": [PAYMENT], "a string": "pay_42", "a number": 42, "null": None}


@pytest.mark.task(4)
async def test_a_body_that_is_not_an_object_is_rejected_with_422(client, gateway):
    """The body is one JSON object: the payment as an object is a 202; a list, a string, a number or null, a 422.

    The payment as an object goes first, once; then each body, to the same app, judged by the charges it made.
    """
    accepted = await post(client, PAYMENT)
    expect_status(
        accepted,
        202,
        expected="202 for the payment sent as an object (the spec sends it before the wrong kinds of body)",
        revisit="task 4: the answer says the payment was accepted, not that it is done (README: Validate and queue the payment)",  # noqa: E501
    )

    async def check(body: object) -> None:
        before = len(gateway)
        response = await post(client, body)
        expect_status(
            response,
            422,
            expected=f"422 for a body that is not a JSON object: {json.dumps(body, ensure_ascii=False)}"[:200],
            revisit="task 4: the body is one object with the three fields (README: Validation at the door)",
        )
        got = charges_since(gateway, before)
        assert not got, lesson(expected="no charge for a rejected request", got=shown(got), revisit=TURNED_AWAY)

    await every_case(NOT_OBJECTS, check, what="bodies that are no object", revisit=REAL_WAIT_IN_APP)


@pytest.mark.task(4)
async def test_the_charge_happens_after_the_response_is_complete(app, gateway: FakeGateway, timeline: Timeline):
    """The client has its whole 202 before the first charge: the payment runs as a background task."""
    exchange = await bounded(
        timeline.request(app, "POST", "/payments", json=PAYMENT), what="POST /payments", revisit=REAL_WAIT_IN_APP
    )
    timeline.expect_order(
        RESPONSE_COMPLETE,
        CHARGE_ATTEMPTED,
        CALL_FINISHED,
        why="The charge must start after the response is complete, inside the request's background tasks.",
        revisit="task 4: hand the charging to the request's background tasks, after the answer (README: Validate and queue the payment)",  # noqa: E501
    )
    got = [(call.payment_id, call.amount_cents) for call in gateway.calls]
    assert got == [(PAYMENT["payment_id"], PAYMENT["amount_cents"])] and exchange.error is None, lesson(
        expected=f"one charge of {PAYMENT['amount_cents']} cents for {PAYMENT['payment_id']}, and no error",
        got=f"{gateway!r}; app error: {exchange.error!r}",
        revisit="task 4: the task gets the payment's plain values and is queued once (README: Validate and queue the payment)",  # noqa: E501
    )


@pytest.mark.task(4)
async def test_a_failing_payment_is_retried_and_reported_in_the_background_after_the_202(
    app, gateway: FakeGateway, outbox: AsyncFakeOutbox, sleep: RecordingSleep, timeline: Timeline
):
    """Timeouts only: the 202 goes out first; then the app's policy: four charges, three waits, one failure email."""
    gateway.will(transient(TIMEOUT))
    exchange = await bounded(
        timeline.request(app, "POST", "/payments", json=PAYMENT), what="POST /payments", revisit=REAL_WAIT_IN_APP
    )
    assert exchange.status == 202 and exchange.error is None, lesson(
        expected="202, and a background task that ends without raising",
        got=str(exchange),
        revisit="task 4: the background task handles its own failure, so nothing escapes it (README: Validate and queue the payment)",  # noqa: E501
    )
    got = (len(gateway), waits(sleep), [email.to for email in outbox.sent])
    expected = (4, pytest.approx([0.1, 0.15, 0.2]), [PAYMENT["email"]])
    assert got == expected, lesson(
        expected="the policy given to create_app (4 attempts, base 0.05 s, cap 0.15 s, jitter 0.1 * rng() == 0.05): "
        f"4 charges, waits [0.1, 0.15, 0.2] on the injected sleep, 1 email to {PAYMENT['email']}",
        got=f"{got[0]} charge(s), waits {got[1]}, emails to {got[2]}" + story(timeline),
        revisit="task 4: the background task gets every collaborator the app was built with, the policy too (README: Injected time and randomness)",  # noqa: E501
    )
    timeline.expect_order(
        RESPONSE_COMPLETE,
        CHARGE_ATTEMPTED,
        EMAIL_SENT,
        CALL_FINISHED,
        why="The retries and the report belong in the request's background tasks, after the response.",
        revisit="task 4: hand the charging to the request's background tasks, after the answer (README: Validate and queue the payment)",  # noqa: E501
    )


@pytest.mark.task(4)
async def test_an_app_built_without_a_policy_uses_the_stated_defaults(gateway, outbox, sleep, timeline):
    """create_app with no policy: RetryPolicy's defaults, 3 attempts with waits of 0.5 and 1.0 s plus jitter."""
    app = payments.create_app(gateway, outbox, sleep=sleep, rng=always(0.5))
    gateway.will(transient(TIMEOUT))
    await bounded(
        timeline.request(app, "POST", "/payments", json=PAYMENT), what="POST /payments", revisit=REAL_WAIT_IN_APP
    )
    got = (len(gateway), waits(sleep), len(outbox))
    assert got == (3, pytest.approx([0.625, 1.125]), 1), lesson(
        expected="the default policy (3 attempts, 0.5 s doubling, 0.25 * rng() == 0.125 of jitter): "
        "3 charges, waits [0.625, 1.125], 1 email",
        got=f"{got[0]} charge(s), waits {got[1]}, {got[2]} email(s)" + story(timeline),
        revisit="task 4: an app given no policy follows the default one, the one the README states (README: Bounded attempts)",  # noqa: E501
    )
