"""Kata 12: handing off to Celery.

Rendering a document to PDF takes seconds of CPU. Done in the web process, it steals that
process's time from every other request, dies with the process on a deploy, and cannot be
shared with other machines. So the API only takes the document, saves it, and hands the
work to Celery: a broker carries a message naming the task and its arguments to a worker,
and a result backend keeps what the worker reports, for ``GET /tasks/{task_id}`` to read.

Read README.md in this folder for the tasks, then make the specs pass:

    uv run pytest katas/k12_celery_handoff
"""

from __future__ import annotations

import json  # noqa: F401 - you will need it
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from uuid import UUID, uuid4  # noqa: F401 - you will need them

from celery import Celery, Task, states  # noqa: F401 - you will need them
from fastapi import FastAPI, HTTPException, Request, Response  # noqa: F401 - you will need them
from pydantic import BaseModel, Field  # noqa: F401 - you will need them

#: The task's name: the only thing the web process and the worker must agree on, with its arguments.
RENDER_TASK = "documents.render"
#: How many times a busy renderer is tried again, after the first try.
MAX_RETRIES = 3


class Settings(NamedTuple):
    """What the web process and the worker both read, in production from the environment. Read-only."""

    storage: Path  # the folder where the API saves documents and the worker reads them
    retry_delay: float  # seconds before a busy renderer is tried again (`kata serve` uses 2)
    redis_url: str | None = None  # a Redis URL (redis://host:port/db) for the broker and the results; None: memory


class RenderError(Exception):
    """The document cannot be rendered (a broken table, a missing image): trying again will not help."""


class RendererBusy(Exception):  # noqa: N818 - named for what the renderer says, as its client library does
    """The renderer has no free slot right now: the same document may well render in a moment."""


class Renderer(Protocol):
    """Turns a document into a PDF: seconds of CPU, in the worker only."""

    def render(self, title: str, markdown: str) -> int:
        """Render one document; return its number of pages. Raises RenderError or RendererBusy."""


class DocumentIn(BaseModel):
    """What a client sends: a document to render."""

    # TODO(k12) task 3: `title`, 1 to 120 characters, and `markdown`, 1 to 20000 characters,
    # both required. Anything else is answered 422, and nothing is saved or sent.


def document_path(settings: Settings, document_id: str) -> Path:
    """Where the document with this id is saved: ``<storage>/<id>.json``."""
    return settings.storage / f"{document_id}.json"


# ------------------------------------------------------------------ the Celery app and its task


def create_celery(settings: Settings, renderer: Renderer) -> Celery:
    """The Celery app, configured from ``settings``, with the render task registered on it.

    The web process builds one to send tasks and read their states; the worker builds its
    own, from the same settings, to run them. Nothing but the broker and the result
    backend connects the two.
    """
    celery_app = Celery("k12_celery_handoff")
    # TODO(k12) task 1: without a Redis address in the settings, the broker is `memory://` and
    # the result backend `cache+memory://`; with one, both are that address. Messages and
    # results are JSON, and JSON is all a worker accepts; the STARTED state is tracked, results
    # are kept, and tasks never run eagerly.
    # TODO(k12) task 2: the render task, registered on this app (and on no other) under the
    # name `RENDER_TASK`. Given a document's id, it reads the document saved under that id,
    # renders its title and markdown with `renderer`, and returns `{"pages": <the page count>}`.
    # A `RenderError` fails the task at once. A `RendererBusy` is tried again after the
    # settings' retry delay, at most `MAX_RETRIES` times; then the task fails with it.
    return celery_app  # noqa: RET504 - your configuration and your task go between these two lines


# ------------------------------------------------------------------ the web app


def create_app(settings: Settings, celery_app: Celery) -> FastAPI:
    """Build the API: it saves documents and hands them to the worker through ``celery_app``."""
    app = FastAPI(title="Kata 12: handing off to Celery")

    @app.post("/documents", status_code=202)
    def submit(request: Request) -> dict[str, str]:
        """Save the document, hand its rendering to a worker, answer at once."""
        # TODO(k12) task 3: the body is a `DocumentIn`. A fresh task id; the document saved as
        # JSON under that id (see `document_path`) before its task is sent; the task sent by
        # its name, with that id as its only argument and as the task's own id. Never run here,
        # never waited for. Answer with the task id and `status` pending, and a `Location`
        # header naming the task's status.
        raise NotImplementedError("TODO(k12) task 3: save the document and send its task")

    @app.get("/tasks/{task_id}")
    def task_status(task_id: str) -> dict[str, Any]:
        """Where one task stands, as the result backend says it."""
        # TODO(k12) task 4: a malformed id is a 422; an id the API never gave out is a 404 (only
        # the saved document tells, not Celery). Otherwise the task's state, read once and never
        # waited for, in the API's words: pending, running, completed (with the task's `result`).
        # TODO(k12) task 5: failed, with the error's class and message as `error` (never a
        # traceback); retrying; any other state in lower case.
        raise NotImplementedError(f"TODO(k12) task 4: say where task {task_id} stands")

    return app
