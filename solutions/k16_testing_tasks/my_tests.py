"""My tests for the shop of kata 16 (katas/k16_testing_tasks/app.py).

Each test gets the app's factory from the ``create_app`` fixture, builds the app with
fakes of its own, and says one thing the shop must do. Run them on the given app with

    uv run pytest katas/k16_testing_tasks/my_tests.py

and let the kata's specs run them on its wrong versions too: ``uv run kata k16``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import respx
from freezegun import freeze_time

WAREHOUSE_URL = "https://warehouse.example/orders"
ORDER = {"email": "ada@example.com", "item": "Blue teapot", "quantity": 3}


class RecordingMailer:
    """A fake mail client: keeps every email, notes each send in ``events``, fails if told to."""

    def __init__(self, events: list[str], failure: Exception | None = None) -> None:
        self.events = events
        self.failure = failure
        self.sent: list[tuple[str, str, str]] = []

    async def asend(self, to: str, subject: str, body: str) -> None:
        self.events.append("email")
        if self.failure is not None:
            raise self.failure
        self.sent.append((to, subject, body))


@pytest.fixture(name="events")
def _events() -> list[str]:
    """One list for everything that happens, in order."""
    return []


@pytest.fixture(name="mailer")
def _mailer(events: list[str]) -> RecordingMailer:
    return RecordingMailer(events)


@pytest.fixture(name="warehouse")
def _warehouse() -> respx.Router:
    """The warehouse, mocked: every order posted to it answered 200, and kept in its calls."""
    router = respx.Router(assert_all_called=False, assert_all_mocked=True)
    router.post(WAREHOUSE_URL).respond(200)
    return router


@pytest.fixture(name="warehouse_client")
async def _warehouse_client(warehouse: respx.Router) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP client the app is given: its requests go to the mocked warehouse, never to the network."""
    async with httpx.AsyncClient(transport=httpx.MockTransport(warehouse.async_handler)) as client:
        yield client


@pytest.fixture(name="app")
def _app(create_app: Callable[..., Any], mailer: RecordingMailer, warehouse_client: httpx.AsyncClient) -> Any:
    return create_app(mailer, warehouse_client)


@pytest.fixture(name="client")
async def _client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client over the app, in process; a request returns once the background tasks ran."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://shop") as client:
        yield client


async def post_recording_the_response(app: Any, path: str, body: dict[str, Any], events: list[str]) -> int:
    """One raw ASGI request: notes "response" in ``events`` when the response's last byte is sent."""
    payload = json.dumps(body).encode()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"shop"), (b"content-type", b"application/json")],
        "client": ("127.0.0.1", 50000),
        "server": ("shop", 80),
    }
    status = 0
    done = asyncio.Event()
    request_sent = False

    async def receive() -> dict[str, Any]:
        nonlocal request_sent
        if not request_sent:
            request_sent = True
            return {"type": "http.request", "body": payload, "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            events.append("response")
            done.set()

    await app(scope, receive, send)
    return status


# ------------------------------------------------------------------ 1. the answer and the email


async def test_an_order_is_accepted_at_once_with_its_number(client: httpx.AsyncClient) -> None:
    """A valid order is answered 202, with its number, 1 for the first."""
    response = await client.post("/orders", json=ORDER)
    assert response.status_code == 202, response.text
    assert response.json() == {"order": 1, "status": "accepted"}


async def test_the_customer_gets_one_confirmation(client: httpx.AsyncClient, mailer: RecordingMailer) -> None:
    """Exactly one email, to the customer, naming the order and what was ordered."""
    await client.post("/orders", json=ORDER)
    assert mailer.sent == [("ada@example.com", "Order 1 confirmed", "3 x Blue teapot")]


async def test_each_order_gets_its_own_number(client: httpx.AsyncClient, mailer: RecordingMailer) -> None:
    """Two orders, numbers 1 and 2, each in its own confirmation."""
    first = await client.post("/orders", json=ORDER)
    second = await client.post("/orders", json=ORDER | {"email": "grace@example.com"})
    assert [first.json()["order"], second.json()["order"]] == [1, 2]
    assert [subject for _to, subject, _body in mailer.sent] == ["Order 1 confirmed", "Order 2 confirmed"]


async def test_a_rejected_order_queues_nothing(
    client: httpx.AsyncClient, mailer: RecordingMailer, warehouse: respx.Router
) -> None:
    """A body that breaks the rules is a 422, and nobody hears of it."""
    for body in (
        ORDER | {"quantity": 0},
        ORDER | {"quantity": 11},
        ORDER | {"email": "not an address"},
        {"item": "Teapot"},
    ):
        response = await client.post("/orders", json=body)
        assert response.status_code == 422, body
    assert mailer.sent == []
    assert not warehouse.calls


# ------------------------------------------------------------------ 2. the response first


async def test_the_response_is_complete_before_the_email_is_sent(app: Any, events: list[str]) -> None:
    """The client has the whole response before the confirmation goes out."""
    status = await post_recording_the_response(app, "/orders", ORDER, events)
    assert status == 202
    assert events == ["response", "email"]


# ------------------------------------------------------------------ 3. a failure


async def test_a_failing_email_does_not_stop_the_warehouse(
    client: httpx.AsyncClient, mailer: RecordingMailer, warehouse: respx.Router
) -> None:
    """The mail server is down: the customer still gets a 202 and the warehouse still hears of the order."""
    mailer.failure = ConnectionError("the mail server is down")
    response = await client.post("/orders", json=ORDER)
    assert response.status_code == 202
    assert warehouse.calls.call_count == 1


async def test_a_failing_email_is_logged_at_error_with_its_traceback(
    client: httpx.AsyncClient, mailer: RecordingMailer, caplog: pytest.LogCaptureFixture
) -> None:
    """One ERROR record from the shop's logger, carrying the exception itself."""
    failure = ConnectionError("the mail server is down")
    mailer.failure = failure
    with caplog.at_level(logging.DEBUG, logger="shop"):
        await client.post("/orders", json=ORDER)
    errors = [record for record in caplog.records if record.name == "shop" and record.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None and errors[0].exc_info[1] is failure


# ------------------------------------------------------------------ 4. the warehouse and the clock


async def test_the_warehouse_gets_the_order_with_the_moment_it_was_placed(
    client: httpx.AsyncClient, warehouse: respx.Router
) -> None:
    """One POST to the warehouse: the order's number, item, quantity, and the time of the request in UTC."""
    with freeze_time("2026-03-01 12:00:00", real_asyncio=True):
        await client.post("/orders", json=ORDER)
    assert warehouse.calls.call_count == 1
    sent = json.loads(warehouse.calls.last.request.content)
    assert sent == {"order": 1, "item": "Blue teapot", "quantity": 3, "placed_at": "2026-03-01T12:00:00+00:00"}
