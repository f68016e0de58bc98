"""Your tests for the shop of kata 16: app.py, beside this file (read it; do not edit it).

Write tests that pass on the shop as it is given, and that fail when it is wrong. The
kata's specs run this file on the given shop, then on wrong versions of it, each with
one mistake a developer could make, and tell you which mistakes went unnoticed.

    uv run pytest katas/k16_testing_tasks/my_tests.py   # your tests, on the given shop
    uv run kata k16                                      # the kata's specs: your tests on every version

Every test gets the shop's factory from the ``create_app`` fixture and builds the app
with fakes of its own: ``create_app(mailer, warehouse)``. Replace each placeholder
below with a real test, and add as many tests as you like.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx  # noqa: F401 - you will need it
import pytest
import respx  # noqa: F401 - you will need it
from freezegun import freeze_time  # noqa: F401 - you will need it

ORDER = {"email": "ada@example.com", "item": "Blue teapot", "quantity": 3}


async def test_an_order_is_accepted_at_once_with_its_number(create_app: Callable[..., Any]) -> None:
    """A valid order is answered 202 Accepted, with its number, 1 for the first."""
    pytest.fail("TODO(k16) task 1: a valid order is answered 202 Accepted with its number and status")


async def test_the_customer_gets_one_confirmation(create_app: Callable[..., Any]) -> None:
    """Exactly one email, to the customer, naming the order and what was ordered."""
    pytest.fail("TODO(k16) task 1: exactly one email goes out, to the customer, with the order's subject and body")


async def test_each_order_gets_its_own_number(create_app: Callable[..., Any]) -> None:
    """Two orders, numbers 1 and 2, each in its own confirmation."""
    pytest.fail("TODO(k16) task 1: a second order gets the next number, in its answer and in its email")


async def test_the_response_is_complete_before_the_email_is_sent(create_app: Callable[..., Any]) -> None:
    """The client has the whole response before the confirmation goes out."""
    pytest.fail("TODO(k16) task 2: the response's last byte is sent before the confirmation email")


async def test_a_failing_email_does_not_stop_the_warehouse(create_app: Callable[..., Any]) -> None:
    """The mail server is down: the customer still gets a 202 and the warehouse still hears of the order."""
    pytest.fail(
        "TODO(k16) task 3: with a mail server that fails, the answer is still 202 and the warehouse still hears"
    )


async def test_a_failing_email_is_logged_at_error_with_its_traceback(create_app: Callable[..., Any]) -> None:
    """One ERROR record from the shop's logger, carrying the exception itself."""
    pytest.fail("TODO(k16) task 3: one error record from the `shop` logger carries the mail server's exception")


async def test_the_warehouse_gets_the_order_with_the_moment_it_was_placed(create_app: Callable[..., Any]) -> None:
    """One POST to the warehouse: the order's number, item, quantity, and the time of the request in UTC."""
    pytest.fail("TODO(k16) task 4: the warehouse gets one request with the order and the frozen time, with its offset")
