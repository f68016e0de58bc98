"""Specs for kata 11: webhooks.

Run them with

    uv run pytest katas/k11_webhooks

Each spec names the README task it checks. Edit webhooks.py, not this file (nor
conftest.py, which holds the clock, the sleep and the receivers, faked and real).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import inspect
import itertools
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import httpx
import pytest
from asgi_lifespan import LifespanManager

from dojo.fakes import EPOCH
from dojo.impl import kata_module
from dojo.teach import expect_json, expect_status, expect_type, lesson
from dojo.timeline import BOUND, RESPONSE_COMPLETE, CatchAppErrors, StillRunningError
from dojo.timeline import every_case as every_case_within
from dojo.virtual_clock import VirtualClockLoop

webhooks = kata_module("k11_webhooks", "webhooks")

pytestmark = pytest.mark.leaks(
    revisit="task 7: a client that is never closed keeps its connections, and their sockets, open after the "
    "work is done; the app closes its one client when it shuts down (README: One client for the app's life)"
)

#: The secret the specs sign with: 24 bytes, as Standard Webhooks asks at least.
SECRET = b"kata-11 spec secret, 24b"
URL = "https://partner.example/hooks"
ELSEWHERE = "https://elsewhere.example/hooks"
ID = "5eb1a7e5-0000-4000-8000-000000000042"
PAYLOAD = {
    "type": "order.shipped",
    "timestamp": "2026-01-05T08:59:58+00:00",
    "data": {"order": 1042, "customer": "Zoë Ångström", "note": "handle with care ☂"},
}
T0 = int(EPOCH.timestamp())  # the fake clock's start, in whole seconds since the epoch
ATTEMPT = "delivery attempt"

#: How long a spec lets the code run on the virtual clock, in virtual seconds: longer than any
#: retry policy here, so code that sleeps for real (not through the injected sleep) still ends,
#: and the spec can say so; code stuck in a loop reaches it at once. On a real loop: BOUND.
VIRTUAL_BOUND = 3600.0

# ---------------------------------------------------------------- what the specs know to be right


async def within_bound(call: Any, *, revisit: str, expected: str = "the call finished") -> Any:
    """Await the code under test, at most VIRTUAL_BOUND virtual seconds (BOUND real ones on a real loop)."""
    __tracebackhide__ = True
    virtual = isinstance(asyncio.get_running_loop(), VirtualClockLoop)
    limit = VIRTUAL_BOUND if virtual else BOUND
    task = asyncio.ensure_future(call)
    done, _ = await asyncio.wait({task}, timeout=limit)
    if not done:
        task.cancel()
        raise StillRunningError(
            lesson(
                expected=f"{expected} within {limit:g} s" + (" of the specs' virtual clock" if virtual else ""),
                got="still running: something in it waits for ever or loops",
                revisit=revisit,
            )
        )
    return task.result()


Case = TypeVar("Case")


async def every_case(
    cases: Mapping[str, Case], check: Callable[[Case], Awaitable[None]], *, what: str, revisit: str
) -> None:
    """Check each of ``cases`` (dojo's ``every_case``), all of them within the bound ``within_bound`` sets.

    On the virtual clock that is VIRTUAL_BOUND virtual seconds: code that sleeps for real
    still ends there, and its case fails with what it waited, not as a hang.
    """
    __tracebackhide__ = True
    await every_case_within(cases, check, what=what, revisit=revisit, within=within_bound)


def reference_signature(secret: bytes, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """The Standard Webhooks signature, computed here to compare with."""
    digest = hmac.new(secret, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def delivery_id(number: int) -> UUID:
    """The id the spec's ``new_id`` gives the ``number``-th delivery (from 1)."""
    return UUID(f"5eb1a7e5-0000-4000-8000-{number:012d}")


class Ids:
    """The injected ``new_id``: UUIDs the spec can predict, a new one per call."""

    def __init__(self) -> None:
        self.made = 0

    def __call__(self) -> UUID:
        self.made += 1
        return delivery_id(self.made)


@pytest.fixture(name="ids")
def _ids() -> Ids:
    return Ids()


@pytest.fixture(name="policy")
def _policy() -> dict[str, Any] | None:
    """The retry policy the app is built with (RetryPolicy's fields); None: the app's default."""
    return None


@pytest.fixture(name="app")
def _app(clock, sleep, ids: Ids, policy: dict[str, Any] | None) -> Any:
    """The kata's app, built with the spec's clock, sleep, secret and ids, and the policy."""
    options = {} if policy is None else {"policy": webhooks.RetryPolicy(**policy)}
    return webhooks.create_app(clock=clock, sleep=sleep, secret=SECRET, new_id=ids, **options)


@pytest.fixture(name="fresh_app")
def _fresh_app(fresh_sleep) -> Callable[[], Any]:
    """Makes the kata's app at each call, with a clock, a sleep and ids of its own (the default policy)."""

    def build() -> Any:
        sleep = fresh_sleep()
        return webhooks.create_app(clock=sleep.clock, sleep=sleep, secret=SECRET, new_id=Ids())

    return build


def a_delivery(url: str = URL, *, payload: dict[str, Any] | None = None, msg_id: str = ID) -> Any:
    return webhooks.Delivery(id=msg_id, url=url, payload=PAYLOAD if payload is None else payload)


@contextlib.asynccontextmanager
async def kata_client(*, revisit: str) -> AsyncIterator[httpx.AsyncClient]:
    """The client ``new_client`` makes, closed after use."""
    client = webhooks.new_client()
    if not isinstance(client, httpx.AsyncClient):
        if inspect.iscoroutine(client):
            client.close()
        pytest.fail(
            lesson(expected="an httpx AsyncClient", got=f"{type(client).__name__}: {client!r}"[:200], revisit=revisit),
            pytrace=False,
        )
    async with client:
        yield client


async def send(  # noqa: PLR0913 - the collaborators of one delivery, as the code takes them
    delivery: Any,
    *,
    clock,
    sleep,
    revisit: str,
    policy: Any = None,
    client: httpx.AsyncClient | None = None,
) -> None:
    """Run ``deliver`` once (through a plain client unless one is given), bounded as ``within_bound`` says."""
    __tracebackhide__ = True
    options = {} if policy is None else {"policy": policy}
    async with contextlib.AsyncExitStack() as stack:
        if client is None:
            client = await stack.enter_async_context(httpx.AsyncClient())
        call = webhooks.deliver(client, delivery, secret=SECRET, clock=clock, sleep=sleep, **options)
        if not inspect.isawaitable(call):
            raise AssertionError(
                lesson(
                    expected="deliver is a coroutine function: calling it gives something to await",
                    got=f"{type(call).__name__}: {call!r}"[:200],
                    revisit=revisit,
                )
            )
        try:
            await within_bound(call, revisit=revisit, expected="the delivery finished")
        except AssertionError:
            raise
        except Exception as error:  # noqa: BLE001 - whatever the code raises is the finding
            raise AssertionError(
                lesson(
                    expected="deliver records every outcome on the delivery and returns; it raises nothing",
                    got=f"it raised {type(error).__name__}: {error}"[:300],
                    revisit=revisit,
                )
            ) from None


def outcome(delivery: Any, *, revisit: str) -> tuple[str, int, int | None, str | None]:
    """The delivery's record, each field type-checked: (status, attempts, last_status, last_error)."""
    __tracebackhide__ = True
    expect_type(delivery.status, str, what="the delivery's status", revisit=revisit)
    expect_type(delivery.attempts, int, what="the delivery's attempts", revisit=revisit)
    expect_type(delivery.last_status, int, type(None), what="the delivery's last_status", revisit=revisit)
    expect_type(delivery.last_error, str, type(None), what="the delivery's last_error", revisit=revisit)
    return delivery.status, delivery.attempts, delivery.last_status, delivery.last_error


def expect_outcome(
    delivery: Any, wanted: tuple[str, int, int | None, str | None], *, revisit: str, why: str = ""
) -> None:
    __tracebackhide__ = True
    got = outcome(delivery, revisit=revisit)
    assert got == wanted, lesson(
        expected=f"{why}status, attempts, last_status, last_error: {wanted}",
        got=f"{got}",
        revisit=revisit,
    )


def expect_waits(sleep, wanted: list[float], *, revisit: str, why: str = "") -> None:
    __tracebackhide__ = True
    for seconds in sleep.calls:
        expect_type(seconds, int, float, what="each wait, in seconds", revisit=revisit)
    assert sleep.calls == wanted, lesson(
        expected=f"{why}waits through the injected sleep of {wanted} seconds, in this order",
        got=f"{sleep.calls}"
        if sleep.calls
        else "no wait through the injected sleep (a wait of asyncio's own is not the injected one)",
        revisit=revisit,
    )


def expect_attempts(receiver: Any, count: int, *, revisit: str, why: str) -> None:
    __tracebackhide__ = True
    assert len(receiver.requests) == count, lesson(
        expected=f"{count} request(s) to {receiver.url}: {why}",
        got=f"{len(receiver.requests)}",
        revisit=revisit,
    )


# ---------------------------------------------------------------- task 1: sign

SIGN = (
    "task 1: the signature is v1, a comma, and the standard base64 of an HMAC-SHA256 keyed with the secret, "
    "over the id, a full stop, the timestamp, a full stop and the body's bytes (README: Signing the exact bytes)"
)

#: The example Standard Webhooks publishes with its reference libraries (the secret is the base64 after whsec_).
EXAMPLE_SECRET = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
EXAMPLE_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
EXAMPLE_TIMESTAMP = 1614265330
EXAMPLE_BODY = b'{"test": 2432232314}'
EXAMPLE_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def signed(secret: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    __tracebackhide__ = True
    signature = webhooks.sign(secret, msg_id, timestamp, body)
    return expect_type(signature, str, what="what sign returns", revisit=SIGN)


@pytest.mark.task(1)
def test_a_signature_is_v1_a_comma_and_the_standard_base64_of_32_bytes():
    """The header's format: the scheme's version, then a SHA-256 digest (32 bytes) in standard base64."""
    signature = signed(EXAMPLE_SECRET, EXAMPLE_ID, EXAMPLE_TIMESTAMP, EXAMPLE_BODY)
    version, _, encoded = signature.partition(",")
    assert version == "v1", lesson(
        expected="a signature that starts with v1 and a comma: the receiver looks for that version",
        got=repr(signature),
        revisit=SIGN,
    )
    try:
        digest = base64.b64decode(encoded, validate=True)
    except ValueError:
        digest = None
    assert digest is not None and len(digest) == 32, lesson(
        expected="after the comma, 44 characters of standard base64 (with + and /, padded with =) of 32 bytes",
        got=f"{encoded!r}" + (" (hexadecimal?)" if len(encoded) == 64 else ""),
        revisit="task 1: both sides must write the digest the same way, and the scheme says base64, not "
        "hexadecimal and not the URL-safe alphabet (README: Signing the exact bytes)",
    )


#: What a case changes of a signed delivery (as the lesson says it, and as sign's arguments).
CHANGES = {
    "id": ("the id", {"msg_id": "5eb1a7e5-0000-4000-8000-000000000043"}),
    "timestamp": ("the timestamp", {"timestamp": T0 + 1}),
    "body": ("one byte of the body", {"body": b'{"order":1043}'}),
    "secret": ("the secret", {"secret": b"another secret, 24 bytes"}),
}


@pytest.mark.task(1)
async def test_the_id_the_timestamp_every_byte_of_the_body_and_the_secret_are_signed():
    """Change any one of them and the signature changes: none can be swapped without the secret."""
    base = {"secret": SECRET, "msg_id": ID, "timestamp": T0, "body": b'{"order":1042}'}

    async def check(case: tuple[str, dict[str, Any]]) -> None:
        what, change = case
        before = signed(base["secret"], base["msg_id"], base["timestamp"], base["body"])
        changed = {**base, **change}
        after = signed(changed["secret"], changed["msg_id"], changed["timestamp"], changed["body"])
        assert before != after, lesson(
            expected=f"another signature when {what} changes",
            got=f"the same signature, {before!r}: {what} is not signed, so it can be changed and the receiver "
            "cannot tell",
            revisit="task 1: the id and the timestamp are signed with the body, so that no one can replay a "
            "delivery later or pass it off as another one (README: Signing the exact bytes)",
        )

    await every_case(CHANGES, check, what="changes to a signed delivery", revisit=SIGN)


@pytest.mark.task(1)
def test_the_standard_webhooks_example_gives_its_published_signature():
    """The example of the Standard Webhooks libraries signs to the signature they publish."""
    signature = signed(EXAMPLE_SECRET, EXAMPLE_ID, EXAMPLE_TIMESTAMP, EXAMPLE_BODY)
    assert signature == EXAMPLE_SIGNATURE, lesson(
        expected=f"{EXAMPLE_SIGNATURE} for the published example (id {EXAMPLE_ID}, timestamp {EXAMPLE_TIMESTAMP}, "
        f"body {EXAMPLE_BODY.decode()})",
        got=repr(signature),
        revisit=SIGN,
    )


#: Bodies to sign as they are: non-ASCII JSON, JSON laid out by hand, text that is no JSON, nothing.
BODIES = {
    "non-ASCII JSON": b'{"type":"order.shipped","data":{"customer":"Zo\xc3\xab"}}',
    "spaces and newlines": b'{\n  "spaces": "kept as they are"\n}',
    "non-ASCII text": "naïve café ☂".encode(),
    "empty": b"",
}


@pytest.mark.task(1)
async def test_any_body_is_signed_byte_for_byte():
    """Non-ASCII bytes, spaces and newlines, even nothing: the bytes as given, never decoded or tidied."""

    async def check(body: bytes) -> None:
        signature = signed(SECRET, ID, T0, body)
        wanted = reference_signature(SECRET, ID, T0, body)
        assert signature == wanted, lesson(
            expected=f"{wanted} for the body {body!r}", got=repr(signature), revisit=SIGN
        )

    await every_case(BODIES, check, what="bodies", revisit=SIGN)


# ---------------------------------------------------------------- task 2: verify

CHECK = (
    "task 2: a delivery is genuine when one of its signatures is the one the secret gives for its id, "
    "timestamp and body (README: Checking a signature)"
)
FRESH = (
    "task 2: a timestamp more than five minutes from the receiver's clock, either way, is refused, and five "
    "minutes exactly is still accepted (README: Checking a signature)"
)
NEVER_RAISES = (
    "task 2: a receiver reads headers anyone can write, so any text at all is an answer of yes or no, never "
    "a crash (README: Checking a signature)"
)
NOW = EPOCH + timedelta(minutes=1)  # the receiver's clock: a minute after the delivery was signed
BODY = json.dumps(PAYLOAD, ensure_ascii=False, separators=(",", ":")).encode()


def checked(revisit: str = CHECK, **overrides: Any) -> bool:
    """What verify says of a delivery signed at T0 with SECRET, with ``overrides`` applied."""
    __tracebackhide__ = True
    arguments = {
        "msg_id": ID,
        "timestamp": str(T0),
        "signature": reference_signature(SECRET, ID, T0, BODY),
        "body": BODY,
        "now": NOW,
    }
    arguments.update(overrides)
    secret = arguments.pop("secret", SECRET)
    try:
        verdict = webhooks.verify(secret, **arguments)
    except NotImplementedError:
        raise
    except Exception as error:  # noqa: BLE001 - an exception is the finding
        raise AssertionError(
            lesson(
                expected="true or false",
                got=f"{type(error).__name__}: {error} for {overrides}"[:300],
                revisit=NEVER_RAISES,
            )
        ) from None
    return expect_type(verdict, bool, what="what verify returns", revisit=revisit)


@pytest.mark.task(2)
def test_a_delivery_signed_with_the_secret_a_minute_ago_is_genuine():
    """The signature sign would make, a timestamp a minute old: true."""
    assert checked() is True, lesson(
        expected="true: the signature is right and the timestamp a minute old", got="false", revisit=CHECK
    )


#: Deliveries changed after signing, or signed by someone without the secret: how the lesson says it, and verify's
#: arguments that differ.
TAMPERED = {
    "body": ("another body", {"body": BODY.replace(b"1042", b"1043")}),
    "id": ("another id", {"msg_id": "5eb1a7e5-0000-4000-8000-000000000043"}),
    "timestamp": ("another timestamp", {"timestamp": str(T0 + 1)}),
    "secret": ("another secret", {"secret": b"not the secret, 24 bytes"}),
    "forged": ("a signature made with another secret", {"signature": reference_signature(b"x" * 24, ID, T0, BODY)}),
    "hex": ("a signature in hexadecimal", {"signature": "v1," + hmac.new(SECRET, BODY, hashlib.sha256).hexdigest()}),
    "empty": ("no signature", {"signature": ""}),
}


@pytest.mark.task(2)
async def test_anything_changed_or_forged_is_refused():
    """Change the body, the id, the timestamp or the secret, or forge the signature: false."""

    async def check(case: tuple[str, dict[str, Any]]) -> None:
        what, overrides = case
        assert checked(**overrides) is False, lesson(
            expected=f"false for {what}: the signature does not match",
            got="true",
            revisit=CHECK,
        )

    await every_case(TAMPERED, check, what="changed or forged deliveries", revisit=CHECK)


#: How far the timestamp is from the receiver's clock, in seconds (negative: in the past), and whether a delivery
#: rightly signed then is accepted.
AGES = {
    "now": (0, True),
    "5 minutes old": (-300, True),
    "5 minutes 1 s old": (-301, False),
    "5 minutes ahead": (300, True),
    "5 minutes 1 s ahead": (301, False),
    "a day old": (-86400, False),
}


@pytest.mark.task(2)
async def test_a_timestamp_up_to_five_minutes_old_or_ahead_is_accepted_and_no_further():
    """Five minutes either way is the tolerance, both ends included: a replay later on is refused."""

    async def check(case: tuple[int, bool]) -> None:
        offset, genuine = case
        timestamp = int(NOW.timestamp()) + offset
        verdict = checked(FRESH, timestamp=str(timestamp), signature=reference_signature(SECRET, ID, timestamp, BODY))
        when = f"{abs(offset)} s {'old' if offset <= 0 else 'ahead'}"
        assert verdict is genuine, lesson(
            expected=f"{'true' if genuine else 'false'} for a rightly signed delivery {when}",
            got=f"{verdict}".lower(),
            revisit=FRESH,
        )

    await every_case(AGES, check, what="timestamps", revisit=FRESH)


#: Timestamp headers that are no number of seconds (each rightly signed all the same).
NOT_A_NUMBER = {
    "empty": "",
    "a word": "soon",
    "a time of day": "12:00",
    "an ISO 8601 date": "2026-01-05T09:00:00Z",
    "superscript digits": "¹⁷⁶⁷⁶⁰³⁶⁰⁰",
}


@pytest.mark.task(2)
async def test_a_timestamp_that_is_not_a_number_of_seconds_is_refused_not_an_error():
    """A timestamp header anyone could write: false, and no exception."""

    async def check(timestamp: str) -> None:
        verdict = checked(NEVER_RAISES, timestamp=timestamp, signature=reference_signature(SECRET, ID, timestamp, BODY))
        assert verdict is False, lesson(
            expected=f"false for the timestamp {timestamp!r}", got="true", revisit=NEVER_RAISES
        )

    await every_case(NOT_A_NUMBER, check, what="timestamps that are no number", revisit=NEVER_RAISES)


#: Signature headers of several entries ({good}: the right signature; {bare}: its base64 alone), and whether
#: the delivery is genuine with them.
SIGNATURE_LISTS = {
    "among others": ("v1,bm90IHRoaXMgb25l {good} v1a,c29tZXRoaW5nIGVsc2U=", True),
    "first of two": ("{good} v1,bm90IHRoaXMgb25l", True),
    "after garbage": ("garbage {good}", True),
    "none matches": ("v1,bm90IHRoaXMgb25l v1,YW5kIG5vdCB0aGlzIG9uZQ==", False),
    "another version": ("v1a,{bare}", False),
}
SEVERAL = (
    "task 2: the signature header is a list, separated by spaces, and only a v1 entry that matches counts "
    "(README: Checking a signature)"
)


@pytest.mark.task(2)
async def test_any_one_of_several_signatures_may_match():
    """The header lists signatures, space-separated (a secret being replaced): one match is enough."""
    good = reference_signature(SECRET, ID, T0, BODY)

    async def check(case: tuple[str, bool]) -> None:
        header, genuine = case
        text = header.format(good=good, bare=good.partition(",")[2])
        verdict = checked(signature=text)
        assert verdict is genuine, lesson(
            expected=f"{'true' if genuine else 'false'} for the signatures {text!r}",
            got=f"{verdict}".lower(),
            revisit=SEVERAL,
        )

    await every_case(SIGNATURE_LISTS, check, what="lists of signatures", revisit=SEVERAL)


#: Signature headers that are no signature at all.
JUNK_SIGNATURES = {
    "accented": "v1,é",
    "emoji": "v1,💥💥💥",
    "control characters": "v1,\x00\x01",
    "a blank": " ",
    "10 000 characters": "v1," + "A" * 10_000,
}


@pytest.mark.task(2)
async def test_any_text_in_the_signature_is_refused_not_an_error():
    """Non-ASCII, control characters, blanks, very long: false, never an exception."""

    async def check(header: str) -> None:
        verdict = checked(NEVER_RAISES, signature=header)
        assert verdict is False, lesson(expected=f"false for {header[:40]!r}", got="true", revisit=NEVER_RAISES)

    await every_case(JUNK_SIGNATURES, check, what="signatures that are none", revisit=NEVER_RAISES)


@pytest.fixture(name="comparisons")
def _comparisons(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, object]]:
    """Every call to hmac's compare_digest (however the module reached it), with its arguments."""
    original = hmac.compare_digest
    calls: list[tuple[object, object]] = []

    def compare_digest(a: Any, b: Any) -> bool:
        calls.append((a, b))
        return original(a, b)

    monkeypatch.setattr(hmac, "compare_digest", compare_digest)
    monkeypatch.setattr(secrets, "compare_digest", compare_digest)
    try:
        loaded = webhooks._load()  # noqa: SLF001 - the learner's module itself, to reach the names it imported
    except Exception:  # noqa: BLE001 - a module that does not import fails the spec itself, with its message
        return calls
    for name, value in list(vars(loaded).items()):
        if value is original:
            monkeypatch.setattr(loaded, name, compare_digest)
    return calls


@pytest.mark.task(2)
def test_signatures_are_compared_in_constant_time(comparisons):
    """The comparison that decides is compare_digest, whose time does not say where two values differ."""
    genuine = checked()
    forged = checked(signature="v1," + base64.b64encode(b"\0" * 32).decode())
    assert genuine is True and forged is False, lesson(
        expected="true for the genuine delivery, false for the forged one", got=f"{genuine}, {forged}", revisit=CHECK
    )
    assert comparisons, lesson(
        expected="the signatures compared with hmac's constant-time comparison",
        got="never called: == (or in, or startswith) stops at the first character that differs, and the time "
        "it takes tells an attacker how much of a forged signature is right",
        revisit="task 2: a comparison whose time depends on the values lets an attacker find a valid signature "
        "a character at a time; the constant-time one gives nothing away (README: Checking a signature)",
    )


# ---------------------------------------------------------------- task 3: send it, signed

SEND = (
    "task 3: each attempt is one POST of the payload as JSON to the delivery's URL, and a 2xx answer means "
    "delivered (README: Send it, signed)"
)
HEADERS = (
    "task 3: every attempt carries the delivery's id, the time it is sent in whole seconds, and the signature of "
    "those and of the very bytes of the body (README: Signing the exact bytes)"
)
TIMEOUT = (
    "task 3: every request gives up after fifteen seconds in each phase; without a timeout, a receiver that "
    "never answers holds the delivery for ever (README: A timeout on every request)"
)


@pytest.mark.task(3)
async def test_a_delivery_is_one_post_of_its_payload_as_json_to_its_url(receivers, clock, sleep):
    """One POST, JSON (non-ASCII intact), to the URL; a 204 makes it delivered after one attempt, with no wait."""
    receiver = receivers.at(URL)
    delivery = a_delivery()
    await send(delivery, clock=clock, sleep=sleep, revisit=SEND)
    expect_attempts(receiver, 1, revisit=SEND, why="one attempt, answered 204")
    request = receiver.requests[0]
    assert request.headers.get("content-type", "").split(";")[0].strip() == "application/json", lesson(
        expected="the header content-type: application/json",
        got=repr(request.headers.get("content-type")),
        revisit=SEND,
    )
    try:
        sent = json.loads(request.content.decode("utf-8"))
    except ValueError:
        sent = f"not JSON in UTF-8: {request.content[:100]!r}"
    assert sent == PAYLOAD, lesson(expected=f"the payload, as JSON: {PAYLOAD}", got=f"{sent}", revisit=SEND)
    expect_outcome(delivery, ("delivered", 1, 204, None), revisit=SEND)
    expect_waits(sleep, [], revisit=SEND)


@pytest.mark.task(3)
async def test_the_headers_are_the_id_the_time_of_sending_and_the_signature_of_the_bytes_sent(receivers, clock, sleep):
    """webhook-id, webhook-timestamp from the clock, webhook-signature over exactly the body on the wire."""
    receiver = receivers.at(URL)
    delivery = a_delivery()
    clock.advance(42)  # the delivery waited in line: the time of sending is what counts
    await send(delivery, clock=clock, sleep=sleep, revisit=HEADERS)
    expect_attempts(receiver, 1, revisit=SEND, why="one attempt, answered 204")
    request = receiver.requests[0]
    got = {name: request.headers.get(name) for name in ("webhook-id", "webhook-timestamp")}
    wanted = {"webhook-id": ID, "webhook-timestamp": str(T0 + 42)}
    assert got == wanted, lesson(
        expected=f"{wanted}: the delivery's id, and the clock's time when the request goes out",
        got=f"{got}",
        revisit=HEADERS,
    )
    signature = request.headers.get("webhook-signature")
    right = reference_signature(SECRET, ID, T0 + 42, request.content)
    if signature != right:
        hint = ""
        for text in (json.dumps(PAYLOAD), json.dumps(PAYLOAD, ensure_ascii=False)):
            if signature == reference_signature(SECRET, ID, T0 + 42, text.encode()):
                hint = f" It is the signature of {text[:60]!r}…, a serialization other than the bytes sent."
        pytest.fail(
            lesson(
                expected=f"the signature of the bytes sent: {right}",
                got=f"{signature!r}.{hint}",
                revisit="task 3: serialize the payload once, sign those bytes, and send those same bytes: JSON "
                "written twice need not come out the same (README: Signing the exact bytes)",
            ),
            pytrace=False,
        )


@pytest.mark.task(3)
async def test_the_timestamp_is_whole_seconds_rounded_down(receivers, clock, sleep):
    """Three quarters of a second past: the timestamp still says the second it is in."""
    receiver = receivers.at(URL)
    clock.advance(0.75)
    await send(a_delivery(), clock=clock, sleep=sleep, revisit=HEADERS)
    expect_attempts(receiver, 1, revisit=SEND, why="one attempt, answered 204")
    got = receiver.requests[0].headers.get("webhook-timestamp")
    assert got == str(T0), lesson(
        expected=f"{T0}: whole seconds since the epoch, rounded down", got=repr(got), revisit=HEADERS
    )


def by_name(*statuses: int) -> dict[str, int]:
    """Statuses as cases, each named by its number."""
    return {str(status): status for status in statuses}


#: Statuses that say the receiver has the delivery: both ends of 2xx, and some between.
SUCCESSES = by_name(200, 201, 202, 204, 299)


@pytest.mark.task(3)
async def test_any_2xx_answer_means_delivered(receivers, clock, sleep):
    """Every status from 200 to 299 is the receiver saying it has the delivery.

    Each status is answered by a receiver of its own (at a URL of its own), to a delivery of its own.
    """

    async def check(status: int) -> None:
        receiver = receivers.at(f"{URL}/{status}").will(status)
        delivery = a_delivery(receiver.url)
        await send(delivery, clock=clock, sleep=sleep, revisit=SEND)
        expect_attempts(receiver, 1, revisit=SEND, why=f"one attempt, answered {status}")
        expect_outcome(delivery, ("delivered", 1, status, None), revisit=SEND, why=f"answered {status}: ")

    await every_case(SUCCESSES, check, what="2xx statuses", revisit=SEND)


@pytest.mark.task(3)
async def test_every_request_gives_up_after_fifteen_seconds_in_each_phase(receivers, clock, sleep):
    """The client (or the request) sets an explicit timeout: 15 s to connect, write, read, and wait for the pool."""
    receiver = receivers.at(URL)
    async with kata_client(revisit=TIMEOUT) as client:
        await send(a_delivery(), clock=clock, sleep=sleep, revisit=SEND, client=client)
    expect_attempts(receiver, 1, revisit=SEND, why="one attempt, answered 204")
    timeout = receiver.requests[0].extensions.get("timeout")
    wanted = {"connect": 15.0, "read": 15.0, "write": 15.0, "pool": 15.0}
    assert timeout == wanted, lesson(
        expected=f"the request's timeout {wanted}",
        got=f"{timeout}" + (" (httpx's default, 5 s)" if timeout == dict.fromkeys(wanted, 5.0) else ""),
        revisit=TIMEOUT,
    )


# ---------------------------------------------------------------- task 4: try again, not for ever

RETRY = (
    "task 4: a 5xx or no answer at all may be better next time, so it is tried again after a wait that starts at "
    "one second and doubles, five attempts in all (README: Which failures deserve another try)"
)
FINAL = (
    "task 4: any status other than 2xx, 5xx and 429 says the request itself is wrong: it would be refused again, "
    "so the delivery fails at once (README: Which failures deserve another try)"
)
BACKOFF = (
    "task 4: the waits come from the policy: its first delay, doubled after each failure, never above its "
    "maximum, and no wait after the last attempt (README: Backoff, and Retry-After)"
)
SAME = (
    "task 4: every attempt of one delivery carries the same id and the same bytes, so a receiver that already "
    "has it can tell (README: One id for every attempt)"
)


@pytest.mark.task(4)
async def test_a_5xx_is_tried_again_after_one_then_two_seconds_until_it_is_accepted(receivers, clock, sleep):
    """503, 503, then 204: three attempts, waits of 1 s and 2 s, delivered."""
    receiver = receivers.at(URL).will(503, 503, 204)
    delivery = a_delivery()
    await send(delivery, clock=clock, sleep=sleep, revisit=RETRY)
    expect_attempts(receiver, 3, revisit=RETRY, why="503, 503, then 204")
    expect_waits(sleep, [1.0, 2.0], revisit=BACKOFF)
    expect_outcome(delivery, ("delivered", 3, 204, None), revisit=RETRY)


@pytest.mark.task(4)
async def test_after_five_attempts_the_delivery_has_failed_and_nothing_waits_after_the_last(receivers, clock, sleep):
    """500 every time: five attempts, waits of 1, 2, 4 and 8 s between them, then failed."""
    receiver = receivers.at(URL).will(500)
    delivery = a_delivery()
    await send(delivery, clock=clock, sleep=sleep, revisit=RETRY)
    expect_attempts(
        receiver,
        5,
        why="five attempts in all with the default policy, the first one included",
        revisit="task 4: the policy counts attempts, the first one included: five with the defaults "
        "(README: Try again, but not for ever)",
    )
    expect_waits(sleep, [1.0, 2.0, 4.0, 8.0], revisit=BACKOFF, why="four waits between five attempts: ")
    expect_outcome(delivery, ("failed", 5, 500, None), revisit=RETRY)


#: Statuses that say the receiver is in trouble: both ends of 5xx, and the usual ones between.
SERVER_ERRORS = by_name(500, 502, 503, 504, 599)


@pytest.mark.task(4)
async def test_every_5xx_is_worth_another_try(receivers, fresh_sleep):
    """Any status from 500 to 599 says the receiver is in trouble, not that the request is wrong.

    Each status is answered by a receiver of its own, to a delivery of its own, with a sleep of its own.
    """

    async def check(status: int) -> None:
        receiver = receivers.at(f"{URL}/{status}").will(status, 200)
        delivery, sleep = a_delivery(receiver.url), fresh_sleep()
        await send(delivery, clock=sleep.clock, sleep=sleep, revisit=RETRY)
        expect_attempts(receiver, 2, revisit=RETRY, why=f"{status}, then 200")
        expect_waits(sleep, [1.0], revisit=BACKOFF, why=f"after a {status}: ")
        expect_outcome(delivery, ("delivered", 2, 200, None), revisit=RETRY, why=f"{status}, then 200: ")

    await every_case(SERVER_ERRORS, check, what="5xx statuses", revisit=RETRY)


#: httpx's errors when no answer comes: refused, timed out in each phase, reset, cut off.
TRANSPORT_ERRORS: dict[str, type[httpx.TransportError]] = {
    error.__name__: error
    for error in (
        httpx.ConnectError,
        httpx.ConnectTimeout,
        httpx.ReadTimeout,
        httpx.WriteTimeout,
        httpx.PoolTimeout,
        httpx.ReadError,
        httpx.RemoteProtocolError,
    )
}


@pytest.mark.task(4)
async def test_no_answer_at_all_is_worth_another_try(receivers, fresh_sleep):
    """Refused, reset, timed out, cut off: httpx's transport errors are tried again, then 204."""

    async def check(error: type[httpx.TransportError]) -> None:
        receiver = receivers.at(f"{URL}/{error.__name__}").will(error, 204)
        delivery, sleep = a_delivery(receiver.url), fresh_sleep()
        await send(delivery, clock=sleep.clock, sleep=sleep, revisit=RETRY)
        expect_attempts(receiver, 2, revisit=RETRY, why=f"{error.__name__}, then 204")
        expect_waits(sleep, [1.0], revisit=BACKOFF, why=f"after a {error.__name__}: ")
        expect_outcome(delivery, ("delivered", 2, 204, None), revisit=RETRY, why=f"{error.__name__}, then 204: ")

    await every_case(TRANSPORT_ERRORS, check, what="transport errors", revisit=RETRY)


@pytest.mark.task(4)
async def test_a_receiver_that_never_answers_leaves_its_error_on_record(receivers, clock, sleep):
    """Refused five times: failed, with no status and the error's class name."""
    receiver = receivers.at(URL).will(httpx.ConnectError)
    delivery = a_delivery()
    await send(delivery, clock=clock, sleep=sleep, revisit=RETRY)
    expect_attempts(receiver, 5, revisit=RETRY, why="five attempts, all refused")
    expect_outcome(
        delivery,
        ("failed", 5, None, "ConnectError"),
        revisit="task 4: with no answer there is no status; the record keeps the class name of httpx's error "
        "(README: Try again, but not for ever)",
    )


@pytest.mark.task(4)
async def test_any_other_status_fails_at_once(receivers, clock, sleep):
    """A 4xx other than 429, a redirect (never followed), a status past 599: one attempt, no wait, failed."""
    elsewhere = receivers.at(ELSEWHERE)
    async with httpx.AsyncClient() as client:
        for status in (400, 401, 403, 404, 408, 409, 410, 413, 422, 451, 499, 301, 302, 303, 307, 308, 600):
            receiver = receivers.at(f"{URL}/{status}").will((status, {"location": ELSEWHERE}))
            delivery = a_delivery(receiver.url)
            await send(delivery, clock=clock, sleep=sleep, revisit=FINAL, client=client)
            assert not elsewhere.requests, lesson(
                expected=f"no request to {ELSEWHERE}: a redirect is not followed, the subscriber must fix the URL",
                got=f"{len(elsewhere.requests)} request(s) there after a {status}",
                revisit=FINAL,
            )
            expect_attempts(receiver, 1, revisit=FINAL, why=f"one attempt: {status} would be the answer every time")
            expect_waits(sleep, [], revisit=FINAL, why=f"after a {status}, no wait: ")
            expect_outcome(delivery, ("failed", 1, status, None), revisit=FINAL)


@pytest.mark.task(4)
async def test_every_attempt_carries_the_same_id_and_the_same_bytes(receivers, clock, sleep):
    """Three attempts, one delivery: one webhook-id, one body."""
    receiver = receivers.at(URL).will(503, httpx.ReadTimeout, 204)
    await send(a_delivery(), clock=clock, sleep=sleep, revisit=RETRY)
    expect_attempts(receiver, 3, revisit=RETRY, why="503, a timeout, then 204")
    sent_ids = [request.headers.get("webhook-id") for request in receiver.requests]
    assert sent_ids == [ID] * 3, lesson(
        expected=f"the delivery's id on every attempt: {[ID] * 3}",
        got=f"{sent_ids}",
        revisit="task 4: a new id on a retry looks like a new delivery, and a receiver that got the first one "
        "(its answer lost, or too late) does the work twice (README: One id for every attempt)",
    )
    bodies = {request.content for request in receiver.requests}
    assert len(bodies) == 1, lesson(
        expected="the same bytes on every attempt", got=f"{len(bodies)} different bodies", revisit=SAME
    )


@pytest.mark.task(4)
async def test_every_attempt_is_stamped_and_signed_at_the_time_it_is_sent(receivers, clock, sleep):
    """Attempts at T, T+1 s, T+3 s: each with its own timestamp, and a signature that matches it."""
    receiver = receivers.at(URL).will(503, 503, 204)
    await send(a_delivery(), clock=clock, sleep=sleep, revisit=RETRY)
    expect_attempts(receiver, 3, revisit=RETRY, why="503, 503, then 204")
    stamps = [request.headers.get("webhook-timestamp") for request in receiver.requests]
    wanted = [str(T0), str(T0 + 1), str(T0 + 3)]
    assert stamps == wanted, lesson(
        expected=f"the time of each attempt: {wanted}",
        got=f"{stamps}",
        revisit="task 4: the timestamp is the time of the attempt, read again for each: a receiver refuses one "
        "older than five minutes, and a delivery can be retried for longer than that (README: Checking a signature)",
    )
    for number, request in enumerate(receiver.requests, start=1):
        right = reference_signature(SECRET, ID, request.headers["webhook-timestamp"], request.content)
        assert request.headers.get("webhook-signature") == right, lesson(
            expected=f"attempt {number} signed with its own timestamp: {right}",
            got=repr(request.headers.get("webhook-signature")),
            revisit=HEADERS,
        )


#: Retry policies (RetryPolicy's fields; the others keep their defaults), and the waits each makes between attempts
#: that all fail.
POLICIES = {
    "cap reached exactly": ({"attempts": 7, "first_delay": 0.5, "max_delay": 4.0}, [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]),
    "cap between doublings": ({"attempts": 6, "first_delay": 1.0, "max_delay": 5.0}, [1.0, 2.0, 4.0, 5.0, 5.0]),
    "a longer first delay": ({"attempts": 3, "first_delay": 3.0, "max_delay": 30.0}, [3.0, 6.0]),
    "one attempt only": ({"attempts": 1}, []),
    "default cap": ({"attempts": 8}, [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]),
}


@pytest.mark.task(4)
async def test_the_policy_sets_the_attempts_the_first_wait_and_the_cap(receivers, fresh_sleep):
    """Waits double from the first delay up to the cap, and stay there; attempts stop at the policy's count."""
    numbers = itertools.count(1)

    async def check(case: tuple[dict[str, Any], list[float]]) -> None:
        policy, waits = case
        receiver = receivers.at(f"{URL}/{next(numbers)}").will(502)
        delivery, sleep = a_delivery(receiver.url), fresh_sleep()
        await send(delivery, clock=sleep.clock, sleep=sleep, revisit=BACKOFF, policy=webhooks.RetryPolicy(**policy))
        expect_attempts(
            receiver, policy["attempts"], revisit=BACKOFF, why=f"the policy's {policy['attempts']} attempts"
        )
        expect_waits(sleep, waits, revisit=BACKOFF, why=f"with {policy}: ")
        expect_outcome(delivery, ("failed", policy["attempts"], 502, None), revisit=RETRY, why=f"with {policy}: ")

    await every_case(POLICIES, check, what="policies", revisit=BACKOFF)


@pytest.mark.task(4)
async def test_while_it_waits_the_delivery_says_how_far_it_got(receivers, clock, sleep):
    """At each wait the record is up to date: still pending, the attempts so far, the last outcome."""
    receivers.at(URL).will(503, httpx.ConnectError, 204)
    delivery = a_delivery()
    sleep.watch = lambda: (delivery.status, delivery.attempts, delivery.last_status, delivery.last_error)
    await send(delivery, clock=clock, sleep=sleep, revisit=RETRY)
    wanted = [("pending", 1, 503, None), ("pending", 2, None, "ConnectError")]
    assert sleep.seen == wanted, lesson(
        expected=f"while it waits, (status, attempts, last_status, last_error): {wanted}",
        got=f"{sleep.seen}",
        revisit="task 4: someone may ask how a delivery is going while it waits to try again: its record says "
        "how many attempts were made and how the last one went (README: Try again, but not for ever)",
    )
    expect_outcome(delivery, ("delivered", 3, 204, None), revisit=RETRY)


# ---------------------------------------------------------------- task 5: slow down when asked

TOO_MANY = (
    "task 5: a 429 asks the sender to slow down: it is tried again, after the wait its Retry-After asks for in "
    "seconds, or the backoff if it asks for none (README: Backoff, and Retry-After)"
)
CAPPED = (
    "task 5: a Retry-After is honoured up to the policy's limit, a minute by default, and no further "
    "(README: Backoff, and Retry-After)"
)
NOT_SECONDS = (
    "task 5: only a whole number of seconds is honoured; a date, a fraction, a negative or text means the "
    "usual backoff, never a crash (README: Backoff, and Retry-After)"
)


#: The statuses that mean come back later, whose Retry-After is read.
COME_BACK_LATER = by_name(429, 503)


@pytest.mark.task(5)
async def test_a_429_or_503_is_tried_again_after_the_seconds_its_retry_after_asks(receivers, fresh_sleep):
    """Retry-After: 7 on a 429 or a 503: the next attempt comes 7 s later, not after the backoff."""

    async def check(status: int) -> None:
        receiver = receivers.at(f"{URL}/{status}").will((status, {"Retry-After": "7"}), 204)
        delivery, sleep = a_delivery(receiver.url), fresh_sleep()
        await send(delivery, clock=sleep.clock, sleep=sleep, revisit=TOO_MANY)
        expect_attempts(receiver, 2, revisit=TOO_MANY, why=f"{status} with Retry-After 7, then 204")
        expect_waits(sleep, [7.0], revisit=TOO_MANY, why=f"after a {status} with Retry-After 7: ")
        expect_outcome(
            delivery, ("delivered", 2, 204, None), revisit=TOO_MANY, why=f"{status} with Retry-After 7, then 204: "
        )

    await every_case(COME_BACK_LATER, check, what="statuses that say come back later", revisit=TOO_MANY)


@pytest.mark.task(5)
async def test_a_429_without_retry_after_waits_the_backoff(receivers, clock, sleep):
    """No Retry-After: the same waits as any failure worth another try, 1 s then 2 s."""
    receiver = receivers.at(URL).will(429, 429, 204)
    delivery = a_delivery()
    await send(delivery, clock=clock, sleep=sleep, revisit=TOO_MANY)
    expect_attempts(receiver, 3, revisit=TOO_MANY, why="429, 429, then 204")
    expect_waits(sleep, [1.0, 2.0], revisit=TOO_MANY)
    expect_outcome(delivery, ("delivered", 3, 204, None), revisit=TOO_MANY)


#: Retry-After values of a 429, the policy's max_retry_after (None: the default), and the wait they make.
RETRY_AFTERS = {
    "0": ("0", None, 0.0),
    "60": ("60", None, 60.0),
    "61 capped": ("61", None, 60.0),
    "a day capped": ("86400", None, 60.0),
    "at a lower cap": ("10", 10.0, 10.0),
    "past a lower cap": ("11", 10.0, 10.0),
}


@pytest.mark.task(5)
async def test_retry_after_is_honoured_up_to_the_policys_cap(receivers, fresh_sleep):
    """Up to max_retry_after (60 s by default) exactly as asked; anything longer waits the cap."""
    numbers = itertools.count(1)

    async def check(case: tuple[str, float | None, float]) -> None:
        value, limit, wait = case
        receiver = receivers.at(f"{URL}/{next(numbers)}").will((429, {"Retry-After": value}), 204)
        policy = None if limit is None else webhooks.RetryPolicy(max_retry_after=limit)
        sleep = fresh_sleep()
        await send(a_delivery(receiver.url), clock=sleep.clock, sleep=sleep, revisit=CAPPED, policy=policy)
        expect_attempts(receiver, 2, revisit=TOO_MANY, why=f"429 with Retry-After {value}, then 204")
        cap = "the default cap of 60 s" if limit is None else f"a cap of {limit:g} s"
        expect_waits(sleep, [wait], revisit=CAPPED, why=f"Retry-After {value} with {cap}: ")

    await every_case(RETRY_AFTERS, check, what="Retry-After values", revisit=CAPPED)


#: Retry-After values that are no whole number of seconds (one of them as raw bytes: a superscript digit in UTF-8).
NOT_WHOLE_SECONDS: dict[str, str | bytes] = {
    "text": "soon",
    "fraction": "1.5",
    "negative": "-1",
    "empty": "",
    "HTTP-date": "Tue, 06 Jan 2026 09:00:00 GMT",
    "superscript digit": "³".encode(),
}


@pytest.mark.task(5)
async def test_a_retry_after_that_is_not_whole_seconds_means_the_usual_backoff(receivers, fresh_sleep):
    """Text, a fraction, a negative, nothing, or an HTTP-date: the backoff's 1 s then 2 s, and no error."""
    numbers = itertools.count(1)

    async def check(value: str | bytes) -> None:
        receiver = receivers.at(f"{URL}/{next(numbers)}")
        receiver.will((429, {"Retry-After": value}), (503, {"Retry-After": value}), 204)
        delivery, sleep = a_delivery(receiver.url), fresh_sleep()
        await send(delivery, clock=sleep.clock, sleep=sleep, revisit=NOT_SECONDS)
        expect_attempts(receiver, 3, revisit=NOT_SECONDS, why=f"429 and 503 with Retry-After {value!r}, then 204")
        expect_waits(sleep, [1.0, 2.0], revisit=NOT_SECONDS, why=f"for Retry-After {value!r}: ")
        expect_outcome(delivery, ("delivered", 3, 204, None), revisit=NOT_SECONDS, why=f"for Retry-After {value!r}: ")

    await every_case(NOT_WHOLE_SECONDS, check, what="Retry-After values that are no whole seconds", revisit=NOT_SECONDS)


#: 5xx statuses other than 503: their Retry-After means nothing.
OTHER_5XX = by_name(500, 502, 504)
IGNORED = (
    "task 5: Retry-After is read on a 429 and a 503, whose meaning is come back later; on another 5xx the backoff "
    "decides (README: Backoff, and Retry-After)"
)


@pytest.mark.task(5)
async def test_retry_after_on_another_5xx_is_ignored(receivers, fresh_sleep):
    """Only a 429 or a 503 is read for Retry-After; any other 5xx waits the backoff."""

    async def check(status: int) -> None:
        receiver = receivers.at(f"{URL}/{status}").will((status, {"Retry-After": "7"}), 204)
        sleep = fresh_sleep()
        await send(a_delivery(receiver.url), clock=sleep.clock, sleep=sleep, revisit=TOO_MANY)
        expect_attempts(receiver, 2, revisit=RETRY, why=f"{status}, then 204")
        expect_waits(sleep, [1.0], revisit=IGNORED, why=f"after a {status} with Retry-After 7: ")

    await every_case(OTHER_5XX, check, what="other 5xx statuses", revisit=IGNORED)


@pytest.mark.task(5)
async def test_a_receiver_that_keeps_answering_429_gets_five_attempts_and_no_more(receivers, clock, sleep):
    """429 with Retry-After: 2, every time: five attempts, four waits of 2 s, then failed."""
    receiver = receivers.at(URL).will((429, {"Retry-After": "2"}))
    delivery = a_delivery()
    await send(delivery, clock=clock, sleep=sleep, revisit=TOO_MANY)
    expect_attempts(receiver, 5, revisit=TOO_MANY, why="the policy's five attempts, whatever the receiver asks")
    expect_waits(sleep, [2.0, 2.0, 2.0, 2.0], revisit=TOO_MANY)
    expect_outcome(delivery, ("failed", 5, 429, None), revisit=TOO_MANY)


# ---------------------------------------------------------------- task 6: the API

API = (
    "task 6: subscriptions keep URLs, an event makes one delivery per subscriber, and each delivery can be looked "
    "up by its id (README: Subscriptions, events and deliveries)"
)
VALID = (
    "task 6: a body is checked against its model before anything is kept or sent, and a bad one is a 422 "
    "(README: Subscriptions, events and deliveries)"
)
AFTER = (
    "task 6: each delivery is a background task, sent after the response, so the client is answered at once "
    "(README: What a webhook is)"
)


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client over ``app``, whose lifespan runs (start-up, then shutdown) around it."""
    async with LifespanManager(app, startup_timeout=BOUND, shutdown_timeout=BOUND) as manager:
        transport = httpx.ASGITransport(app=CatchAppErrors(manager.app))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


async def post(client, path: str, body: object, *, revisit: str) -> httpx.Response:
    __tracebackhide__ = True
    return await within_bound(client.post(path, json=body), revisit=revisit)


async def get(client, path: str, *, revisit: str) -> httpx.Response:
    __tracebackhide__ = True
    return await within_bound(client.get(path), revisit=revisit)


async def subscribe(client, url: str, *, revisit: str = API) -> None:
    __tracebackhide__ = True
    response = await post(client, "/subscriptions", {"url": url}, revisit=revisit)
    expect_status(response, 201, expected=f"201 Created for the subscription of {url}", revisit=API)


def record_of(number: int, url: str, *outcome: object) -> dict[str, Any]:
    """The JSON of delivery ``number``: its id and URL, then status, attempts, last_status, last_error."""
    status, attempts, last_status, last_error = outcome
    return {
        "id": str(delivery_id(number)),
        "url": url,
        "status": status,
        "attempts": attempts,
        "last_status": last_status,
        "last_error": last_error,
    }


@pytest.mark.task(6)
async def test_a_subscription_is_answered_201_with_its_id_and_its_url(client):
    """Ids count from 1, in order; the URL comes back as it will be called."""
    urls = [URL, "http://127.0.0.1:8080/hooks?source=shop", "https://bücher.example/hooks"]
    called = [URL, "http://127.0.0.1:8080/hooks?source=shop", "https://xn--bcher-kva.example/hooks"]
    for number, (url, as_called) in enumerate(zip(urls, called, strict=True), start=1):
        response = await post(client, "/subscriptions", {"url": url}, revisit=API)
        expect_status(response, 201, expected=f"201 Created for {url}", revisit=API)
        expect_json(
            response,
            {"id": number, "url": as_called},
            expected=f'{{"id": {number}, "url": "{as_called}"}}: the next id, and the URL as pydantic normalized it',
            revisit=API,
        )


BAD_SUBSCRIPTIONS = [
    {},
    {"url": None},
    {"url": 42},
    {"url": ""},
    {"url": "not a url"},
    {"url": "partner.example/hooks"},
    {"url": "ftp://partner.example/hooks"},
    {"url": "javascript:alert(1)"},
    {"url": "mailto:hooks@partner.example"},
    {"url": "file:///etc/passwd"},
    {"url": "https://partner.example/" + "x" * 2060},
    [],
    "https://partner.example/hooks",
    None,
]


@pytest.mark.task(6)
async def test_a_subscription_without_an_http_url_is_a_422(client):
    """No url, not a URL, no scheme, not http or https, 2084 characters, a body that is no object: 422 each."""
    for body in BAD_SUBSCRIPTIONS:
        response = await post(client, "/subscriptions", body, revisit=VALID)
        shown = f"{body!r}" if len(f"{body!r}") < 80 else f"a URL of {len(body['url'])} characters"
        expect_status(response, 422, expected=f"422 Unprocessable Content for {shown}", revisit=VALID)


@pytest.mark.task(6)
async def test_a_url_of_2083_characters_is_accepted(client):
    """The limit itself is allowed."""
    url = "https://partner.example/" + "x" * 2059
    assert len(url) == 2083, lesson(expected="2083", got=str(len(url)), revisit=VALID)
    response = await post(client, "/subscriptions", {"url": url}, revisit=VALID)
    expect_status(response, 201, expected="201 Created for a URL of 2083 characters", revisit=VALID)


@pytest.mark.task(6)
async def test_an_event_makes_one_delivery_per_subscriber_in_order(client, receivers, clock):
    """202 with the deliveries' ids, one per subscription, oldest first; each gets the event's payload."""
    first, second = receivers.at(URL), receivers.at(ELSEWHERE)
    await subscribe(client, URL)
    await subscribe(client, ELSEWHERE)
    clock.advance(30)
    data = {"order": 1042, "customer": "Zoë Ångström"}
    response = await post(client, "/events", {"type": "order.shipped", "data": data}, revisit=API)
    expect_status(response, 202, revisit=API)
    wanted_ids = [str(delivery_id(1)), str(delivery_id(2))]
    expect_json(
        response,
        {"deliveries": wanted_ids},
        expected=f'{{"deliveries": {json.dumps(wanted_ids)}}}: one id from new_id per subscription, oldest first',
        revisit=API,
    )
    for receiver, number in ((first, 1), (second, 2)):
        expect_attempts(receiver, 1, revisit=API, why="one delivery of the event, answered 204")
        request = receiver.requests[0]
        assert request.headers.get("webhook-id") == str(delivery_id(number)), lesson(
            expected=f"the delivery's id {delivery_id(number)} in webhook-id",
            got=repr(request.headers.get("webhook-id")),
            revisit=API,
        )
        try:
            sent = json.loads(request.content)
        except ValueError:
            sent = request.content[:100]
        expect_type(sent, dict, what="the payload sent", revisit=API)
        expect_type(sent.get("timestamp"), str, what="the payload's timestamp", revisit=API)
        when = _parsed(sent["timestamp"])
        sent = {**sent, "timestamp": when}
        wanted = {"type": "order.shipped", "timestamp": EPOCH + timedelta(seconds=30), "data": data}
        assert sent == wanted, lesson(
            expected=f"the payload type, timestamp (the time of the event, ISO 8601 with its offset) and data: "
            f"{wanted}",
            got=f"{sent}",
            revisit=API,
        )


def _parsed(text: str) -> datetime | str:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return f"not ISO 8601: {text!r}"
    if when.utcoffset() != timedelta(0):
        return f"{text!r}, without the UTC offset"
    return when


@pytest.mark.task(6)
async def test_each_delivery_is_sent_after_the_response(started_app, timeline, receivers):
    """The client is answered before the first attempt goes out."""
    receivers.at(URL)
    subscribed = await within_bound(
        timeline.request(started_app, "POST", "/subscriptions", json={"url": URL}), revisit=API
    )
    expect_status(subscribed, 201, revisit=API)
    published = await within_bound(
        timeline.request(started_app, "POST", "/events", json={"type": "order.shipped", "data": {}}), revisit=API
    )
    expect_status(published, 202, revisit=API)
    responses = [event for event in timeline.events if event.name == RESPONSE_COMPLETE]
    first = timeline.first(ATTEMPT)
    assert first is not None and responses[-1].seq < first.seq, (
        lesson(
            expected="the event's response complete, then the first attempt",
            got="no attempt at all" if first is None else "the attempt first: the client waited for it",
            revisit=AFTER,
        )
        + timeline.render()
    )


@pytest.mark.task(6)
async def test_an_event_with_no_subscribers_is_accepted_and_sends_nothing(client, receivers):
    """No subscription: 202 with no deliveries, and no request."""
    response = await post(client, "/events", {"type": "order.shipped", "data": {"order": 1}}, revisit=API)
    expect_status(response, 202, revisit=API)
    expect_json(response, {"deliveries": []}, revisit=API)
    assert not receivers.requests, lesson(expected="no request", got=f"{receivers.requests}", revisit=API)


BAD_EVENTS = [
    {"data": {}},
    {"type": "order.shipped"},
    {"type": "", "data": {}},
    {"type": "x" * 101, "data": {}},
    {"type": "é" * 101, "data": {}},
    {"type": None, "data": {}},
    {"type": 42, "data": {}},
    {"type": "order.shipped", "data": None},
    {"type": "order.shipped", "data": []},
    {"type": "order.shipped", "data": "x"},
    {"type": "order.shipped", "data": 42},
    [],
    "order.shipped",
    None,
]


@pytest.mark.task(6)
async def test_a_bad_event_is_a_422_and_sends_nothing(client, receivers):
    """A missing field, a type outside 1 to 100 characters, data that is not an object, a body that is none."""
    receivers.at(URL)
    await subscribe(client, URL, revisit=VALID)
    for body in BAD_EVENTS:
        response = await post(client, "/events", body, revisit=VALID)
        shown = f"{body!r}" if len(f"{body!r}") < 80 else f"a type of {len(body['type'])} characters"
        expect_status(response, 422, expected=f"422 Unprocessable Content for {shown}", revisit=VALID)
        assert not receivers.requests, lesson(
            expected=f"nothing sent for a refused event: {shown}",
            got=f"{len(receivers.requests)} request(s)",
            revisit=VALID,
        )


@pytest.mark.task(6)
async def test_an_event_type_of_1_to_100_characters_is_accepted_as_it_is(client, receivers):
    """Both limits are allowed, and a character is a character, accented or not."""
    receiver = receivers.at(URL)
    await subscribe(client, URL, revisit=VALID)
    for event_type in ("x", "x" * 100, "é" * 100, "commande.expédiée"):
        response = await post(client, "/events", {"type": event_type, "data": {}}, revisit=VALID)
        expect_status(response, 202, expected=f"202 Accepted for a type of {len(event_type)} characters", revisit=VALID)
        sent = json.loads(receiver.requests[-1].content) if receiver.requests else {}
        assert sent.get("type") == event_type, lesson(
            expected=f"the type as given: {event_type!r}", got=repr(sent.get("type")), revisit=API
        )


@pytest.mark.task(6)
async def test_the_event_time_is_read_once_when_the_event_is_posted(client, receivers, clock):
    """Retried a second later, the payload still says when the event happened; the header says when it was sent."""
    receiver = receivers.at(URL).will(503, 204)
    await subscribe(client, URL)
    response = await post(client, "/events", {"type": "order.shipped", "data": {}}, revisit=API)
    expect_status(response, 202, revisit=API)
    expect_attempts(receiver, 2, revisit=RETRY, why="503, then 204")
    stamps = [_parsed(json.loads(request.content).get("timestamp", "")) for request in receiver.requests]
    assert stamps == [EPOCH, EPOCH], lesson(
        expected=f"the time of the event, {EPOCH.isoformat()}, in both attempts' payloads",
        got=f"{stamps}",
        revisit="task 6: the payload's timestamp is when the event happened, read once when it is posted; "
        "the webhook-timestamp header is when each attempt was sent (README: One id for every attempt)",
    )
    headers = [request.headers.get("webhook-timestamp") for request in receiver.requests]
    assert headers == [str(T0), str(T0 + 1)], lesson(
        expected=f"the header at the time of each attempt: {[str(T0), str(T0 + 1)]}", got=f"{headers}", revisit=HEADERS
    )


@pytest.mark.task(6)
async def test_a_delivery_can_be_looked_up_by_its_id(client, receivers):
    """GET /deliveries/{id}: its id, URL, status, attempts and last outcome."""
    receivers.at(URL).will(503, 204)
    await subscribe(client, URL)
    await post(client, "/events", {"type": "order.shipped", "data": {}}, revisit=API)
    response = await get(client, f"/deliveries/{delivery_id(1)}", revisit=API)
    expect_status(response, 200, revisit=API)
    wanted = record_of(1, URL, "delivered", 2, 204, None)
    expect_json(response, wanted, expected=json.dumps(wanted), revisit=API)


@pytest.mark.task(6)
async def test_a_delivery_is_pending_until_it_is_sent(started_app, client, timeline, background_gate, receivers):
    """Between the 202 and the first attempt, the delivery is there, pending, with no attempt yet."""
    receivers.at(URL)
    await subscribe(client, URL)
    held = timeline.start(background_gate.wrap(started_app), "POST", "/events", json={"type": "t", "data": {}})
    try:
        await timeline.wait_for("background tasks held")
        response = await get(client, f"/deliveries/{delivery_id(1)}", revisit=API)
        expect_status(
            response,
            200,
            expected="200: the delivery is kept when the event is accepted, before it is sent",
            revisit=API,
        )
        expect_json(response, record_of(1, URL, "pending", 0, None, None), revisit=API)
    finally:
        background_gate.open()
    await within_bound(held, revisit=API)


#: How a receiver is down (its answer every time), and the record its delivery ends with.
DOWN = {
    "503 every time": (503, ("failed", 5, 503, None)),
    "refused every time": (httpx.ConnectError, ("failed", 5, None, "ConnectError")),
}


@pytest.mark.task(6)
async def test_a_receiver_that_is_down_is_on_record_as_failed(fresh_app, receivers):
    """After the five attempts, GET says failed, with the last status or the last error.

    Each case runs an app of its own: an event goes to every subscriber, so the receivers of
    two cases subscribed to one app would each get the other's deliveries.
    """

    async def check(case: tuple[int | type[httpx.TransportError], tuple[str, int, int | None, str | None]]) -> None:
        answer, record = case
        said = f"{answer}" if isinstance(answer, int) else answer.__name__
        receiver = receivers.at(f"{URL}/{said}").will(answer)
        async with serving(fresh_app()) as client:
            await subscribe(client, receiver.url)
            response = await post(client, "/events", {"type": "order.shipped", "data": {}}, revisit=API)
            expect_status(response, 202, revisit=API)
            found = await get(client, f"/deliveries/{delivery_id(1)}", revisit=API)
        wanted = record_of(1, receiver.url, *record)
        expect_json(found, wanted, expected=f"{json.dumps(wanted)}, for a receiver that answers {said}", revisit=API)

    await every_case(DOWN, check, what="receivers that are down", revisit=API)


@pytest.mark.task(6)
# One case, and no input of the spec's own: it gives the policy fixture the value the app is built with.
@pytest.mark.parametrize("policy", [{"attempts": 3, "first_delay": 0.5}], ids=["3 attempts from half a second"])
async def test_every_delivery_follows_the_apps_own_policy(receivers, client, sleep, policy):
    """An app built with a policy of its own hands that policy to each delivery, not the default."""
    receiver = receivers.at(URL).will(503)
    await subscribe(client, URL)
    response = await post(client, "/events", {"type": "order.shipped", "data": {}}, revisit=API)
    expect_status(response, 202, revisit=API)
    expect_attempts(receiver, 3, revisit=API, why=f"the app's policy, {policy}: three attempts")
    expect_waits(sleep, [0.5, 1.0], revisit=API, why="the app's policy, a first delay of half a second: ")
    found = await get(client, f"/deliveries/{delivery_id(1)}", revisit=API)
    expect_json(found, record_of(1, URL, "failed", 3, 503, None), revisit=API)


@pytest.mark.task(6)
async def test_an_unknown_delivery_is_a_404_and_a_malformed_id_a_422(client):
    """An id no delivery has: 404 that says which; something that is not a UUID: 422."""
    unknown = delivery_id(999)
    response = await get(client, f"/deliveries/{unknown}", revisit=API)
    expect_status(response, 404, revisit=API)
    expect_json(response, {"detail": f"no delivery {unknown}"}, revisit=API)
    for malformed in ("42", "abc", "5eb1a7e5-0000-4000-8000-00000000000g"):
        response = await get(client, f"/deliveries/{malformed}", revisit=API)
        expect_status(
            response,
            422,
            expected=f"422 Unprocessable Content for {malformed!r}, which is not a UUID",
            revisit="task 6: an id declared as a UUID is checked by FastAPI, which answers 422 for anything else "
            "(README: Subscriptions, events and deliveries)",
        )


# ---------------------------------------------------------------- task 7: one client, real sockets

SHARED = (
    "task 7: one client for the app's whole life keeps its connection to a receiver open between deliveries "
    "and reuses it; a client per delivery opens a new one every time (README: One client for the app's life)"
)
CLOSED = (
    "task 7: the app opens its client when it starts and closes it when it shuts down, so no connection outlives "
    "it (README: One client for the app's life)"
)
REAL = (
    "task 7: a real receiver gets the same signed JSON, over a real connection (README: One client for the app's life)"
)


def expect_genuine(request: Any, number: int) -> None:
    __tracebackhide__ = True
    right = reference_signature(
        SECRET, str(delivery_id(number)), request.headers.get("webhook-timestamp", ""), request.body
    )
    assert request.headers.get("webhook-signature") == right, lesson(
        expected=f"a signature the receiver accepts: {right}",
        got=repr(request.headers.get("webhook-signature")),
        revisit=REAL,
    )


@pytest.mark.task(7)
async def test_a_delivery_reaches_a_real_receiver_signed(loopback, client):
    """Over a socket on 127.0.0.1: a POST of the JSON, with the three headers, and a signature that checks out."""
    await subscribe(client, loopback.url)
    response = await post(client, "/events", {"type": "order.shipped", "data": {"order": 7}}, revisit=REAL)
    expect_status(response, 202, revisit=REAL)
    assert len(loopback.requests) == 1, lesson(
        expected="one request read by the receiver", got=f"{len(loopback.requests)}", revisit=REAL
    )
    request = loopback.requests[0]
    assert (request.method, request.path) == ("POST", "/hooks"), lesson(
        expected="POST /hooks", got=f"{request.method} {request.path}", revisit=REAL
    )
    expect_genuine(request, 1)
    found = await get(client, f"/deliveries/{delivery_id(1)}", revisit=REAL)
    expect_json(found, record_of(1, loopback.url, "delivered", 1, 204, None), revisit=REAL)


@pytest.mark.task(7)
async def test_deliveries_to_one_receiver_share_one_connection(loopback, client):
    """Three events, three deliveries, one connection: the client's pool keeps it open and reuses it."""
    await subscribe(client, loopback.url)
    for order in (1, 2, 3):
        response = await post(client, "/events", {"type": "order.shipped", "data": {"order": order}}, revisit=SHARED)
        expect_status(response, 202, revisit=SHARED)
    ports = [request.port for request in loopback.requests]
    assert len(ports) == 3, lesson(expected="three requests read by the receiver", got=f"{ports}", revisit=REAL)
    assert len(set(ports)) == 1, lesson(
        expected="the three deliveries over one connection (one client port)",
        got=f"{len(set(ports))} connections, from the ports {ports}: a new client, and so a new connection, "
        "for each delivery",
        revisit=SHARED,
    )


@pytest.mark.task(7)
async def test_the_client_is_closed_when_the_app_shuts_down(loopback, app):
    """While the app runs its connection stays open; once it has shut down, the receiver sees it closed."""
    async with serving(app) as client:
        await subscribe(client, loopback.url)
        for order in (1, 2):
            response = await post(client, "/events", {"type": "t", "data": {"order": order}}, revisit=CLOSED)
            expect_status(response, 202, revisit=CLOSED)
        ports = sorted({request.port for request in loopback.requests})
        assert len(ports) == 1 and ports[0] in loopback.open_ports, lesson(
            expected="while the app runs, one connection to the receiver, still open",
            got=f"connections from {ports}, open now: {sorted(loopback.open_ports)}",
            revisit=SHARED,
        )
    closed = await loopback.wait_until_closed(ports[0])
    assert closed, lesson(
        expected="once the app has shut down, its connection to the receiver closed",
        got=f"still open {BOUND:g} s after the shutdown: the client was never closed",
        revisit=CLOSED,
    )


@pytest.mark.task(7)
async def test_a_receiver_that_refuses_connections_is_tried_five_times_then_failed(refusing_url, client, sleep):
    """A port where nobody listens: five refused connections, the backoff between them, then failed."""
    await subscribe(client, refusing_url)
    response = await post(client, "/events", {"type": "order.shipped", "data": {}}, revisit=REAL)
    expect_status(response, 202, revisit=REAL)
    expect_waits(sleep, [1.0, 2.0, 4.0, 8.0], revisit=RETRY)
    found = await get(client, f"/deliveries/{delivery_id(1)}", revisit=REAL)
    expect_json(found, record_of(1, refusing_url, "failed", 5, None, "ConnectError"), revisit=RETRY)


@pytest.mark.task(7)
async def test_a_real_receiver_that_answers_503_is_tried_five_times_then_failed(loopback, client, sleep):
    """Five requests read by the receiver, all answered 503, then failed; the connection is reused throughout."""
    loopback.will(503)
    await subscribe(client, loopback.url)
    response = await post(client, "/events", {"type": "order.shipped", "data": {}}, revisit=REAL)
    expect_status(response, 202, revisit=REAL)
    assert len(loopback.requests) == 5, lesson(
        expected="five requests read by the receiver", got=f"{len(loopback.requests)}", revisit=RETRY
    )
    for number, request in enumerate(loopback.requests, start=1):
        assert request.headers.get("webhook-id") == str(delivery_id(1)), lesson(
            expected=f"attempt {number} with the delivery's id",
            got=repr(request.headers.get("webhook-id")),
            revisit=SAME,
        )
    expect_waits(sleep, [1.0, 2.0, 4.0, 8.0], revisit=RETRY)
    found = await get(client, f"/deliveries/{delivery_id(1)}", revisit=REAL)
    expect_json(found, record_of(1, loopback.url, "failed", 5, 503, None), revisit=RETRY)
