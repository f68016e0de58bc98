"""Kata 1: fire and forget.

A client asks us to notify someone by email. Mail servers are slow (seconds, on a bad
day) and the client does not need to wait for one: the API answers ``202 Accepted`` at
once and the email goes out *after* the response, as a FastAPI background task.

Read README.md in this folder for the tasks, then make the specs pass:

    uv run pytest katas/k01_fire_and_forget
"""

from __future__ import annotations

from typing import Protocol

from fastapi import BackgroundTasks, FastAPI
from pydantic import BaseModel, EmailStr, Field  # noqa: F401 - you will need them

SUBJECT = "You have a new notification"


class Mailer(Protocol):
    """Whatever delivers email: smtplib in production, a fake outbox in the specs."""

    def send(self, to: str, subject: str, body: str) -> None:
        """Deliver one email; slow, and it blocks while it works."""


class NotificationRequest(BaseModel):
    """What a client sends: who to notify, and what to tell them."""

    # TODO(k01) task 1: two required fields: `email`, a valid email address, and `message`,
    # 1 to 1000 characters (characters, not bytes). Any other body gets a 422 before the
    # endpoint runs.


def send_notification_email(mailer: Mailer, email: str, message: str) -> None:
    """Send one notification email. Runs in the background, after the response."""
    # TODO(k01) task 2: exactly one email to `email`, with the subject SUBJECT and the
    # message as its body, sent before this returns. The mailer's send blocks: it must
    # never run on the event loop.
    raise NotImplementedError("TODO(k01) task 2: send the notification email")


def create_app(mailer: Mailer) -> FastAPI:
    """Build the API around an injected mailer (the specs pass a fake outbox)."""
    app = FastAPI(title="Kata 1: fire and forget")

    @app.post("/notifications", status_code=202)
    async def request_notification(
        notification: NotificationRequest, background_tasks: BackgroundTasks
    ) -> dict[str, str]:
        """Accept a notification and queue its email; answer before it is sent."""
        # TODO(k01) task 3: the email goes out after the response, sent by this request's
        # own background tasks; nothing slow happens here. The answer is exactly
        # {"status": "queued", "email": <the address>}.
        raise NotImplementedError("TODO(k01) task 3: queue the email and answer 202")

    return app
