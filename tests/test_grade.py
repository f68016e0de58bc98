"""Instructor grading (dojo/grade.py): a class of broken and hostile submissions, graded fairly and safely.

Each test runs the grader as an instructor does, ``python -m dojo.grade ...``, in a subprocess.
The corpus is built here from kata 1's solution and stub; the slow tests are marked ``slow``.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import pytest

from dojo import impl, manifest
from dojo.grading import intake, outputs, plan
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


def run_grader(*args, timeout=240):
    return subprocess.run(
        [sys.executable, "-m", "dojo.grade", *map(str, args)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def results_of(out, student):
    return json.loads((out / "students" / student / "results.json").read_text(encoding="utf-8"))


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
    "rewrites_the_grader": ("fail", 0),
    "missing_function": ("fail", TASK[2]),
    "sync_infinite_loop": ("fail", TASK[1] + TASK[2]),
    "await_never_returns": ("fail", TASK[1] + TASK[2]),
    "time_sleep_in_async": ("fail", TASK[1]),
    "swallows_the_timeout": ("fail", TASK[1]),
    "os_exit_at_import": ("error", 0),
    "flood_of_output": ("pass", K01.points),
    "edited_spec_file": ("fail", 0),
    "conftest_forces_pass": ("fail", 0),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(EXPECTED))
def test_each_case_of_the_corpus_gets_its_status_and_points(corpus, case):
    """Right status and points for each case: hangs, crashes and tricks cost the student, not the class."""
    status, points = EXPECTED[case]
    result = corpus[case]
    assert (result["status"], result["points"]) == (status, points), json.dumps(result, indent=1)[:3000]
    assert result["max_points"] == K01.points
    assert result["student"] == case
    assert len(result["tests"]) == sum(result["katas"][0]["outcomes"].values()) > 0


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
def test_a_spec_that_swallows_the_timeout_is_killed_and_the_rest_run_in_a_new_process(corpus):
    """The watchdog stops what the signal cannot; the following specs still get their verdicts."""
    result = corpus["swallows_the_timeout"]
    stopped = [test for test in result["tests"] if test["task_id"] == 2]
    assert [test["outcome"] for test in stopped] == ["timed out"]
    assert "could not interrupt it" in stopped[0]["message"]
    assert outcomes(result, task=3) == {"timed out"}, "the specs after the killed one ran in a new process"
    assert "not run" not in outcomes(result)


@pytest.mark.slow
def test_memory_past_the_limit_is_a_memory_error_in_the_spec_that_asked(corpus):
    """4 GiB in one go is refused under the address-space limit: a MemoryError in that spec, the rest still pass."""
    result = corpus["memory_hog"]
    assert task_points(result, 1) == TASK[1]
    assert task_points(result, 2) == 0
    (direct,) = [test for test in result["tests"] if test["task_id"] == 2]
    assert direct["outcome"] == "failed" and "MemoryError" in direct["message"], direct["message"]


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
    assert (corpus["out"] / "students" / "flood_of_output" / "results.json").stat().st_size < 64_000


@pytest.mark.slow
def test_the_submissions_specs_conftest_and_settings_are_ignored_and_reported(corpus):
    """Our specs decide: an edited spec file is reported as modified, a conftest.py as ignored."""
    edited = corpus["edited_spec_file"]["katas"][0]
    assert edited["spec_file"] == "modified"
    assert "spec file is modified" in "; ".join(corpus["edited_spec_file"]["notes"])
    assert len(corpus["edited_spec_file"]["tests"]) == len(corpus["solution"]["tests"]), "graded with our specs"
    forced = corpus["conftest_forces_pass"]["katas"][0]
    assert forced["ignored_files"] == ["conftest.py"]
    assert corpus["solution"]["katas"][0]["spec_file"] == "absent"


@pytest.mark.slow
def test_the_gradebook_has_a_row_per_student_and_the_maximum_first(corpus):
    """gradebook.csv: student, a column per kata, total, notes; the row after the header is the maximum."""
    rows = list(csv.reader((corpus["out"] / "gradebook.csv").read_text(encoding="utf-8").splitlines()))
    assert rows[0] == ["student", K01.slug, "total", "notes"]
    assert rows[1] == ["(maximum)", str(K01.points), str(K01.points), ""]
    by_student = {row[0]: row for row in rows[2:]}
    assert set(by_student) == set(CORPUS)
    for case, (_status, points) in EXPECTED.items():
        assert float(by_student[case][1]) == points == float(by_student[case][2])
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
def test_code_that_writes_to_this_repository_is_undone_and_reported(tmp_path):
    """A submission that knows our path and edits our spec file: restored, named on stderr, exit 1."""
    original = K01.spec_path.read_bytes()
    tamper = f"pathlib.Path({str(K01.spec_path)!r}).write_text('# graded by me')"
    folder = make_submission(
        tmp_path / "mallory", {f"{K01.slug}/notifications.py": at_import(f"import pathlib\n{tamper}", STUB)}
    )
    try:
        result = run_grader(folder, "--out", tmp_path / "out", "--kata", "k01", "--timeout", SPEC_TIMEOUT)
        assert K01.spec_path.read_bytes() == original, "the grader put our spec back"
    finally:
        K01.spec_path.write_bytes(original)
    assert result.returncode == 1
    assert "WARNING" in result.stderr and K01.spec_path.relative_to(REPO_ROOT).as_posix() in result.stderr
    assert results_of(tmp_path / "out", "mallory")["points"] == 0


# ------------------------------------------------------------------ every kata, outputs, resuming


@pytest.mark.slow
def test_every_kata_end_to_end_with_exercism_results_junit_and_a_rerun_that_keeps_them(tmp_path):
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

    before = {name: (out / name / "results.json").stat().st_mtime_ns for name in ("ada", "bob")}
    again = run_grader(solution, stub, "--out", out, "--timeout", "5")
    assert again.returncode == 0, again.stderr
    assert "0 graded, 2 kept" in again.stdout
    assert before == {name: (out / name / "results.json").stat().st_mtime_ns for name in ("ada", "bob")}

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
    while not (list(out.glob("*/results.json")) and grading_processes()) and time.monotonic() < deadline:
        time.sleep(0.05)  # s0 is graded, s1 hangs in its own process
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stdout + stderr
    assert "run the same command again" in stderr
    assert grading_processes() == [], "every grading process was killed"
    assert not list(scratch.iterdir()), "and its temporary copies removed"
    assert sorted(path.parent.name for path in out.glob("*/results.json")) == ["s0_stub"]
    assert not list(out.rglob("*.tmp")), "no half-written results"

    rerun = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "2 graded, 1 kept" in rerun.stdout
    assert [results_of(out, name)["points"] for name in sources] == [0, TASK[1] + TASK[2], K01.points]


# ------------------------------------------------------------------ the classroom, the errors


def test_classroom_writes_an_autograding_entry_per_kata_with_its_points(tmp_path):
    """GitHub Classroom's autograding.json, from the manifest: a test per kata, its points, a timeout."""
    target = tmp_path / ".github" / "classroom" / "autograding.json"
    result = run_grader("classroom", "--output", target, "--minutes", "5")
    assert result.returncode == 0, result.stderr
    tests = json.loads(target.read_text())["tests"]
    assert [(test["run"], test["points"], test["timeout"]) for test in tests] == [
        (f"uv run pytest katas/{kata.slug}", kata.points, 5) for kata in ALL
    ]
    assert all(test["name"].startswith(kata.slug) for test, kata in zip(tests, ALL, strict=True))
    printed = run_grader("classroom", "--kata", "k01")
    assert [test["points"] for test in json.loads(printed.stdout)["tests"]] == [K01.points]


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
    submission = grade.Submission(tmp_path / "student", "student")
    untouched = grade._inspect(submission, kata, tmp_path / "code-1")
    assert untouched["modified_files"] == [] and untouched["ignored_files"] == []
    with (folder / "conftest.py").open("a") as conftest:
        conftest.write("\n# the student's edit\n")
    (folder / "notes.txt").write_text("mine")
    edited = grade._inspect(submission, kata, tmp_path / "code-2")
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
