"""Helpers for the repository's own checks: run a kata's specs against chosen code."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field

import pytest

from dojo.manifest import REPO_ROOT, Kata

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


def run_specs(pytester: pytest.Pytester, kata: Kata, impl: str) -> SpecRun:
    """Run ``kata``'s specs in process against ``impl`` (a value of the --impl switch).

    Against the solution the specs run in a random order (pytest-randomly; the seed is in
    the output), with every hypothesis phase: green must not depend on order. Against a
    stub or a mutant only the verdict matters, so failing properties are not shrunk, and
    a mutant's run stops at the first spec that rejects it (``KATAS_EVERY_REJECTION=1``
    runs them all, to see every spec that rejects each mutant).
    """
    extra = ["-p", "randomly"] if impl == "solutions" else ["--hypothesis-profile=katas-check"]
    if impl.startswith("mutant:") and os.environ.get("KATAS_EVERY_REJECTION") != "1":
        extra.append("--maxfail=1")
    result = pytester.runpytest_inprocess(
        str(kata.spec_path),
        f"--impl={impl}",
        f"--rootdir={REPO_ROOT}",
        "-c",
        str(REPO_ROOT / "pyproject.toml"),
        "-p",
        "no:cacheprovider",
        "-q",
        # pytest's own traceback style re-parses every source file of every frame: ~30 ms
        # a failure, most of a stub run. The checks read outcomes, not tracebacks.
        "--tb=native",
        *extra,
    )
    run = SpecRun(output=str(result.stdout))
    for report in result.reprec.getreports("pytest_collectreport"):
        if report.failed:
            run.errors.append(f"collecting {report.nodeid}")
    for report in result.reprec.getreports("pytest_runtest_logreport"):
        name = report.nodeid.split("::", 1)[-1]
        if report.when == "call":
            {"passed": run.passed, "failed": run.failed, "skipped": run.skipped}[report.outcome].append(name)
        elif report.failed:
            run.errors.append(f"{name} ({report.when})")
        elif report.skipped:
            run.skipped.append(name)
    return run


@pytest.fixture(name="run_specs")
def _run_specs(pytester: pytest.Pytester):
    """``run_specs(kata, impl)``: that kata's specs against that code, in process."""

    def run(kata: Kata, impl: str) -> SpecRun:
        return run_specs(pytester, kata, impl)

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
