"""Grading where the class already is: GitHub Classroom's workflow and a dev container for Codespaces.

The workflow is written from the manifest (``uv run kata grade classroom``, and
``python -m dojo.maintain`` keeps the shipped copy current); it is checked against the
GitHub workflow schema (SchemaStore's, as check-jsonschema ships it), against the rules the
classroom's reporter documents (one job, its name, an id per runner, the ``<ID>_RESULTS``
variables), and one of its steps is run here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from ruamel.yaml import YAML

from dojo import manifest
from dojo.grading import outputs
from dojo.manifest import REPO_ROOT

ALL = tuple(manifest.load())
WORKFLOW = REPO_ROOT / ".github" / "workflows" / "classroom.yml"
DEVCONTAINER = REPO_ROOT / ".devcontainer" / "devcontainer.json"


def schema_check(path):
    """check-jsonschema against SchemaStore's GitHub workflow schema, as it ships it."""
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_the_shipped_workflow_is_the_one_the_manifest_makes_and_the_schema_accepts_it():
    assert WORKFLOW.read_text(encoding="utf-8") == outputs.classroom_workflow(ALL, minutes=2), (
        "run `uv run python -m dojo.maintain`"
    )
    checked = schema_check(WORKFLOW)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_schema_check_can_fail(tmp_path):
    """A workflow the schema refuses is refused: the check above is not one that always passes."""
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text(encoding="utf-8").replace("runs-on:", "runs_on:"), encoding="utf-8")
    assert schema_check(broken).returncode != 0


def test_one_graded_step_per_task_worth_its_points_and_a_reporter_that_reads_them_all():
    workflow = YAML(typ="safe").load(WORKFLOW.read_text(encoding="utf-8"))
    assert workflow["name"] == "Autograding Tests", "the classroom reads this workflow's scores only"
    assert list(workflow["jobs"]) == ["run-autograding-tests"], "and this job's"
    steps = workflow["jobs"]["run-autograding-tests"]["steps"]
    assert steps[1]["uses"].startswith("astral-sh/setup-uv@"), "uv installed the supported way"
    assert [step.get("run") for step in steps].count("uv sync --locked") == 1, "one install, from the lock"
    graded = [step for step in steps if step.get("uses", "").startswith("classroom-resources/autograding-command")]
    expected = [(kata, task) for kata in ALL for task in kata.tasks]
    assert len(graded) == len(expected)
    for step, (kata, task) in zip(graded, expected, strict=True):
        assert step["with"]["command"] == f"uv run pytest katas/{kata.slug} --task {task.number} -q"
        assert step["with"]["max-score"] == task.points
    assert sum(step["with"]["max-score"] for step in graded) == sum(kata.points for kata in ALL)
    reporter = steps[-1]
    ids = [step["id"] for step in graded]
    assert reporter["with"]["runners"] == ",".join(ids)
    assert all(step_id.isalnum() for step_id in ids), "the reporter accepts letters and digits only"
    assert reporter["env"] == {f"{i.upper()}_RESULTS": f"${{{{ steps.{i}.outputs.result }}}}" for i in ids}


@pytest.mark.slow
@pytest.mark.parametrize(("impl", "code"), [("solutions", 0), ("shipped", 1)])
def test_a_graded_steps_command_passes_on_the_solution_and_fails_on_the_stub(impl, code):
    """The first task of kata 1, as the classroom runs it: exit 0 earns its points, anything else none."""
    workflow = YAML(typ="safe").load(WORKFLOW.read_text(encoding="utf-8"))
    step = next(step for step in workflow["jobs"]["run-autograding-tests"]["steps"] if step.get("id") == "k01t1")
    command = step["with"]["command"].split()
    assert command[:2] == ["uv", "run"]
    env = {**os.environ, "KATA_IMPL": impl}
    ran = subprocess.run(
        [sys.executable, "-m", *command[2:]], cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert ran.returncode == code, ran.stdout[-2000:]
    assert "deselected" in ran.stdout, "only that task's specs ran"


def test_kata_grade_classroom_writes_the_workflow_where_it_is_asked(tmp_path):
    from dojo.grading.command import main

    target = tmp_path / ".github" / "workflows" / "classroom.yml"
    assert main(["classroom", "--kata", "k01", "--minutes", "5", "--output", str(target)]) == 0
    workflow = YAML(typ="safe").load(target.read_text(encoding="utf-8"))
    graded = [step for step in workflow["jobs"]["run-autograding-tests"]["steps"] if "with" in step and "id" in step]
    assert [step["with"]["timeout"] for step in graded] == [5] * len(ALL[0].tasks)


def test_the_dev_container_installs_uv_and_syncs_so_kata_works_when_it_opens():
    """Its commands, run here the way the container runs them (pip's uv, then a locked sync)."""
    config = json.loads(DEVCONTAINER.read_text(encoding="utf-8"))
    assert config["image"].startswith("mcr.microsoft.com/devcontainers/python:")
    first, second = config["postCreateCommand"].split(" && ")
    assert first == "python3 -m pip install --user --quiet uv"
    assert second == "python3 -m uv sync --locked"
    assert 8000 in config["forwardPorts"], "kata serve's port"
    uv = shutil.which("uv")
    assert uv is not None
    synced = subprocess.run(
        [uv, "sync", "--locked", "--dry-run"], cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=120
    )
    assert synced.returncode == 0, synced.stderr
    listed = subprocess.run(
        [uv, "run", "--locked", "kata", "list"], cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=120
    )
    assert listed.returncode == 0 and "k01" in listed.stdout, listed.stderr
