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

from fastapi import BackgroundTasks, Depends, FastAPI, HTTPException, Path, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, EmailStr, Field
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
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

    email: EmailStr
    name: str = Field(min_length=1, max_length=100)


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
    # expire_on_commit=False: the values just committed stay readable without a query, which
    # async code could not make implicitly. close_resets_only=False: a closed session refuses
    # to be used again, instead of quietly opening a new transaction nobody will close.
    return async_sessionmaker(engine, expire_on_commit=False, close_resets_only=False)


async def process_registration(session_factory: async_sessionmaker[AsyncSession], user_id: int, mailer: Mailer) -> None:
    """The background work for one registration: welcome the user, then mark them processed."""
    # A session of its own, from the factory, closed when the work ends: the request's
    # session was closed before this task started. Given the id, it reads the user as
    # the database has it now.
    async with session_factory() as session:
        try:
            user = await session.get(User, user_id)
            if user is None:
                logger.warning("no user %s to process: nothing to do", user_id)
                return
            await mailer.asend(to=user.email, subject=WELCOME_SUBJECT, body=welcome_body(user.name))
            # Processed only once the work is done, and only once committed.
            user.status = Status.PROCESSED
            await session.commit()
        except Exception as error:  # not BaseException: a cancelled task stays cancelled, and pending
            logger.exception("processing user %s failed", user_id)
            # A failed write leaves the session unusable until it is rolled back; the rollback
            # also throws away whatever this session had changed.
            await session.rollback()
            await _mark_failed(session, user_id, error)


async def _mark_failed(session: AsyncSession, user_id: int, error: Exception) -> None:
    """Record that the work for ``user_id`` failed; if even that cannot be written, log it."""
    try:
        # The kind of failure only: its message may hold SQL, addresses or paths, and the
        # status document is public. The log above has the whole story.
        failed = {"status": Status.FAILED, "error": type(error).__name__}
        await session.execute(update(User).where(User.id == user_id).values(failed))
        await session.commit()
    except Exception:  # the session is closed right after, which throws this transaction away
        logger.exception("could not mark user %s failed: it stays pending", user_id)


# ------------------------------------------------------------------ the app


def create_app(database_url: str, mailer: Mailer) -> FastAPI:
    """Build the API on the database at ``database_url`` (its tables already made)."""
    # One engine for the app's whole life: it holds the pool of connections. Making it
    # connects to nothing yet, so the app starts even while the database is down.
    engine = create_async_engine(database_url)
    session_factory = make_session_factory(engine)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await engine.dispose()  # close the pooled connections (and their threads)

    app = FastAPI(title="Kata 7: a database session of its own", lifespan=lifespan)

    async def get_session() -> AsyncIterator[AsyncSession]:
        """The request's own session: opened for the endpoint, closed as soon as it returns."""
        async with session_factory() as session:
            yield session

    # scope="function": closed when the endpoint returns, before the response is sent and
    # before any background task runs.
    RequestSession = Annotated[AsyncSession, Depends(get_session, scope="function")]  # noqa: N806 - a type alias

    @app.exception_handler(OperationalError)
    async def database_unavailable(_request: Request, _error: OperationalError) -> JSONResponse:
        """Locked, or cannot be opened: the client may try again later, and is told when."""
        return JSONResponse({"detail": BUSY}, status_code=503, headers={"Retry-After": str(RETRY_AFTER)})

    @app.post("/users", status_code=202)
    async def register(
        registration: Registration, background_tasks: BackgroundTasks, response: Response, session: RequestSession
    ) -> UserDocument:
        """Store the user as pending, queue the work, answer at once."""
        email = str(registration.email)
        user = User(email=email, name=registration.name, status=Status.PENDING)
        session.add(user)
        try:
            await session.commit()  # the id is the database's; committed before the task can look for it
        except IntegrityError:
            raise HTTPException(status_code=409, detail=f"{email} is already registered") from None
        # The id, not the object: the task reads the user with its own session.
        background_tasks.add_task(process_registration, session_factory, user.id, mailer)
        response.headers["Location"] = f"/users/{user.id}"
        return UserDocument.model_validate(user)

    @app.get("/users/{user_id}")
    async def read_user(user_id: Annotated[int, Path(ge=1, le=MAX_ID)], session: RequestSession) -> UserDocument:
        """Where one registration stands."""
        user = await session.get(User, user_id)
        if user is None:
            raise HTTPException(status_code=404, detail=f"no user {user_id}")
        return UserDocument.model_validate(user)

    return app
