"""Helpers for the repository's own checks: run a kata's specs against chosen code."""

from __future__ import annotations

import importlib
import os
import random
import threading
from dataclasses import dataclass, field

import pytest

from dojo.grading.outputs import EXERCISM_CUT
from dojo.manifest import Kata
from dojo.runner import ForkServer, Request, Verdict

# pytester runs specs in process for these checks only: a learner's `pytest katas/...`
# never loads it (this conftest is not on their path). tests/test_repository.py checks that.
pytest_plugins = ["pytester"]

# pytester restores sys.modules after each in-process run: whatever an inner run imports
# first is thrown away and imported again by the next. Importing the katas' stack here,
# once, keeps it warm, so an inner run costs the specs and not the imports (~1 s saved).
for _name in ("fastapi", "httpx", "pydantic", "email_validator", "asgi_lifespan", "hypothesis", "respx"):
    importlib.import_module(_name)


@dataclass
class SpecRun:
    """The outcome of one kata's specs against one implementation."""

    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    output: str = ""

    @property
    def total(self) -> int:
        return len(self.passed) + len(self.failed)

    def summary(self) -> str:
        return (
            f"{len(self.passed)} passed, {len(self.failed)} failed, {len(self.errors)} errors, "
            f"{len(self.skipped)} skipped"
        )


#: Kata runs at once (each in a warm fork server of dojo.runner): the machine's two cores.
WORKERS = 2


def _options(impl: str, seed: int) -> tuple[str, ...]:
    """Against the solution the specs run in a random order (pytest-randomly, ``seed``), with
    every hypothesis phase: green must not depend on order. Against a stub or a mutant only
    the verdict matters, so failing properties are not shrunk, and a mutant's run stops at
    the first spec that rejects it (``KATAS_EVERY_REJECTION=1`` runs them all, to see every
    spec that rejects each mutant).
    """
    if impl == "solutions":
        return ("-p", "randomly", f"--randomly-seed={seed}")
    options = ("--hypothesis-profile=katas-check",)
    if impl.startswith("mutant:") and os.environ.get("KATAS_EVERY_REJECTION") != "1":
        options += ("-x",)
    return options


def _spec_run(verdict: Verdict, impl: str, seed: int) -> SpecRun:
    run = SpecRun()
    lines = [f"{verdict.slug} against --impl={impl}" + (f" (--randomly-seed={seed})" if impl == "solutions" else "")]
    if verdict.problem:
        run.errors.append(verdict.problem.splitlines()[0])
        lines.append(verdict.problem)
    for spec in verdict.specs:
        {"passed": run.passed, "failed": run.failed, "skipped": run.skipped}.get(spec.outcome, run.errors).append(
            spec.name
        )
        lines.append(f"  {spec.outcome:7} {spec.name}" + (f"\n{spec.message}" if spec.message else ""))
    run.output = "\n".join(lines)
    return run


class SpecRuns:
    """Every kata run the selected checks need, made at once on first use, two at a time.

    A check says which run it needs with ``@pytest.mark.spec_run(IMPL)`` (``"shipped"``,
    ``"solutions"``, or ``"mutant"`` for its ``mutant`` parameter's own value). Each run
    is a fresh child forked from a warm process (dojo.runner's fork server), so the runs
    share the two cores and none pays for importing the stack.
    """

    def __init__(self, session: pytest.Session) -> None:
        self.session = session
        self.seed = random.Random().randrange(2**32)  # noqa: S311 - an order to shuffle specs in, not a secret
        self.runs: dict[tuple[str, str], SpecRun] = {}
        self.lock = threading.Lock()

    @staticmethod
    def wanted(item: pytest.Item) -> tuple[str, str] | None:
        marker = item.get_closest_marker("spec_run")
        params = getattr(item, "callspec", None)
        if marker is None or params is None:
            return None
        if marker.args[0] == "mutant":
            mutant = params.params["mutant"]
            return mutant.slug, mutant.spec
        return params.params["kata"].slug, marker.args[0]

    def get(self, slug: str, impl: str) -> SpecRun:
        with self.lock:
            if (slug, impl) not in self.runs:
                needed = {key for item in self.session.items if (key := self.wanted(item)) is not None}
                needed.add((slug, impl))
                self._run_all(sorted(needed - set(self.runs), key=lambda key: key[1] != "solutions"))
            return self.runs[slug, impl]

    def _run_all(self, keys: list[tuple[str, str]]) -> None:
        todo = list(keys)
        pick = threading.Lock()

        def work() -> None:
            server = ForkServer()
            try:
                while True:
                    with pick:
                        if not todo:
                            return
                        slug, impl = todo.pop(0)
                    request = Request(slug, impl, _options(impl, self.seed), again=False)
                    self.runs[slug, impl] = _spec_run(server.run(request), impl, self.seed)
            finally:
                server.close()

        threads = [threading.Thread(target=work, daemon=True) for _ in range(min(WORKERS, len(keys)))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "spec_run(impl): the kata run a check of tests/test_katas.py reads")


@pytest.fixture(scope="session", name="spec_runs")
def _spec_runs(request: pytest.FixtureRequest) -> SpecRuns:
    return SpecRuns(request.session)


@pytest.fixture(name="run_specs")
def _run_specs(spec_runs: SpecRuns):
    """``run_specs(kata, impl)``: that kata's specs against that code (``impl``: a value of --impl)."""

    def run(kata: Kata, impl: str) -> SpecRun:
        return spec_runs.get(kata.slug, impl)

    return run


#: Set to 1 to end the checks with every mutant's name and the specs that reject it.
SHOW_MUTANTS = "KATAS_SHOW_MUTANTS"


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001 - pytest's hook signature
    """After the checks, say how many mutants were rejected; which spec rejected each only on request.

    The names of the mutants tell what each kata's traps are: a learner who runs the
    repository's checks should not read them by accident (``KATAS_SHOW_MUTANTS=1`` shows them).
    """
    rows = []
    for report in terminalreporter.stats.get("passed", []):
        props = dict(report.user_properties)
        if "mutant" in props:
            rows.append((props["mutant"], props["rejected_by"]))
    if not rows:
        return
    terminalreporter.section("mutants and the specs that reject them")
    if os.environ.get(SHOW_MUTANTS) != "1":
        terminalreporter.write_line(
            f"{len(rows)} mutants rejected; their names spoil the katas' traps, so they are not shown "
            f"here ({SHOW_MUTANTS}=1 shows which spec rejects each)."
        )
        return
    for mutant, specs in sorted(rows):
        terminalreporter.write_line(f"{mutant}: {specs}")


# ------------------------------------------------------------------ Exercism's interface, version 3


@pytest.fixture(name="exercism_v3")
def _exercism_v3():
    """A check of one results.json against Exercism's test-runner interface, version 3.

    As its documentation (exercism/docs, building/tooling/test-runners/interface.md) and the
    reference runner's golden files (exercism/python-test-runner, test/*/results.json) show it.
    """
    return _check_exercism_v3


def _check_exercism_v3(body):
    """The interface's rules, as its documentation and the reference runner's golden files show them."""
    assert set(body) <= {"version", "status", "message", "tests"}
    assert body["version"] == 3
    assert body["status"] in {"pass", "fail", "error"}
    if body["status"] == "error":
        assert isinstance(body["message"], str) and body["message"], "an error says what went wrong"
        assert body["tests"] == []
    else:
        assert "message" not in body
    for test in body["tests"]:
        assert set(test) <= {"name", "status", "message", "test_code", "task_id", "output"}
        assert isinstance(test["name"], str) and test["name"]
        assert test["status"] in {"pass", "fail", "error"}
        assert (test["message"] is None) == (test["status"] == "pass")
        assert isinstance(test["test_code"], str) and test["test_code"]
        assert isinstance(test["task_id"], int) and test["task_id"] >= 1
        if "output" in test:
            assert isinstance(test["output"], str) and 0 < len(test["output"]) <= 500 + len(EXERCISM_CUT)
