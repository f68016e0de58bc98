"""How fast a class is graded: ``uv run python -m dojo.grading.bench [--students N] [--hanging H]``.

It generates a class in a temporary folder: ``--students`` submissions, most of them the
reference solutions, a share the stubs as shipped, and ``--hanging`` of them a solution
whose first function spins forever (the case that costs a grader its time limits). It
grades the class once with ``python -m dojo.grade`` (the instructor's command, sandbox as
``--sandbox`` says) and prints submissions per minute, with the machine it ran on, and
checks every grade is what it must be (a solution full marks, a stub none, a hanging one
less than full). The stubs are left as shipped, so the grader runs each of their katas
once for the class (README: "A kata left as shipped runs once for the class"): the figure
is that of a class part-way through the course, not of one that edited every kata.

The figure in the README was measured with it; say the load (``uptime``) with any figure.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dojo import manifest as _manifest
from dojo.impl import shipped_source

#: Shares of the generated class (the rest are solutions).
STUB_SHARE = 0.3


def spinning(source: str) -> str:
    """A module whose first top-level function (sync or async) never returns: ``while True: pass`` first."""
    tree = ast.parse(source)
    function = next(
        node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.body
    )
    first = function.body[0]
    lines = source.splitlines(keepends=True)
    indent = " " * first.col_offset
    at = first.lineno - 1
    if isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant):  # after a docstring
        at = first.end_lineno or first.lineno
    lines.insert(at, f"{indent}while True:  # the benchmark's hanging submission\n{indent}    pass\n")
    return "".join(lines)


def make_class(where: Path, katas: tuple[_manifest.Kata, ...], students: int, hanging: int) -> dict[str, str]:
    """Write the class under ``where``; each student's kind (solution, stub, hanging) by name."""
    kinds: dict[str, str] = {}
    stubs = round(students * STUB_SHARE)
    for index in range(students):
        kind = "hanging" if index < hanging else "stub" if index < hanging + stubs else "solution"
        name = f"s{index:03d}_{kind}"
        kinds[name] = kind
        for kata in katas:
            folder = where / name / "katas" / kata.slug
            folder.mkdir(parents=True)
            for file_name in kata.module_files:
                if kind == "stub":
                    content = shipped_source(kata, file_name).decode()
                else:
                    content = (kata.solution_folder / file_name).read_text(encoding="utf-8")
                    if kind == "hanging" and file_name == kata.module_files[0]:
                        content = spinning(content)
                (folder / file_name).write_text(content, encoding="utf-8")
    return kinds


def check(out: Path, kinds: dict[str, str], katas: tuple[_manifest.Kata, ...]) -> list[str]:
    """What is wrong with the grades, if anything."""
    full = sum(kata.points for kata in katas)
    wrong = []
    for name, kind in kinds.items():
        summary = json.loads((out / "students" / name / "summary.json").read_text(encoding="utf-8"))
        points = summary["points"]
        if (
            (kind == "solution" and points != full)
            or (kind == "stub" and points != 0)
            or (kind == "hanging" and points >= full)
        ):
            wrong.append(f"{name}: {points} of {full}")
    return wrong


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


def main(argv: list[str] | None = None) -> int:
    """Generate the class, grade it once, print the rate and any wrong grade."""
    parser = argparse.ArgumentParser(prog="python -m dojo.grading.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=10, help="submissions in the class (default %(default)s)")
    parser.add_argument("--hanging", type=int, default=1, help="of which hang in one function (default %(default)s)")
    parser.add_argument("--kata", action="append", metavar="SLUG", help="only this kata (repeatable)")
    parser.add_argument("--sandbox", default="auto", choices=("auto", "bwrap", "none"))
    parser.add_argument("--jobs", type=int, default=None, help="passed on to the grader (default: the cores)")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds per spec (default %(default)s)")
    options = parser.parse_args(argv)
    manifest = _manifest.load()
    katas = tuple(manifest.get(name) for name in options.kata) if options.kata else tuple(manifest)
    with tempfile.TemporaryDirectory(prefix="kata-grade-bench-") as tmp:
        root = Path(tmp)
        kinds = make_class(root / "class", katas, options.students, options.hanging)
        out = root / "out"
        command = [sys.executable, "-m", "dojo.grade", *(str(root / "class" / name) for name in kinds)]
        command += ["--out", str(out), "--sandbox", options.sandbox, "--timeout", f"{options.timeout:g}"]
        command += [arg for kata in katas for arg in ("--kata", kata.slug)]
        if options.jobs:
            command += ["--jobs", str(options.jobs)]
        started = time.perf_counter()
        graded = subprocess.run(command, cwd=_manifest.REPO_ROOT, capture_output=True, text=True, check=False)  # noqa: S603
        seconds = time.perf_counter() - started
        if graded.returncode != 0:
            sys.stderr.write(graded.stdout[-3000:] + graded.stderr[-3000:])
            return 1
        wrong = check(out, kinds, katas)
    rate = len(kinds) / seconds * 60
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    _say(
        f"{len(kinds)} submissions ({options.hanging} hanging, {round(len(kinds) * STUB_SHARE)} stubs) x "
        f"{len(katas)} katas in {seconds:.1f} s: {rate:.1f} submissions per minute, "
        f"{len(kinds) * len(katas) / seconds:.2f} kata runs per second"
    )
    _say("the stubs are left as shipped: each of their katas ran once for the class")
    _say(
        f"machine: {os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
        f"sandbox {options.sandbox}, load {load:.1f} at the end"
    )
    for line in wrong:
        _say(f"WRONG GRADE: {line}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
