"""Maintainer chores, in one command: ``uv run python -m dojo.maintain [--check]``.

- refreshes each kata's ``shipped`` blob ids in the manifest from the stubs in ``katas/``;
- rewrites the hints block of each kata README from the manifest;
- rewrites the table of katas in the top-level README from the manifest (and each
  kata's mutation score from ``tests/mutation/SLUG.toml``, see :mod:`dojo.mutation`), and
  the README's opening lines on what is ready and what is coming (``dojo/coming.toml``);
- writes GitHub Classroom's workflow, ``.github/workflows/classroom.yml``, from the
  manifest (``kata grade classroom`` writes the same file; see :mod:`dojo.grading.outputs`).

With ``--check`` it changes nothing and exits 1 if anything is out of date (CI runs it).
Only maintainers run this: in a learner's clone the stubs are the learner's own.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from dojo import manifest as _manifest
from dojo.manifest import MANIFEST_PATH, git_blob_id
from dojo.mutation import recorded_score

HINTS_BEGIN = "<!-- hints: generated from dojo/manifest.toml by `python -m dojo.maintain`; edit them there -->"
HINTS_END = "<!-- end of hints -->"
TABLE_BEGIN = "<!-- katas: generated from dojo/manifest.toml by `python -m dojo.maintain` -->"
TABLE_END = "<!-- end of katas -->"
TOPICS_BEGIN = "<!-- topics: generated from dojo/manifest.toml and dojo/coming.toml by `python -m dojo.maintain` -->"
TOPICS_END = "<!-- end of topics -->"
COMING_PATH = MANIFEST_PATH.with_name("coming.toml")


@dataclass(frozen=True)
class Coming:
    """A kata planned and not written yet (``dojo/coming.toml``)."""

    order: int
    title: str
    summary: str


def load_coming(path: Path = COMING_PATH) -> tuple[Coming, ...]:
    """The katas still to come, in order."""
    if not path.is_file():
        return ()
    data = _manifest.tomllib.loads(path.read_text(encoding="utf-8"))
    return tuple(
        Coming(int(entry["order"]), str(entry["title"]), str(entry["summary"])) for entry in data.get("kata", [])
    )


def coming_problems(manifest: _manifest.Manifest, coming: tuple[Coming, ...]) -> list[str]:
    """What is wrong with the list of katas to come: a number that is ready already, or out of order."""
    ready = {kata.order for kata in manifest}
    problems = [
        f"kata {entry.order} is in manifest.toml: remove it from coming.toml"
        for entry in coming
        if entry.order in ready
    ]
    orders = [entry.order for entry in coming]
    if orders != sorted(set(orders)):
        problems.append("coming.toml: list each number once, in order")
    return problems


def _lower_first(title: str) -> str:
    return title[:1].lower() + title[1:]


def _span(orders: list[int]) -> str:
    """Kata numbers as runs: ``[1, 2, 3, 6, 10, 11]`` is ``1-3, 6, 10-11``, so no gap is claimed as ready."""
    runs: list[list[int]] = []
    for order in orders:
        if runs and order == runs[-1][-1] + 1:
            runs[-1].append(order)
        else:
            runs.append([order])
    return ", ".join(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]) for run in runs)


def render_topics(manifest: _manifest.Manifest, coming: tuple[Coming, ...]) -> str:
    """The README's opening lines: the katas ready now, and those only planned, said as such."""
    ready = list(manifest)
    lines = [TOPICS_BEGIN]
    if ready:
        titles = ", ".join(_lower_first(kata.title) for kata in ready)
        lines.append(f"- **Ready now** (katas {_span([kata.order for kata in ready])}): {titles}.")
    if coming:
        titles = ", ".join(_lower_first(entry.title) for entry in coming)
        lines.append(f"- **Coming**, not written yet (katas {_span([entry.order for entry in coming])}): {titles}.")
    lines.append(TOPICS_END)
    return "\n".join(lines)


def readme_with_topics(manifest: _manifest.Manifest, coming: tuple[Coming, ...], text: str) -> str:
    """The top-level README with its lines on what is ready and what is coming regenerated."""
    return _replace_block(text, TOPICS_BEGIN, TOPICS_END, render_topics(manifest, coming))


def _score(kata: _manifest.Kata) -> str:
    if kata.module_is_tests:
        return "its tests must catch its wrong versions"  # no operator pass: see dojo.mutation.TESTS_KATA
    score = recorded_score(kata.slug)
    return "not measured" if score is None else f"{score:g}%"


def render_table(manifest: _manifest.Manifest, coming: tuple[Coming, ...] = ()) -> str:
    """The top-level README's table of katas, with the recorded mutation scores; then the katas to come."""
    rows = [
        TABLE_BEGIN,
        "| # | kata | teaches | points | mutation score |",
        "| --- | --- | --- | --- | --- |",
    ]
    rows.extend(
        f"| {kata.order} | [{kata.title}](katas/{kata.slug}/README.md) | {kata.summary} | {kata.points} "
        f"| {_score(kata)} |"
        for kata in manifest
    )
    if coming:
        rows.extend(["", "**Coming**, not written yet (nothing below can be run today):", ""])
        rows.extend(f"- kata {entry.order}, *{entry.title}* — {entry.summary}" for entry in coming)
    rows.append(TABLE_END)
    return "\n".join(rows)


def _replace_block(text: str, begin: str, end: str, block: str) -> str:
    if begin in text and end in text:
        return text[: text.index(begin)] + block + text[text.index(end) + len(end) :]
    return text.rstrip("\n") + "\n\n" + block + "\n"


def render_hints(kata: _manifest.Kata) -> str:
    """The README's hints block for ``kata``, from the manifest."""
    parts = [HINTS_BEGIN, "## Hints", ""]
    for task in kata.tasks:
        parts.append(f"<details><summary>Task {task.number}: {task.title}</summary>")
        parts.append("")
        parts.extend(f"{index}. {hint}" for index, hint in enumerate(task.hints, start=1))
        parts.extend(["", "</details>", ""])
    parts.append(HINTS_END)
    return "\n".join(parts)


def readme_with_hints(kata: _manifest.Kata, text: str) -> str:
    """``text`` (a README) with its hints block replaced, or appended if it has none."""
    return _replace_block(text, HINTS_BEGIN, HINTS_END, render_hints(kata))


def readme_with_table(manifest: _manifest.Manifest, text: str, coming: tuple[Coming, ...] | None = None) -> str:
    """The top-level README with its table of katas (and the list of those to come) regenerated."""
    coming = load_coming() if coming is None else coming
    return _replace_block(text, TABLE_BEGIN, TABLE_END, render_table(manifest, coming))


def manifest_with_shipped(text: str) -> str:
    """The manifest's text with each kata's ``shipped`` ids taken from the stubs on disk."""
    manifest = _manifest.parse(_manifest.tomllib.loads(text))
    for kata in manifest:
        ids = ", ".join(f'"{name}" = "{git_blob_id((kata.folder / name).read_bytes())}"' for name in kata.module_files)
        pattern = re.compile(rf'(slug = "{re.escape(kata.slug)}"\n(?:(?!\[\[kata\]\]).*\n)*?)shipped = \{{.*\}}')
        text, count = pattern.subn(lambda m, ids=ids: f"{m.group(1)}shipped = {{ {ids} }}", text, count=1)
        if count != 1:
            raise SystemExit(f"{MANIFEST_PATH}: kata {kata.slug} needs a `shipped = {{ ... }}` line")
    return text


#: Each graded step's time limit in the shipped workflow (one task's specs take seconds).
CLASSROOM_MINUTES = 2


def _refresh_workflow(fresh: _manifest.Manifest, *, check: bool) -> list[str]:
    """GitHub Classroom's workflow, as the manifest makes it (written unless ``check``); what was stale."""
    from dojo.grading.outputs import classroom_workflow

    workflow = _manifest.REPO_ROOT / ".github" / "workflows" / "classroom.yml"
    wanted = classroom_workflow(tuple(fresh), minutes=CLASSROOM_MINUTES)
    if workflow.is_file() and workflow.read_text(encoding="utf-8") == wanted:
        return []
    if not check:
        workflow.parent.mkdir(parents=True, exist_ok=True)
        workflow.write_text(wanted, encoding="utf-8")
    return [f"{workflow.relative_to(_manifest.REPO_ROOT)}: GitHub Classroom's workflow"]


def main(argv: list[str]) -> int:
    """Refresh (or, with ``--check``, only verify) the manifest's ids and the READMEs' hints."""
    check = "--check" in argv
    stale: list[str] = []
    old = MANIFEST_PATH.read_text(encoding="utf-8")
    new = manifest_with_shipped(old)
    if new != old:
        stale.append(f"{MANIFEST_PATH.name}: shipped blob ids")
        if not check:
            MANIFEST_PATH.write_text(new, encoding="utf-8")
    fresh = _manifest.parse(_manifest.tomllib.loads(new))
    coming = load_coming()
    problems = coming_problems(fresh, coming)
    top = _manifest.REPO_ROOT / "README.md"
    rewrites = [(top, lambda text: readme_with_topics(fresh, coming, readme_with_table(fresh, text, coming)))]
    rewrites.extend(
        (kata.folder / "README.md", lambda text, kata=kata: readme_with_hints(kata, text)) for kata in fresh
    )
    for readme, rewrite in rewrites:
        text = readme.read_text(encoding="utf-8")
        wanted = rewrite(text)
        if wanted != text:
            what = "what is ready and what is coming, table of katas" if readme == top else "hints"
            stale.append(f"{readme.relative_to(_manifest.REPO_ROOT)}: {what}")
            if not check:
                readme.write_text(wanted, encoding="utf-8")
    stale.extend(_refresh_workflow(fresh, check=check))
    for line in stale:
        print(("out of date: " if check else "updated: ") + line)
    for line in problems:
        print(f"wrong: {line}")
    if not stale and not problems:
        print("manifest and READMEs are up to date")
    return 1 if problems or (check and stale) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
