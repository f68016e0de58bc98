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
from pydantic import BaseModel, EmailStr, Field

SUBJECT = "You have a new notification"


class Mailer(Protocol):
    """Whatever delivers email: smtplib in production, a fake outbox in the specs."""

    def send(self, to: str, subject: str, body: str) -> None:
        """Deliver one email; slow, and it blocks while it works."""


class NotificationRequest(BaseModel):
    """What a client sends: who to notify, and what to tell them."""

    # Validating here means a bad request is a 422 before any work is queued.
    email: EmailStr
    message: str = Field(min_length=1, max_length=1000)


def send_notification_email(mailer: Mailer, email: str, message: str) -> None:
    """Send one notification email. Runs in the background, after the response."""
    # One email, to the address asked for, with the message as its body.
    mailer.send(to=email, subject=SUBJECT, body=message)


def create_app(mailer: Mailer) -> FastAPI:
    """Build the API around an injected mailer (the specs pass a fake outbox)."""
    app = FastAPI(title="Kata 1: fire and forget")

    @app.post("/notifications", status_code=202)
    async def request_notification(
        notification: NotificationRequest, background_tasks: BackgroundTasks
    ) -> dict[str, str]:
        """Accept a notification and queue its email; answer before it is sent."""
        # Pass the function and its arguments; do not call it. Starlette calls it after
        # the response's last byte has gone out.
        background_tasks.add_task(send_notification_email, mailer, str(notification.email), notification.message)
        return {"status": "queued", "email": str(notification.email)}

    return app
