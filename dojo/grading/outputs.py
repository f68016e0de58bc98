"""What grading writes, only ever from the parent: results, the gradebook, JUnit XML, the ledger.

Layout of the output folder: ``students/<name>/results.json`` (one folder per student,
named as given, so no name can collide with the class files), ``gradebook.csv``,
``junit.xml``, ``.specs.json`` (the spec cache, a hint) and ``.ledger.json`` (a hash of
each results.json as the grader wrote it: a file that differs is not kept on a rerun).
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

from dojo.grading.results import safe
from dojo.manifest import Kata

STUDENTS = "students"
LEDGER = ".ledger.json"


def results_path(out: Path, student: str) -> Path:
    """``students/<name>/results.json``: the name as given, under a folder no class file shares."""
    return out / STUDENTS / student / "results.json"


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
    """results.json's text: any string safe to encode."""
    return json.dumps(safe(result), indent=2, ensure_ascii=False) + "\n"


def sha(text: str) -> str:
    """The hash the ledger keeps of a results.json."""
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


def junit(results: list[dict[str, Any]]) -> str:
    """JUnit XML for CI systems: a test suite per student, a test case per spec."""
    root = ET.Element("testsuites", name="kata grade")
    for result in sorted(results, key=lambda result: result["student"]):
        tests = result["tests"]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=_xml_text(result["student"]),
            tests=str(len(tests)),
            failures=str(sum(test["status"] == "fail" for test in tests)),
            errors=str(sum(test["status"] == "error" for test in tests)),
            time=f"{sum(test['duration'] for test in tests):.3f}",
        )
        properties = ET.SubElement(suite, "properties")
        for name in ("points", "max_points"):
            ET.SubElement(properties, "property", name=name, value=str(result[name]))
        if result.get("review"):
            ET.SubElement(properties, "property", name="review", value=_xml_text("; ".join(result["review"])))
        for test in tests:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=_xml_text(f"{result['student']}.{test['kata']}"),
                name=_xml_text(test["nodeid"].split("::", 1)[-1]),
                time=f"{test['duration']:.3f}",
            )
            if test["status"] != "pass":
                tag = "failure" if test["status"] == "fail" else "error"
                message = _xml_text(test["message"])
                problem = ET.SubElement(
                    case, tag, message=f"{test['outcome']}: {message.splitlines()[0] if message else ''}"
                )
                problem.text = message
            if test["output"]:
                ET.SubElement(case, "system-out").text = _xml_text(test["output"])
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def classroom_config(katas: tuple[Kata, ...], *, minutes: int, setup: str) -> dict[str, Any]:
    """GitHub Classroom's ``.github/classroom/autograding.json``: a test per kata, with its points.

    The classroom's runners then grade each student's repository (with the specs in that
    repository: protect ``katas/*/test_*.py`` there, or collect the repositories and run
    ``kata grade``).
    """
    return {
        "tests": [
            {
                "name": f"{kata.slug}: {kata.title}",
                "setup": setup,
                "run": f"uv run pytest katas/{kata.slug}",
                "input": "",
                "output": "",
                "comparison": "included",
                "timeout": minutes,
                "points": kata.points,
            }
            for kata in katas
        ]
    }
