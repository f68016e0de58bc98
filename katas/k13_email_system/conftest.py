"""Fixtures for kata 13: a real SMTP server, a fake sender, a store that says when it stores.

Read them if you like; you do not need to change them.

**The real server.** One SMTP server (aiosmtpd) runs for the whole session on the
loopback (127.0.0.2 where the system has it, else 127.0.0.1), in a thread of its own,
started by the first spec (about 10 ms) and stopped at the end. Each spec gets its own
*mailbox* on it (``smtp``): the messages that arrived
during that spec, as the server received them (the envelope, the bytes), and the
server's side of each conversation on the spec's timeline (a connection opened, QUIT,
the connection closed). The server can *hold* a message: it keeps the client waiting for
its answer to DATA until the spec lets it go, so a spec can look at the event loop while
the client waits. It refuses any recipient at ``nowhere.invalid``. It advertises no
SMTPUTF8: headers must be encoded for any server, as most are.

**The fake.** The unit-level specs (the app's tasks 5 and 6) use ``FakeSender``: an
``async send(message)`` that keeps the message, or raises the kata's ``SendError`` while
it is "down". It offers that one call, the one the code should use.

**Nothing left open.** Every spec runs under the shared ``leak_check``: a connection, a
file or a thread the code opened and did not close fails the spec that opened it.
"""

from __future__ import annotations

import asyncio
import gc
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from dojo.impl import kata_module
from dojo.timeline import Timeline

signup = kata_module("k13_email_system", "signup")


def _loopback() -> str:
    """The server's address: 127.0.0.2 where the system has it, 127.0.0.1 elsewhere.

    On Linux all of 127/8 is this machine, so a client that ignores the host it is given and
    connects to localhost finds nobody there; macOS has only 127.0.0.1.
    """
    try:
        with socket.socket() as probe:
            probe.bind(("127.0.0.2", 0))
    except OSError:
        return "127.0.0.1"
    return "127.0.0.2"


HOST = _loopback()
#: The domain whose recipients the server refuses (550): a real server's "no such mailbox".
REFUSED_DOMAIN = "nowhere.invalid"
#: How long the server holds a message when told to hold it, at most: the event loop of a
#: correct sender answers within a few milliseconds; one blocked by a blocking call never does.
HOLD_LIMIT = 1.0

CONNECTION_OPENED = "SMTP connection opened"
QUIT = "SMTP QUIT"
CONNECTION_CLOSED = "SMTP connection closed"
MESSAGE_HELD = "server holds the message"
HOLD_GAVE_UP = "server gave up holding the message"
MESSAGE_RECEIVED = "server received a message"
EMAIL_SENT = "email sent"
EMAIL_FAILED = "email failed"
USER_STORED = "user stored"

# ------------------------------------------------------------------ the real SMTP server


@dataclass(frozen=True)
class Received:
    """One message as the server received it: the envelope and the bytes."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    content: bytes


@dataclass
class Mailbox:
    """One spec's view of the server: what arrived, and the server's side on the spec's timeline."""

    # The names of the server's events on the timeline, and its settings, for the specs to read.
    OPENED = CONNECTION_OPENED
    QUIT = QUIT
    CLOSED = CONNECTION_CLOSED
    HELD = MESSAGE_HELD
    GAVE_UP = HOLD_GAVE_UP
    RECEIVED = MESSAGE_RECEIVED
    REFUSED_DOMAIN = REFUSED_DOMAIN
    HOLD_LIMIT = HOLD_LIMIT

    timeline: Timeline
    host: str = HOST
    port: int = 0
    received: list[Received] = field(default_factory=list)
    hold: bool = False
    released: threading.Event = field(default_factory=threading.Event)
    opened: int = 0
    closed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = field(default_factory=list)

    @property
    def connections(self) -> int:
        """Connections this spec opened that are still open."""
        return self.opened - self.closed

    def release(self) -> None:
        """Let a held message go: the server answers the client's DATA."""
        self.released.set()

    def note_opened(self) -> None:
        with self._lock:
            self.opened += 1
        self.timeline.record(CONNECTION_OPENED)

    def note_closed(self) -> None:
        self.timeline.record(CONNECTION_CLOSED)
        with self._lock:
            self.closed += 1
            ready = [waiter for waiter in self._waiters if waiter[0] <= self.closed]
            self._waiters = [waiter for waiter in self._waiters if waiter[0] > self.closed]
        for _, loop, future in ready:
            loop.call_soon_threadsafe(_done, future)

    async def until_closed(self, count: int, timeout: float) -> bool:
        """Wait until the server has seen ``count`` of this spec's connections close; False at ``timeout`` s."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self.closed >= count:
                return True
            self._waiters.append((count, loop, future))
        try:
            await asyncio.wait_for(future, timeout)
        except TimeoutError:
            return False
        return True


def _done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Handler:
    """aiosmtpd's handler: records each conversation in the current spec's mailbox."""

    def __init__(self) -> None:
        self.mailbox: Mailbox | None = None
        self._lock = threading.Lock()
        self._open = 0
        self.idle = threading.Event()  # no connection open at all, whoever opened it
        self.idle.set()

    def opened(self) -> Mailbox | None:
        with self._lock:
            self._open += 1
            self.idle.clear()
        box = self.mailbox
        if box is not None:
            box.note_opened()
        return box

    def closed(self, box: Mailbox | None) -> None:
        if box is not None:
            box.note_closed()
        with self._lock:
            self._open -= 1
            if self._open == 0:
                self.idle.set()

    async def handle_RCPT(self, _server: Any, _session: Any, envelope: Any, address: str, _options: Any) -> str:  # noqa: N802 - aiosmtpd's hook
        if address.lower().endswith("@" + REFUSED_DOMAIN):
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook
        box = self.mailbox
        if box is None:
            return "451 4.3.0 no spec is listening"
        if box.hold:
            box.timeline.record(MESSAGE_HELD)
            # Blocks the server's own thread (its loop), never the spec's: the client waits for the answer.
            if not box.released.wait(HOLD_LIMIT):
                box.timeline.record(HOLD_GAVE_UP, f"nobody let it go within {HOLD_LIMIT:g} s")
        box.received.append(Received(envelope.mail_from, tuple(envelope.rcpt_tos), envelope.original_content))
        box.timeline.record(MESSAGE_RECEIVED, f"from {envelope.mail_from} to {', '.join(envelope.rcpt_tos)}")
        return "250 2.0.0 OK: queued"

    async def handle_QUIT(self, _server: Any, _session: Any, _envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook
        box = self.mailbox
        if box is not None:
            box.timeline.record(QUIT)
        return "221 Bye"


class _WatchedSMTP(SMTP):
    """aiosmtpd's SMTP protocol, telling the handler when a connection opens and closes."""

    _box: Mailbox | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._box = self.event_handler.opened()  # the spec that opened it hears of its end, whenever it comes

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        self.event_handler.closed(self._box)


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _WatchedSMTP(self.handler, **self.SMTP_kwargs)


def _free_port() -> int:
    # aiosmtpd cannot be given port 0: its start-up check connects to the port it was
    # given. So ask the system for a free port, release it, and pass its number.
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Server:
    """The session's SMTP server."""

    handler: Handler
    port: int


@pytest.fixture(name="smtp_server", scope="session")
def _smtp_server() -> Iterator[Server]:
    """One real SMTP server on 127.0.0.1 for the whole session (no SMTPUTF8, like most relays)."""
    handler = Handler()
    controller = _Controller(handler, hostname=HOST, port=_free_port(), enable_SMTPUTF8=False)
    controller.start()
    handler.idle.wait(HOLD_LIMIT)  # the start-up check's own connection, closed
    try:
        yield Server(handler, controller.port)
    finally:
        controller.stop()


@pytest.fixture(name="dead_port", scope="session")
def _dead_port() -> Iterator[int]:
    """A port on 127.0.0.1 where nothing listens: a connection is refused at once (the server is down)."""
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))  # bound and never listening: nobody else can take it, nobody answers
        yield bound.getsockname()[1]


@pytest.fixture(name="smtp")
def _smtp(smtp_server: Server, timeline: Timeline, leak_check: None) -> Iterator[Mailbox]:
    """This spec's mailbox on the real server."""
    box = Mailbox(timeline, port=smtp_server.port)
    smtp_server.handler.mailbox = box
    yield box
    box.release()
    # The server closes its side of a finished conversation in its own thread: give it a
    # moment, so that the leak check sees what the CODE left open, not the server's lag.
    if not smtp_server.handler.idle.wait(HOLD_LIMIT / 2):
        # A connection the code dropped without closing (its spec has already said so) is
        # closed only when the garbage collector finds it; collect now, so that the server's
        # end closes too, before the leak check looks, and the verdict is the same every run.
        gc.collect()
        smtp_server.handler.idle.wait(HOLD_LIMIT / 2)
    smtp_server.handler.mailbox = None


@pytest.fixture(autouse=True)
async def _settle(smtp: Mailbox) -> AsyncIterator[None]:
    """After a spec, let its event loop finish closing what the code closed (a transport closes on the next turn)."""
    yield
    for _ in range(5):
        await asyncio.sleep(0)


# ------------------------------------------------------------------ the fakes


class FakeSender:
    """A mail server for the unit-level specs: ``async send(message)`` keeps it, or raises SendError while down."""

    SENT = EMAIL_SENT
    FAILED = EMAIL_FAILED

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.sent: list[EmailMessage] = []
        self.attempts = 0
        self.down = False

    async def send(self, message: EmailMessage) -> None:
        self.attempts += 1
        await asyncio.sleep(0)  # a point where other tasks may run, as real I/O is
        if self.down:
            self.timeline.record(EMAIL_FAILED, f"to {message.get('To')}")
            raise signup.SendError(f"connection refused by the fake mail server (attempt {self.attempts})")
        self.sent.append(message)
        self.timeline.record(EMAIL_SENT, f"to {message.get('To')}")

    def __repr__(self) -> str:
        return f"FakeSender({len(self.sent)} sent, {self.attempts} attempts)"


@pytest.fixture(name="sender")
def _sender(timeline: Timeline) -> FakeSender:
    return FakeSender(timeline)


def recording_users(timeline: Timeline) -> Any:
    """The kata's own user store, which also says on the timeline when it stores a user."""

    class RecordingUsers(signup.Users):
        STORED = USER_STORED

        def add(self, user: Any) -> None:
            super().add(user)
            timeline.record(USER_STORED, f"{getattr(user, 'id', user)}")

    return RecordingUsers()


@pytest.fixture(name="users")
def _users(timeline: Timeline) -> Any:
    return recording_users(timeline)
