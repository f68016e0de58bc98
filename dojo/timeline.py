"""A timeline of what happened, in order, during one call to an ASGI app.

Test clients (``TestClient``, httpx's ``ASGITransport``) return only after every
background task has finished, so they cannot show *when* the response went out
relative to the work queued behind it. The :class:`Timeline` can: it drives the ASGI
app itself, records the moment the response's final body chunk is sent, and lets the
fakes record their own events (``email started``, ``email sent`` …) on the same line.
Order is a sequence number, not a clock, so nothing here waits on real time.

    exchange = await timeline.request(app, "POST", "/notifications", json={...})
    timeline.expect_order("response complete", "email sent", revisit="task 3")
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json as jsonlib
import re
import threading
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlencode

from dojo.manifest import REPO_ROOT
from dojo.teach import lesson, without_pytest_explanation

T = TypeVar("T")

ASGIApp = Callable[..., Awaitable[None]]

#: The address the timeline and the shared client present as the caller's.
CLIENT_ADDRESS = ("203.0.113.7", 50123)  # TEST-NET-3: never a real host
SERVER_ADDRESS = ("testserver", 80)

RESPONSE_START = "response start"
RESPONSE_COMPLETE = "response complete"
CALL_FINISHED = "ASGI call finished"
APP_RAISED = "app raised"


@dataclass(frozen=True)
class Event:
    """One thing that happened: its place in the order, its name and a detail."""

    seq: int
    name: str
    detail: str = ""
    thread: str = ""

    def __str__(self) -> str:
        detail = f"  {self.detail}" if self.detail else ""
        return f"#{self.seq} {self.name}{detail}"


@dataclass
class Exchange:
    """What the client saw of one request, plus anything the app raised."""

    status: int | None = None
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    error: BaseException | None = None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.body)

    def __str__(self) -> str:
        error = f"; the app raised {describe_error(self.error)}" if self.error else ""
        return f"HTTP {self.status} {self.text[:300]}{error}"

    __repr__ = __str__


#: The longest any spec waits for the learner's code, in seconds. A correct app and a wrong
#: one both answer at once (nothing here is slow), so a call still running after this never
#: will end: the spec fails with a lesson instead of hanging.
BOUND = 2.0


class StillRunningError(AssertionError):
    """The learner's code was still running at :data:`BOUND`: the spec stopped it (a failure with a lesson)."""


async def within_bound(call: Awaitable[T], *, revisit: str, expected: str = "the call finished") -> T:
    """Await ``call`` (the learner's code), but never longer than :data:`BOUND`: a hang fails with a lesson.

    What the call returns or raises comes back as it is; only the hang is :class:`StillRunningError`.
    """
    __tracebackhide__ = True
    task = asyncio.ensure_future(call)
    done, _ = await asyncio.wait({task}, timeout=BOUND)
    if not done:
        task.cancel()
        raise StillRunningError(
            lesson(
                expected=f"{expected} within {BOUND:g} s",
                got="still running: something in it waits for ever or loops",
                revisit=revisit,
            )
        )
    return task.result()


def _ended(calls: Iterable[asyncio.Future[Any]]) -> bool:
    """Every one of ``calls`` has ended (a spec that named none waits for its bound)."""
    calls = list(calls)
    return bool(calls) and all(call.done() for call in calls)


async def _value(value: object) -> object:
    return await value if inspect.isawaitable(value) else value


async def wait_until(
    condition: Callable[[], object],
    *,
    expected: str,
    got: Callable[[], object],
    revisit: str,
    during: Iterable[asyncio.Future[Any]] = (),
) -> None:
    """Ask ``condition()`` (a value or an awaitable) again until it holds: at most BOUND seconds, else a lesson.

    ``during`` names the running calls whose work the condition waits for: once every one
    of them has ended and the condition still does not hold, nothing is left to make it
    hold, and the spec fails at once instead of waiting out its bound.
    """
    __tracebackhide__ = True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + BOUND
    calls = list(during)
    while not await _value(condition()):
        if _ended(calls):
            if await _value(condition()):  # the last call's work may have made it hold as it ended
                return
            ended = f"{await _value(got())}\n(the requests had ended: nothing was left to make it hold)"
            raise AssertionError(lesson(expected=expected, got=ended, revisit=revisit))
        if loop.time() > deadline:
            raise AssertionError(lesson(expected=expected, got=str(await _value(got())), revisit=revisit))
        await asyncio.sleep(0.001)


_GOT = re.compile(r"^\s*got:\s+(.*)$", re.MULTILINE)


def _got(message: str) -> str:
    """What a failure's lesson says it got (the first line of it), else the message's first line."""
    said = _GOT.findall(message)
    if said:
        return said[-1]
    lines = message.strip().splitlines()
    return lines[0] if lines else "a failure without a message"


async def every_case(
    cases: Mapping[str, T],
    check: Callable[[T], Awaitable[None]],
    *,
    what: str,
    revisit: str,
    within: Callable[..., Awaitable[object]] = within_bound,
) -> None:
    """Check each of ``cases`` in turn, within one :data:`BOUND` for them all; fail once, naming each case that failed.

    For a spec that tries many inputs against one app: a case whose check fails is noted
    and the next one is checked. The spec then fails with the first failing case's lesson
    whole and what each other one got, so the learner sees every input that goes wrong
    (as they would with a spec per case) for the price of one app. The checks run one after
    another, each after the last one's work is over, so a check should look at what its own
    case changed. A hang, or all of them together taking longer than the bound, ends the
    spec at once, naming the case it stopped in; an error that is not a failed check (the
    spec's own, say) is raised as it is, with a note of its case.

    ``within`` is what bounds them: :func:`within_bound`, or a kata's own bound, called the
    same way and raising :class:`StillRunningError` on a hang (one that gives code on a
    virtual clock more virtual seconds, say, so that a real sleep in the learner's code is
    seen for what it is instead of ending the spec as a hang).
    """
    __tracebackhide__ = True
    failed: list[tuple[str, str]] = []
    current = ""

    async def check_all() -> None:
        nonlocal current
        for name, case in cases.items():
            current = name
            try:
                await check(case)
            except StillRunningError:
                raise
            except AssertionError as error:
                # Without pytest's explanation: the next case's line would be read as part of it.
                failed.append((name, without_pytest_explanation(str(error))))
            except Exception as error:
                error.add_note(f"(the spec was checking the case {name!r} of its {what})")
                raise

    try:
        await within(check_all(), revisit=revisit, expected=f"each of the {len(cases)} {what} checked")
    except StillRunningError as error:
        place = list(cases).index(current) + 1
        raise StillRunningError(f"{what}: stopped in the case {current!r} ({place} of {len(cases)}){error}") from None
    if not failed:
        return
    (first, message), others = failed[0], failed[1:]
    text = f"{len(failed)} of the {len(cases)} {what} went wrong; the first, {first!r}:{message}"
    if others:
        alike: dict[str, list[str]] = {}
        for name, said in others:  # grouped by what they got; the same as the first is said so
            got = _got(said)
            alike.setdefault("the same" if got == _got(message) else f"got {got[:120]}", []).append(repr(name))
        text += "  also:    " + "; ".join(f"{', '.join(names)} ({got})" for got, names in alike.items()) + "\n"
    raise AssertionError(text)


class Timeline:
    """Events in the order they happened, recorded from any thread."""

    def __init__(self, safety_timeout: float = BOUND) -> None:
        #: Only a hang ever waits this long: a correct app and a wrong one both finish at once.
        self.safety_timeout = safety_timeout
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self._waiters: list[tuple[frozenset[str], asyncio.AbstractEventLoop, asyncio.Future[Event]]] = []
        self._calls: list[asyncio.Task[Exchange]] = []

    # ------------------------------------------------------------------ recording
    def record(self, name: str, detail: str = "") -> Event:
        """Note that ``name`` happened now. Safe to call from worker threads."""
        with self._lock:
            event = Event(len(self._events) + 1, name, detail, threading.current_thread().name)
            self._events.append(event)
            waiters = [w for w in self._waiters if name in w[0]]
            self._waiters = [w for w in self._waiters if name not in w[0]]
        for _, loop, future in waiters:
            loop.call_soon_threadsafe(_resolve, future, event)
        return event

    @property
    def events(self) -> tuple[Event, ...]:
        with self._lock:
            return tuple(self._events)

    def names(self) -> list[str]:
        return [event.name for event in self.events]

    def first(self, name: str) -> Event | None:
        return next((event for event in self.events if event.name == name), None)

    def count(self, name: str) -> int:
        return sum(1 for event in self.events if event.name == name)

    async def wait_for(self, *names: str, during: asyncio.Future[Any] | None = None) -> Event:
        """The first event called one of ``names``: already recorded, or the next to come.

        Waits for the app, never for the clock; ``safety_timeout`` only stops a hang. With
        ``during`` (the running call that should make it happen, as :meth:`start` returns
        it), a call that ends without it fails at once: its background work is over too.
        """
        wanted = frozenset(names)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Event] = loop.create_future()
        with self._lock:
            done = next((event for event in self._events if event.name in wanted), None)
            if done is None:
                self._waiters.append((wanted, loop, future))
        if done is not None:
            return done
        watched = {future} if during is None else {future, during}
        finished, _ = await asyncio.wait(watched, timeout=self.safety_timeout, return_when=asyncio.FIRST_COMPLETED)
        if future in finished:
            return future.result()
        with self._lock:
            self._waiters = [waiter for waiter in self._waiters if waiter[2] is not future]
            done = next((event for event in self._events if event.name in wanted), None)
        future.cancel()
        if done is not None:  # recorded as the call ended, before its news reached this loop
            return done
        missing = " or ".join(sorted(wanted))
        if finished:
            raise AssertionError(f"The request ended and nothing called {missing} had happened.\n{self.render()}")
        raise AssertionError(
            f"Nothing called {missing} happened within {self.safety_timeout} s: the app seems to hang.\n{self.render()}"
        )

    # ------------------------------------------------------------------ reading
    def render(self, expected: Iterable[str] = ()) -> str:
        """The timeline as text; beside it, the expected order when one is given."""
        actual = [str(event) for event in self.events] or ["(nothing happened)"]
        wanted = [f"{number}. {name}" for number, name in enumerate(expected, start=1)]
        if not wanted:
            return "  what happened:\n" + "\n".join(f"    {line}" for line in actual)
        width = max(len("expected, in this order"), *(len(line) for line in wanted)) + 4
        rows = [f"    {'expected, in this order':<{width}}what happened"]
        for index in range(max(len(wanted), len(actual))):
            left = wanted[index] if index < len(wanted) else ""
            right = actual[index] if index < len(actual) else ""
            rows.append(f"    {left:<{width}}{right}".rstrip())
        return "\n".join(rows)

    def expect_order(self, *names: str, why: str, revisit: str) -> None:
        """Fail unless the first event of each name happened, in this order."""
        __tracebackhide__ = True
        positions = [self.first(name) for name in names]
        missing = [name for name, event in zip(names, positions, strict=True) if event is None]
        in_order = not missing and all(a.seq < b.seq for a, b in itertools.pairwise(positions))  # type: ignore[union-attr]
        if in_order:
            return
        got = f"{', '.join(missing)} never happened" if missing else "another order"
        raise AssertionError(why + lesson(expected=" then ".join(names), got=got, revisit=revisit) + self.render(names))

    # ------------------------------------------------------------------ driving an app
    def start(  # noqa: C901, PLR0913 - one ASGI exchange, its keyword arguments mirror httpx's request()
        self,
        app: ASGIApp,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> asyncio.Task[Exchange]:
        """Begin one request to ``app`` and return the running call.

        Await it for the :class:`Exchange`; meanwhile :meth:`wait_for` can watch events.
        The call records ``response start``, ``response complete`` (the final body chunk
        was sent: the client has its answer), ``app raised`` and ``ASGI call finished``
        (the app returned, which is after its background tasks ran).
        """
        body = content if content is not None else (b"" if json is None else jsonlib.dumps(json).encode())
        raw_headers = [(b"host", b"testserver")]
        if json is not None:
            raw_headers.append((b"content-type", b"application/json"))
        if body:
            raw_headers.append((b"content-length", str(len(body)).encode()))
        raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": method.upper(),
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": urlencode(params or {}).encode(),
            "headers": raw_headers,
            "client": CLIENT_ADDRESS,
            "server": SERVER_ADDRESS,
            "state": {},
        }
        exchange = Exchange()
        response_done = asyncio.Event()
        request_sent = False

        async def receive() -> dict[str, Any]:
            nonlocal request_sent
            if not request_sent:
                request_sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await response_done.wait()
            return {"type": "http.disconnect"}

        async def send(message: Mapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                exchange.status = message["status"]
                exchange.headers = [(k.decode().lower(), v.decode()) for k, v in message.get("headers", [])]
                self.record(RESPONSE_START, str(exchange.status))
            elif message["type"] == "http.response.body":
                exchange.body += message.get("body", b"")
                if not message.get("more_body", False):
                    response_done.set()
                    self.record(RESPONSE_COMPLETE, f"HTTP {exchange.status}, {len(exchange.body)} bytes")

        async def call() -> Exchange:
            try:
                await app(scope, receive, send)
            except Exception as error:  # noqa: BLE001 - the app's own failure is part of what happened
                exchange.error = error
                self.record(APP_RAISED, describe_error(error))
            self.record(CALL_FINISHED)
            return exchange

        task = asyncio.ensure_future(call())
        self._calls.append(task)
        return task

    def close(self) -> None:
        """Settle the calls this timeline started (the ``timeline`` fixture does this after each spec).

        A spec that stopped early (it failed, or a time limit interrupted the app) leaves its
        call unawaited: still running, or finished with an exception nobody read. Either would
        surface later, in another spec, as asyncio's "Task exception was never retrieved".
        """
        for task in self._calls:
            if task.done():
                if not task.cancelled():
                    task.exception()  # read it, so asyncio does not report it later
            else:
                task.add_done_callback(_read_outcome)
                task.cancel()
        self._calls.clear()

    async def request(self, app: ASGIApp, method: str, path: str, **kwargs: Any) -> Exchange:
        """Make one request and wait until the app has returned (background tasks included).

        An exception the app raised is not raised here: it is on the timeline and in
        ``exchange.error``, for the spec's message to explain.
        """
        return await self.start(app, method, path, **kwargs)


def describe_error(error: BaseException) -> str:
    """``Type: message (file:line in function)``, at the deepest frame outside the libraries.

    That frame is nearly always the learner's own line, which is what they need to see.
    """
    where = ""
    # The frames themselves, not ``traceback.extract_tb``: that one also reads every frame's
    # source line and column span, ~1 ms a failure through the ASGI stack's thirty frames.
    for frame, lineno in traceback.walk_tb(error.__traceback__):
        code = frame.f_code
        if not _is_library(code.co_filename):
            where = f" ({_short_path(code.co_filename)}:{lineno}, in {code.co_name})"
    return f"{type(error).__name__}: {error}{where}"


def _is_library(filename: str) -> bool:
    path = filename.replace("\\", "/")
    return "/site-packages/" in path or "/lib/python3" in path or "/dojo/" in path or path.startswith("<")


def _short_path(filename: str) -> str:
    path = Path(filename)
    for anchor in (Path.cwd(), REPO_ROOT):
        if path.is_relative_to(anchor):
            return str(path.relative_to(anchor))
    return filename


class CatchAppErrors:
    """ASGI middleware for tests: an app's exception becomes a 500 that says what and where.

    Before the response started, the client gets ``500`` with the exception and the
    learner's line as the body, instead of a library traceback. After it (a background
    task failed) the client already has its answer. Either way the exception is kept in
    :attr:`errors` for specs to inspect, and never raised into the spec; ``on_error``,
    if given, is told of each (``kata serve`` prints it in the terminal).
    """

    def __init__(self, app: ASGIApp, on_error: Callable[[BaseException], None] | None = None) -> None:
        self.app = app
        self.errors: list[BaseException] = []
        self.on_error = on_error

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        held: list[Mapping[str, Any]] = []  # Starlette's own bare 500, kept back until we know why

        async def watch(message: Mapping[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start" and message["status"] == 500:
                held.append(message)
                return
            if held:
                held.append(message)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as error:  # noqa: BLE001 - the learner's code may raise anything
            self.errors.append(error)
            if self.on_error is not None:
                self.on_error(error)
            if not started:
                body = f"Internal Server Error\n{describe_error(error)}".encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 500,
                        "headers": [(b"content-type", b"text/plain; charset=utf-8")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
            return
        for message in held:
            await send(message)


def _read_outcome(task: asyncio.Task[Exchange]) -> None:
    if not task.cancelled():
        task.exception()


def _resolve(future: asyncio.Future[Event], event: Event) -> None:
    if not future.done():
        future.set_result(event)
