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

import json
from pathlib import Path
from typing import Any, NamedTuple, Protocol
from uuid import UUID, uuid4

from celery import Celery, Task, states
from fastapi import FastAPI, HTTPException, Response
from pydantic import BaseModel, Field

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

    title: str = Field(min_length=1, max_length=120)
    markdown: str = Field(min_length=1, max_length=20_000)


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
    # One URL, or nothing: both in memory (one process, for the specs and the demo) or both in Redis.
    broker = settings.redis_url or "memory://"
    backend = settings.redis_url or "cache+memory://"
    celery_app = Celery("k12_celery_handoff", broker=broker, backend=backend)
    celery_app.conf.update(
        # Messages and results are JSON: readable by any worker, and nothing executable in them.
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # Without it a task goes from PENDING straight to SUCCESS: nobody can tell "queued" from "running".
        task_track_started=True,
        # Eager mode runs a task inside the caller, the web process: never here.
        task_always_eager=False,
    )

    @celery_app.task(name=RENDER_TASK, bind=True, max_retries=MAX_RETRIES, shared=False)
    def render_document(task: Task, document_id: str) -> dict[str, int]:
        """Render the saved document ``document_id``: the worker runs this, never the web process."""
        # The message carries the id only; the document itself waits in the shared storage.
        saved = json.loads(document_path(settings, document_id).read_text(encoding="utf-8"))
        try:
            pages = renderer.render(saved["title"], saved["markdown"])
        except RendererBusy as error:
            # A transient failure: the same message again, later. Celery stores RETRY meanwhile,
            # and once the retries are spent it fails the task with this error.
            raise task.retry(exc=error, countdown=settings.retry_delay) from error
        # A RenderError is not caught: the task fails, and Celery stores FAILURE with the error.
        return {"pages": pages}

    return celery_app


# ------------------------------------------------------------------ the web app


def create_app(settings: Settings, celery_app: Celery) -> FastAPI:
    """Build the API: it saves documents and hands them to the worker through ``celery_app``."""
    app = FastAPI(title="Kata 12: handing off to Celery")
    # What the API says for each of Celery's states.
    statuses = {
        states.PENDING: "pending",  # waiting in the queue, or an id Celery has never seen: it cannot tell
        states.STARTED: "running",  # a worker took it (reported only with task_track_started)
        states.RETRY: "retrying",  # it failed for now, and will be tried again
        states.SUCCESS: "completed",
        states.FAILURE: "failed",
    }

    # Plain `def` endpoints: Celery's client blocks while it talks to the broker or the
    # backend, so FastAPI runs these in its thread pool, off the event loop.
    @app.post("/documents", status_code=202)
    def submit(document: DocumentIn, response: Response) -> dict[str, str]:
        """Save the document, hand its rendering to a worker, answer at once."""
        task_id = str(uuid4())
        # Saved BEFORE the message goes out: a worker may pick it up the next instant.
        document_path(settings, task_id).write_text(json.dumps(document.model_dump()), encoding="utf-8")
        # Enqueued by name with a JSON-safe argument, under our own id; never run here, never waited for.
        celery_app.send_task(RENDER_TASK, args=[task_id], task_id=task_id)
        response.headers["Location"] = f"/tasks/{task_id}"
        return {"task_id": task_id, "status": "pending"}

    @app.get("/tasks/{task_id}")
    def task_status(task_id: UUID) -> dict[str, Any]:
        """Where one task stands, as the result backend says it."""
        # Celery answers PENDING for an id it has never seen: only our own record tells them apart.
        if not document_path(settings, str(task_id)).is_file():
            raise HTTPException(status_code=404, detail=f"no task {task_id}")
        result = celery_app.AsyncResult(str(task_id))
        state = result.state  # one look at the backend; never .get(), which waits for the end
        body: dict[str, Any] = {"task_id": str(task_id), "status": statuses.get(state, state.lower())}
        if state == states.SUCCESS:
            body["result"] = result.result  # only once it is ready: before that it is None or Celery's own data
        elif state == states.FAILURE:
            error = result.result  # the exception, rebuilt from the backend; its traceback stays in the worker's log
            body["error"] = f"{type(error).__name__}: {error}"
        return body

    return app
