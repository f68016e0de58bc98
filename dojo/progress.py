"""The learner's progress: a plain-text file at the repository's root, ``.kata-progress``.

One line per kata the learner has touched, in ``key=value`` words after the slug::

    k01_fire_and_forget state=done hash=3f0c9a1e5b7d2c44 hints=1:2,3:1

- ``state``: ``done`` once its specs all passed, else ``started`` (the file's word for
  "not done": what ``kata list`` calls *started* is decided by :meth:`Progress.state`);
- ``hash``: the content hash of the kata's stub files when it went green, so that a
  later edit shows as "changed since done", and the next run checks the kata again;
- ``hints``: how many hints of each task were shown (``task:count``);
- ``red``: ``TASK@HASH``, the task of the first failing spec when the stubs had that
  hash, so ``kata hint`` and ``kata solution`` need not run the specs again.

The file is git-ignored and holds nothing tied to one machine: copy it to another clone
and the progress comes along. Lines for katas this clone does not know are kept as they
are, and ``#`` lines are comments.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from dojo import manifest as _manifest
from dojo.manifest import git_blob_id

FILE_NAME = ".kata-progress"
HEADER = (
    "# Background Task Katas: your progress (written by `kata`). Plain text: copy it to another\n"
    "# clone to carry your progress over. One line per kata: state, the hash of your stub files\n"
    "# when the kata went green, and how many hints of each task you were shown (task:count).\n"
)

DONE = "done"
STARTED = "started"


class ProgressError(ValueError):
    """The progress file cannot be read; the message names the line."""


@dataclass
class KataProgress:
    """What the file says about one kata."""

    state: str = STARTED
    hash: str = ""
    hints: dict[int, int] = field(default_factory=dict)
    red: str = ""

    def line(self, slug: str) -> str:
        words = [slug, f"state={self.state}"]
        if self.hash:
            words.append(f"hash={self.hash}")
        shown = ",".join(f"{task}:{count}" for task, count in sorted(self.hints.items()) if count)
        if shown:
            words.append(f"hints={shown}")
        if self.red and self.state != DONE:
            words.append(f"red={self.red}")
        return " ".join(words)


def stub_hash(kata: _manifest.Kata, root: Path | None = None) -> str:
    """A content hash of the kata's stub files as they are now (line endings as LF)."""
    folder = (root or _manifest.KATAS_DIR) / kata.slug
    digest = hashlib.sha256()
    for name in sorted(kata.module_files):
        path = folder / name
        content = path.read_bytes().replace(b"\r\n", b"\n") if path.is_file() else b"<missing>"
        digest.update(name.encode() + b"\0" + content + b"\0")
    return digest.hexdigest()[:16]


def stub_edited(kata: _manifest.Kata, root: Path | None = None) -> bool:
    """Does a stub file of ``kata`` differ from the stub as shipped (the manifest's blob ids)?"""
    folder = (root or _manifest.KATAS_DIR) / kata.slug
    for name in kata.module_files:
        shipped = kata.shipped.get(name)
        path = folder / name
        if shipped and (not path.is_file() or git_blob_id(path.read_bytes()) != shipped):
            return True
    return False


def _parse_line(number: int, line: str) -> tuple[str, KataProgress]:
    slug, *words = line.split()
    entry = KataProgress()
    for word in words:
        key, sep, value = word.partition("=")
        if not sep:
            raise ProgressError(f"line {number}: expected key=value, got {word!r}")
        if key == "state":
            if value not in {DONE, STARTED}:
                raise ProgressError(f"line {number}: state must be {DONE} or {STARTED}, got {value!r}")
            entry.state = value
        elif key == "hash":
            entry.hash = value
        elif key == "red":
            entry.red = value
        elif key == "hints":
            try:
                pairs = [pair.split(":") for pair in value.split(",") if pair]
                entry.hints = {int(task): int(count) for task, count in pairs}
            except ValueError:
                raise ProgressError(f"line {number}: hints must look like 1:2,3:1, got {value!r}") from None
        # an unknown key is from a newer version of the tool: ignored, not an error
    return slug, entry


@dataclass
class Progress:
    """The whole file: an entry per kata, plus lines kept as they were."""

    path: Path
    katas: dict[str, KataProgress] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None = None) -> Progress:
        path = path or _manifest.REPO_ROOT / FILE_NAME
        progress = cls(path)
        if not path.is_file():
            return progress
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ProgressError(f"cannot read it: {error}") from None
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if line and not line.startswith("#"):
                slug, entry = _parse_line(number, line)
                progress.katas[slug] = entry
        return progress

    def save(self) -> None:
        known = _manifest.load().slugs
        order = sorted(
            self.katas, key=lambda slug: (slug not in known, known.index(slug) if slug in known else 0, slug)
        )
        lines = [self.katas[slug].line(slug) for slug in order]
        self.path.write_text(HEADER + "".join(line + "\n" for line in lines), encoding="utf-8")

    def of(self, slug: str) -> KataProgress:
        """The entry for ``slug`` (created, unsaved, if there is none)."""
        return self.katas.setdefault(slug, KataProgress())

    def is_done(self, slug: str) -> bool:
        entry = self.katas.get(slug)
        return entry is not None and entry.state == DONE

    def mark_done(self, kata: _manifest.Kata) -> None:
        entry = self.of(kata.slug)
        entry.state = DONE
        entry.hash = stub_hash(kata)
        entry.red = ""

    def mark_red(self, kata: _manifest.Kata, task: int | None) -> None:
        """The specs fail, the first at ``task``, with the stubs as they are now."""
        entry = self.of(kata.slug)
        entry.state = STARTED
        entry.hash = ""
        entry.red = f"{task or 0}@{stub_hash(kata)}"

    def green_now(self, kata: _manifest.Kata) -> bool:
        """Done, and the stubs are still as they were when the kata went green."""
        entry = self.katas.get(kata.slug)
        return entry is not None and entry.state == DONE and entry.hash == stub_hash(kata)

    def known_red_task(self, kata: _manifest.Kata) -> int | None:
        """The first failing task recorded for the stubs as they are now (``None``: unknown)."""
        entry = self.katas.get(kata.slug)
        if entry is None or not entry.red:
            return None
        task, _, digest = entry.red.partition("@")
        if digest != stub_hash(kata) or not task.isdigit() or int(task) == 0:
            return None
        return int(task)

    def state(self, kata: _manifest.Kata, current: str | None) -> str:
        """What ``kata list`` says of ``kata``, the first that holds of these.

        - ``done``: its specs all passed, and its stub files are as they were then;
        - ``changed since done``: they passed, and the stub files changed since (the next
          run checks the kata again);
        - ``current``: the kata ``current`` names (the first not done);
        - ``started``: you edited its stub files, or asked for one of its hints;
        - ``not started``: neither (running its specs alone does not start a kata).
        """
        entry = self.katas.get(kata.slug)
        if entry is not None and entry.state == DONE:
            return DONE if entry.hash == stub_hash(kata) else "changed since done"
        if kata.slug == current:
            return "current"
        if (entry is not None and any(entry.hints.values())) or stub_edited(kata):
            return "started"
        return "not started"

    def current(self) -> _manifest.Kata | None:
        """The first kata not green as the stubs are now, in the manifest's order (``None``: all are).

        A kata that went green and was edited since is not done until its specs pass again.
        """
        return next((kata for kata in _manifest.load() if not self.green_now(kata)), None)

    def done_count(self) -> int:
        """How many katas are green as their stubs are now."""
        return sum(1 for kata in _manifest.load() if self.green_now(kata))

    def forget(self, slug: str) -> None:
        self.katas.pop(slug, None)
