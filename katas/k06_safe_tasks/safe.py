"""Kata 6: safe background tasks.

A background task that raises has nobody to tell: the client already has its answer,
and the exception ends up as one line in a server log. ``safe`` wraps a task, ``def``
or ``async def``, so that a failure is logged with its traceback, recorded and
announced to someone, and never escapes, while shutdown and cancellation still get
through, and Starlette still runs a ``def`` task in its thread pool.

Read README.md in this folder for the tasks, then make the specs pass:

    uv run pytest katas/k06_safe_tasks
"""

from __future__ import annotations

import functools  # noqa: F401 - you will need it
import inspect  # noqa: F401 - you will need it
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass  # noqa: F401 - you will need it
from typing import Any, Protocol, TypeVar

from fastapi import BackgroundTasks, FastAPI, HTTPException, Request  # noqa: F401 - you will need them
from pydantic import BaseModel, EmailStr, Field  # noqa: F401 - you will need them

logger = logging.getLogger(__name__)

_Task = TypeVar("_Task", bound=Callable[..., Any])

SALES = "sales@example.com"
SIGNUP_SUBJECT = "New sign-up"


@dataclass(frozen=True)
class Failure:
    """One failed run of a background task: which task, and what it raised. Never its arguments."""

    task: str  # the task's name
    error: str  # the name of the exception's class
    message: str  # the exception's message


class FailureStore(Protocol):
    """Where failures are kept for people to look at: a table in production, a list in the specs."""

    def add(self, failure: Failure) -> None:
        """Keep one failure."""

    def all(self) -> list[Failure]:
        """Every failure kept, oldest first."""


class Notifier(Protocol):
    """Whoever must hear of a failure: a chat channel, a pager. Quick: it only hands the news on."""

    def notify(self, failure: Failure) -> None:
        """Tell someone that a task failed."""


# ------------------------------------------------------------------ your part: the wrapper


def safe(*, failures: FailureStore, notifier: Notifier) -> Callable[[_Task], _Task]:
    """A decorator: the task it wraps logs, records and announces its failures, and never raises one.

    Used as ``guard = safe(failures=store, notifier=notifier)``, then ``guard(task)`` (or
    ``@guard`` above a task) gives the wrapped task.
    """
    # TODO(k06) task 1: for a `def` task, a wrapper that is a `def` too: it runs the task once
    # with all its arguments and returns what the task returns. If the task raises an
    # Exception, one ERROR record through `logger`, naming the task, with the traceback; the
    # wrapper then returns `None`. SystemExit, KeyboardInterrupt and CancelledError pass
    # through, unlogged.
    # TODO(k06) task 2: each failure is also kept once in `failures` and announced once to
    # `notifier`, as a `Failure`: the task's name, the exception's class name, its message.
    # A store or a notifier that fails is logged at ERROR with its traceback, never raised,
    # and never keeps the other from being told.
    # TODO(k06) task 3: the wrapped task keeps the task's name, qualified name, module,
    # docstring and signature.
    # TODO(k06) task 4: for an `async def` task, a wrapper that is an `async def` too, with
    # the same safety net; a cancelled task stays cancelled.
    # TODO(k06) task 5: nothing the wrapper writes (log, store, notification) holds the
    # task's arguments.
    raise NotImplementedError("TODO(k06) task 1: wrap the task")


# ------------------------------------------------------------------ the app and its tasks


class Directory(Protocol):
    """The company's account directory: its client library blocks while it works."""

    def create_account(self, email: str, password: str) -> None:
        """Create one account; slow, and it blocks."""


class Mailer(Protocol):
    """An asynchronous mail client."""

    async def asend(self, to: str, subject: str, body: str) -> None:
        """Deliver one email without blocking the event loop."""


class AccountRequest(BaseModel):
    """What a client sends to open an account."""

    # TODO(k06) task 6: `email`, a valid address, and `password`, 8 to 128 characters, both
    # required. Anything else is answered 422 and queues nothing.


def create_account(directory: Directory, email: str, password: str) -> None:
    """Create the account in the directory (a blocking call: a plain `def` task)."""
    directory.create_account(email, password)


async def announce_signup(mailer: Mailer, email: str) -> None:
    """Tell the sales team about the new account (an `async def` task)."""
    await mailer.asend(to=SALES, subject=SIGNUP_SUBJECT, body=f"{email} just opened an account.")


def create_app(directory: Directory, mailer: Mailer, failures: FailureStore, notifier: Notifier) -> FastAPI:
    """Build the API around its injected collaborators (the specs pass fakes)."""
    app = FastAPI(title="Kata 6: safe background tasks")

    @app.post("/accounts", status_code=202)
    async def open_account(request: Request, background_tasks: BackgroundTasks) -> dict[str, str]:
        """Accept a new account; the directory and the sales team hear of it after the response."""
        # TODO(k06) task 6: the body is an `AccountRequest`. Queue `create_account` and then
        # `announce_signup`, each wrapped by `safe` with this app's `failures` and `notifier`,
        # to run after the response, and answer with `status` queued and the `email`.
        raise NotImplementedError("TODO(k06) task 6: queue the two wrapped tasks")

    @app.get("/failures")
    async def list_failures() -> list[dict[str, str]]:
        """Every recorded failure, oldest first."""
        # TODO(k06) task 6: every failure in the store, oldest first, each with its `task`,
        # `error` and `message`.
        raise NotImplementedError("TODO(k06) task 6: list the failures")

    @app.get("/failures/{number}")
    async def one_failure(number: str) -> dict[str, str]:
        """Failure number ``number``, counting from 1."""
        # TODO(k06) task 6: failure number 1 is the oldest; a number with no failure is a 404,
        # a number that is not an integer a 422.
        raise NotImplementedError(f"TODO(k06) task 6: find failure {number}")

    return app
