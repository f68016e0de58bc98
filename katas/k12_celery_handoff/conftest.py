"""Kata 12's stage: a real Celery worker for the whole run, and a renderer the specs control.

Read it if you like; you do not need to change it.

- **One worker for the whole run** (the ``stage`` fixture), in a thread of this process,
  started with Celery's own test helper, ``celery.contrib.testing.worker.start_worker``:
  the worker code ``celery worker`` runs, on the broker your ``create_celery`` configures
  (in memory by default; Redis when ``KATA_REDIS_URL`` names one). Not eager mode.
- **Two Celery apps**, both built by your ``create_celery`` from the same settings: the
  worker's, whose renderer is the specs' fake, and the web process's, which the API is
  given. Only the broker and the result backend connect them, as in production.
- The specs **watch** the messages and the worker through Celery's signals, and **hold**
  the worker where they need it (before a task starts, inside a render, after a retry
  was stored) with gates. A gate opens by itself after 2 seconds, so nothing waits for
  ever; a spec waits for the event it expects, never for a clock, and gives up with a
  lesson after 2 seconds, which a correct app never needs. A spec whose event loop is
  blocked by the code under test is interrupted by an alarm after 3 seconds; a result
  still awaited after a spec (in a thread of the API's pool) is marked failed, so that
  no wait outlives it.

A few settings are the specs' own: on the worker's app, the in-memory broker is polled every
5 ms instead of every second, and the worker leaves the logging set-up alone; on Redis, each
app keeps one result backend for all its threads (one pool of connections), opened before the
first spec.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from uuid import uuid4

import celery
import celery.result
import pytest
from celery import signals
from celery.contrib.testing.worker import start_worker

from dojo.impl import kata_module
from dojo.teach import lesson
from dojo.timeline import BOUND, StillRunningError, Timeline

handoff = kata_module("k12_celery_handoff", "handoff")

#: A Redis URL in this variable runs the specs against Redis (tests/test_redis.py does).
REDIS_URL_VAR = "KATA_REDIS_URL"
#: How often the worker looks for a message on the in-memory broker, in seconds (Celery's default: 1).
POLLING_INTERVAL = 0.005
#: How often the worker's timer thread wakes (it runs the retries' delayed messages).
TICK = 0.01
#: The specs' retry delay: short, but a real delay (a retry message with an ETA).
RETRY_DELAY = 0.001
#: The task name the README gives (the stub defines it too; the specs trust only this one).
RENDER_TASK = "documents.render"

WORKER_DOWN = (
    "task 1: the worker runs on the broker your Celery app is configured with: in memory unless the "
    "settings give a Redis address (README: Configure Celery from settings)"
)
BLOCKED = (
    "task 3: a wait for a task's result in an endpoint that runs on the event loop stops the whole server "
    "until the task ends, and this one never did (README: Sending is not running)"
)
#: The longest the worker may take to start (about 0.1 s in memory, over a second on Redis).
START_LIMIT = 10.0
#: A spec still running this long after it began is stopped, even if its event loop is blocked.
WATCHDOG = BOUND + 1.0
#: After a spec, the worker gets this long without any news before the spec's tasks are given up.
QUIET = 0.25
UNKNOWN = "unknown to the worker"
NOT_REGISTERED = (
    "task 2: the worker runs a message by looking its task's name up among the tasks registered on "
    "its app; a name it does not know is dropped (README: One app per process, built from settings)"
)
STUCK = (
    "task 2: the worker runs one task at a time, so a task that never ends keeps it from every other; "
    "the render task reads, renders and returns (README: Broker, worker, result backend)"
)
NOT_BUILT = (
    "task 2: the factory builds a web process's app and a worker's app side by side, each with its own "
    "render task, registered on that app alone (README: One app per process, built from settings)"
)


@dataclass
class Message:
    """One message an app published: what the broker carried, and what was true when it left."""

    label: str
    task: str
    task_id: str
    args: object
    kwargs: object
    saved_first: bool  # the document was in the storage when the message went out
    retries: int
    eta: str | None
    sent_at: datetime


@dataclass
class Scene:
    """What one spec sees of the worker and controls: the timeline, the renderer's script, the gates."""

    timeline: Timeline
    storage: Path
    spec: str = ""  # the spec this scene belongs to, by name
    pages: int = 3  # what the renderer returns, unless the script says otherwise
    script: list[object] = field(default_factory=list)  # per render, in order: a page count or an error to raise
    labels: dict[str, str] = field(default_factory=dict)  # task id -> doc1, doc2 … in the order first published
    messages: list[Message] = field(default_factory=list)
    renders: list[tuple[str, str, str]] = field(default_factory=list)  # (label, title, markdown), in the worker
    web_renders: list[tuple[str, str]] = field(default_factory=list)  # renders the web process made itself
    finished: dict[str, str] = field(default_factory=dict)  # label -> the state the worker ended it in
    start_gate: threading.Event = field(default_factory=threading.Event)
    render_gate: threading.Event = field(default_factory=threading.Event)
    retry_gate: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __repr__(self) -> str:
        return f"<the scene: {len(self.messages)} messages, {len(self.renders)} renders, finished {self.finished}>"

    def __post_init__(self) -> None:
        self.release()

    def files(self) -> set[str]:
        """The names of the files in the storage now."""
        return {entry.name for entry in os.scandir(self.storage)}

    # ---------------------------------------------------------------- the spec's controls
    def hold_starts(self) -> None:
        """The worker takes the next task and waits before starting it: the backend still says PENDING."""
        self.start_gate.clear()

    def hold_renders(self) -> None:
        """The next render starts (STARTED in the backend) and waits."""
        self.render_gate.clear()

    def hold_retries(self) -> None:
        """After storing a retry (RETRY in the backend) the worker waits."""
        self.retry_gate.clear()

    def release(self) -> None:
        """Open every gate: the held work goes on."""
        for gate in (self.start_gate, self.render_gate, self.retry_gate):
            gate.set()

    def label_of(self, task_id: object) -> str | None:
        with self.lock:
            return self.labels.get(str(task_id))

    def id_of(self, label: str) -> str:
        with self.lock:
            return next((task_id for task_id, name in self.labels.items() if name == label), "")

    async def reached(self, label: str, what: str, *, revisit: str) -> None:
        """Wait until ``label`` reaches ``what``; fail with the lesson after BOUND seconds.

        ``what`` is one of: ``published``, ``taken by the worker``, ``render started``,
        ``retry stored``, ``finished``.
        """
        __tracebackhide__ = True
        try:
            event = await self.timeline.wait_for(f"{label} {what}", f"{label} {UNKNOWN}")
        except AssertionError:
            raise AssertionError(
                lesson(
                    expected=f"{label} {what}, within {BOUND:g} s",
                    got=f"it did not happen\n{self.timeline.render()}",
                    revisit=revisit,
                )
            ) from None
        if event.name.endswith(UNKNOWN):
            raise AssertionError(
                lesson(
                    expected=f"{label} {what}",
                    got=f"the worker dropped it: {event.detail}\n{self.timeline.render()}",
                    revisit=NOT_REGISTERED,
                )
            )

    # ---------------------------------------------------------------- in the worker
    def wait_at(self, gate: threading.Event, label: str, where: str) -> None:
        if not gate.wait(BOUND):
            self.timeline.record(f"{label} {where}: the spec never let it go")


class Stage:
    """The worker and the two apps, for the whole run; a :class:`Scene` per spec."""

    def __init__(self, settings: Any) -> None:
        self.settings = settings
        self.scene: Scene | None = None
        self.problem = ""
        self.not_built = False  # the apps could not be built (else: built, with no broker a worker can use)
        self.running: dict[str, str] = {}  # task id -> the spec that sent it, for the tasks the worker is running
        self.lock = threading.Lock()
        self.worker_app: Any = None
        self.web_app: Any = None
        self.hostname = ""

    def need_worker(self) -> None:
        """Fail with the lesson if no worker could be started on the learner's Celery app."""
        __tracebackhide__ = True
        expected = "a worker running on the Celery app create_celery builds"
        if self.problem and self.not_built:
            raise AssertionError(lesson(expected=expected, got=self.problem, revisit=NOT_BUILT))
        if self.problem:
            raise AssertionError(lesson(expected=expected, got=self.problem, revisit=WORKER_DOWN))
        with self.lock:
            stuck = sorted(set(self.running.values()))
        if stuck:
            raise AssertionError(
                lesson(
                    expected="a worker free to take this spec's tasks",
                    got=f"the worker is still running a task sent by {', '.join(stuck)}, which never ended",
                    revisit=STUCK,
                )
            )

    def save(self, task_id: str, title: str, markdown: str) -> None:
        """Save a document as the README says the API does: ``<storage>/<id>.json``, in JSON."""
        text = json.dumps({"title": title, "markdown": markdown})  # non-ASCII escaped, as json.dumps does
        (self.settings.storage / f"{task_id}.json").write_text(text, encoding="utf-8")

    # ---------------------------------------------------------------- Celery's signals
    def on_publish(self, headers: dict[str, Any] | None = None, body: Any = None, **_: Any) -> None:
        scene = self.scene
        if scene is None or not headers:
            return
        task_id = str(headers.get("id"))
        args, kwargs = (body[0], body[1]) if isinstance(body, tuple | list) and len(body) >= 2 else (body, None)
        with scene.lock:
            again = task_id in scene.labels
            label = scene.labels.setdefault(task_id, f"doc{len(scene.labels) + 1}")
            scene.messages.append(
                Message(
                    label=label,
                    task=str(headers.get("task")),
                    task_id=task_id,
                    args=args,
                    kwargs=kwargs,
                    saved_first=(scene.storage / f"{task_id}.json").is_file(),
                    retries=int(headers.get("retries") or 0),
                    eta=headers.get("eta"),
                    sent_at=datetime.now(timezone.utc),
                )
            )
        what = "published again" if again else "published"
        message = scene.messages[-1]
        due = ""
        if message.eta:
            due = f", due in {(datetime.fromisoformat(message.eta) - message.sent_at).total_seconds():.3f} s"
        scene.timeline.record(f"{label} {what}", f"{headers.get('task')}, arguments {args!r}{due}")

    def on_prerun(self, task_id: str | None = None, **_: Any) -> None:
        scene = self.scene
        label = scene.label_of(task_id) if scene else None
        if scene is not None and label is not None:
            with self.lock:
                self.running[str(task_id)] = f"{label} of {scene.spec}"
            scene.timeline.record(f"{label} taken by the worker")
            scene.wait_at(scene.start_gate, label, "held before it started")

    def on_retry(self, request: Any = None, reason: object = None, **_: Any) -> None:
        scene = self.scene
        label = scene.label_of(getattr(request, "id", None)) if scene else None
        if scene is not None and label is not None:
            scene.timeline.record(f"{label} retry stored", repr(reason)[:120])
            scene.wait_at(scene.retry_gate, label, "held after its retry was stored")

    def on_postrun(self, task_id: str | None = None, state: str | None = None, **_: Any) -> None:
        with self.lock:
            self.running.pop(str(task_id), None)
        scene = self.scene
        label = scene.label_of(task_id) if scene else None
        if scene is None or label is None:
            return
        if state == "RETRY":  # this attempt is over; the task is not
            scene.timeline.record(f"{label} attempt ended", str(state))
            return
        with scene.lock:
            scene.finished[label] = str(state)
        scene.timeline.record(f"{label} finished", str(state))

    def on_unknown(self, name: str | None = None, id: str | None = None, **_: Any) -> None:  # noqa: A002 - Celery's name
        scene = self.scene
        label = scene.label_of(id) if scene else None
        if scene is None or label is None:
            return
        with scene.lock:
            scene.finished[label] = UNKNOWN
        scene.timeline.record(f"{label} {UNKNOWN}", f"no task called {name!r} is registered on the worker's app")

    # ---------------------------------------------------------------- per spec
    def begin(self, timeline: Timeline, spec: str = "the warm-up") -> Scene:
        self.scene = Scene(timeline=timeline, storage=self.settings.storage, spec=spec)
        return self.scene

    def end(self) -> None:
        """Open the gates and let the worker finish what this spec sent it, so the next spec finds it idle."""
        scene, self.scene = self.scene, None
        if scene is None:
            return
        scene.release()
        if self.problem or self.worker_app is None:
            return
        # Tidying up, not a verdict: wait while the worker makes progress on this spec's tasks,
        # and give up on them after a quiet moment (a task that never ends, or one due later).
        idle = threading.Event()
        seen, quiet_since = len(scene.timeline.events), time.monotonic()
        deadline = quiet_since + BOUND
        while time.monotonic() < deadline:
            with scene.lock:
                sent = {message.label for message in scene.messages}
            if sent <= set(scene.finished):
                break
            now = len(scene.timeline.events)
            if now != seen:
                seen, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since > QUIET:
                break
            idle.wait(POLLING_INTERVAL)
        with contextlib.suppress(Exception):
            self.worker_app.control.purge()
        self.wake_waiters()

    def wake_waiters(self) -> None:
        """Wake code still waiting for a task's result in another thread (one of the API's thread pool).

        Such a wait (``AsyncResult.get`` without a timeout, for a task that never ends) would keep
        that thread, and so the whole test process, alive for ever after the spec gave up on it.
        The task it waits for is marked failed in the result backend: the wait ends with an error.
        """
        waiting = celery.result.AsyncResult.get.__code__
        for ident, frame in sys._current_frames().items():  # noqa: SLF001 - the standard way to see other threads' frames
            if ident == threading.get_ident():
                continue
            current = frame
            while current is not None and current.f_code is not waiting:
                current = current.f_back
            result = current.f_locals.get("self") if current is not None else None
            if isinstance(result, celery.result.AsyncResult):
                with contextlib.suppress(Exception):
                    failure = TimeoutError("the spec ended before this task did")
                    result.backend.mark_as_failure(result.id, failure)


class FakeRenderer:
    """The worker's renderer: follows the spec's script, holds when told, and notes what it was given."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage

    def render(self, title: str, markdown: str) -> int:
        scene = self.stage.scene
        task_id = getattr(getattr(celery.current_task, "request", None), "id", None)
        label = scene.label_of(task_id) if scene else None
        if scene is None or label is None:  # not one of this spec's tasks
            return 1
        scene.renders.append((label, title, markdown))
        scene.timeline.record(f"{label} render started", f"title {title!r}")
        scene.wait_at(scene.render_gate, label, "render held")
        outcome = scene.script.pop(0) if scene.script else scene.pages
        if isinstance(outcome, BaseException):
            scene.timeline.record(f"{label} render raised", repr(outcome))
            raise outcome
        scene.timeline.record(f"{label} render done", f"{outcome} pages")
        return int(outcome)  # type: ignore[call-overload]


class WebRenderer:
    """The renderer the web process's app is built with: a render there is work done in the wrong process."""

    def __init__(self, stage: Stage) -> None:
        self.stage = stage

    def render(self, title: str, markdown: str) -> int:
        scene = self.stage.scene
        if scene is not None:
            scene.web_renders.append((title, markdown))
            scene.timeline.record("RENDERED IN THE WEB PROCESS", f"title {title!r}")
        return 1


@contextlib.contextmanager
def _watching(stage: Stage) -> Iterator[None]:
    """Celery's signals, connected to the stage for the run."""
    handlers: list[tuple[Any, Callable[..., None]]] = [
        (signals.before_task_publish, stage.on_publish),
        (signals.task_prerun, stage.on_prerun),
        (signals.task_retry, stage.on_retry),
        (signals.task_postrun, stage.on_postrun),
        (signals.task_unknown, stage.on_unknown),
    ]
    for celery_signal, handler in handlers:
        celery_signal.connect(handler, weak=False)
    try:
        yield
    finally:
        for celery_signal, handler in handlers:
            celery_signal.disconnect(handler)


def _build(stage: Stage) -> None:
    """Build both apps with the learner's create_celery; say why not in ``stage.problem``."""
    settings = stage.settings
    try:
        stage.worker_app = handoff.create_celery(settings, FakeRenderer(stage))
        stage.web_app = handoff.create_celery(settings, WebRenderer(stage))
        for app in (stage.worker_app, stage.web_app):
            if isinstance(app, celery.Celery):
                app.finalize(auto=True)  # registers the tasks now: a clash of the two apps shows here
    except Exception as error:  # noqa: BLE001 - the learner's code may raise anything (a warning too); each spec says so
        stage.problem = f"building the two apps raised {type(error).__name__}: {str(error).splitlines()[0]}"
        stage.not_built = True
        return
    if not isinstance(stage.worker_app, celery.Celery):
        stage.problem = f"create_celery returned a {type(stage.worker_app).__name__}, not a Celery app"
        return
    broker = str(stage.worker_app.conf.broker_url or "")
    if not (broker.startswith("memory://") or (settings.redis_url and broker == settings.redis_url)):
        stage.problem = f"the Celery app's broker is {broker or 'not set'!r}: no worker could be started on it"


def _warm_up(stage: Stage) -> None:
    """With Redis: open now the connections the apps keep for the run, before any spec's leak check.

    One document goes the whole way (sent, busy once, retried, rendered), and its state is read
    from this thread and from another, as the API's thread pool would.
    """
    scene = stage.begin(Timeline())
    scene.script.append(handoff.RendererBusy("warming up"))
    task_id = str(uuid4())
    stage.save(task_id, "warming up", "the connections")
    stage.web_app.send_task(RENDER_TASK, args=[task_id], task_id=task_id)
    done = threading.Event()
    for _ in range(int(5 / POLLING_INTERVAL)):
        if "doc1" in scene.finished:
            break
        done.wait(POLLING_INTERVAL)
    reader = threading.Thread(target=lambda: stage.web_app.AsyncResult(task_id).state, name="k12 warm-up")
    reader.start()
    reader.join(BOUND)
    stage.web_app.AsyncResult(task_id).state  # noqa: B018 - read for its connection, not its value
    stage.end()
    scene.timeline.close()


class _Crashes(logging.Handler):
    """Keeps the worker's own report of why it could not start (Celery logs it, CRITICAL)."""

    def __init__(self) -> None:
        super().__init__(logging.CRITICAL)
        self.seen = threading.Event()
        self.message = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.message = self.message or record.getMessage().splitlines()[0][:300]
        self.seen.set()


def _started(running: Any, stage: Stage) -> Any:
    """Enter Celery's start_worker, but never wait for ever; return the worker, or None.

    The helper waits without a limit for a worker that crashed while starting (on a setting
    it cannot use, say): the crash, or START_LIMIT, ends the wait here.
    """
    entered: dict[str, Any] = {}
    crashes = _Crashes()
    log = logging.getLogger("celery.worker")
    log.addHandler(crashes)

    def enter() -> None:
        try:
            entered["worker"] = running.__enter__()
        except Exception as error:  # noqa: BLE001 - reported to every spec instead
            entered["error"] = error

    starter = threading.Thread(target=enter, name="k12 stage: starting the worker", daemon=True)
    try:
        starter.start()
        for _ in range(int(START_LIMIT / POLLING_INTERVAL)):
            starter.join(POLLING_INTERVAL)
            if not starter.is_alive() or crashes.seen.is_set():
                break
    finally:
        log.removeHandler(crashes)
    if "worker" in entered:
        return entered["worker"]
    if crashes.message:
        why = crashes.message
    elif "error" in entered:
        why = repr(entered["error"])
    else:
        why = f"still starting after {START_LIMIT:g} s"
    stage.problem = f"the worker did not start on the Celery app create_celery builds: {why}"
    return None


def _tick() -> None:
    """Nothing: an entry on the worker's timer, so that it never sleeps long."""


@contextlib.contextmanager
def _worker(stage: Stage) -> Iterator[None]:
    """The worker thread on the learner's app, for the run; stopped with Celery's remote control."""
    stage.worker_app.conf.update(
        broker_transport_options={"polling_interval": POLLING_INTERVAL}, worker_hijack_root_logger=False
    )
    if stage.settings.redis_url:
        # One result backend (and so one pool of Redis connections) per app, shared by the threads.
        for app in (stage.worker_app, stage.web_app):
            app.conf.result_backend_thread_safe = True
    running = start_worker(stage.worker_app, pool="solo", perform_ping_check=False, shutdown_timeout=BOUND)
    worker = _started(running, stage)
    if worker is None:  # it never started: stage.problem says why, and every spec that needs it fails
        yield
        return
    with contextlib.ExitStack() as stack:
        stack.push(running)
        stage.hostname = worker.hostname
        # On the in-memory broker a timer thread runs delayed messages (a retry's ETA). Started
        # now rather than by the first retry, it is part of the snapshot each spec's leak check
        # takes. (With Redis the worker's event loop keeps the time: there is no such thread.)
        start_timer = getattr(worker.timer, "ensure_started", None)
        if start_timer is not None:
            start_timer()
            # With nothing scheduled, that thread waits a whole second at a time, and only then sees
            # the worker stop; and a delayed message waits out the sleep it is in. A tick keeps both short.
            worker.timer.call_repeatedly(TICK, _tick)
        stage.worker_app.control.purge()  # opens the broker connection the tidying up uses
        if stage.settings.redis_url:
            _warm_up(stage)
        try:
            yield
        finally:
            # Celery's remote control: the worker stops at its next look at the broker. Left to
            # start_worker alone, it would first finish its wait for messages: 2 s, twice.
            stage.worker_app.control.shutdown(destination=[worker.hostname])


@pytest.fixture(scope="session", name="stage")
def _stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    """The worker, started once for the run, with the specs' settings, renderer and apps."""
    storage = tmp_path_factory.mktemp("k12-storage")
    redis_url = os.environ.get(REDIS_URL_VAR) or None
    stage = Stage(handoff.Settings(storage=storage, retry_delay=RETRY_DELAY, redis_url=redis_url))
    _build(stage)
    with _watching(stage):
        if stage.problem:
            yield stage
            return
        try:
            with _worker(stage):
                yield stage
        except RuntimeError:
            # start_worker's complaint when the worker thread did not stop within BOUND: a task of
            # the learner's never ended (each spec after it said so). The thread is a daemon: it
            # ends with the test process.
            if not stage.running:
                raise


class _BlockedError(StillRunningError):
    """The spec ran past the watchdog: its event loop's thread was blocked."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Stop a spec that runs past the watchdog, even one whose event loop is blocked (a signal, not a timer).

    Every wait of the specs gives up after 2 seconds on its own, as long as the event loop runs.
    Code that blocks the loop's thread (waiting for a task's result inside an ``async def``
    endpoint) stops those waits too; this alarm interrupts it, with a lesson.
    """
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise _BlockedError(
            lesson(
                expected=f"{item.name} over within {WATCHDOG:g} s",
                got="still running, with the thread of the event loop blocked in your code",
                revisit=BLOCKED,
            )
        )

    previous = signal.signal(signal.SIGALRM, stop)
    began = time.monotonic()
    outer, _ = signal.setitimer(signal.ITIMER_REAL, WATCHDOG)  # another alarm (a grading time limit) is put back
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - began), 0.001))


@pytest.fixture(name="scene")
def _scene(stage: Stage, timeline: Timeline, request: pytest.FixtureRequest) -> Iterator[Scene]:
    """This spec's view of the worker: its timeline, the gates and the renderer's script."""
    scene = stage.begin(timeline, spec=request.node.name)
    try:
        yield scene
    finally:
        stage.end()
