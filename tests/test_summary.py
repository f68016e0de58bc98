"""The end of `uv run pytest`: the checks' summary must not spoil the katas for a learner."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dojo import impl, manifest


@pytest.fixture(name="checks")
def _checks(pytestconfig):
    """tests/conftest.py as pytest loaded it: its summary hook is what is tested."""
    path = Path(__file__).with_name("conftest.py")
    for plugin in pytestconfig.pluginmanager.get_plugins():
        if getattr(plugin, "__file__", None) == str(path):
            return plugin
    pytest.fail(f"{path} is not loaded as a conftest")
    return None


@dataclass
class _Report:
    user_properties: list[tuple[str, str]]


@dataclass
class _Reporter:
    stats: dict[str, list[_Report]]
    lines: list[str] = field(default_factory=list)

    def section(self, title: str) -> None:
        self.lines.append(f"== {title} ==")

    def write_line(self, line: str) -> None:
        self.lines.append(line)


def _summary(checks, monkeypatch: pytest.MonkeyPatch, show: str | None) -> str:
    if show is None:
        monkeypatch.delenv(checks.SHOW_MUTANTS, raising=False)
    else:
        monkeypatch.setenv(checks.SHOW_MUTANTS, show)
    mutants = [m for kata in manifest.load() for m in impl.mutants(kata.slug)]
    reports = [_Report([("mutant", f"{m.slug}/{m.name}"), ("rejected_by", "test_something")]) for m in mutants]
    reporter = _Reporter({"passed": reports})
    checks.pytest_terminal_summary(reporter, 0, None)
    return "\n".join(reporter.lines)


def test_the_default_run_names_no_mutant(checks, monkeypatch):
    text = _summary(checks, monkeypatch, None)
    names = [m.name for kata in manifest.load() for m in impl.mutants(kata.slug)]
    assert names, "no mutants to check against"
    shown = [name for name in names if name in text]
    assert not shown, f"the default summary names mutants (a learner's spoiler): {shown}\n{text}"
    assert f"{len(names)} mutants rejected" in text
    assert f"{checks.SHOW_MUTANTS}=1" in text, "the summary must say how to see the table"


def test_the_table_is_shown_on_request(checks, monkeypatch):
    text = _summary(checks, monkeypatch, "1")
    for kata in manifest.load():
        for mutant in impl.mutants(kata.slug):
            assert f"{mutant.slug}/{mutant.name}: test_something" in text
