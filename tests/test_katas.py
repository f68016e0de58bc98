"""Every kata, against every kind of code: stub red, solution green, each mutant rejected.

The stub is judged as shipped (``--impl=shipped``), so these checks stay green in a
learner's clone whatever the learner has done to ``katas/``. The runs themselves are made
two at a time by warm fork servers, all on first use (``run_specs`` in conftest.py).
"""

from __future__ import annotations

import ast

import pytest

from dojo import impl, manifest

KATAS = list(manifest.load())
MUTANTS = [mutant for kata in KATAS for mutant in impl.mutants(kata.slug)]


@pytest.mark.spec_run("shipped")
@pytest.mark.parametrize("kata", KATAS, ids=lambda kata: kata.slug)
def test_every_spec_fails_on_the_stub_as_shipped_and_none_errors(kata, run_specs):
    """The learner starts red: each spec is a failure that teaches, not a crash."""
    run = run_specs(kata, "shipped")
    assert run.total > 0, f"{kata.slug}: no spec ran against the stub\n{run.output}"
    assert not run.errors, f"{kata.slug}: specs ERROR against the stub: {run.errors}\n{run.output}"
    assert not run.passed, f"{kata.slug}: specs already PASS against the stub: {run.passed}"
    assert not run.skipped, f"{kata.slug}: specs skipped against the stub: {run.skipped}"


@pytest.mark.spec_run("solutions")
@pytest.mark.parametrize("kata", KATAS, ids=lambda kata: kata.slug)
def test_every_spec_passes_on_the_solution(kata, run_specs):
    """The model answer is green, with nothing skipped."""
    run = run_specs(kata, "solutions")
    assert run.total > 0, f"{kata.slug}: no spec ran\n{run.output}"
    assert run.failed == [] and run.errors == [] and run.skipped == [], (
        f"{kata.slug} against its solution: {run.summary()}\n{run.output}"
    )


@pytest.mark.slow  # ~300 runs, half a minute of two cores: CI runs them (`-m slow`), the default leaves them out
@pytest.mark.spec_run("mutant")
@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda mutant: f"{mutant.slug}/{mutant.name}")
def test_every_mutant_is_rejected_first_by_a_spec_of_the_task_that_teaches_it(mutant, run_specs, record_property):
    """Each wrong version we know of fails some spec, the first of them (file order) in the mistake's task."""
    assert mutant.task is not None, f"{mutant.path}: say which task teaches this mistake (`task = N`)"
    kata = manifest.load().get(mutant.slug)
    run = run_specs(kata, mutant.spec)
    rejected = run.failed + run.errors
    assert rejected, (
        f"mutant {mutant.slug}/{mutant.name} survives every spec ({run.summary()}):\n"
        f"  {mutant.description}\nAdd a spec that rejects it."
    )
    first = rejected[0].split("[", 1)[0].split(" ", 1)[0]
    got = spec_tasks(kata).get(first)
    assert got == mutant.task, (
        f"mutant {mutant.slug}/{mutant.name} (a task {mutant.task} mistake) is first rejected by {rejected[0]}, "
        f"a spec of task {got}: a learner making this mistake would be sent to the wrong task"
    )
    record_property("mutant", f"{mutant.slug}/{mutant.name}")
    record_property("rejected_by", ", ".join(run.failed + run.errors))


def spec_tasks(kata: manifest.Kata) -> dict[str, int]:
    """Each spec function of a kata -> the task its ``@pytest.mark.task(N)`` names."""
    tasks = {}
    for node in ast.walk(ast.parse(kata.spec_path.read_text(encoding="utf-8"))):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Call) and ast.unparse(decorator.func) == "pytest.mark.task":
                tasks[node.name] = decorator.args[0].value
    return tasks
