"""The item analysis: what a class did not get, per kata, task and spec, as CSV and an offline page."""

from __future__ import annotations

import csv
import json

import pytest
from bs4 import BeautifulSoup

from dojo import manifest
from dojo.grading import analysis
from dojo.grading.command import main as grade_main
from dojo.grading.outputs import LEDGER, results_text, sha, summary_path

K01 = manifest.load().get("k01")
LESSON = "AssertionError: one email\n  expected: 1\n  got:      0\n  revisit:  task 3: queue the task itself (README: The response first, then the tasks)\n"  # noqa: E501


def _rows(path):
    return list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))


def _specs():
    """Two specs per task of kata 1, as the plan would name them."""
    return [
        (task.number, f"katas/k01_fire_and_forget/test_fire_and_forget.py::test_t{task.number}_{n}")
        for task in K01.tasks
        for n in (1, 2)
    ]


def _result(student, failing=(), message=LESSON, review=()):
    """A student's summary as the grader writes it: every spec passes but those in ``failing``."""
    tests = []
    for task, nodeid in _specs():
        ok = nodeid not in failing
        tests.append(
            {
                "name": f"k01_fire_and_forget: {nodeid.rsplit('::', 1)[-1]}",
                "status": "pass" if ok else "fail",
                "message": None if ok else message,
                "output": None,
                "task_id": task,
                "kata": K01.slug,
                "nodeid": nodeid,
                "outcome": "passed" if ok else "failed",
                "points": 1,
                "max_points": 1,
                "duration": 0.01,
            }
        )
    passed = sum(test["outcome"] == "passed" for test in tests)
    points = K01.points * passed / len(tests)
    return {
        "student": student,
        "tests": tests,
        "katas": [{"slug": K01.slug, "points": points, "max_points": K01.points}],
        "review": list(review),
    }


@pytest.fixture(name="klass")
def _klass():
    specs = [nodeid for _, nodeid in _specs()]
    task3 = [nodeid for task, nodeid in _specs() if task == 3]
    return [
        _result("ada"),
        _result("bob", failing=task3),
        _result("cy", failing=task3[:1]),
        _result(
            "<script>alert(1)</script>",
            failing=specs,
            message="CANNOT IMPORT notifications.py\n  line 12",
            review=["scan: opens a socket"],
        ),
    ]


def test_shares_are_per_spec_per_task_and_per_kata(klass):
    """A task passes when all its specs pass; a kata when all its points were earned."""
    result = analysis.analyse(klass, (K01,))
    by_key = {(item.task, item.spec): item for item in result.items}
    kata = by_key[None, None]
    assert (kata.students, kata.passed) == (4, 1)
    task3 = by_key[3, None]
    assert (task3.students, task3.passed) == (4, 1)
    task1 = by_key[1, None]
    assert (task1.students, task1.passed) == (4, 3)
    first_of_task3 = next(item for item in result.items if item.task == 3 and item.spec)
    assert (first_of_task3.passed, first_of_task3.share) == (1, 0.25)


def test_failures_are_grouped_by_the_idea_to_revisit_then_by_a_masked_first_line(klass):
    result = analysis.analyse(klass, (K01,))
    ideas = {group.idea: group for group in result.groups}
    lesson = ideas["task 3: queue the task itself (README: The response first, then the tasks)"]
    assert (lesson.count, sorted(lesson.students)) == (3, ["bob", "cy"])
    masked = ideas["CANNOT IMPORT notifications.py"]
    assert masked.count == len(_specs())
    assert analysis.failure_group("boom 42 at 0x7f 'secret'", "failed") == "boom N at 0x… '…'"
    assert analysis.failure_group(None, "timed out") == "(timed out, no message)"


def test_points_fall_in_bands_of_the_kata_maximum(klass):
    result = analysis.analyse(klass, (K01,))
    assert result.points[K01.slug] == {"100%": 1, "75-99%": 1, "50-74%": 1, "0": 1}


def test_the_csv_files_say_it_in_rows_and_quote_what_would_be_a_formula(tmp_path, klass):
    klass[1]["student"] = "=HYPERLINK()"
    klass[1]["review"] = ["refused: a process"]
    analysis.write(tmp_path, klass, (K01,))
    folder = tmp_path / "analysis"
    items = _rows(folder / "items.csv")
    assert [row["level"] for row in items[:2]] == ["kata", "task"]
    assert items[0]["share_passed"] == "0.25"
    failures = _rows(folder / "failures.csv")
    assert failures[0]["failed_idea"].startswith("task 3: queue the task itself")
    assert failures[0]["students"] == "2"
    review = list(csv.reader((folder / "review.csv").read_text(encoding="utf-8").splitlines()))
    assert ["'=HYPERLINK()", "refused: a process"] in review
    points = _rows(folder / "points.csv")
    assert [row["band"] for row in points] == list(analysis.BANDS)


def test_the_page_works_offline_escapes_what_students_wrote_and_charts_the_tasks(tmp_path, klass):
    page = analysis.write(tmp_path, klass, (K01,))
    text = page.read_text(encoding="utf-8")
    soup = BeautifulSoup(text, "html.parser")
    assert soup.find("script") is None, "no script: not one the page brings, not one a student's name brings"
    assert "<script>alert(1)</script>" in soup.get_text()
    for tag in soup.find_all(["link", "img", "iframe", "object", "embed", "source"]):
        pytest.fail(f"the page loads something from elsewhere: {tag}")
    assert not any(attr in tag.attrs for tag in soup.find_all(True) for attr in ("src", "href"))
    assert "http" not in text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    charts = soup.find_all("svg")
    assert len(charts) == 2, "the tasks' chart and the kata's points histogram"
    bars = [rect for rect in charts[0].find_all("rect") if rect.title]
    assert next(rect.title.get_text() for rect in bars) == "1 of 4", "hardest task first: task 3, passed by 1 of 4"
    headings = [h.get_text() for h in soup.find_all("h2")]
    assert headings == ["Tasks, hardest first", f"{K01.slug}: {K01.title}", "Flagged for review"]
    missed = soup.find("h3", string="Ideas most often missed").find_next("table")
    first = [td.get_text() for td in missed.find_all("tr")[1].find_all("td")]
    assert first[:2] == ["task 3: queue the task itself (README: The response first, then the tasks)", "2"]


def test_kata_grade_analysis_rebuilds_it_from_what_the_grader_wrote_only(tmp_path, klass, capsys):
    ledger = {}
    for result in klass[:3]:
        text = results_text(result)
        path = summary_path(tmp_path, result["student"])
        path.parent.mkdir(parents=True)
        path.write_text(text, encoding="utf-8")
        ledger[result["student"]] = {"summary.json": sha(text)}
    summary_path(tmp_path, "cy").write_text(json.dumps(klass[0]), encoding="utf-8")  # not what the grader wrote
    (tmp_path / LEDGER).write_text(json.dumps(ledger), encoding="utf-8")
    assert grade_main(["analysis", "--out", str(tmp_path), "--kata", "k01"]) == 0
    said = capsys.readouterr()
    assert "cy: left out" in said.err
    assert "2 student(s) on 1 kata(s)" in said.out
    items = _rows(tmp_path / "analysis" / "items.csv")
    assert items[0]["students"] == "2"


def test_kata_grade_analysis_without_a_grading_run_says_so(tmp_path, capsys):
    assert grade_main(["analysis", "--out", str(tmp_path)]) == 2
    assert "grade the class first" in capsys.readouterr().err
