"""The ``create_app`` fixture for your own runs of my_tests.py: the shop as given (app.py).

``uv run pytest katas/k16_testing_tasks/my_tests.py`` runs your tests on it. The kata's
specs do not use this file: they run my_tests.py with a ``create_app`` fixture of their
own, which hands your tests the given shop first and then each wrong version of it.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

GIVEN = Path(__file__).with_name("app.py")


def _given_shop() -> Callable[..., Any]:
    name = "k16_testing_tasks_given_shop"
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, GIVEN)
        assert spec is not None and spec.loader is not None, f"{GIVEN} cannot be loaded"
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # pydantic resolves the model's annotations through it
        spec.loader.exec_module(module)
    return module.create_app


@pytest.fixture(name="create_app", scope="session")
def _create_app() -> Callable[..., Any]:
    """The shop's ``create_app(mailer, warehouse)``: build the app with your own fakes."""
    return _given_shop()
