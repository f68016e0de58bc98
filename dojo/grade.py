"""``python -m dojo.grade`` and ``kata grade``: the command of :mod:`dojo.grading`."""

from __future__ import annotations

import sys

from dojo.grading.command import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
