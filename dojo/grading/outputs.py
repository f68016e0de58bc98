"""What grading writes, only ever from the parent: results, the gradebook, JUnit XML, the ledger.

Layout of the output folder: ``students/<name>/`` (one folder per student, named as given,
so no name can collide with the class files) holding ``summary.json`` (every spec, points
per kata and task, notes, what to review) and ``<kata>/results.json`` per kata (Exercism's
test-runner interface, version 3: one kata is one exercise); ``gradebook.csv``,
``junit.xml``, ``analysis/`` (see :mod:`dojo.grading.analysis`), ``.specs.json`` (the spec
cache, a hint) and ``.ledger.json`` (a hash of each file the grader wrote for a student: a
file that differs is not kept on a rerun, and is written again).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from dojo.grading.plan import OUTPUT_CUT, Source
from dojo.grading.results import import_failure, safe
from dojo.manifest import Kata

STUDENTS = "students"
LEDGER = ".ledger.json"


SUMMARY = "summary.json"


def student_folder(out: Path, student: str) -> Path:
    """``students/<name>/``: the name as given, under a folder no class file shares."""
    return out / STUDENTS / student


def summary_path(out: Path, student: str) -> Path:
    """``students/<name>/summary.json``: the student's whole result."""
    return student_folder(out, student) / SUMMARY


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", errors="replace", newline="") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def results_text(result: dict[str, Any]) -> str:
    """A JSON file's text as the grader writes it: any string safe to encode."""
    return json.dumps(safe(result), indent=2, ensure_ascii=False) + "\n"


def student_files(result: dict[str, Any], sources: dict[str, Source]) -> dict[str, str]:
    """Every file the grader writes for a student, by name under their folder: the summary, a results.json per kata."""
    files = {SUMMARY: results_text(result)}
    for kata in result["katas"]:
        files[f"{kata['slug']}/results.json"] = results_text(exercism_results(result, kata, sources))
    return files


# --------------------------------------------------------------------------- Exercism's interface, version 3

#: What Exercism's reference runner appends to an output it cut (it cuts at 500 characters).
EXERCISM_CUT = " [Output was truncated. Please limit to 500 chars]"
_LIBRARY_FRAME = re.compile(r"^(?:\S*(?:site-packages|dist-packages|/lib/python\d[.\d]*)/\S+:\d+: in .*)$")


def kata_relative(text: str, slug: str) -> str:
    """Paths in a message as the student sees them: relative to the kata's folder."""
    for prefix in (f"../grader/katas/{slug}/", f"grader/katas/{slug}/", f"katas/{slug}/", f"{slug}/"):
        text = text.replace(prefix, "")
    return text


def collapse_library_frames(text: str) -> str:
    """A traceback's frames inside installed libraries, each run of them as one line: ``[… 3 library frames]``."""
    lines = text.split("\n")
    out: list[str] = []
    index = 0
    while index < len(lines):
        if not _LIBRARY_FRAME.match(lines[index]):
            out.append(lines[index])
            index += 1
            continue
        frames = 0
        while index < len(lines) and _LIBRARY_FRAME.match(lines[index]):
            frames += 1
            index += 1
            while index < len(lines) and lines[index].startswith("    "):  # the frame's source lines
                index += 1
        out.append(f"[… {frames} library frame{'s' if frames > 1 else ''}]")
    return "\n".join(out)


def student_message(text: str | None, slug: str) -> str | None:
    """A failure message for the student: paths relative to the kata, library frames collapsed."""
    return None if text is None else collapse_library_frames(kata_relative(text, slug))


def exercism_results(result: dict[str, Any], kata: dict[str, Any], sources: dict[str, Source]) -> dict[str, Any]:
    """One kata's results.json, in Exercism's test-runner interface, version 3."""
    slug = kata["slug"]
    tests = [test for test in result["tests"] if test["kata"] == slug]
    failure = import_failure(tests)
    if failure is not None and not any(test["outcome"] == "passed" for test in tests):
        return {"version": 3, "status": "error", "message": student_message(failure, slug), "tests": []}
    entries = []
    for test in tests:
        entry: dict[str, Any] = {
            "name": test["name"].removeprefix(f"{slug}: "),
            "status": test["status"],
            "message": student_message(test["message"], slug) if test["status"] != "pass" else None,
            "test_code": sources[test["nodeid"]].code if test["nodeid"] in sources else "",
            "task_id": test["task_id"],
        }
        output = test.get("output")
        if output:
            entry["output"] = output.replace(OUTPUT_CUT, EXERCISM_CUT)
        entries.append(entry)
    statuses = [entry["status"] for entry in entries]
    if statuses and all(status == "pass" for status in statuses):
        status = "pass"
    elif any(status in {"pass", "fail"} for status in statuses):
        status = "fail"
    else:
        status = "error"
    body: dict[str, Any] = {"version": 3, "status": status}
    if status == "error":
        first = next((entry["message"] for entry in entries if entry["message"]), None)
        body["message"] = f"no spec of {slug} ran to a verdict" + (f": {first}" if first else "")
    body["tests"] = entries
    return body


def sha(text: str) -> str:
    """The hash the ledger keeps of each file written for a student."""
    return hashlib.sha256(text.encode("utf-8", errors="replace")).hexdigest()


def points_text(value: float) -> str:
    """Points as the gradebook shows them: 2.5, 10."""
    return f"{value:.2f}".rstrip("0").rstrip(".")


_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: one that would start a formula gets a leading quote (OWASP)."""
    text = safe(str(value))
    return "'" + text if text.startswith(_FORMULA) else text


def gradebook(results: list[dict[str, Any]], katas: tuple[Kata, ...]) -> str:
    """The class gradebook: a row per student, a column per kata, the total, notes, what to review; maximum first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["student", *(kata.slug for kata in katas), "total", "notes", "review"])
    writer.writerow(["(maximum)", *(kata.points for kata in katas), sum(kata.points for kata in katas), "", ""])
    for result in sorted(results, key=lambda result: result["student"]):
        earned = {kata["slug"]: kata["points"] for kata in result["katas"]}
        review = result.get("review", [])
        writer.writerow(
            [
                cell(result["student"]),
                *(points_text(earned[kata.slug]) if kata.slug in earned else "" for kata in katas),
                points_text(result["points"]),
                cell("; ".join(result.get("notes", []))),
                cell(("REVIEW: " + "; ".join(review)) if review else ""),
            ]
        )
    return buffer.getvalue()


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _xml_text(text: str | None) -> str:
    return _NOT_XML.sub("\ufffd", text or "")


_E_LINE = re.compile(r"^E\s?(.*)$")
_FRAME_LINE = re.compile(r"^\S+:\d+: in \S+")
_JUNIT_KIND = {"failed": "failure", "error": "error", "timed out": "error", "crashed": "error"}
HEADLINE_CAP = 250


def headline(message: str | None) -> str:
    """A failure in one line, as a CI annotation's title: the lesson's expected and got, else the error itself."""
    lines = (message or "").splitlines()
    raised = [m.group(1).strip() for line in lines if (m := _E_LINE.match(line))]
    body = [line.strip() for line in (raised or lines) if line.strip() and not _FRAME_LINE.match(line.strip())]
    found = {key: line for line in body for key in ("expected:", "got:") if line.startswith(key)}
    if "expected:" in found and "got:" in found:
        text = f"{found['expected:']}; {found['got:']}"
    else:
        text = next((line for line in body if line not in {"AssertionError:", "AssertionError"}), "")
    return text if len(text) <= HEADLINE_CAP else text[: HEADLINE_CAP - 1] + "…"


def junit(results: list[dict[str, Any]], sources: dict[str, Source]) -> str:
    """JUnit XML for CI systems: a test suite per student, a test case per spec, with its file and line."""
    root = ET.Element("testsuites", name="kata grade")
    totals = dict.fromkeys(("tests", "failures", "errors", "skipped"), 0)
    seconds = 0.0
    for result in sorted(results, key=lambda result: result["student"]):
        tests = result["tests"]
        kinds = [_JUNIT_KIND.get(test["outcome"], "skipped" if test["outcome"] != "passed" else "") for test in tests]
        counts = {
            "tests": len(tests),
            "failures": kinds.count("failure"),
            "errors": kinds.count("error"),
            "skipped": kinds.count("skipped"),
        }
        duration = sum(test["duration"] for test in tests)
        for key, value in counts.items():
            totals[key] += value
        seconds += duration
        suite = ET.SubElement(
            root,
            "testsuite",
            name=_xml_text(result["student"]),
            **{key: str(value) for key, value in counts.items()},
            time=f"{duration:.3f}",
            timestamp=str(result.get("graded_at", ""))[:19],
        )
        properties = ET.SubElement(suite, "properties")
        for name in ("points", "max_points"):
            ET.SubElement(properties, "property", name=name, value=str(result[name]))
        if result.get("review"):
            ET.SubElement(properties, "property", name="review", value=_xml_text("; ".join(result["review"])))
        for test, kind in zip(tests, kinds, strict=True):
            source = sources.get(test["nodeid"])
            case = ET.SubElement(
                suite,
                "testcase",
                classname=_xml_text(f"{result['student']}.{test['kata']}"),
                name=_xml_text(test["nodeid"].split("::", 1)[-1]),
                time=f"{test['duration']:.3f}",
                **({"file": source.file, "line": str(source.line)} if source else {}),
            )
            if kind:
                message = _xml_text(test["message"])
                problem = ET.SubElement(case, kind, message=_xml_text(headline(message)) or test["outcome"])
                if kind != "skipped":
                    problem.set("type", test["outcome"])
                    problem.text = message
            if test["output"]:
                ET.SubElement(case, "system-out").text = _xml_text(test["output"])
    for key, value in totals.items():
        root.set(key, str(value))
    root.set("time", f"{seconds:.3f}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


#: The actions the workflow uses, pinned as their own documentation shows them.
CHECKOUT = "actions/checkout@v5"
SETUP_UV = "astral-sh/setup-uv@cec208311dfd045dd5311c1add060b2062131d57  # v8.0.0"
COMMAND_GRADER = "classroom-resources/autograding-command-grader@v1"
REPORTER = "classroom-resources/autograding-grading-reporter@v1"
#: GitHub Classroom reads the scores of this workflow and job only (the reporter's documentation).
WORKFLOW_NAME = "Autograding Tests"
JOB = "run-autograding-tests"


def _q(value: object) -> str:
    """A YAML scalar: a JSON string is a valid double-quoted YAML scalar, whatever it holds."""
    return json.dumps(str(value), ensure_ascii=False)


def classroom_workflow(katas: tuple[Kata, ...], *, minutes: int) -> str:
    """GitHub Classroom's ``.github/workflows/classroom.yml``: one graded step per kata task, with its points.

    Each step runs our specs of one task on the student's code (``uv run pytest KATA --task N``)
    through the classroom's command grader, so partial credit reaches the classroom task by
    task; the reporter adds the steps up. uv is installed the supported way (astral-sh's
    action) and the project synced once from uv.lock.
    """
    steps = [(f"k{kata.order:02d}t{task.number}", kata, task) for kata in katas for task in kata.tasks]
    lines = [
        "# Written by `uv run kata grade classroom`: one graded step per task of each kata, worth its points.",
        "# The students' repositories must not change what grades them: protect .github/, dojo/, every",
        "# conftest.py, pyproject.toml, uv.lock and the katas' spec files (see the README, Grading).",
        f"name: {_q(WORKFLOW_NAME)}",
        '"on":',
        "  - push",
        "  - repository_dispatch",
        "  - workflow_dispatch",
        "permissions:",
        "  checks: write",
        "  actions: read",
        "  contents: read",
        "jobs:",
        f"  {JOB}:",
        "    runs-on: ubuntu-latest",
        "    if: github.actor != 'github-classroom[bot]'",
        f"    timeout-minutes: {min(360, minutes * len(steps) + 10)}",
        "    steps:",
        "      - name: Check out the student's repository",
        f"        uses: {CHECKOUT}",
        "      - name: Install uv",
        f"        uses: {SETUP_UV}",
        "      - name: Install the project, exactly as uv.lock pins it",
        "        run: uv sync --locked",
    ]
    for step_id, kata, task in steps:
        name = f"{kata.slug} task {task.number}: {task.title}"
        lines += [
            f"      - name: {_q(name)}",
            f"        id: {step_id}",
            f"        uses: {COMMAND_GRADER}",
            "        with:",
            f"          test-name: {_q(name)}",
            f"          command: {_q(f'uv run pytest katas/{kata.slug} --task {task.number} -q')}",
            f"          timeout: {minutes}",
            f"          max-score: {task.points}",
        ]
    lines += [
        "      - name: Autograding Reporter",
        f"        uses: {REPORTER}",
        "        env:",
        *(
            f"          {step_id.upper()}_RESULTS: {_q('${{ steps.' + step_id + '.outputs.result }}')}"
            for step_id, _, _ in steps
        ),
        "        with:",
        f"          runners: {','.join(step_id for step_id, _, _ in steps)}",
    ]
    return "\n".join(lines) + "\n"
