"""Fakes and fixtures for kata 11's specs: a clock, a sleep, receivers faked and real.

Read them if you like; you do not need to change them.

**Two kinds of receiver.** Most specs fake the receiver with respx: httpx's requests never
leave the process, and each one gets the answer the spec scripted (a status, a
Retry-After, or an error such as a refused connection); respx is started once for the
run, and each spec clears its routes. The specs of task 7 use a real one: an HTTP/1.1
server listening on 127.0.0.1, in the spec's own event loop, which answers real requests
over real sockets and sees each connection open and close (respx lets 127.0.0.1 through
to it).

**No real time reaches a verdict.** The specs of ``deliver`` (tasks 3 to 5) run on an
event loop whose clock is virtual (dojo/virtual_clock.py): the clock stands still while
anything can run and jumps to the next timer when nothing can, so code that sleeps for
real returns at once, and the specs see that it never asked the injected ``sleep``. The
specs that run the whole app (tasks 6 and 7) use an ordinary event loop, since the app may
run `def` endpoints in worker threads, which a virtual clock would not wait for, and real
sockets need one; the injected sleep waits for nothing there either, and code that hangs
is stopped after 2 seconds.

**No certificates read.** No spec makes a TLS connection, so while a spec runs the
trust store of every httpx client is an empty folder (``SSL_CERT_DIR``): building a
client then takes a fraction of a millisecond, instead of reading the 150 certificates
of a real trust store each time (0.03 to 0.1 s a client).

**Nothing left behind.** After every spec, ``leak_check`` fails it if a thread or a file
descriptor (a socket, a file) it opened is still open: a client that is never closed
keeps its connections, and so its sockets, open.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import ssl  # noqa: F401 - imported while pytest collects, not by the first client a spec makes
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import certifi  # noqa: F401 - as ssl: httpx imports it when it makes its first client
import fastapi
import h11
import httpx
import pytest
import respx
from asgi_lifespan import LifespanManager

from dojo.fakes import EPOCH
from dojo.timeline import BOUND, Timeline
from dojo.virtual_clock import VirtualClockLoop, stop_leftovers

ATTEMPT = "delivery attempt"
CONNECTION_OPENED = "receiver: connection opened"
CONNECTION_CLOSED = "receiver: connection closed"
REAL_REQUEST = "receiver: request"

#: The fixtures that make a spec run on an ordinary event loop: those that run the app, whose
#: `def` endpoints and `def` background tasks run in worker threads, which the virtual clock
#: does not wait for (``fresh_app`` builds one app per case), and those with real sockets (task 7).
ORDINARY_LOOP = frozenset({"app", "fresh_app", "started_app", "client", "loopback", "refusing_url"})


def _warm_up_the_stack() -> None:
    """One request through a throwaway app, while pytest collects.

    FastAPI, pydantic and asgi-lifespan import part of themselves on their first request
    (pydantic's v1 compatibility layer alone is some thirty modules): that is paid here,
    once, instead of inside whichever spec runs first.
    """

    @contextlib.asynccontextmanager
    async def lifespan(_: fastapi.FastAPI) -> AsyncIterator[None]:
        yield

    app = fastapi.FastAPI(lifespan=lifespan)

    @app.post("/{number}")
    async def echo(number: int, body: dict[str, Any]) -> dict[str, Any]:
        return {"number": number, **body}

    async def one_request() -> None:
        async with LifespanManager(app) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://warm-up") as client:
                await client.post("/1", json={"warm": True})
                await client.post("/x", json=[])  # and a 422

    asyncio.run(one_request())


_warm_up_the_stack()


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], Any]]:
    """Specs that run the app, or use real sockets, on an ordinary loop; the others on the virtual clock."""
    if ORDINARY_LOOP & set(getattr(item, "fixturenames", ())):
        return {"ordinary": asyncio.new_event_loop}
    return {"virtual-clock": VirtualClockLoop}


@pytest.fixture(autouse=True, scope="session")
def _no_trust_store_to_read(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Each httpx client builds its TLS context from an empty folder: no TLS here, nothing to read."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("SSL_CERT_FILE", raising=False)
        patch.setenv("SSL_CERT_DIR", str(tmp_path_factory.mktemp("no-certificates")))
        yield


def _descriptors() -> set[tuple[str, str]]:
    found = set()
    with contextlib.suppress(OSError):
        for entry in Path("/proc/self/fd").iterdir():
            with contextlib.suppress(OSError):
                found.add((entry.name, str(entry.readlink())))
    return found


_OPEN_AT_START: set[tuple[str, str]] = set()


def pytest_runtest_logstart(nodeid: str, location: tuple[str, int | None, str]) -> None:
    """What is open before a spec, to tell afterwards whether it left something open."""
    _OPEN_AT_START.clear()
    _OPEN_AT_START.update(_descriptors())


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    """A spec that left sockets open (``leak_check`` said so): close them now, quietly.

    Once the spec is over, nothing refers to the client it left open, and the garbage
    collector closes its sockets, each with a ResourceWarning: if that happened during a
    later spec, or as pytest exits, the warning would fail something else, far from the
    lesson. So the collection happens here, with that warning silenced.
    """
    if _descriptors() - _OPEN_AT_START:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()


@pytest.fixture(autouse=True)
async def _nothing_left_behind(leak_check: None) -> AsyncIterator[None]:
    """Tasks a spec's code started and left running are stopped; then ``leak_check`` looks for open sockets."""
    before = asyncio.all_tasks()
    yield
    await stop_leftovers(before)


# ------------------------------------------------------------------ the clock and the sleep


class FakeClock:
    """The injected clock: ``now()``, the only call the code should make, and ``advance`` for the spec."""

    def __init__(self, start: datetime = EPOCH) -> None:
        self._now = start

    def now(self) -> datetime:
        """The time, timezone-aware UTC."""
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time does not go backwards")
        self._now += timedelta(seconds=seconds)


class FakeSleep:
    """The injected ``await sleep(seconds)``: returns at once, moves the clock, keeps every wait.

    ``watch`` (set by a spec) is called at each wait; what it returns is kept in ``seen``,
    so a spec can say what the code's records said while it waited.
    """

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[float] = []
        self.watch: Callable[[], object] | None = None
        self.seen: list[object] = []

    async def __call__(self, seconds: float) -> None:
        if self.watch is not None:
            self.seen.append(self.watch())
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise TypeError(f"sleep takes a number of seconds, got {seconds!r}")
        if seconds < 0:
            raise ValueError(f"sleep length must be non-negative, got {seconds}")
        self.calls.append(seconds)
        self.clock.advance(seconds)
        await asyncio.sleep(0)  # still a point where other tasks may run, as a real sleep is

    def __repr__(self) -> str:
        return f"waits {self.calls}" if self.calls else "no wait"


@pytest.fixture(name="clock")
def _clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(name="sleep")
def _sleep(clock: FakeClock) -> FakeSleep:
    return FakeSleep(clock)


@pytest.fixture(name="fresh_sleep")
def _fresh_sleep() -> Callable[[], FakeSleep]:
    """Makes a sleep on a clock of its own at each call: one per case, for a spec that tries many."""
    return lambda: FakeSleep(FakeClock())


# ------------------------------------------------------------------ receivers faked with respx

Outcome = int | tuple[int, dict[str, str]] | type[httpx.TransportError]


@dataclass
class ScriptedReceiver:
    """A receiver at ``url``, faked with respx: answers attempt N with ``script[N]``; the last answer repeats.

    An answer is a status (``503``), a status with headers (``(429, {"Retry-After": "7"})``)
    or an httpx error class (``httpx.ConnectError``), raised as if no answer ever came.
    """

    url: str
    timeline: Timeline
    script: list[Outcome] = field(default_factory=lambda: [204])
    requests: list[httpx.Request] = field(default_factory=list)

    def will(self, *outcomes: Outcome) -> ScriptedReceiver:
        self.script = list(outcomes)
        return self

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        number = len(self.requests)
        outcome = self.script[min(number, len(self.script)) - 1]
        if isinstance(outcome, type):
            self.timeline.record(ATTEMPT, f"#{number} to {self.url}: {outcome.__name__}")
            raise outcome(f"scripted {outcome.__name__} on attempt {number}", request=request)
        status, headers = outcome if isinstance(outcome, tuple) else (outcome, {})
        self.timeline.record(ATTEMPT, f"#{number} to {self.url}: answered {status}")
        return httpx.Response(status, headers=headers)

    def __repr__(self) -> str:
        return f"the receiver at {self.url} ({len(self.requests)} request(s))"


class Receivers:
    """Every receiver of a spec, faked with respx. A request to any other URL is an error."""

    def __init__(self, router: respx.MockRouter, timeline: Timeline) -> None:
        self.router = router
        self.timeline = timeline

    def at(self, url: str) -> ScriptedReceiver:
        receiver = ScriptedReceiver(url, self.timeline)
        self.router.post(url).mock(side_effect=receiver)
        return receiver

    @property
    def requests(self) -> list[httpx.Request]:
        """Every request httpx sent during the spec, to any URL, in order."""
        return [call.request for call in self.router.calls]


@pytest.fixture(name="router", scope="session", autouse=True)
def _router() -> Iterator[respx.MockRouter]:
    """The respx router, started once: it replaces the transport of httpx for the whole run.

    Starting and stopping it takes a dozen patches each time (a few milliseconds); each spec
    clears its routes instead. A request no route of the spec matches is an error, except
    where a spec of task 7 lets its requests through to the real network.
    """
    with respx.mock(assert_all_called=False, assert_all_mocked=True) as router:
        yield router


@pytest.fixture(name="receivers")
def _receivers(router: respx.MockRouter, timeline: Timeline) -> Iterator[Receivers]:
    router.clear()
    router.reset()
    try:
        yield Receivers(router, timeline)
    finally:
        router.clear()
        router.reset()


@contextlib.contextmanager
def _to_the_real_network(router: respx.MockRouter) -> Iterator[None]:
    """Requests to 127.0.0.1 go through httpx's own transport, to real sockets, for as long as this lasts."""
    router.route(host="127.0.0.1", name="the real network").pass_through()
    try:
        yield
    finally:
        router.routes.pop("the real network", None)


# ------------------------------------------------------------------ a real receiver, on 127.0.0.1


@dataclass(frozen=True)
class Received:
    """One request the real receiver read off a socket."""

    port: int  # the client's port: one per connection
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class LoopbackReceiver:
    """A real HTTP/1.1 server on 127.0.0.1, in the spec's own event loop (asyncio streams and h11).

    It answers each request with the next status of its script (the last repeats; 204 by
    default), keeps connections alive as HTTP/1.1 does, and records on the timeline every
    connection it accepts and sees closed.
    """

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline
        self.requests: list[Received] = []
        self.script: list[int] = [204]
        self.open_ports: set[int] = set()
        self.closed_ports: list[int] = []
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def will(self, *statuses: int) -> LoopbackReceiver:
        self.script = list(statuses)
        return self

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=BOUND)
        if self._server is not None:
            await self._server.wait_closed()

    async def wait_until_closed(self, port: int, within: float = BOUND) -> bool:
        """Whether the connection from ``port`` is closed, or closes within ``within`` seconds."""
        for _ in range(int(within / 0.01)):
            if port not in self.open_ports:
                return True
            await asyncio.sleep(0.01)
        return port not in self.open_ports

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        self._writers.add(writer)
        port = writer.get_extra_info("peername")[1]
        self.open_ports.add(port)
        self.timeline.record(CONNECTION_OPENED, f"from port {port}")
        try:
            await self._exchange(reader, writer, port)
        except (h11.RemoteProtocolError, ConnectionError):
            pass
        finally:
            self.open_ports.discard(port)
            self.closed_ports.append(port)
            self.timeline.record(CONNECTION_CLOSED, f"from port {port}")
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            if task is not None:
                self._handlers.discard(task)

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int) -> None:
        connection = h11.Connection(h11.SERVER)
        request: h11.Request | None = None
        body = b""
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await reader.read(65536))
            elif isinstance(event, h11.Request):
                request, body = event, b""
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage) and request is not None:
                status = self._answer(request, body, port)
                writer.write(connection.send(h11.Response(status_code=status, headers=[("content-length", "0")])))
                writer.write(connection.send(h11.EndOfMessage()))
                await writer.drain()
                if connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
                    return
                connection.start_next_cycle()
            else:  # ConnectionClosed, or the client is done with this connection
                return

    def _answer(self, request: h11.Request, body: bytes, port: int) -> int:
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in request.headers}
        received = Received(port, request.method.decode(), request.target.decode(), headers, body)
        self.requests.append(received)
        number = len(self.requests)
        status = self.script[min(number, len(self.script)) - 1]
        self.timeline.record(REAL_REQUEST, f"#{number} {received.method} {received.path} from port {port}: {status}")
        return status


@pytest.fixture(name="loopback")
async def _loopback(router: respx.MockRouter, timeline: Timeline) -> AsyncIterator[LoopbackReceiver]:
    receiver = LoopbackReceiver(timeline)
    await receiver.start()
    try:
        with _to_the_real_network(router):
            yield receiver
    finally:
        await receiver.stop()


@pytest.fixture(name="refusing_url")
def _refusing_url(router: respx.MockRouter) -> Iterator[str]:
    """A URL on 127.0.0.1 whose port refuses every connection: bound, never listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        with _to_the_real_network(router):
            yield f"http://127.0.0.1:{sock.getsockname()[1]}/hooks"
    finally:
        sock.close()
