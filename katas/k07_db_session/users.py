"""Kata 7: a database session of its own.

A sign-up API on a real SQLite database. ``POST /users`` stores the new user as
``pending`` and answers ``202`` at once; a background task then sends the welcome email
and marks the user ``processed``. The request's database session is closed as soon as
the endpoint returns, before that task runs: the task opens a session of its own from
the app's session factory, given the user's id, and closes it when it is done. A failure
is rolled back and recorded; a database that is busy or gone is a ``503``, never a crash.

Read README.md in this folder for the tasks, then make the specs pass:

    uv run pytest katas/k07_db_session
"""

# No `from __future__ import annotations` here: FastAPI reads the endpoints' annotations at
# run time, and the request's session type below is defined inside create_app.
import enum
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Protocol

from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException, Path, Request, Response  # noqa: F401 - you will need them
from fastapi.responses import JSONResponse  # noqa: F401 - you will need it
from pydantic import BaseModel, ConfigDict, EmailStr, Field  # noqa: F401 - you will need them
from sqlalchemy import update  # noqa: F401 - you will need it
from sqlalchemy.exc import IntegrityError, OperationalError  # noqa: F401 - you will need them
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine  # noqa: F401 - you will need them
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

logger = logging.getLogger(__name__)

WELCOME_SUBJECT = "Welcome aboard"
#: The largest integer SQLite stores: a user id is 1 to this.
MAX_ID = 2**63 - 1
#: What a client is told when the database cannot answer now.
BUSY = "the database is busy, try again later"
#: Seconds a client should wait before trying again after a 503.
RETRY_AFTER = 1


class Status(str, enum.Enum):
    """Where a registration stands: pending until the work is done, then processed or failed."""

    PENDING = "pending"
    PROCESSED = "processed"
    FAILED = "failed"


# ------------------------------------------------------------------ the table (given)


class Base(DeclarativeBase):
    """The app's tables."""


class User(Base):
    """One registered user: a row of the ``users`` table."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)  # chosen by the database on insert
    email: Mapped[str] = mapped_column(unique=True)
    name: Mapped[str]
    status: Mapped[str]  # a Status
    error: Mapped[str | None]  # the kind of failure, when failed


class Registration(BaseModel):
    """What a client sends to register."""

    # TODO(k07) task 2: `email`, a valid address, and `name`, 1 to 100 characters, both
    # required. Anything else is answered 422, and nothing is stored.


class UserDocument(BaseModel):
    """What a client is told about one user."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    name: str
    status: Status
    error: str | None


class Mailer(Protocol):
    """An asynchronous mail client."""

    async def asend(self, to: str, subject: str, body: str) -> None:
        """Deliver one email without blocking the event loop."""


def welcome_body(name: str) -> str:
    """The text of the welcome email."""
    return f"Hello {name}, your account is ready."


# ------------------------------------------------------------------ your part: sessions


def make_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """The app's session factory: every session of the app, the requests' and the tasks', comes from it."""
    # TODO(k07) task 1: sessions bound to `engine`, whose objects keep their values after a
    # commit, and which refuse to be used again once closed.
    raise NotImplementedError("TODO(k07) task 1: make the session factory")


async def process_registration(session_factory: async_sessionmaker[AsyncSession], user_id: int, mailer: Mailer) -> None:
    """The background work for one registration: welcome the user, then mark them processed."""
    # TODO(k07) task 3: a session of its own from `session_factory`, closed when the work
    # ends. It finds the user by `user_id` (no such user: one WARNING naming the id, and
    # nothing else), sends the welcome (`WELCOME_SUBJECT`, `welcome_body` of the name) to
    # their address, and only then commits the user as processed.
    # TODO(k07) task 4: any Exception on the way is logged once at ERROR with its traceback,
    # naming the user id, rolled back, and the user committed as failed, with the name of
    # the exception's class as the error. If that write fails too: one more ERROR, and the
    # user stays pending. Nothing escapes; a cancellation is not a failure and passes through.
    raise NotImplementedError("TODO(k07) task 3: do the work with a session of its own")


# ------------------------------------------------------------------ the app


def create_app(database_url: str, mailer: Mailer) -> FastAPI:
    """Build the API on the database at ``database_url`` (its tables already made)."""
    # TODO(k07) task 1: one engine on `database_url` for the app's whole life, and the app's
    # session factory on it, from `make_session_factory`.

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # TODO(k07) task 1: once the app stops, no connection of its engine stays open.
        yield

    app = FastAPI(title="Kata 7: a database session of its own", lifespan=lifespan)

    async def get_session() -> AsyncIterator[AsyncSession]:
        """The request's own session: opened for the endpoint, closed as soon as it returns."""
        # TODO(k07) task 1: a new session from the app's factory for each request, closed
        # when the endpoint is done with it.
        raise NotImplementedError("TODO(k07) task 1: open the request's session")
        yield  # never reached; the yield makes this a dependency with clean-up

    # scope="function": closed when the endpoint returns, before the response is sent and
    # before any background task runs.
    RequestSession = Annotated[AsyncSession, Depends(get_session, scope="function")]  # noqa: N806 - a type alias

    # TODO(k07) task 5: a database that is locked or cannot be opened is answered 503, with
    # `BUSY` as the detail and a `Retry-After` of `RETRY_AFTER` seconds, from every endpoint.

    @app.post("/users", status_code=202)
    async def register(
        registration: Registration, background_tasks: BackgroundTasks, response: Response, session: RequestSession
    ) -> UserDocument:
        """Store the user as pending, queue the work, answer at once."""
        # TODO(k07) task 2: the user stored as pending and committed with the request's
        # session; the answer is their document, with a `Location` of `/users/<id>`. An
        # address already registered is a 409 whose detail is `<address> is already registered`.
        # TODO(k07) task 3: the work queued to run after the response, given the user's id.
        raise NotImplementedError("TODO(k07) task 2: store the user")

    @app.get("/users/{user_id}")
    async def read_user(user_id: int, session: RequestSession) -> UserDocument:
        """Where one registration stands."""
        # TODO(k07) task 1: the user's document, read with the request's session. An id is 1
        # to `MAX_ID` (anything else is a 422); no such user is a 404 whose detail is `no user <id>`.
        raise NotImplementedError(f"TODO(k07) task 1: read user {user_id}")

    return app
