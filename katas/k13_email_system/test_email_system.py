"""Specs for kata 13: an email system.

Run them with

    uv run pytest katas/k13_email_system

Each spec names the README task it checks. Edit signup.py, not this file (nor
conftest.py beside it, which holds the real SMTP server, the fake sender and the store
that says when it stores).

Which specs use what: tasks 1, 2 and 4 call your functions directly; task 3 talks to a
real SMTP server on 127.0.0.1; tasks 5 and 6 drive the app with a fake sender, except
two specs of task 5 that send through your SmtpSender to the real server (and to one
that is down).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from dataclasses import dataclass
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

import aiosmtplib  # noqa: F401 - the kata's stack, imported while pytest collects rather than inside the first spec
import email_validator  # noqa: F401 - the same (pydantic's EmailStr)
import fastapi  # noqa: F401 - the same
import jinja2  # noqa: F401 - the same
import pydantic.v1  # noqa: F401 - the same: FastAPI imports it when it builds its first app (about 1 s uncompiled)
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from dojo.fakes import EPOCH, FakeClock
from dojo.impl import kata_module
from dojo.plugin import KataClient
from dojo.teach import expect_json, expect_status, expect_type, lesson
from dojo.timeline import BOUND, RESPONSE_COMPLETE, CatchAppErrors, StillRunningError, every_case, within_bound

signup = kata_module("k13_email_system", "signup")

pytestmark = [
    pytest.mark.leaks(
        revisit="task 3: one connection per message, closed once the server has it, whatever happened "
        "(README: An SMTP conversation)"
    ),
    # A socket or transport the code dropped without closing makes Python warn when it is
    # collected, with a message that names no task and no idea. The specs say it better: the
    # server's side of each conversation (QUIT, closed) and the leak check, with a lesson.
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
]

SECRET = "kata 13: the app's secret key"  # noqa: S105 - a spec's key, it signs nothing real
BASE_URL = "https://bookshop.example"
SHOP = ("Ada's Bookshop", "hello@bookshop.example")
DAY = 24 * 60 * 60
IDS = [UUID(f"00000000-0000-4000-8000-{number:012d}") for number in range(1, 21)]
ID_SHAPE = re.compile(r"^[A-Za-z0-9_.-]+$")

PLAIN = "Ada Lovelace"
ACCENTED = "Zoë Ångström"
#: Names that are markup if pasted into HTML as they are.
MARKUP = {
    "a bold tag": "Ada <b>Lovelace</b>",
    "a script": '<script>alert("pwned")</script>',
    "a link": '<a href="https://evil.example/login">Confirm here</a>',
    "entities and quotes": "I &lt;3 books & \"quotes\" 'too'",
}
SCRIPT = MARKUP["a script"]
#: Names beyond ASCII: accents, another script, an emoji.
BEYOND_ASCII = {"accented": ACCENTED, "CJK": "李小龍", "an emoji": "Émilie 😀 O'Brien"}
#: Names that break a header glued together as text, or need encoding.
ADDRESS_NAMES = {
    "plain": PLAIN,
    "a comma": "Lovelace, Ada",
    "accented": ACCENTED,
    "quotes": 'Ada "the Countess" Lovelace',
    "CJK": "李小龍",
    "markup": "<b>Ada</b> & Co",
}
#: Names whose message must be two alternatives: plain, accented, markup.
ALTERNATIVE_NAMES = {"plain": PLAIN, "accented": ACCENTED, "a script": SCRIPT}

# ---------------------------------------------------------------- reading mail as a client does


class Mail:
    """A message as a mail client reads it: parsed from its bytes by the standard library.

    Parsed once, when first looked at; what a spec reads of it is kept (the email package
    parses a header again each time it is asked for one).
    """

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._bodies: dict[str, str | None] = {}

    @functools.cached_property
    def message(self) -> EmailMessage:
        return BytesParser(policy=policy.default).parsebytes(self.raw)

    @property
    def headers(self) -> bytes:
        return re.split(rb"\r?\n\r?\n", self.raw, maxsplit=1)[0]

    def addresses(self, name: str) -> list[tuple[str, str]]:
        header = self.message[name]
        if header is None:
            return []
        return [(address.display_name, address.addr_spec) for address in getattr(header, "addresses", ())]

    @property
    def subject(self) -> str | None:
        value = self.message["Subject"]
        return None if value is None else str(value)

    @functools.cached_property
    def parts(self) -> list[str]:
        """The content types of the message's leaves, in order."""
        return [part.get_content_type() for part in self.message.walk() if not part.is_multipart()]

    def body(self, kind: str) -> str | None:
        if kind not in self._bodies:
            part = self.message.get_body(preferencelist=(kind,))
            found = None
            if part is not None and part.get_content_type() == f"text/{kind}":
                found = part.get_content().replace("\r\n", "\n")  # on the wire lines end in CRLF
            self._bodies[kind] = found
        return self._bodies[kind]


def read_mail(raw: bytes) -> Mail:
    return Mail(raw)


class _Page(HTMLParser):
    """What a mail client makes of an HTML body: its elements, its links, the text it shows."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.links: list[str | None] = []
        self.words: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "a":
            self.links.append(dict(attrs).get("href"))

    def handle_data(self, data: str) -> None:
        self.words.append(data)


@dataclass(frozen=True)
class Page:
    """An HTML body as a mail client shows it."""

    tags: tuple[str, ...]
    links: tuple[str | None, ...]
    text: str


def read_html(html: str) -> Page:
    page = _Page()
    page.feed(html)
    page.close()
    return Page(tuple(page.tags), tuple(page.links), " ".join(" ".join(page.words).split()))


#: The elements of the HTML template, and nothing else: a name never adds one.
TEMPLATE_TAGS = ("html", "body", "p", "p", "a", "p")


def the_link(text: str) -> str | None:
    found = re.findall(r"https?://\S+", text)
    return found[0] if len(found) == 1 else None


# ---------------------------------------------------------------- task 1: templates

RENDER = "task 1: both bodies come from the templates, with the name and the link (README: Render the confirmation)"
ESCAPE_HTML = (
    "task 1: in the HTML body a name is text to show, never markup to obey, so the template engine escapes "
    "what goes into HTML templates (README: Escape for HTML, not for text)"
)
TEXT_AS_TYPED = (
    "task 1: a plain-text body and a subject are not HTML: escaping them shows the reader ampersand codes "
    "instead of the name (README: Escape for HTML, not for text)"
)
LINK = "https://bookshop.example/users/00000000-0000-4000-8000-000000000001/confirm?token=abc.DEF-12_x"


def rendered(name: str, link: str = LINK) -> Any:
    __tracebackhide__ = True
    result = signup.render_confirmation(name, link)
    expect_type(result, signup.Rendered, what="what rendering gives", revisit=RENDER)
    for part in ("subject", "text", "html"):
        expect_type(getattr(result, part), str, what=f"the rendered {part}", revisit=RENDER)
    return result


@pytest.mark.task(1)
async def test_the_subject_and_both_bodies_greet_the_person_and_carry_the_link():
    """Subject 'Confirm your address, <name>'; the text greets by name with the link; the HTML links to it."""
    result = rendered(PLAIN)
    assert result.subject == f"Confirm your address, {PLAIN}", lesson(
        expected=f"the subject 'Confirm your address, {PLAIN}'", got=repr(result.subject), revisit=RENDER
    )
    assert f"Hello {PLAIN}," in result.text and the_link(result.text) == LINK, lesson(
        expected=f"a text body that says 'Hello {PLAIN},' and holds the link, once",
        got=repr(result.text[:400]),
        revisit=RENDER,
    )
    assert "<" not in result.text, lesson(
        expected="a plain-text body, with no markup in it",
        got=repr(result.text[:400]),
        revisit="task 1: the text body is rendered from the text template, the HTML body from the HTML one "
        "(README: Render the confirmation)",
    )
    page = read_html(result.html)
    assert page.tags == TEMPLATE_TAGS and page.links == (LINK,) and f"Hello {PLAIN}," in page.text, lesson(
        expected=f"the HTML template's page: elements {TEMPLATE_TAGS}, one link to the confirmation, 'Hello {PLAIN},'",
        got=f"elements {page.tags}, links {page.links}, text {page.text[:200]!r}",
        revisit=RENDER,
    )


@pytest.mark.task(1)
async def test_the_html_body_shows_a_name_as_text_and_never_as_markup():
    """A name with <, >, & and quotes: a mail client shows it letter for letter, and it adds no element or link."""

    async def check(name: str) -> None:
        page = read_html(rendered(name).html)
        assert page.tags == TEMPLATE_TAGS and page.links == (LINK,), lesson(
            expected=f"only the template's elements {TEMPLATE_TAGS} and its one link, whatever the name ({name!r})",
            got=f"elements {page.tags}, links {page.links}: the name {name!r} became markup",
            revisit=ESCAPE_HTML,
        )
        assert f"Hello {name}," in page.text, lesson(
            expected=f"a mail client shows 'Hello {name},'",
            got=f"it shows {page.text[:200]!r}",
            revisit=ESCAPE_HTML,
        )

    await every_case(MARKUP, check, what="names that are markup", revisit=ESCAPE_HTML)


@pytest.mark.task(1)
async def test_the_text_body_and_the_subject_show_a_name_exactly_as_typed():
    """The same names stay as they are in the plain-text body and the subject: no ampersand codes there."""

    async def check(name: str) -> None:
        result = rendered(name)
        assert f"Hello {name}," in result.text, lesson(
            expected=f"the text body says 'Hello {name},'", got=repr(result.text[:300]), revisit=TEXT_AS_TYPED
        )
        assert result.subject == f"Confirm your address, {name}", lesson(
            expected=f"the subject {f'Confirm your address, {name}'!r}",
            got=repr(result.subject),
            revisit=TEXT_AS_TYPED,
        )

    await every_case(MARKUP, check, what="names that are markup", revisit=TEXT_AS_TYPED)


@pytest.mark.task(1)
async def test_names_beyond_ascii_render_as_they_are():
    """Accents, other scripts and emoji: the same letters in the subject, the text and what the HTML shows."""

    async def check(name: str) -> None:
        result = rendered(name)
        page = read_html(result.html)
        got = (result.subject, f"Hello {name}," in result.text, f"Hello {name}," in page.text)
        assert got == (f"Confirm your address, {name}", True, True), lesson(
            expected=f"{name!r} unchanged in the subject, the text body and the HTML body",
            got=f"subject {result.subject!r}; text {result.text[:120]!r}; HTML shows {page.text[:120]!r}",
            revisit=RENDER,
        )

    await every_case(BEYOND_ASCII, check, what="names beyond ASCII", revisit=RENDER)


@pytest.mark.task(1)
async def test_a_link_with_an_ampersand_is_the_same_link_in_both_bodies():
    """A link with & in its query: the text holds it as it is, and the HTML link leads to exactly it."""
    link = "https://bookshop.example/confirm?token=abc.def&lang=en"
    result = rendered(PLAIN, link)
    page = read_html(result.html)
    assert the_link(result.text) == link and page.links == (link,), lesson(
        expected=f"the link {link!r} in the text, and an HTML link leading to it",
        got=f"text: {the_link(result.text)!r}; HTML links: {page.links}",
        revisit=ESCAPE_HTML,
    )


# ---------------------------------------------------------------- task 2: the message

COMPOSE = (
    "task 2: a message a mail client reads: the shop's address, the person's, the subject, and both bodies "
    "as alternatives (README: What a mail client reads)"
)
ADDRESSES = (
    "task 2: an address header is built from the name and the address as two parts, so the name is quoted "
    "or encoded as it needs; text glued together breaks on a comma, a quote or an accent "
    "(README: What a mail client reads)"
)
ASCII_HEADERS = (
    "task 2: headers travel as plain ASCII, with accents and other scripts in encoded words, so that any "
    "server carries them (README: What a mail client reads)"
)
ALTERNATIVES = (
    "task 2: the two bodies are alternatives of one message, plainest first, because a mail client shows the "
    "last one it can (README: What a mail client reads)"
)


def composed(name: str, email: str = "ada@example.com", link: str = LINK) -> Mail:
    __tracebackhide__ = True
    message = signup.compose(name, email, link)
    expect_type(message, EmailMessage, what="what compose gives", revisit=COMPOSE)
    return read_mail(message.as_bytes())


@pytest.mark.task(2)
async def test_every_header_is_plain_ascii_so_any_server_carries_it():
    """A name beyond ASCII travels in encoded words: the header block is 7-bit, the client decodes it back."""

    async def check(name: str) -> None:
        mail = composed(name)
        assert mail.headers.isascii(), lesson(
            expected=f"every header line in plain ASCII (the name {name!r} as an encoded word)",
            got=f"raw bytes in the headers: {mail.headers[:300]!r}",
            revisit=ASCII_HEADERS,
        )
        assert mail.subject == f"Confirm your address, {name}", lesson(
            expected=f"the client decodes the subject back to {f'Confirm your address, {name}'!r}",
            got=repr(mail.subject),
            revisit=ASCII_HEADERS,
        )

    await every_case(BEYOND_ASCII, check, what="names beyond ASCII", revisit=ASCII_HEADERS)


@pytest.mark.task(2)
async def test_the_message_is_from_the_shop_to_the_person_with_the_subject():
    """From the shop, to exactly one address with the person's name, the subject: as a mail client parses them."""

    async def check(name: str) -> None:
        mail = composed(name, "zoe@example.com")
        assert mail.addresses("From") == [SHOP], lesson(
            expected=f"From: the shop, {SHOP} (for the name {name!r})", got=f"{mail.addresses('From')}", revisit=COMPOSE
        )
        assert mail.addresses("To") == [(name, "zoe@example.com")], lesson(
            expected=f"To: one address, {name!r} at zoe@example.com",
            got=f"{mail.addresses('To')} (the header: {mail.message['To']!r})",
            revisit=ADDRESSES,
        )
        assert mail.subject == f"Confirm your address, {name}", lesson(
            expected=f"the subject {f'Confirm your address, {name}'!r}", got=repr(mail.subject), revisit=COMPOSE
        )

    await every_case(ADDRESS_NAMES, check, what="names in an address", revisit=ADDRESSES)


@pytest.mark.task(2)
async def test_the_bodies_are_alternatives_text_first_then_html():
    """multipart/alternative: the text part, then the HTML part, UTF-8, the rendered bodies."""

    async def check(name: str) -> None:
        mail = composed(name)
        content_type = mail.message.get_content_type()
        assert content_type == "multipart/alternative" and mail.parts == ["text/plain", "text/html"], lesson(
            expected=f"for the name {name!r}, a multipart/alternative message with two parts: text/plain, then "
            "text/html",
            got=f"{content_type} with parts {mail.parts}",
            revisit=ALTERNATIVES,
        )
        charsets = [part.get_content_charset() for part in mail.message.iter_parts()]
        assert charsets == ["utf-8", "utf-8"], lesson(
            expected=f"both parts in UTF-8 (for the name {name!r})", got=f"charsets {charsets}", revisit=ALTERNATIVES
        )
        result = rendered(name)
        text, html = mail.body("plain"), mail.body("html")
        assert text is not None and html is not None and read_html(html) == read_html(result.html), lesson(
            expected=f"the HTML part is the rendered HTML body (for the name {name!r})",
            got=f"{(html or 'no HTML part')[:300]!r}",
            revisit=COMPOSE,
        )
        assert text.strip() == result.text.strip(), lesson(
            expected=f"the text part is the rendered text body (for the name {name!r})",
            got=f"{text[:300]!r}",
            revisit=COMPOSE,
        )

    await every_case(ALTERNATIVE_NAMES, check, what="names in a message of two alternatives", revisit=ALTERNATIVES)


# ---------------------------------------------------------------- task 3: SMTP

SMTP = (
    "task 3: one conversation per message with the server: connect, hand the message over, QUIT, close "
    "(README: An SMTP conversation)"
)
NO_BLOCKING = (
    "task 3: every wait for the server must let the event loop run: a client that awaits, or a blocking one "
    "in a worker thread, never a blocking call on the loop (README: Waiting for the server without blocking "
    "the loop)"
)
SEND_ERROR = (
    "task 3: whatever keeps the server from taking the message, unreachable or refusing, the sender says so "
    "with the one error the app knows (README: When the mail server is down)"
)


def a_message(to: str = "zoe@example.com", name: str = ACCENTED) -> EmailMessage:
    """A message the spec builds itself, so task 3 does not depend on tasks 1 and 2."""
    message = EmailMessage()
    message["From"] = Address(display_name=SHOP[0], addr_spec=SHOP[1])
    message["To"] = Address(display_name=name, addr_spec=to)
    message["Subject"] = f"Confirm your address, {name}"
    message.set_content(f"Hello {name},\n\n{LINK}\n")
    message.add_alternative(f'<p>Hello Zo&euml;, <a href="{LINK}">confirm</a></p>', subtype="html")
    return message


async def send(sender: Any, message: EmailMessage, *, revisit: str) -> BaseException | None:
    """Send through the learner's sender, at most BOUND s; what it raised, or None."""
    __tracebackhide__ = True
    try:
        await within_bound(sender.send(message), revisit=revisit, expected="the send finished")
    except StillRunningError:
        raise
    except Exception as error:  # noqa: BLE001 - what the sender raises is what the spec judges
        return error
    return None


async def closed(smtp: Any, count: int, *, expected: str) -> None:
    """Wait (at most BOUND s) until the server has seen ``count`` connections close; fail with a lesson if not."""
    __tracebackhide__ = True
    if not await smtp.until_closed(count, BOUND):
        raise AssertionError(
            lesson(expected=expected, got=f"not within {BOUND:g} s\n{smtp.timeline.render()}", revisit=SMTP)
        )


def smtp_sender(smtp: Any) -> Any:
    return signup.SmtpSender(smtp.host, smtp.port)


@pytest.mark.task(3)
async def test_a_message_reaches_the_server_and_arrives_as_it_was_sent(smtp):
    """The envelope names the shop and the person; the bytes parse back to the same headers and bodies."""
    message = a_message()
    error = await send(smtp_sender(smtp), message, revisit=SMTP)
    assert error is None, lesson(expected="the message sent", got=f"{type(error).__name__}: {error}", revisit=SMTP)
    assert len(smtp.received) == 1, lesson(
        expected="one message received by the server, by the time the send returns",
        got=f"{len(smtp.received)}\n{smtp.timeline.render()}",
        revisit=SMTP,
    )
    assert smtp.timeline.count(smtp.QUIT) == 1, lesson(
        expected="the conversation ended with QUIT before the send returned",
        got=f"no QUIT\n{smtp.timeline.render()}",
        revisit=SMTP,
    )
    await closed(smtp, 1, expected="the connection closed once the message was sent")
    got = smtp.received[0]
    assert (got.mail_from, got.rcpt_tos) == (SHOP[1], ("zoe@example.com",)), lesson(
        expected=f"the envelope: from {SHOP[1]} to zoe@example.com",
        got=f"from {got.mail_from!r} to {got.rcpt_tos}",
        revisit="task 3: the server delivers by the envelope, which the client takes from the From and To "
        "headers (README: An SMTP conversation)",
    )
    mail, sent = read_mail(got.content), read_mail(message.as_bytes())
    seen = (mail.addresses("From"), mail.addresses("To"), mail.subject, mail.body("plain"), mail.body("html"))
    wanted = (sent.addresses("From"), sent.addresses("To"), sent.subject, sent.body("plain"), sent.body("html"))
    assert seen == wanted, lesson(expected=f"{wanted}", got=f"{seen}", revisit=SMTP)


@pytest.mark.task(3)
async def test_each_message_is_one_conversation_that_ends_with_quit_and_a_closed_connection(smtp):
    """Two messages: two connections, each ended politely (QUIT) and closed, none left open."""
    sender = smtp_sender(smtp)
    for to in ("ada@example.com", "grace@example.com"):
        error = await send(sender, a_message(to), revisit=SMTP)
        assert error is None, lesson(expected="the message sent", got=f"{error!r}", revisit=SMTP)
    await closed(smtp, 2, expected="both connections closed once their message was sent")
    counts = {event: smtp.timeline.count(event) for event in (smtp.OPENED, smtp.RECEIVED, smtp.QUIT)}
    assert counts == dict.fromkeys(counts, 2) and smtp.connections == 0, lesson(
        expected="2 connections opened, 2 messages, 2 QUIT, none still open",
        got=f"{counts}, {smtp.connections} still open\n{smtp.timeline.render()}",
        revisit=SMTP,
    )


@pytest.mark.task(3)
async def test_the_event_loop_keeps_running_while_the_server_takes_its_time(smtp):
    """The server holds its answer to DATA: meanwhile this spec, on the same event loop, runs and lets it go."""
    smtp.hold = True
    sending = asyncio.ensure_future(smtp_sender(smtp).send(a_message()))
    held = asyncio.ensure_future(smtp.timeline.wait_for(smtp.HELD))
    try:
        await asyncio.wait({sending, held}, timeout=BOUND, return_when=asyncio.FIRST_COMPLETED)
        assert held.done() and not held.cancelled() and held.exception() is None, lesson(
            expected="the message handed over, the server holding its answer",
            got=f"the send ended first: {sending.exception()!r}" if sending.done() else "neither happened in time",
            revisit=SMTP,
        )
        smtp.timeline.record("the spec ran while the server held the message")
        smtp.release()
        await within_bound(sending, revisit=NO_BLOCKING, expected="the send finished")
    finally:
        held.cancel()
        smtp.release()
    gave_up = smtp.timeline.first(smtp.GAVE_UP)
    assert gave_up is None, lesson(
        expected="while the server held the message, the event loop went on running: this spec let it go",
        got=f"the event loop was frozen for the {smtp.HOLD_LIMIT:g} s the server held it; nothing else ran\n"
        f"{smtp.timeline.render()}",
        revisit=NO_BLOCKING,
    )


@pytest.mark.task(3)
async def test_a_server_that_cannot_be_reached_is_a_send_error(dead_port):
    """Connection refused (nothing listens there): the sender raises the kata's SendError, promptly."""
    error = await send(signup.SmtpSender("127.0.0.1", dead_port), a_message(), revisit=SEND_ERROR)
    assert isinstance(error, signup.SendError), lesson(
        expected="a SendError, the one error the app catches",
        got=f"{type(error).__name__}: {error}" if error else "nothing raised: the message silently lost",
        revisit=SEND_ERROR,
    )
    assert f"127.0.0.1:{dead_port}" in str(error), lesson(
        expected=f"a message that names the server, 127.0.0.1:{dead_port}, for whoever reads it",
        got=repr(str(error)),
        revisit="task 3: the error says which server did not take the message, and why "
        "(README: When the mail server is down)",
    )


@pytest.mark.task(3)
async def test_a_refused_recipient_is_a_send_error_and_the_conversation_still_ends(smtp):
    """The server answers 550 for the recipient: SendError, and the connection is closed all the same."""
    error = await send(smtp_sender(smtp), a_message(f"nobody@{smtp.REFUSED_DOMAIN}"), revisit=SEND_ERROR)
    assert isinstance(error, signup.SendError), lesson(
        expected="a SendError: the server refused the only recipient",
        got=f"{type(error).__name__}: {error}" if error else "nothing raised: the message silently lost",
        revisit=SEND_ERROR,
    )
    await closed(smtp, 1, expected="the connection closed after the refusal")
    assert smtp.received == [] and smtp.connections == 0, lesson(
        expected="no message kept, no connection left open",
        got=f"{len(smtp.received)} message(s), {smtp.connections} connection(s) open",
        revisit=SMTP,
    )


# ---------------------------------------------------------------- task 4: tokens

TOKENS = "task 4: a token holds the user's id, signed, and gives it back (README: A signed token, not a secret one)"
EXPIRY = (
    "task 4: a token is valid up to its maximum age, counted on the clock you were given from the moment it "
    "was issued, and expired one second later (README: How itsdangerous reads the time)"
)
INVALID = (
    "task 4: a token that was changed, or signed with another key or for another purpose, is not one of ours "
    "(README: A signed token, not a secret one)"
)


def fixed_time_signer(timestamp: int) -> type[TimestampSigner]:
    class Fixed(TimestampSigner):
        def get_timestamp(self) -> int:
            return timestamp

    return Fixed


def forged(payload: object, *, secret: str = SECRET, salt: str | None = "email-confirmation") -> str:
    """A token made here, at the fake clock's start, with this secret and salt (None: itsdangerous's default)."""
    options: dict[str, Any] = {"signer": fixed_time_signer(int(EPOCH.timestamp()))}
    if salt is not None:
        options["salt"] = salt
    return URLSafeTimedSerializer(secret, **options).dumps(payload)


def issued(tokens: Any, user_id: UUID) -> str:
    __tracebackhide__ = True
    token = tokens.issue(user_id)
    expect_type(token, str, what="the token", revisit=TOKENS)
    return token


def checked(tokens: Any, token: str) -> UUID | BaseException:
    """What check says of a token: the id, or the exception it raised."""
    try:
        result = tokens.check(token)
    except Exception as error:  # noqa: BLE001 - the spec judges what was raised
        return error
    expect_type(result, UUID, what="what check gives for a valid token", revisit=TOKENS)
    return result


def shown(outcome: object) -> str:
    return f"{type(outcome).__name__}: {outcome}" if isinstance(outcome, BaseException) else f"valid, user {outcome}"


@pytest.fixture(name="clock")
def _clock() -> FakeClock:
    return FakeClock(EPOCH)


@pytest.fixture(name="tokens")
def _tokens(clock: FakeClock) -> Any:
    return signup.Tokens(SECRET, clock)


@pytest.mark.task(4)
async def test_a_token_gives_back_the_user_it_was_issued_for(tokens):
    """Each user's token is URL-safe text, differs from the others', and gives back that user's id."""
    first, second = issued(tokens, IDS[0]), issued(tokens, IDS[1])
    assert first != second and ID_SHAPE.match(first) and ID_SHAPE.match(second), lesson(
        expected="two different tokens, each of letters, digits and - _ . only (safe in a link)",
        got=f"{first!r} and {second!r}",
        revisit=TOKENS,
    )
    outcomes = (checked(tokens, first), checked(tokens, second))
    assert outcomes == (IDS[0], IDS[1]), lesson(
        expected=f"the first gives {IDS[0]}, the second {IDS[1]}",
        got=f"{shown(outcomes[0])}; {shown(outcomes[1])}",
        revisit=TOKENS,
    )


@pytest.mark.task(4)
async def test_a_token_is_an_itsdangerous_url_safe_timed_token_with_the_kata_salt(tokens, clock):
    """The README's format: the id as text, signed with the secret and the salt, stamped with the clock's time."""
    clock.advance(3600)
    token = issued(tokens, IDS[0])
    try:
        payload, stamped = URLSafeTimedSerializer(SECRET, salt="email-confirmation").loads(token, return_timestamp=True)
    except Exception as error:  # noqa: BLE001 - a token that does not load is the finding
        raise AssertionError(
            lesson(expected="a token the README's format loads", got=f"{type(error).__name__}: {error}", revisit=TOKENS)
        ) from None
    assert (payload, stamped) == (str(IDS[0]), clock.now()), lesson(
        expected=f"the payload {str(IDS[0])!r}, stamped {clock.now()} (the clock's time at issue)",
        got=f"{payload!r}, stamped {stamped}",
        revisit=EXPIRY,
    )


#: The maximum age a signer is given (None: none, its default of a day).
MAX_AGES = {"default, one day": None, "60 s": 60}


@pytest.mark.task(4)
async def test_a_token_is_valid_at_its_maximum_age_and_expired_one_second_later():
    """Issued at T: still valid at T + max age, expired at T + max age + 1, on the clock given."""

    async def check(max_age: int | None) -> None:
        clock = FakeClock(EPOCH)  # a clock of its own: each case starts at the same moment
        tokens = signup.Tokens(SECRET, clock) if max_age is None else signup.Tokens(SECRET, clock, max_age=max_age)
        limit = DAY if max_age is None else max_age
        token = issued(tokens, IDS[0])
        clock.advance(limit)
        at_limit = checked(tokens, token)
        clock.advance(1)
        past = checked(tokens, token)
        assert at_limit == IDS[0], lesson(
            expected=f"valid {limit} s after it was issued (its maximum age)", got=shown(at_limit), revisit=EXPIRY
        )
        assert isinstance(past, signup.TokenExpiredError), lesson(
            expected=f"TokenExpiredError {limit + 1} s after it was issued", got=shown(past), revisit=EXPIRY
        )

    await every_case(MAX_AGES, check, what="maximum ages", revisit=EXPIRY)


@pytest.mark.task(4)
async def test_the_age_counts_from_the_moment_the_token_was_issued(clock):
    """Tokens made an hour after the signer was: valid a day after THEIR issue, expired a second later."""
    tokens = signup.Tokens(SECRET, clock)
    clock.advance(3600)
    token = issued(tokens, IDS[2])
    clock.advance(DAY)
    at_limit = checked(tokens, token)
    clock.advance(1)
    past = checked(tokens, token)
    assert at_limit == IDS[2] and isinstance(past, signup.TokenExpiredError), lesson(
        expected="valid one day after it was issued, expired one second later",
        got=f"after a day: {shown(at_limit)}; a second later: {shown(past)}",
        revisit=EXPIRY,
    )


def tampered(token: str) -> list[tuple[str, str]]:
    payload, stamp, signature = token.rsplit(".", 2)  # a compressed payload starts with a dot of its own

    def flip(text: str, at: int) -> str:
        return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]

    return [
        ("a letter of the signature changed", f"{payload}.{stamp}.{flip(signature, 3)}"),
        ("a letter of the payload changed", f"{flip(payload, 3)}.{stamp}.{signature}"),
        ("the timestamp changed", f"{payload}.{flip(stamp, 1)}.{signature}"),
        ("the signature cut short", f"{payload}.{stamp}.{signature[:-4]}"),
        ("the signature dropped", f"{payload}.{stamp}"),
    ]


@pytest.mark.task(4)
async def test_a_token_that_was_tampered_with_is_invalid(tokens):
    """Any change to the payload, the timestamp or the signature: TokenInvalidError."""
    token = issued(tokens, IDS[0])
    for how, changed in tampered(token):
        outcome = checked(tokens, changed)
        assert isinstance(outcome, signup.TokenInvalidError), lesson(
            expected=f"TokenInvalidError for a token with {how}", got=shown(outcome), revisit=INVALID
        )


#: Tokens signed by someone else, or for something else: the key, the salt (None: itsdangerous's default), and why.
OTHER_SIGNERS = {
    "other purpose": (SECRET, "password-reset", "signed with the app's key for another purpose"),
    "no salt": (SECRET, None, "signed with the app's key and itsdangerous's default salt"),
    "other key": ("another app's key", "email-confirmation", "signed with another key"),
}


@pytest.mark.task(4)
async def test_a_token_signed_with_another_key_or_for_another_purpose_is_invalid(tokens):
    """Valid-looking, fresh, the right id inside: still not a confirmation token of this app."""

    async def check(case: tuple[str, str | None, str]) -> None:
        secret, salt, why = case
        outcome = checked(tokens, forged(str(IDS[0]), secret=secret, salt=salt))
        assert isinstance(outcome, signup.TokenInvalidError), lesson(
            expected=f"TokenInvalidError for a token {why}", got=shown(outcome), revisit=INVALID
        )

    await every_case(OTHER_SIGNERS, check, what="tokens signed by another key or for another purpose", revisit=INVALID)


#: Anything a client can put in a link that is no token of ours.
GARBAGE = {
    "empty": "",
    "words": "not a token",
    "three parts": "a.b.c",
    "dots": "...",
    "accent": "é",
    "long": "x" * 2000,
    "looks right": "eyJhIjoxfQ.aZ1vgA.abc",
}


@pytest.mark.task(4)
async def test_garbage_is_an_invalid_token_not_a_crash(tokens):
    """Anything a client can put in a link: TokenInvalidError, never another exception."""

    async def check(token: str) -> None:
        outcome = checked(tokens, token)
        assert isinstance(outcome, signup.TokenInvalidError), lesson(
            expected=f"TokenInvalidError for the token {token[:40]!r}", got=shown(outcome), revisit=INVALID
        )

    await every_case(GARBAGE, check, what="tokens that are garbage", revisit=INVALID)


#: Payloads, signed with the app's key and salt, that are no user id.
NOT_USER_IDS = {"number": 42, "text": "not an id", "null": None, "object": {"id": str(IDS[0])}}


@pytest.mark.task(4)
async def test_a_token_of_ours_whose_payload_is_not_a_user_id_is_invalid(tokens):
    """Signed with the right key and salt, but holding no user id: TokenInvalidError, not a crash."""

    async def check(payload: object) -> None:
        outcome = checked(tokens, forged(payload))
        assert isinstance(outcome, signup.TokenInvalidError), lesson(
            expected=f"TokenInvalidError: the payload {payload!r} is not a user id", got=shown(outcome), revisit=INVALID
        )

    await every_case(NOT_USER_IDS, check, what="payloads that are no user id", revisit=INVALID)


# ---------------------------------------------------------------- task 5: the app

REGISTER = (
    "task 5: a sign-up is stored and answered 201 with the user; the confirmation email goes after the "
    "response (README: Store first, then send)"
)
ORDER = (
    "task 5: store the user before you answer, and send only after: the link must work the moment the email "
    "arrives, and the client must not wait for the mail server (README: Store first, then send)"
)
VALIDATE = (
    "task 5: a name of 1 to 100 characters without control characters, and a valid address: anything else "
    "is a 422 and sends nothing (README: Register, then send in the background)"
)
DOWN = (
    "task 5: when the mail server does not take the email, the user stays, the email is recorded as failed "
    "and one warning is logged (README: When the mail server is down)"
)
DEFAULTS = (
    "task 5: built without a store, ids or an address, the app keeps a store of its own, gives random ids "
    "and links to the address it is served at by default (README: Register, then send in the background)"
)
LINK_FROM_CONFIG = (
    "task 5: the link is built from the address the app was given, never from what the request says about "
    "its host, which any client can write (README: Register, then send in the background)"
)

VALID = {"name": ACCENTED, "email": "zoe@example.com"}


def user_json(user_id: UUID, name: str, email: str, *, confirmed: bool = False, status: str = "pending") -> dict:
    return {"id": str(user_id), "name": name, "email": email, "confirmed": confirmed, "confirmation_email": status}


@pytest.fixture(name="new_id")
def _new_id() -> Any:
    ids = iter(IDS)
    return lambda: next(ids)


@pytest.fixture(name="app")
def _app(sender, clock, users, new_id):
    """The kata's app with the fake sender."""
    return signup.create_app(
        sender=sender, secret_key=SECRET, clock=clock, users=users, new_id=new_id, base_url=BASE_URL
    )


@pytest.fixture(name="log")
def _log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger=signup.logger.name)
    return caplog


async def call(client: Any, method: str, path: str, *, revisit: str, **kwargs: Any) -> Any:
    __tracebackhide__ = True
    return await within_bound(client.request(method, path, **kwargs), revisit=revisit)


async def register(client: Any, *, revisit: str = REGISTER, **body: Any) -> Any:
    __tracebackhide__ = True
    return await call(client, "POST", "/users", json=body or VALID, revisit=revisit)


def body_of(response: Any, *, revisit: str) -> dict:
    __tracebackhide__ = True
    return expect_type(response.json(), dict, what="the JSON body", revisit=revisit)


def the_sent(sender: Any, count: int = 1, *, revisit: str) -> list[Mail]:
    __tracebackhide__ = True
    assert len(sender.sent) == count, lesson(
        expected=f"{count} email(s) handed to the sender", got=f"{sender!r}", revisit=revisit
    )
    for message in sender.sent:
        expect_type(message, EmailMessage, what="what the app hands the sender", revisit=COMPOSE)
    return [read_mail(message.as_bytes()) for message in sender.sent]


def link_in(mail: Mail, *, revisit: str) -> str:
    """The confirmation link: the one link of the text part, the same as the one link of the HTML part."""
    __tracebackhide__ = True
    text, html = mail.body("plain") or "", mail.body("html") or ""
    in_text, in_html = the_link(text), read_html(html).links
    assert in_text is not None and in_html == (in_text,), lesson(
        expected="one link in the text part, and the same one in the HTML part",
        got=f"text: {in_text!r}; HTML: {in_html}",
        revisit=revisit,
    )
    return in_text


@pytest.mark.task(5)
async def test_a_sign_up_is_answered_201_with_the_user_and_the_email_then_goes_out(client, sender):
    """201 with the user (pending); after the background work GET /users/{id} says the email was sent."""
    response = await register(client)
    expect_status(response, 201, expected="201 Created", revisit=REGISTER)
    expect_json(response, user_json(IDS[0], ACCENTED, "zoe@example.com"), revisit=REGISTER)
    found = await call(client, "GET", f"/users/{IDS[0]}", revisit=REGISTER)
    expect_status(found, 200, revisit=REGISTER)
    expect_json(found, user_json(IDS[0], ACCENTED, "zoe@example.com", status="sent"), revisit=REGISTER)
    mail = the_sent(sender, revisit=REGISTER)[0]
    assert mail.addresses("To") == [(ACCENTED, "zoe@example.com")], lesson(
        expected=f"the email to {ACCENTED} at zoe@example.com", got=f"{mail.addresses('To')}", revisit=REGISTER
    )


@pytest.mark.task(5)
async def test_the_user_is_stored_before_the_response_and_the_email_sent_after_it(app, timeline, users, sender):
    """On the timeline: the user stored, then the response complete, then the email sent."""
    done = await within_bound(timeline.start(app, "POST", "/users", json=VALID), revisit=ORDER)
    expect_status(done, 201, revisit=REGISTER)
    timeline.expect_order(
        users.STORED,
        RESPONSE_COMPLETE,
        sender.SENT,
        why="The user must exist before anyone can click the link, and the client must not wait for the mail.",
        revisit=ORDER,
    )


@pytest.mark.task(5)
async def test_the_email_links_to_this_apps_address_whatever_host_the_request_names(client, sender):
    """The link is the configured base URL + /users/{id}/confirm?token=…, even with a forged Host header."""
    forged_hosts = {"host": "evil.example", "x-forwarded-host": "evil.example", "forwarded": "host=evil.example"}
    response = await call(client, "POST", "/users", json=VALID, headers=forged_hosts, revisit=REGISTER)
    expect_status(response, 201, revisit=REGISTER)
    link = link_in(the_sent(sender, revisit=REGISTER)[0], revisit=LINK_FROM_CONFIG)
    parts = urlsplit(link)
    token = parts.query.removeprefix("token=")
    assert f"{parts.scheme}://{parts.netloc}" == BASE_URL and parts.path == f"/users/{IDS[0]}/confirm", lesson(
        expected=f"a link to {BASE_URL}/users/{IDS[0]}/confirm?token=…", got=repr(link), revisit=LINK_FROM_CONFIG
    )
    assert parts.query.startswith("token=") and ID_SHAPE.match(token), lesson(
        expected="one query parameter, token, holding the signed token", got=repr(parts.query), revisit=REGISTER
    )


BAD_SIGN_UPS = [
    ("no name", {"email": "zoe@example.com"}),
    ("no email", {"name": ACCENTED}),
    ("an empty name", {"name": "", "email": "zoe@example.com"}),
    ("a name of 101 characters", {"name": "A" * 101, "email": "zoe@example.com"}),
    ("a name of 101 accented characters", {"name": "é" * 101, "email": "zoe@example.com"}),
    ("a header injected in the name", {"name": "Zoë\r\nBcc: everyone@example.com", "email": "zoe@example.com"}),
    ("a line break in the name", {"name": "Zoë\nÅngström", "email": "zoe@example.com"}),
    ("a tab in the name", {"name": "Zoë\tÅngström", "email": "zoe@example.com"}),
    ("a NUL in the name", {"name": "Zoë\x00", "email": "zoe@example.com"}),
    ("a DEL in the name", {"name": "Zoë\x7f", "email": "zoe@example.com"}),
    ("a next-line control in the name", {"name": "Zoë\x85", "email": "zoe@example.com"}),
    ("a malformed address", {"name": ACCENTED, "email": "not-an-address"}),
    ("a header injected in the address", {"name": ACCENTED, "email": "zoe@example.com\r\nBcc: all@example.com"}),
    ("a null address", {"name": ACCENTED, "email": None}),
    ("a number for the name", {"name": 42, "email": "zoe@example.com"}),
    ("a null body", None),
    ("a list for a body", []),
    ("a string for a body", "Zoë"),
]


@pytest.mark.task(5)
async def test_a_bad_sign_up_is_a_422_and_sends_nothing(client, sender):
    """A missing field, a name outside 1 to 100 characters or with a control character, a bad address, no object."""
    for what, body in BAD_SIGN_UPS:
        response = await call(client, "POST", "/users", json=body, revisit=VALIDATE)
        expect_status(response, 422, expected=f"422 Unprocessable Content for {what}: {body!r}"[:200], revisit=VALIDATE)
    assert sender.attempts == 0, lesson(expected="no email for a rejected sign-up", got=f"{sender!r}", revisit=VALIDATE)


@pytest.mark.task(5)
async def test_a_name_of_1_to_100_characters_is_accepted_as_it_is(client, sender):
    """Both limits accepted, counted in characters (not bytes); the user and the email carry the name unchanged."""
    names = ["A", "A" * 100, "é" * 100, "李" * 100, "Zoë O'Brien-Ångström", SCRIPT]
    for number, name in enumerate(names, start=1):
        response = await register(client, name=name, email="zoe@example.com", revisit=VALIDATE)
        expect_status(response, 201, expected=f"201 Created for a name of {len(name)} characters", revisit=VALIDATE)
        body = body_of(response, revisit=REGISTER)
        assert len(sender.sent) == number, lesson(
            expected=f"{number} email(s) handed to the sender", got=f"{sender!r}", revisit=REGISTER
        )
        # Read from the message itself: folding a long name into encoded words is slow, and tested in task 2.
        message = expect_type(sender.sent[-1], EmailMessage, what="what the app hands the sender", revisit=COMPOSE)
        part = message.get_body(preferencelist=("plain",))
        text = part.get_content() if part is not None else ""
        assert body.get("name") == name and f"Hello {name}," in text, lesson(
            expected=f"the name {name[:40]!r} as typed, in the answer and in the email",
            got=f"{body.get('name')!r}; {text[:200]!r}",
            revisit=REGISTER,
        )


@pytest.mark.task(5)
async def test_when_the_mail_server_is_down_the_user_stays_and_the_email_is_recorded_as_failed(client, sender, log):
    """201 all the same; nothing escapes; GET says failed; one WARNING naming the user's id, not the address."""
    sender.down = True
    response = await register(client)
    expect_status(response, 201, revisit=DOWN)
    assert client.app_errors == [], lesson(
        expected="the send error handled inside the task",
        got=f"{[repr(error) for error in client.app_errors]} escaped the background task",
        revisit=DOWN,
    )
    found = await call(client, "GET", f"/users/{IDS[0]}", revisit=DOWN)
    expect_json(found, user_json(IDS[0], ACCENTED, "zoe@example.com", status="failed"), revisit=DOWN)
    records = [(record.levelname, record.name, record.getMessage()) for record in log.records]
    warnings = [record for record in log.records if record.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING, lesson(
        expected="exactly one record at WARNING or above, and it is a WARNING: the email failed, the app is fine",
        got=f"{records}",
        revisit=DOWN,
    )
    message = warnings[0].getMessage()
    assert str(IDS[0]) in message and "zoe@example.com" not in message, lesson(
        expected=f"a warning that names user {IDS[0]}, and not their address (personal data stays out of logs)",
        got=repr(message),
        revisit=DOWN,
    )


@pytest.mark.task(5)
async def test_built_with_its_defaults_the_app_keeps_its_own_users_and_links_to_port_8000(sender, clock):
    """No store, ids or base URL given: a store of its own, random UUIDs, links to http://127.0.0.1:8000."""
    app = signup.create_app(sender=sender, secret_key=SECRET, clock=clock)
    async with KataClient(CatchAppErrors(app)) as client:
        bodies = []
        for email in ("ada@example.com", "grace@example.com"):
            response = await register(client, name=PLAIN, email=email, revisit=DEFAULTS)
            expect_status(response, 201, revisit=DEFAULTS)
            bodies.append(body_of(response, revisit=DEFAULTS))
        ids = [str(body.get("id")) for body in bodies]
        found = await call(client, "GET", f"/users/{ids[0]}", revisit=DEFAULTS)
    expect_status(found, 200, expected="200: the app keeps the users it made", revisit=DEFAULTS)
    versions = [UUID(user_id).version if re.fullmatch(r"[0-9a-f-]{36}", user_id) else None for user_id in ids]
    assert versions == [4, 4] and ids[0] != ids[1], lesson(
        expected="two different random UUIDs (version 4)", got=f"{ids}", revisit=DEFAULTS
    )
    link = link_in(the_sent(sender, 2, revisit=DEFAULTS)[0], revisit=DEFAULTS)
    assert link.startswith(f"http://127.0.0.1:8000/users/{ids[0]}/confirm?token="), lesson(
        expected="a link under http://127.0.0.1:8000, the address the app is served at by default",
        got=repr(link),
        revisit=DEFAULTS,
    )


@pytest.mark.task(5)
async def test_an_unknown_user_is_a_404_and_a_malformed_id_a_422(client):
    """GET /users/{id}: 404 with 'no user <id>' for an id nobody has; 422 for an id that is no UUID."""
    await register(client)
    unknown = IDS[5]
    response = await call(client, "GET", f"/users/{unknown}", revisit=REGISTER)
    expect_status(response, 404, revisit=REGISTER)
    expect_json(response, {"detail": f"no user {unknown}"}, revisit=REGISTER)
    for malformed in ("abc", "1", str(IDS[0])[:-1]):
        response = await call(client, "GET", f"/users/{malformed}", revisit=REGISTER)
        expect_status(
            response,
            422,
            expected=f"422 Unprocessable Content for {malformed!r}, which is not a UUID",
            revisit="task 5: declare the id as a UUID and FastAPI answers 422 for anything else "
            "(README: Register, then send in the background)",
        )


@pytest.mark.task(5)
async def test_with_the_real_server_the_email_arrives_as_a_mail_client_reads_it(smtp, clock, users, new_id):
    """End to end through your SmtpSender: one message, from the shop, to the person, both parts, the name escaped."""
    name = "Zoë <b>Ångström</b>"
    app = signup.create_app(
        sender=signup.SmtpSender(smtp.host, smtp.port),
        secret_key=SECRET,
        clock=clock,
        users=users,
        new_id=new_id,
        base_url=BASE_URL,
    )
    async with KataClient(CatchAppErrors(app)) as client:
        response = await register(client, name=name, email="zoe@example.com")
        expect_status(response, 201, revisit=REGISTER)
        found = await call(client, "GET", f"/users/{IDS[0]}", revisit=REGISTER)
    expect_json(found, user_json(IDS[0], name, "zoe@example.com", status="sent"), revisit=REGISTER)
    assert len(smtp.received) == 1 and smtp.received[0].rcpt_tos == ("zoe@example.com",), lesson(
        expected="one message at the server, for zoe@example.com",
        got=f"{[(got.mail_from, got.rcpt_tos) for got in smtp.received]}",
        revisit=REGISTER,
    )
    mail = read_mail(smtp.received[0].content)
    page = read_html(mail.body("html") or "")
    got = (mail.addresses("From"), mail.addresses("To"), mail.subject, mail.parts, page.tags)
    wanted = ([SHOP], [(name, "zoe@example.com")], f"Confirm your address, {name}", ["text/plain", "text/html"])
    assert got == (*wanted, TEMPLATE_TAGS) and f"Hello {name}," in page.text, lesson(
        expected=f"{wanted}, the HTML showing 'Hello {name},' as text",
        got=f"{got}; the HTML shows {page.text[:100]!r}",
        revisit=COMPOSE,
    )


@pytest.mark.task(5)
async def test_with_the_real_server_down_the_email_is_recorded_as_failed(dead_port, clock, users, new_id, log):
    """End to end through your SmtpSender to a port where nothing listens: 201, then 'failed', one warning."""
    app = signup.create_app(
        sender=signup.SmtpSender("127.0.0.1", dead_port),
        secret_key=SECRET,
        clock=clock,
        users=users,
        new_id=new_id,
        base_url=BASE_URL,
    )
    async with KataClient(CatchAppErrors(app)) as client:
        response = await register(client)
        expect_status(response, 201, revisit=DOWN)
        found = await call(client, "GET", f"/users/{IDS[0]}", revisit=DOWN)
        errors = client.app_errors
    expect_json(found, user_json(IDS[0], ACCENTED, "zoe@example.com", status="failed"), revisit=DOWN)
    warnings = [record.getMessage() for record in log.records if record.levelno >= logging.WARNING]
    assert errors == [] and len(warnings) == 1, lesson(
        expected="nothing escapes the task, and one warning", got=f"{errors}; {warnings}", revisit=DOWN
    )


# ---------------------------------------------------------------- task 6: confirming

CONFIRM = (
    "task 6: the link's token, valid and this user's, confirms the user; confirming again changes nothing "
    "and is no error (README: Confirm, and send again)"
)
CONFIRM_CODES = (
    "task 6: an unknown user is a 404, an expired link a 410, any other bad token a 400, each with its own "
    "message (README: Confirm, and send again)"
)
BOUND_TO_USER = (
    "task 6: a valid token confirms only the user whose id it holds: compare it with the user of the link "
    "(README: A signed token, not a secret one)"
)
AGAIN = (
    "task 6: a user who is not confirmed yet can ask for the email again, with a new link; a confirmed one "
    "cannot (README: Confirm, and send again)"
)
INVALID_LINK = {"detail": "this confirmation link is not valid"}
EXPIRED_LINK = {"detail": "this confirmation link has expired"}


def path_of(link: str) -> str:
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


async def signed_up(client: Any, sender: Any, count: int = 1, **body: Any) -> str:
    """Sign up; the path and query of the link in the newest email."""
    __tracebackhide__ = True
    response = await register(client, **body)
    expect_status(response, 201, revisit=REGISTER)
    return path_of(link_in(the_sent(sender, count, revisit=REGISTER)[-1], revisit=REGISTER))


async def expect_user(client: Any, user_id: UUID, *, confirmed: bool, revisit: str) -> None:
    __tracebackhide__ = True
    found = await call(client, "GET", f"/users/{user_id}", revisit=revisit)
    body = body_of(found, revisit=revisit)
    assert body.get("confirmed") is confirmed, lesson(
        expected=f"user {user_id} {'confirmed' if confirmed else 'not confirmed'}", got=f"{body}", revisit=revisit
    )


@pytest.mark.task(6)
async def test_the_link_in_the_email_confirms_the_user(client, sender):
    """Following the link: 200 with the user, confirmed; GET /users/{id} says so too."""
    path = await signed_up(client, sender)
    response = await call(client, "GET", path, revisit=CONFIRM)
    expect_status(response, 200, revisit=CONFIRM)
    expect_json(
        response, user_json(IDS[0], ACCENTED, "zoe@example.com", confirmed=True, status="sent"), revisit=CONFIRM
    )
    await expect_user(client, IDS[0], confirmed=True, revisit=CONFIRM)


@pytest.mark.task(6)
async def test_confirming_twice_is_harmless(client, sender):
    """The same link again (a double click, a mail scanner): 200 and the same user, still confirmed."""
    path = await signed_up(client, sender)
    first = await call(client, "GET", path, revisit=CONFIRM)
    second = await call(client, "GET", path, revisit=CONFIRM)
    expect_status(second, 200, expected="200 for the second click too", revisit=CONFIRM)
    expect_json(second, first.json(), expected=f"the same body as the first time: {first.text}", revisit=CONFIRM)


@pytest.mark.task(6)
async def test_a_link_works_for_a_day_and_is_gone_one_second_later(client, sender, clock):
    """A day after the email: 200. Another user's link, a day and a second after: 410, and not confirmed."""
    first = await signed_up(client, sender)
    clock.advance(DAY)
    response = await call(client, "GET", first, revisit=CONFIRM)
    expect_status(response, 200, expected="200: the link is exactly one day old", revisit=CONFIRM_CODES)
    second = await signed_up(client, sender, 2, name=PLAIN, email="ada@example.com")
    clock.advance(DAY + 1)
    response = await call(client, "GET", second, revisit=CONFIRM_CODES)
    expect_status(response, 410, expected="410 Gone: the link is a day and a second old", revisit=CONFIRM_CODES)
    expect_json(response, EXPIRED_LINK, revisit=CONFIRM_CODES)
    await expect_user(client, IDS[1], confirmed=False, revisit=CONFIRM_CODES)


@pytest.mark.task(6)
async def test_a_tampered_link_or_another_users_token_is_a_400_and_confirms_nobody(client, sender):
    """A changed token, another user's, one for another purpose, garbage, an empty one: 400, nobody confirmed."""
    mine = await signed_up(client, sender)
    theirs = await signed_up(client, sender, 2, name=PLAIN, email="ada@example.com")
    their_token = theirs.split("token=", 1)[1]
    base = mine.split("?", 1)[0]
    attempts = [(f"a token with {how}", f"{base}?token={token}") for how, token in tampered(mine.split("token=")[1])]
    attempts += [
        ("the other user's token", f"{base}?token={their_token}"),
        ("a token for another purpose", f"{base}?token={forged(str(IDS[0]), salt='password-reset')}"),
        ("garbage", f"{base}?token=not-a-token"),
        ("an empty token", f"{base}?token="),
    ]
    for what, path in attempts:
        response = await call(client, "GET", path, revisit=CONFIRM_CODES)
        if "other user" in what:
            expect_status(response, 400, expected=f"400 Bad Request for {what}", revisit=BOUND_TO_USER)
        else:
            expect_status(response, 400, expected=f"400 Bad Request for {what}", revisit=CONFIRM_CODES)
        expect_json(response, INVALID_LINK, revisit=CONFIRM_CODES)
    await expect_user(client, IDS[0], confirmed=False, revisit=BOUND_TO_USER)
    await expect_user(client, IDS[1], confirmed=False, revisit=BOUND_TO_USER)


@pytest.mark.task(6)
async def test_an_unknown_user_is_a_404_and_a_malformed_id_or_a_missing_token_a_422(client, sender):
    """An id nobody has: 404 (whatever the token). An id that is no UUID, or no token at all: 422."""
    path = await signed_up(client, sender)
    token = path.split("token=", 1)[1]
    unknown = IDS[7]
    for which, what in ((token, "another user's valid token"), ("not-a-token", "a bad token")):
        response = await call(client, "GET", f"/users/{unknown}/confirm?token={which}", revisit=CONFIRM_CODES)
        expect_status(response, 404, expected=f"404 for a user nobody has, with {what}", revisit=CONFIRM_CODES)
        expect_json(response, {"detail": f"no user {unknown}"}, revisit=CONFIRM_CODES)
    for bad in (f"/users/abc/confirm?token={token}", f"/users/{IDS[0]}/confirm"):
        response = await call(client, "GET", bad, revisit=CONFIRM_CODES)
        expect_status(response, 422, expected=f"422 for {bad[:60]}", revisit=CONFIRM_CODES)


@pytest.mark.task(6)
async def test_a_failed_email_can_be_sent_again_with_a_new_link(client, sender, clock):
    """Down, then up: POST /users/{id}/confirmation-email is 202 (pending), the email goes, its fresh link works."""
    sender.down = True
    await register(client)
    sender.down = False
    clock.advance(DAY)
    response = await call(client, "POST", f"/users/{IDS[0]}/confirmation-email", revisit=AGAIN)
    expect_status(response, 202, revisit=AGAIN)
    expect_json(response, user_json(IDS[0], ACCENTED, "zoe@example.com"), revisit=AGAIN)
    found = await call(client, "GET", f"/users/{IDS[0]}", revisit=AGAIN)
    expect_json(found, user_json(IDS[0], ACCENTED, "zoe@example.com", status="sent"), revisit=AGAIN)
    link = link_in(the_sent(sender, revisit=AGAIN)[0], revisit=AGAIN)
    clock.advance(DAY)
    response = await call(client, "GET", path_of(link), revisit=CONFIRM)
    expect_status(response, 200, expected="200: the new link is a day old, counted from the new email", revisit=AGAIN)


@pytest.mark.task(6)
async def test_a_confirmed_user_gets_a_409_and_no_new_email(client, sender):
    """Already confirmed: 409 'user <id> is already confirmed', nothing sent. Unknown: 404. Malformed: 422."""
    path = await signed_up(client, sender)
    await call(client, "GET", path, revisit=CONFIRM)
    response = await call(client, "POST", f"/users/{IDS[0]}/confirmation-email", revisit=AGAIN)
    expect_status(response, 409, revisit=AGAIN)
    expect_json(response, {"detail": f"user {IDS[0]} is already confirmed"}, revisit=AGAIN)
    assert len(sender.sent) == 1, lesson(expected="no second email", got=f"{sender!r}", revisit=AGAIN)
    response = await call(client, "POST", f"/users/{IDS[9]}/confirmation-email", revisit=AGAIN)
    expect_status(response, 404, revisit=AGAIN)
    expect_json(response, {"detail": f"no user {IDS[9]}"}, revisit=AGAIN)
    response = await call(client, "POST", "/users/abc/confirmation-email", revisit=AGAIN)
    expect_status(response, 422, revisit=AGAIN)
