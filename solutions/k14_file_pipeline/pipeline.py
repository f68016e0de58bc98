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
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path, PureWindowsPath
from typing import Any, Protocol
from uuid import UUID, uuid4

from fastapi import BackgroundTasks, FastAPI, HTTPException, UploadFile
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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


def display_name(filename: str | None) -> str:
    """What the client called the file, fit to show: its last part, no control characters, not too long."""
    # Both kinds of separator count, whichever system the client runs: the last part is the name.
    name = PureWindowsPath(filename or "").name
    name = _CONTROL.sub("", name)[:NAME_LIMIT]
    return name or UNNAMED


def store(file: UploadFile, upload_dir: Path, upload_id: UUID) -> Path:
    """Copy the upload into a file named after its id, in the upload folder, and say where it is."""
    path = upload_dir / f"{upload_id.hex}.upload"  # our name: the client's never chooses a path
    with path.open("xb") as out:
        shutil.copyfileobj(file.file, out)
    return path


def read_chunks(path: Path, chunk_rows: int) -> Any:
    """The stored file's counts, ``chunk_rows`` at a time; a line that is no count raises CorruptFileError."""
    chunk: list[Count] = []
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                chunk.append(Count.model_validate_json(line))
            except ValidationError as error:
                first = error.errors()[0]["msg"]
                raise CorruptFileError(f"line {number}: not a stock count ({first})") from None
            if len(chunk) == chunk_rows:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def process(upload: Upload, path: Path, inventory: Inventory, chunk_rows: int) -> None:
    """Read the stored file chunk by chunk into the inventory, then remove it (a ``def``: it blocks)."""
    upload.state = "processing"
    try:
        for chunk in read_chunks(path, chunk_rows):
            inventory.save(chunk)
            upload.rows += len(chunk)
    except CorruptFileError as error:
        upload.state, upload.reason = "failed", str(error)
    except Exception as error:  # noqa: BLE001 - the inventory may fail in any way: recorded, never raised
        upload.state, upload.reason = "failed", f"the inventory did not take the counts: {type(error).__name__}"
    else:
        upload.state = "completed"
    finally:
        path.unlink(missing_ok=True)


def create_app(settings: Settings, inventory: Inventory) -> FastAPI:
    """Build the API around its settings and its inventory (the specs pass a fake)."""
    app = FastAPI(title="Kata 14: a file pipeline")
    uploads: dict[UUID, Upload] = {}

    @app.post("/uploads", status_code=202, max_body_size=settings.max_upload_bytes)
    def upload_counts(file: UploadFile, background_tasks: BackgroundTasks) -> dict[str, Any]:
        """Store the file under a name of our own and queue its processing; 202 at once."""
        upload = Upload(id=uuid4(), name=display_name(file.filename))
        path = store(file, settings.upload_dir, upload.id)
        uploads[upload.id] = upload
        background_tasks.add_task(process, upload, path, inventory, settings.chunk_rows)
        return asdict(upload)

    @app.get("/uploads/{upload_id}")
    async def upload_status(upload_id: UUID) -> dict[str, Any]:
        """Where one upload stands."""
        upload = uploads.get(upload_id)
        if upload is None:
            raise HTTPException(status_code=404, detail=f"no upload {upload_id}")
        return asdict(upload)

    return app
