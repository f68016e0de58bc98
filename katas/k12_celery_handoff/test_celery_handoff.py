"""Specs for kata 12: handing off to Celery.

Run them with

    uv run pytest katas/k12_celery_handoff

Each spec names the README task it checks. Edit handoff.py, not this file. The worker the
specs run is real (a Celery worker in a thread of the test process), started once for the
whole run by the ``stage`` fixture in conftest.py, which also holds the fake renderer.
Task 1's specs and the first of task 2 only build Celery apps and read them (unit level);
every other spec goes through the broker, the worker and the result backend.
"""

from __future__ import annotations

import json
import warnings
from datetime import datetime
from uuid import UUID, uuid4

import celery
import fastapi  # noqa: F401 - the kata's stack, imported while pytest collects rather than inside the first spec
import pytest
from celery.exceptions import DuplicateTaskNameWarning

from dojo.impl import kata_module
from dojo.teach import expect_json, expect_status, expect_type, lesson
from dojo.timeline import within_bound

handoff = kata_module("k12_celery_handoff", "handoff")

pytestmark = pytest.mark.leaks(
    revisit="task 3: a file opened to save or to read a document is closed again, and nothing a request "
    "or a task does leaves a thread or a connection behind it (README: Hand the document to the worker)"
)

RENDER_TASK = "documents.render"  # the name the README gives the task: the web process and the worker share it
TITLE = "Quarterly report — Zürich office"
MARKDOWN = "# Résumé\n\nSales grew by 12 % in the third quarter.\n"
VALID = {"title": TITLE, "markdown": MARKDOWN}


@pytest.fixture(autouse=True)
def _no_leaks(stage, leak_check) -> None:
    """Every spec: nothing left open after it (the worker, started once for the run, is not its to close)."""


@pytest.fixture(name="app", scope="session")
def _app(stage):
    """The kata's API, given the settings and the web process's Celery app: built once, like the apps it is given.

    Its state is the storage and the result backend, both the run's; building it takes FastAPI
    tens of milliseconds (a response model per route), too much to pay per spec.
    """
    return handoff.create_app(settings=stage.settings, celery_app=stage.web_app)


class NoRenderer:
    """A renderer for the specs that only build an app: nothing may call it."""

    def render(self, title: str, markdown: str) -> int:  # noqa: ARG002 - the renderer's interface
        raise AssertionError(f"render({title!r}, …) was called while the app was only being built")


def build(tmp_path, *, redis_url: str | None = None):
    """An app from the learner's create_celery, as the web process would build it."""
    settings = handoff.Settings(storage=tmp_path, retry_delay=2.0, redis_url=redis_url)
    app = handoff.create_celery(settings, NoRenderer())
    expect_type(app, celery.Celery, what="what create_celery returns", revisit=CONFIGURE)
    return app


def setting(app, name: str) -> object:
    """One setting of the learner's app: a plain value (checked), compared only then."""
    value = app.conf.get(name)
    allowed = (str, bool, list, tuple, set, frozenset, type(None))
    return expect_type(value, *allowed, what=f"the setting {name}", revisit=CONFIGURE)


# ---------------------------------------------------------------- task 1: configure Celery from settings

CONFIGURE = (
    "task 1: the settings decide where messages and results live: both in memory by default, both in "
    "Redis when a Redis address is given (README: Broker, worker, result backend)"
)
JSON_ONLY = (
    "task 1: a message is read by whichever worker takes it, so its arguments and results travel as JSON, "
    "and a worker accepts nothing else (README: Arguments travel as JSON)"
)
STATES = (
    "task 1: without a result backend nobody learns how a task went, without tracking nobody sees it "
    "start, and in eager mode it never leaves the web process (README: Celery's states, and the PENDING "
    "that means nothing)"
)


@pytest.mark.task(1)
def test_by_default_the_messages_and_the_results_stay_in_memory(tmp_path):
    """No Redis address: the broker is memory:// and the result backend cache+memory://."""
    app = build(tmp_path)
    got = (setting(app, "broker_url"), setting(app, "result_backend"))
    assert got == ("memory://", "cache+memory://"), lesson(
        expected="broker 'memory://', result backend 'cache+memory://'",
        got=f"broker {got[0]!r}, result backend {got[1]!r}",
        revisit=CONFIGURE,
    )


@pytest.mark.task(1)
@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "redis://:s3cret@cache.internal:6380/2"], ids=["local", "with a password"]
)
def test_a_redis_address_carries_the_messages_and_the_results(tmp_path, url):
    """With a Redis address in the settings, the broker and the result backend are both that address."""
    app = build(tmp_path, redis_url=url)
    got = (setting(app, "broker_url"), setting(app, "result_backend"))
    assert got == (url, url), lesson(
        expected=f"broker and result backend both {url!r}",
        got=f"broker {got[0]!r}, result backend {got[1]!r}",
        revisit=CONFIGURE,
    )


@pytest.mark.task(1)
def test_json_only_results_kept_starts_tracked_and_nothing_run_eagerly(tmp_path):
    """JSON messages and results, JSON alone accepted; results stored, STARTED tracked, eager mode off."""
    app = build(tmp_path)
    serializers = (setting(app, "task_serializer"), setting(app, "result_serializer"))
    accepted = setting(app, "accept_content")
    accepted_results = setting(app, "result_accept_content")
    ok = (
        serializers == ("json", "json")
        and isinstance(accepted, list | tuple | set | frozenset)
        and set(accepted) == {"json"}
        and (accepted_results is None or set(accepted_results) == {"json"})
    )
    assert ok, lesson(
        expected="messages and results serialized as json, and json the only content accepted",
        got=f"task serializer {serializers[0]!r}, result serializer {serializers[1]!r}, "
        f"accepted {accepted!r}, results accepted {accepted_results!r}",
        revisit=JSON_ONLY,
    )
    got = {
        "result backend": setting(app, "result_backend"),
        "results ignored": setting(app, "task_ignore_result"),
        "starts tracked": setting(app, "task_track_started"),
        "eager mode": setting(app, "task_always_eager"),
    }
    ok = (
        got["result backend"] not in (None, "", "disabled")
        and got["results ignored"] is False
        and got["starts tracked"] is True
        and got["eager mode"] is False
    )
    assert ok, lesson(
        expected="a result backend, results not ignored, starts tracked (True), eager mode off (False)",
        got=", ".join(f"{name} {value!r}" for name, value in got.items()),
        revisit=STATES,
    )


# ---------------------------------------------------------------- task 2: write the render task

REGISTER = (
    "task 2: each app the factory builds registers its own render task, under the name the web process "
    "sends it by (README: One app per process, built from settings)"
)
RENDER = (
    "task 2: the worker reads the document saved under the id the message carries, renders it, and "
    "returns the number of pages as a small JSON object (README: Broker, worker, result backend)"
)
FAILS = (
    "task 2: a document that cannot be rendered fails its task with the renderer's error, which Celery "
    "stores; trying it again would fail again (README: A busy renderer, tried again)"
)
RETRY = (
    "task 2: a busy renderer is tried again after the delay the settings give, three times at most, then "
    "the task fails with the renderer's error (README: A busy renderer, tried again)"
)


def send(stage, scene, *, title: str = TITLE, markdown: str = MARKDOWN) -> str:
    """Save a document and send its render task to the worker, as the API would: the spec plays the web process."""
    stage.need_worker()
    task_id = str(uuid4())
    stage.save(task_id, title, markdown)
    stage.web_app.send_task(RENDER_TASK, args=[task_id], task_id=task_id)
    assert scene.label_of(task_id) == "doc1", lesson(
        expected="the spec's message published", got=scene.timeline.render(), revisit=REGISTER
    )
    return task_id


def outcome(stage, task_id: str) -> tuple[str, object]:
    """What the result backend says of a task: its state and its result (or error)."""
    result = stage.web_app.AsyncResult(task_id)
    return result.state, result.result


def renders(scene) -> list[tuple[str, str]]:
    return [(title, markdown) for _, title, markdown in scene.renders]


@pytest.mark.task(2)
def test_each_app_registers_its_own_render_task_under_its_name(tmp_path):
    """Two apps from the factory (a web process's, a worker's): each has the task documents.render, its own."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first, second = build(tmp_path), build(tmp_path)
        names = [sorted(name for name in app.tasks if not name.startswith("celery.")) for app in (first, second)]
    duplicates = [
        str(warning.message).splitlines()[0] for warning in caught if warning.category is DuplicateTaskNameWarning
    ]
    assert names == [[RENDER_TASK], [RENDER_TASK]], lesson(
        expected=f"each app's own tasks: [{RENDER_TASK!r}]",
        got=f"the first app has {names[0]}, the second {names[1]}",
        revisit=REGISTER,
    )
    assert not duplicates, lesson(
        expected="two apps, each with its own task: no warning",
        got=f"Celery warned: {duplicates[0]} (the second app got the first app's task)",
        revisit=REGISTER,
    )


@pytest.mark.task(2)
async def test_the_worker_renders_the_saved_document_and_returns_its_pages(stage, scene):
    """The worker reads the document the message names, renders it once, and the backend keeps {"pages": n}."""
    scene.pages = 7
    task_id = send(stage, scene)
    await scene.reached("doc1", "finished", revisit=RENDER)
    assert renders(scene) == [(TITLE, MARKDOWN)], lesson(
        expected=f"one render, in the worker, of the saved title and text: {(TITLE, MARKDOWN)!r}",
        got=f"{renders(scene)!r}",
        revisit=RENDER,
    )
    state, result = outcome(stage, task_id)
    assert state == "SUCCESS", lesson(expected="the task's state SUCCESS", got=f"{state}: {result!r}", revisit=RENDER)
    expect_type(result, dict, what="the task's result", revisit=RENDER)
    assert result == {"pages": 7}, lesson(
        expected="the result {'pages': 7}, the renderer's page count", got=repr(result), revisit=RENDER
    )


@pytest.mark.task(2)
async def test_a_document_that_cannot_be_rendered_fails_its_task_at_once(stage, scene):
    """RenderError: rendered once, not retried; the task's state is FAILURE and its result that error."""
    scene.script.append(handoff.RenderError("the image on line 4 is missing"))
    task_id = send(stage, scene)
    await scene.reached("doc1", "finished", revisit=FAILS)
    state, error = outcome(stage, task_id)
    assert state == "FAILURE", lesson(
        expected="the task's state FAILURE", got=f"{state}, result {error!r}", revisit=FAILS
    )
    assert (type(error).__name__, str(error)) == ("RenderError", "the image on line 4 is missing"), lesson(
        expected="the stored error: RenderError, 'the image on line 4 is missing'",
        got=f"{type(error).__name__}: {error}",
        revisit=FAILS,
    )
    assert len(scene.renders) == 1, lesson(
        expected="one render: a broken document is not tried again",
        got=f"{len(scene.renders)} renders",
        revisit=FAILS,
    )


def retry_delays(scene) -> list[float | None]:
    """Each retry message's delay: its ETA after the moment it was published (None: no ETA, at once)."""
    delays: list[float | None] = []
    for message in scene.messages[1:]:
        if message.eta is None:
            delays.append(None)
        else:
            delays.append(round((datetime.fromisoformat(message.eta) - message.sent_at).total_seconds(), 3))
    return delays


@pytest.mark.task(2)
async def test_a_busy_renderer_is_tried_again_after_the_settings_delay(stage, scene):
    """Busy three times, then it renders: four renders, three retries each delayed by the settings, SUCCESS."""
    scene.script.extend([handoff.RendererBusy("no free slot")] * 3)
    task_id = send(stage, scene)
    await scene.reached("doc1", "finished", revisit=RETRY)
    state, result = outcome(stage, task_id)
    assert state == "SUCCESS" and len(scene.renders) == 4, lesson(
        expected="four renders (one and three retries), the task then SUCCESS",
        got=f"{len(scene.renders)} renders, then {state}: {result!r}",
        revisit=RETRY,
    )
    delays = retry_delays(scene)
    on_time = len(delays) == 3 and all(delay is not None and abs(delay) < 1.0 for delay in delays)
    assert on_time and [m.retries for m in scene.messages] == [0, 1, 2, 3], lesson(
        expected="three retry messages (retries 1, 2, 3), each due the settings' delay after it was sent "
        "(here a millisecond, so due within a second of being sent)",
        got=f"retries {[m.retries for m in scene.messages]}, due after {delays} s (None: no delay at all)",
        revisit=RETRY,
    )


@pytest.mark.task(2)
async def test_a_renderer_still_busy_after_three_retries_fails_the_task(stage, scene):
    """Busy four times: four renders and no fifth; FAILURE with the renderer's RendererBusy."""
    scene.script.extend([handoff.RendererBusy("no free slot")] * 5)
    task_id = send(stage, scene)
    await scene.reached("doc1", "finished", revisit=RETRY)
    state, error = outcome(stage, task_id)
    assert (len(scene.renders), state, type(error).__name__) == (4, "FAILURE", "RendererBusy"), lesson(
        expected="four renders (one and three retries), then FAILURE with the RendererBusy error",
        got=f"{len(scene.renders)} renders, then {state}: {type(error).__name__}: {error}",
        revisit=RETRY,
    )


# ---------------------------------------------------------------- task 3: hand the document to the worker

ACCEPT = (
    "task 3: the endpoint answers 202 at once, with the task's id and the address of its status "
    "(README: Hand the document to the worker)"
)
VALIDATE = (
    "task 3: a title of 1 to 120 characters and a text of 1 to 20000, both required: FastAPI answers 422 "
    "before anything is saved or sent (README: Hand the document to the worker)"
)
AS_JSON = (
    "task 3: the message carries the document's id, a string, and the worker finds the document with it; "
    "an object that is not JSON cannot travel (README: Arguments travel as JSON)"
)
SAVE_FIRST = (
    "task 3: a worker may take the message the instant it is sent, so the document is saved before "
    "(README: Hand the document to the worker)"
)
NOT_HERE = (
    "task 3: sending a task queues a message for a worker; calling it runs it in the web process, and "
    "waiting for its result holds the request until the work is done (README: Sending is not running)"
)


async def submit(client, *, json_body: object = VALID, revisit: str = ACCEPT):
    __tracebackhide__ = True
    return await within_bound(client.post("/documents", json=json_body), revisit=revisit, expected="the POST answered")


def accepted_id(response) -> str:
    """The task id of a 202's body, checked: a string that is a UUID."""
    __tracebackhide__ = True
    if response.status_code == 500 and "EncodeError" in response.text:
        expect_status(response, 202, expected="202 Accepted, the task sent", revisit=AS_JSON)
    expect_status(response, 202, expected="202 Accepted", revisit=ACCEPT)
    body = response.json()
    expect_type(body, dict, what="the JSON body", revisit=ACCEPT)
    task_id = expect_type(body.get("task_id"), str, what="the body's task_id", revisit=ACCEPT)
    try:
        UUID(task_id)
    except ValueError:
        raise AssertionError(lesson(expected="a task id that is a UUID", got=repr(task_id), revisit=ACCEPT)) from None
    return task_id


def saved(stage, task_id: str) -> object:
    path = stage.settings.storage / f"{task_id}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


@pytest.mark.task(3)
async def test_a_document_is_accepted_with_202_its_task_id_and_where_to_ask(client, stage, scene):
    """202, {"task_id": <a UUID>, "status": "pending"}, and a Location header naming its status."""
    stage.need_worker()
    response = await submit(client)
    task_id = accepted_id(response)
    expect_json(
        response,
        {"task_id": task_id, "status": "pending"},
        expected=f'{{"task_id": "{task_id}", "status": "pending"}} and nothing more',
        revisit=ACCEPT,
    )
    assert response.headers.get("location") == f"/tasks/{task_id}", lesson(
        expected=f"a Location header /tasks/{task_id}",
        got=repr(response.headers.get("location")),
        revisit=ACCEPT,
    )
    assert len(scene.messages) == 1, lesson(
        expected="one message sent to the worker before the answer",
        got=f"{len(scene.messages)} messages\n{scene.timeline.render()}",
        revisit=NOT_HERE,
    )
    await scene.reached("doc1", "finished", revisit=ACCEPT)


@pytest.mark.task(3)
async def test_the_message_carries_the_id_of_the_document_saved_before_it(client, stage, scene):
    """Saved as <storage>/<id>.json before the message left; the message: task documents.render, that id, args [id]."""
    stage.need_worker()
    task_id = accepted_id(await submit(client, revisit=AS_JSON))
    document = saved(stage, task_id)
    assert document == VALID, lesson(
        expected=f"the document saved as JSON in <storage>/{task_id}.json: {VALID!r}",
        got=repr(document) if document is not None else "no such file",
        revisit=SAVE_FIRST,
    )
    message = scene.messages[0] if len(scene.messages) == 1 else None
    assert message is not None, lesson(
        expected="one message", got=f"{len(scene.messages)}\n{scene.timeline.render()}", revisit=NOT_HERE
    )
    args = expect_type(message.args, list, tuple, what="the message's arguments", revisit=AS_JSON, items=(str,))
    got = (message.task, message.task_id, list(args), message.kwargs)
    assert got == (RENDER_TASK, task_id, [task_id], {}), lesson(
        expected=f"task {RENDER_TASK!r}, id {task_id!r} (the one the client got), arguments [{task_id!r}], no keywords",
        got=f"task {got[0]!r}, id {got[1]!r}, arguments {got[2]!r}, keywords {got[3]!r}",
        revisit=AS_JSON,
    )
    assert message.saved_first, lesson(
        expected="the document already saved when the message went out",
        got="the message went out first: a quick worker finds no document",
        revisit=SAVE_FIRST,
    )
    await scene.reached("doc1", "finished", revisit=AS_JSON)


@pytest.mark.task(3)
async def test_the_work_goes_to_the_worker_by_message_not_done_here(client, stage, scene):
    """One message published during the request; no render in the web process; the worker renders it."""
    stage.need_worker()
    response = await submit(client, revisit=NOT_HERE)
    expect_status(response, 202, revisit=AS_JSON)
    assert not scene.web_renders, lesson(
        expected="no render in the web process: the worker renders",
        got=f"the web process rendered {scene.web_renders!r} itself, during the request",
        revisit=NOT_HERE,
    )
    assert len(scene.messages) == 1, lesson(
        expected="one message sent to the worker during the request",
        got=f"{len(scene.messages)} messages\n{scene.timeline.render()}",
        revisit=NOT_HERE,
    )
    await scene.reached("doc1", "finished", revisit=NOT_HERE)
    assert renders(scene) == [(TITLE, MARKDOWN)], lesson(
        expected="the worker rendered the document once", got=repr(renders(scene)), revisit=NOT_HERE
    )


@pytest.mark.task(3)
async def test_the_answer_does_not_wait_for_the_render(client, stage, scene):
    """With the render held in the worker, the 202 still comes back; the task ends only once it is let go."""
    stage.need_worker()
    scene.hold_renders()
    response = await submit(client, revisit=NOT_HERE)
    expect_status(response, 202, revisit=NOT_HERE)
    assert not scene.finished, lesson(
        expected="the 202 while the render is still held in the worker",
        got=f"the answer came after the task ended\n{scene.timeline.render()}",
        revisit=NOT_HERE,
    )
    scene.release()
    await scene.reached("doc1", "finished", revisit=NOT_HERE)


@pytest.mark.task(3)
async def test_every_document_gets_its_own_task_id(client, stage, scene):
    """Two documents, two ids, two messages, two saved files."""
    stage.need_worker()
    first = accepted_id(await submit(client))
    second = accepted_id(await submit(client, json_body={"title": "Annex", "markdown": "Tables."}))
    ids = [message.task_id for message in scene.messages]
    assert first != second and ids == [first, second], lesson(
        expected="two different task ids, one message each",
        got=f"ids {first!r} and {second!r}; messages for {ids}",
        revisit=ACCEPT,
    )
    await scene.reached("doc2", "finished", revisit=ACCEPT)


@pytest.mark.task(3)
@pytest.mark.parametrize(
    "body",
    [
        {"markdown": MARKDOWN},
        {"title": TITLE},
        {"title": "", "markdown": MARKDOWN},
        {"title": "x" * 121, "markdown": MARKDOWN},
        {"title": "é" * 121, "markdown": MARKDOWN},
        {"title": TITLE, "markdown": ""},
        {"title": TITLE, "markdown": "x" * 20_001},
        {"title": TITLE, "markdown": "é" * 20_001},
        {"title": None, "markdown": MARKDOWN},
        {"title": TITLE, "markdown": 42},
        None,
        [],
        "a document",
    ],
    ids=[
        "no title",
        "no markdown",
        "empty title",
        "121-character title",
        "121 accented characters",
        "empty markdown",
        "20001 characters of markdown",
        "20001 accented characters",
        "null title",
        "number as markdown",
        "null body",
        "list body",
        "string body",
    ],
)
async def test_a_bad_document_is_a_422_and_nothing_is_saved_or_sent(client, stage, scene, body):
    """A missing field, a field out of its limits or of the wrong type, a body that is no object: 422."""
    files = scene.files()
    response = await submit(client, json_body=body, revisit=VALIDATE)
    expect_status(response, 422, expected=f"422 Unprocessable Content for {body!r}"[:200], revisit=VALIDATE)
    saved_now = sorted(scene.files() - files)
    assert not scene.messages and not scene.web_renders and not saved_now, lesson(
        expected="nothing saved, nothing sent, nothing rendered",
        got=f"{len(scene.messages)} messages, {len(scene.web_renders)} renders; files saved: {saved_now}",
        revisit=VALIDATE,
    )


@pytest.mark.task(3)
@pytest.mark.parametrize(
    "body",
    [
        {"title": "x", "markdown": "y"},
        {"title": "x" * 120, "markdown": "y"},
        {"title": "é" * 120, "markdown": "é" * 20_000},
        {"title": "x", "markdown": "y" * 20_000},
    ],
    ids=["one character each", "120-character title", "accented, at both limits", "20000 characters of markdown"],
)
async def test_documents_at_the_limits_are_accepted_and_saved_as_they_are(client, stage, scene, body):
    """Both limits are allowed, and a character is a character, accented or not (not a byte)."""
    stage.need_worker()
    task_id = accepted_id(await submit(client, json_body=body, revisit=VALIDATE))
    assert saved(stage, task_id) == body, lesson(
        expected="the document saved exactly as sent", got=repr(saved(stage, task_id))[:200], revisit=VALIDATE
    )
    await scene.reached("doc1", "finished", revisit=VALIDATE)


# ---------------------------------------------------------------- task 4: report where a task stands

STATUS = (
    "task 4: the status reads the task's state from the result backend, once, and says it in the API's "
    "words (README: Report where a task stands)"
)
PENDING = (
    "task 4: Celery says PENDING for a task nobody has started yet, and for an id it has never seen: only "
    "the saved document tells the two apart (README: Celery's states, and the PENDING that means nothing)"
)
READY = (
    "task 4: a result exists only once the task has succeeded; before that the backend holds nothing, or "
    "Celery's own notes about the worker (README: Celery's states, and the PENDING that means nothing)"
)


async def status_of(client, task_id: object, *, revisit: str = STATUS):
    __tracebackhide__ = True
    return await within_bound(client.get(f"/tasks/{task_id}"), revisit=revisit, expected="the status answered")


def expect_document(response, body: dict, *, revisit: str) -> None:
    __tracebackhide__ = True
    expect_status(response, 200, expected=f"200 with {json.dumps(body)}", revisit=revisit)
    expect_json(response, body, expected=f"{json.dumps(body)}, and nothing more", revisit=revisit)


@pytest.mark.task(4)
async def test_a_task_nobody_has_started_is_pending_not_unknown(client, stage, scene):
    """Taken by the worker but not started: the backend has nothing yet; the status is pending, with 200."""
    stage.need_worker()
    scene.hold_starts()
    task_id = accepted_id(await submit(client))
    await scene.reached("doc1", "taken by the worker", revisit=PENDING)
    expect_document(
        await status_of(client, task_id, revisit=PENDING), {"task_id": task_id, "status": "pending"}, revisit=PENDING
    )
    scene.release()
    await scene.reached("doc1", "finished", revisit=STATUS)


@pytest.mark.task(4)
async def test_a_task_being_rendered_is_running_and_has_no_result_yet(client, stage, scene):
    """While the worker renders: running, and no result field (the backend holds the worker's notes, not a result)."""
    stage.need_worker()
    scene.hold_renders()
    task_id = accepted_id(await submit(client))
    await scene.reached("doc1", "render started", revisit=STATUS)
    expect_document(
        await status_of(client, task_id, revisit=READY), {"task_id": task_id, "status": "running"}, revisit=READY
    )
    scene.release()
    await scene.reached("doc1", "finished", revisit=STATUS)


@pytest.mark.task(4)
async def test_a_finished_task_is_completed_with_its_result(client, stage, scene):
    """After the worker: completed, and the result the task returned."""
    stage.need_worker()
    scene.pages = 12
    task_id = accepted_id(await submit(client))
    await scene.reached("doc1", "finished", revisit=STATUS)
    expect_document(
        await status_of(client, task_id),
        {"task_id": task_id, "status": "completed", "result": {"pages": 12}},
        revisit=STATUS,
    )


@pytest.mark.task(4)
async def test_an_id_nobody_was_given_is_a_404_though_celery_says_pending(client, stage, scene):
    """A well-formed id the API never gave out: 404 with {"detail": "no task <id>"}, whatever Celery says."""
    stage.need_worker()
    unknown = uuid4()
    response = await status_of(client, unknown, revisit=PENDING)
    celery_says = stage.web_app.AsyncResult(str(unknown)).state
    expect_status(
        response,
        404,
        expected=f"404 Not Found for {unknown}, an id nobody was given (Celery says {celery_says} for it)",
        revisit=PENDING,
    )
    expect_json(response, {"detail": f"no task {unknown}"}, revisit=PENDING)
    assert not scene.messages, lesson(expected="nothing sent", got=f"{len(scene.messages)} messages", revisit=PENDING)


@pytest.mark.task(4)
@pytest.mark.parametrize(
    "bad", ["abc", "42", "not-a-uuid", "0b6f1c2e-3d4a-4b5c-8d6e-7f8091a2b3c40", "12345678-1234-1234-1234-12345678901z"]
)
async def test_a_malformed_id_is_a_422(client, stage, scene, bad):
    """An id that is not a UUID is refused before anything is looked up: 422."""
    response = await status_of(client, bad)
    expect_status(
        response,
        422,
        expected=f"422 Unprocessable Content for {bad!r}, which is not a UUID",
        revisit="task 4: declare the id as a UUID and FastAPI refuses anything else with 422, before your "
        "code looks for a file (README: Report where a task stands)",
    )


@pytest.mark.task(4)
async def test_the_status_is_read_at_once_while_the_work_goes_on(client, stage, scene):
    """Asked twice while the render is held, the status answers at once both times, and never ends the task."""
    stage.need_worker()
    scene.hold_renders()
    task_id = accepted_id(await submit(client))
    await scene.reached("doc1", "render started", revisit=STATUS)
    for _ in range(2):
        response = await status_of(client, task_id, revisit=READY)
        expect_status(response, 200, revisit=READY)
    assert not scene.finished, lesson(
        expected="the status read while the render is still held",
        got=f"the status answered only once the task had ended\n{scene.timeline.render()}",
        revisit=READY,
    )
    scene.release()
    await scene.reached("doc1", "finished", revisit=STATUS)


# ---------------------------------------------------------------- task 5: report failures and retries

FAILED = (
    "task 5: a failed task's status says which error and what it said, in one line; the traceback "
    "stays in the worker's log, never in an answer (README: Report failures and retries)"
)
RETRYING = (
    "task 5: while a retry waits, Celery says RETRY, and the status says retrying (README: Report failures and retries)"
)


@pytest.mark.task(5)
@pytest.mark.parametrize(
    ("errors", "expected"),
    [
        (
            [("RenderError", "l'image « logo.png » est introuvable")],
            "RenderError: l'image « logo.png » est introuvable",
        ),
        ([("RendererBusy", "no free slot")] * 4, "RendererBusy: no free slot"),
    ],
    ids=["a broken document", "a renderer busy four times"],
)
async def test_a_failed_task_reports_its_error_in_one_line_and_no_traceback(client, stage, scene, errors, expected):
    """failed, with "error": "<class>: <message>", non-ASCII kept; no traceback, no result."""
    stage.need_worker()
    scene.script.extend(getattr(handoff, name)(message) for name, message in errors)
    task_id = accepted_id(await submit(client))
    await scene.reached("doc1", "finished", revisit=FAILED)
    response = await status_of(client, task_id, revisit=FAILED)
    assert "Traceback" not in response.text, lesson(
        expected="no traceback in the answer", got=response.text[:300], revisit=FAILED
    )
    expect_document(response, {"task_id": task_id, "status": "failed", "error": expected}, revisit=FAILED)


@pytest.mark.task(5)
async def test_a_task_waiting_for_its_retry_is_retrying_then_completed(client, stage, scene):
    """Busy once: while the retry waits, retrying; once rendered, completed."""
    stage.need_worker()
    scene.script.append(handoff.RendererBusy("no free slot"))
    scene.hold_retries()
    task_id = accepted_id(await submit(client))
    await scene.reached("doc1", "retry stored", revisit=RETRYING)
    expect_document(
        await status_of(client, task_id, revisit=RETRYING), {"task_id": task_id, "status": "retrying"}, revisit=RETRYING
    )
    scene.release()
    await scene.reached("doc1", "finished", revisit=RETRYING)
    expect_document(
        await status_of(client, task_id),
        {"task_id": task_id, "status": "completed", "result": {"pages": 3}},
        revisit=RETRYING,
    )


@pytest.mark.task(5)
async def test_any_other_state_is_reported_by_its_name(client, stage, scene):
    """A state the API has no word for (REVOKED, when someone cancels a task) is said in lower case, with 200."""
    stage.need_worker()
    task_id = str(uuid4())
    stage.save(task_id, TITLE, MARKDOWN)
    stage.web_app.backend.mark_as_revoked(task_id, reason="cancelled by an operator")
    expect_document(
        await status_of(client, task_id),
        {"task_id": task_id, "status": "revoked"},
        revisit="task 5: Celery has more states than the five the API names; any other is said as Celery "
        "names it, in lower case, never as a crash (README: Report failures and retries)",
    )
