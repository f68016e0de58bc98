"""Grading a class: our specs, untouched, against each student's kata modules, code that cannot cheat.

    uv run kata grade SUBMISSION... --out DIR [--kata SLUG ...] [--sandbox auto|bwrap|none]
    uv run python -m dojo.grade SUBMISSION... --out DIR
    uv run python -m dojo.grade classroom [--output PATH]

The trust boundary runs between the parent (the instructor's process) and the grading
processes (children), which run student code. The parts, in the order a grade is made:

- :mod:`~dojo.grading.plan`: the katas, specs, points and limits, and our side held in memory;
- :mod:`~dojo.grading.intake`: a submission read once, links refused, a static scan;
- :mod:`~dojo.grading.guard`: our repository and the Python environment, checked before each
  submission and before its results are written;
- :mod:`~dojo.grading.child`: each grading process on fresh copies, its limits, its pipe,
  the consistency checks, its process group killed when it ends;
- :mod:`~dojo.grading.sandbox`: bubblewrap around each grading process, where available;
- in the child, trusted: :mod:`~dojo.grading.bootstrap` (the process's start),
  :mod:`~dojo.grading.audit` (the audit hook) and :mod:`~dojo.grading.recorder` (the pytest plugin);
- :mod:`~dojo.grading.results` and :mod:`~dojo.grading.outputs`: results assembled and
  written by the parent only;
- :mod:`~dojo.grading.command`: the command line.
"""
