"""What the class did not get: an item analysis of a graded class, as CSV and as one offline HTML page.

Read from the results the grader wrote (never from anything a submission wrote), it says,
per kata, task and spec, the share of students who passed; the ideas most often failed,
grouped by the lesson's ``revisit:`` line (the idea a failing spec names), or by the first
line of the message with its numbers and quoted values masked when there is no lesson;
the distribution of points per kata; and the submissions flagged for review.

Files, in the grader's ``--out`` folder:

- ``analysis/items.csv``: one row per kata, task and spec: students, passed, share passed;
- ``analysis/failures.csv``: one row per kata and group of failures: count, specs, students;
- ``analysis/points.csv``: one row per kata and points band: how many students earned it;
- ``analysis/review.csv``: the submissions flagged for review, with why;
- ``analysis/index.html``: all of it on one page, with charts drawn as inline SVG (no
  script, no stylesheet or font from elsewhere: it works offline, from a file).

``kata grade analysis --out DIR`` writes them again from the results in DIR.
"""

from __future__ import annotations

import csv
import html
import io
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dojo.grading.outputs import cell, write_atomically
from dojo.manifest import Kata

FOLDER = "analysis"
#: How many failure groups each kata's section shows (the CSV has them all).
TOP_FAILURES = 5
#: The points distribution's bands, as fractions of the kata's maximum: 0, (0, 25) ... [75, 100), 100 %.
BANDS = ("0", "1-24%", "25-49%", "50-74%", "75-99%", "100%")

_REVISIT = re.compile(r"^\s*revisit:\s+(.+?)\s*$", re.MULTILINE)
_MASKS = (
    (re.compile(r"'[^']*'|\"[^\"]*\""), "'…'"),
    (re.compile(r"0x[0-9a-fA-F]+"), "0x…"),
    (re.compile(r"\b\d+(\.\d+)?\b"), "N"),
)


def failure_group(message: str | None, outcome: str) -> str:
    """What a failure is about: the idea its lesson says to revisit, else its first line, values masked."""
    text = message or ""
    ideas = _REVISIT.findall(text)
    if ideas:  # the assertion's own lesson comes last (a crash in a task group may quote others first)
        return ideas[-1]
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if not first:
        return f"({outcome}, no message)"
    for pattern, mask in _MASKS:
        first = pattern.sub(mask, first)
    return first[:200]


@dataclass
class Item:
    """One spec, task or kata across the class."""

    kata: str
    task: int | None
    spec: str | None
    title: str
    students: int = 0
    passed: int = 0

    @property
    def share(self) -> float | None:
        return self.passed / self.students if self.students else None


@dataclass
class Group:
    """Failures that are about the same thing."""

    kata: str
    idea: str
    count: int = 0
    specs: set[str] = field(default_factory=set)
    students: set[str] = field(default_factory=set)


@dataclass
class Analysis:
    """The class, item by item."""

    katas: tuple[Kata, ...]
    students: int
    items: list[Item]
    groups: list[Group]
    points: dict[str, Counter[str]]
    review: list[tuple[str, str]]


def _band(points: float, maximum: float) -> str:
    if maximum <= 0 or points <= 0:
        return BANDS[0]
    share = points / maximum
    if share >= 1:
        return BANDS[-1]
    return BANDS[1 + min(3, int(share * 4))]


class _Tally:
    """The class's results, counted as they are read, one student at a time."""

    def __init__(self, katas: tuple[Kata, ...]) -> None:
        self.katas = katas
        self.specs: dict[str, Item] = {}
        self.kata_items = {kata.slug: Item(kata.slug, None, None, kata.title) for kata in katas}
        self.tasks = {
            (kata.slug, task.number): Item(kata.slug, task.number, None, task.title)
            for kata in katas
            for task in kata.tasks
        }
        self.groups: dict[tuple[str, str], Group] = {}
        self.points: dict[str, Counter[str]] = {kata.slug: Counter() for kata in katas}
        self.review: list[tuple[str, str]] = []

    def add(self, result: dict[str, Any]) -> None:
        student = str(result.get("student"))
        if result.get("review"):
            self.review.append((student, "; ".join(map(str, result["review"]))))
        per_task: dict[tuple[str, int], list[bool]] = defaultdict(list)
        for test in result.get("tests", []):
            if test.get("kata") in self.kata_items:
                per_task[test["kata"], test.get("task_id")].append(self._spec(student, test))
        for key, oks in per_task.items():
            if key in self.tasks:
                self.tasks[key].students += 1
                self.tasks[key].passed += all(oks)
        for kata in result.get("katas", []):
            slug = kata.get("slug")
            if slug in self.kata_items:
                self.kata_items[slug].students += 1
                self.kata_items[slug].passed += kata.get("points") == kata.get("max_points")
                self.points[slug][_band(float(kata.get("points", 0)), float(kata.get("max_points", 0)))] += 1

    def _spec(self, student: str, test: dict[str, Any]) -> bool:
        slug, nodeid = test["kata"], test["nodeid"]
        ok = test.get("outcome") == "passed"
        item = self.specs.setdefault(nodeid, Item(slug, test.get("task_id"), nodeid, test["name"]))
        item.students += 1
        item.passed += ok
        if not ok:
            idea = failure_group(test.get("message"), str(test.get("outcome")))
            group = self.groups.setdefault((slug, idea), Group(slug, idea))
            group.count += 1
            group.specs.add(nodeid)
            group.students.add(student)
        return ok

    def items(self) -> list[Item]:
        """Kata, then each task followed by its specs, in the manifest's order."""
        ordered = []
        for kata in self.katas:
            ordered.append(self.kata_items[kata.slug])
            for task in kata.tasks:
                ordered.append(self.tasks[kata.slug, task.number])
                ordered.extend(
                    item for item in self.specs.values() if (item.kata, item.task) == (kata.slug, task.number)
                )
        return ordered


def analyse(results: list[dict[str, Any]], katas: tuple[Kata, ...]) -> Analysis:
    """The item analysis of the results of a class (each a student's summary as the grader wrote it)."""
    tally = _Tally(katas)
    for result in sorted(results, key=lambda result: str(result.get("student"))):
        tally.add(result)
    ranked = sorted(
        tally.groups.values(), key=lambda group: (group.kata, -len(group.students), -group.count, group.idea)
    )
    return Analysis(katas, len(results), tally.items(), ranked, tally.points, tally.review)


# --------------------------------------------------------------------------- CSV


def _share(item: Item) -> str:
    return "" if item.share is None else f"{item.share:.2f}"


def _csv(rows: list[list[object]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        writer.writerow([cell(value) if isinstance(value, str) else value for value in row])
    return buffer.getvalue()


def items_csv(analysis: Analysis) -> str:
    """One row per kata, task and spec: how many students, how many passed, the share."""
    rows: list[list[object]] = [["level", "kata", "task", "spec", "title", "students", "passed", "share_passed"]]
    for item in analysis.items:
        level = "spec" if item.spec else "task" if item.task is not None else "kata"
        task = "" if item.task is None else item.task
        rows.append([level, item.kata, task, item.spec or "", item.title, item.students, item.passed, _share(item)])
    return _csv(rows)


def failures_csv(analysis: Analysis) -> str:
    """One row per kata and failed idea, the most widespread first."""
    rows: list[list[object]] = [["kata", "failed_idea", "failures", "students", "specs"]]
    rows += [[group.kata, group.idea, group.count, len(group.students), len(group.specs)] for group in analysis.groups]
    return _csv(rows)


def points_csv(analysis: Analysis) -> str:
    """One row per kata and band of its points: how many students earned that much."""
    rows: list[list[object]] = [["kata", "band", "students"]]
    rows += [[kata.slug, band, analysis.points[kata.slug][band]] for kata in analysis.katas for band in BANDS]
    return _csv(rows)


def review_csv(analysis: Analysis) -> str:
    """The submissions flagged for review, and why."""
    return _csv([["student", "why"], *([student, why] for student, why in analysis.review)])


# --------------------------------------------------------------------------- the page

_STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:62rem;padding:0 1rem;
color:#1d2433;background:#fbfbfd}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{margin-top:2.4rem;border-bottom:2px solid #dde2ec;padding-bottom:.2rem}
h3{font-size:1rem;margin:1.2rem 0 .4rem}.muted{color:#5b6478}
table{border-collapse:collapse;width:100%;margin:.4rem 0 1rem}th,td{text-align:left;padding:.3rem .5rem;
border-bottom:1px solid #e6e9f0;vertical-align:top}th{font-weight:600;background:#f1f3f8}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.low{color:#a3261b;font-weight:600}.mid{color:#8a5a00}.high{color:#1d6b3a}
svg text{font:12px system-ui,sans-serif;fill:#1d2433}.summary{display:flex;gap:1rem;flex-wrap:wrap}
.card{background:#fff;border:1px solid #e1e5ee;border-radius:8px;padding:.6rem 1rem}
.card b{font-size:1.4rem;display:block}
"""


def _color(share: float | None) -> str:
    if share is None:
        return "#b8bfcc"
    if share < 0.5:
        return "#d9534f"
    if share < 0.8:
        return "#e0a030"
    return "#3c9a5f"


def _level(share: float | None) -> str:
    if share is None:
        return ""
    return "low" if share < 0.5 else "mid" if share < 0.8 else "high"


def _percent(share: float | None) -> str:
    return "n/a" if share is None else f"{round(share * 100)}%"


def _bars(rows: list[tuple[str, float | None, str]], *, label_width: int = 300) -> str:
    """A horizontal bar chart: one bar per row, its share of 100%, its label and value."""
    height, width = 22, 300
    total = height * len(rows) + 6
    parts = [
        (
            f'<svg role="img" viewBox="0 0 {label_width + width + 60} {total}" width="100%" '
            f'style="max-width:{label_width + width + 60}px" xmlns="http://www.w3.org/2000/svg">'
        )
    ]
    for index, (label, share, note) in enumerate(rows):
        y = index * height + 3
        length = 0 if share is None else round(width * share)
        parts.append(
            f'<text x="{label_width - 8}" y="{y + 15}" text-anchor="end">{html.escape(label[:48])}</text>'
            f'<rect x="{label_width}" y="{y + 2}" width="{width}" height="{height - 6}" fill="#eef0f5" rx="3"/>'
            f'<rect x="{label_width}" y="{y + 2}" width="{length}" height="{height - 6}" fill="{_color(share)}" rx="3">'
            f"<title>{html.escape(note)}</title></rect>"
            f'<text x="{label_width + width + 6}" y="{y + 15}">{html.escape(_percent(share))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _histogram(counts: Counter[str], students: int) -> str:
    """Columns: how many students earned each band of the kata's points."""
    width, height, gap = 56, 90, 10
    top = max(counts.values(), default=0) or 1
    parts = [
        (
            f'<svg role="img" viewBox="0 0 {len(BANDS) * (width + gap)} {height + 40}" width="100%" '
            f'style="max-width:{len(BANDS) * (width + gap)}px" xmlns="http://www.w3.org/2000/svg">'
            f"<title>points of {students} students, by band</title>"
        )
    ]
    for index, band in enumerate(BANDS):
        count = counts.get(band, 0)
        bar = round(height * count / top)
        x = index * (width + gap)
        parts.append(
            f'<rect x="{x}" y="{height - bar + 14}" width="{width}" height="{bar}" fill="#4a6fd1" rx="3">'
            f"<title>{count} student(s): {band}</title></rect>"
            f'<text x="{x + width / 2}" y="{height - bar + 10}" text-anchor="middle">{count}</text>'
            f'<text x="{x + width / 2}" y="{height + 32}" text-anchor="middle">{band}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _kata_section(analysis: Analysis, kata: Kata) -> list[str]:
    """One kata: its points histogram, the ideas most often missed, each spec's share passed."""
    esc = html.escape
    out = [
        f'<h2 id="{esc(kata.slug)}">{esc(kata.slug)}: {esc(kata.title)}</h2>',
        "<h3>Points earned</h3>",
        _histogram(analysis.points[kata.slug], analysis.students),
        "<h3>Ideas most often missed</h3>",
    ]
    groups = [group for group in analysis.groups if group.kata == kata.slug][:TOP_FAILURES]
    if groups:
        out.append(
            '<table><tr><th>idea to revisit</th><th class="num">students</th>'
            '<th class="num">failures</th><th class="num">specs</th></tr>'
        )
        out.extend(
            f'<tr><td>{esc(group.idea)}</td><td class="num">{len(group.students)}</td>'
            f'<td class="num">{group.count}</td><td class="num">{len(group.specs)}</td></tr>'
            for group in groups
        )
        out.append("</table>")
    else:
        out.append('<p class="muted">No failures.</p>')
    out.append('<h3>Specs</h3><table><tr><th>task</th><th>spec</th><th class="num">passed</th></tr>')
    out.extend(
        f'<tr><td class="num">{esc(str(item.task))}</td><td>{esc(item.title)}</td>'
        f'<td class="num {_level(item.share)}">{esc(_percent(item.share))} '
        f'<span class="muted">({item.passed}/{item.students})</span></td></tr>'
        for item in analysis.items
        if item.kata == kata.slug and item.spec is not None
    )
    out.append("</table>")
    return out


def page(analysis: Analysis, *, title: str = "What the class did not get") -> str:
    """The item analysis as one HTML page: no script, nothing fetched from elsewhere."""
    esc = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        (
            f'<p class="muted">{analysis.students} submission(s) graded on {len(analysis.katas)} kata(s). '
            "A task counts as passed when every one of its specs passed. Failures are grouped by the idea "
            "the failing spec told the student to revisit.</p>"
        ),
    ]
    out.append('<div class="summary">')
    out.extend(
        f'<div class="card"><span class="muted">{esc(item.kata)}</span>'
        f'<b class="{_level(item.share)}">{esc(_percent(item.share))}</b>full marks</div>'
        for item in analysis.items
        if item.spec is None and item.task is None
    )
    out.append("</div>")
    out.append("<h2>Tasks, hardest first</h2>")
    task_items = sorted(
        (item for item in analysis.items if item.spec is None and item.task is not None),
        key=lambda item: (2 if item.share is None else item.share, item.kata, item.task),
    )
    out.append(
        _bars(
            [
                (f"{item.kata[:3]} task {item.task}: {item.title}", item.share, f"{item.passed} of {item.students}")
                for item in task_items
            ]
        )
    )
    for kata in analysis.katas:
        out.extend(_kata_section(analysis, kata))
    out.append("<h2>Flagged for review</h2>")
    if analysis.review:
        out.append("<table><tr><th>student</th><th>why</th></tr>")
        out.extend(f"<tr><td>{esc(student)}</td><td>{esc(why)}</td></tr>" for student, why in analysis.review)
        out.append("</table>")
    else:
        out.append('<p class="muted">None.</p>')
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write(out: Path, results: list[dict[str, Any]], katas: tuple[Kata, ...]) -> Path:
    """Write the analysis's files under ``out/analysis``; the page's path."""
    analysis = analyse(results, katas)
    folder = out / FOLDER
    write_atomically(folder / "items.csv", items_csv(analysis))
    write_atomically(folder / "failures.csv", failures_csv(analysis))
    write_atomically(folder / "points.csv", points_csv(analysis))
    write_atomically(folder / "review.csv", review_csv(analysis))
    write_atomically(folder / "index.html", page(analysis))
    return folder / "index.html"
