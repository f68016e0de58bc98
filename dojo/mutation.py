"""How strong are a kata's specs? An operator mutation pass over its solution.

``uv run python -m dojo.mutation SLUG [SLUG ...]`` (or ``--all``) makes every small
change an operator allows in the kata's solution modules (a comparison turned round,
a constant moved by one, a statement deleted, a keyword argument dropped ...), runs
the kata's specs against each changed solution and says which changes no spec
rejects. The score is ``rejected / (mutants - equivalent)``: an *equivalent* mutant is
one no code could tell from the solution, reviewed by a maintainer and listed, with
the reason, in ``tests/mutation/SLUG.toml``::

    [[equivalent]]
    id = "jobs.JobQueue.depth:stmt_pass:1a2b3c"
    why = "..."

``--record`` writes the measured figures into that file (the README's table of katas
shows the score, ``python -m dojo.maintain`` puts it there); the repository's checks
fail when the solution or the specs have changed since (``stale``), so the figures in
the README are always those of the code beside them. ``--show ID`` prints one mutant
and writes it out as a folder to run the specs on (``--impl=FOLDER``).

Each mutant is a folder like a submission (the solution copied, one module changed),
run with ``--impl=FOLDER`` through the fork server of :mod:`dojo.runner`: one warm
server per worker, a fresh forked child per mutant, pytest stopping at the first spec
that rejects it. A mutant still running at the time limit is rejected (a spec would
hang on it) and reported as such.

Why not mutmut or cosmic-ray: mutmut 3 mutates a copy of the package in ``mutants/``
and switches mutants through trampolines imported from its own tree, which our specs
never import (they load kata code through the ``--impl`` switch); cosmic-ray mutates
the file in place and starts the test command anew for each mutant (a second or more
of imports each, one mutant at a time per clone). Ours needs ``ast`` only, runs ~500
mutants in a few minutes on two cores, and names mutants so that their ids survive
unrelated edits (see :class:`Mutation`).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import functools
import hashlib
import io
import re
import shutil
import sys
import tempfile
import threading
import time
import tokenize
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from dojo import manifest as _manifest
from dojo.manifest import REPO_ROOT, tomllib

if TYPE_CHECKING:  # the runner (pytest, the stack) is imported only when mutants run
    import pytest

    from dojo.runner import ForkServer, Request, Verdict

RESULTS_DIR = REPO_ROOT / "tests" / "mutation"
GOAL = 97.0  # percent of non-equivalent mutants rejected (the definition of done)

#: The time limit of one mutant's run is this many times the solution's own run, at least MIN_TIMEOUT.
TIMEOUT_FACTOR = 5.0
MIN_TIMEOUT = 10.0
#: Options of every mutant's run: stop at the first rejecting spec; no shrinking of failing properties.
RUN_OPTIONS = ("-x", "--hypothesis-profile=katas-check")
#: The solution's own run, through the same path, must end within this.
BASELINE_TIMEOUT = 120.0


# --------------------------------------------------------------------------- mutants


@dataclass(frozen=True)
class Mutation:
    """One small change to one module of a kata's solution.

    Its ``id`` is ``module.qualname:operator:hash`` (``:N`` added when the same operator
    changes the same text twice in one function), where ``hash`` is a short hash of the
    text of the lines changed. It does not depend on line numbers or on other functions,
    so the ids of reviewed equivalents survive edits elsewhere in the module.
    """

    id: str
    file: str  # module file name, e.g. "jobs.py"
    line: int  # first line changed (1-based)
    end_line: int
    start: int  # byte offsets of the replaced text in the module's source
    end: int
    replacement: bytes
    operator: str

    def apply(self, source: bytes) -> bytes:
        return source[: self.start] + self.replacement + source[self.end :]

    def diff(self, source: bytes) -> list[str]:
        """The changed lines: ``-`` the solution's, ``+`` the mutant's."""
        mutated = self.apply(source)
        old_lines = source.decode().splitlines()
        new_lines = mutated.decode().splitlines()
        removed = old_lines[self.line - 1 : self.end_line]
        added_count = len(new_lines) - len(old_lines) + len(removed)
        added = new_lines[self.line - 1 : self.line - 1 + added_count]
        return [f"- {line}" for line in removed] + [f"+ {line}" for line in added]


#: Comparison operators and what each becomes (the limit moved, or the test turned round).
COMPARE: dict[type[ast.cmpop], tuple[type[ast.cmpop], ...]] = {
    ast.Lt: (ast.LtE, ast.GtE),
    ast.LtE: (ast.Lt, ast.Gt),
    ast.Gt: (ast.GtE, ast.LtE),
    ast.GtE: (ast.Gt, ast.Lt),
    ast.Eq: (ast.NotEq,),
    ast.NotEq: (ast.Eq,),
    ast.Is: (ast.IsNot,),
    ast.IsNot: (ast.Is,),
    ast.In: (ast.NotIn,),
    ast.NotIn: (ast.In,),
}
#: Arithmetic operators (in expressions and augmented assignments) and what each becomes.
ARITHMETIC: dict[type[ast.operator], tuple[type[ast.operator], ...]] = {
    ast.Add: (ast.Sub,),
    ast.Sub: (ast.Add,),
    ast.Mult: (ast.Div,),
    ast.Div: (ast.Mult,),
    ast.FloorDiv: (ast.Div,),
    ast.Mod: (ast.FloorDiv,),
    ast.Pow: (ast.Mult,),
}
SYMBOLS: dict[type[ast.AST], str] = {
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.And: "and",
    ast.Or: "or",
}
#: Log levels: each call becomes the neighbouring levels (a spec must pin the exact one).
LOG_LEVELS = {
    "debug": ("info",),
    "info": ("debug", "warning"),
    "warning": ("info", "error"),
    "error": ("warning", "critical"),
    "exception": ("error", "critical"),  # error: the traceback is lost
    "critical": ("error",),
}
LOGGER_NAMES = {"logger", "log", "logging", "_logger", "LOGGER"}
#: Built-in functions swapped for their twin.
TWINS = {"min": "max", "max": "min", "any": "all", "all": "any"}

#: Operators, as ids and reports name them: what each one does.
OPERATORS = {
    "cmp": "a comparison changed: < <= > >= == != is/is not in/not in",
    "arith": "an arithmetic operator changed: + - * / // % **",
    "aug": "an augmented assignment changed (x += 1 -> x -= 1)",
    "aug_to_assign": "an augmented assignment made plain (x += 1 -> x = 1)",
    "bool": "and <-> or",
    "not_dropped": "`not` dropped",
    "neg_dropped": "unary minus dropped",
    "num": "a number moved: n+1, n-1, 0",
    "str": 'a string emptied ("x" -> ""), or an empty one filled',
    "bool_const": "True <-> False",
    "none": 'None -> ""',
    "stmt_pass": "a statement replaced by `pass` (a call, an await, an assignment, a whole block)",
    "return_none": "a return value replaced by None",
    "break_continue": "break <-> continue",
    "kwarg": "a keyword argument dropped (the callee's default used instead)",
    "log_level": "a log call at another level",
    "twin": "min <-> max, any <-> all",
}

#: Parents in which a replaced expression is parenthesized (precedence could change).
_TIGHT_PARENTS = (
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.Attribute,
    ast.Subscript,
    ast.Call,
    ast.Await,
    ast.Starred,
    ast.IfExp,
)
#: Operand kinds that never need parentheses.
_ATOMS = (
    ast.Name,
    ast.Constant,
    ast.Attribute,
    ast.Call,
    ast.Subscript,
    ast.List,
    ast.Dict,
    ast.Set,
    ast.JoinedStr,
    ast.ListComp,
    ast.DictComp,
    ast.SetComp,
)


def _code_lines(text: bytes) -> list[str]:
    """Each line of a module as code: comments removed, whitespace stripped.

    Docstrings stay (a caller leaves them out where they matter). Comments are found by
    ``tokenize``, the same on every Python the repository supports.
    """
    lines = [line.decode() for line in text.splitlines(keepends=True)]
    tokens = tokenize.tokenize(io.BytesIO(text).readline)
    with contextlib.suppress(tokenize.TokenError, SyntaxError):
        for token in tokens:
            if token.type == tokenize.COMMENT:
                row, col = token.start
                lines[row - 1] = lines[row - 1][:col]
    return [line.strip() for line in lines]


class _Source:
    """A module's source with byte offsets for AST positions (which count UTF-8 bytes)."""

    def __init__(self, text: bytes) -> None:
        self.text = text
        self.lines = text.splitlines(keepends=True)
        self.code = _code_lines(text)
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))

    def offset(self, line: int, col: int) -> int:
        return self.starts[line - 1] + col

    def span(self, node: ast.AST) -> tuple[int, int]:
        start = self.offset(node.lineno, node.col_offset)  # type: ignore[attr-defined]
        end = self.offset(node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
        return start, end

    def segment(self, node: ast.AST) -> str:
        start, end = self.span(node)
        return self.text[start:end].decode()

    def operand(self, node: ast.AST) -> str:
        text = self.segment(node)
        return text if isinstance(node, _ATOMS) else f"({text})"

    def line_text(self, first: int, last: int) -> str:
        """The code of lines ``first`` to ``last``, comments and blank lines left out."""
        return "\n".join(line for line in self.code[first - 1 : last] if line)


@dataclass
class _Candidate:
    qualname: str
    operator: str  # the operator's family and its variant: "cmp_Lt_LtE"
    node: ast.AST
    start: int
    end: int
    replacement: str


def _is_docstring(statement: ast.stmt, body: list[ast.stmt]) -> bool:
    return (
        statement is body[0]
        and isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def _name_of(node: ast.expr) -> str:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


def _returns_nothing(node: ast.stmt) -> bool:
    """``return`` or ``return None``: deleting it as a function's last statement changes nothing."""
    return isinstance(node, ast.Return) and (
        node.value is None or (isinstance(node.value, ast.Constant) and node.value.value is None)
    )


def _is_stub(node: ast.stmt) -> bool:
    """A definition whose body does nothing (a docstring, ``...`` or ``pass``)."""
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    return all(
        isinstance(statement, ast.Pass)
        or (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant))
        for statement in node.body
    )


class _Generator:
    """Walks one module's AST and lists every mutation the operators allow."""

    def __init__(self, source: _Source) -> None:
        self.source = source
        self.candidates: list[_Candidate] = []

    # ------------------------------------------------------------------ walking

    def module(self, tree: ast.Module) -> None:
        for statement in tree.body:
            if isinstance(statement, (ast.Import, ast.ImportFrom)) or _is_docstring(statement, tree.body):
                continue
            self.statement(statement, "", parent_kind="module", body=tree.body)

    def statement(self, node: ast.stmt, qualname: str, *, parent_kind: str, body: list[ast.stmt]) -> None:
        if _is_docstring(node, body) and parent_kind != "module":
            return
        if parent_kind in {"function", "class"} and not (node is body[-1] and _returns_nothing(node)):
            self.delete_statement(node, qualname)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            self.definition(node, qualname)
            return
        self.statement_operators(node, qualname)
        for name, value in ast.iter_fields(node):
            if name in {"annotation", "returns", "type_comment"}:
                continue  # type annotations are not behaviour
            if isinstance(value, list):
                for item in value:
                    self.child(item, qualname, node, name)
            else:
                self.child(value, qualname, node, name)

    def definition(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef, qualname: str) -> None:
        """Its decorators, defaults and body, all named after the definition (``create_app.submit_job``)."""
        if isinstance(node, ast.ClassDef) and any(_name_of(base) == "Protocol" for base in node.bases):
            return  # an interface for type checkers: nothing of it runs
        inner = f"{qualname}.{node.name}" if qualname else node.name
        for decorator in node.decorator_list:
            self.expression(decorator, inner, node)
        if not isinstance(node, ast.ClassDef):
            args = node.args
            for default in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
                self.expression(default, inner, args)
        kind = "class" if isinstance(node, ast.ClassDef) else "function"
        for statement in node.body:
            self.statement(statement, inner, parent_kind=kind, body=node.body)

    def child(self, value: object, qualname: str, parent: ast.AST, field_name: str) -> None:
        if isinstance(value, ast.stmt):
            body = getattr(parent, field_name)
            self.statement(value, qualname, parent_kind="function" if qualname else "module", body=body)
        elif isinstance(value, ast.expr):
            self.expression(value, qualname, parent)
        elif isinstance(value, ast.AST):  # handlers, withitems, comprehensions, keywords, match cases
            for name, inner in ast.iter_fields(value):
                if name in {"annotation", "returns", "type_comment"}:
                    continue
                for item in inner if isinstance(inner, list) else [inner]:
                    if isinstance(item, ast.stmt):
                        self.statement(item, qualname, parent_kind="function" if qualname else "module", body=inner)
                    elif isinstance(item, ast.expr):
                        self.expression(item, qualname, value)

    def expression(self, node: ast.expr, qualname: str, parent: ast.AST) -> None:
        if isinstance(node, ast.JoinedStr):
            # Emptied as a whole; its parts are left alone (their positions differ across
            # Python versions, and so would the mutant set).
            self.constant_string(node, qualname, "")
            return
        self.expression_operators(node, qualname, parent)
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.expression(child, qualname, node)
            elif isinstance(child, (ast.keyword, ast.comprehension, ast.arguments)):
                for inner in ast.iter_child_nodes(child):
                    if isinstance(inner, ast.expr):
                        self.expression(inner, qualname, child)

    # ------------------------------------------------------------------ recording

    def add(
        self, qualname: str, operator: str, node: ast.AST, replacement: str, span: tuple[int, int] | None = None
    ) -> None:
        start, end = span or self.source.span(node)
        self.candidates.append(_Candidate(qualname, operator, node, start, end, replacement))

    def wrap(self, text: str, parent: ast.AST) -> str:
        return f"({text})" if isinstance(parent, _TIGHT_PARENTS) else text

    # ------------------------------------------------------------------ operators on statements

    def delete_statement(self, node: ast.stmt, qualname: str) -> None:
        if isinstance(node, (ast.Pass, ast.Global, ast.Nonlocal)) or _is_stub(node):
            return
        start, end = self.source.span(node)
        decorators = getattr(node, "decorator_list", [])
        if decorators:  # the decorators go with the definition
            first = decorators[0]
            start = self.source.offset(first.lineno, first.col_offset - 1)
        self.add(qualname, "stmt_pass", node, "pass", (start, end))

    def statement_operators(self, node: ast.stmt, qualname: str) -> None:
        if isinstance(node, ast.Return) and node.value is not None:
            if not (isinstance(node.value, ast.Constant) and node.value.value is None):
                self.add(qualname, "return_none", node.value, "None")
        elif isinstance(node, ast.Break):
            self.add(qualname, "break_continue", node, "continue")
        elif isinstance(node, ast.Continue):
            self.add(qualname, "break_continue", node, "break")
        elif isinstance(node, ast.AugAssign):
            target = self.source.segment(node.target)
            value = self.source.segment(node.value)
            for new in ARITHMETIC.get(type(node.op), ()):
                self.add(
                    qualname,
                    f"aug_{type(node.op).__name__}_{new.__name__}",
                    node,
                    f"{target} {SYMBOLS[new]}= {value}",
                )
            self.add(qualname, "aug_to_assign", node, f"{target} = {value}")

    # ------------------------------------------------------------------ operators on expressions

    def expression_operators(self, node: ast.expr, qualname: str, parent: ast.AST) -> None:
        if isinstance(node, ast.Compare):
            self.compare(node, qualname)
        elif isinstance(node, ast.BinOp):
            left, right = self.source.operand(node.left), self.source.operand(node.right)
            for new in ARITHMETIC.get(type(node.op), ()):
                text = self.wrap(f"{left} {SYMBOLS[new]} {right}", parent)
                self.add(qualname, f"arith_{type(node.op).__name__}_{new.__name__}", node, text)
        elif isinstance(node, ast.BoolOp):
            new_op = "or" if isinstance(node.op, ast.And) else "and"
            text = f" {new_op} ".join(self.source.operand(value) for value in node.values)
            self.add(qualname, f"bool_{type(node.op).__name__}", node, self.wrap(text, parent))
        elif isinstance(node, ast.UnaryOp):
            if isinstance(node.op, ast.Not):
                self.add(qualname, "not_dropped", node, self.wrap(self.source.operand(node.operand), parent))
            elif isinstance(node.op, ast.USub) and not isinstance(node.operand, ast.Constant):
                self.add(qualname, "neg_dropped", node, self.wrap(self.source.operand(node.operand), parent))
        elif isinstance(node, ast.Constant):
            self.constant(node, qualname, parent)
        elif isinstance(node, ast.Call):
            self.call(node, qualname)

    def compare(self, node: ast.Compare, qualname: str) -> None:
        operands = [node.left, *node.comparators]
        texts = [
            f"({self.source.segment(o)})"
            if isinstance(o, (ast.BoolOp, ast.Compare, ast.IfExp, ast.Lambda, ast.NamedExpr))
            or (isinstance(o, ast.UnaryOp) and isinstance(o.op, ast.Not))
            else self.source.segment(o)
            for o in operands
        ]
        for index, op in enumerate(node.ops):
            for new in COMPARE.get(type(op), ()):
                ops = [SYMBOLS[type(o)] for o in node.ops]
                ops[index] = SYMBOLS[new]
                text = texts[0] + "".join(f" {o} {t}" for o, t in zip(ops, texts[1:], strict=True))
                self.add(qualname, f"cmp_{type(op).__name__}_{new.__name__}", node, text)

    def constant(self, node: ast.Constant, qualname: str, parent: ast.AST) -> None:
        value = node.value
        if isinstance(value, bool):
            self.add(qualname, f"bool_const_{value}", node, str(not value))
        elif isinstance(value, (int, float)):
            seen = {value}
            for label, new in (("plus", value + 1), ("minus", value - 1), ("zero", type(value)(0))):
                if new in seen:
                    continue
                seen.add(new)
                text = repr(new)
                if new < 0:
                    text = f"({text})"
                self.add(qualname, f"num_{label}", node, text)
        elif isinstance(value, str):
            self.constant_string(node, qualname, value)
        elif value is None and not isinstance(parent, (ast.Compare, ast.Subscript, ast.BinOp, ast.Tuple, ast.List)):
            # Not `x is None` (a SyntaxWarning), nor a type (`Awaitable[None]`, `X | None`).
            self.add(qualname, "none", node, '""')

    def constant_string(self, node: ast.expr, qualname: str, value: str) -> None:
        if isinstance(node, ast.JoinedStr) or value:
            self.add(qualname, "str_emptied", node, '""')
        else:
            self.add(qualname, "str_filled", node, '"XX"')

    def call(self, node: ast.Call, qualname: str) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in TWINS:
            self.add(qualname, f"twin_{func.id}_{TWINS[func.id]}", func, TWINS[func.id])
        if (
            isinstance(func, ast.Attribute)
            and func.attr in LOG_LEVELS
            and isinstance(func.value, ast.Name)
            and func.value.id in LOGGER_NAMES
        ):
            _, end = self.source.span(func)
            for level in LOG_LEVELS[func.attr]:
                self.add(qualname, f"log_level_{func.attr}_{level}", func, level, (end - len(func.attr), end))
        items = sorted([*node.args, *node.keywords], key=lambda item: (item.lineno, item.col_offset))
        for index, item in enumerate(items):
            if not isinstance(item, ast.keyword) or item.arg is None:
                continue
            start, end = self.source.span(item)
            if index > 0:  # drop ", name=value" from the end of the item before
                start = self.source.span(items[index - 1])[1]
            elif index + 1 < len(items):  # the first of several: drop "name=value, "
                end = self.source.span(items[index + 1])[0]
            self.add(qualname, f"kwarg_{item.arg}", item, "", (start, end))


def _parses(source: bytes, name: str) -> bool:
    """Whether a mutant is valid Python (the operators make no code the compiler alone refuses)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            ast.parse(source, name)
        except (SyntaxError, ValueError, SyntaxWarning):
            return False
    return True


@functools.lru_cache(maxsize=64)
def mutations_of_source(source: bytes, file_name: str) -> tuple[Mutation, ...]:
    """Every mutation of one module's source, in source order, each with its stable id."""
    module = Path(file_name).stem
    parsed = _Source(source)
    tree = ast.parse(source, file_name)
    generator = _Generator(parsed)
    generator.module(tree)
    mutations: list[Mutation] = []
    seen_ids: dict[str, int] = {}
    seen_sources: set[bytes] = set()
    for candidate in sorted(generator.candidates, key=lambda c: (c.start, -c.end, c.operator)):
        mutated = source[: candidate.start] + candidate.replacement.encode() + source[candidate.end :]
        if mutated in seen_sources or not _parses(mutated, file_name):
            continue
        seen_sources.add(mutated)
        node = candidate.node
        first, last = node.lineno, node.end_lineno  # type: ignore[attr-defined]
        if candidate.operator == "stmt_pass" and getattr(node, "decorator_list", None):
            first = node.decorator_list[0].lineno  # type: ignore[attr-defined]
        digest = hashlib.sha1(parsed.line_text(first, last).encode(), usedforsecurity=False).hexdigest()[:6]
        where = f"{module}.{candidate.qualname}" if candidate.qualname else module
        base = f"{where}:{candidate.operator}:{digest}"
        count = seen_ids.get(base, 0)
        seen_ids[base] = count + 1
        mutations.append(
            Mutation(
                id=base if count == 0 else f"{base}:{count + 1}",
                file=file_name,
                line=first if candidate.operator == "stmt_pass" else parsed.text[: candidate.start].count(b"\n") + 1,
                end_line=parsed.text[: candidate.end].count(b"\n") + 1,
                start=candidate.start,
                end=candidate.end,
                replacement=candidate.replacement.encode(),
                operator=candidate.operator,
            )
        )
    return tuple(mutations)


def solution_sources(kata: _manifest.Kata) -> dict[str, bytes]:
    """The kata's solution modules, by file name."""
    return {name: (kata.solution_folder / name).read_bytes() for name in kata.module_files}


def mutations_of(kata: _manifest.Kata) -> list[Mutation]:
    """Every mutation of a kata's solution modules."""
    return [m for name, source in solution_sources(kata).items() for m in mutations_of_source(source, name)]


def _digest(parts: Iterable[str | bytes]) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(part.encode() if isinstance(part, str) else part)
        hasher.update(b"\0")
    return hasher.hexdigest()[:16]


def mutant_set_fingerprint(kata: _manifest.Kata) -> str:
    """Changes when the solution's code or its mutant set changes; not with comments or blank lines.

    The same on every Python version: it hashes the mutants' ids and the code's lines, never an AST dump.
    """
    sources = solution_sources(kata)
    return _digest(
        [
            *(m.id for m in mutations_of(kata)),
            *(line for source in sources.values() for line in _code_lines(source) if line),
        ]
    )


def spec_files(kata: _manifest.Kata) -> list[Path]:
    """The files that decide a kata's verdicts: its spec file and its conftest, if any."""
    return [path for path in (kata.spec_path, kata.folder / "conftest.py") if path.is_file()]


def specs_fingerprint(kata: _manifest.Kata) -> str:
    """Changes when the kata's spec file or conftest changes (line endings aside)."""
    return _digest(path.read_bytes().replace(b"\r\n", b"\n") for path in spec_files(kata))


# --------------------------------------------------------------------------- running


@dataclass
class Outcome:
    """What the specs made of one mutant."""

    mutation: Mutation
    verdict: str  # "rejected", "timed out" (a rejection too) or "survived"
    by: str = ""  # the spec that rejected it, or what stopped the run
    seconds: float = 0.0

    @property
    def rejected(self) -> bool:
        return self.verdict != "survived"


class MutationError(Exception):
    """The pass cannot be run (the solution itself fails its specs, ...)."""


@dataclass
class _Worker:
    folder: Path  # an --impl folder: FOLDER/SLUG/ holds a copy of the solution
    server: ForkServer
    current: str | None = None  # the module file that holds a mutant right now


def _verdict_of(mutation: Mutation, verdict: Verdict, seconds: float) -> Outcome:
    if verdict.timed_out:
        return Outcome(mutation, "timed out", verdict.problem, seconds)
    failure = verdict.first_failure
    if failure is not None:
        return Outcome(mutation, "rejected", failure.name, seconds)
    if verdict.problem:
        return Outcome(mutation, "rejected", verdict.problem.splitlines()[0], seconds)
    return Outcome(mutation, "survived", "", seconds)


class _Pass:
    """One kata's mutants, run by a few workers, each a warm fork server and a folder of its own.

    The specs run in the order of the mutants they have rejected so far, most first (a
    file that each run reads, see :func:`pytest_collection_modifyitems`): a mutant
    costs the specs up to the first that rejects it, and a few specs reject most.
    """

    def __init__(self, kata: _manifest.Kata, scratch: Path, workers: int) -> None:
        from dojo.runner import ForkServer

        self.kata = kata
        self.sources = solution_sources(kata)
        self.order_file = scratch / "spec-order.txt"
        self.order_file.write_text("", encoding="utf-8")
        self.kills: dict[str, int] = {}
        self.lock = threading.Lock()
        self.pool: list[_Worker] = []
        for number in range(workers):
            folder = scratch / f"worker{number}"
            shutil.copytree(
                kata.solution_folder, folder / kata.slug, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
            self.pool.append(_Worker(folder, ForkServer()))

    def request(self, worker: _Worker, limit: float) -> Request:
        from dojo.runner import Request

        options = (*RUN_OPTIONS, "-p", "dojo.mutation", f"{ORDER_OPTION}={self.order_file}")
        return Request(self.kata.slug, str(worker.folder), options, limit)

    def run_one(self, worker: _Worker, mutation: Mutation | None, limit: float) -> tuple[Verdict, float]:
        """Put ``mutation`` (None: the solution) in the worker's folder and run the specs on it."""
        folder = worker.folder / self.kata.slug
        if worker.current is not None and (mutation is None or worker.current != mutation.file):
            (folder / worker.current).write_bytes(self.sources[worker.current])
            worker.current = None
        if mutation is not None:
            (folder / mutation.file).write_bytes(mutation.apply(self.sources[mutation.file]))
            worker.current = mutation.file
        began = time.perf_counter()
        verdict = worker.server.run(self.request(worker, limit))
        return verdict, time.perf_counter() - began

    def learn(self, outcome: Outcome) -> None:
        """Count the spec's rejection and move it up the order (called under the lock)."""
        if outcome.verdict != "rejected" or not outcome.by.startswith("test_"):
            return
        self.kills[outcome.by] = self.kills.get(outcome.by, 0) + 1
        ranking = sorted(self.kills, key=lambda name: -self.kills[name])
        temporary = self.order_file.with_suffix(".new")
        temporary.write_text("\n".join(ranking) + "\n", encoding="utf-8")
        temporary.replace(self.order_file)

    def run(self, mutations: list[Mutation], limit: float, progress: Callable[[Outcome], None] | None) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        todo = list(enumerate(mutations))

        def work(worker: _Worker) -> None:
            while True:
                with self.lock:
                    if not todo:
                        return
                    index, mutation = todo.pop(0)
                outcome = _verdict_of(mutation, *self.run_one(worker, mutation, limit))
                with self.lock:
                    outcomes[index] = outcome
                    self.learn(outcome)
                    if progress is not None:
                        progress(outcome)

        threads = [threading.Thread(target=work, args=(worker,), daemon=True) for worker in self.pool]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return [outcomes[index] for index in range(len(mutations))]

    def close(self) -> None:
        for worker in self.pool:
            worker.server.close()


def run_mutations(
    kata: _manifest.Kata,
    mutations: list[Mutation],
    *,
    workers: int = 2,
    timeout: float | None = None,
    progress: Callable[[Outcome], None] | None = None,
) -> list[Outcome]:
    """Run the kata's specs against each mutation; outcomes in the order of ``mutations``.

    The solution itself runs first, through the same path: it must be green, and its time
    sets the limit of each mutant's run unless ``timeout`` is given.
    """
    scratch = Path(tempfile.mkdtemp(prefix=f"kata-mutation-{kata.slug}-"))
    run: _Pass | None = None
    try:
        run = _Pass(kata, scratch, max(1, min(workers, len(mutations) or 1)))
        verdict, seconds = run.run_one(run.pool[0], None, BASELINE_TIMEOUT)
        if not verdict.green:
            detail = verdict.problem or (verdict.first_failure.name if verdict.first_failure else "no spec ran")
            raise MutationError(f"{kata.slug}: the solution itself is not green against its specs: {detail}")
        limit = timeout or max(MIN_TIMEOUT, TIMEOUT_FACTOR * seconds)
        return run.run(mutations, limit, progress)
    finally:
        if run is not None:
            run.close()
        shutil.rmtree(scratch, ignore_errors=True)


ORDER_OPTION = "--mutation-spec-order"


def pytest_addoption(parser: pytest.Parser) -> None:
    """As a pytest plugin (``-p dojo.mutation``, in each mutant's run): the order of the specs."""
    parser.addoption(ORDER_OPTION, default=None, help="a file naming specs, one a line: they run first, in order")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the specs named in the order file first, in its order; the others after, as collected."""
    path = config.getoption(ORDER_OPTION)
    if not path or not Path(path).is_file():
        return
    ranking = {name: index for index, name in enumerate(Path(path).read_text(encoding="utf-8").splitlines())}
    items.sort(key=lambda item: ranking.get(item.nodeid.split("::", 1)[-1], len(ranking)))


# --------------------------------------------------------------------------- results


@dataclass
class Review:
    """What ``tests/mutation/SLUG.toml`` holds: the reviewed equivalents and the last measured figures."""

    equivalents: dict[str, str] = field(default_factory=dict)  # id -> why
    measured: dict[str, object] = field(default_factory=dict)


def results_path(slug: str) -> Path:
    """``tests/mutation/SLUG.toml``: the reviewed equivalents and the measured figures of one kata."""
    return RESULTS_DIR / f"{slug}.toml"


def load_review(slug: str) -> Review:
    """What a kata's results file holds (nothing yet, if it has none)."""
    path = results_path(slug)
    if not path.is_file():
        return Review()
    with path.open("rb") as handle:
        data = tomllib.load(handle)
    review = Review(measured=dict(data.get("measured", {})))
    for number, entry in enumerate(data.get("equivalent", []), start=1):
        if not isinstance(entry, dict) or not str(entry.get("id", "")).strip() or not str(entry.get("why", "")).strip():
            raise MutationError(f"{path}: [[equivalent]] entry {number} needs an id and a why")
        review.equivalents[str(entry["id"]).strip()] = str(entry["why"]).strip()
    return review


@dataclass
class Score:
    """A kata's figures from one pass."""

    slug: str
    outcomes: list[Outcome]
    equivalents: dict[str, str]

    @property
    def total(self) -> int:
        return len(self.outcomes)

    @property
    def rejected(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.rejected]

    @property
    def timed_out(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.verdict == "timed out"]

    @property
    def equivalent(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.rejected and o.mutation.id in self.equivalents]

    @property
    def survived(self) -> list[Outcome]:
        return [o for o in self.outcomes if not o.rejected and o.mutation.id not in self.equivalents]

    @property
    def wrongly_equivalent(self) -> list[Outcome]:
        """Listed as equivalent, yet a spec rejects them: not equivalent after all."""
        return [o for o in self.outcomes if o.rejected and o.mutation.id in self.equivalents]

    @property
    def score(self) -> float:
        counted = self.total - len(self.equivalent)
        return 100.0 if counted == 0 else round(100.0 * len(self.rejected) / counted, 1)


MEASURED_BEGIN = "# --- measured: written by `uv run python -m dojo.mutation SLUG --record`; do not edit by hand"
MEASURED_END = "# --- end of measured"
HEADER = """\
# Operator mutation pass over {slug}'s solution: `uv run python -m dojo.mutation {slug}`.
# Each survivor is a change to the solution that no spec rejects. Review each one: make
# a spec reject it (the spec of the task whose rule it breaks), or, if no code could tell
# it from the solution, list it here with the reason:
#
#   [[equivalent]]
#   id = "the id the command printed"
#   why = "what makes it behave exactly as the solution does"
"""


def render_measured(kata: _manifest.Kata, score: Score) -> str:
    """The ``[measured]`` block of a kata's results file."""
    survivors = "".join(f'    "{o.mutation.id}",\n' for o in score.survived)
    lines = [
        MEASURED_BEGIN.replace("SLUG", kata.slug),
        "[measured]",
        f"score = {score.score}  # percent: rejected / (mutants - equivalent)",
        f"mutants = {score.total}",
        f"rejected = {len(score.rejected)}",
        f"timed_out = {len(score.timed_out)}  # of the rejected: still running at the time limit",
        f"equivalent = {len(score.equivalent)}",
        f"survived = {len(score.survived)}",
        f'mutant_set = "{mutant_set_fingerprint(kata)}"  # the solution and its mutants',
        f'specs = "{specs_fingerprint(kata)}"  # the spec file and conftest',
        "survivors = [" + ("\n" + survivors if survivors else "") + "]",
        MEASURED_END,
    ]
    return "\n".join(lines) + "\n"


def record(kata: _manifest.Kata, score: Score) -> Path:
    """Write the measured figures into the kata's results file, keeping its equivalents."""
    path = results_path(kata.slug)
    block = render_measured(kata, score)
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(HEADER.format(slug=kata.slug) + "\n" + block, encoding="utf-8")
        return path
    text = path.read_text(encoding="utf-8")
    begin = MEASURED_BEGIN.replace("SLUG", kata.slug)
    if begin in text and MEASURED_END in text:
        head, _, rest = text.partition(begin)
        _, _, tail = rest.partition(MEASURED_END)
        text = head + block.rstrip("\n") + tail
    else:  # the block goes before the first table, after the leading comments
        match = re.search(r"^\[", text, flags=re.MULTILINE)
        cut = match.start() if match else len(text)
        text = text[:cut].rstrip("\n") + "\n\n" + block + ("\n" + text[cut:] if match else "")
    path.write_text(text, encoding="utf-8")
    return path


def _shown(path: Path) -> Path:
    return path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path


#: Why a kata whose module is a test file (``module_kind = "tests"``) has no operator pass.
TESTS_KATA = (
    "its module is the learner's test file, not code under test: changing the operators of the "
    "reference tests measures nothing its specs promise. Its measure is the table of wrong versions of "
    "its given app that the specs run the learner's tests on (each must be caught), and its weak test "
    "files under tests/mutants/, each rejected first by the spec of its task"
)


def stale(kata: _manifest.Kata) -> list[str]:
    """Why the committed figures are not those of the kata as it is (empty: they are current)."""
    if kata.module_is_tests:
        return []  # nothing recorded, nothing to go stale: see TESTS_KATA
    path = _shown(results_path(kata.slug))
    rerun = f"rerun `uv run python -m dojo.mutation {kata.slug} --record`"
    try:
        review = load_review(kata.slug)
    except (MutationError, tomllib.TOMLDecodeError) as error:
        return [f"{path}: {error}"]
    if not review.measured:
        return [f"{path} has no measured results: {rerun}"]
    problems = []
    if review.measured.get("mutant_set") != mutant_set_fingerprint(kata):
        problems.append(f"{path}: the solution changed since its mutants were measured: {rerun}")
    if review.measured.get("specs") != specs_fingerprint(kata):
        problems.append(f"{path}: the specs changed since the mutants were measured: {rerun}")
    ids = {m.id for m in mutations_of(kata)}
    problems.extend(
        f"{path}: equivalent {name!r} is no mutant of the solution any more: remove it, then {rerun}"
        for name in review.equivalents
        if name not in ids
    )
    return problems


def recorded_score(slug: str) -> float | None:
    """The committed score of a kata, if it has one."""
    try:
        value = load_review(slug).measured.get("score")
    except (MutationError, tomllib.TOMLDecodeError):
        return None
    return float(value) if isinstance(value, (int, float)) else None


# --------------------------------------------------------------------------- the command


def _describe(outcome: Outcome, kata: _manifest.Kata, sources: dict[str, bytes]) -> Iterator[str]:
    mutation = outcome.mutation
    where = (kata.solution_folder / mutation.file).relative_to(REPO_ROOT)
    yield f"  {mutation.id}"
    yield f"      {where}:{mutation.line}  ({OPERATORS[_family(mutation.operator)]})"
    for line in mutation.diff(sources[mutation.file]):
        yield f"      {line}"


def _family(operator: str) -> str:
    for name in sorted(OPERATORS, key=len, reverse=True):
        if operator == name or operator.startswith(name + "_"):
            return name
    return operator


def measure(
    kata: _manifest.Kata,
    *,
    workers: int,
    timeout: float | None,
    out: Callable[[str], None],
    verbose: bool = False,
) -> Score:
    """One kata's pass, printed as it goes: a progress line, then the figures and the survivors."""
    review = load_review(kata.slug)
    mutations = mutations_of(kata)
    started = time.perf_counter()
    done = [0]
    tty = sys.stdout.isatty()

    def progress(outcome: Outcome) -> None:
        done[0] += 1
        if verbose:
            out(f"  {outcome.verdict:9} {outcome.mutation.id}  {outcome.by}  ({outcome.seconds:.2f} s)")
        elif tty:
            sys.stdout.write(f"\r{kata.slug}: {done[0]}/{len(mutations)} mutants run")
            sys.stdout.flush()

    outcomes = run_mutations(kata, mutations, workers=workers, timeout=timeout, progress=progress)
    if tty and not verbose:
        sys.stdout.write("\r\033[K")
    score = Score(kata.slug, outcomes, review.equivalents)
    report(kata, score, review, out, time.perf_counter() - started)
    return score


def report(kata: _manifest.Kata, score: Score, review: Review, out: Callable[[str], None], seconds: float) -> None:
    """The figures of one pass, then every mutant that needs a maintainer's attention."""
    sources = solution_sources(kata)
    recorded = review.measured.get("score")
    out(
        f"{kata.slug}: {score.total} mutants, {len(score.rejected)} rejected "
        f"({len(score.timed_out)} at the time limit), {len(score.equivalent)} equivalent, "
        f"{len(score.survived)} survived: score {score.score}%"
        + (f" (recorded: {recorded}%)" if recorded is not None else "")
        + f"  [{seconds:.0f} s]"
    )
    for outcome in score.timed_out:
        out(f"  timed out (rejected): {outcome.mutation.id}")
    for outcome in score.wrongly_equivalent:
        out(f"  listed as equivalent but rejected by {outcome.by}: remove it from {results_path(kata.slug).name}")
        for line in _describe(outcome, kata, sources):
            out(line)
    if score.survived:
        out(f"  survivors ({len(score.survived)}): make a spec reject each, or list it as [[equivalent]] with why")
    for outcome in score.survived:
        for line in _describe(outcome, kata, sources):
            out(line)
    known = {o.mutation.id for o in score.outcomes}
    for name in review.equivalents:
        if name not in known:
            out(f"  equivalent {name!r} is no mutant of the solution any more: remove it")


def show(name: str, out: Callable[[str], None]) -> int:
    """Print one mutant and write it out as an --impl folder to run the specs on."""
    for kata in _manifest.load():
        for mutation in mutations_of(kata):
            if mutation.id != name:
                continue
            sources = solution_sources(kata)
            outcome = Outcome(mutation, "")
            for line in _describe(outcome, kata, sources):
                out(line)
            folder = Path(tempfile.mkdtemp(prefix="kata-mutant-"))
            shutil.copytree(
                kata.solution_folder, folder / kata.slug, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )
            (folder / kata.slug / mutation.file).write_bytes(mutation.apply(sources[mutation.file]))
            out(f"  written to {folder / kata.slug / mutation.file}; run the specs on it:")
            out(f"  uv run pytest {kata.spec_path.relative_to(REPO_ROOT)} --impl={folder}")
            return 0
    out(f"no mutant {name!r} in any kata's solution")
    return 2


def main(argv: list[str] | None = None) -> int:
    """``python -m dojo.mutation SLUG... | --all [--record | --check] | --show ID | --stale``."""
    parser = argparse.ArgumentParser(prog="python -m dojo.mutation", description=__doc__.split("\n\n")[0])
    parser.add_argument("katas", nargs="*", metavar="KATA", help="kata slugs (or numbers, or prefixes)")
    parser.add_argument("--all", action="store_true", help="every kata in the manifest")
    parser.add_argument("--record", action="store_true", help="write the figures into tests/mutation/SLUG.toml")
    parser.add_argument("--check", action="store_true", help="fail unless the figures and survivors are those recorded")
    parser.add_argument("--show", metavar="ID", help="print one mutant and write it out as an --impl folder")
    parser.add_argument("--list", action="store_true", help="list the mutants (id, file:line), run nothing")
    parser.add_argument("--stale", action="store_true", help="only say whether the recorded figures are current")
    parser.add_argument("--workers", type=int, default=2, help="mutants run at once (default 2)")
    parser.add_argument("--timeout", type=float, help="seconds a mutant may run (default: 5x the solution's run)")
    parser.add_argument("-v", "--verbose", action="store_true", help="a line per mutant: verdict and spec")
    args = parser.parse_args(argv)

    def out(line: str) -> None:
        print(line, flush=True)  # noqa: T201 - a maintainer's report

    if args.show:
        return show(args.show, out)
    manifest = _manifest.load()
    katas = list(manifest) if args.all else [manifest.get(name) for name in args.katas]
    if not katas:
        parser.error("name a kata (or --all)")
    if args.stale:
        problems = [problem for kata in katas for problem in stale(kata)]
        for problem in problems:
            out(problem)
        return 1 if problems else 0
    if args.list:
        for kata in katas:
            for mutation in mutations_of(kata):
                out(f"{mutation.id}  {kata.slug}/{mutation.file}:{mutation.line}")
        return 0
    results = [_run(kata, args, out) for kata in katas]  # every kata, even after one failed
    return 0 if all(results) else 1


def _run(kata: _manifest.Kata, args: argparse.Namespace, out: Callable[[str], None]) -> bool:
    """One kata's pass for the command line, recorded or checked as asked; False if it failed."""
    if kata.module_is_tests:
        out(f"{kata.slug}: no operator pass: {TESTS_KATA}.")
        return True
    try:
        score = measure(kata, workers=args.workers, timeout=args.timeout, out=out, verbose=args.verbose)
    except MutationError as error:
        out(str(error))
        return False
    if args.record:
        out(f"  recorded in {_shown(record(kata, score))}")
    ok = not score.wrongly_equivalent
    if args.check:
        measured = load_review(kata.slug).measured
        expected = sorted(str(name) for name in measured.get("survivors", []))  # type: ignore[union-attr]
        if sorted(o.mutation.id for o in score.survived) != expected or measured.get("score") != score.score:
            out(f"  differs from {_shown(results_path(kata.slug))}: rerun with --record")
            ok = False
        for problem in stale(kata):
            out(f"  {problem}")
            ok = False
    return ok


if __name__ == "__main__":
    sys.exit(main())
