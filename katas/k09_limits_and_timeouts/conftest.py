"""Fixtures for kata 9: the specs' own clock.

Read it if you like; you do not need to change it.

**No real time reaches a verdict.** Every async spec of this kata runs on an event loop
whose clock is virtual (dojo/virtual_clock.py): it stands still while anything can run
and jumps to the next timer when nothing can. A 30-second time limit costs nothing, and
ends at exactly 30 seconds on that clock, every time. A job waiting for a slot that is
woken when the slot frees starts within a few turns of the loop, with no time passing;
one that sleeps and looks again (it polls) starts late, every time, on any machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from dojo.virtual_clock import VirtualClockLoop, stop_leftovers


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> dict[str, Callable[[], Any]]:
    """Every async spec of this kata runs on the virtual clock."""
    return {"virtual-clock": VirtualClockLoop}


@pytest.fixture(autouse=True)
async def _no_task_outlives_its_spec() -> AsyncIterator[None]:
    """Tasks a spec's code started and left behind are stopped, so no later spec sees them."""
    before = asyncio.all_tasks()
    yield
    await stop_leftovers(before)
