"""Kata 14: a file pipeline.

A shop uploads its stock count as a file of JSON lines. The API stores the upload under a
name of its own, refuses a body that is too big before reading it all, and answers at
once; a background task then reads the stored file, chunk by chunk, hands each chunk to
the inventory, and reports its progress. A corrupt file is recorded as failed with a
one-line reason, and the stored file is removed whatever happens.

Read README.md in this folder for the tasks, then make the specs pass:

    uv run pytest katas/k14_file_pipeline
"""

from __future__ import annotations

import re
import shutil  # noqa: F401 - you may need it
from dataclasses import asdict, dataclass  # noqa: F401 - you will need asdict
from pathlib import Path, PureWindowsPath  # noqa: F401 - you may need PureWindowsPath
from typing import Any, Protocol
from uuid import UUID, uuid4  # noqa: F401 - you will need them

from fastapi import BackgroundTasks, FastAPI, HTTPException, Request, UploadFile  # noqa: F401 - you will need them
from pydantic import BaseModel, ConfigDict, Field, ValidationError  # noqa: F401 - you will need ValidationError

#: The longest display name kept, in characters.
NAME_LIMIT = 100
#: The display name of an upload whose own name leaves nothing to show.
UNNAMED = "unnamed"
#: Control characters (NUL included) never reach a display name.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Settings:
    """Where uploads are kept, how big one may be, and how many rows go to the inventory at once."""

    upload_dir: Path  # the folder the stored files live in while they wait to be processed
    max_upload_bytes: int = 1_048_576  # the whole request body, the form's envelope included: 1 MiB
    chunk_rows: int = 500  # rows handed to the inventory in one call


class Count(BaseModel):
    """One line of an upload: a stock count, as JSON."""

    model_config = ConfigDict(strict=True)

    sku: str = Field(min_length=1, max_length=40)
    quantity: int = Field(ge=0)


class Inventory(Protocol):
    """The shop's inventory service: its client blocks while it talks to the server."""

    def save(self, counts: list[Count]) -> None:
        """Keep one chunk of counts; slow, and it blocks."""


@dataclass
class Upload:
    """Where one upload stands; what the status endpoint shows."""

    id: UUID
    name: str  # the name the client gave, cleaned for display: never a path
    state: str = "queued"  # queued, processing, completed or failed
    rows: int = 0  # rows the inventory has accepted so far
    reason: str | None = None  # why it failed, in one line


class CorruptFileError(Exception):
    """A line of the upload is not a stock count."""


# ------------------------------------------------------------------ your part


def display_name(filename: str | None) -> str:
    """What the client called the file, fit to show: its last part, no control characters, not too long."""
    # TODO(k14) task 2: the part after the last slash or backslash, either kind, whatever
    # system the client runs; no control characters (NUL among them); at most `NAME_LIMIT`
    # characters (characters, not bytes); `UNNAMED` when nothing is left. Only ever shown,
    # never a path.
    raise NotImplementedError("TODO(k14) task 2: clean the client's file name for display")


def store(file: UploadFile, upload_dir: Path, upload_id: UUID) -> Path:
    """Copy the upload into a file named after its id, in the upload folder, and say where it is."""
    # TODO(k14) task 2: the stored file is in `upload_dir` itself, under a name the app makes
    # up (the client's name never takes part in it), and holds exactly the uploaded bytes.
    raise NotImplementedError("TODO(k14) task 2: store the upload under a name of your own")


def read_chunks(path: Path, chunk_rows: int) -> Any:
    """The stored file's counts, ``chunk_rows`` at a time; a line that is no count raises CorruptFileError."""
    # TODO(k14) task 4: every line of the stored file is one `Count`; they come out in lists
    # of `chunk_rows`, the last one shorter if need be, never an empty one.
    # TODO(k14) task 5: a line that is not a `Count` stops it with a `CorruptFileError` whose
    # message is one line and names the line, counting from 1.
    raise NotImplementedError("TODO(k14) task 4: read the stored file, chunk by chunk")


def process(upload: Upload, path: Path, inventory: Inventory, chunk_rows: int) -> None:
    """Read the stored file chunk by chunk into the inventory, then remove it (a ``def``: it blocks)."""
    # TODO(k14) task 4: the upload is `processing` while this runs; each chunk goes to the
    # inventory, and only once the inventory has it do the upload's `rows` grow; then it is
    # `completed`.
    # TODO(k14) task 5: a corrupt line, or an inventory that raises, makes the upload `failed`
    # with a `reason` of one line; nothing is raised out of the task.
    # TODO(k14) task 6: the stored file is gone when this returns, whatever happened.
    raise NotImplementedError("TODO(k14) task 4: process the stored file")


def create_app(settings: Settings, inventory: Inventory) -> FastAPI:
    """Build the API around its settings and its inventory (the specs pass a fake)."""
    app = FastAPI(title="Kata 14: a file pipeline")
    uploads: dict[UUID, Upload] = {}  # noqa: F841 - every upload's status, by id

    @app.post("/uploads", status_code=202)
    def upload_counts(request: Request, background_tasks: BackgroundTasks) -> dict[str, Any]:
        """Store the file under a name of our own and queue its processing; 202 at once."""
        # TODO(k14) task 1: the body is a form whose part `file` is a file; anything else is a
        # 422. Each upload gets a fresh id and a status, `queued`, which is the answer.
        # TODO(k14) task 2: the upload is stored before the answer goes out.
        # TODO(k14) task 3: a body larger than the settings' `max_upload_bytes` is refused with a
        # 413 while it is still arriving, before this function ever runs.
        # TODO(k14) task 4: the stored file is processed after the response, in the background.
        raise NotImplementedError("TODO(k14) task 1: accept the upload")

    @app.get("/uploads/{upload_id}")
    async def upload_status(upload_id: str) -> dict[str, Any]:
        """Where one upload stands."""
        # TODO(k14) task 1: the status of that upload; an id that is not a UUID is a 422, one
        # that no upload has a 404.
        raise NotImplementedError(f"TODO(k14) task 1: the status of upload {upload_id}")

    return app
