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
from dataclasses import asdict, dataclass  # noqa: F401 - you will need them
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any, Protocol
from uuid import UUID, uuid4

import aiosmtplib  # noqa: F401 - you will need it
from fastapi import BackgroundTasks, FastAPI, HTTPException, Request  # noqa: F401 - you will need them
from itsdangerous import BadData, SignatureExpired, TimestampSigner, URLSafeTimedSerializer  # noqa: F401 - the same
from jinja2 import DictLoader, Environment, select_autoescape  # noqa: F401 - you will need them
from pydantic import BaseModel, EmailStr, Field  # noqa: F401 - you will need them

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


@dataclass
class Rendered:
    """The text of one email: its subject, its plain-text body and its HTML body."""

    subject: str
    text: str
    html: str


def render_confirmation(name: str, link: str) -> Rendered:
    """The confirmation email's subject and bodies for ``name``, with ``link`` in both bodies."""
    # TODO(k13) task 1: the subject is `SUBJECT` with the name in it; the two bodies come from
    # the two `TEMPLATES`, given the name and the link. In the HTML body a name shows as text,
    # never as markup, whatever it holds; the text body and the subject keep it as typed.
    raise NotImplementedError("TODO(k13) task 1: render the confirmation email")


def compose(name: str, email: str, link: str) -> EmailMessage:
    """The confirmation email to ``name`` at ``email``, ready for any SMTP server."""
    # TODO(k13) task 2: from `SENDER`, to one address (this name at this address), with the
    # rendered subject, and the two rendered bodies as alternatives of each other, plain text
    # first. Every header must reach any server intact, whatever the name holds.
    raise NotImplementedError("TODO(k13) task 2: compose the message")


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
        # TODO(k13) task 3: one SMTP conversation with the server at this host and port, ended
        # with QUIT and a closed connection, whatever happens. While it waits for the server
        # the event loop goes on serving others. A server that cannot be reached, or refuses
        # the message, is a `SendError`.
        raise NotImplementedError("TODO(k13) task 3: send the message over SMTP")


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
        # TODO(k13) task 4: tokens in the README's format: signed with `secret_key` and `SALT`,
        # stamped with the time of `clock` (never the machine's), valid for `max_age` seconds.
        self.secret_key = secret_key
        self.clock = clock
        self.max_age = max_age

    def issue(self, user_id: UUID) -> str:
        """A token that says "user ``user_id``", signed, with the time it was made."""
        # TODO(k13) task 4: the user's id as text, signed and stamped with the clock's time now.
        raise NotImplementedError("TODO(k13) task 4: issue a token")

    def check(self, token: str) -> UUID:
        """The user id a valid token holds; TokenExpiredError or TokenInvalidError otherwise."""
        # TODO(k13) task 4: the id a token of ours holds, up to its maximum age on the clock
        # (that age included); `TokenExpiredError` once older; `TokenInvalidError` for anything
        # else, whatever a client typed.
        raise NotImplementedError("TODO(k13) task 4: check a token")


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

    # TODO(k13) task 5: `name`, 1 to 100 characters and no control characters, and `email`, a
    # valid address; both required. Anything else is answered 422 and sends nothing.


async def send_confirmation(user: User, sender: Sender, tokens: Tokens, base_url: str) -> None:
    """The background task: email ``user`` a fresh confirmation link; record whether the server took it."""
    # TODO(k13) task 5: the confirmation email, with a link under `base_url` to this user's
    # confirmation and a fresh token, handed to `sender`. Then the user's confirmation email is
    # sent, or failed if the sender raised `SendError`: one WARNING naming the user's id (never
    # the address), and nothing escapes.
    raise NotImplementedError("TODO(k13) task 5: send the confirmation email")


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
    store = users if users is not None else Users()  # noqa: F841 - you will need it

    @app.post("/users", status_code=201)
    async def register(request: Request, background_tasks: BackgroundTasks) -> dict[str, Any]:
        """Sign a person up; the confirmation email goes out after the response."""
        # TODO(k13) task 5: the body is a `Registration`. The new user (a `User` with a fresh
        # id) is stored before the answer, a 201 with the user; the confirmation email goes out
        # after the answer.
        raise NotImplementedError("TODO(k13) task 5: sign the person up")

    @app.get("/users/{user_id}")
    async def get_user(user_id: str) -> dict[str, Any]:
        """One user, and where their confirmation stands."""
        # TODO(k13) task 5: the user with this id; a 404 if there is none, a 422 for an id that
        # is not a UUID.
        raise NotImplementedError(f"TODO(k13) task 5: find user {user_id}")

    @app.get("/users/{user_id}/confirm")
    async def confirm(request: Request, user_id: str) -> dict[str, Any]:
        """The link in the email: a valid token of this user confirms them (again, harmlessly)."""
        # TODO(k13) task 6: the `token` of the link confirms the user it belongs to: 200 with
        # the user, again and again. Unknown user 404, expired link 410, any other bad token 400.
        raise NotImplementedError(f"TODO(k13) task 6: confirm user {user_id}")

    @app.post("/users/{user_id}/confirmation-email", status_code=202)
    async def send_again(user_id: str, background_tasks: BackgroundTasks) -> dict[str, Any]:
        """Send the confirmation email again, with a new link (after a failure, or a lost email)."""
        # TODO(k13) task 6: a user not confirmed yet gets a new email after the answer, a 202
        # with the user, pending again; a confirmed one a 409; an unknown one a 404.
        raise NotImplementedError(f"TODO(k13) task 6: send user {user_id} a new email")

    return app
