"""Kata 13: an email system.

Sign-up sends a confirmation email: rendered from templates (a text part and an HTML
part, the person's name escaped in the HTML only), handed to a real SMTP server without
blocking the event loop, with a link whose token is signed and expires. The link
confirms the address; a failed email is recorded and can be sent again.

Read README.md in this folder for the tasks, then make the specs pass:

    uv run pytest katas/k13_email_system
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any, Protocol
from uuid import UUID, uuid4

import aiosmtplib
from fastapi import BackgroundTasks, FastAPI, HTTPException
from itsdangerous import BadData, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from jinja2 import DictLoader, Environment, select_autoescape
from pydantic import BaseModel, EmailStr, Field

logger = logging.getLogger(__name__)

#: Who the confirmation emails come from.
SENDER = Address(display_name="Ada's Bookshop", addr_spec="hello@bookshop.example")
#: The subject line; ``{name}`` is the person's name, as they typed it.
SUBJECT = "Confirm your address, {name}"
#: How long a confirmation link works, in seconds: one day.
MAX_AGE = 24 * 60 * 60
#: What the tokens are for: a token signed with the same secret for another purpose is not one of ours.
SALT = "email-confirmation"

#: The two bodies of the confirmation email. ``name`` is what the person typed; ``link`` confirms.
TEMPLATES = {
    "confirm.txt": """\
Hello {{ name }},

Please confirm your address for Ada's Bookshop by opening this link within 24 hours:

{{ link }}

If you did not sign up, ignore this email.
""",
    "confirm.html": """\
<!doctype html>
<html>
  <body>
    <p>Hello {{ name }},</p>
    <p>Please confirm your address for Ada's Bookshop:
       <a href="{{ link }}">confirm my address</a> (within 24 hours).</p>
    <p>If you did not sign up, ignore this email.</p>
  </body>
</html>
""",
}

# Autoescaping by the template's name: what goes into an .html template is escaped, so a
# name is shown, never run as markup; a .txt template is plain text, shown as it is.
_environment = Environment(loader=DictLoader(TEMPLATES), autoescape=select_autoescape(["html"]))


@dataclass
class Rendered:
    """The text of one email: its subject, its plain-text body and its HTML body."""

    subject: str
    text: str
    html: str


def render_confirmation(name: str, link: str) -> Rendered:
    """The confirmation email's subject and bodies for ``name``, with ``link`` in both bodies."""
    variables = {"name": name, "link": link}
    return Rendered(
        subject=SUBJECT.format(name=name),
        text=_environment.get_template("confirm.txt").render(variables),
        html=_environment.get_template("confirm.html").render(variables),
    )


def compose(name: str, email: str, link: str) -> EmailMessage:
    """The confirmation email to ``name`` at ``email``, ready for any SMTP server."""
    rendered = render_confirmation(name, link)
    message = EmailMessage()
    message["From"] = SENDER
    # An Address, never text glued together: the name is quoted or encoded as it needs.
    message["To"] = Address(display_name=name, addr_spec=email)
    message["Subject"] = rendered.subject
    # multipart/alternative, plainest first: a mail client shows the last part it can.
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message


# ------------------------------------------------------------------ sending


class SendError(Exception):
    """The mail server did not take the message: it could not be reached, or it refused it.

    Its message names the server (host and port) and says what went wrong there.
    """


class Sender(Protocol):
    """Whatever hands a message to a mail server: SMTP here, a fake in the unit-level specs."""

    async def send(self, message: EmailMessage) -> None:
        """Hand one message over; raise SendError if the server did not take it."""


class SmtpSender:
    """Sends each message over SMTP to the server at ``host``:``port``, one connection per message."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    async def send(self, message: EmailMessage) -> None:
        """Hand one message to the server without blocking the event loop; SendError if it did not take it."""
        try:
            # Connects, says EHLO, MAIL FROM, RCPT TO and DATA, then QUIT and closes; every
            # wait for the server is an await, so the loop serves other requests meanwhile.
            await aiosmtplib.send(message, hostname=self.host, port=self.port)
        except (aiosmtplib.SMTPException, OSError) as error:
            raise SendError(f"the mail server at {self.host}:{self.port} did not take the message: {error}") from error


# ------------------------------------------------------------------ confirmation tokens


class Clock(Protocol):
    """Tells the time."""

    def time(self) -> float:
        """Seconds since the epoch, like ``time.time()``."""


class TokenInvalidError(Exception):
    """Not a confirmation token of ours: malformed, tampered with, or signed for something else."""


class TokenExpiredError(Exception):
    """A confirmation token of ours, older than it may be."""


class Tokens:
    """Signs a user's id into a token for a confirmation link, and checks such tokens."""

    def __init__(self, secret_key: str, clock: Clock, max_age: int = MAX_AGE) -> None:
        class OnTheClock(TimestampSigner):
            """itsdangerous's timestamp signer, reading the time from ``clock``, not from the machine."""

            def get_timestamp(self) -> int:
                return int(clock.time())

        self._serializer = URLSafeTimedSerializer(secret_key, salt=SALT, signer=OnTheClock)
        self.max_age = max_age

    def issue(self, user_id: UUID) -> str:
        """A token that says "user ``user_id``", signed, with the time it was made."""
        return self._serializer.dumps(str(user_id))

    def check(self, token: str) -> UUID:
        """The user id a valid token holds; TokenExpiredError or TokenInvalidError otherwise."""
        try:
            payload = self._serializer.loads(token, max_age=self.max_age)
        except SignatureExpired as error:  # a BadData too: it must be caught first
            raise TokenExpiredError from error
        except BadData as error:
            raise TokenInvalidError from error
        try:
            return UUID(payload)
        except (TypeError, ValueError, AttributeError) as error:
            raise TokenInvalidError from error


# ------------------------------------------------------------------ the users and the app


@dataclass
class User:
    """A person who signed up, and where their confirmation stands."""

    id: UUID
    name: str
    email: str
    confirmed: bool = False
    confirmation_email: str = "pending"  # "pending", then "sent" or "failed"


class Users:
    """The user store: a dictionary here, a table in production (kata 7)."""

    def __init__(self) -> None:
        self._users: dict[UUID, User] = {}

    def add(self, user: User) -> None:
        """Keep a new user."""
        self._users[user.id] = user

    def get(self, user_id: UUID) -> User | None:
        """The user with this id, or None."""
        return self._users.get(user_id)


class Registration(BaseModel):
    """What a person sends to sign up."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f-\x9f]*$")
    email: EmailStr


async def send_confirmation(user: User, sender: Sender, tokens: Tokens, base_url: str) -> None:
    """The background task: email ``user`` a fresh confirmation link; record whether the server took it."""
    # The link comes from the app's own address, never from the request's Host header.
    link = f"{base_url}/users/{user.id}/confirm?token={tokens.issue(user.id)}"
    try:
        await sender.send(compose(user.name, user.email, link))
    except SendError:
        logger.warning("the confirmation email of user %s could not be sent", user.id)
        user.confirmation_email = "failed"
        return
    user.confirmation_email = "sent"


def _find(users: Users, user_id: UUID) -> User:
    """The user with this id; a 404 if there is none."""
    user = users.get(user_id)
    if user is None:
        raise HTTPException(status_code=404, detail=f"no user {user_id}")
    return user


def create_app(  # noqa: PLR0913 - every collaborator injected, so the specs can pass fakes
    sender: Sender,
    secret_key: str,
    clock: Clock,
    *,
    users: Users | None = None,
    new_id: Callable[[], UUID] = uuid4,
    base_url: str = "http://127.0.0.1:8000",
) -> FastAPI:
    """Build the API around its injected collaborators (the specs pass fakes, or a real SMTP sender)."""
    app = FastAPI(title="Kata 13: an email system")
    store = users if users is not None else Users()
    tokens = Tokens(secret_key, clock)

    @app.post("/users", status_code=201)
    async def register(registration: Registration, background_tasks: BackgroundTasks) -> dict[str, Any]:
        """Sign a person up; the confirmation email goes out after the response."""
        user = User(id=new_id(), name=registration.name, email=str(registration.email))
        store.add(user)  # first: the link in the email must work the moment it arrives
        background_tasks.add_task(send_confirmation, user, sender, tokens, base_url)
        return asdict(user)

    @app.get("/users/{user_id}")
    async def get_user(user_id: UUID) -> dict[str, Any]:
        """One user, and where their confirmation stands."""
        return asdict(_find(store, user_id))

    @app.get("/users/{user_id}/confirm")
    async def confirm(user_id: UUID, token: str) -> dict[str, Any]:
        """The link in the email: a valid token of this user confirms them (again, harmlessly)."""
        user = _find(store, user_id)
        try:
            owner = tokens.check(token)
        except TokenExpiredError:
            raise HTTPException(status_code=410, detail="this confirmation link has expired") from None
        except TokenInvalidError:
            raise HTTPException(status_code=400, detail="this confirmation link is not valid") from None
        if owner != user.id:  # a valid token, but someone else's
            raise HTTPException(status_code=400, detail="this confirmation link is not valid")
        user.confirmed = True
        return asdict(user)

    @app.post("/users/{user_id}/confirmation-email", status_code=202)
    async def send_again(user_id: UUID, background_tasks: BackgroundTasks) -> dict[str, Any]:
        """Send the confirmation email again, with a new link (after a failure, or a lost email)."""
        user = _find(store, user_id)
        if user.confirmed:
            raise HTTPException(status_code=409, detail=f"user {user_id} is already confirmed")
        user.confirmation_email = "pending"
        background_tasks.add_task(send_confirmation, user, sender, tokens, base_url)
        return asdict(user)

    return app
