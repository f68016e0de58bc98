"""Specs for kata 14: a file pipeline.

Run them with

    uv run pytest katas/k14_file_pipeline

Each spec names the README task it checks. Edit pipeline.py, not this file.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import re
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import fastapi  # noqa: F401 - the kata's stack, imported while pytest collects rather than inside the first spec
import pydantic.v1  # noqa: F401 - FastAPI imports it on first use: here, while pytest collects
import pytest
import python_multipart  # noqa: F401 - the form parser, imported while pytest collects

from dojo.impl import kata_module
from dojo.teach import expect_json, expect_status, expect_type, lesson
from dojo.timeline import (
    CLIENT_ADDRESS,
    RESPONSE_COMPLETE,
    SERVER_ADDRESS,
    CatchAppErrors,
    Exchange,
    Timeline,
    every_case,
    within_bound,
)

pipeline = kata_module("k14_file_pipeline", "pipeline")

# What the fake inventory (conftest.py) records on the timeline.
CHUNK_HELD = "inventory holds chunk"
CHUNK_SAVED = "inventory saved chunk"
INVENTORY_ON_LOOP = "inventory called on the event loop thread"

BOUNDARY = "k14-spec-boundary"
FORM = {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}
FIELDS = {"id", "name", "state", "rows", "reason"}
STATES = {"queued", "processing", "completed", "failed"}


def form(content: bytes, *, filename: str = "counts.jsonl", field: str = "file") -> bytes:
    """A multipart/form-data body with one file part, as a browser or curl sends it."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + content + f"\r\n--{BOUNDARY}--\r\n".encode()


def counts(*pairs: tuple[str, int]) -> bytes:
    """JSON lines of stock counts, one per line."""
    return b"".join(json.dumps({"sku": sku, "quantity": quantity}).encode() + b"\n" for sku, quantity in pairs)


#: Five counts, among them the shortest sku (one character) and the longest (40, accented), and a quantity of 0.
FIVE = [("A", 12), ("AB-2", 0), ("É" * 40, 3), ("EF-9", 40), ("GH-2", 5)]


def sized(total: int) -> bytes:
    """A form body of exactly ``total`` bytes whose file holds one valid count (padded with JSON spaces)."""
    line = b'{"sku": "PAD-1", "quantity": 1}'
    pad = total - len(form(line + b"\n"))
    return form(line + b" " * pad + b"\n")


def files_under(folder: Path) -> list[Path]:
    """Every file (not folder) below ``folder``, at any depth."""
    return sorted(path for path in folder.rglob("*") if not path.is_dir())


def shown(folder: Path, root: Path) -> str:
    return ", ".join(str(path.relative_to(root)) for path in files_under(folder)) or "no file"


def kept(upload_dir: Path, inventory: Any) -> tuple[list[Path], int]:
    """The files in the upload folder and the inventory's calls so far: what one request is judged against."""
    return files_under(upload_dir), inventory.calls


def expect_nothing_kept(upload_dir: Path, inventory: Any, before: tuple[list[Path], int], *, revisit: str) -> None:
    """Since ``before`` (from :func:`kept`): no file stored, no call to the inventory."""
    __tracebackhide__ = True
    files, calls = before
    stored = [path.name for path in files_under(upload_dir) if path not in files]
    assert not stored and inventory.calls == calls, lesson(
        expected="nothing stored, nothing processed",
        got=f"stored: {', '.join(stored) or 'no file'}; the inventory called {inventory.calls - calls} time(s)",
        revisit=revisit,
    )


async def post(client: Any, body: bytes, *, revisit: str, headers: Mapping[str, str] = FORM) -> Any:
    __tracebackhide__ = True
    return await within_bound(client.post("/uploads", content=body, headers=dict(headers)), revisit=revisit)


async def get(client: Any, path: str, *, revisit: str) -> Any:
    __tracebackhide__ = True
    return await within_bound(client.get(path), revisit=revisit)


def status_of(response: Any, *, revisit: str, what: str) -> dict[str, Any]:
    """The status record of an upload, checked field by field for its type."""
    __tracebackhide__ = True
    body = response.json()
    expect_type(body, dict, what=what, revisit=revisit)
    assert set(body) == FIELDS, lesson(
        expected=f"{what} with exactly the fields {sorted(FIELDS)}", got=f"{sorted(body)}", revisit=revisit
    )
    expect_type(body["id"], str, what=f"the id in {what}", revisit=revisit)
    expect_type(body["name"], str, what=f"the name in {what}", revisit=revisit)
    expect_type(body["state"], str, what=f"the state in {what}", revisit=revisit)
    expect_type(body["rows"], int, what=f"the rows in {what}", revisit=revisit)
    expect_type(body["reason"], str, type(None), what=f"the reason in {what}", revisit=revisit)
    return body


class AtResponse:
    """ASGI wrapper: keeps the response's body, and calls ``then()`` the moment its last byte is sent.

    That moment comes before any background task starts: Starlette runs them once the response is out.
    """

    def __init__(self, app: Any, then: Callable[[], None] = lambda: None) -> None:
        self.app = app
        self.then = then
        self.body = b""

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        async def watch(message: Mapping[str, Any]) -> None:
            await send(message)
            if message["type"] == "http.response.body":
                self.body += message.get("body", b"")
                if not message.get("more_body", False):
                    self.then()

        await self.app(scope, receive, watch)


# ---------------------------------------------------------------- task 1: accept and report

ACCEPT = (
    "task 1: a file posted as a form is answered 202 at once, before any of the work is done, with the "
    "status of the upload, queued (README: Accept an upload and report its status)"
)
STATUS = (
    "task 1: each upload has a fresh id, and its status is found at its own address "
    "(README: Accept an upload and report its status)"
)
NO_FILE = (
    "task 1: declare the upload as a file parameter, so a request without a file in a form is refused "
    "before your code runs (README: A file upload, as the server sees it)"
)
IDS = (
    "task 1: the id in the path is declared as a UUID, so an id that is not one is a 422, and one nobody "
    "issued a 404 (README: Accept an upload and report its status)"
)


@pytest.mark.task(1)
async def test_an_upload_is_answered_202_with_its_status(client):
    """202 Accepted, and the upload's status: a fresh id, its name, queued, no row yet, no reason."""
    response = await post(client, form(counts(*FIVE)), revisit=ACCEPT)
    expect_status(response, 202, expected="202 Accepted: the work is queued, not done", revisit=ACCEPT)
    body = status_of(response, revisit=ACCEPT, what="the JSON body")
    try:
        parsed = uuid.UUID(body["id"])
    except ValueError:
        parsed = None
    assert parsed is not None and str(parsed) == body["id"], lesson(
        expected="an id that is a UUID in its usual form", got=repr(body["id"]), revisit=STATUS
    )
    expected = {"name": "counts.jsonl", "state": "queued", "rows": 0, "reason": None}
    got = {key: body[key] for key in expected}
    assert got == expected, lesson(expected=f"the new upload's status: {expected}", got=f"{got}", revisit=ACCEPT)


@pytest.mark.task(1)
async def test_the_status_of_each_upload_is_at_its_own_address(client):
    """GET /uploads/{id} shows that upload; two uploads have two ids."""
    first = status_of(await post(client, form(counts(*FIVE)), revisit=ACCEPT), revisit=ACCEPT, what="the body")
    second_body = form(counts(("ZZ-1", 1)), filename="monday.jsonl")
    second = status_of(await post(client, second_body, revisit=ACCEPT), revisit=ACCEPT, what="the body")
    assert first["id"] != second["id"], lesson(
        expected="two uploads, two ids", got=f"both {first['id']!r}", revisit=STATUS
    )
    for upload, name in ((first, "counts.jsonl"), (second, "monday.jsonl")):
        response = await get(client, f"/uploads/{upload['id']}", revisit=STATUS)
        expect_status(response, 200, revisit=STATUS)
        body = status_of(response, revisit=STATUS, what=f"the status of {name}")
        assert (body["id"], body["name"]) == (upload["id"], name) and body["state"] in STATES, lesson(
            expected=f"the status of {name}: its id {upload['id']}, its name, one of the states {sorted(STATES)}",
            got=f"{body}",
            revisit=STATUS,
        )


#: Requests that carry no file: not a form, a form without a part called file, a part that is no file.
WITHOUT_A_FILE = {
    "JSON": (json.dumps({"file": "AB-1,12"}).encode(), {"content-type": "application/json"}),
    "plain text": (counts(*FIVE), {"content-type": "text/plain"}),
    "no content type": (counts(*FIVE), {}),
    "an empty form": (f"--{BOUNDARY}--\r\n".encode(), FORM),
    "a file under another name": (form(counts(*FIVE), field="document"), FORM),
    "text, no file": (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"\r\n\r\nAB-1\r\n--{BOUNDARY}--\r\n'.encode(),
        FORM,
    ),
}


@pytest.mark.task(1)
async def test_a_request_without_a_file_is_a_422_and_stores_nothing(client, inventory, upload_dir):
    """A body that is not a form, a form with no part called file, or a part that is no file: 422, nothing kept.

    The six requests go to one app, one after another; each is judged by what it changed.
    """

    async def check(case: tuple[bytes, Mapping[str, str]]) -> None:
        body, headers = case
        before = kept(upload_dir, inventory)
        response = await post(client, body, headers=headers, revisit=NO_FILE)
        expect_status(response, 422, expected="422 Unprocessable Content: there is no file to take", revisit=NO_FILE)
        expect_nothing_kept(upload_dir, inventory, before, revisit=NO_FILE)

    await every_case(WITHOUT_A_FILE, check, what="requests without a file", revisit=NO_FILE)


@pytest.mark.task(1)
async def test_an_upload_nobody_made_is_a_404(client):
    """A well-formed id that no upload has: 404, with a detail."""
    await post(client, form(counts(*FIVE)), revisit=ACCEPT)
    unknown = uuid.uuid4()
    response = await get(client, f"/uploads/{unknown}", revisit=IDS)
    expect_status(response, 404, expected=f"404 Not Found for the unknown id {unknown}", revisit=IDS)
    expect_json(response, {"detail": f"no upload {unknown}"}, revisit=IDS)


#: Ids that cannot be a UUID: a number, words, a made-up id, a UUID cut short.
NOT_UUIDS = {upload_id: upload_id for upload_id in ["42", "not-an-id", "upload-1", "0c4f3a5e-7a1b-4c2d"]}


@pytest.mark.task(1)
async def test_an_id_that_is_not_a_uuid_is_a_422(client):
    """An id that cannot be a UUID is a malformed request, not an unknown upload."""

    async def check(upload_id: str) -> None:
        response = await get(client, f"/uploads/{upload_id}", revisit=IDS)
        expect_status(response, 422, expected=f"422 Unprocessable Content for the id {upload_id!r}", revisit=IDS)

    await every_case(NOT_UUIDS, check, what="ids that are no UUID", revisit=IDS)


# ---------------------------------------------------------------- task 2: a name of our own

OWN_NAME = (
    "task 2: the client's file name is data to show, never a path; the stored file gets a name the app "
    "makes up, in the upload folder (README: The client's name is data, not a path)"
)
DISPLAY = (
    "task 2: the name shown is the last part of what the client sent, after either kind of slash, without "
    "control characters, at most a hundred characters, and a placeholder when nothing is left (README: Store it "
    "under a name of your own)"
)
SAVED_FIRST = (
    "task 2: the endpoint copies the upload into the upload folder before it answers: once the response is "
    "sent, the request and its file are gone (README: The upload belongs to the request)"
)
OUTSIDE = (
    "task 2: nothing the app writes may land outside its upload folder, whatever name the client sends "
    "(README: The client's name is data, not a path)"
)

#: File names a client may send, each with the name the status must show for it.
HOSTILE = {
    "dot-dot slash": ("../../etc/passwd", "passwd"),
    "dot-dot backslash": ("..\\..\\windows\\win.ini", "win.ini"),
    "absolute": ("/etc/passwd", "passwd"),
    "drive": ("C:\\evil.txt", "evil.txt"),
    "NUL byte": ("evil\x00.txt", "evil.txt"),
    "empty": ("", "unnamed"),
    "300 characters": ("a" * 300, "a" * 100),
    "accented": ("résumé.csv", "résumé.csv"),
    "three dots": ("...", "..."),
    "two dots": ("..", ".."),
    "100 accented": ("é" * 100, "é" * 100),
    "101 accented": ("é" * 101, "é" * 100),
    "control characters": ("tab\there\x7f.jsonl", "tabhere.jsonl"),
}


def snapshot(root: Path) -> dict[Path, bytes | None]:
    """Every file below ``root``, with its bytes, or None when it is not a plain file (a link, say)."""
    return {path: path.read_bytes() if path.is_file() and not path.is_symlink() else None for path in files_under(root)}


def stored_at_response(app: Any, upload_dir: Path, seen: list[dict[Path, bytes | None]]) -> AtResponse:
    """The app, wrapped to note every file in the spec's folder when the response is complete."""
    return AtResponse(app, lambda: seen.append(snapshot(upload_dir.parent.parent)))


@pytest.mark.task(2)
async def test_the_upload_is_stored_in_the_upload_folder_before_the_response(app, timeline, upload_dir, tmp_path):
    """When the client has its 202, the upload folder holds one file: the uploaded bytes, under a plain name."""
    content = counts(*FIVE)
    seen: list[dict[Path, bytes | None]] = []
    wrapped = stored_at_response(app, upload_dir, seen)
    done: Exchange = await within_bound(
        timeline.start(wrapped, "POST", "/uploads", content=form(content), headers=FORM), revisit=SAVED_FIRST
    )
    expect_status(done, 202, revisit=ACCEPT)
    files = list(seen[0]) if seen else []
    assert len(files) == 1 and files[0].parent == upload_dir, lesson(
        expected="one file, directly in the upload folder, when the response was complete",
        got=", ".join(str(path.relative_to(tmp_path)) for path in files) or "no file yet",
        revisit=SAVED_FIRST,
    )
    stored = files[0]
    held = seen[0][stored]
    assert held == content, lesson(
        expected="a plain file holding exactly the bytes uploaded",
        got="not a plain file" if held is None else f"{held[:100]!r}",
        revisit=SAVED_FIRST,
    )
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,100}", stored.name) and "counts" not in stored.name, lesson(
        expected="a name the app made up, of letters, digits, dots, dashes and underscores, without the client's",
        got=repr(stored.name),
        revisit=OWN_NAME,
    )


@pytest.mark.task(2)
async def test_a_hostile_file_name_never_chooses_where_the_bytes_land(app, timeline, upload_dir, tmp_path, guard):
    """Traversal, absolute paths, drives, NUL, empty, long, accented, dots: stored in the upload folder all the same.

    The thirteen uploads go to one app, one after another; each is judged by the files it
    added or changed by the time its response was complete, and by the name it shows.
    """
    numbers = itertools.count(1)

    async def check(case: tuple[str, str]) -> None:
        filename, display = case
        content = counts((f"AB-{next(numbers)}", 12))  # bytes of its own: a file it overwrote counts as its own
        before, refused = snapshot(tmp_path), len(guard.refused)
        seen: list[dict[Path, bytes | None]] = []
        done: Exchange = await within_bound(
            timeline.start(
                stored_at_response(app, upload_dir, seen),
                "POST",
                "/uploads",
                content=form(content, filename=filename),
                headers=FORM,
            ),
            revisit=OWN_NAME,
        )
        assert len(guard.refused) == refused, lesson(
            expected="no write outside the spec's folder",
            got=f"the spec refused {guard.refused[refused:]}",
            revisit=OUTSIDE,
        )
        expect_status(done, 202, expected=f"202 Accepted for a file called {filename!r}", revisit=OWN_NAME)
        at_response = seen[0] if seen else {}
        files = [path for path, held in at_response.items() if path not in before or before[path] != held]
        root = upload_dir.resolve()
        inside = [path for path in files if path.resolve().is_relative_to(root) and path.resolve().parent == root]
        assert len(files) == 1 and inside == files, lesson(
            expected=f"for a file called {filename!r}: one file, directly in the upload folder",
            got=", ".join(str(path.relative_to(tmp_path)) for path in files) or "no file",
            revisit=OUTSIDE,
        )
        name = files[0].name
        clues = {part for part in re.split(r"[\\/:\x00]", filename) if len(part) > 2}
        assert re.fullmatch(r"[A-Za-z0-9._-]{1,100}", name) and not any(clue in name for clue in clues), lesson(
            expected=f"a stored name the app made up, owing nothing to {filename!r}",
            got=repr(name),
            revisit=OWN_NAME,
        )
        body = status_of(done, revisit=DISPLAY, what="the JSON body")
        assert body["name"] == display, lesson(
            expected=f"the name shown for {filename!r}: {display!r}", got=repr(body["name"]), revisit=DISPLAY
        )

    await every_case(HOSTILE, check, what="hostile file names", revisit=OUTSIDE)


@pytest.mark.task(2)
async def test_two_uploads_of_the_same_name_are_stored_under_two_names(app, timeline, upload_dir):
    """The same file name twice: two stored names, so one upload never overwrites another."""
    seen: list[dict[Path, bytes | None]] = []
    wrapped = stored_at_response(app, upload_dir, seen)
    for _ in range(2):
        done: Exchange = await within_bound(
            timeline.start(wrapped, "POST", "/uploads", content=form(counts(*FIVE)), headers=FORM),
            revisit=OWN_NAME,
        )
        expect_status(done, 202, revisit=ACCEPT)
    first, second = ([path.name for path in files if path.parent == upload_dir] for files in (*seen, {}, {})[:2])
    assert first and [name for name in second if name not in first], lesson(
        expected="the second upload stored under a name of its own, beside or instead of the first's",
        got=f"stored names: {first} after the first upload, {second} after the second",
        revisit=OWN_NAME,
    )


# ---------------------------------------------------------------- task 3: the size limit

LIMIT = (
    "task 3: the limit is the route's own, on the whole body, from the settings: a body at the limit is "
    "taken, one byte more is a 413 (README: Refuse a body that is too big)"
)
EARLY = (
    "task 3: the limit must stop the request while the body is still arriving: a check after reading it all "
    "has already paid for it (README: Refusing a body before reading it)"
)
DEFAULTS = "task 3: by default, the settings allow a body of one mebibyte (README: Refuse a body that is too big)"


@pytest.mark.task(3)
async def test_a_body_at_the_limit_is_accepted(client, upload_dir):
    """A body of exactly max_upload_bytes (4096 here) is taken and stored."""
    body = sized(4096)
    response = await post(client, body, revisit=LIMIT)
    expect_status(response, 202, expected="202 Accepted for a body of exactly the limit, 4096 bytes", revisit=LIMIT)


#: Bodies past the 4096-byte limit, by their size.
PAST_THE_LIMIT = {"one byte past": 4097, "twice": 9000}


@pytest.mark.task(3)
async def test_a_body_past_the_limit_is_a_413_and_nothing_is_stored(client, upload_dir, inventory):
    """One byte past the limit, and more: 413 Content Too Large, nothing stored, nothing processed."""

    async def check(total: int) -> None:
        before = kept(upload_dir, inventory)
        response = await post(client, sized(total), revisit=LIMIT)
        expect_status(response, 413, expected=f"413 Content Too Large for a body of {total} bytes", revisit=LIMIT)
        expect_nothing_kept(upload_dir, inventory, before, revisit=LIMIT)

    await every_case(PAST_THE_LIMIT, check, what="bodies past the limit", revisit=LIMIT)


@pytest.mark.task(3)
async def test_the_default_limit_is_one_mebibyte(upload_dir, inventory):
    """Settings with only a folder: 1 MiB bodies (1 048 576 bytes) taken, one byte more refused."""
    settings = pipeline.Settings(upload_dir=upload_dir)
    limit = expect_type(settings.max_upload_bytes, int, what="the default max_upload_bytes", revisit=DEFAULTS)
    assert limit == 1_048_576, lesson(expected="max_upload_bytes 1048576 by default", got=f"{limit}", revisit=DEFAULTS)
    try:
        settings.max_upload_bytes = 10**12  # type: ignore[misc] - the spec tries what the app must not
    except dataclasses.FrozenInstanceError:
        changed = False
    else:
        changed = True
    assert not changed, lesson(
        expected="settings that cannot change once made: the limit on the route is the one they hold",
        got="the limit could be changed after the app was built",
        revisit=DEFAULTS,
    )
    app = CatchAppErrors(pipeline.create_app(settings=settings, inventory=inventory))
    timeline = Timeline()
    try:
        at = await within_bound(
            timeline.request(app, "POST", "/uploads", content=sized(1_048_576), headers=FORM), revisit=LIMIT
        )
        expect_status(at, 202, expected="202 Accepted for a body of 1048576 bytes, by default", revisit=DEFAULTS)
        past = await within_bound(
            timeline.request(app, "POST", "/uploads", content=sized(1_048_577), headers=FORM), revisit=LIMIT
        )
        expect_status(past, 413, expected="413 Content Too Large for 1048577 bytes, by default", revisit=DEFAULTS)
    finally:
        timeline.close()


async def stream_upload(app: Any, chunks: list[bytes], *, content_length: int | None) -> tuple[Exchange, int]:
    """POST ``chunks`` one ``receive`` at a time; what the client got, and how many chunks the app asked for."""
    headers = [(b"host", b"testserver"), (b"content-type", FORM["content-type"].encode())]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/uploads",
        "raw_path": b"/uploads",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": CLIENT_ADDRESS,
        "server": SERVER_ADDRESS,
        "state": {},
    }
    exchange = Exchange()
    answered = asyncio.Event()
    handed = 0

    async def receive() -> dict[str, Any]:
        nonlocal handed
        if handed < len(chunks):
            handed += 1
            return {"type": "http.request", "body": chunks[handed - 1], "more_body": handed < len(chunks)}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: Mapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            exchange.status = message["status"]
        elif message["type"] == "http.response.body":
            exchange.body += message.get("body", b"")
            if not message.get("more_body", False):
                answered.set()

    await within_bound(CatchAppErrors(app)(scope, receive, send), revisit=EARLY)
    return exchange, handed


#: What the request's Content-Length says of a 16 KiB body: the truth, a lie, nothing.
DECLARED = {"honest": 16_384, "lying": 100, "absent": None}


@pytest.mark.task(3)
async def test_a_413_comes_before_the_body_is_read_to_the_end(app, upload_dir, inventory):
    """16 KiB sent 1 KiB at a time to a 4 KiB limit: refused before the last chunk, whatever Content-Length says."""
    body = sized(16_384)
    chunks = [body[start : start + 1024] for start in range(0, len(body), 1024)]

    async def check(length: int | None) -> None:
        before = kept(upload_dir, inventory)
        exchange, handed = await stream_upload(app, chunks, content_length=length)
        expect_status(
            exchange, 413, expected=f"413 Content Too Large, with a Content-Length of {length}", revisit=LIMIT
        )
        assert handed < len(chunks), lesson(
            expected=f"the app stops taking the body before its last chunk (of {len(chunks)})",
            got=f"it took all {handed} chunks: the whole body was read before it was refused",
            revisit=EARLY,
        )
        expect_nothing_kept(upload_dir, inventory, before, revisit=LIMIT)

    await every_case(DECLARED, check, what="Content-Lengths", revisit=EARLY)


# ---------------------------------------------------------------- task 4: processing

BACKGROUND = (
    "task 4: the rows are processed by a background task, after the response, in chunks of the settings' "
    "size (README: Process it in the background, chunk by chunk)"
)
FROM_THE_FILE = (
    "task 4: the task is given the stored file's path and reads the rows from it; the request's own file, or "
    "a copy in memory, is not what was stored (README: The upload belongs to the request)"
)
THREADS = (
    "task 4: the inventory's client blocks, and so does reading a file: the task is a plain function, which "
    "Starlette runs in its thread pool (README: Chunks and progress)"
)
DEFAULT_CHUNK = (
    "task 4: by default, the settings give the inventory five hundred rows at a time "
    "(README: Process it in the background, chunk by chunk)"
)
PROGRESS = (
    "task 4: the status says processing while the task runs, and its rows grow by a chunk each time the "
    "inventory has taken one (README: Chunks and progress)"
)


def expect_the_inventory_off_the_loop(timeline: Timeline) -> None:
    __tracebackhide__ = True
    blocked = timeline.first(INVENTORY_ON_LOOP)
    assert blocked is None, lesson(
        expected="the inventory called from a worker thread of the thread pool",
        got=f"{blocked}: while it blocks, no other request is served",
        revisit=THREADS,
    )


def as_pairs(chunks: list[list[Any]]) -> list[list[tuple[Any, Any]]]:
    """The chunks the inventory got, as (sku, quantity) pairs, each count checked to be the module's Count."""
    for chunk in chunks:
        expect_type(chunk, list, what="a chunk given to the inventory", revisit=BACKGROUND, items=(pipeline.Count,))
    return [[(count.sku, count.quantity) for count in chunk] for chunk in chunks]


async def status(client: Any, upload_id: str, *, revisit: str) -> dict[str, Any]:
    __tracebackhide__ = True
    response = await get(client, f"/uploads/{upload_id}", revisit=revisit)
    expect_status(response, 200, revisit=revisit)
    return status_of(response, revisit=revisit, what="the status")


@pytest.mark.task(4)
async def test_the_rows_reach_the_inventory_after_the_response_in_chunks(app, client, timeline, inventory):
    """Five rows, chunks of two: the inventory gets 2, 2 and 1 rows, in order, after the 202; then completed."""
    done: Exchange = await within_bound(
        timeline.start(app, "POST", "/uploads", content=form(counts(*FIVE)), headers=FORM), revisit=BACKGROUND
    )
    expect_status(done, 202, revisit=ACCEPT)
    expect_the_inventory_off_the_loop(timeline)
    timeline.expect_order(
        RESPONSE_COMPLETE,
        CHUNK_SAVED,
        why="The first chunk must reach the inventory, and only after the response is complete.",
        revisit=BACKGROUND,
    )
    got = as_pairs(inventory.chunks)
    assert got == [FIVE[:2], FIVE[2:4], FIVE[4:]], lesson(
        expected=f"three chunks, in order: {[FIVE[:2], FIVE[2:4], FIVE[4:]]}", got=f"{got}", revisit=BACKGROUND
    )
    body = await status(client, done.json()["id"], revisit=PROGRESS)
    assert (body["state"], body["rows"], body["reason"]) == ("completed", 5, None), lesson(
        expected="state completed, rows 5, no reason",
        got=f"state {body['state']!r}, rows {body['rows']!r}, reason {body['reason']!r}",
        revisit=PROGRESS,
    )


#: Files of a few rows, and the chunks of 2 they make.
SHORT_FILES = {"4 rows": (4, [2, 2]), "1 row": (1, [1]), "empty file": (0, [])}


@pytest.mark.task(4)
async def test_every_chunk_holds_rows_and_the_last_may_be_short(client, inventory):
    """4 rows: 2 and 2, no empty chunk after them; 1 row: one chunk; an empty file: no chunk, and completed."""

    async def check(case: tuple[int, list[int]]) -> None:
        rows, sizes = case
        chunks = len(inventory.chunks)
        response = await post(client, form(counts(*FIVE[:rows])), revisit=BACKGROUND)
        expect_status(response, 202, revisit=ACCEPT)
        added = inventory.sizes()[chunks:]
        assert added == sizes, lesson(
            expected=f"chunks of {sizes} rows for a file of {rows}", got=f"{added}", revisit=BACKGROUND
        )
        body = await status(client, response.json()["id"], revisit=PROGRESS)
        assert (body["state"], body["rows"]) == ("completed", rows), lesson(
            expected=f"completed, {rows} rows", got=f"{body['state']!r}, {body['rows']!r} rows", revisit=PROGRESS
        )

    await every_case(SHORT_FILES, check, what="short files", revisit=BACKGROUND)


@pytest.mark.task(4)
async def test_the_task_reads_the_stored_file_not_the_upload(app, timeline, inventory, upload_dir):
    """Between the response and the task, the spec rewrites the stored file: the inventory gets what it says now."""
    uploaded, rewritten = counts(*FIVE[:2]), counts(("NEW-1", 7), ("NEW-2", 8))

    def rewrite() -> None:
        for path in files_under(upload_dir):
            path.write_bytes(rewritten)

    done: Exchange = await within_bound(
        timeline.start(AtResponse(app, rewrite), "POST", "/uploads", content=form(uploaded), headers=FORM),
        revisit=FROM_THE_FILE,
    )
    expect_status(done, 202, revisit=ACCEPT)
    got = as_pairs(inventory.chunks)
    assert got == [[("NEW-1", 7), ("NEW-2", 8)]], lesson(
        expected="the rows of the stored file as it was when the task ran: NEW-1 and NEW-2",
        got=f"{got}: the task did not read the stored file"
        + (", it read the request's file or a copy in memory" if got == [FIVE[:2]] else ""),
        revisit=FROM_THE_FILE,
    )


@pytest.mark.task(4)
async def test_progress_is_visible_after_each_chunk(app, client, timeline, inventory):
    """Chunks held one by one: processing with 0, 2 and 4 rows while the inventory works; then completed, 5."""
    inventory.hold()
    answer = AtResponse(app)
    call = timeline.start(answer, "POST", "/uploads", content=form(counts(*FIVE)), headers=FORM)
    upload_id = ""
    try:
        await timeline.wait_for(RESPONSE_COMPLETE)
        body = answer.json()
        upload_id = body.get("id", "") if isinstance(body, dict) else ""
        for number, rows in ((1, 0), (2, 2), (3, 4)):
            await timeline.wait_for(f"{CHUNK_HELD} {number}", INVENTORY_ON_LOOP, during=call)
            expect_the_inventory_off_the_loop(timeline)
            body = await status(client, upload_id, revisit=PROGRESS)
            assert (body["state"], body["rows"]) == ("processing", rows), lesson(
                expected=f"while the inventory holds chunk {number}: processing, {rows} rows",
                got=f"{body['state']!r}, {body['rows']!r} rows",
                revisit=PROGRESS,
            )
            inventory.release()
        await within_bound(call, revisit=BACKGROUND)
    finally:
        for _ in range(3):
            inventory.release()
    body = await status(client, upload_id, revisit=PROGRESS)
    assert (body["state"], body["rows"]) == ("completed", 5), lesson(
        expected="once the last chunk is in: completed, 5 rows",
        got=f"{body['state']!r}, {body['rows']!r} rows",
        revisit=PROGRESS,
    )


@pytest.mark.task(4)
async def test_the_default_chunk_is_500_rows(upload_dir, inventory):
    """Settings with only a folder: chunks of 500 rows, so 1001 rows reach the inventory as 500, 500 and 1."""
    settings = pipeline.Settings(upload_dir=upload_dir)
    chunk = expect_type(settings.chunk_rows, int, what="the default chunk_rows", revisit=DEFAULT_CHUNK)
    assert chunk == 500, lesson(expected="chunk_rows 500 by default", got=f"{chunk}", revisit=DEFAULT_CHUNK)
    app = CatchAppErrors(pipeline.create_app(settings=settings, inventory=inventory))
    timeline = Timeline()
    try:
        rows = [(f"SKU-{number}", number) for number in range(1001)]
        done = await within_bound(
            timeline.request(app, "POST", "/uploads", content=form(counts(*rows)), headers=FORM), revisit=BACKGROUND
        )
    finally:
        timeline.close()
    expect_status(done, 202, revisit=ACCEPT)
    assert inventory.sizes() == [500, 500, 1], lesson(
        expected="chunks of 500, 500 and 1 rows by default", got=f"{inventory.sizes()}", revisit=DEFAULT_CHUNK
    )


# ---------------------------------------------------------------- task 5: failures

CORRUPT = (
    "task 5: a line that is not a stock count fails the upload, with a reason of one line that names the line; "
    "the chunks before it stay in the inventory (README: A failure in one line)"
)
SWALLOWED = (
    "task 5: whatever the inventory raises, the task records the upload as failed and lets nothing escape "
    "(README: A failure in one line)"
)

#: Lines that are no stock count.
BAD_LINES = {
    "not JSON": b"not json at all",
    "no quantity": b'{"sku": "IJ-4"}',
    "negative": b'{"sku": "IJ-4", "quantity": -1}',
    "quantity as text": b'{"sku": "IJ-4", "quantity": "four"}',
    "empty sku": b'{"sku": "", "quantity": 4}',
    "41-character sku": json.dumps({"sku": "É" * 41, "quantity": 4}).encode(),
    "quantity true": b'{"sku": "IJ-4", "quantity": true}',
    "a list": b'["IJ-4", 4]',
    "not UTF-8": b"\xff\xfe\x00 not UTF-8",
    "blank line": b"",
}


def expect_one_line_reason(body: dict[str, Any], line: int | None, *, revisit: str) -> None:
    __tracebackhide__ = True
    reason = body["reason"]
    assert body["state"] == "failed" and isinstance(reason, str) and reason.strip(), lesson(
        expected="state failed, with a reason", got=f"{body['state']!r}, reason {reason!r}", revisit=revisit
    )
    assert "\n" not in reason and "\r" not in reason and len(reason) <= 200 and "Traceback" not in reason, lesson(
        expected="a reason of one line, 200 characters at most, no traceback",
        got=repr(reason[:400]),
        revisit=revisit,
    )
    if line is not None:
        assert re.search(rf"\bline {line}\b", reason), lesson(
            expected=f"a reason that names the line, line {line} (counting from 1)", got=repr(reason), revisit=revisit
        )


@pytest.mark.task(5)
async def test_a_corrupt_line_fails_the_upload_with_a_one_line_reason(client, inventory):
    """Line 4 is no count: failed, a one-line reason naming line 4; chunk 1 (lines 1 and 2) stays in.

    Ten files, each with its own kind of bad line, go to one app one after another; each is
    judged by its own status and the chunks it added to the inventory.
    """

    async def check(bad: bytes) -> None:
        chunks, errors = len(inventory.chunks), len(client.app_errors)
        content = counts(*FIVE[:3]) + bad + b"\n" + counts(FIVE[4])
        response = await post(client, form(content), revisit=CORRUPT)
        expect_status(response, 202, revisit=ACCEPT)
        assert len(client.app_errors) == errors, lesson(
            expected="nothing escapes the task", got=f"{client.app_errors[errors:]!r}"[:300], revisit=CORRUPT
        )
        body = await status(client, response.json()["id"], revisit=CORRUPT)
        expect_one_line_reason(body, 4, revisit=CORRUPT)
        added = inventory.sizes()[chunks:]
        assert body["rows"] == 2 and added == [2], lesson(
            expected="rows 2: the first chunk went in; the chunk with the bad line did not, not even its good line",
            got=f"rows {body['rows']!r}; the inventory took chunks of {added} rows",
            revisit=CORRUPT,
        )

    await every_case(BAD_LINES, check, what="kinds of bad line", revisit=CORRUPT)


#: What an inventory may raise: its connection down, a value it refused (the message on two lines), a key.
INVENTORY_ERRORS = {
    "ConnectionError": ConnectionError("the inventory is down"),
    "ValueError": ValueError("a count the\ninventory refused"),
    "KeyError": KeyError("AB-1"),
}


@pytest.mark.task(5)
async def test_an_inventory_that_fails_fails_the_upload(client, inventory):
    """The inventory raises: failed, with a one-line reason; nothing escapes the task."""

    async def check(error: Exception) -> None:
        inventory.broken = error
        calls, errors = inventory.calls, len(client.app_errors)
        response = await post(client, form(counts(*FIVE)), revisit=SWALLOWED)
        expect_status(response, 202, revisit=ACCEPT)
        assert len(client.app_errors) == errors, lesson(
            expected="nothing escapes the task", got=f"{client.app_errors[errors:]!r}"[:300], revisit=SWALLOWED
        )
        body = await status(client, response.json()["id"], revisit=SWALLOWED)
        expect_one_line_reason(body, None, revisit=SWALLOWED)
        assert body["rows"] == 0 and inventory.calls == calls + 1, lesson(
            expected="rows 0, and the inventory tried once: the task stops at the first failure",
            got=f"rows {body['rows']!r}; the inventory tried {inventory.calls - calls} time(s)",
            revisit=SWALLOWED,
        )

    await every_case(INVENTORY_ERRORS, check, what="inventory errors", revisit=SWALLOWED)


# ---------------------------------------------------------------- task 6: nothing left behind

CLEAN = (
    "task 6: the stored file is temporary: removed once the task is over, whether it completed or failed "
    "(README: Temporary files and what always runs)"
)


#: How a task may end: what it is given (the file, the inventory's error) and the state it ends in.
OUTCOMES = {
    "completed": (counts(*FIVE), None, "completed"),
    "corrupt": (counts(*FIVE[:3]) + b"garbage\n", None, "failed"),
    "inventory down": (counts(*FIVE), ConnectionError("the inventory is down"), "failed"),
}


@pytest.mark.task(6)
async def test_the_stored_file_is_removed_once_the_task_is_over(client, inventory, upload_dir, tmp_path):
    """Completed, corrupt or refused by the inventory: afterwards no file is left, in the upload folder or beside."""

    async def check(case: tuple[bytes, Exception | None, str]) -> None:
        content, inventory.broken, state = case
        before = files_under(tmp_path)
        response = await post(client, form(content), revisit=CLEAN)
        expect_status(response, 202, revisit=ACCEPT)
        body = await status(client, response.json()["id"], revisit=CLEAN)
        assert body["state"] == state, lesson(expected=f"the upload {state}", got=repr(body["state"]), revisit=CLEAN)
        left = [str(path.relative_to(tmp_path)) for path in files_under(tmp_path) if path not in before]
        assert not left and upload_dir.is_dir(), lesson(
            expected=f"when the task is over ({state}): no file left, and the upload folder still there",
            got=f"left: {', '.join(left)}" if left else "the upload folder is gone",
            revisit=CLEAN,
        )

    await every_case(OUTCOMES, check, what="ways a task ends", revisit=CLEAN)
