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

import functools
import inspect
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol, TypeVar

from fastapi import BackgroundTasks, FastAPI, HTTPException
from pydantic import BaseModel, EmailStr, Field

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
    """A decorator: the task it wraps logs, records and announces its failures, and never raises one."""

    def decorate(task: _Task) -> _Task:
        # Starlette looks at the function itself to choose: a coroutine function is awaited
        # on the event loop, anything else goes to the thread pool. So the wrapper must be
        # the same kind of function as the task, chosen once, here.
        if inspect.iscoroutinefunction(task):

            @functools.wraps(task)
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                try:
                    return await task(*args, **kwargs)
                except Exception as error:  # not BaseException: cancellation and shutdown get through
                    logger.exception("background task %s failed", task.__name__)
                    _record(task, error, failures, notifier)
                    return None

            return run_async  # type: ignore[return-value]

        @functools.wraps(task)  # name, docstring, __wrapped__ (and so the signature) are the task's
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return task(*args, **kwargs)
            except Exception as error:  # not BaseException: KeyboardInterrupt and SystemExit get through
                # The name and the exception, traceback included; never the arguments, which may be secrets.
                logger.exception("background task %s failed", task.__name__)
                _record(task, error, failures, notifier)
                return None

        return run  # type: ignore[return-value]

    return decorate


def _record(task: Callable[..., Any], error: Exception, failures: FailureStore, notifier: Notifier) -> None:
    """Keep and announce one failure; a failing store or notifier is logged, never raised."""
    name = task.__name__
    failure = Failure(task=name, error=type(error).__name__, message=str(error))
    try:
        failures.add(failure)
    except Exception:
        logger.exception("could not record the failure of background task %s", name)
    try:
        notifier.notify(failure)
    except Exception:
        logger.exception("could not send the news that background task %s failed", name)


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

    email: EmailStr
    password: str = Field(min_length=8, max_length=128)


def create_account(directory: Directory, email: str, password: str) -> None:
    """Create the account in the directory (a blocking call: a plain `def` task)."""
    directory.create_account(email, password)


async def announce_signup(mailer: Mailer, email: str) -> None:
    """Tell the sales team about the new account (an `async def` task)."""
    await mailer.asend(to=SALES, subject=SIGNUP_SUBJECT, body=f"{email} just opened an account.")


def create_app(directory: Directory, mailer: Mailer, failures: FailureStore, notifier: Notifier) -> FastAPI:
    """Build the API around its injected collaborators (the specs pass fakes)."""
    app = FastAPI(title="Kata 6: safe background tasks")
    guard = safe(failures=failures, notifier=notifier)
    # Wrapped once, when the app is built: still a def and an async def.
    safe_create_account = guard(create_account)
    safe_announce_signup = guard(announce_signup)

    @app.post("/accounts", status_code=202)
    async def open_account(account: AccountRequest, background_tasks: BackgroundTasks) -> dict[str, str]:
        """Accept a new account; the directory and the sales team hear of it after the response."""
        email = str(account.email)
        background_tasks.add_task(safe_create_account, directory, email, account.password)
        background_tasks.add_task(safe_announce_signup, mailer, email)
        return {"status": "queued", "email": email}

    @app.get("/failures")
    async def list_failures() -> list[dict[str, str]]:
        """Every recorded failure, oldest first."""
        return [asdict(failure) for failure in failures.all()]

    @app.get("/failures/{number}")
    async def one_failure(number: int) -> dict[str, str]:
        """Failure number ``number``, counting from 1."""
        found = failures.all()
        if not 1 <= number <= len(found):
            raise HTTPException(status_code=404, detail=f"no failure number {number}")
        return asdict(found[number - 1])

    return app
