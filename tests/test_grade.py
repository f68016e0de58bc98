"""Instructor grading (dojo/grading/): a class of broken and hostile submissions, graded fairly and safely.

Each test runs the grader as an instructor does, ``python -m dojo.grade ...``, in a subprocess.
Two corpora: broken code (hangs, crashes, floods) on kata 1, and hostile code (every class of
attack in issue 13) on every kata, with and without the sandbox. The slow tests are marked ``slow``.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from dojo import impl, manifest
from dojo.grading import child, guard, intake, outputs, plan
from dojo.manifest import REPO_ROOT

K01 = manifest.load().get("k01")
ALL = list(manifest.load())
SOLUTION = (K01.solution_folder / "notifications.py").read_text(encoding="utf-8")
STUB = impl.shipped_source(K01, "notifications.py").decode("utf-8")
SPEC = K01.spec_path.read_text(encoding="utf-8")
TASK = {task.number: task.points for task in K01.tasks}
SPEC_TIMEOUT = "1"  # seconds per spec: small, so the hangs in the corpus cost little


def edit(text: str, old: str, new: str) -> str:
    """``text`` with ``old`` (which must stand once) replaced: a stale corpus fails loudly."""
    assert text.count(old) == 1, f"the corpus no longer matches the solution: {old!r}"
    return text.replace(old, new)


def at_import(code: str, text: str = SOLUTION) -> str:
    """``text`` with ``code`` run when it is imported (after its __future__ import)."""
    return edit(text, "from __future__ import annotations\n", f"from __future__ import annotations\n{code}\n")


SEND = "    mailer.send(to=email, subject=SUBJECT, body=message)\n"
ANSWER = '        return {"status": "queued", "email": str(notification.email)}\n'
FORCE_GREEN = """
import pytest

@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    report.outcome = "passed"
    return report
"""

REWRITE_THE_GRADER = f"""
import pathlib, dojo
root = pathlib.Path(dojo.__file__).resolve().parent.parent
with (root / "conftest.py").open("a") as conftest:
    conftest.write({FORCE_GREEN!r})
"""

# case name -> the submission's files, relative to its folder (a clone, or a bare katas/ folder)
CORPUS: dict[str, dict[str, str]] = {
    "solution": {"katas/k01_fire_and_forget/notifications.py": SOLUTION},
    "rewrites_the_grader": {"katas/k01_fire_and_forget/notifications.py": at_import(REWRITE_THE_GRADER, STUB)},
    "untouched_stub": {"k01_fire_and_forget/notifications.py": STUB},
    "syntax_error": {
        "katas/k01_fire_and_forget/notifications.py": edit(SOLUTION, "def create_app(", "def create_app(:")
    },
    "import_error": {"katas/k01_fire_and_forget/notifications.py": at_import("import no_such_mail_library")},
    "missing_function": {
        "katas/k01_fire_and_forget/notifications.py": SOLUTION[: SOLUTION.index("def create_app(")],
    },
    "wrong_signature": {
        "katas/k01_fire_and_forget/notifications.py": edit(
            SOLUTION,
            "def send_notification_email(mailer: Mailer, email: str, message: str) -> None:",
            "def send_notification_email(mailer: Mailer, email: str) -> None:\n    message = 'hello'",
        ),
    },
    "sync_infinite_loop": {
        "katas/k01_fire_and_forget/notifications.py": edit(SOLUTION, ANSWER, "        while True:\n            pass\n"),
    },
    "await_never_returns": {
        "katas/k01_fire_and_forget/notifications.py": edit(
            at_import("import asyncio"), ANSWER, "        await asyncio.Event().wait()\n" + ANSWER
        ),
    },
    "time_sleep_in_async": {
        "katas/k01_fire_and_forget/notifications.py": edit(
            edit(at_import("import time"), "def send_notification_email(", "async def send_notification_email("),
            SEND,
            "    time.sleep(3600)\n" + SEND,
        ),
    },
    "swallows_the_timeout": {
        "katas/k01_fire_and_forget/notifications.py": edit(
            at_import("import time"),
            SEND,
            "    while True:\n        try:\n            time.sleep(60)\n"
            "        except BaseException:\n            pass\n",
        ),
    },
    "memory_hog": {
        "katas/k01_fire_and_forget/notifications.py": edit(SOLUTION, SEND, "    hoard = bytearray(4 * 2**30)\n" + SEND),
    },
    "sys_exit_at_import": {"katas/k01_fire_and_forget/notifications.py": at_import("import sys; sys.exit(0)")},
    "os_exit_at_import": {"katas/k01_fire_and_forget/notifications.py": at_import("import os; os._exit(0)")},
    "flood_of_output": {
        "katas/k01_fire_and_forget/notifications.py": edit(
            at_import("print('flood ' * 200_000)"), SEND, "    print('more ' * 50_000)\n" + SEND
        ),
    },
    "edited_spec_file": {
        "katas/k01_fire_and_forget/notifications.py": STUB,
        "katas/k01_fire_and_forget/test_fire_and_forget.py": (
            "import pytest\n\n\n@pytest.mark.task(1)\ndef test_everything():\n    assert True\n"
        ),
    },
    "untouched_stub_crlf": {"katas/k01_fire_and_forget/notifications.py": STUB.replace("\n", "\r\n")},
    "stub_with_a_comment": {"katas/k01_fire_and_forget/notifications.py": STUB + "\n# not started yet\n"},
    "conftest_forces_pass": {
        "katas/k01_fire_and_forget/notifications.py": STUB,
        "katas/k01_fire_and_forget/conftest.py": FORCE_GREEN,
        "conftest.py": FORCE_GREEN,
        "pytest.ini": "[pytest]\naddopts = -p no:dojo.plugin --co\n",
    },
}


def make_submission(folder, files):
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


def run_grader(*args, timeout=900):
    return subprocess.run(
        [sys.executable, "-m", "dojo.grade", *map(str, args)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def results_of(out, student):
    return json.loads((out / "students" / student / "summary.json").read_text(encoding="utf-8"))


def task_points(result, number, slug=K01.slug):
    kata = next(kata for kata in result["katas"] if kata["slug"] == slug)
    return next(task["points"] for task in kata["tasks"] if task["task_id"] == number)


def outcomes(result, task=None):
    return {test["outcome"] for test in result["tests"] if task is None or test["task_id"] == task}


# ------------------------------------------------------------------ the corpus, graded as one class


@pytest.fixture(name="corpus", scope="module")
def _corpus(tmp_path_factory):
    """Every case of the corpus graded in one run, two at a time, on kata 1."""
    root = tmp_path_factory.mktemp("class")
    folders = [make_submission(root / name, files) for name, files in CORPUS.items()]
    out = root / "out"
    started = time.monotonic()
    result = run_grader(*folders, "--out", out, "--kata", K01.slug, "--timeout", SPEC_TIMEOUT, "--jobs", "2")
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    return {
        "out": out,
        "stdout": result.stdout,
        "stderr": result.stderr,
        "elapsed": elapsed,
        **{name: results_of(out, name) for name in CORPUS},
    }


# case -> (status, points) expected; points from the manifest's tasks
EXPECTED = {
    "solution": ("pass", K01.points),
    "untouched_stub": ("fail", 0),
    "rewrites_the_grader": ("error", 0),  # its import is refused in every spec: each one an error
    "missing_function": ("fail", None),  # task 2 whole, task 3 nothing, task 1 what needs no app: checked below
    "sync_infinite_loop": ("fail", TASK[1] + TASK[2]),
    "await_never_returns": ("fail", TASK[1] + TASK[2]),
    "time_sleep_in_async": ("fail", TASK[1]),
    "swallows_the_timeout": ("fail", TASK[1]),
    "os_exit_at_import": ("error", 0),
    "flood_of_output": ("pass", K01.points),
    "edited_spec_file": ("fail", 0),
    "conftest_forces_pass": ("fail", 0),
    "untouched_stub_crlf": ("fail", 0),
    "stub_with_a_comment": ("fail", 0),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(EXPECTED))
def test_each_case_of_the_corpus_gets_its_status_and_points(corpus, case):
    """Right status and points for each case: hangs, crashes and tricks cost the student, not the class."""
    status, points = EXPECTED[case]
    result = corpus[case]
    points = result["points"] if points is None else points
    assert (result["status"], result["points"]) == (status, points), json.dumps(result, indent=1)[:3000]
    assert result["max_points"] == K01.points
    assert result["student"] == case
    assert len(result["tests"]) == sum(result["katas"][0]["outcomes"].values()) > 0


@pytest.mark.slow
def test_a_missing_function_costs_the_specs_that_need_it_and_no_others(corpus):
    """No create_app: every spec that builds the app errors (task 3 earns nothing); task 2's function still earns."""
    result = corpus["missing_function"]
    assert task_points(result, 2) == TASK[2]
    assert task_points(result, 3) == 0
    assert 0 <= task_points(result, 1) < TASK[1]
    needing_the_app = [test for test in result["tests"] if "create_app" in (test["message"] or "")]
    assert needing_the_app and all(test["outcome"] == "error" for test in needing_the_app)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["syntax_error", "import_error", "sys_exit_at_import"])
def test_code_that_does_not_import_fails_every_spec_without_crashing_the_run(corpus, case):
    """A syntax error, a missing library or sys.exit at import: zero, every spec judged, none lost."""
    result = corpus[case]
    assert result["points"] == 0
    assert outcomes(result) <= {"failed", "error"}, outcomes(result)
    assert all(test["message"] for test in result["tests"])


@pytest.mark.slow
def test_a_wrong_signature_earns_partial_credit_spec_by_spec(corpus):
    """Task 1 untouched (full), task 2 broken (zero), task 3 partly right: a share of its points."""
    result = corpus["wrong_signature"]
    assert task_points(result, 1) == TASK[1]
    assert task_points(result, 2) == 0
    assert 0 < task_points(result, 3) < TASK[3]
    assert result["points"] == task_points(result, 1) + task_points(result, 3)


@pytest.mark.slow
@pytest.mark.parametrize("case", ["sync_infinite_loop", "await_never_returns", "time_sleep_in_async"])
def test_a_hang_is_timed_out_on_its_specs_and_the_other_specs_still_run(corpus, case):
    """Each hanging spec says "timed out"; the specs that do not reach the hang pass."""
    result = corpus[case]
    assert outcomes(result, task=3) == {"timed out"}
    assert outcomes(result, task=1) == {"passed"}
    for test in result["tests"]:
        if test["outcome"] == "timed out":
            assert test["status"] == "error" and test["points"] == 0
            assert test["message"].startswith("timed out"), test["message"]


@pytest.mark.slow
def test_a_spec_that_swallows_the_timeout_is_stopped_and_the_rest_still_run(corpus):
    """A task that swallows every interruption is stopped (alarm or watchdog); the specs after it get verdicts."""
    result = corpus["swallows_the_timeout"]
    stopped = [test for test in result["tests"] if test["task_id"] == 2]
    assert stopped and {test["outcome"] for test in stopped} == {"timed out"}
    # Kata 1's specs call a `def` task in a worker thread, so the alarm reaches the spec's own
    # wait; where the loop holds the main thread, the watchdog kills the process instead.
    assert all(test["message"].startswith("timed out") for test in stopped), [t["message"] for t in stopped]
    assert outcomes(result, task=3) == {"timed out"}, "the specs after the killed one ran in a new process"
    assert "not run" not in outcomes(result)


@pytest.mark.slow
def test_memory_past_the_limit_is_a_memory_error_in_the_spec_that_asked(corpus):
    """4 GiB in one go is refused under the address-space limit: a MemoryError in that spec, the rest still pass."""
    result = corpus["memory_hog"]
    assert task_points(result, 1) == TASK[1]
    assert task_points(result, 2) == 0
    direct = [test for test in result["tests"] if test["task_id"] == 2]
    assert direct and all(test["outcome"] == "failed" and "MemoryError" in test["message"] for test in direct), [
        test["message"] for test in direct
    ]


@pytest.mark.slow
def test_os_exit_at_import_is_a_crash_on_the_spec_and_the_kata_is_not_retried(corpus):
    """os._exit kills the process: the spec running says so, the rest of the kata is "not run"."""
    result = corpus["os_exit_at_import"]
    assert [test["outcome"] for test in result["tests"]][:2] == ["crashed", "not run"]
    assert outcomes(result) == {"crashed", "not run"}
    assert "exit code 0" in result["tests"][0]["message"]
    assert result["message"].startswith("no spec ran to a verdict")


@pytest.mark.slow
def test_a_flood_of_output_is_cut_at_500_characters_per_spec(corpus):
    """Student output is captured and cut, as Exercism's interface asks; the grade is untouched."""
    result = corpus["flood_of_output"]
    outputs = [test["output"] for test in result["tests"] if test["output"]]
    assert outputs, "the flood was captured"
    assert all(len(output) <= plan.OUTPUT_CAP for output in outputs)
    assert any(output.endswith(plan.OUTPUT_CUT) for output in outputs)
    assert (corpus["out"] / "students" / "flood_of_output" / "summary.json").stat().st_size < 64_000


@pytest.mark.slow
def test_the_submissions_specs_conftest_and_settings_are_ignored_and_reported(corpus):
    """Our specs decide: an edited spec file is reported as modified, a conftest.py as ignored."""
    edited = corpus["edited_spec_file"]["katas"][0]
    assert edited["spec_file"] == "modified"
    assert "spec file is modified" in "; ".join(corpus["edited_spec_file"]["notes"])
    assert len(corpus["edited_spec_file"]["tests"]) == len(corpus["solution"]["tests"]), "graded with our specs"
    forced = corpus["conftest_forces_pass"]["katas"][0]
    # Kata 1 ships a conftest.py of its own: the submission's is reported as a changed copy of ours, never used.
    assert forced["modified_files"] == ["conftest.py"] and forced["ignored_files"] == []
    assert "modified conftest.py (ignored: graded with ours)" in "; ".join(corpus["conftest_forces_pass"]["notes"])
    assert corpus["solution"]["katas"][0]["spec_file"] == "absent"


@pytest.mark.slow
def test_a_kata_left_as_shipped_is_run_once_for_the_class_and_gets_the_verdicts_of_a_run_of_its_own(corpus):
    """The stub as shipped (line endings aside, whatever else is in the folder) runs once; each such submission gets it.

    The same stub with one comment more is the student's code: it runs on its own, and gets
    the same verdicts.
    """
    names = ("untouched_stub", "untouched_stub_crlf", "edited_spec_file", "conftest_forces_pass")
    shipped = [corpus[name] for name in names]
    own = corpus["stub_with_a_comment"]
    assert [result["katas"][0]["as_shipped"] for result in shipped] == [True] * 4
    assert own["katas"][0]["as_shipped"] is False
    assert {result["katas"][0]["note"] for result in shipped} == {"scored 0: left as shipped (the stub)"}

    def verdicts(result):
        return [(test["nodeid"], test["outcome"], test["message"], test["output"]) for test in result["tests"]]

    assert all(verdicts(result) == verdicts(own) for result in shipped)
    assert len({tuple(test["duration"] for test in result["tests"]) for result in shipped}) == 1, "one run for all"
    assert "run-" not in json.dumps([verdicts(result) for result in shipped]), "no grading folder in a message"


@pytest.mark.slow
def test_the_gradebook_has_a_row_per_student_and_the_maximum_first(corpus):
    """gradebook.csv: student, a column per kata, total, notes; the row after the header is the maximum."""
    rows = list(csv.reader((corpus["out"] / "gradebook.csv").read_text(encoding="utf-8").splitlines()))
    assert rows[0] == ["student", K01.slug, "total", "notes", "review"]
    assert rows[1] == ["(maximum)", str(K01.points), str(K01.points), "", ""]
    by_student = {row[0]: row for row in rows[2:]}
    assert set(by_student) == set(CORPUS)
    for case, (_status, expected) in EXPECTED.items():
        points = corpus[case]["points"] if expected is None else expected
        assert float(by_student[case][1]) == pytest.approx(points, abs=0.01) == float(by_student[case][2])
    assert "timed out" in by_student["sync_infinite_loop"][3]


@pytest.mark.slow
def test_the_run_states_its_limits_and_took_bounded_time(corpus):
    """The limits are printed and kept in each results.json; hangs cost seconds, not the run."""
    assert "1 s per spec" in corpus["stdout"] and "RLIMIT_AS" in corpus["stdout"]
    assert corpus["solution"]["limits"]["spec_timeout"] == 1.0
    assert corpus["solution"]["limits"]["output_cap"] == plan.OUTPUT_CAP
    assert corpus["elapsed"] < 120, f"the corpus took {corpus['elapsed']:.0f} s"


@pytest.mark.slow
def test_code_that_rewrites_the_grader_changes_only_its_own_copy(corpus):
    """It found "our" conftest and specs through dojo's path: its copy. Stubs graded after it still get zero."""
    assert corpus["rewrites_the_grader"]["points"] == 0
    assert corpus["edited_spec_file"]["points"] == corpus["conftest_forces_pass"]["points"] == 0
    assert "WARNING" not in corpus["stderr"]


# ------------------------------------------------------------------ the hostile corpus, graded on every kata

K03 = manifest.load().get("k03")
TOTAL = sum(kata.points for kata in ALL)
PRIVATE_LINE = "PRIVATE-FIRST-LINE-the-instructor-can-read"


def every_stub():
    return {
        f"katas/{kata.slug}/{name}": impl.shipped_source(kata, name).decode("utf-8")
        for kata in ALL
        for name in kata.module_files
    }


def every_solution():
    return {
        f"katas/{kata.slug}/{name}": (kata.solution_folder / name).read_text(encoding="utf-8")
        for kata in ALL
        for name in kata.module_files
    }


def k01_attack(code, base=STUB):
    """Every kata's stub, kata 1's module running ``code`` when it is imported."""
    return {**every_stub(), "katas/k01_fire_and_forget/notifications.py": at_import(code, base)}


SITE_PACKAGES = next(path for path in sys.path if path.endswith("site-packages"))
ATTACKS = {
    # 1. The grader's copy: rewrite it; then crash so that a relaunch would use the rewrite.
    "rewrites_the_grader": k01_attack(
        "import sys, pathlib\n"
        "root = pathlib.Path(sys.modules['dojo'].__file__).resolve().parent.parent\n"
        f"with (root / 'conftest.py').open('a') as conftest:\n    conftest.write({FORCE_GREEN!r})\n"
    ),
    "rewrites_the_grader_then_crashes": every_stub()
    | {
        "katas/k01_fire_and_forget/notifications.py": STUB + "\n"
        "import sys, pathlib, os\n"
        "try:\n"
        "    root = pathlib.Path(sys.modules['dojo'].__file__).resolve().parent.parent\n"
        f"    (root / 'conftest.py').write_text({FORCE_GREEN!r})\n"
        "    (root / 'dojo' / 'teach.py').write_text('')\n"
        "except BaseException:\n    pass\n"
        "def send_notification_email(mailer, email, message):\n    os._exit(3)\n"
    },
    # 2. The verdicts: pytest's reports, the JSON encoder, a plugin found through the collector, forged lines.
    "forges_pytest_reports": k01_attack(
        "import sys\n"
        "reports = sys.modules['_pytest.reports']\n"
        "reports.BaseReport.failed = property(lambda self: False)\n"
        "reports.BaseReport.passed = property(lambda self: True)\n"
    ),
    "patches_the_json_encoder": k01_attack(
        "import json\n"
        "real = json.dumps\n"
        "def forged(record, *args, **kwargs):\n"
        "    if isinstance(record, dict) and record.get('event') == 'result':\n"
        "        record = {**record, 'outcome': 'passed', 'message': None}\n"
        "    if isinstance(record, dict) and record.get('event') == 'finish':\n"
        "        record = {**record, 'exitstatus': 0}\n"
        "    return real(record, *args, **kwargs)\n"
        "json.dumps = forged\n"
    ),
    "reaches_into_the_grader": k01_attack(
        "import sys\n"
        "try:\n    from dojo.grading import recorder\nexcept BaseException:\n    pass\n"
        "for thing in sys.modules['gc'].get_objects():\n"
        "    if type(thing).__name__ == 'PytestPluginManager':\n"
        f"        exec({FORCE_GREEN!r}, globals())\n"
        "        thing.register(sys.modules[__name__])\n"
    ),
    "forges_lines_in_the_pipe": k01_attack(
        "import os, json\n"
        "for fd in range(3, 1024):\n"
        "    try:\n"
        "        os.write(fd, (json.dumps({'event': 'finish', 'exitstatus': 0}) + '\\n').encode())\n"
        "    except OSError:\n        pass\n"
        "os._exit(0)\n"
    ),
    # 3 and 6. The output folder and the classmates, found through the parent's command line.
    "reads_the_parent_and_rewrites_outputs": k01_attack(
        "import os, pathlib, json\n"
        "args = pathlib.Path(f'/proc/{os.getppid()}/cmdline').read_bytes().split(b'\\0')\n"
        "out = pathlib.Path(args[args.index(b'--out') + 1].decode())\n"
        "for results in out.glob('students/**/*.json'):\n"
        "    results.write_text(json.dumps({'points': 0}))\n"
        "(out / '.specs.json').write_text(json.dumps({'grader': 'x', 'specs': []}))\n"
    ),
    # 3 and 4. Processes: a daemon that outlives the grader, a fork that leaves its session.
    "starts_a_daemon": k01_attack(
        "import subprocess, sys, os, time\n"
        "try:\n"
        "    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'], start_new_session=True)\n"
        "except BaseException:\n    pass\n"
        "if os.fork() == 0:\n    os.setsid()\n    time.sleep(30)\n    os._exit(0)\n"
    ),
    "stops_the_parent": k01_attack("import os, signal\nos.kill(os.getppid(), signal.SIGSTOP)\n"),
    "kills_the_parent_from_a_thread": k01_attack(
        "import os, signal, threading, time\n"
        "threading.Thread(target=os.kill, args=(os.getppid(), signal.SIGKILL)).start()\n"
        "threading.Thread(target=os.killpg, args=(0, signal.SIGTERM)).start()\n"
        "time.sleep(0.2)\n"
    ),
    # 6. Our solutions, through the repository the environment lives in.
    "loads_the_solution_from_the_repository": k01_attack(
        "import sys, pathlib\n"
        "try:\n    from solutions.k01_fire_and_forget.notifications import *\nexcept ImportError:\n"
        "    repo = pathlib.Path(sys.prefix).parent\n"
        "    source = (repo / 'solutions' / 'k01_fire_and_forget' / 'notifications.py').read_text()\n"
        "    exec(compile(source, __file__, 'exec'))\n",
        SOLUTION[: SOLUTION.index("class Mailer")],
    ),
    # 7. The instructor's side: their conftest.py, a .pth file in the environment.
    "edits_the_instructors_conftest": k01_attack(
        f"import sys, pathlib\n(pathlib.Path(sys.prefix).parent / 'conftest.py').open('a').write({FORCE_GREEN!r})\n"
    ),
    "writes_a_pth_file": k01_attack(
        f"import pathlib\npathlib.Path({SITE_PACKAGES!r}, 'zz_kata_grade_attack.pth').write_text('import os\\n')\n"
    ),
    # 8. A value whose __eq__ is always true, where a spec compares what the code returns.
    "always_equal_backoff": {
        **every_stub(),
        "katas/k03_retry/payments.py": edit(
            (K03.solution_folder / "payments.py").read_text(encoding="utf-8"),
            "    return min(policy.max_delay, policy.base_delay * 2**retry) + policy.jitter * rng()\n",
            "    class Anything(float):\n"
            "        def __eq__(self, other):\n            return True\n"
            "        def __ne__(self, other):\n            return False\n"
            "        __hash__ = float.__hash__\n"
            "    return Anything(0.0)\n",
        ),
    },
    # 9. Robustness: a message holding a lone surrogate.
    "lone_surrogate": k01_attack("import os\nraise ValueError(os.fsdecode(b'caf\\xff'))\n"),
    # The baselines: every solution earns everything under the audit hook; every stub nothing.
    "solution": every_solution(),
    "untouched_stub": every_stub(),
    "gradebook.csv": every_stub() | {"katas/k01_fire_and_forget/notifications.py": SOLUTION},
    "=HYPERLINK(1)": every_stub(),
}

# 5. Links: made in the class folder (a submission is a folder of files; these are links).
LINKS = {
    "links_to_the_solution": {
        f"katas/{kata.slug}/{name}": kata.solution_folder / name for kata in ALL for name in kata.module_files
    },
    "links_to_a_secret": {"katas/k01_fire_and_forget/notifications.py": "secret.txt"},
    "links_a_folder_to_a_classmate": {"katas/k01_fire_and_forget": "solution/katas/k01_fire_and_forget"},
}

# case -> (status, points, flagged for review)
HOSTILE = {
    "rewrites_the_grader": ("fail", 0, True),
    "rewrites_the_grader_then_crashes": ("fail", 0, True),
    "forges_pytest_reports": ("fail", 0, True),
    "patches_the_json_encoder": ("fail", 0, True),
    "reaches_into_the_grader": ("fail", 0, True),
    "forges_lines_in_the_pipe": ("fail", 0, True),
    "reads_the_parent_and_rewrites_outputs": ("fail", 0, True),
    "starts_a_daemon": ("fail", 0, True),
    "stops_the_parent": ("fail", 0, True),
    "kills_the_parent_from_a_thread": ("fail", 0, True),
    "links_to_the_solution": ("fail", 0, True),
    "links_to_a_secret": ("fail", 0, True),
    "links_a_folder_to_a_classmate": ("fail", 0, True),
    "loads_the_solution_from_the_repository": ("fail", 0, True),
    "edits_the_instructors_conftest": ("fail", 0, True),
    "writes_a_pth_file": ("fail", 0, True),
    "always_equal_backoff": ("fail", None, False),  # less than kata 3's points: checked below
    "lone_surrogate": ("fail", 0, False),
    "solution": ("pass", TOTAL, False),
    "untouched_stub": ("fail", 0, False),
    "gradebook.csv": ("fail", K01.points, False),
    "=HYPERLINK(1)": ("fail", 0, False),
    "symlinked_folder": ("pass", TOTAL, False),
}


def grading_processes(marker):
    """Processes whose command line names ``marker`` (the grader's temporary folder)."""
    return [
        line
        for line in subprocess.check_output(["ps", "-ww", "-eo", "args"], text=True).splitlines()
        if str(marker) in line and "ps -ww" not in line
    ]


SANDBOXES = ["none", pytest.param("bwrap", marks=pytest.mark.skipif(shutil.which("bwrap") is None, reason="no bwrap"))]


@pytest.fixture(name="hostile", scope="module", params=SANDBOXES)
def _hostile(request, tmp_path_factory):
    """Every hostile case graded in one run, on every kata, two at a time, with and without the sandbox."""
    root = tmp_path_factory.mktemp(f"hostile-{request.param}")
    school = root / "class"
    for name, files in ATTACKS.items():
        make_submission(school / name, files)
    (root / "secret.txt").write_text(PRIVATE_LINE + "\nsecond line\n", encoding="utf-8")
    for name, links in LINKS.items():
        make_submission(school / name, every_stub())
        for path, pointed in links.items():
            link = school / name / path
            if link.is_dir():
                shutil.rmtree(link)
            else:
                link.unlink()
            target = pointed
            if not isinstance(pointed, os.PathLike):
                target = root / pointed if pointed == "secret.txt" else school / pointed
            link.symlink_to(target)
    (school / "symlinked_folder").symlink_to(school / "solution")
    (school / "notes.txt").write_text("a stray file among the folders", encoding="utf-8")
    conftest_before = (REPO_ROOT / "conftest.py").read_bytes()
    scratch = root / "scratch"
    scratch.mkdir()
    out = root / "out"
    folders = sorted(school.iterdir())
    started = time.monotonic()
    result = run_grader_in(scratch, *folders, "--out", out, "--timeout", "5", "--jobs", "2", "--sandbox", request.param)
    elapsed = time.monotonic() - started
    time.sleep(0.5)  # a daemon that escaped would be running now
    return {
        "mode": request.param,
        "out": out,
        "result": result,
        "elapsed": elapsed,
        "scratch": scratch,
        "leftover_processes": grading_processes(scratch) + grading_processes(root),
        "leftover_files": sorted(str(path) for path in scratch.iterdir()),
        "conftest_changed": (REPO_ROOT / "conftest.py").read_bytes() != conftest_before,
        "pth_written": (Path(SITE_PACKAGES) / "zz_kata_grade_attack.pth").exists(),
        **{name: results_of(out, name) for name in HOSTILE},
    }


def run_grader_in(scratch, *args, timeout=2400):
    return subprocess.run(
        [sys.executable, "-m", "dojo.grade", *map(str, args)],
        cwd=REPO_ROOT,
        env={**os.environ, "TMPDIR": str(scratch)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.slow
def test_the_hostile_run_finishes_and_leaves_no_process_and_no_file_behind(hostile):
    """Signals, daemons, forks: the run ends normally (exit 0), and nothing of it is left running or on disk."""
    result = hostile["result"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert hostile["leftover_processes"] == []
    assert hostile["leftover_files"] == []
    assert not hostile["conftest_changed"], "the instructor's conftest.py was changed"
    assert not hostile["pth_written"], "a .pth file was written into the environment"
    assert "skipped" in result.stdout and "notes.txt" in result.stdout, "a stray file is skipped, not fatal"
    said = result.stdout.count("sandbox:")
    assert said == 1, "the sandbox is named once"
    if hostile["mode"] == "none":
        assert "no sandbox" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("case", list(HOSTILE))
def test_each_hostile_case_gets_its_status_points_and_flag(hostile, case):
    """The table of the corpus: status, points on every kata, marked for review or not."""
    status, points, flagged = HOSTILE[case]
    result = hostile[case]
    table = (result["status"], result["points"], bool(result["review"]))
    if points is None:
        points = result["points"]
    assert table == (status, points, flagged), json.dumps(
        {key: result[key] for key in ("status", "points", "review", "notes")}, indent=1
    )[:3000]
    assert result["max_points"] == TOTAL
    assert [kata["slug"] for kata in result["katas"]] == [kata.slug for kata in ALL]
    assert result["student"] == case
    assert result["sandbox"] == hostile["mode"]
    assert not any("out of memory" in (test["message"] or "") for test in result["tests"])


@pytest.mark.slow
def test_a_value_that_equals_anything_does_not_earn_the_task(hostile):
    """Kata 3's backoff_delay returning an object whose __eq__ is always true: not full marks for task 1."""
    result = hostile["always_equal_backoff"]
    assert task_points(result, 1, K03.slug) < K03.tasks[0].points


@pytest.mark.slow
def test_classmates_results_and_the_spec_cache_stay_true(hostile):
    """An attack on the output folder changed nothing: the solution still has every point, the cache still holds."""
    assert hostile["solution"]["points"] == TOTAL
    cache = json.loads((hostile["out"] / ".specs.json").read_text(encoding="utf-8"))
    assert len(cache["specs"]) == len(hostile["solution"]["tests"])
    ledger = json.loads((hostile["out"] / ".ledger.json").read_text(encoding="utf-8"))
    assert set(ledger) == set(HOSTILE)


@pytest.mark.slow
def test_refusals_are_errors_on_the_spec_and_named_for_review(hostile):
    """What the audit hook refused is the running spec's error, and the review says what was attempted."""
    daemon = hostile["starts_a_daemon"]
    review = "; ".join(daemon["review"])
    assert "spawning a process" in review and "forking" in review, review
    assert "imports subprocess" in review and "forks the process" in review
    refused = [test for test in daemon["tests"] if (test["message"] or "").startswith("refused by the grader")]
    assert refused and all(test["outcome"] == "error" for test in refused)
    assert "sending signal" in "; ".join(hostile["stops_the_parent"]["review"])
    assert "code the submission scheduled" in "; ".join(hostile["kills_the_parent_from_a_thread"]["review"])
    assert "machinery" in "; ".join(hostile["forges_pytest_reports"]["review"])
    assert "machinery" in "; ".join(hostile["patches_the_json_encoder"]["review"])
    assert "token" in "; ".join(hostile["forges_lines_in_the_pipe"]["review"])
    crashed = hostile["rewrites_the_grader_then_crashes"]
    assert "crashed" in outcomes(crashed), "it crashed; the specs after it ran again, on a fresh copy"
    assert task_points(crashed, 1) == 0 and task_points(crashed, 3) == 0


@pytest.mark.slow
def test_links_are_refused_with_a_note_and_never_read(hostile):
    """A module linked to the solution or to any readable file, a folder linked to a classmate's: refused."""
    for case in LINKS:
        notes = "; ".join(hostile[case]["notes"])
        assert "symbolic link" in notes, notes
    text = (hostile["out"] / "students" / "links_to_a_secret" / "summary.json").read_text(encoding="utf-8")
    assert PRIVATE_LINE not in text
    assert hostile["symlinked_folder"]["student"] == "symlinked_folder", "named as given, not after its target"


@pytest.mark.slow
def test_odd_names_and_odd_text_are_graded_and_written_safely(hostile):
    """A lone surrogate, a folder called gradebook.csv, a name that is a formula: graded, written, quoted."""
    surrogate = hostile["lone_surrogate"]
    assert any("\ufffd" in (test["message"] or "") for test in surrogate["tests"])
    assert hostile["gradebook.csv"]["points"] == K01.points
    rows = list(csv.reader((hostile["out"] / "gradebook.csv").read_text(encoding="utf-8").splitlines()))
    names = [row[0] for row in rows[2:]]
    assert "'=HYPERLINK(1)" in names and "=HYPERLINK(1)" not in names
    assert "gradebook.csv" in names
    flagged = {row[0]: row[-1] for row in rows[2:]}
    assert flagged["starts_a_daemon"].startswith("REVIEW:") and flagged["solution"] == ""


@pytest.mark.slow
def test_the_submission_time_limit_stops_a_submission_that_hangs_spec_after_spec(tmp_path):
    """Past --submission-timeout the process is killed: the spec running and the rest say why; results are written."""
    files = {
        f"{K01.slug}/notifications.py": CORPUS["await_never_returns"]["katas/k01_fire_and_forget/notifications.py"]
    }
    folder = make_submission(tmp_path / "hangs", files)
    command = [
        folder,
        "--out",
        tmp_path / "out",
        "--kata",
        "k01",
        "--timeout",
        SPEC_TIMEOUT,
        "--submission-timeout",
        "4",
    ]
    result = run_grader(*command)
    assert result.returncode == 0, result.stdout + result.stderr
    graded = results_of(tmp_path / "out", "hangs")
    tests = graded["tests"]
    assert tests and all(test["outcome"] for test in tests), "every spec has a verdict"
    stopped = [test for test in tests if "submission's time limit (4 s)" in (test["message"] or "")]
    assert stopped, json.dumps(graded, indent=1)[:3000]
    assert {test["outcome"] for test in stopped} <= {"timed out", "not run"}
    assert graded["points"] <= TASK[1] + TASK[2]
    assert graded["duration"] < 4 + 3, "killed at the limit, not at the end of its specs"


@pytest.mark.slow
def test_code_that_writes_to_this_repository_is_refused_and_reported(tmp_path):
    """A submission that knows our path and edits our spec file: refused, marked for review, our file untouched."""
    original = K01.spec_path.read_bytes()
    tamper = f"pathlib.Path({str(K01.spec_path)!r}).write_text('# graded by me')"
    folder = make_submission(
        tmp_path / "mallory", {f"{K01.slug}/notifications.py": at_import(f"import pathlib\n{tamper}", STUB)}
    )
    try:
        result = run_grader(
            folder, "--out", tmp_path / "out", "--kata", "k01", "--timeout", SPEC_TIMEOUT, "--sandbox", "none"
        )
        assert K01.spec_path.read_bytes() == original, "the write was refused"
    finally:
        K01.spec_path.write_bytes(original)
    assert result.returncode == 0, result.stdout + result.stderr
    graded = results_of(tmp_path / "out", "mallory")
    assert graded["points"] == 0
    assert any("writing outside its work folder" in entry for entry in graded["review"]), graded["review"]
    assert "marked for review" in result.stdout


@pytest.mark.slow
def test_a_change_to_our_side_during_the_run_stops_it_before_any_later_grade(tmp_path):
    """Something changed our files while grading (past every defence): stop, put them back, write no later grade."""
    readme = K01.folder / "README.md"
    original = readme.read_bytes()
    hang = CORPUS["await_never_returns"]["katas/k01_fire_and_forget/notifications.py"]
    folders = [
        make_submission(tmp_path / name, {f"{K01.slug}/notifications.py": text})
        for name, text in {"s0_stub": STUB, "s1_hangs": hang, "s2_solution": SOLUTION}.items()
    ]
    out = tmp_path / "out"
    command = [sys.executable, "-m", "dojo.grade", *map(str, folders), "--out", str(out), "--jobs", "1"]
    command += ["--kata", "k01", "--timeout", SPEC_TIMEOUT]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not list(out.glob("students/*/summary.json")) and time.monotonic() < deadline:
            time.sleep(0.05)
        readme.write_bytes(original + b"\n<!-- changed while grading -->\n")
        stdout, stderr = process.communicate(timeout=120)
        assert readme.read_bytes() == original, "put back"
    finally:
        readme.write_bytes(original)
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, stdout + stderr
    assert "STOPPED" in stderr and "README.md" in stderr and "Being graded then:" in stderr
    written = sorted(path.parent.name for path in out.glob("students/*/summary.json"))
    assert written[0] == "s0_stub" and "s2_solution" not in written, written
    assert not (out / "gradebook.csv").exists()


@pytest.mark.slow
@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_a_grader_killed_outright_leaves_no_grading_process_running(tmp_path, sandbox):
    """SIGKILL to the grader (it cannot clean up): its grading processes notice and end within a second."""
    hang = CORPUS["await_never_returns"]["katas/k01_fire_and_forget/notifications.py"]
    folder = make_submission(tmp_path / "hangs", {f"{K01.slug}/notifications.py": hang})
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    command = [sys.executable, "-m", "dojo.grade", str(folder), "--out", str(tmp_path / "out"), "--kata", "k01"]
    command += ["--timeout", "60", "--sandbox", sandbox]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env={**os.environ, "TMPDIR": str(scratch)}, stdout=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not grading_processes(scratch) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert grading_processes(scratch), "a grading process started"
    process.kill()
    process.wait()
    deadline = time.monotonic() + 5
    while grading_processes(scratch) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert grading_processes(scratch) == []
    shutil.rmtree(scratch)


def test_the_guard_sees_a_pth_file_added_to_the_environment(tmp_path):
    """A .pth file in site-packages runs in every later Python process: the snapshot names it."""
    site_packages = tmp_path / "site-packages"
    (site_packages / "fastapi").mkdir(parents=True)
    (site_packages / "fastapi" / "__init__.py").write_text("# the real one\n", encoding="utf-8")
    snapshot = guard.Snapshot(tree={}, folders=[site_packages], environment=guard._signature([site_packages]))
    assert snapshot.changes() == []
    (site_packages / "zz_attack.pth").write_text("import os\n", encoding="utf-8")
    (site_packages / "sitecustomize.py").write_text("import os\n", encoding="utf-8")
    changes = "; ".join(snapshot.changes())
    assert "zz_attack.pth (added)" in changes and "sitecustomize.py (added)" in changes
    assert guard.Snapshot.take(tuple(ALL)).changes() == [], "the real environment and our files, unchanged"


# ------------------------------------------------------------------ every kata, outputs, resuming


@pytest.mark.slow
def test_every_kata_end_to_end_with_exercism_results_junit_and_a_rerun_that_keeps_them(tmp_path, exercism_v3):
    """Solution and stub on every kata in the manifest; a rerun keeps both; an edit is regraded."""
    solution = tmp_path / "ada"
    stub = tmp_path / "bob" / "katas"
    for kata in ALL:
        for name in kata.module_files:
            make_submission(solution, {f"katas/{kata.slug}/{name}": (kata.solution_folder / name).read_text()})
            make_submission(stub, {f"{kata.slug}/{name}": impl.shipped_source(kata, name).decode()})
    out = tmp_path / "out"
    first = run_grader(solution, stub, "--out", out, "--timeout", "5")
    assert first.returncode == 0, first.stdout + first.stderr
    ada, bob = results_of(out, "ada"), results_of(out, "bob")
    assert (ada["points"], ada["max_points"], ada["status"]) == (sum(k.points for k in ALL),) * 2 + ("pass",)
    assert (bob["points"], bob["status"]) == (0, "fail")
    assert [kata["slug"] for kata in ada["katas"]] == [kata.slug for kata in ALL]
    assert {"version", "status", "message", "tests"} <= set(ada) and ada["version"] == 3
    for test in bob["tests"]:
        assert {"name", "status", "message", "output", "task_id"} <= set(test)
        assert test["status"] == "fail" and test["message"]
    suites = ET.parse(out / "junit.xml").getroot()  # noqa: S314 - the grader's own output
    assert [suite.get("name") for suite in suites] == ["ada", "bob"]
    assert suites[1].get("failures") == str(len(bob["tests"])) and suites[0].get("failures") == "0"
    for name, status in (("ada", "pass"), ("bob", "fail")):
        for kata in ALL:
            exercism = json.loads((out / "students" / name / kata.slug / "results.json").read_text(encoding="utf-8"))
            exercism_v3(exercism)
            assert exercism["status"] == status, (name, kata.slug)
            assert len(exercism["tests"]) == sum(test["kata"] == kata.slug for test in ada["tests"])

    before = {name: (out / "students" / name / "summary.json").stat().st_mtime_ns for name in ("ada", "bob")}
    again = run_grader(solution, stub, "--out", out, "--timeout", "5")
    assert again.returncode == 0, again.stderr
    assert "0 graded, 2 kept" in again.stdout
    assert before == {name: (out / "students" / name / "summary.json").stat().st_mtime_ns for name in ("ada", "bob")}

    (solution / "katas" / K01.slug / "notifications.py").write_text(STUB)
    edited = run_grader(solution, stub, "--out", out, "--timeout", "5")
    assert "1 graded, 1 kept" in edited.stdout, edited.stdout
    assert results_of(out, "ada")["points"] == sum(kata.points for kata in ALL) - K01.points


@pytest.mark.slow
def test_an_interrupted_run_keeps_what_finished_and_a_rerun_grades_the_rest(tmp_path):
    """Ctrl-C mid-submission: its process killed, finished results kept whole; the same command grades the rest."""
    hang = CORPUS["await_never_returns"]["katas/k01_fire_and_forget/notifications.py"]
    sources = {"s0_stub": STUB, "s1_hangs": hang, "s2_solution": SOLUTION}
    folders = [
        make_submission(tmp_path / name, {f"{K01.slug}/notifications.py": text}) for name, text in sources.items()
    ]
    out = tmp_path / "out"
    command = [sys.executable, "-m", "dojo.grade", *map(str, folders), "--out", str(out), "--jobs", "1"]
    command += ["--kata", "k01", "--timeout", SPEC_TIMEOUT]
    scratch = tmp_path / "scratch"  # the grader's temporary folders: its children's command lines name it
    scratch.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch)}

    def grading_processes():
        return [
            line
            for line in subprocess.check_output(["ps", "-ww", "-eo", "args"], text=True).splitlines()
            if str(scratch) in line
        ]

    process = subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not (list(out.glob("students/*/summary.json")) and grading_processes()) and time.monotonic() < deadline:
        time.sleep(0.05)  # s0 is graded, s1 hangs in its own process
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stdout + stderr
    assert "run the same command again" in stderr
    assert grading_processes() == [], "every grading process was killed"
    assert not list(scratch.iterdir()), "and its temporary copies removed"
    assert sorted(path.parent.name for path in out.glob("students/*/summary.json")) == ["s0_stub"]
    assert not list(out.rglob("*.tmp")), "no half-written results"

    rerun = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "2 graded, 1 kept" in rerun.stdout
    assert [results_of(out, name)["points"] for name in sources] == [0, TASK[1] + TASK[2], K01.points]


# ------------------------------------------------------------------ the classroom, the errors


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["{tmp}", "--out", "{tmp}/out", "--kata", "k99"], "no kata called 'k99'"),
        (["{tmp}/nowhere", "--out", "{tmp}/out"], "not a folder"),
        (["{tmp}/a/ada", "{tmp}/b/ada", "--out", "{tmp}/out"], "both called 'ada'"),
        (["{tmp}", "--out", "{tmp}/out", "--timeout", "0"], "must be positive"),
        (["classroom", "--minutes", "99"], "between 1 and 60"),
    ],
)
def test_a_mistake_on_the_command_line_is_a_message_and_exit_2_not_a_traceback(tmp_path, args, says):
    """Unknown kata, missing folder, two students with one name, a bad limit: said plainly, before any grading."""
    (tmp_path / "a" / "ada").mkdir(parents=True)
    (tmp_path / "b" / "ada").mkdir(parents=True)
    result = run_grader(*(arg.format(tmp=tmp_path) for arg in args))
    assert result.returncode == 2
    assert says in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_results_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    """write_atomically replaces the file in one step and leaves no temporary file behind, even on failure."""
    target = tmp_path / "ada" / "results.json"
    outputs.write_atomically(target, "old")
    outputs.write_atomically(target, "new")
    assert target.read_text() == "new"

    def broken(*_args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", broken)
    with pytest.raises(OSError, match="disk full"):
        outputs.write_atomically(target, "half")
    assert target.read_text() == "new"
    assert sorted(path.name for path in target.parent.iterdir()) == ["results.json"]


def test_files_we_ship_in_a_kata_folder_are_noted_only_when_changed(tmp_path):
    """A clone's untouched kata conftest.py is ours (no note); an edited one is reported as modified."""
    kata = next((k for k in manifest.load() if (k.folder / "conftest.py").is_file()), None)
    if kata is None:
        pytest.skip("no kata ships its own conftest.py")
    folder = tmp_path / "student" / "katas" / kata.slug
    shutil.copytree(kata.folder, folder, ignore=shutil.ignore_patterns("__pycache__"))
    submission = plan.Submission(tmp_path / "student", "student")
    ours = plan.grader_files((kata,))
    _modules, untouched = intake.inspect_kata(submission, kata, ours)
    assert untouched["modified_files"] == [] and untouched["ignored_files"] == []
    with (folder / "conftest.py").open("a") as conftest:
        conftest.write("\n# the student's edit\n")
    (folder / "notes.txt").write_text("mine")
    _modules, edited = intake.inspect_kata(submission, kata, ours)
    assert edited["modified_files"] == ["conftest.py"] and edited["ignored_files"] == ["notes.txt"]


@pytest.mark.slow
def test_what_one_katas_code_breaks_does_not_cost_points_in_another_kata(tmp_path):
    """Each kata runs in processes of its own: kata 1's code sabotaging FastAPI leaves kata 2 whole."""
    k02 = manifest.load().get("k02")
    sabotage = at_import("import fastapi.applications\nfastapi.applications.FastAPI.__call__ = None")
    files = {"katas/k01_fire_and_forget/notifications.py": sabotage}
    files.update(
        {
            f"katas/{k02.slug}/{name}": (k02.solution_folder / name).read_text(encoding="utf-8")
            for name in k02.module_files
        }
    )
    folder = make_submission(tmp_path / "mallory", files)
    out = tmp_path / "out"
    run = run_grader(folder, "--out", out, "--kata", K01.slug, "--kata", k02.slug, "--timeout", SPEC_TIMEOUT)
    assert run.returncode == 0, run.stdout + run.stderr
    result = results_of(out, "mallory")
    points = {kata["slug"]: kata["points"] for kata in result["katas"]}
    assert points[k02.slug] == k02.points, f"kata 2 lost points to kata 1's code: {points}"
    assert points[K01.slug] < K01.points


# ------------------------------------------------------------------ the parts, one at a time (fast)

AUDIT_PROBE = r"""
import gc, json, os, signal, subprocess, sys, pathlib
sys.path.insert(0, sys.argv[1])
from dojo.grading import audit
code, scratch = pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
reports = []
audit.install(code=code, writable=[code, scratch, pathlib.Path(os.devnull)],
              readable=[pathlib.Path(sys.base_prefix), pathlib.Path(sys.prefix), code, scratch],
              report=lambda what, where: reports.append((what, where)))
student = (code / "student.py").read_text()
outcomes = {}
namespace = {"outcomes": outcomes, "scratch": scratch}
exec(compile(student, str(code / "student.py"), "exec"), namespace)
print(json.dumps({"outcomes": outcomes, "reports": reports}))
"""

STUDENT_PROBE = r"""
import os, signal, subprocess, sys, threading, asyncio, logging, concurrent.futures

def attempt(name, action):
    try:
        action()
        outcomes[name] = "allowed"
    except PermissionError as error:
        outcomes[name] = "refused" if "refused by the grader" in str(error) else f"other: {error}"
    except Exception as error:
        outcomes[name] = f"other: {type(error).__name__}"

def f():
    pass

def loopback(host):
    import socket
    server = socket.socket()
    server.bind((host, 0))
    server.listen(1)
    try:
        socket.create_connection(server.getsockname(), timeout=1).close()
    finally:
        server.close()

attempt("import_the_grader", lambda: __import__("dojo.grading.recorder"))
attempt("import_pytest", lambda: __import__("_pytest.runner"))
attempt("gc_walk", lambda: sys.modules["gc"].get_objects())
attempt("rewrite_code", lambda: setattr(logging.getLogger, "__code__", f.__code__))
attempt("spawn", lambda: subprocess.Popen(["true"]))
attempt("system", lambda: os.system("true"))
attempt("fork", lambda: os.fork())
attempt("signal", lambda: os.kill(os.getpid(), 0))
attempt("write_outside", lambda: open("/tmp/kata-grade-probe-outside", "w"))
attempt("write_inside", lambda: open(scratch / "mine.txt", "w").close())
attempt("read_proc", lambda: open(f"/proc/{os.getppid()}/cmdline").read())
attempt("connect", lambda: __import__("socket").create_connection(("192.0.2.1", 80), timeout=0.1))
attempt("loopback", lambda: loopback("127.0.0.1"))
attempt("loopback_net", lambda: loopback("127.0.0.2"))  # all of 127.0.0.0/8 is this machine
attempt("frames", lambda: sys._getframe(1))
attempt("exec", lambda: exec("1 + 1"))
attempt("thread_signal", lambda: concurrent.futures.ThreadPoolExecutor(1).submit(os.kill, os.getpid(), 0).result())
attempt("logging", lambda: logging.getLogger("kata").warning("%s", "hello"))
attempt("asyncio", lambda: asyncio.run(asyncio.sleep(0)))
attempt("thread_pool", lambda: concurrent.futures.ThreadPoolExecutor(2).submit(sum, [1, 2]).result())
"""


def test_the_audit_hook_refuses_what_no_kata_needs_and_allows_what_katas_use(tmp_path):
    """Each refusal raises where it happened and is reported; threads, asyncio, logging and pools still work."""
    code, scratch = tmp_path / "code", tmp_path / "tmp"
    code.mkdir()
    scratch.mkdir()
    (code / "student.py").write_text(STUDENT_PROBE, encoding="utf-8")
    run = subprocess.run(
        [sys.executable, "-c", AUDIT_PROBE, str(REPO_ROOT), str(code), str(scratch)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.splitlines()[-1])
    allowed = {"write_inside", "logging", "asyncio", "thread_pool", "loopback", "loopback_net"}
    assert {name: result for name, result in seen["outcomes"].items() if name in allowed} == dict.fromkeys(
        allowed, "allowed"
    )
    refused = {name: result for name, result in seen["outcomes"].items() if name not in allowed}
    assert refused == dict.fromkeys(refused, "refused"), refused
    assert len(seen["reports"]) >= len(refused)
    assert any("scheduled" in where for _what, where in seen["reports"]), "a pool's job is refused too"
    assert not Path("/tmp/kata-grade-probe-outside").exists()  # noqa: S108 - where it must not write


def test_the_static_scan_flags_what_the_hook_refuses_and_not_kata_code():
    """Reaching for the grader, the collector, processes or frames is flagged; every solution is clean."""
    flags = intake.scan(
        b"import sys, gc\nfrom dojo.grading import recorder\nimport subprocess\n"
        b"sys.modules['x']\nf = sys._getframe(1)\nexec('1')\nopen('/proc/1/cmdline')\n"
    )
    text = "; ".join(flags)
    for expected in ("imports gc", "from dojo.grading", "imports subprocess", "sys.modules", "_getframe", "exec"):
        assert expected in text, text
    assert "/proc/" in text
    for kata in ALL:
        for name in kata.module_files:
            source = (kata.solution_folder / name).read_bytes()
            assert intake.scan(source, test_file=kata.module_is_tests) == [], f"{kata.slug}/{name}"


def test_a_process_the_grader_killed_is_never_maybe_out_of_memory():
    """SIGKILL from the grader (lingering, time limit) says so; only an unexplained SIGKILL hints at memory."""
    assert "out of memory" in child.how_it_ended(-signal.SIGKILL)
    for reason in ("lingered", "spec", "submission", "flood"):
        text = child.how_it_ended(-signal.SIGKILL, reason)
        assert "stopped by the grader" in text and "memory" not in text


def test_the_stream_is_checked_for_consistency():
    """A line without the token, a verdict for a spec that is not running, a second verdict: all problems."""
    token = os.urandom(8).hex()
    run = child.ChildRun(token=token, expected=["a", "b"])

    def line(signed=token, **record):
        return (json.dumps({**record, "token": signed}) + "\n").encode()

    run.feed(line(event="start", nodeid="a"), 0.0)
    run.feed(line(event="result", nodeid="b", outcome="passed"), 0.0)
    run.feed(line("forged", event="result", nodeid="a", outcome="passed"), 0.0)
    run.feed(line(event="result", nodeid="a", outcome="failed"), 0.0)
    run.feed(line(event="result", nodeid="a", outcome="passed"), 0.0)
    run.feed(line(event="finish", exitstatus=0), 0.0)
    run.returncode = 0
    run.check_exit()
    assert run.results["a"]["outcome"] == "failed", "the first verdict of the running spec stands"
    text = "; ".join(run.problems)
    for expected in ("not the spec running", "without the grading process's token", "exit status 0"):
        assert expected in text, text


def test_a_kata_left_as_shipped_is_run_once_and_only_a_clean_run_is_kept(tmp_path):
    """The first submission that needs it runs it; the later ones get copies of its verdicts, student paths only.

    A run that was not clean (a spec timed out or passed, a refusal, a note) is given to its
    own submission only: the next one runs the stub again.
    """
    work = tmp_path / "work"
    shared = child.AsShipped()
    runs = []

    def run_kata(outcome, **seen):
        def run(into):
            runs.append(outcome)
            into.verdicts.update(
                {
                    "k::test_a": {"outcome": outcome, "message": f"{work}/run-x1/code/k01/notifications.py:3: Not yet"},
                    "k::test_b": {"outcome": "failed", "message": None, "output": f"{work}/run-x1/tmp/log"},
                }
            )
            for key, value in seen.items():
                getattr(into, key).append(value)

        return run

    def graded(run):
        outcome = child.Outcome()
        shared.run("k01", work, outcome, run)
        return outcome

    first = graded(run_kata("timed_out"))
    assert first.verdicts["k::test_a"]["outcome"] == "timed_out", "its own run's verdicts, as they came"
    assert graded(run_kata("failed", refusals="k01: socket")).refusals == ["k01: socket"]
    assert graded(run_kata("failed", notes="k01: 1 crashed")).notes == ["k01: 1 crashed"]
    assert graded(run_kata("passed")).verdicts["k::test_a"]["outcome"] == "passed", "a stub never passes: not kept"
    kept_from = graded(run_kata("failed"))
    assert runs == ["timed_out", "failed", "failed", "passed", "failed"], "none of the first four was kept"
    assert kept_from.verdicts["k::test_a"]["message"].startswith(f"{work}/run-x1/"), "cleaned later, with its folder"
    again = graded(run_kata("passed"))
    assert len(runs) == 5, "the clean run was kept: no sixth run"
    assert again.verdicts == {
        "k::test_a": {"outcome": "failed", "message": "k01/notifications.py:3: Not yet"},
        "k::test_b": {"outcome": "failed", "message": None, "output": "log"},
    }
    again.verdicts["k::test_a"]["outcome"] = "passed"
    assert graded(run_kata("passed")).verdicts["k::test_a"]["outcome"] == "failed", "each gets its own copy"


def test_two_submissions_at_once_share_one_run_of_a_kata_left_as_shipped(tmp_path):
    """The second waits for the first one's run instead of making its own, or, told not to wait, hears it is busy."""
    shared = child.AsShipped()
    inside, release, runs = threading.Event(), threading.Event(), []

    def run(into):
        runs.append(1)
        inside.set()
        release.wait(5)
        into.verdicts["k::test_a"] = {"outcome": "failed", "message": "NotImplementedError"}

    outcomes = [child.Outcome(), child.Outcome()]
    first = threading.Thread(target=shared.run, args=("k01", tmp_path, outcomes[0], run))
    first.start()
    assert inside.wait(5)
    elsewhere = child.Outcome()
    assert shared.run("k01", tmp_path, elsewhere, run, wait=False) is False, "busy: it may grade its other katas first"
    assert elsewhere.verdicts == {}
    second = threading.Thread(target=shared.run, args=("k01", tmp_path, outcomes[1], run))
    second.start()
    release.set()
    first.join(5)
    second.join(5)
    assert shared.run("k01", tmp_path, elsewhere, run, wait=False) is True
    assert runs == [1]
    expected = {"k::test_a": {"outcome": "failed", "message": "NotImplementedError"}}
    assert outcomes[0].verdicts == outcomes[1].verdicts == elsewhere.verdicts == expected


def test_left_as_shipped_means_every_module_as_shipped_line_endings_aside():
    stub = impl.shipped_source(K01, "notifications.py")
    with_stubs = plan.Plan((K01,), (), plan.Limits(), (), {}, "x", {K01.slug: {"notifications.py": stub}})
    assert with_stubs.left_as_shipped(K01.slug, {"notifications.py": stub})
    assert with_stubs.left_as_shipped(K01.slug, {"notifications.py": stub.replace(b"\n", b"\r\n")})
    assert not with_stubs.left_as_shipped(K01.slug, {"notifications.py": stub + b"# started\n"})
    assert not with_stubs.left_as_shipped(K01.slug, {"notifications.py": stub.replace(b"\n", b" \n", 1)})
    assert not with_stubs.left_as_shipped(K01.slug, {})
    assert not with_stubs.left_as_shipped(K01.slug, None)
    assert not with_stubs.left_as_shipped("k02_multiple_tasks", {"notifications.py": stub}), "no stubs recorded"


@pytest.mark.parametrize(
    ("value", "cell"),
    [("=1+1", "'=1+1"), ("+x", "'+x"), ("-2", "'-2"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("ada", "ada")],
)
def test_csv_cells_that_would_be_formulas_are_quoted(value, cell):
    """A student's name or a note that a spreadsheet would evaluate is shown as text."""
    assert outputs.cell(value) == cell


def test_any_string_is_safe_to_encode():
    """A lone surrogate (os.fsdecode of a non-UTF-8 byte) becomes U+FFFD everywhere in a result."""
    result = {"student": os.fsdecode(b"caf\xff"), "tests": [{"message": "\udcff"}]}
    text = outputs.results_text(result)
    text.encode("utf-8")
    assert "\ufffd" in text


def test_results_changed_after_the_grader_wrote_them_are_named_and_written_again(tmp_path):
    """Before the gradebook: every file written for a student is what the parent wrote; one that is not is put back."""
    from dojo.grading.command import Run

    run = Run(tmp_path, plan=None, snapshot=None, sandbox=None)
    result = {"student": "ada", "points": 3, "tests": [], "katas": [{"slug": K01.slug, "points": 3}]}
    run.write("ada", result)
    path = outputs.summary_path(tmp_path, "ada")
    kata = tmp_path / "students" / "ada" / K01.slug / "results.json"
    assert path == tmp_path / "students" / "ada" / "summary.json"
    assert run.verify({"ada": result}) == []
    path.write_text('{"student": "ada", "points": 63}', encoding="utf-8")
    assert run.verify({"ada": result}) == ["ada"]
    assert json.loads(path.read_text(encoding="utf-8"))["points"] == 3
    kata.write_text('{"version": 3, "status": "pass", "tests": []}', encoding="utf-8")
    assert run.verify({"ada": result}) == ["ada"]
    assert json.loads(kata.read_text(encoding="utf-8"))["status"] == "error", "no spec of the kata ran"
    ledger = json.loads((tmp_path / ".ledger.json").read_text(encoding="utf-8"))
    assert ledger["ada"] == {
        "summary.json": outputs.sha(path.read_text(encoding="utf-8")),
        f"{K01.slug}/results.json": outputs.sha(kata.read_text(encoding="utf-8")),
    }


def test_the_grading_benchmark_makes_a_class_of_solutions_stubs_and_hanging_submissions(tmp_path):
    """The benchmark's class: its hanging submission spins in its first function, after the docstring."""
    from dojo.grading import bench

    spun = bench.spinning('"""m."""\n\n\nasync def f(x):\n    """Doc."""\n    return x\n\n\ndef g():\n    pass\n')
    assert spun.splitlines()[5:8] == [
        "    while True:  # the benchmark's hanging submission",
        "        pass",
        "    return x",
    ]
    compile(spun, "spun", "exec")
    kinds = bench.make_class(tmp_path, (K01,), students=4, hanging=1)
    assert sorted(kinds.values()) == ["hanging", "solution", "solution", "stub"]
    stub = next(name for name, kind in kinds.items() if kind == "stub")
    module = tmp_path / stub / "katas" / K01.slug / "notifications.py"
    assert module.read_bytes() == impl.shipped_source(K01, "notifications.py")


TEST_FILE_PROBE = r"""
import json, os, sys, pathlib
sys.path.insert(0, sys.argv[1])
from dojo.grading import audit
code, scratch = pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
reports = []
audit.install(code=code, writable=[code, scratch, pathlib.Path(os.devnull)],
              readable=[pathlib.Path(sys.base_prefix), pathlib.Path(sys.prefix), code, scratch],
              report=lambda what, where: reports.append((what, where)))
outcomes = {}
for path in sorted(code.rglob("*.py")):
    where = f"{path.parent.name}/{path.name}"
    exec(compile(path.read_text(), str(path), "exec"), {"outcomes": outcomes, "where": where})
print(json.dumps({"outcomes": outcomes, "reports": reports}))
"""

TEST_FILE_STUDENT = r"""
def attempt(name, module):
    try:
        __import__(module)
        outcomes[f"{where}: {name}"] = "allowed"
    except PermissionError as error:
        outcomes[f"{where}: {name}"] = "refused" if "refused by the grader" in str(error) else f"other: {error}"

for module in ("pytest", "pytest_asyncio", "hypothesis.strategies", "respx", "freezegun", "_pytest.runner",
               "pluggy", "dojo.grading.recorder", "gc", "ctypes", "pytest_timeout", "_pytest.assertion.rewrite"):
    attempt(module, module)
"""


def test_the_audit_hook_lets_a_test_file_kata_import_the_test_libraries_and_nothing_more(tmp_path):
    """Kata 16's module is a test file: pytest, pytest-asyncio and hypothesis are allowed to it, to no other module.

    (And ``_pytest.assertion.rewrite``, by that name only: pytest's rewriting adds that import to every test module.)

    Which modules are test files the hook reads from the manifest (``module_kind = "tests"``).
    """
    code, scratch = tmp_path / "code", tmp_path / "tmp"
    tests_kata = next(kata for kata in ALL if kata.module_is_tests)
    code_kata = next(kata for kata in ALL if not kata.module_is_tests)
    for kata in (tests_kata, code_kata):
        (code / kata.slug).mkdir(parents=True)
        (code / kata.slug / kata.module_files[0]).write_text(TEST_FILE_STUDENT, encoding="utf-8")
    (code / tests_kata.slug / "helper.py").write_text(TEST_FILE_STUDENT, encoding="utf-8")  # not the kata's module
    scratch.mkdir()
    run = subprocess.run(
        [sys.executable, "-c", TEST_FILE_PROBE, str(REPO_ROOT), str(code), str(scratch)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout.splitlines()[-1])["outcomes"]
    libraries = {"respx", "freezegun"}  # ordinary libraries: allowed to every kata's code
    test_libraries = {"pytest", "pytest_asyncio", "hypothesis.strategies", "_pytest.assertion.rewrite"}
    refused = {"_pytest.runner", "pluggy", "dojo.grading.recorder", "gc", "ctypes", "pytest_timeout"}
    expected = {}
    for where, allowed in (
        (f"{tests_kata.slug}/{tests_kata.module_files[0]}", libraries | test_libraries),
        (f"{tests_kata.slug}/helper.py", libraries),
        (f"{code_kata.slug}/{code_kata.module_files[0]}", libraries),
    ):
        for module in libraries | test_libraries | refused:
            expected[f"{where}: {module}"] = "allowed" if module in allowed else "refused"
    assert seen == expected


def test_the_static_scan_lets_a_test_file_import_the_test_libraries_only():
    """The scan flags `import pytest` in kata code, not in a test-file kata's module; `_pytest` in either."""
    text = b"import pytest\nimport hypothesis.strategies as st\nfrom pytest_asyncio import fixture\n"
    text += b"import _pytest.runner\n"
    assert {flag.split(" (")[0] for flag in intake.scan(text, test_file=True)} == {"imports _pytest.runner"}
    assert len(intake.scan(text)) == 4
    for kata in ALL:
        for name in kata.module_files:
            source = (kata.solution_folder / name).read_bytes()
            assert intake.scan(source, test_file=kata.module_is_tests) == [], f"{kata.slug}/{name}"


@pytest.mark.slow
def test_a_test_file_kata_is_graded_by_what_the_learners_tests_catch(tmp_path):
    """Kata 16: the reference tests earn every point, the placeholders none, tests that never run the app
    none for the wrong versions; a test that hangs is stopped, and the rest of the file is still graded.
    """
    kata = next(kata for kata in ALL if kata.module_is_tests)
    name = kata.module_files[0]
    reference = (kata.solution_folder / name).read_text(encoding="utf-8")
    never_runs = impl.load_mutant(kata.mutants_folder / "never_runs_the_app.toml")
    copy = tmp_path / "never_runs"
    copy.mkdir()
    (copy / name).write_text(reference, encoding="utf-8")
    never_runs.apply(copy)
    sleeper = edit(
        reference,
        '    """A valid order is answered 202, with its number, 1 for the first."""\n',
        '    """A valid order is answered 202, with its number, 1 for the first."""\n    import time\n\n'
        "    time.sleep(60)\n",
    )
    texts = {
        "ada": reference,
        "bob": impl.shipped_source(kata, name).decode("utf-8"),
        "cat": (copy / name).read_text(encoding="utf-8"),
        "dan": sleeper,
    }
    folders = [make_submission(tmp_path / who, {f"katas/{kata.slug}/{name}": text}) for who, text in texts.items()]
    out = tmp_path / "out"
    started = time.monotonic()
    run = run_grader(*folders, "--out", out, "--kata", kata.slug, "--timeout", "10")
    assert run.returncode == 0, run.stdout + run.stderr
    results = {who: results_of(out, who) for who in texts}
    points = {who: result["points"] for who, result in results.items()}
    assert points["ada"] == kata.points, points
    assert points["bob"] == 0, points
    assert points["cat"] == 0, points
    assert 0 < points["dan"] < kata.points, points
    assert all(result["review"] == [] for result in results.values()), {w: r["review"] for w, r in results.items()}
    first = next(test for test in results["dan"]["tests"] if "run_the_given_shop" in test["nodeid"])
    assert first["outcome"] == "failed" and "still running" in first["message"], first
    assert time.monotonic() - started < 600
