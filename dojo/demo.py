"""Demo collaborators for ``kata serve``: the real-world twins of :mod:`dojo.fakes`.

A kata's app takes its collaborators as parameters (kata 1: ``create_app(mailer)``).
``kata serve`` calls the factory the manifest names (``serve = "module:factory"``) with,
for each parameter, the demo collaborator of the same name from :data:`COLLABORATORS`:
a mailer that "sends" by printing to the console after a real delay, a real clock, a
real sleep. Parameters with a default and no demo keep their default.

A new kata whose factory needs another collaborator adds a builder here, under the
parameter's name; nothing in the command line changes. A kata whose experiments need
something beside its app (kata 11: a receiver for its webhooks) adds a finisher to
:data:`KATA_FINISHERS`, which gets the app once it is built.

The app is then served wrapped in :class:`ServedApp`: its docs page from files on this
machine, and its exceptions as 500s that say what and where.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import inspect
import json
import os
import random
import re
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, TextIO

DELAY_VAR = "KATA_DEMO_DELAY"  # seconds a demo collaborator takes per slow call (default 2)


class _Console:
    """A slow demo collaborator: waits ``delay`` real seconds per call and says so."""

    label = "demo"

    def __init__(self, delay: float | None = None, out: TextIO | None = None) -> None:
        self.delay = delay if delay is not None else float(os.environ.get(DELAY_VAR, "2"))
        self.out = out or sys.stdout
        self._lock = threading.Lock()

    def _log(self, text: str) -> None:
        with self._lock:
            stamp = datetime.now(timezone.utc).strftime("%H:%M:%S.%f")[:-3]
            self.out.write(f"[{self.label} {stamp}] {text}\n")
            self.out.flush()


class ConsoleMailer(_Console):
    """A mail server that takes ``delay`` seconds per email, then prints it to the console.

    The delay is real (``KATA_DEMO_DELAY`` seconds, 2 by default): call the API from its
    docs page and watch the response come back at once while the email is "sent" seconds
    later, in this terminal.
    """

    label = "demo mailer"

    def __init__(self, delay: float | None = None, out: TextIO | None = None) -> None:
        super().__init__(delay, out)
        self.sent = 0

    def send(self, to: str, subject: str, body: str) -> None:
        """Deliver one email, blocking for ``delay`` seconds like a slow SMTP server."""
        self._log(f"sending to {to}: {subject!r} (takes {self.delay:g} s)")
        time.sleep(self.delay)
        self.sent += 1
        self._log(f"sent to {to}: {subject!r}\n    {body}")

    async def asend(self, to: str, subject: str, body: str) -> None:
        """Deliver one email without blocking the event loop."""
        self._log(f"sending to {to}: {subject!r} (takes {self.delay:g} s)")
        await asyncio.sleep(self.delay)
        self.sent += 1
        self._log(f"sent to {to}: {subject!r}\n    {body}")


FAIL_VAR = "KATA_DEMO_FAIL"  # kata 2: the demo collaborators named here are "down" (e.g. "profiles,analytics")


def _told_to_fail(name: str) -> bool:
    """Whether ``KATA_DEMO_FAIL`` (a comma-separated list of names) names this collaborator."""
    return name in {part.strip() for part in os.environ.get(FAIL_VAR, "").split(",")}


def _where() -> str:
    """Which thread the caller runs on, loudly when it is the event loop's."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return f"in {threading.current_thread().name}"
    return "ON THE EVENT LOOP THREAD: no other request is served until it returns"


class ThreadWatchingMailer(ConsoleMailer):
    """Kata 1's demo mailer: a :class:`ConsoleMailer` that also says where each send runs.

    Each email gets a number; the console shows when it starts and ends, how many sends are
    in progress at that moment (the thread pool runs at most 40 at once), and whether it runs
    in a worker thread or, blocking everything, on the event loop's own thread.
    """

    def __init__(self, delay: float | None = None, out: TextIO | None = None) -> None:
        super().__init__(delay, out)
        self._count_lock = threading.Lock()
        self._started = 0
        self._in_progress = 0

    def send(self, to: str, subject: str, body: str) -> None:
        """Deliver one email, blocking for ``delay`` seconds, and say where and alongside how many."""
        with self._count_lock:
            self._started += 1
            self._in_progress += 1
            number, in_progress = self._started, self._in_progress
        self._log(f"email #{number} to {to}: sending, {in_progress} in progress ({_where()}; takes {self.delay:g} s)")
        try:
            time.sleep(self.delay)
        finally:
            with self._count_lock:
                self._in_progress -= 1
        self.sent += 1
        self._log(f"email #{number} to {to}: sent {subject!r}\n    {body[:200]}")


class ConsoleProfiles(_Console):
    """A profile store that prints each profile it creates (kata 2).

    ``KATA_DEMO_FAIL=profiles`` makes it "down": each call says so and raises ConnectionError,
    so you can watch whether the task queued after it still runs.
    """

    label = "demo profiles"

    def create(self, user_id: int, email: str) -> None:
        self._log(f"creating the profile of user {user_id} <{email}> (takes {self.delay:g} s)")
        time.sleep(self.delay)
        if _told_to_fail("profiles"):
            self._log(f"DOWN ({FAIL_VAR}): raising ConnectionError for user {user_id}")
            raise ConnectionError("the demo profile store is down")
        self._log(f"created the profile of user {user_id} <{email}>")


class ConsoleAnalytics(_Console):
    """An analytics sink that prints each record (kata 2); ``KATA_DEMO_FAIL=analytics`` makes it raise."""

    label = "demo analytics"

    def record(self, event: str, user_id: int, ip_address: str) -> None:
        if _told_to_fail("analytics"):
            self._log(f"DOWN ({FAIL_VAR}): raising ConnectionError for {event} of user {user_id}")
            raise ConnectionError("the demo analytics sink is down")
        self._log(f"{event}: user {user_id} from {ip_address}")


class ScriptedGateway(_Console):
    """Kata 3's demo gateway: the payment id says how the charges of that payment go.

    - an id with ``fail`` and a number (``pay_fail2``): its first N charges time out, then
      the next one is approved (``fail9`` outlasts the default three attempts);
    - an id with ``decline`` (``pay_decline``): every charge is declined;
    - any other id: approved.

    Each charge takes ``delay`` seconds (``KATA_DEMO_DELAY``) and prints what happened, with
    a timestamp, so the waits between the charges of one payment show in the terminal. The
    errors raised are the kata's own ``TransientGatewayError`` and ``PaymentDeclinedError``,
    taken from the module ``kata serve`` imported.
    """

    label = "demo gateway"
    FAILURES = re.compile(r"fail(\d+)")

    def __init__(self, delay: float | None = None, out: TextIO | None = None) -> None:
        super().__init__(delay, out)
        self.charges: dict[str, int] = {}

    async def charge(self, payment_id: str, amount_cents: int) -> str:
        number = self.charges[payment_id] = self.charges.get(payment_id, 0) + 1
        self._log(f"charge {number} of {payment_id}: {amount_cents} cents (takes {self.delay:g} s)")
        await asyncio.sleep(self.delay)
        scripted = self.FAILURES.search(payment_id)
        if "decline" in payment_id:
            self._log(f"charge {number} of {payment_id}: DECLINED")
            raise _kata_error("PaymentDeclinedError")("card declined (demo: the id says decline)")
        if scripted and number <= int(scripted.group(1)):
            self._log(f"charge {number} of {payment_id}: TIMED OUT ({number} of {scripted.group(1)} scripted failures)")
            raise _kata_error("TransientGatewayError")(
                f"gateway timed out (demo: failure {number} of {scripted.group(1)})"
            )
        self._log(f"charge {number} of {payment_id}: approved, receipt-{payment_id}-{number}")
        return f"receipt-{payment_id}-{number}"


def _kata_error(name: str) -> type[Exception]:
    """Kata 3's exception class ``name``, from the module ``kata serve`` imported (a plain one if absent)."""
    error = getattr(sys.modules.get("k03_retry.payments"), name, None)
    if isinstance(error, type) and issubclass(error, Exception):
        return error
    return type(name, (Exception,), {})


class ConsoleWorker(_Console):
    """A job handler or work step that takes ``delay`` seconds and prints what it did (katas 4, 5)."""

    label = "demo worker"

    async def __call__(self, item: object) -> None:
        self._log(f"working on {item!r} (takes {self.delay:g} s)")
        await asyncio.sleep(self.delay)
        self._log(f"done with {item!r}")


class ConsoleImporter(ConsoleWorker):
    """Kata 5's demo ``process``: imports one file in ``delay`` seconds; a file named ``broken…`` fails.

    Any item whose name contains ``broken`` raises ``ValueError`` after its delay, so the
    kata's "Break an item" experiment can watch a task end ``failed``.
    """

    label = "demo importer"

    async def __call__(self, item: object) -> None:
        self._log(f"importing {item!r} (takes {self.delay:g} s)")
        await asyncio.sleep(self.delay)
        if "broken" in str(item):
            self._log(f"failed on {item!r}: row 3: price is not a number")
            raise ValueError(f"{item}: row 3: price is not a number")
        self._log(f"imported {item!r}")


class ConsoleJobHandler(_Console):
    """Kata 4's job handler: each job takes ``delay`` seconds and says when it starts and ends.

    Cancelled mid-job (the server shuts down), it says so, takes a moment to clean up and
    says that too, so the terminal shows whether shutdown waited for it; the jobs still
    waiting in the queue are never mentioned again.
    """

    label = "demo worker"

    async def __call__(self, job: Any) -> None:
        name = f"{getattr(job, 'id', job)} ({getattr(getattr(job, 'priority', ''), 'value', '?')})"
        self._log(f"{name} {getattr(job, 'payload', '')}: working (takes {self.delay:g} s)")
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self._log(f"{name}: interrupted by the shutdown, cleaning up; nothing will run this job again")
            await asyncio.sleep(min(self.delay, 0.5))
            self._log(f"{name}: cleaned up")
            raise
        self._log(f"{name}: done")


class ConsoleDirectory(_Console):
    """Kata 6's account directory: blocks ``delay`` seconds per account and says on which thread.

    ``KATA_DEMO_FAIL=directory`` makes it "down": each call raises ConnectionError after the delay.
    The password is never printed.
    """

    label = "demo directory"

    def create_account(self, email: str, password: str) -> None:  # noqa: ARG002 - a directory never prints it
        self._log(f"creating the account of {email} ({_where()}; takes {self.delay:g} s)")
        time.sleep(self.delay)
        if _told_to_fail("directory"):
            self._log(f"could not create the account of {email}: the directory is down")
            raise ConnectionError("the demo directory is down")
        self._log(f"created the account of {email}")


class ConsoleFailures(_Console):
    """Kata 6's failure store, in memory: prints each failure it keeps (``KATA_DEMO_FAIL=failures``: down)."""

    label = "demo failure store"

    def __init__(self, delay: float | None = None, out: TextIO | None = None) -> None:
        super().__init__(delay, out)
        self._kept: list[Any] = []

    def add(self, failure: Any) -> None:
        if _told_to_fail("failures"):
            raise ConnectionError("the demo failure store is down")
        with self._lock:
            self._kept.append(failure)
            number = len(self._kept)
        self._log(f"kept failure #{number}: {failure}")

    def all(self) -> list[Any]:
        with self._lock:
            return list(self._kept)


class ConsoleNotifier(_Console):
    """Kata 6's notifier: prints the page it would send to whoever is on call (``KATA_DEMO_FAIL=notifier``: down)."""

    label = "demo notifier"

    def notify(self, failure: Any) -> None:
        if _told_to_fail("notifier"):
            self._log("could not page anyone: the chat service is down")
            raise ConnectionError("the demo notifier's chat service is down")
        self._log(f"PAGE to the on-call person: {failure}")


class ConsoleJobHandler10(_Console):
    """Kata 10's handler of one job type: each attempt takes ``delay`` seconds; the payload says how it goes.

    - ``{"fail": N}``: the first N attempts of jobs with this same payload fail with
      ConnectionError (counted across runs, so a replay goes on counting);
    - ``{"fail": "always"}``: every attempt fails;
    - ``{"permanent": "why"}``: the attempt raises the kata's ``PermanentJobError``;
    - anything else works.
    """

    label = "demo jobs"

    def __init__(self, job_type: str, delay: float | None = None, out: TextIO | None = None) -> None:
        super().__init__(delay, out)
        self.job_type = job_type
        self.attempts: dict[str, int] = {}

    async def __call__(self, payload: dict[str, Any]) -> None:
        key = json.dumps(payload, sort_keys=True, default=str)
        with self._lock:
            number = self.attempts[key] = self.attempts.get(key, 0) + 1
        name = f"{self.job_type} {key}"
        self._log(f"{name}: attempt {number} of this payload (takes {self.delay:g} s)")
        await asyncio.sleep(self.delay)
        if "permanent" in payload:
            self._log(f"{name}: FAILED for good: {payload['permanent']}")
            raise _kata10_permanent_error()(str(payload["permanent"]))
        fail = payload.get("fail")
        if fail == "always" or (isinstance(fail, int) and number <= fail):
            self._log(f"{name}: FAILED (attempt {number} of this payload)")
            raise ConnectionError(f"demo: the {self.job_type} partner is down (attempt {number} of this payload)")
        self._log(f"{name}: done")


def _kata10_permanent_error() -> type[Exception]:
    """Kata 10's ``PermanentJobError``, from the module ``kata serve`` imported (a plain one if absent)."""
    error = getattr(sys.modules.get("k10_dead_letters_and_cleanup.deadletters"), "PermanentJobError", None)
    if isinstance(error, type) and issubclass(error, Exception):
        return error
    return type("PermanentJobError", (Exception,), {})


class ConsoleStats(_Console):
    """Kata 8's stats client: counts an action in a tenth of a second, awaited, and says where it ran."""

    label = "demo stats"

    async def record(self, user_id: int, action: str) -> None:
        await asyncio.sleep(0.1)
        self._log(f"counted {action!r} for user {user_id} ({_where_async()})")


def _where_async() -> str:
    """Which loop an async demo collaborator runs on: the app's, or one of a thread of its own."""
    thread = threading.current_thread()
    if thread is threading.main_thread():
        return "on the app's event loop"
    return f"on ANOTHER event loop, in {thread.name}: not the app's"


class ConsoleReports(_Console):
    """Kata 8's reporting library: each rebuild blocks ``delay`` seconds and says where it runs.

    Each rebuild gets a number; the console shows when it starts and ends, how many are in
    progress at that moment (the thread pool runs at most its size at once: watch the 41st
    wait), and whether it runs in a worker thread or, blocking everything, on the event loop.
    """

    label = "demo reports"

    def __init__(self, delay: float | None = None, out: TextIO | None = None) -> None:
        super().__init__(delay, out)
        self._count_lock = threading.Lock()
        self._started = 0
        self._in_progress = 0

    def rebuild(self, user_id: int) -> None:
        with self._count_lock:
            self._started += 1
            self._in_progress += 1
            number, in_progress = self._started, self._in_progress
        self._log(
            f"rebuild #{number}, user {user_id}: rendering, {in_progress} in progress "
            f"({_where()}; takes {self.delay:g} s)"
        )
        try:
            time.sleep(self.delay)
        finally:
            with self._count_lock:
                self._in_progress -= 1
        self._log(f"rebuild #{number}, user {user_id}: done")


class ConsoleFeed(_Console):
    """Kata 8's live feed: each publish takes ``delay`` seconds; cut off by a shutdown, it says so.

    ``KATA_DEMO_FEED_DELAY`` sets its delay apart from the others' (``KATA_DEMO_DELAY``), so that
    a publish can still run when the request that started it is long over.
    """

    label = "demo feed"

    def __init__(self, delay: float | None = None, out: TextIO | None = None) -> None:
        own = os.environ.get("KATA_DEMO_FEED_DELAY")
        super().__init__(delay if delay is not None or own is None else float(own), out)

    async def publish(self, user_id: int, action: str) -> None:
        self._log(f"publishing {action!r} of user {user_id} to the followers (takes {self.delay:g} s)")
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self._log(f"publish of user {user_id} CANCELLED before it ended: the followers never hear of it")
            raise
        self._log(f"published {action!r} of user {user_id}")


def _number_from(variable: str, default: float) -> float:
    """A number from the environment (kata 8: ``KATA_DEMO_THREADS``, ``KATA_DEMO_DRAIN``), else ``default``."""
    return float(os.environ.get(variable, default))


class DemoMailServer(_Console):
    """Kata 13's ``sender``: a real SMTP server on 127.0.0.1, and the learner's own ``SmtpSender`` talking to it.

    On the first email it starts an aiosmtpd server on a free port of 127.0.0.1 (a thread of
    its own), then hands every message to the kata module's ``SmtpSender("127.0.0.1", port)``,
    so the learner's code holds a real SMTP conversation. The server prints each message as
    it arrived (the raw headers, then what a mail client shows) and answers ``DATA`` after
    ``delay`` seconds, like a busy relay; it says when a connection opens, QUITs and closes.
    ``KATA_DEMO_FAIL=smtp`` points the sender at a port where nothing listens (the server is
    down); ``smtp-once`` does that for the first email only.
    """

    label = "demo mail server"

    def __init__(self, delay: float | None = None, out: TextIO | None = None) -> None:
        super().__init__(delay, out)
        self._port: int | None = None
        self._down: Any = None  # a socket bound and never listening: connections to it are refused
        self._attempts = 0
        self._open = 0

    async def send(self, message: Any) -> None:
        """Hand the message to the learner's ``SmtpSender``, pointed at the demo server (or at nothing)."""
        self._attempts += 1
        module = sys.modules.get("k13_email_system.signup")
        smtp_sender = getattr(module, "SmtpSender", None)
        if smtp_sender is None:
            raise RuntimeError("the demo mail server needs the kata's SmtpSender (k13_email_system/signup.py)")
        if _told_to_fail("smtp") or (_told_to_fail("smtp-once") and self._attempts == 1):
            port = self._nowhere()
            self._log(f"DOWN ({FAIL_VAR}): your SmtpSender is sent to 127.0.0.1:{port}, where nothing listens")
        else:
            port = self._start()
        await smtp_sender("127.0.0.1", port).send(message)

    def _nowhere(self) -> int:
        import socket

        if self._down is None:
            self._down = socket.socket()
            self._down.bind(("127.0.0.1", 0))
        return self._down.getsockname()[1]

    def _start(self) -> int:
        if self._port is not None:
            return self._port
        import socket

        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import SMTP

        demo = self

        class Watched(SMTP):
            counted = False  # the start-up check's own connection is not a client's

            def connection_made(self, transport: Any) -> None:
                super().connection_made(transport)
                if demo._port is not None:
                    self.counted = True
                    demo._open += 1
                    demo._log(f"connection from {transport.get_extra_info('peername')} ({demo._open} open)")

            def connection_lost(self, error: Exception | None) -> None:
                super().connection_lost(error)
                if self.counted:
                    demo._open -= 1
                    demo._log(f"connection closed ({demo._open} open)")

        class Printing(Controller):
            def factory(self) -> SMTP:
                return Watched(self.handler, **self.SMTP_kwargs)

        # aiosmtpd cannot be given port 0 (its start-up check connects to it): take a free one.
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        Printing(_PrintingHandler(self), hostname="127.0.0.1", port=port, enable_SMTPUTF8=False).start()
        self._port = port
        self._log(f"listening on 127.0.0.1:{port} (no SMTPUTF8: headers must be encoded, as for most relays)")
        return port

    def received(self, envelope: Any) -> None:
        """Print one message: the envelope, the raw headers, then what a mail client shows."""
        from email import policy
        from email.parser import BytesParser

        raw: bytes = envelope.original_content
        head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii", errors="backslashreplace")
        message = BytesParser(policy=policy.default).parsebytes(raw)
        lines = [
            f"MAIL FROM {envelope.mail_from}, RCPT TO {', '.join(envelope.rcpt_tos)}: {len(raw)} bytes",
            "  the headers as they travelled:",
            *(f"    {line}" for line in head.splitlines()),
            "  as a mail client shows it:",
            *(f"    {name}: {message[name]}" for name in ("From", "To", "Subject") if message[name] is not None),
            f"    parts: {', '.join(part.get_content_type() for part in message.walk() if not part.is_multipart())}",
        ]
        for part in message.walk():
            if not part.is_multipart():
                body = part.get_content() if part.get_content_maintype() == "text" else "(not text)"
                lines.append(f"    --- {part.get_content_type()}")
                lines.extend(f"    {line}" for line in str(body).strip().splitlines())
        self._log("\n".join(lines))


class _PrintingHandler:
    """The demo SMTP server's handler: prints what it receives, and takes its time to answer DATA."""

    def __init__(self, demo: DemoMailServer) -> None:
        self.demo = demo

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook
        self.demo.received(envelope)
        self.demo._log(f"storing it: answering DATA in {self.demo.delay:g} s, like a busy relay")  # noqa: SLF001
        await asyncio.sleep(self.demo.delay)  # the server takes its time; a client that awaits lets its app go on
        self.demo._log("250 OK: message accepted")  # noqa: SLF001
        return "250 2.0.0 OK: accepted"

    async def handle_QUIT(self, _server: Any, _session: Any, _envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook
        self.demo._log("QUIT: the client ends the conversation")  # noqa: SLF001
        return "221 Bye"


class ConsoleProvider(_Console):
    """Kata 17's email provider: one batch call takes ``delay`` seconds, then prints each digest.

    Each batch gets a number; the console shows when its call starts (and how many calls are
    in progress at that moment: one at a time is the rule), then one line per recipient.
    ``KATA_DEMO_FAIL=provider`` makes it "down": each call raises ConnectionError after the delay.
    """

    label = "demo provider"

    def __init__(self, delay: float | None = None, out: TextIO | None = None) -> None:
        super().__init__(delay, out)
        self._batches = 0
        self._in_progress = 0

    async def send_batch(self, digests: list[Any]) -> None:
        """Deliver one batch: one email per digest, after ``delay`` seconds."""
        self._batches += 1
        self._in_progress += 1
        number = self._batches
        count = sum(len(getattr(digest, "messages", ())) for digest in digests)
        self._log(
            f"batch #{number}: {len(digests)} recipient(s), {count} notification(s), "
            f"{self._in_progress} call(s) in progress (takes {self.delay:g} s)"
        )
        try:
            await asyncio.sleep(self.delay)
            if _told_to_fail("provider"):
                self._log(f"batch #{number}: DOWN ({FAIL_VAR}): raising ConnectionError")
                raise ConnectionError("the demo provider is down")
            lines = [
                f"    to {getattr(digest, 'recipient', '?')}: "
                + " / ".join(repr(message)[:60] for message in getattr(digest, "messages", ()))
                for digest in digests
            ]
            self._log(f"batch #{number}: delivered\n" + "\n".join(lines))
        finally:
            self._in_progress -= 1


class ConsoleEventStore(_Console):
    """Kata 15's event store: a list in memory; each append takes ``delay`` seconds and says so.

    ``read`` prints which part of the log an aggregation run asks for (from which position,
    how many events it gets), so the terminal shows each run and whether it reads only what
    is new. ``KATA_DEMO_FAIL=store`` makes every read fail ("the analytics database is down"),
    so a failed run can be watched; appends still work.
    """

    label = "demo store"

    def __init__(self, delay: float | None = None, out: TextIO | None = None) -> None:
        super().__init__(delay, out)
        self.events: list[Any] = []

    async def append(self, event: Any) -> None:
        """Keep one event at the end of the log, after ``delay`` seconds."""
        name, at = getattr(event, "name", "?"), getattr(event, "at", "?")
        self._log(f"storing {name!r} at {at} (takes {self.delay:g} s)")
        await asyncio.sleep(self.delay)
        self.events.append(event)
        self._log(f"stored {name!r}: event #{len(self.events) - 1} of the log")

    async def read(self, start: int) -> list[Any]:
        """Every event from position ``start`` on."""
        if _told_to_fail("store"):
            self._log(f"read from #{start}: DOWN ({FAIL_VAR}): raising ConnectionError")
            raise ConnectionError("the demo analytics database is down")
        found = self.events[start:]
        self._log(f"aggregation run: read from #{start}, {len(found)} new event(s) of {len(self.events)}")
        return list(found)


class ConsoleRenderer(_Console):
    """Kata 9's report renderer: ``delay`` seconds a report, and it says how many are at work.

    A report whose name holds ``hang`` never ends on its own (only a cancellation stops it);
    one whose name holds ``broken`` fails after its delay. Each line says how many reports
    the renderer is building at that moment, so the terminal shows the limit holding (or
    not), and a cancellation says after how long it came.
    """

    label = "demo renderer"

    def __init__(self, delay: float | None = None, out: TextIO | None = None) -> None:
        super().__init__(delay, out)
        self._at_work = 0

    async def __call__(self, report: str) -> None:
        self._at_work += 1
        began = time.monotonic()
        takes = "never ends on its own" if "hang" in report else f"takes {self.delay:g} s"
        self._log(f"building {report!r} ({takes}); {self._at_work} at work now")
        try:
            if "hang" in report:
                await asyncio.Event().wait()
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self._at_work -= 1
            self._log(
                f"{report!r} CANCELLED after {time.monotonic() - began:.1f} s (its time limit, or the server "
                f"stopping); {self._at_work} at work now"
            )
            raise
        self._at_work -= 1
        if "broken" in report:
            self._log(f"{report!r} failed: the renderer choked on it; {self._at_work} at work now")
            raise RuntimeError(f"the demo renderer choked on {report}")
        self._log(f"built {report!r}; {self._at_work} at work now")


def demo_limits() -> Any:
    """Kata 9's limits under ``kata serve``: small enough to fill by hand (2 at work, 3 waiting, 10 s each)."""
    module = sys.modules.get("k09_limits_and_timeouts.reports")
    limits = getattr(module, "Limits", None)
    if limits is None:
        return None
    return limits(max_running=2, max_waiting=3, timeout=10.0)


class RealClock:
    """The clock of the machine, with the interface of :class:`dojo.fakes.FakeClock`."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class ConsoleSleep:
    """A real ``await sleep(seconds)``, as :class:`dojo.fakes.FakeSleep` is called, that says how long it waits.

    Kata 3's backoff: watch the waits grow.
    """

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stdout

    async def __call__(self, seconds: float) -> None:
        stamp = datetime.now(timezone.utc).strftime("%H:%M:%S.%f")[:-3]
        self.out.write(f"[demo sleep {stamp}] waiting {seconds:.3f} s\n")
        self.out.flush()
        await asyncio.sleep(seconds)


#: Parameter name -> a builder of its demo collaborator.
COLLABORATORS: dict[str, Callable[[], Any]] = {
    "mailer": ConsoleMailer,
    "clock": RealClock,
    "sleep": ConsoleSleep,
    "profiles": ConsoleProfiles,
    "analytics": ConsoleAnalytics,
    "gateway": ScriptedGateway,
    "rng": lambda: random.random,
    "handler": ConsoleJobHandler,
    "process": ConsoleImporter,
    "directory": ConsoleDirectory,
    "failures": ConsoleFailures,
    "notifier": ConsoleNotifier,
}


class BouncingMailer(ConsoleMailer):
    """Kata 7's demo mailer: ``asend`` takes ``delay`` seconds, and a domain with ``bounce`` in it is refused.

    ``ada@bounce.example`` raises ``ConnectionRefusedError`` after the delay, so the kata's
    experiments can watch a registration end ``failed``; the delay leaves time to lock the
    database while a welcome is on its way.
    """

    async def asend(self, to: str, subject: str, body: str) -> None:
        """Deliver one email without blocking the event loop, or be refused after the delay."""
        self._log(f"sending to {to}: {subject!r} (takes {self.delay:g} s)")
        await asyncio.sleep(self.delay)
        if "bounce" in to.rpartition("@")[2]:
            self._log(f"REFUSED: the relay will not take mail for {to}")
            raise ConnectionRefusedError(f"the demo relay refused mail for {to}")
        self.sent += 1
        self._log(f"sent to {to}: {subject!r}\n    {body}")


#: Seconds the demo database's connections wait for a lock before "database is locked" (SQLite's ``timeout``).
DEMO_LOCK_WAIT = 2


def demo_database_url(out: TextIO | None = None) -> str:
    """Kata 7's database: a new SQLite file in a temporary folder, with the tables of the kata's own models.

    The tables come from ``Base`` in the module ``kata serve`` imported; the file goes when
    the server stops. Its connections wait ``DEMO_LOCK_WAIT`` seconds for a lock, so a lock
    taken by hand shows as a wait, then a 503.
    """
    import atexit
    import shutil
    import tempfile

    import sqlalchemy

    base = getattr(sys.modules.get("k07_db_session.users"), "Base", None)
    if base is None:
        raise DemoError("kata 7's demo database needs the kata's module (k07_db_session/users.py) and its Base")
    folder = Path(tempfile.mkdtemp(prefix="kata-k07-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = folder / "users.sqlite3"
    engine = sqlalchemy.create_engine(f"sqlite:///{path}")  # a plain engine: the tables, then it is gone
    try:
        base.metadata.create_all(engine)
    finally:
        engine.dispose()
    (out or sys.stdout).write(f"[demo database] {path} (tables made; the file goes when the server stops)\n")
    return f"sqlite+aiosqlite:///{path}?timeout={DEMO_LOCK_WAIT}"


class ConsoleRenderer12(_Console):
    """Kata 12's renderer: ``delay`` seconds per document, and it says where it runs and how it went.

    The text decides how a document goes: one whose markdown holds ``broken`` fails with the
    kata's ``RenderError``; one that holds ``busy`` finds the renderer busy on its first two
    tries (the kata's ``RendererBusy``), so the task is retried; any other renders, one page
    per 2000 characters.
    """

    label = "demo renderer"

    def render(self, title: str, markdown: str) -> int:
        import celery

        task = celery.current_task
        request = getattr(task, "request", None)
        if request is None or getattr(request, "called_directly", True):
            where = "OUTSIDE ANY WORKER: in the web process, while the client waits"
        else:
            where = f"in the Celery worker (task {request.id}, try {request.retries + 1})"
        self._log(f"rendering {title!r} {where}; takes {self.delay:g} s")
        time.sleep(self.delay)
        if "broken" in markdown:
            self._log(f"cannot render {title!r}: the text says broken")
            raise _k12_error("RenderError")("the table on line 3 is broken (demo: the text says broken)")
        if "busy" in markdown and getattr(request, "retries", 0) < 2:
            self._log(f"no free slot for {title!r} (demo: the text says busy, for the first two tries)")
            raise _k12_error("RendererBusy")("no free slot (demo: the text says busy)")
        pages = 1 + len(markdown) // 2000
        self._log(f"rendered {title!r}: {pages} page(s)")
        return pages


def _k12_module() -> Any:
    """Kata 12's module, as ``kata serve`` (or the check that builds every demo) imported it."""
    module = sys.modules.get("k12_celery_handoff.handoff")
    if module is None:
        raise DemoError("kata 12's demo collaborators need its module, k12_celery_handoff.handoff, imported first")
    return module


def _k12_error(name: str) -> type[Exception]:
    """Kata 12's exception class ``name`` (a plain one if the module lacks it)."""
    error = getattr(sys.modules.get("k12_celery_handoff.handoff"), name, None)
    if isinstance(error, type) and issubclass(error, Exception):
        return error
    return type(name, (Exception,), {})


#: Where ``kata serve k12`` saves the documents: look at them there.
K12_STORAGE = Path(tempfile.gettempdir()) / "kata-k12-documents"
K12_REDIS_VAR = "KATA_REDIS_URL"  # a Redis URL: `kata serve k12` puts the broker and the results there


def k12_settings() -> Any:
    """Kata 12's settings for ``kata serve``: documents in a temporary folder, Redis if ``KATA_REDIS_URL`` names one."""
    module = _k12_module()
    K12_STORAGE.mkdir(exist_ok=True)
    return module.Settings(storage=K12_STORAGE, retry_delay=2.0, redis_url=os.environ.get(K12_REDIS_VAR) or None)


class K12Worker:
    """Kata 12's Celery worker for ``kata serve``: in this process, started with the first task sent.

    In production the worker is a process of its own (``celery --app ... worker``); here it is
    a thread of the server's process, so that one command shows the whole hand-off. It starts
    when the API sends its first task (so that merely building the app starts nothing), runs
    the tasks one at a time and logs what it receives and how each task ended; it stops when
    the server does.
    """

    def __init__(self, celery_app: Any, out: TextIO | None = None) -> None:
        self.celery_app = celery_app
        self.out = out or sys.stdout
        self.lock = threading.Lock()
        self.running: Any = None

    def say(self, text: str) -> None:
        stamp = datetime.now(timezone.utc).strftime("%H:%M:%S.%f")[:-3]
        self.out.write(f"[demo worker {stamp}] {text}\n")
        self.out.flush()

    def on_publish(self, **_: Any) -> None:
        """Celery's ``before_task_publish``: start the worker before the first message goes out."""
        with self.lock:
            if self.running is not None:
                return
            from celery.contrib.testing.worker import start_worker

            self.say(f"starting a Celery worker in this process, on {self.celery_app.conf.broker_url}")
            self.running = start_worker(self.celery_app, pool="solo", perform_ping_check=False, loglevel="INFO")
            worker = self.running.__enter__()
            atexit.register(self.stop, worker.hostname)

    def stop(self, hostname: str) -> None:
        self.celery_app.control.shutdown(destination=[hostname])
        with contextlib.suppress(Exception):
            self.running.__exit__(None, None, None)


def k12_celery_app() -> Any:
    """Kata 12's Celery app for ``kata serve``: the learner's ``create_celery``, a console renderer, a worker."""
    from celery import signals

    module = _k12_module()
    celery_app = module.create_celery(k12_settings(), ConsoleRenderer12())
    broker = str(celery_app.conf.broker_url or "")
    if broker.startswith(("memory://", "redis://")):
        worker = K12Worker(celery_app)
        signals.before_task_publish.connect(worker.on_publish, weak=False)
    else:
        sys.stdout.write(
            f"[demo worker] no worker: the Celery app's broker is {broker or 'not set'!r} "
            "(kata 12, task 1: memory:// by default)\n"
        )
    return celery_app


DEMO_SECRET = b"kata 11 demo secret"  # kata 11: what the app signs with and the demo receiver checks with
ID_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


class DemoReceiver(_Console):
    """Kata 11's receiver of webhooks, mounted at ``/receiver`` by ``kata serve k11``.

    Each delivery is checked with the learner's own ``verify`` (a delivery it refuses gets
    a 401), then answered as the last part of the URL says, per delivery id:

    - ``ok``: processes it (prints the event) and answers 204; a delivery id it has
      already processed is acknowledged and not processed again;
    - ``down``: 503 every time;
    - ``busy``: 429 with ``Retry-After: 3`` to the first two attempts, then as ``ok``;
    - ``busy-date``: the same, with the Retry-After as an HTTP-date three seconds ahead;
    - ``flaky``: processes the event, then answers 500 to the first attempt (as if it
      crashed before it could answer), then as ``ok``;
    - ``slow``: processes the first attempt at once, but answers it only 20 s later (the
      sender gives up at 15 s); then as ``ok``;
    - ``gone``: 410 every time.
    """

    label = "demo receiver"
    BEHAVIOURS = ("ok", "down", "busy", "busy-date", "flaky", "slow", "gone")
    SLOW = 20.0

    def __init__(self, *, secret: bytes, verify: Callable[..., bool], clock: Any, out: TextIO | None = None) -> None:
        from starlette.applications import Starlette
        from starlette.routing import Route

        super().__init__(0, out)
        self.secret = secret
        self.verify = verify
        self.clock = clock
        self.attempts: dict[tuple[str, str], int] = {}
        self.processed: set[str] = set()
        self.app = Starlette(routes=[Route("/{behaviour}", self.receive, methods=["POST"])])

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        await self.app(scope, receive, send)

    async def receive(self, request: Any) -> Any:
        """One attempt of one delivery: check it, then answer as the path says."""
        from starlette.responses import Response

        behaviour = request.path_params["behaviour"]
        if behaviour not in self.BEHAVIOURS:
            return Response(f"no behaviour {behaviour!r}: try one of {', '.join(self.BEHAVIOURS)}\n", status_code=404)
        body = await request.body()
        msg_id, stamp, signature = (request.headers.get(name) for name in ID_HEADERS)
        if msg_id is None or stamp is None or signature is None:
            self._log(f"/{behaviour}: a request without the webhook headers: 400")
            return Response("the webhook-id, webhook-timestamp and webhook-signature headers are required\n", 400)
        key = (behaviour, msg_id)
        number = self.attempts[key] = self.attempts.get(key, 0) + 1
        short = msg_id if len(msg_id) <= 13 else f"{msg_id[:13]}…"
        name = f"delivery {short} attempt {number}"
        if not self.verify(
            self.secret, msg_id=msg_id, timestamp=stamp, signature=signature, body=body, now=self.clock.now()
        ):
            self._log(f"/{behaviour}: {name}: REFUSED by verify (a wrong signature, or a timestamp too far off): 401")
            return Response(status_code=401)
        self._log(f"/{behaviour}: {name}: verify says genuine (webhook-timestamp {stamp})")
        return await self._answer(behaviour, number, name, msg_id, body)

    async def _answer(self, behaviour: str, number: int, name: str, msg_id: str, body: bytes) -> Any:
        from email.utils import format_datetime

        from starlette.responses import Response

        if behaviour == "down":
            self._log(f"/{behaviour}: {name}: answering 503 Service Unavailable")
            return Response(status_code=503)
        if behaviour == "gone":
            self._log(f"/{behaviour}: {name}: answering 410 Gone")
            return Response(status_code=410)
        if behaviour in {"busy", "busy-date"} and number <= 2:
            later = format_datetime(datetime.now(timezone.utc) + timedelta(seconds=3), usegmt=True)
            value = "3" if behaviour == "busy" else later
            self._log(f"/{behaviour}: {name}: answering 429 Too Many Requests, Retry-After: {value}")
            return Response(status_code=429, headers={"retry-after": value})
        if behaviour == "slow" and number == 1:
            self._process(name, msg_id, body)
            self._log(f"/{behaviour}: {name}: done; now {self.SLOW:g} s of other work before it answers")
            await asyncio.sleep(self.SLOW)
            self._log(f"/{behaviour}: {name}: answering 204 at last (is the sender still waiting?)")
            return Response(status_code=204)
        self._process(name, msg_id, body)
        if behaviour == "flaky" and number == 1:
            self._log(f"/{behaviour}: {name}: crashed before answering: 500 Internal Server Error")
            return Response(status_code=500)
        self._log(f"/{behaviour}: {name}: answering 204 No Content")
        return Response(status_code=204)

    def _process(self, name: str, msg_id: str, body: bytes) -> None:
        if msg_id in self.processed:
            self._log(f"  {name}: already processed this id: acknowledged, NOT processed again")
            return
        self.processed.add(msg_id)
        self._log(f"  {name}: PROCESSED {body.decode('utf-8', errors='replace')[:200]}")


# --------------------------------------------------------------------------- kata 14

K14_UPLOADS = Path(tempfile.gettempdir()) / "kata-k14-uploads"


def k14_settings() -> Any:
    """Kata 14's settings for ``kata serve``: the defaults, with an upload folder in the system's temporary folder."""
    module = sys.modules.get("k14_file_pipeline.pipeline")
    if module is None:
        raise DemoError("kata 14's demo collaborators need its module, k14_file_pipeline.pipeline, imported first")
    K14_UPLOADS.mkdir(exist_ok=True)
    sys.stdout.write(f"[demo settings] uploads are stored in {K14_UPLOADS}\n")
    return module.Settings(upload_dir=K14_UPLOADS)


class ConsoleInventory(_Console):
    """Kata 14's inventory: takes ``KATA_DEMO_DELAY`` seconds per chunk, and says what it got and where it ran.

    ``KATA_DEMO_FAIL=inventory`` makes every chunk fail, after the delay, as a server that is down would.
    """

    label = "demo inventory"

    def __init__(self, delay: float | None = None, out: TextIO | None = None) -> None:
        super().__init__(delay, out)
        self.rows = 0

    def save(self, counts: list[Any]) -> None:
        """Keep one chunk of counts, blocking for ``delay`` seconds."""
        first = getattr(counts[0], "sku", "?") if counts else "-"
        self._log(f"saving {len(counts)} counts from {first} {_where()} (takes {self.delay:g} s)")
        time.sleep(self.delay)
        if _told_to_fail("inventory"):
            self._log("the inventory is down (KATA_DEMO_FAIL=inventory)")
            raise ConnectionError("the demo inventory is down")
        self.rows += len(counts)
        self._log(f"saved {len(counts)} counts; {self.rows} in all since the server started")


def _mount_the_demo_receiver(app: Any, factory: Callable[..., Any], arguments: dict[str, Any]) -> None:
    """Kata 11: a :class:`DemoReceiver` at ``/receiver``, checking with the learner's ``verify``."""
    module = sys.modules.get(getattr(factory, "__module__", ""))
    verify = getattr(module, "verify", None)
    if callable(verify) and callable(getattr(app, "mount", None)):
        secret, clock = arguments.get("secret", DEMO_SECRET), arguments.get("clock") or RealClock()
        receiver = DemoReceiver(secret=secret, verify=verify, clock=clock)
        app.mount("/receiver", receiver)


class ShopMailer(ConsoleMailer):
    """Kata 16's demo mail client: ``asend`` takes ``delay`` seconds; ``KATA_DEMO_FAIL=mailer`` makes it fail."""

    async def asend(self, to: str, subject: str, body: str) -> None:
        """Deliver one email, or fail as a mail server that is down does."""
        if _told_to_fail("mailer"):
            self._log(f"sending to {to}: {subject!r}: the mail server is DOWN (KATA_DEMO_FAIL=mailer)")
            raise ConnectionError("the demo mail server is down")
        await super().asend(to, subject, body)


def demo_warehouse(out: TextIO | None = None) -> Any:
    """Kata 16's warehouse: an ``httpx.AsyncClient`` whose requests are printed and answered 200, never sent."""
    import httpx

    printer = _Console(0, out)
    printer.label = "demo warehouse"

    def receive(request: httpx.Request) -> httpx.Response:
        printer._log(f"{request.method} {request.url}: {request.content.decode('utf-8', errors='replace')}")  # noqa: SLF001
        return httpx.Response(200, json={"shipping": True})

    return httpx.AsyncClient(transport=httpx.MockTransport(receive))


#: Kata slug -> parameter name -> a builder of that kata's own demo collaborator. A kata whose
#: experiments need more than the shared demo shows adds one here, leaving the shared one as it is.
KATA_COLLABORATORS: dict[str, dict[str, Callable[[], Any]]] = {
    "k01_fire_and_forget": {"mailer": ThreadWatchingMailer},
    "k10_dead_letters_and_cleanup": {
        "handlers": lambda: {name: ConsoleJobHandler10(name) for name in ("send_invoice", "resize_image")},
        "ttl_seconds": lambda: 30.0,  # short enough to watch a record expire
        "dead_letter_capacity": lambda: 3,  # small enough to watch the oldest letter dropped
    },
    "k07_db_session": {"mailer": BouncingMailer, "database_url": demo_database_url},
    "k08_async_vs_sync": {
        "stats": ConsoleStats,
        "reports": ConsoleReports,
        "feed": ConsoleFeed,
        "threads": lambda: int(_number_from("KATA_DEMO_THREADS", 40)),  # the app's thread pool
        "drain_timeout": lambda: _number_from("KATA_DEMO_DRAIN", 5.0),  # the app's bound at shutdown
    },
    "k13_email_system": {
        "sender": DemoMailServer,
        "secret_key": lambda: "kata serve's demo key: never use a key from a repository in production",
    },
    "k14_file_pipeline": {"settings": k14_settings, "inventory": ConsoleInventory},
    "k15_analytics": {
        "store": ConsoleEventStore,
        "period": lambda: _number_from("KATA_DEMO_PERIOD", 10.0),  # seconds between aggregation runs
    },
    "k17_batching": {"provider": ConsoleProvider},
    "k12_celery_handoff": {"settings": k12_settings, "celery_app": k12_celery_app},
    "k09_limits_and_timeouts": {"work": ConsoleRenderer, "limits": demo_limits},
    "k11_webhooks": {"secret": lambda: DEMO_SECRET},
    "k16_testing_tasks": {"mailer": ShopMailer, "warehouse": demo_warehouse},
}


#: Kata slug -> what ``kata serve`` adds to that kata's app once the factory has built it,
#: called as ``finish(app, factory, arguments)`` (the collaborators the factory was given).
KATA_FINISHERS: dict[str, Callable[[Any, Callable[..., Any], dict[str, Any]], None]] = {
    "k11_webhooks": _mount_the_demo_receiver,
}


class DemoError(Exception):
    """The factory needs something no demo collaborator provides."""


def _kata_of(factory: Callable[..., Any]) -> str:
    """The slug of the kata whose module defines ``factory``: the name of the module's folder."""
    try:
        return Path(inspect.getfile(factory)).parent.name
    except TypeError:  # a builtin or a C extension: no file, no kata
        return ""


def build_app(factory: Callable[..., Any]) -> Any:
    """Call ``factory`` with a demo collaborator for each parameter it names."""
    arguments: dict[str, Any] = {}
    slug = _kata_of(factory)
    builders = {**COLLABORATORS, **KATA_COLLABORATORS.get(slug, {})}
    for name, parameter in inspect.signature(factory).parameters.items():
        if parameter.kind in {parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD}:
            continue
        if name in builders:
            arguments[name] = builders[name]()
        elif parameter.default is parameter.empty:
            known = ", ".join(sorted(COLLABORATORS))
            raise DemoError(
                f"{factory.__qualname__}() needs {name!r}, and dojo/demo.py has no demo collaborator of that "
                f"name (it has: {known}). Maintainers: add one to COLLABORATORS."
            )
    if any(p.kind is p.POSITIONAL_ONLY for p in inspect.signature(factory).parameters.values()):
        app = factory(*arguments.values())
    else:
        app = factory(**arguments)
    finish = KATA_FINISHERS.get(slug)
    if finish is not None:
        finish(app, factory, arguments)
    return app


# --------------------------------------------------------------------------- serving


#: Where ``kata serve`` serves Swagger UI's and ReDoc's files (from the fastapi-offline package).
ASSETS_URL = "/_kata/docs-assets"


def _assets_folder() -> str:
    from importlib.resources import files

    return str(files("fastapi_offline") / "static")


class ServedApp:
    """The kata's app as ``kata serve`` serves it: docs that work offline, errors that say why.

    - ``/docs`` (the app's ``docs_url``) is Swagger UI from files on this machine, not a
      CDN, with each call's duration shown; ``/redoc`` likewise;
    - an exception in the learner's code answers 500 with a plain-text body naming it
      and the learner's line (:class:`dojo.timeline.CatchAppErrors`, as the specs'
      client does), and ``on_error`` is told, to print it in the terminal;
    - everything else, the lifespan included, goes to the app untouched.
    """

    def __init__(self, app: Any, on_error: Callable[[BaseException], None] | None = None) -> None:
        from starlette.routing import Mount, Route, Router
        from starlette.staticfiles import StaticFiles

        from dojo.timeline import CatchAppErrors

        self.app = app
        self.catcher = CatchAppErrors(app, on_error=on_error)
        routes: list[Any] = [Mount(ASSETS_URL, app=StaticFiles(directory=_assets_folder()))]
        self.pages: set[str] = set()
        openapi_url = getattr(app, "openapi_url", None)
        if openapi_url:
            for url, page in (
                (getattr(app, "docs_url", None), self._swagger),
                (getattr(app, "redoc_url", None), self._redoc),
            ):
                if url:
                    routes.append(Route(url, page, include_in_schema=False))
                    self.pages.add(url)
        self.docs = Router(routes=routes)

    def _swagger(self, _request: Any) -> Any:
        from fastapi.openapi.docs import get_swagger_ui_html

        parameters = dict(getattr(self.app, "swagger_ui_parameters", None) or {})
        parameters["displayRequestDuration"] = True  # the fast 202 beside the slow work, in milliseconds
        return get_swagger_ui_html(
            openapi_url=self.app.openapi_url,
            title=f"{self.app.title} - Swagger UI",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            oauth2_redirect_url=getattr(self.app, "swagger_ui_oauth2_redirect_url", None),
            swagger_ui_parameters=parameters,
        )

    def _redoc(self, _request: Any) -> Any:
        from fastapi.openapi.docs import get_redoc_html

        return get_redoc_html(
            openapi_url=self.app.openapi_url,
            title=f"{self.app.title} - ReDoc",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and (path in self.pages or path.startswith(ASSETS_URL + "/")):
            await self.docs(scope, receive, send)
            return
        await self.catcher(scope, receive, send)
