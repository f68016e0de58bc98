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

from dojo.virtual_clock import no_task_outlives_its_spec, pytest_asyncio_loop_factories  # noqa: F401 - registered by importing
