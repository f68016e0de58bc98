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
import inspect
import os
import random
import re
import sys
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


def _mount_the_demo_receiver(app: Any, factory: Callable[..., Any], arguments: dict[str, Any]) -> None:
    """Kata 11: a :class:`DemoReceiver` at ``/receiver``, checking with the learner's ``verify``."""
    module = sys.modules.get(getattr(factory, "__module__", ""))
    verify = getattr(module, "verify", None)
    if callable(verify) and callable(getattr(app, "mount", None)):
        secret, clock = arguments.get("secret", DEMO_SECRET), arguments.get("clock") or RealClock()
        receiver = DemoReceiver(secret=secret, verify=verify, clock=clock)
        app.mount("/receiver", receiver)


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


#: Kata slug -> parameter name -> a builder of that kata's own demo collaborator. A kata whose
#: experiments need more than the shared demo shows adds one here, leaving the shared one as it is.
KATA_COLLABORATORS: dict[str, dict[str, Callable[[], Any]]] = {
    "k01_fire_and_forget": {"mailer": ThreadWatchingMailer},
    "k11_webhooks": {"secret": lambda: DEMO_SECRET},
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
