"""Kata 2: multiple background tasks.

One registration sets three pieces of work going *after* the response: a welcome email,
the new user's profile, and an analytics record of where the registration came from.
Starlette runs them one after another, in the order they were queued, and stops at the
first one that raises: so each task runs through a small wrapper that logs its failure
and lets the next one run.

Read README.md in this folder for the tasks, then make the specs pass:

    uv run pytest katas/k02_multiple_tasks
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from typing import Protocol

from fastapi import BackgroundTasks, FastAPI, Request
from pydantic import BaseModel, EmailStr  # noqa: F401 - you will need it

logger = logging.getLogger(__name__)

WELCOME_SUBJECT = "Welcome aboard"
REGISTERED = "user_registered"
UNKNOWN_ADDRESS = "unknown"


class Mailer(Protocol):
    """Whatever delivers email: smtplib in production, a fake outbox in the specs."""

    def send(self, to: str, subject: str, body: str) -> None:
        """Deliver one email; slow, and it blocks while it works."""


class ProfileStore(Protocol):
    """Where user profiles live: a database table in production, a fake in the specs."""

    def create(self, user_id: int, email: str) -> None:
        """Create the profile of a new user."""


class AnalyticsSink(Protocol):
    """Where analytics events go: a metrics service in production, a fake in the specs."""

    def record(self, event: str, user_id: int, ip_address: str) -> None:
        """Record one event about one user, with the address it came from."""


class RegistrationRequest(BaseModel):
    """What a client sends to register: the address to welcome."""

    # TODO(k02) task 1: `email`, required, and a valid address as mail servers read it.
    # A body without one, or with a malformed one, must be answered 422 and queue nothing.


# ------------------------------------------------------------------ the three tasks
# Written for you: each one calls its collaborator once. Each can fail on its own.


def send_welcome_email(mailer: Mailer, email: str) -> None:
    """Welcome the new user by email."""
    mailer.send(to=email, subject=WELCOME_SUBJECT, body=f"Welcome aboard, {email}!")


def create_user_profile(profiles: ProfileStore, user_id: int, email: str) -> None:
    """Create the new user's profile."""
    profiles.create(user_id=user_id, email=email)


def log_user_registration(analytics: AnalyticsSink, user_id: int, ip_address: str) -> None:
    """Record the registration for analytics, with the client's address."""
    analytics.record(event=REGISTERED, user_id=user_id, ip_address=ip_address)


# ------------------------------------------------------------------ your part


def client_address(request: Request) -> str:
    """The address of the client that sent ``request``; UNKNOWN_ADDRESS if the server cannot tell."""
    # TODO(k02) task 2: the host of the peer at the other end of the connection (not the
    # server's name, and no header a client can write), or `UNKNOWN_ADDRESS` when the
    # server knows no peer.
    raise NotImplementedError("TODO(k02) task 2: find the client's address")


def run_safely(task: Callable[..., object], *args: object, **kwargs: object) -> None:
    """Run one background task; if it fails, log the failure with its traceback and return."""
    # TODO(k02) task 3: run the task once, with all its arguments. If it raises an
    # Exception, log one ERROR record through `logger` that names the task and carries the
    # traceback, then return normally. Anything that is not an Exception passes through.
    raise NotImplementedError("TODO(k02) task 3: run the task, log its failure, carry on")


def create_app(mailer: Mailer, profiles: ProfileStore, analytics: AnalyticsSink) -> FastAPI:
    """Build the API around its injected collaborators (the specs pass fakes)."""
    app = FastAPI(title="Kata 2: multiple background tasks")
    user_ids = itertools.count(1)  # stands in for the database's id sequence

    @app.post("/registrations", status_code=201)
    async def register(request: Request, background_tasks: BackgroundTasks) -> dict[str, int | str]:
        """Register a user; welcome, profile and analytics follow, in that order, after the response."""
        # TODO(k02) task 1: the endpoint takes the JSON body as a `RegistrationRequest`, so
        # that FastAPI answers 422 for a bad body before this code runs.
        user_id = next(user_ids)  # the new account's id: a database insert would give it
        # TODO(k02) task 4: queue the three tasks to run after the response, in this order:
        # the welcome email, the profile, the analytics record (with the client's address),
        # each through `run_safely`. Then answer with the new user's `user_id` and `email`.
        raise NotImplementedError(f"TODO(k02) task 4: queue the three tasks for user {user_id}")

    return app
