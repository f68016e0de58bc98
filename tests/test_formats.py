"""What grading writes, in the formats other tools read: Exercism's results.json (v3) and JUnit XML.

Checked against their references: the shape of Exercism's test-runner interface, version 3
(exercism/docs, building/tooling/test-runners/interface.md, and the golden results.json
files of exercism/python-test-runner), and JUnit XML as a maintained parser (junitparser)
reads it.
"""

from __future__ import annotations

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped

from dojo import manifest
from dojo.grading import outputs
from dojo.grading.plan import OUTPUT_CUT, Limits, Plan, Spec, grader_files, spec_sources

K01 = manifest.load().get("k01")
SPEC_FILE = f"katas/{K01.slug}/{K01.spec}"
INVALID = "test_an_address_that_is_not_an_email_is_rejected_with_422_and_nothing_is_sent"
VALID = "test_an_unusual_but_valid_address_is_accepted_as_it_is"
LESSON = (
    "test_fire_and_forget.py:130: in test_x\n    expect_status(\nE   AssertionError: \n"
    "E     expected: 422 Unprocessable Content\nE     got:      202 Accepted\n"
    "E     revisit:  task 1: check the address (README: Validation)"
)


@pytest.fixture(name="plan", scope="module")
def _plan():
    specs = (
        Spec(f"{SPEC_FILE}::{INVALID}[no at sign]", K01.slug, 1, f"{INVALID}[no at sign]"),
        Spec(f"{SPEC_FILE}::{VALID}[plus]", K01.slug, 1, f"{VALID}[plus]"),
    )
    return Plan((K01,), specs, Limits(), (), grader_files((K01,)), "x")


def _summary(plan, outcomes, messages=None, outputs_=None):
    """A student's summary as the grader writes it, with these outcomes for the plan's specs."""
    tests = []
    for index, (spec, outcome) in enumerate(zip(plan.specs, outcomes, strict=True)):
        status = {"passed": "pass", "failed": "fail"}.get(outcome, "error")
        tests.append(
            {
                "name": f"{K01.slug}: {spec.name.removeprefix('test_')}",
                "status": status,
                "message": None if outcome == "passed" else (messages or {}).get(index, LESSON),
                "output": (outputs_ or {}).get(index),
                "task_id": spec.task,
                "kata": K01.slug,
                "nodeid": spec.nodeid,
                "outcome": outcome,
                "points": 0,
                "max_points": 1,
                "duration": 0.25,
            }
        )
    return {
        "student": "ada",
        "tests": tests,
        "points": 0,
        "max_points": K01.points,
        "katas": [{"slug": K01.slug, "points": 0, "max_points": K01.points, "missing_modules": []}],
        "graded_at": "2026-11-26T10:00:00+00:00",
        "review": [],
    }


def test_test_code_is_the_specs_body_without_its_docstring_and_the_line_is_its_def(plan):
    sources = spec_sources(plan)
    source = sources[plan.specs[1].nodeid]
    text = plan.files[SPEC_FILE].decode().splitlines()
    assert source.file == SPEC_FILE
    assert text[source.line - 1].startswith(f"def {VALID}(")
    assert '"""' not in source.code
    assert source.code.splitlines()[0] == source.code.splitlines()[0].lstrip(), "dedented"
    assert source.code.splitlines()[0] in [line.strip() for line in text[source.line : source.line + 6]]


def test_a_kata_results_json_follows_exercism_v3(plan, exercism_v3):
    summary = _summary(plan, ["failed", "passed"], outputs_={0: "x" * 450 + OUTPUT_CUT})
    body = outputs.exercism_results(summary, summary["katas"][0], spec_sources(plan))
    exercism_v3(body)
    assert body["status"] == "fail"
    failed, passed = body["tests"]
    assert failed["name"] == f"{INVALID.removeprefix('test_')}[no at sign]", "the kata is the exercise: no prefix"
    assert failed["message"].startswith("test_fire_and_forget.py:130"), "paths relative to the kata's folder"
    assert failed["output"].endswith(" [Output was truncated. Please limit to 500 chars]"), "the reference's own words"
    assert "output" not in passed, "omitted when empty, as the reference runner does"
    assert passed["message"] is None


def test_a_module_that_does_not_import_is_an_error_with_the_error_as_message(plan, exercism_v3):
    cannot = (
        "invalid syntax (notifications.py, line 1)\n\nDuring handling of the above exception, another exception "
        f"occurred:\nCANNOT IMPORT {K01.slug}/notifications.py\n  SyntaxError: invalid syntax (notifications.py, "
        f"line 1)\n  file: {K01.slug}/notifications.py:1"
    )
    summary = _summary(plan, ["error", "error"], messages={0: cannot, 1: cannot})
    body = outputs.exercism_results(summary, summary["katas"][0], spec_sources(plan))
    exercism_v3(body)
    assert body["status"] == "error"
    assert body["message"].startswith("CANNOT IMPORT notifications.py\n  SyntaxError: invalid syntax")
    assert "file: notifications.py:1" in body["message"]


def test_library_frames_collapse_to_one_line_and_the_students_frames_stay():
    text = (
        "test_x.py:10: in test_x\n    call()\n"
        "/work/.venv/lib/python3.11/site-packages/starlette/routing.py:76: in app\n    await f()\n"
        "/work/.venv/lib/python3.11/site-packages/fastapi/routing.py:30: in run\n    x = 1\n"
        "/usr/lib/python3.11/asyncio/tasks.py:5: in wait\n    y\n"
        "notifications.py:12: in send\n    raise E\nE   ValueError: boom"
    )
    assert outputs.collapse_library_frames(text).splitlines() == [
        "test_x.py:10: in test_x",
        "    call()",
        "[… 3 library frames]",
        "notifications.py:12: in send",
        "    raise E",
        "E   ValueError: boom",
    ]


def test_junit_is_read_by_a_junit_library_with_files_lines_totals_and_one_line_messages(plan, tmp_path):
    summary = _summary(plan, ["failed", "not run"], messages={1: "not run: the time limit ran out first"})
    bob = _summary(plan, ["passed", "timed out"], messages={1: "timed out: still running after 7 s"})
    bob["student"] = "bob"
    path = tmp_path / "junit.xml"
    path.write_text(outputs.junit([summary, bob], spec_sources(plan)), encoding="utf-8")
    xml = JUnitXml.fromfile(str(path))
    assert (xml.tests, xml.failures, xml.errors, xml.skipped) == (4, 1, 1, 1)
    assert xml.time == pytest.approx(1.0)
    ada, bob_suite = list(xml)
    assert ada.timestamp == "2026-11-26T10:00:00"
    cases = list(ada)
    failed, not_run = cases
    (failure,) = failed.result
    assert isinstance(failure, Failure)
    assert failure.message == "expected: 422 Unprocessable Content; got:      202 Accepted", "one line, no E prefixes"
    assert failed._elem.get("file") == SPEC_FILE
    assert int(failed._elem.get("line")) > 1
    (skipped,) = not_run.result
    assert isinstance(skipped, Skipped) and skipped.message == "not run: the time limit ran out first"
    (error,) = list(bob_suite)[1].result
    assert isinstance(error, Error) and error.type == "timed out"


def test_a_headline_says_the_error_when_there_is_no_lesson():
    assert outputs.headline("x.py:3: in f\n    g()\nE   ValueError: boom\nE   more") == "ValueError: boom"
    assert outputs.headline("CANNOT IMPORT k/n.py\n  SyntaxError") == "CANNOT IMPORT k/n.py"
    assert outputs.headline(None) == ""
    assert len(outputs.headline("E   " + "x" * 999)) == outputs.HEADLINE_CAP


def test_a_summary_says_why_a_kata_scored_zero():
    from dojo.grading.results import zero_reason

    tests = [{"outcome": "failed", "message": "x"}, {"outcome": "timed out", "message": "y"}]
    assert zero_reason({"points": 0}, tests) == "scored 0: no task had all its specs pass (1 failed, 1 timed out)"
    assert zero_reason({"points": 0, "missing_modules": ["a.py"]}, tests) == "scored 0: the submission has no a.py"
    assert zero_reason({"points": 2}, tests) is None
