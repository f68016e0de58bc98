"""Failure messages that teach: what was expected, what happened, what to revisit.

A failing spec is the learner's main screen, so every assertion in a spec carries a
message built here. Kept plain text: it must read well with and without colour.
"""

from __future__ import annotations

import traceback
import types
from typing import TYPE_CHECKING, NoReturn

import pytest

if TYPE_CHECKING:
    from dojo.impl import Implementation


def lesson(*, expected: str, got: str, revisit: str) -> str:
    """The message of a failing assertion, in three labelled parts."""
    return f"\n  expected: {_indent(expected)}\n  got:      {_indent(got)}\n  revisit:  {_indent(revisit)}\n"


def _indent(text: str) -> str:
    return str(text).strip().replace("\n", "\n            ")


def unimportable(slug: str, module: str, impl: Implementation, error: BaseException) -> NoReturn:
    """Fail (not error) a spec whose kata module does not import, saying where and why."""
    __tracebackhide__ = True
    path = impl.kata_dir(slug) / f"{module}.py"
    frames = traceback.extract_tb(error.__traceback__)
    where = ""
    for frame in reversed(frames):
        if frame.filename.startswith(str(impl.kata_dir(slug))):
            where = f" (line {frame.lineno}: {frame.line})"
            break
    if isinstance(error, SyntaxError):
        where = f" (line {error.lineno}: {(error.text or '').strip()})"
    pytest.fail(
        f"CANNOT IMPORT {slug}/{module}.py\n"
        f"  {type(error).__name__}: {error}{where}\n"
        f"  file: {path}\n"
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
