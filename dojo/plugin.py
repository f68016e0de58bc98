"""The pytest plugin every spec runs under (loaded by the root ``conftest.py``).

- ``--impl`` (or ``KATA_IMPL``): which code the specs exercise; see :mod:`dojo.impl`.
- ``@pytest.mark.task(N)``: the README task a spec belongs to.
- The shared fixtures: ``timeline``, ``outbox``, ``clock``, ``sleep``, ``started_app``,
  ``client`` (these two need the kata's own ``app`` fixture), ``gateway`` and
  ``background_gate``; ``leak_check`` (see :mod:`dojo.leaks`).
"""

from __future__ import annotations

import contextlib
import gc
import os
import re
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

# Every kata's app is a FastAPI app: importing it (~0.5 s, pydantic included) is part of
# starting pytest here, as httpx is, and never falls inside a spec or a kata's collection.
# What only some katas use (SQLAlchemy, Celery, aiosmtpd …) is imported while collecting
# their specs (``pytest_pycollect_makemodule``).
import fastapi  # noqa: F401
import httpx
import pytest
from asgi_lifespan import LifespanManager

from dojo import impl as _impl
from dojo import leaks as _leaks
from dojo import manifest as _manifest
from dojo.fakes import BackgroundGate, FakeClock, FakeGateway, FakeOutbox, FakeSleep
from dojo.teach import lesson
from dojo.timeline import CLIENT_ADDRESS, ASGIApp, CatchAppErrors, Timeline

_IMPL_KEY = pytest.StashKey["_impl.Implementation"]()


def _register_hypothesis_profiles(*, load: bool) -> None:
    """Register the katas' hypothesis profiles (and load "katas") the first time it is needed.

    Importing hypothesis costs ~0.25 s, a fifth of a learner's run, so it happens only for
    spec files that use it (or when ``--hypothesis-profile`` names one of ours).
    """
    from hypothesis import HealthCheck, Phase, settings

    if "katas" in settings._profiles:  # noqa: SLF001 - hypothesis has no public "is registered"
        return
    # Property-based specs: the same examples on every run and every machine, so a learner's
    # red is reproducible and "green" means the same thing in CI; no example database written
    # into the learner's tree; no deadline, whose only effect on a slow machine is flakiness.
    # The explain phase is left out: its "varied together" comments cost a second per failing
    # property and puzzle a learner whose stub simply raises NotImplementedError. Shrinking
    # stays: the smallest failing example is the best lesson a property gives.
    settings.register_profile(
        "katas",
        derandomize=True,
        database=None,
        deadline=None,
        max_examples=50,  # fixed examples (derandomized): enough to reject every mutant, in ~0.1 s a property
        phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
        suppress_health_check=[HealthCheck.too_slow],  # a first example pays import costs once
    )
    # The repository's own checks only need to know THAT a property fails on a stub or a
    # mutant, not its smallest example: no shrinking there (`--hypothesis-profile=katas-check`).
    settings.register_profile(
        "katas-check", parent=settings.get_profile("katas"), phases=(Phase.explicit, Phase.generate)
    )
    if load:
        settings.load_profile("katas")


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add ``--impl``."""
    group = parser.getgroup("katas", "Background Task Katas")
    group.addoption(
        "--impl",
        default=None,
        metavar="CODE",
        help=(
            "which code the specs exercise: katas (your code, the default), solutions, shipped "
            "(the stubs as shipped), mutant:SLUG/NAME, or a folder holding a submission. "
            f"Also ${_impl.ENV_VAR}."
        ),
    )
    group.addoption(
        "--task",
        type=int,
        action="append",
        default=None,
        metavar="N",
        help="run only the specs of the README's task N (repeatable): one task, one grade step",
    )


@pytest.hookimpl(tryfirst=True)  # before hypothesis's own plugin loads a --hypothesis-profile
def pytest_configure(config: pytest.Config) -> None:
    """Register the task marker and serve the code the switch chose."""
    if config.getoption("hypothesis_profile", None):
        _register_hypothesis_profiles(load=False)
    config.addinivalue_line("markers", "task(number): the README task (## number.) this spec checks")
    config.addinivalue_line("markers", "leaks(revisit): the idea to revisit when leak_check finds something open")
    choice = config.getoption("impl") or os.environ.get(_impl.ENV_VAR) or _impl.DEFAULT
    try:
        implementation = _impl.resolve(choice, cwd=config.invocation_params.dir)
    except _impl.ImplError as error:
        raise pytest.UsageError(str(error)) from None
    config.stash[_IMPL_KEY] = implementation
    _impl.push(implementation)


#: A line that imports hypothesis (``import hypothesis``, ``from hypothesis import given`` ...).
_IMPORTS_HYPOTHESIS = re.compile(r"^[ \t]*(?:import|from)[ \t]+hypothesis\b", re.MULTILINE)


def uses_hypothesis(spec_path: Path) -> bool:
    """Whether a spec file imports hypothesis (it has property specs, so hypothesis is imported for it).

    An import, not the word: kata 16's specs name hypothesis (a learner's tests may use it)
    without using it, and importing it costs ~0.2 s of each run.
    """
    return _IMPORTS_HYPOTHESIS.search(spec_path.read_text(encoding="utf-8", errors="replace")) is not None


def pytest_pycollect_makemodule(module_path: Path) -> None:
    """Before a kata's spec module is imported: its settings profile if it has properties, and its stack.

    The libraries the kata's solution stands on (FastAPI, SQLAlchemy, Celery …) are imported
    here, while collecting, so that the first spec does not pay for them inside its time.
    """
    if uses_hypothesis(module_path):
        _register_hypothesis_profiles(load=True)
    if module_path.parent.parent == _manifest.KATAS_DIR:
        import importlib

        try:
            kata = _manifest.load().get(module_path.parent.name)
        except (KeyError, _manifest.ManifestError):
            return
        for name in kata.libraries(specs=False):  # the spec module's own imports come with it, next
            with contextlib.suppress(Exception):  # only a head start: a spec that needs what failed reports it
                importlib.import_module(name)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Keep what collecting built out of the collector's sight; unregister hypothesis when it has no spec.

    The stack and the specs are imported by now and live until the end. A full garbage
    collection with all of it in sight costs ~0.15 s, and something runs one in the middle
    of a spec: hypothesis before its first property, the leak check when it suspects a
    leak, pytest at the end of the run. Frozen, those scan only what the specs made since.

    Without property specs, hypothesis's terminal summary would still import all of it
    (0.3 s here, 1 s on a busy machine) on every run: its plugin is unregistered.
    """
    gc.freeze()
    if "hypothesis" not in sys.modules:
        manager = session.config.pluginmanager
        plugin = manager.get_plugin("hypothesispytest")
        if plugin is not None:
            manager.unregister(plugin)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop serving that code (nested in-process runs restore the outer choice)."""
    implementation = config.stash.get(_IMPL_KEY, None)
    if implementation is not None:
        _impl.pop(implementation)


def pytest_report_header(config: pytest.Config) -> str:
    """Say whose code is under test, first thing."""
    implementation = config.stash[_IMPL_KEY]
    return f"code under test: {implementation.label}  [--impl={implementation.spec}]"


def task_of(item: pytest.Item) -> int | None:
    """The README task a spec belongs to (its ``@pytest.mark.task(N)``), if it has one."""
    marker = item.get_closest_marker("task")
    return int(marker.args[0]) if marker is not None and marker.args else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A spec without its task marker would be invisible to points and hints; ``--task`` keeps one task's.

    Only spec files (``test_*.py``) answer for it: a kata whose module is a test file of the
    learner's (kata 16's my_tests.py) lets the learner run that file alone.
    """
    for item in items:
        if item.path.parent.parent.name == "katas" and item.path.name.startswith("test_") and task_of(item) is None:
            raise pytest.UsageError(f"{item.nodeid} has no @pytest.mark.task(N) marker")
    tasks = config.getoption("task", None)
    if tasks:
        kept = [item for item in items if task_of(item) in tasks]
        config.hook.pytest_deselected(items=[item for item in items if task_of(item) not in tasks])
        items[:] = kept


# ------------------------------------------------------------------ shared fixtures


@pytest.fixture(name="timeline")
def _timeline() -> Iterator[Timeline]:
    """One line of events for the app, the fakes and the spec to share."""
    timeline = Timeline()
    yield timeline
    timeline.close()


@pytest.fixture(name="outbox")
def _outbox(timeline: Timeline) -> FakeOutbox:
    """A fake mail server with a blocking ``send``, recording each email on the timeline.

    A kata whose code sends from ``async def`` overrides this fixture with
    :class:`~dojo.fakes.AsyncFakeOutbox`, so each kata's fake offers only the call it should use.
    """
    return FakeOutbox(timeline)


@pytest.fixture(name="clock")
def _clock() -> FakeClock:
    """A clock that stands still until a spec or the fake sleep moves it."""
    return FakeClock()


@pytest.fixture(name="sleep")
def _sleep(clock: FakeClock) -> FakeSleep:
    """A sleep that returns at once, moves ``clock`` and keeps a log of its calls."""
    return FakeSleep(clock)


@pytest.fixture(name="started_app")
async def _started_app(app: ASGIApp) -> AsyncIterator[ASGIApp]:
    """The kata's ``app`` with its lifespan running (start-up before, shutdown after)."""
    async with LifespanManager(app) as manager:
        yield manager.app


class KataClient(httpx.AsyncClient):
    """An ``httpx.AsyncClient`` over the kata's app that also keeps the app's exceptions.

    A request returns after the app's background tasks ran (httpx's ASGITransport waits
    for them). An exception in the endpoint is a 500 whose body names it and the
    learner's line; one in a background task leaves the response as it was. Both are in
    :attr:`app_errors`.
    """

    def __init__(self, app: CatchAppErrors) -> None:
        transport = httpx.ASGITransport(app=app, client=CLIENT_ADDRESS)
        super().__init__(transport=transport, base_url="http://testserver")
        self._catcher = app

    @property
    def app_errors(self) -> list[BaseException]:
        return self._catcher.errors


@pytest.fixture(name="client")
async def _client(started_app: ASGIApp) -> AsyncIterator[KataClient]:
    """An HTTP client over the kata's app, in process."""
    async with KataClient(CatchAppErrors(started_app)) as client:
        yield client


@pytest.fixture(name="gateway")
def _gateway(timeline: Timeline) -> FakeGateway:
    """A fake payment gateway that approves every charge until a spec scripts it (``will``)."""
    return FakeGateway(timeline=timeline)


@pytest.fixture(name="background_gate")
def _background_gate(timeline: Timeline) -> BackgroundGate:
    """Holds background tasks back after the response, until the spec opens it."""
    return BackgroundGate(timeline)


LEAK_REVISIT = "every connection, session, file and thread the code opens is closed before the work ends"


@pytest.fixture(name="leak_check")
def _leak_check(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fails the spec if a thread or a file descriptor it opened is still open after it.

    A kata turns it on for all its specs (an autouse fixture in its conftest that asks for
    it); ``@pytest.mark.leaks(revisit=...)`` on the module or spec names the idea to revisit.
    """
    before = _leaks.snapshot()
    yield
    left = _leaks.left_open(before)
    if left:
        marker = request.node.get_closest_marker("leaks")
        revisit = marker.kwargs.get("revisit", LEAK_REVISIT) if marker else LEAK_REVISIT
        pytest.fail(
            "The spec is over, and something the code opened during it is still open."
            + lesson(
                expected="nothing left open",
                got="; ".join(left),
                revisit=revisit,
            ),
            pytrace=False,
        )
