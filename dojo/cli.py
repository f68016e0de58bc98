"""``kata``: the learner's command line.

    kata                        where you are: progress, the current kata's specs, the first failure
    kata KATA                   the same for the kata named
    kata list                   every kata and its state
    kata watch [KATA]           rerun a kata's specs on every save; keys h hint, l list, r rerun, q quit
    kata hint [KATA] [--task N] the next hint for task N, or for the task you are on
    kata reset KATA             put a kata's stub back as shipped (asks first); --all for every kata
    kata solution KATA          the reference solution and how your code differs, once your kata is green
    kata serve KATA             run the kata's app (your code) on http://127.0.0.1:8000, docs included
    kata grade ...              grading, for instructors (dojo.grade)

Under uv each is ``uv run kata ...``; the messages say the commands as they were
installed (:func:`command`). Everything comes from the manifest (:mod:`dojo.manifest`);
progress is kept in the plain-text ``.kata-progress`` (:mod:`dojo.progress`).
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import ipaddress
import os
import queue
import re
import signal
import socket
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TextIO

from dojo import manifest as _manifest
from dojo.progress import FILE_NAME, Progress, ProgressError

if TYPE_CHECKING:
    from dojo.runner import ForkServer, Spawner, SpecResult, Verdict

PROG = "kata"


def installed_with_uv() -> bool:
    """Were we started by ``uv run``? uv sets ``UV`` (its own path) for what it runs."""
    return bool(os.environ.get("UV"))


def command(*words: str) -> str:
    """How to type ``kata WORDS`` here: ``uv run kata ...`` under uv, plain ``kata ...`` in a venv (pip)."""
    return " ".join(("uv run", PROG, *words) if installed_with_uv() else (PROG, *words))


def pytest_command(*words: str) -> str:
    """How to type ``pytest WORDS`` here (see :func:`command`)."""
    return " ".join(("uv run", "pytest", *words) if installed_with_uv() else ("pytest", *words))


class CliError(Exception):
    """A problem the learner can act on: printed as one clear message, then a non-zero exit."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- output


@dataclass
class Output:
    """Where the CLI writes, and whether it may use colour (never with NO_COLOR or a pipe)."""

    out: TextIO
    err: TextIO
    color: bool

    @classmethod
    def from_env(cls, out: TextIO | None = None, err: TextIO | None = None) -> Output:
        out = out or sys.stdout
        err = err or sys.stderr
        if os.environ.get("NO_COLOR"):
            color = False
        elif os.environ.get("FORCE_COLOR"):
            color = True
        else:
            color = out.isatty() and os.environ.get("TERM") != "dumb"
        return cls(out, err, color)

    @property
    def interactive(self) -> bool:
        return self.out.isatty()

    _CODES: ClassVar[dict[str, str]] = {
        "bold": "1",
        "dim": "2",
        "red": "31",
        "green": "32",
        "yellow": "33",
        "blue": "34",
        "cyan": "36",
    }

    def style(self, text: str, *styles: str) -> str:
        if not self.color or not styles:
            return text
        codes = ";".join(self._CODES[name] for name in styles)
        return f"\033[{codes}m{text}\033[0m"

    def line(self, text: str = "") -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def error(self, text: str) -> None:
        self.err.write(self.style(f"{PROG}: ", "red", "bold") + text + "\n")
        self.err.flush()


def _bar(done: int, total: int, width: int = 24) -> str:
    filled = round(width * done / total) if total else width
    return "█" * filled + "░" * (width - filled)


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(_manifest.REPO_ROOT))
    except ValueError:
        return str(path)


def _spec_title(name: str) -> str:
    """``test_a_thing_happens[param]`` -> ``a thing happens [param]``."""
    base, bracket, param = name.partition("[")
    words = base.removeprefix("test_").replace("_", " ")
    return f"{words} [{param}" if bracket else words


def _kata_label(kata: _manifest.Kata) -> str:
    return f"k{kata.order:02d} {kata.title}"


_IMPORT_ERROR_AT = re.compile(r"^\s*file: (?P<path>.+?):(?P<line>\d+)\s*$", re.MULTILINE)


def _failure_location(kata: _manifest.Kata, verdict: Verdict) -> str:
    """Where to edit: the line a module that does not import fails at, else the failing task's TODO."""
    failure = verdict.first_failure
    if failure is None:
        return _todo_location(kata, None)
    if failure.message.startswith("CANNOT IMPORT") and (found := _IMPORT_ERROR_AT.search(failure.message)):
        return f"{_relative(Path(found['path']))}:{found['line']}"
    return _todo_location(kata, failure.task)


def _todo_location(kata: _manifest.Kata, task: int | None) -> str:
    """``katas/kNN/module.py:LINE`` of the task's TODO in the learner's stub, or the first stub file."""
    if task is not None:
        tag = f"TODO(k{kata.order:02d}) task {task}"
        for name in kata.module_files:
            path = kata.folder / name
            if path.is_file():
                for number, text in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
                    if tag in text:
                        return f"{_relative(path)}:{number}"
    return _relative(kata.folder / kata.module_files[0])


# --------------------------------------------------------------------------- rendering a verdict


def _message_lines(spec: SpecResult, limit: int = 40) -> list[str]:
    text = textwrap.dedent(spec.message.strip("\n")).rstrip()
    lines = text.splitlines() or ["(no message)"]
    if len(lines) > limit:
        lines = [*lines[:limit], f"... ({len(lines) - limit} more lines)"]
    return lines


def render_verdict(ui: Output, kata: _manifest.Kata, verdict: Verdict) -> None:
    """The kata's specs, task by task, and the first failure in full."""
    total = len(verdict.specs)
    head = f"{_kata_label(kata)}   {verdict.passed}/{total} specs pass"
    ui.line(ui.style(head, "bold"))
    if verdict.problem:
        ui.line(ui.style("  The specs could not run:", "red", "bold"))
        for text in verdict.problem.splitlines():
            ui.line(f"    {text}")
        return
    counts = verdict.by_task()
    width = max((len(task.title) for task in kata.tasks), default=0)
    for task in kata.tasks:
        passed, count = counts.get(task.number, (0, 0))
        ok = count > 0 and passed == count
        mark = ui.style("✓", "green") if ok else ui.style("✗", "red")
        ui.line(f"  {mark} task {task.number}  {task.title:<{width}}  {passed}/{count}")
    failure = verdict.first_failure
    if failure is None:
        return
    task = f"task {failure.task}" if failure.task is not None else "no task"
    title = ""
    if failure.task is not None:
        title = f" ({kata.task(failure.task).title})"
    ui.line()
    if failure.message.startswith("CANNOT IMPORT"):
        ui.line(ui.style("Your code does not import, so every spec fails:", "red", "bold"))
        reset = command("reset", f"k{kata.order:02d}")
        ui.line(f"  (`{reset}` puts the stub back as shipped, if you want to start over.)")
    else:
        ui.line(ui.style(f"First failure, {task}{title}:", "red", "bold"))
        ui.line("  " + ui.style(_spec_title(failure.name), "bold"))
    for text in _message_lines(failure):
        styled = text
        for label, color in (("expected:", "green"), ("got:", "red"), ("revisit:", "yellow")):
            if text.lstrip().startswith(label):
                styled = text.replace(label, ui.style(label, color, "bold"), 1)
        ui.line(f"    {styled}")


def _next_steps(ui: Output, kata: _manifest.Kata, verdict: Verdict, progress: Progress, named: bool = False) -> None:
    """What to do next; ``named``: the learner named this kata, so the commands name it too."""
    name = [f"k{kata.order:02d}"] if named else []
    failure = verdict.first_failure
    task = failure.task if failure and not failure.message.startswith("CANNOT IMPORT") else None
    ui.line()
    ui.line(
        ui.style("Next:", "cyan", "bold")
        + f" edit {_failure_location(kata, verdict)}"
        + (f" (task {task})" if task else "")
    )
    width = len(command("watch", *name)) + 2
    ui.line(f"  {command(*name):<{width}} run the specs again")
    ui.line(f"  {command('watch', *name):<{width}} rerun them each time you save")
    if task is not None:
        shown = progress.katas[kata.slug].hints.get(task, 0) if kata.slug in progress.katas else 0
        hints = len(kata.task(task).hints)
        ui.line(f"  {command('hint', *name):<{width}} a hint for task {task} ({shown} of {hints} shown)")


def _progress_line(ui: Output, progress: Progress) -> None:
    katas = _manifest.load()
    done = progress.done_count()
    ui.line(f"{ui.style('Background Task Katas', 'bold')}  {_bar(done, len(katas))}  {done}/{len(katas)} katas done")


def _all_done(ui: Output) -> None:
    ui.line(ui.style(f"Every kata is green. Well done! (`{command('list')}` shows them all.)", "green", "bold"))


def _green(ui: Output, kata: _manifest.Kata, verdict: Verdict) -> None:
    ui.line(ui.style(f"✓ {_kata_label(kata)} is green: all {len(verdict.specs)} specs pass.", "green", "bold"))
    ui.line(f"  Compare with the reference solution: {command('solution', f'k{kata.order:02d}')}")


# --------------------------------------------------------------------------- commands


def _load_progress() -> Progress:
    try:
        return Progress.load()
    except ProgressError as error:
        path = _manifest.REPO_ROOT / FILE_NAME
        raise CliError(
            f"{_relative(path)} is damaged: {error}. Fix that line, or delete the file to start over."
        ) from None


def _find(name: str) -> _manifest.Kata:
    try:
        return _manifest.load().get(name)
    except KeyError as error:
        raise CliError(str(error.args[0]) if error.args else str(error)) from None


def _check_runnable(kata: _manifest.Kata) -> None:
    if not kata.spec_path.is_file():
        spec = _relative(kata.spec_path)
        raise CliError(f"{spec} is missing: put it back with `git checkout -- {spec}`")


def _run_and_show(ui: Output, progress: Progress, kata: _manifest.Kata) -> Verdict:
    """Run ``kata``'s specs afresh, show the verdict, and note it in the progress file."""
    from dojo.runner import run_fresh

    _check_runnable(kata)
    ui.line()
    if progress.is_done(kata.slug) and not progress.green_now(kata):
        ui.line(ui.style(f"{_kata_label(kata)} changed since it went green: its specs run again.", "yellow"))
    verdict = run_fresh(kata.slug)
    render_verdict(ui, kata, verdict)
    _record(progress, kata, verdict)
    return verdict


def cmd_status(args: argparse.Namespace, ui: Output) -> int:
    """The bare command: progress, the current (or named) kata's verdict, what to do next."""
    progress = _load_progress()
    _progress_line(ui, progress)
    if getattr(args, "kata", None):
        kata = _find(args.kata)
        verdict = _run_and_show(ui, progress, kata)
        if verdict.problem:
            return 2
        if not verdict.green:
            _next_steps(ui, kata, verdict, progress, named=True)
            return 1
        _green(ui, kata, verdict)
        _progress_line(ui, progress)
        return 0
    while (kata := progress.current()) is not None:
        verdict = _run_and_show(ui, progress, kata)
        if verdict.problem:
            return 2
        if not verdict.green:
            _next_steps(ui, kata, verdict, progress)
            return 1
        _green(ui, kata, verdict)
        nxt = progress.current()
        if nxt is not None:
            ui.line(ui.style(f"Moving on to {_kata_label(nxt)}: read {_relative(nxt.folder / 'README.md')}", "cyan"))
        _progress_line(ui, progress)
    _all_done(ui)
    return 0


def cmd_list(_args: argparse.Namespace, ui: Output) -> int:
    """Every kata with its state, from the progress file."""
    progress = _load_progress()
    current = progress.current()
    _progress_line(ui, progress)
    ui.line()
    colors = {"done": "green", "current": "yellow", "changed since done": "red", "started": "cyan"}
    katas = list(_manifest.load())
    width = max(len(kata.slug) for kata in katas)
    for kata in katas:
        state = progress.state(kata, current.slug if current else None)
        shown = ui.style(f"{state:<18}", colors.get(state, "dim"))
        ui.line(f"  {kata.order:>2}  {kata.slug:<{width}}  {shown}  {kata.title}")
    if current is not None:
        ui.line()
        ui.line(f"Current: {_kata_label(current)}. `{command()}` runs its specs.")
    return 0


def _record(progress: Progress, kata: _manifest.Kata, verdict: Verdict) -> None:
    """Note a verdict in the progress file: done (green), or the task of the first failure."""
    if verdict.problem:
        return
    if verdict.green:
        progress.mark_done(kata)
    else:
        failure = verdict.first_failure
        progress.mark_red(kata, failure.task if failure else None)
    progress.save()


def _first_failing_task(progress: Progress, kata: _manifest.Kata) -> tuple[int | None, Verdict | None]:
    """The task of the first failing spec (``None``: green), from the progress file or a run."""
    if progress.green_now(kata):
        return None, None
    known = progress.known_red_task(kata)
    if known is not None:
        return known, None
    from dojo.runner import run_fresh

    _check_runnable(kata)
    verdict = run_fresh(kata.slug)
    if verdict.problem:
        raise CliError(f"the specs of {kata.slug} could not run:\n{verdict.problem}")
    _record(progress, kata, verdict)
    failure = verdict.first_failure
    return (failure.task if failure else None), verdict


def cmd_hint(args: argparse.Namespace, ui: Output) -> int:
    """The next hint of a task: ``--task N``, or the task of the first failing spec."""
    progress = _load_progress()
    kata = _find(args.kata) if args.kata else progress.current()
    if kata is None and args.task is not None:
        raise CliError(
            f"every kata is green: name the kata, as in `{command('hint', 'k01', '--task', str(args.task))}`"
        )
    if kata is None:
        _all_done(ui)
        return 0
    if args.task is not None:
        if args.task not in {task.number for task in kata.tasks}:
            numbers = ", ".join(str(task.number) for task in kata.tasks)
            raise CliError(f"{kata.slug} has no task {args.task}; its tasks are {numbers}")
        again = command("hint", f"k{kata.order:02d}", "--task", str(args.task))
        show_hint(ui, progress, kata, args.task, f"`{again}` again")
        return 0
    number, _ = _first_failing_task(progress, kata)
    if number is None:
        ui.line(
            f"{_kata_label(kata)} is green: no hint needed. `{command('solution', f'k{kata.order:02d}')}` shows ours."
        )
        return 0
    show_hint(ui, progress, kata, number, f"`{command('hint', *([args.kata] if args.kata else []))}` again")
    return 0


def show_hint(ui: Output, progress: Progress, kata: _manifest.Kata, number: int, again: str) -> None:
    """Reveal the next hint of task ``number`` (all shown so far, the newest bright); save the count."""
    task = kata.task(number)
    entry = progress.of(kata.slug)
    shown = entry.hints.get(number, 0)
    more = shown < len(task.hints)
    if more:
        shown += 1
        entry.hints[number] = shown
    progress.save()
    ui.line(ui.style(f"{_kata_label(kata)}, task {number}: {task.title}", "bold"))
    for index, hint in enumerate(task.hints[:shown], start=1):
        label = f"hint {index} of {len(task.hints)}"
        newest = index == shown and more
        ui.line(ui.style(f"  {label}:", "yellow", "bold") if newest else ui.style(f"  {label}:", "dim"))
        for text in textwrap.wrap(hint, 88):
            ui.line(f"    {text}" if newest else ui.style(f"    {text}", "dim"))
    if not more:
        readme = _relative(kata.folder / "README.md")
        ui.line(f"That was every hint for task {number}; they are also at the end of {readme}.")
    elif shown < len(task.hints):
        left = len(task.hints) - shown
        ui.line(f"({left} more hint{'s' if left != 1 else ''} for this task: {again})")


def _confirm(ui: Output, question: str) -> bool:
    ui.out.write(question + " [y/N] ")
    ui.out.flush()
    answer = sys.stdin.readline()
    if not answer:
        ui.line()
    return answer.strip().lower() in {"y", "yes"}


def cmd_reset(args: argparse.Namespace, ui: Output) -> int:
    """Put stubs back as shipped, from git's objects (no network), after asking."""
    from dojo.impl import ImplError, shipped_source

    if bool(args.kata) == bool(args.all):
        raise CliError(f"say which kata to reset (`{command('reset', 'k01')}`), or `{command('reset', '--all')}`")
    katas = list(_manifest.load()) if args.all else [_find(args.kata)]
    files = [_relative(kata.folder / name) for kata in katas for name in kata.module_files]
    what = "every kata's stub" if args.all else ", ".join(files)
    if not args.yes and not _confirm(ui, f"Put {what} back as shipped? Your changes there will be lost."):
        ui.line("Nothing reset.")
        return 1
    try:
        restored = {(kata.slug, name): shipped_source(kata, name) for kata in katas for name in kata.module_files}
    except ImplError as error:
        raise CliError(f"cannot recover the stub as shipped: {error}") from None
    progress = _load_progress()
    for (slug, name), content in restored.items():
        path = _manifest.KATAS_DIR / slug / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        ui.line(f"{ui.style('reset', 'green')} {_relative(path)}")
    for kata in katas:
        progress.forget(kata.slug)
    progress.save()
    ui.line(
        "Back to the start: the progress and hints of "
        + ("every kata" if args.all else katas[0].slug)
        + " are cleared."
    )
    return 0


def cmd_solution(args: argparse.Namespace, ui: Output) -> int:
    """The reference solution and a diff from the learner's code: only once the kata is green."""
    kata = _find(args.kata)
    progress = _load_progress()
    task, _ = _first_failing_task(progress, kata)
    if task is not None:
        raise CliError(
            f"{_kata_label(kata)} is not green yet (task {task} fails): the solution opens once it is. "
            f"`{command(f'k{kata.order:02d}')}` shows the failure; `{command('hint', f'k{kata.order:02d}')}` helps.",
            code=1,
        )
    for name in kata.module_files:
        solution = kata.solution_folder / name
        mine = kata.folder / name
        ui.line(ui.style(f"── {_relative(solution)} (the reference solution)", "bold"))
        text = solution.read_text(encoding="utf-8")
        for line in text.splitlines():
            ui.line(f"  {line}")
        ui.line()
        ours = mine.read_text(encoding="utf-8") if mine.is_file() else ""
        diff = code_diff(ours, text, _relative(mine), _relative(solution))
        if not diff:
            ui.line(
                ui.style(f"Your {name} is the solution's code, line for line (comments and docstrings aside).", "green")
            )
            continue
        ui.line(
            ui.style(
                f"── from your {name} to the solution, code only (comments, docstrings, blank lines left out):", "bold"
            )
        )
        for line in diff:
            color = (
                {"+": "green", "-": "red", "@": "cyan"}.get(line[:1], "")
                if line[:4] not in {"--- ", "+++ "}
                else "bold"
            )
            ui.line(ui.style(line, color) if color else line)
    return 0


def code_lines(source: str) -> list[tuple[int, str]]:
    """``(line number, text)`` of each line of code in ``source``: no comments, docstrings or blank lines.

    Source that does not parse is kept whole: there is nothing to tell code from prose by.
    """
    import ast
    import io
    import tokenize

    lines = source.splitlines()
    try:
        tree = ast.parse(source)
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (SyntaxError, tokenize.TokenError, ValueError):
        return [(number, line) for number, line in enumerate(lines, 1) if line.strip()]
    prose: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                prose.update(range(first.lineno, (first.end_lineno or first.lineno) + 1))
    comment_at = {token.start[0]: token.start[1] for token in tokens if token.type == tokenize.COMMENT}
    kept = []
    for number, line in enumerate(lines, 1):
        if number in prose:
            continue
        code = line[: comment_at[number]] if number in comment_at else line
        if code.strip():
            kept.append((number, code.rstrip()))
    return kept


def code_diff(mine: str, theirs: str, mine_name: str, theirs_name: str) -> list[str]:
    """A unified diff of the code of two sources (see :func:`code_lines`); hunks name the real line numbers."""
    ours, reference = code_lines(mine), code_lines(theirs)
    matcher = difflib.SequenceMatcher(None, [text for _, text in ours], [text for _, text in reference], autojunk=False)
    diff: list[str] = []
    for group in matcher.get_grouped_opcodes(2):
        if not diff:
            diff = [f"--- {mine_name} (yours)", f"+++ {theirs_name}"]
        first, last = group[0], group[-1]
        where = []
        if first[1] < last[2]:
            where.append(f"your line {ours[first[1]][0]}")
        if first[3] < last[4]:
            where.append(f"solution line {reference[first[3]][0]}")
        diff.append(f"@@ {', '.join(where)} @@")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                diff.extend(f" {text}" for _, text in ours[i1:i2])
                continue
            diff.extend(f"-{text}" for _, text in ours[i1:i2])
            diff.extend(f"+{text}" for _, text in reference[j1:j2])
    return diff


def cmd_serve(args: argparse.Namespace, ui: Output) -> int:
    """Serve the kata's app, built from the learner's code and demo collaborators, with uvicorn."""
    from dojo import demo
    from dojo.impl import import_kata_module
    from dojo.timeline import describe_error

    kata = _find(args.kata)
    if kata.serve is None:
        raise CliError(
            f'{kata.slug} has no app to serve: its entry in dojo/manifest.toml has no `serve = "module:factory"`.'
        )
    module_name, _, factory_name = kata.serve.partition(":")
    path = _relative(kata.folder / f"{module_name}.py")
    try:
        module = import_kata_module(_manifest.KATAS_DIR, kata.slug, module_name)
    except Exception as error:  # noqa: BLE001 - the learner's module may raise anything while importing
        raise CliError(f"{path} does not import: {describe_error(error)}", code=1) from None
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise CliError(f"{path} has no function {factory_name}(): the stub as shipped defines it", code=1)
    try:
        app = demo.build_app(factory)
    except demo.DemoError as error:
        raise CliError(str(error)) from None
    except Exception as error:  # noqa: BLE001 - the learner's factory may raise anything
        raise CliError(f"{factory_name}() in {path} raised {describe_error(error)}", code=1) from None

    sock = _listen(args.host, args.port)
    host = sock.getsockname()[0]
    address = ipaddress.ip_address(host)
    if address.is_unspecified:  # listening everywhere: this machine calls it on loopback
        host = "127.0.0.1" if address.version == 4 else "::1"
    url = f"http://{f'[{host}]' if ':' in host else host}:{sock.getsockname()[1]}"
    ui.line(ui.style(f"Serving {_kata_label(kata)} (your code in {path}) at {url}", "bold"))
    docs = getattr(app, "docs_url", None)
    if docs:
        ui.line(f"  interactive docs: {ui.style(url + docs, 'cyan', 'bold')} (each call shows how long it took)")
    if not address.is_loopback:
        ui.line(
            ui.style(f"  {args.host} may be reachable from other machines: this is a demo, not a server.", "yellow")
        )
    ui.line("  Ctrl-C stops it. The demo collaborators (dojo/demo.py) print what they do here.")
    return _run_uvicorn(demo.ServedApp(app, on_error=_log_app_error), sock, ui)


def _listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host:port`` (IPv4 or IPv6, as the host says), or a clear error."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        raise CliError(f"cannot listen on {host}: {error.strerror}; the default is --host 127.0.0.1") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)  # from here on a request waits in the backlog until uvicorn accepts it
    except OSError as error:
        sock.close()
        raise CliError(f"cannot listen on {host}:{port} ({error.strerror}); try --port {port + 1}") from None
    return sock


def _log_app_error(error: BaseException) -> None:
    """An exception in the learner's app, in the terminal: the line the browser gets too, then the traceback."""
    import logging

    from dojo.timeline import describe_error

    logging.getLogger("uvicorn.error").error("%s", describe_error(error), exc_info=error)


def _run_uvicorn(app: Any, sock: Any, ui: Output) -> int:
    import uvicorn

    config = uvicorn.Config(app, log_level="info", use_colors=ui.color, timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn shuts down gracefully, then passes Ctrl-C on
        pass
    finally:
        sock.close()
    ui.line("Server stopped.")
    return 0


# --------------------------------------------------------------------------- watch


def _watch_files(folder: Path, events: queue.Queue[tuple[str, str]], stop: threading.Event) -> None:
    """Put ("saved", path) on ``events`` for each changed .py file under ``folder``."""
    try:
        import watchfiles

        for changes in watchfiles.watch(folder, stop_event=stop, debounce=200, step=20, raise_interrupt=False):
            for _, path in changes:
                if path.endswith(".py"):
                    events.put(("saved", path))
    except Exception as error:  # noqa: BLE001 - any failure to watch falls back to Enter
        events.put(("no-events", f"{type(error).__name__}: {error}"))


KEYS = "h hint · l list · r or Enter rerun · q quit"


def _read_keys(events: queue.Queue[tuple[str, str]], single: bool) -> None:
    """Put ("key", KEY) on ``events`` for each key pressed (``single``) or each line typed.

    In a terminal put in cbreak mode each key arrives alone, as rustlings reads them.
    Where stdin is not a terminal (a pipe, an editor's console), a line is a key: its
    first letter, or Enter alone for a rerun.
    """
    if sys.stdin is None or sys.stdin.closed:
        return
    with contextlib.suppress(OSError, ValueError):
        if single:
            fd = sys.stdin.fileno()
            while key := os.read(fd, 1).decode(errors="replace"):
                events.put(("key", key))
        else:
            for line in sys.stdin:
                events.put(("key", line.strip()[:1] or "\n"))


@contextlib.contextmanager
def _single_keys() -> Iterator[bool]:
    """Cbreak mode (each key read as pressed, Ctrl-C still a signal) while stdin is a terminal.

    Yields whether single keys are on; the terminal is put back as it was on the way out.
    """
    try:
        import termios
        import tty
    except ImportError:  # Windows: lines it is
        yield False
        return
    if sys.stdin is None or not sys.stdin.isatty():
        yield False
        return
    fd = sys.stdin.fileno()
    try:
        saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
    except termios.error:
        yield False
        return
    try:
        yield True
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class QuitWatching(Exception):  # noqa: N818 - a request, not an error
    """The learner pressed q."""


class Watcher:
    """``kata watch``: rerun a kata on each save (or key), move on when green."""

    def __init__(self, ui: Output, runner: ForkServer | Spawner, single_keys: bool = False) -> None:
        self.ui = ui
        self.runner = runner
        self.single_keys = single_keys
        self.events: queue.Queue[tuple[str, str]] = queue.Queue()
        self.stop = threading.Event()
        self.task: int | None = None  # the task of the last verdict's first failure

    def run_and_show(self, kata: _manifest.Kata, reason: str) -> Verdict:
        started = time.perf_counter()
        verdict = self.runner.run(kata.slug)
        elapsed = time.perf_counter() - started
        if self.ui.interactive:
            self.ui.out.write("\033[2J\033[H")  # a fresh screen for each verdict, like rustlings
        stamp = time.strftime("%H:%M:%S")
        self.ui.line(self.ui.style(f"── {stamp} {reason}: verdict in {elapsed:.2f} s", "dim"))
        _progress_line(self.ui, _load_progress())
        render_verdict(self.ui, kata, verdict)
        return verdict

    def loop(self, kata: _manifest.Kata | None = None) -> int:
        kata = kata or _load_progress().current()
        if kata is None:
            _all_done(self.ui)
            return 0
        _check_runnable(kata)
        threading.Thread(target=_watch_files, args=(_manifest.KATAS_DIR, self.events, self.stop), daemon=True).start()
        threading.Thread(target=_read_keys, args=(self.events, self.single_keys), daemon=True).start()
        reason = "first run"
        while True:
            verdict = self.run_and_show(kata, reason)
            progress = _load_progress()  # afresh: `kata hint` in another terminal may have written it
            _record(progress, kata, verdict)
            if verdict.green:
                _green(self.ui, kata, verdict)
                following = progress.current()
                if following is None:
                    _all_done(self.ui)
                    return 0
                kata = following
                _check_runnable(kata)
                self.ui.line(self.ui.style(f"Moving on to {_kata_label(kata)}.", "cyan", "bold"))
                reason = "next kata"
                continue
            self.task = verdict.first_failure.task if verdict.first_failure else None
            self.ui.line()
            self.ui.line(
                self.ui.style(f"Watching {_relative(kata.folder)}: ", "cyan")
                + f"edit {_failure_location(kata, verdict)} and save."
            )
            self.say_keys()
            try:
                reason = self.wait(kata)
            except QuitWatching:
                self.ui.line("Stopped watching. Your progress is saved.")
                return 0

    def say_keys(self) -> None:
        how = "" if self.single_keys else " (type the letter, then Enter)"
        self.ui.line(self.ui.style("Keys: ", "bold") + KEYS + how + "; Ctrl-C quits too.")

    def on_key(self, kata: _manifest.Kata, key: str) -> str | None:
        """Act on one key: the reason to rerun, or ``None`` to keep waiting."""
        key = key.lower()
        if key in {"\n", "\r"}:
            return "Enter"
        if key == "r":
            return "r"
        if key == "q":
            raise QuitWatching
        if key == "h":
            self.ui.line()
            if self.task is None:
                self.ui.line("No failing task to hint at.")
            else:
                again = "press h again" if self.single_keys else "h and Enter again"
                show_hint(self.ui, _load_progress(), kata, self.task, again)
        elif key == "l":
            self.ui.line()
            cmd_list(argparse.Namespace(), self.ui)
        else:
            return None
        self.ui.line()
        self.say_keys()
        return None

    def wait(self, kata: _manifest.Kata) -> str:
        """Block until a file of ``kata`` is saved or a rerun key is pressed; say which."""
        while True:
            try:
                kind, detail = self.events.get(timeout=0.5)
            except queue.Empty:
                continue
            if kind == "key":
                reason = self.on_key(kata, detail)
                if reason is not None:
                    return reason
                continue
            if kind == "no-events":
                self.ui.line(f"File events are not available here ({detail}): press r or Enter to rerun.")
                continue
            path = Path(detail)
            if kata.folder in path.parents:
                while not self.events.empty():  # one run for a burst of saves
                    self.events.get_nowait()
                return f"saved {path.name}"

    def close(self) -> None:
        self.stop.set()
        self.runner.close()


def cmd_watch(args: argparse.Namespace, ui: Output) -> int:
    """Rerun the current (or named) kata's specs on each save, in a warm forked child."""
    from dojo.runner import Spawner, warm_runner

    kata = _find(args.kata) if args.kata else None
    # Ctrl-C and a polite kill both stop cleanly, even where a shell started us ignoring SIGINT.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    runner = Spawner() if args.no_fork else warm_runner()
    with _single_keys() as single:
        watcher = Watcher(ui, runner, single_keys=single)
        try:
            return watcher.loop(kata)
        except KeyboardInterrupt:
            ui.line()
            ui.line("Stopped watching. Your progress is saved.")
            return 0
        finally:
            watcher.close()


# --------------------------------------------------------------------------- entry point


def _grade(argv: list[str]) -> int:
    try:
        grade = importlib.import_module("dojo.grade")
    except ModuleNotFoundError as error:
        if error.name != "dojo.grade":
            raise
        raise CliError("grading (dojo/grade.py) is not part of this checkout") from None
    return int(grade.main(argv) or 0)


def build_parser() -> argparse.ArgumentParser:
    """The command line: a bare ``kata`` shows where you are; subcommands do the rest."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Background Task Katas: where you are, what fails, and what to do next.",
        epilog=f"`{command()}` alone runs the current kata's specs, `{command('k04')}` those of kata 4. "
        f"Grading: `{command('grade', '--help')}`.",
    )
    parser.set_defaults(handler=cmd_status, kata=None)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    commands.add_parser("list", help="every kata and its state").set_defaults(handler=cmd_list)
    watch = commands.add_parser(
        "watch", help="rerun the current (or named) kata's specs on every save; keys: h hint, l list, r rerun, q quit"
    )
    watch.add_argument("kata", nargs="?", help="a kata to start with (default: the current one)")
    watch.add_argument("--no-fork", action="store_true", help="start a new Python for each run (slower)")
    watch.set_defaults(handler=cmd_watch)
    hint = commands.add_parser("hint", help="the next hint for the task you are on")
    hint.add_argument("kata", nargs="?", help="a kata (default: the current one)")
    hint.add_argument(
        "--task", type=int, metavar="N", help="a hint for task N (default: the task of the first failing spec)"
    )
    hint.set_defaults(handler=cmd_hint)
    reset = commands.add_parser("reset", help="put a kata's stub back as shipped (asks first)")
    reset.add_argument("kata", nargs="?", help="k01, 1 or the slug")
    reset.add_argument("--all", action="store_true", help="every kata")
    reset.add_argument("-y", "--yes", action="store_true", help="do not ask")
    reset.set_defaults(handler=cmd_reset)
    solution = commands.add_parser("solution", help="the reference solution, once your kata is green")
    solution.add_argument("kata")
    solution.set_defaults(handler=cmd_solution)
    serve = commands.add_parser("serve", help="run the kata's app (your code) with uvicorn, docs page included")
    serve.add_argument("kata")
    serve.add_argument("--port", type=int, default=8000, help="default 8000; 0 picks a free one")
    serve.add_argument(
        "--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1: this machine only)"
    )
    serve.set_defaults(handler=cmd_serve)
    commands.add_parser("grade", help="grade submissions (instructors); see `kata grade --help`")
    return parser


COMMANDS = ("list", "watch", "hint", "reset", "solution", "serve", "grade")


def _dispatch(argv: list[str], ui: Output) -> int:
    """Parse ``argv`` and run its command; ``kata k04`` is the bare command for the kata named."""
    if argv[:1] == ["grade"]:
        return _grade(argv[1:])
    parser = build_parser()
    if not argv or argv[0].startswith("-") or argv[0] in COMMANDS:
        args = parser.parse_args(argv)
        return int(args.handler(args, ui))
    try:
        _manifest.load().get(argv[0])
    except KeyError as error:
        known = str(error.args[0]) if error.args else str(error)
        raise CliError(f"{known}; the commands are: {', '.join(COMMANDS)}") from None
    args = parser.parse_args(argv[1:])
    if args.handler is not cmd_status:
        raise CliError(f"name the command first: `{command(argv[1], argv[0])}`")
    args.kata = argv[0]
    return cmd_status(args, ui)


def main(argv: list[str] | None = None) -> int:
    """Run ``kata`` with ``argv`` (default: the process's arguments); return the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            reconfigure(errors="replace")  # a terminal without UTF-8 gets '?' for the bar, not a crash
    ui = Output.from_env()
    try:
        return _dispatch(argv, ui)
    except CliError as error:
        ui.error(str(error))
        return error.code
    except _manifest.ManifestError as error:
        ui.error(f"dojo/manifest.toml: {error}")
        return 2
    except KeyboardInterrupt:
        ui.line()
        return 130
    except BrokenPipeError:  # `kata list | head`
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
