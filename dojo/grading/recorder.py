"""The pytest plugin of a grading process: it reports, the parent decides.

It reports what pytest collected, each spec's start and verdict the moment the spec
finishes (so a process killed halfway loses nothing that already ran), and the end of
the session. Every line goes through the bootstrap's ``emit`` to a pipe the parent reads;
the parent checks the stream for consistency and writes every result itself.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable
from typing import Any

import pytest

from dojo.grading.plan import ERROR, FAILED, MESSAGE_CAP, OUTPUT_CAP, PASSED, SKIPPED, TIMED_OUT

Emit = Callable[..., None]

#: Modules whose functions and classes decide or carry a verdict: rebinding any of their names shows.
WATCHED = (
    "_pytest",
    "pytest",
    "pluggy",
    "dojo",
    "json",
    "os",
    "posixpath",
    "builtins",
    "pytest_timeout",
    "pytest_asyncio",
)
_MISSING = object()
#: Names pytest itself rebinds around each spec.
_VOLATILE = frozenset(
    {
        "_pytest.assertion.util._reprcompare",
        "_pytest.assertion.util._config",
        "_pytest.assertion.util._assertion_pass",
    }
)


class Integrity:
    """The verdict's machinery as it was before any student code ran: modules, their classes, the plugins.

    Taken once collection is over (no kata code is imported while collecting) and checked
    after each spec: a rebound function, a patched class or method, a plugin registered at
    run time all show. Only names that existed are compared (lazy imports add new ones).
    """

    def __init__(self, config: pytest.Config) -> None:
        self._plugins = config.pluginmanager.get_plugins
        self._saved_plugins = frozenset(map(id, self._plugins()))
        self._saved: list[tuple[str, Any, dict[str, Any]]] = []
        for name, module in list(sys.modules.items()):
            if module is None or name.partition(".")[0] not in WATCHED:
                continue
            namespace = module.__dict__
            self._saved.append((name, namespace, dict(namespace)))
            for value in list(namespace.values()):
                if isinstance(value, type) and getattr(value, "__module__", None) == name:
                    self._saved.append((f"{name}.{value.__qualname__}", value.__dict__, dict(value.__dict__)))

    def changes(self) -> list[str]:
        changed = [
            f"{where}.{key}"
            for where, namespace, saved in self._saved
            for key, value in saved.items()
            if namespace.get(key, _MISSING) is not value and f"{where}.{key}" not in _VOLATILE
        ]
        if frozenset(map(id, self._plugins())) != self._saved_plugins:
            changed.append("pytest's plugins (one was registered or removed while specs ran)")
        return changed[:20]


def shorten(text: str, cap: int) -> str:
    """At most ``cap`` characters: the first line says what happened, the end holds the assertion's lesson."""
    if len(text) <= cap:
        return text
    first = text.split("\n", 1)[0][: cap // 4]
    return first + "\n[…]" + text[-(cap - len(first) - 4) :]


def _timed_out(error: BaseException | None, depth: int = 0) -> bool:
    """Is this pytest-timeout's failure, maybe wrapped in an exception group by the app's task group?"""
    if error is None or depth > 5:  # deep enough for nested task groups
        return False
    if isinstance(error, pytest.fail.Exception) and str(error).startswith("Timeout (>"):
        return True
    nested = getattr(error, "exceptions", ())
    return any(_timed_out(inner, depth + 1) for inner in nested) or _timed_out(error.__context__, depth + 1)


class Recorder:
    """One event per line: what was collected, each start, each verdict, the end."""

    def __init__(self, emit: Emit, warm: str = "") -> None:
        self._emit = emit
        self._warm = [name for name in warm.split(",") if name]
        self._reports: dict[str, list[pytest.TestReport]] = {}
        self._timed_out: set[str] = set()
        self._limit: float | None = None
        self._check: Callable[[], list[str]] | None = None
        self._tampered = False

    def _verify(self) -> None:
        """After each spec: report once that the machinery changed (the parent then trusts no verdict here)."""
        if self._check is None or self._tampered:
            return
        changed = self._check()
        if changed:
            self._tampered = True
            self._emit(event="tampered", changed=changed)

    def pytest_configure(self, config: pytest.Config) -> None:
        limit = config.getoption("timeout", None)
        self._limit = float(limit) if isinstance(limit, (int, float)) and limit > 0 else None
        for name in self._warm:  # before the first spec, which would pay for them inside its time limit
            with contextlib.suppress(Exception):  # warming only saves time; a spec reports any real error
                __import__(name)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        from dojo.plugin import task_of  # a plugin our conftest.py loads: imported after it, so pytest can rewrite it

        self._check = Integrity(session.config).changes  # bound now: patching the class later changes nothing here

        self._emit(
            event="collected",
            items=[
                {"nodeid": item.nodeid, "kata": item.path.parent.name, "task": task_of(item) or 0, "name": item.name}
                for item in session.items
            ],
        )

    def pytest_runtest_logstart(self, nodeid: str) -> None:
        self._reports[nodeid] = []
        self._emit(event="start", nodeid=nodeid)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        if call.excinfo is not None and _timed_out(call.excinfo.value):
            self._timed_out.add(item.nodeid)
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._reports.setdefault(report.nodeid, []).append(report)

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        reports = self._reports.pop(nodeid, [])
        duration = sum(report.duration for report in reports)
        limit = self._limit
        outcome, message = PASSED, None
        for report in reports:
            if report.failed:
                text = report.longreprtext
                if nodeid in self._timed_out or "from pytest-timeout" in text:
                    outcome = TIMED_OUT
                    crash = getattr(report.longrepr, "reprcrash", None)
                    where = f" (stopped at {crash.path}:{crash.lineno})" if crash is not None else ""
                    after = f"after {limit:g} s" if limit else "after the time limit"
                    message = f"timed out: still running {after}{where}\n{text}"
                elif limit and duration >= limit:
                    # The alarm fired in a task the app started, not in the spec: the spec failed later, out of time.
                    outcome = TIMED_OUT
                    message = f"timed out: ran {duration:.1f} s, past the {limit:g} s limit\n{text}"
                else:
                    outcome = FAILED if report.when == "call" else ERROR
                    message = text if report.when == "call" else f"error in {report.when}: {text}"
                break
            if report.skipped:
                outcome, message = SKIPPED, f"skipped: {report.longreprtext}"
        output = ""
        if reports:
            output = "".join(
                content
                for title, content in reports[-1].sections
                if title.startswith(("Captured stdout", "Captured stderr"))
            )
        self._verify()
        if message is not None:
            message = shorten(message, MESSAGE_CAP * 2)  # cut for good by the parent, which also strips paths
        self._emit(
            event="result",
            nodeid=nodeid,
            outcome=outcome,
            message=message,
            output=output[: OUTPUT_CAP * 2],
            duration=duration,
        )

    def pytest_sessionfinish(self, exitstatus: int) -> None:
        self._verify()
        self._emit(event="finish", exitstatus=int(exitstatus))
