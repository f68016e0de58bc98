"""Failure messages that teach: what was expected, what happened, what to revisit.

A failing spec is the learner's main screen, so every assertion in a spec carries a
message built here. Kept plain text: it must read well with and without colour.
"""

from __future__ import annotations

import json
import re
import traceback
import types
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

if TYPE_CHECKING:
    from dojo.impl import Implementation


def lesson(*, expected: str, got: str, revisit: str) -> str:
    """The message of a failing assertion, in three labelled parts."""
    return f"\n  expected: {_indent(expected)}\n  got:      {_indent(got)}\n  revisit:  {_indent(revisit)}\n"


def without_pytest_explanation(text: str) -> str:
    """A failed ``assert``'s message without the explanation pytest appends after it (``assert 500 == 422 ...``).

    The lesson already says what was expected and what came; the explanation would only bury it.
    """
    lesson_text, marker, _ = text.rpartition("\nassert ")
    return lesson_text if marker and lesson_text.strip() else text


def expect_status(response: object, status: int, *, revisit: str, expected: str | None = None) -> None:
    """Fail with a lesson unless ``response`` (httpx's, or the timeline's Exchange) has ``status``.

    Raised directly rather than through ``assert``, so the learner reads the lesson alone,
    without pytest's ``assert 500 == 202 / where ...`` introspection under it. The body is
    shown with the status: for a crash it names the exception and the learner's line.
    """
    __tracebackhide__ = True
    got = getattr(response, "status_code", None)
    if got is None:
        got = getattr(response, "status", None)
    if got == status:
        return
    wanted = expected or f"{status} {HTTPStatus(status).phrase}"
    # The timeline's Exchange also says what the app raised; httpx's response has its body.
    shown = str(response) if hasattr(response, "error") else f"{got} {getattr(response, 'text', '')[:300]}".rstrip()
    raise AssertionError(lesson(expected=wanted, got=shown, revisit=revisit))


def expect_json(response: object, body: object, *, revisit: str, expected: str | None = None) -> None:
    """Fail with a lesson unless ``response``'s JSON body equals ``body``."""
    __tracebackhide__ = True
    text = getattr(response, "text", "")
    try:
        got = response.json()  # type: ignore[attr-defined]
    except ValueError:
        got = None
    if got == body:
        return
    wanted = expected or json.dumps(body)
    raise AssertionError(lesson(expected=wanted, got=text[:300] or "(an empty body)", revisit=revisit))


def expect_type(
    value: object,
    *types: type,
    what: str,
    revisit: str,
    items: tuple[type, ...] | None = None,
) -> Any:
    """Return ``value`` if its type is exactly one of ``types``; otherwise fail with a lesson.

    Use it on every value the learner's code returns, before comparing it: a subclass (or
    any object) can define ``__eq__`` to agree with everything, and ``pytest.approx`` or
    ``==`` would then pass whatever was expected. Exact types close that door (so ``True``
    is not accepted where an ``int`` is asked: write ``int, float`` to take both numbers).
    ``items`` checks every element of a list, tuple or set the same way.
    """
    __tracebackhide__ = True
    names = " or ".join(t.__name__ for t in types)
    if type(value) not in types:
        raise AssertionError(
            lesson(expected=f"{what}: a {names}", got=f"{type(value).__name__}: {_safe_repr(value)}", revisit=revisit)
        )
    if items is not None:
        item_names = " or ".join(t.__name__ for t in items)
        for position, item in enumerate(value):  # type: ignore[attr-defined]
            if type(item) not in items:
                raise AssertionError(
                    lesson(
                        expected=f"{what}: every item a {item_names}",
                        got=f"item {position} is a {type(item).__name__}: {_safe_repr(item)}",
                        revisit=revisit,
                    )
                )
    return value


def _safe_repr(value: object) -> str:
    """``repr`` of a value the learner's code made, which may itself raise or lie."""
    try:
        text = object.__repr__(value) if type(value).__repr__ is not object.__repr__ else repr(value)
        if type(value) in (int, float, str, bool, list, tuple, dict, set, type(None)):
            text = repr(value)
    except Exception:  # noqa: BLE001 - any repr may fail; the type name still teaches
        return f"<a {type(value).__name__}>"
    return text[:200]


# What a failure message's ``revisit`` must look like: the task, the idea in prose, and the
# README section that explains it. The code of a fix lives in the hints, never here.
REVISIT = re.compile(r"^task (?P<task>\d+): (?P<idea>\S.*) \(README: (?P<section>[^()]+)\)$", re.DOTALL)
_HOW = (
    r"\w\("  # a call
    r"|[=<>]=|(?<![<>!=])=(?!=)"  # an assignment, keyword argument or comparison
    r"|[A-Za-z_]\w*\.[A-Za-z_]"  # attribute access
    r"|\[|\]|->|\blambda\b"  # indexing, a list, an annotation, a lambda
)
_CODE = re.compile(_HOW)
_NAMED_CODE = re.compile(_HOW + r"|`|\b[a-z]+_[a-z0-9_]+\b")  # also code spans and snake_case names


def code_in(text: str, *, names_allowed: bool = False) -> list[str]:
    """The fragments of ``text`` that read as code; an empty list when it is prose.

    A failure's ``revisit`` must be prose: no code spans and no identifiers either. A stub's
    TODO may name the contract (a function, a field, in backticks: ``names_allowed``) but
    not dictate how to build it: no calls, assignments, attribute access or indexing.
    """
    pattern = _CODE if names_allowed else _NAMED_CODE
    return [match.group(0) for match in pattern.finditer(text)]


def _indent(text: str) -> str:
    return str(text).strip().replace("\n", "\n            ")


def unimportable(slug: str, module: str, impl: Implementation, error: BaseException) -> NoReturn:
    """Fail (not error) a spec whose kata module does not import, saying where and why."""
    __tracebackhide__ = True
    location = str(impl.kata_dir(slug) / f"{module}.py")
    frames = traceback.extract_tb(error.__traceback__)
    where = ""
    for frame in reversed(frames):  # the deepest line of the kata's own code: the one to edit
        if frame.filename.startswith(str(impl.kata_dir(slug))):
            where = f" (line {frame.lineno}: {frame.line})"
            location = f"{frame.filename}:{frame.lineno}"
            break
    if isinstance(error, SyntaxError):
        where = f" (line {error.lineno}: {(error.text or '').strip()})"
        location = f"{error.filename or location}:{error.lineno}"
    pytest.fail(
        f"CANNOT IMPORT {slug}/{module}.py\n"
        f"  {type(error).__name__}: {error}{where}\n"
        f"  file: {location}\n"
        "  Every spec of this kata needs the module to import. Fix the error above, "
        "or put the stub back with `git checkout -- <file>`.",
        pytrace=False,
    )


def missing_name(slug: str, module: str, name: str, loaded: types.ModuleType) -> NoReturn:
    """Fail a spec whose kata module lacks a name the spec uses."""
    __tracebackhide__ = True
    public = sorted(
        name
        for name, value in vars(loaded).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    )
    pytest.fail(
        f"MISSING NAME {name!r} in {slug}/{module}.py\n"
        f"  The specs use {module}.{name}; the module defines: {', '.join(public) or 'nothing public'}.\n"
        "  Did you rename or delete it? The stub as shipped defines it.",
        pytrace=False,
    )
