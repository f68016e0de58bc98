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
from pydantic import BaseModel, EmailStr

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

    # A required, validated field: a missing or malformed address is a 422 before any
    # task is queued, not a KeyError (a 500) halfway through the endpoint.
    email: EmailStr


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
    # request.client is the peer of this connection; request.url names the server. A
    # server on a Unix socket knows no peer (None), and a header the client wrote is not
    # evidence of anything: a trusted proxy's address rewriting is the server's job.
    if request.client is None:
        return UNKNOWN_ADDRESS
    return request.client.host


def run_safely(task: Callable[..., object], *args: object, **kwargs: object) -> None:
    """Run one background task; if it fails, log the failure with its traceback and return."""
    try:
        task(*args, **kwargs)
    except Exception:
        # Starlette runs no later task once one raises: log it, traceback included, and
        # return normally. Only Exception: SystemExit, KeyboardInterrupt and CancelledError
        # are BaseExceptions, and shutdown and cancellation depend on them getting through.
        logger.exception("background task %s failed", getattr(task, "__name__", repr(task)))


def create_app(mailer: Mailer, profiles: ProfileStore, analytics: AnalyticsSink) -> FastAPI:
    """Build the API around its injected collaborators (the specs pass fakes)."""
    app = FastAPI(title="Kata 2: multiple background tasks")
    user_ids = itertools.count(1)  # stands in for the database's id sequence

    @app.post("/registrations", status_code=201)
    async def register(
        registration: RegistrationRequest, request: Request, background_tasks: BackgroundTasks
    ) -> dict[str, int | str]:
        """Register a user; welcome, profile and analytics follow, in that order, after the response."""
        user_id = next(user_ids)  # the new account's id: a database insert would give it
        email = str(registration.email)
        # Queued in this order, run in this order, each isolated from the others' failures.
        background_tasks.add_task(run_safely, send_welcome_email, mailer, email)
        background_tasks.add_task(run_safely, create_user_profile, profiles, user_id, email)
        background_tasks.add_task(run_safely, log_user_registration, analytics, user_id, client_address(request))
        return {"user_id": user_id, "email": email}

    return app
