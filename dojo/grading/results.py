"""One submission's results, assembled by the parent from what its grading processes reported.

Nothing here runs student code or trusts a file the grading processes could write: the
verdicts come from :mod:`dojo.grading.child`, the points from the plan.
"""

from __future__ import annotations

import datetime as dt
import re
import tempfile
import time
from collections import Counter
from fractions import Fraction
from pathlib import Path
from typing import Any

from dojo.grading.child import AsShipped, Outcome, run_specs, unrooted, verdict
from dojo.grading.intake import Intake
from dojo.grading.plan import (
    CRASHED,
    ERROR,
    FAILED,
    MESSAGE_CAP,
    NOT_RUN,
    OUTPUT_CAP,
    OUTPUT_CUT,
    PASSED,
    STATUS,
    TIMED_OUT,
    Plan,
    Spec,
    Submission,
)
from dojo.grading.recorder import shorten
from dojo.manifest import REPO_ROOT

_SURROGATE = re.compile("[\ud800-\udfff]")


def safe(value: Any) -> Any:
    """Any string made safe to encode as UTF-8 (a lone surrogate, as os.fsdecode makes, becomes U+FFFD)."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {safe(key): safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [safe(item) for item in value]
    return value


def readable(spec: Spec) -> str:
    """A spec's name as a sentence: ``k01_x: an address … is rejected [ada@]``."""
    function, bracket, case = spec.name.partition("[")
    sentence = function.removeprefix("test_").replace("_", " ")
    return f"{spec.kata}: {sentence}" + (f" [{case}" if bracket else "")


def _clean(text: Any, work: Path, cap: int, *, keep_end: bool) -> str | None:
    if not text or not isinstance(text, str):
        return None
    text = unrooted(text, work)
    text = text.replace(f"{REPO_ROOT}/", "")
    if len(text) <= cap:
        return text
    if keep_end:
        return shorten(text, cap)
    return text[: cap - len(OUTPUT_CUT)] + OUTPUT_CUT


def num(value: Fraction) -> float | int:
    """Points as JSON shows them: whole numbers whole, the rest to 4 decimals."""
    return int(value) if value.denominator == 1 else round(float(value), 4)


def grade(  # noqa: PLR0913 - the submission, what it is graded on, how, and what the class shares
    submission: Submission,
    plan: Plan,
    intake: Intake,
    fingerprint: str,
    sandbox: str | None,
    *,
    as_shipped: AsShipped | None = None,
) -> dict[str, Any]:
    """Grade one submission: its summary (the per-kata results.json files are made from it)."""
    started = time.monotonic()
    deadline = started + plan.limits.submission_timeout
    with tempfile.TemporaryDirectory(prefix="kata-grade-") as tmp:
        work = Path(tmp).resolve()
        outcome = run_specs(plan, intake.modules, work, deadline, sandbox, as_shipped=as_shipped)
        tests = []
        for spec in plan.specs:
            found = outcome.verdicts.get(spec.nodeid) or verdict(NOT_RUN, "not run: no verdict came back")
            result = found.get("outcome") if found.get("outcome") in STATUS else ERROR
            worth = plan.worth(spec)
            duration = found.get("duration")
            tests.append(
                {
                    "name": readable(spec),
                    "status": STATUS[result],
                    "message": None
                    if result == PASSED
                    else _clean(found.get("message"), work, MESSAGE_CAP, keep_end=True),
                    "output": _clean(found.get("output"), work, OUTPUT_CAP, keep_end=False),
                    "task_id": spec.task,
                    "kata": spec.kata,
                    "nodeid": spec.nodeid,
                    "outcome": result,
                    "points": num(worth if result == PASSED else Fraction(0)),
                    "max_points": num(worth),
                    "duration": round(float(duration), 3) if isinstance(duration, (int, float)) else 0.0,
                }
            )
    result = summarize(submission, plan, fingerprint, tests, intake, outcome, sandbox)
    result["duration"] = round(time.monotonic() - started, 2)
    return safe(result)


def summarize(  # noqa: PLR0913, PLR0917 - what one submission's result is made of
    submission: Submission,
    plan: Plan,
    fingerprint: str,
    tests: list[dict[str, Any]],
    intake: Intake,
    outcome: Outcome,
    sandbox: str | None,
) -> dict[str, Any]:
    """The summary: every spec's verdict, points, a per-kata breakdown, notes and what to review."""
    katas = []
    notes = []
    total = Fraction(0)
    for kata in plan.katas:
        mine = [test for test in tests if test["kata"] == kata.slug]
        earned = {
            task.number: sum(
                (
                    plan.worth(spec)
                    for test, spec in zip(tests, plan.specs, strict=True)
                    if spec.kata == kata.slug and spec.task == task.number and test["outcome"] == PASSED
                ),
                Fraction(0),
            )
            for task in kata.tasks
        }
        points = sum(earned.values(), Fraction(0))
        total += points
        counts = Counter(test["outcome"] for test in mine)
        info = intake.katas[kata.slug]
        katas.append(
            {
                "slug": kata.slug,
                "title": kata.title,
                "points": num(points),
                "max_points": kata.points,
                "status": overall([test["outcome"] for test in mine]),
                "outcomes": dict(counts),
                "tasks": [
                    {
                        "task_id": task.number,
                        "title": task.title,
                        "points": num(earned[task.number]),
                        "max_points": task.points,
                        "specs": sum(1 for spec in plan.specs_of(kata.slug) if spec.task == task.number),
                    }
                    for task in kata.tasks
                ],
                **info,
            }
        )
        reason = zero_reason(katas[-1] | {"points": num(points)}, mine)
        if reason is not None:
            katas[-1]["note"] = reason
        notes.extend(_notes(kata.slug, counts, info))
    notes.extend(outcome.notes)
    outcomes = [test["outcome"] for test in tests]
    status = overall(outcomes)
    message = None
    if status == "error":
        counts = Counter(outcomes)
        first = next((test["message"] for test in tests if test["message"]), "")
        message = "no spec ran to a verdict (" + ", ".join(f"{n} {o}" for o, n in counts.items()) + f"): {first}"
    review = [f"refused: {text}" for text in outcome.refusals]
    review += [f"report did not add up: {text}" for text in outcome.problems]
    review += [f"scan: {text}" for text in intake.flags]
    review += [f"not read: {slug}/{text}" for slug, info in intake.katas.items() for text in info["refused_files"]]
    review = list(dict.fromkeys(review))  # a refusal repeats in every spec that imports the module: once is enough
    return {
        "version": 3,
        "status": status,
        "message": message,
        "tests": tests,
        "student": submission.student,
        "submission": str(submission.path),
        "points": num(total),
        "max_points": sum(kata.points for kata in plan.katas),
        "katas": katas,
        "notes": notes,
        "review": review,
        "sandbox": sandbox or "none",
        "limits": plan.limits.as_dict(),
        "fingerprint": fingerprint,
        "graded_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "duration": 0.0,
    }


def import_failure(tests: list[dict[str, Any]]) -> str | None:
    """The kata's module did not import: the error as its specs reported it (from ``CANNOT IMPORT`` on)."""
    for test in tests:
        message = test.get("message") or ""
        start = message.find("CANNOT IMPORT ")
        if start >= 0 and test["outcome"] != "passed":
            return message[start:]
    return None


def zero_reason(kata: dict[str, Any], tests: list[dict[str, Any]]) -> str | None:
    """Why a kata scored 0, in a sentence (``None`` if it did not)."""
    if kata["points"] != 0 or not tests:
        return None
    if kata.get("missing_modules"):
        return f"scored 0: the submission has no {', '.join(kata['missing_modules'])}"
    if kata.get("as_shipped"):
        return "scored 0: left as shipped (the stub)"
    failure = import_failure(tests)
    if failure is not None:
        return (
            "scored 0: "
            + failure.splitlines()[0].replace("CANNOT IMPORT", "cannot import")
            + (f" ({failure.splitlines()[1].strip()})" if len(failure.splitlines()) > 1 else "")
        )
    counts = {
        outcome: sum(test["outcome"] == outcome for test in tests)
        for outcome in dict.fromkeys(test["outcome"] for test in tests)
    }
    return "scored 0: no task had all its specs pass (" + ", ".join(f"{n} {o}" for o, n in counts.items()) + ")"


def overall(outcomes: list[str]) -> str:
    """The overall status: pass (every spec), fail (some verdict), error (no spec ran to a verdict)."""
    if outcomes and all(outcome == PASSED for outcome in outcomes):
        return "pass"
    if any(outcome in {PASSED, FAILED} for outcome in outcomes):
        return "fail"
    return "error"


def _notes(slug: str, counts: Counter[str], info: dict[str, Any]) -> list[str]:
    notes = []
    if info["spec_file"] == "modified":
        notes.append(f"{slug}: the submission's spec file is modified (ignored: graded with ours)")
    if info["missing_modules"]:
        notes.append(f"{slug}: missing {', '.join(info['missing_modules'])}")
    notes.extend(f"{slug}: {refused}" for refused in info["refused_files"])
    if info["ignored_files"]:
        notes.append(f"{slug}: ignored {', '.join(info['ignored_files'])}")
    if info.get("modified_files"):
        notes.append(f"{slug}: modified {', '.join(info['modified_files'])} (ignored: graded with ours)")
    notes.extend(f"{slug}: {counts[outcome]} {outcome}" for outcome in (TIMED_OUT, CRASHED, NOT_RUN) if counts[outcome])
    return notes


def recount(result: dict[str, Any], plan: Plan) -> bool:
    """A kept summary holds our specs, and its points are what its outcomes earn."""
    try:
        tests = result["tests"]
        if [test["nodeid"] for test in tests] != [spec.nodeid for spec in plan.specs]:
            return False
        total = sum(
            (plan.worth(spec) for test, spec in zip(tests, plan.specs, strict=True) if test["outcome"] == PASSED),
            Fraction(0),
        )
        return result["points"] == num(total) and result["max_points"] == sum(kata.points for kata in plan.katas)
    except (KeyError, TypeError):
        return False
