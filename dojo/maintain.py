"""Maintainer chores, in one command: ``uv run python -m dojo.maintain [--check]``.

- refreshes each kata's ``shipped`` blob ids in the manifest from the stubs in ``katas/``;
- rewrites the hints block of each kata README from the manifest;
- rewrites the table of katas in the top-level README from the manifest (and each
  kata's mutation score from ``tests/mutation/SLUG.toml``, see :mod:`dojo.mutation`).

With ``--check`` it changes nothing and exits 1 if anything is out of date (CI runs it).
Only maintainers run this: in a learner's clone the stubs are the learner's own.
"""

from __future__ import annotations

import re
import sys

from dojo import manifest as _manifest
from dojo.manifest import MANIFEST_PATH, git_blob_id
from dojo.mutation import recorded_score

HINTS_BEGIN = "<!-- hints: generated from dojo/manifest.toml by `python -m dojo.maintain`; edit them there -->"
HINTS_END = "<!-- end of hints -->"
TABLE_BEGIN = "<!-- katas: generated from dojo/manifest.toml by `python -m dojo.maintain` -->"
TABLE_END = "<!-- end of katas -->"


def _score(slug: str) -> str:
    score = recorded_score(slug)
    return "not measured" if score is None else f"{score:g}%"


def render_table(manifest: _manifest.Manifest) -> str:
    """The top-level README's table of katas, from the manifest and the recorded mutation scores."""
    rows = [
        TABLE_BEGIN,
        "| # | kata | teaches | points | mutation score |",
        "| --- | --- | --- | --- | --- |",
    ]
    rows.extend(
        f"| {kata.order} | [{kata.title}](katas/{kata.slug}/README.md) | {kata.summary} | {kata.points} "
        f"| {_score(kata.slug)} |"
        for kata in manifest
    )
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


def readme_with_table(manifest: _manifest.Manifest, text: str) -> str:
    """The top-level README with its table of katas regenerated."""
    return _replace_block(text, TABLE_BEGIN, TABLE_END, render_table(manifest))


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
    top = _manifest.REPO_ROOT / "README.md"
    text = top.read_text(encoding="utf-8")
    if readme_with_table(fresh, text) != text:
        stale.append("README.md: table of katas")
        if not check:
            top.write_text(readme_with_table(fresh, text), encoding="utf-8")
    for kata in fresh:
        readme = kata.folder / "README.md"
        text = readme.read_text(encoding="utf-8")
        wanted = readme_with_hints(kata, text)
        if wanted != text:
            stale.append(f"{readme.relative_to(_manifest.REPO_ROOT)}: hints")
            if not check:
                readme.write_text(wanted, encoding="utf-8")
    for line in stale:
        print(("out of date: " if check else "updated: ") + line)
    if not stale:
        print("manifest and READMEs are up to date")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
