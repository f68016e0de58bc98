"""The specs' own clock, for kata 15 (the fake store is in the spec file).

Read it if you like; you do not need to change it.

**No real time reaches a verdict.** Every async spec of this kata runs on an event loop
whose clock is virtual (dojo/virtual_clock.py): it stands still while anything can run
and jumps straight to the next timer when nothing can. So a spec can let ten minutes of
aggregation runs go by in no time at all, and ask what happened a millisecond before a
run was due and at the very moment it was, on every machine, every time.
"""

from __future__ import annotations

from dojo.virtual_clock import no_task_outlives_its_spec, pytest_asyncio_loop_factories  # noqa: F401 - registered by importing
