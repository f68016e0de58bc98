"""The learner's command line, end to end: the `kata` script on a temporary clone.

Each test clones this repository into tmp_path (with this checkout's dojo/, committed or
not, and every stub as shipped) and runs the installed `kata` script there in a
subprocess, as a learner would. Every wait is bounded.

Two tiny katas, k98_probe and k99_probe, are added to some clones: their specs run in
a blink, so watch mode, hints and "moving on" are tested without waiting on kata 1.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from dojo import cli, demo, impl, manifest, runner
from dojo.manifest import REPO_ROOT
from dojo.progress import Progress, ProgressError, stub_hash

KATA_SCRIPT = Path(sys.executable).with_name("kata")
K01 = manifest.load().get("k01")
WAIT = 30.0  # seconds: the most any one step may take before the test fails

PROBE_MANIFEST = """
[[kata]]
slug = "{slug}"
title = "Probe {order}"
modules = ["probe"]
spec = "test_probe.py"

[[kata.task]]
number = 1
title = "Find the answer"
points = 1
hints = ["The answer is a number.", "It is 42."]
"""

PROBE_SPEC = '''
import pytest

from dojo.impl import kata_module

probe = kata_module("{slug}", "probe")


@pytest.mark.task(1)
def test_the_answer_is_42():
    """The answer is 42."""
    assert probe.ANSWER == 42, f"\\n  expected: 42\\n  got:      {{probe.ANSWER}}\\n  revisit:  task 1\\n"
'''


def git(clone: Path, *args: str, env: dict[str, str] | None = None) -> str:
    identity = ["-c", "user.name=Learner", "-c", "user.email=learner@example.com"]
    result = subprocess.run(["git", *identity, *args], cwd=clone, capture_output=True, text=True, check=True, env=env)
    return result.stdout


@pytest.fixture(name="clone")
def _clone(tmp_path: Path) -> Path:
    """A clone of this repository: this checkout's tooling, every stub as shipped, no progress."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO_ROOT), str(clone)], check=True)
    shutil.copytree(
        REPO_ROOT / "dojo", clone / "dojo", dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
    )
    for kata in manifest.load():
        for name in kata.module_files:
            (clone / "katas" / kata.slug / name).write_bytes(impl.shipped_source(kata, name))
    git(clone, "add", "-A")
    git(clone, "commit", "-q", "--allow-empty", "-m", "as shipped")
    return clone


def add_probes(clone: Path) -> None:
    """Append k98_probe and k99_probe (red) to the clone's manifest; mark every real kata done."""
    text = (clone / "dojo" / "manifest.toml").read_text()
    for order in (98, 99):
        slug = f"k{order}_probe"
        text += PROBE_MANIFEST.format(slug=slug, order=order)
        for root, answer in (("katas", 0), ("solutions", 42)):
            (clone / root / slug).mkdir()
            (clone / root / slug / "probe.py").write_text(f'"""Probe."""\n\nANSWER = {answer}\n')
        (clone / "katas" / slug / "test_probe.py").write_text(PROBE_SPEC.format(slug=slug))
    (clone / "dojo" / "manifest.toml").write_text(text)
    lines = [f"{kata.slug} state=done hash={stub_hash(kata, clone / 'katas')}" for kata in manifest.load()]
    (clone / ".kata-progress").write_text("\n".join(lines) + "\n")


def environment(clone: Path, **extra: str) -> dict[str, str]:
    """The clone's environment: as installed with pip (no ``UV``), unless a test sets ``UV``."""
    dropped = {"NO_COLOR", "FORCE_COLOR", "KATA_IMPL", "UV"}
    env = {key: value for key, value in os.environ.items() if key not in dropped}
    env.update(PYTHONPATH=str(clone), **extra)
    return env


def kata(clone: Path, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """Run `kata ARGS` in the clone, piped; it never prints a traceback."""
    assert KATA_SCRIPT.is_file(), f"{KATA_SCRIPT} is missing: the `kata` script is not installed (uv sync)"
    result = subprocess.run(
        [str(KATA_SCRIPT), *args],
        cwd=clone,
        env=environment(clone, **env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=False,
    )
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


class Live:
    """A `kata` process left running, its output read line by line in the background."""

    def __init__(self, clone: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [str(KATA_SCRIPT), *args],
            cwd=clone,
            env=environment(clone, KATA_DEMO_DELAY="0.05"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, pattern: str) -> re.Match[str]:
        """The next line matching ``pattern``, within WAIT seconds."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(line)
            if match := re.search(pattern, line):
                return match
        pytest.fail(f"no line matching {pattern!r} within {WAIT} s; output so far:\n{''.join(self.seen)}")

    def send(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text)
        self.process.stdin.flush()

    def finish(self) -> tuple[int, str]:
        """Wait (bounded) for the process to end: its exit status and the rest of its output."""
        try:
            code = self.process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"still running after {WAIT} s; output:\n{''.join(self.seen)}")
        time.sleep(0.05)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code, "".join(self.seen)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.reader.join(timeout=WAIT)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture(name="live")
def _live():
    """Start `kata` processes that are killed at the end of the test, whatever happened."""
    started: list[Live] = []

    def start(clone: Path, *args: str) -> Live:
        started.append(Live(clone, *args))
        return started[-1]

    yield start
    for process in started:
        process.stop()


def solve(clone: Path, kata_: manifest.Kata) -> None:
    for name in kata_.module_files:
        shutil.copy(clone / "solutions" / kata_.slug / name, clone / "katas" / kata_.slug / name)


# ------------------------------------------------------------------ the bare command, hints, solution


def test_a_learner_goes_from_red_to_green_with_hints_then_sees_the_solution(clone):
    """Red with the first failure and its task, hints one by one, green and on to the next, then the solution."""
    add_probes(clone)
    (clone / ".kata-progress").unlink()  # a fresh learner: kata 1 is current
    stub = f"katas/{K01.slug}/{K01.module_files[0]}"

    red = kata(clone)
    assert red.returncode == 1
    assert f"0/{len(manifest.load()) + 2} katas done" in red.stdout
    assert re.search(rf"{re.escape(K01.title)}\s+0/\d+ specs pass", red.stdout)
    assert "First failure, task 1 (Validate the request):" in red.stdout
    assert "expected:" in red.stdout and "got:" in red.stdout and "revisit:" in red.stdout
    assert f"Next: edit {stub}:" in red.stdout and "kata watch" in red.stdout and "kata hint" in red.stdout
    assert "\x1b[" not in red.stdout, "no colour codes when piped"

    count = len(K01.tasks[0].hints)
    first = kata(clone, "hint")
    assert f"hint 1 of {count}:" in first.stdout and f"hint 2 of {count}" not in first.stdout
    for number in range(2, count + 1):
        assert f"hint {number} of {count}:" in kata(clone, "hint").stdout
    after = kata(clone, "hint")
    assert "That was every hint for task 1" in after.stdout
    assert f"{K01.slug} state=started hints=1:{count} red=1@" in (clone / ".kata-progress").read_text()

    refused = kata(clone, "solution", "k01")
    assert refused.returncode == 1 and "not green yet" in refused.stderr
    assert "SUBJECT" not in refused.stdout, "the solution stays hidden while red"

    solve(clone, K01)
    with (clone / stub).open("a") as mine:
        mine.write("# my own way of saying it\nMY_OWN_SETTING = 1\n")
    green = kata(clone)
    assert f"{K01.title} is green" in green.stdout
    assert "Moving on to k" in green.stdout
    assert re.search(
        rf"^{K01.slug} state=done hash=[0-9a-f]{{16}}", (clone / ".kata-progress").read_text(), re.MULTILINE
    )

    shown = kata(clone, "solution", "k01")
    assert shown.returncode == 0
    assert f"solutions/{K01.slug}/{K01.module_files[0]} (the reference solution)" in shown.stdout
    assert f"── from your {K01.module_files[0]} to the solution, code only" in shown.stdout
    assert "\n-MY_OWN_SETTING = 1\n" in shown.stdout, "the learner's own code line is in the diff"
    assert "my own way of saying it" not in shown.stdout.split("to the solution, code only")[1], "comments are not"


def test_the_progress_file_copied_from_another_clone_gives_each_kata_its_state(clone):
    """done / changed since done / current / not started, read from a plain-text file."""
    add_probes(clone)
    listing = kata(clone, "list")
    assert listing.returncode == 0
    assert re.search(rf"{K01.slug}\s+done\s", listing.stdout)
    assert re.search(r"k98_probe\s+current\s", listing.stdout)
    assert re.search(r"k99_probe\s+not started\s", listing.stdout)
    (clone / "katas" / K01.slug / K01.module_files[0]).write_text("# edited after it went green\n")
    assert re.search(rf"{K01.slug}\s+changed since done\s", kata(clone, "list").stdout)


def test_colour_is_used_only_when_allowed(clone):
    """Piped: no escape codes; FORCE_COLOR: colour; NO_COLOR wins over everything."""
    assert "\x1b[" not in kata(clone, "list").stdout
    assert "\x1b[" in kata(clone, "list", FORCE_COLOR="1").stdout
    assert "\x1b[" not in kata(clone, "list", FORCE_COLOR="1", NO_COLOR="1").stdout


def test_a_stub_that_does_not_import_is_a_clear_message_and_a_non_zero_exit(clone):
    """A syntax error: the bare command and serve say so and where, without a traceback."""
    (clone / "katas" / K01.slug / K01.module_files[0]).write_text("def create_app(:\n")
    with ThreadPoolExecutor(2) as pool:  # two independent processes: run them side by side
        bare_run = pool.submit(kata, clone)
        served = kata(clone, "serve", "k01", "--port", "0")
        bare = bare_run.result()
    assert bare.returncode == 1
    assert "Your code does not import" in bare.stdout and "SyntaxError" in bare.stdout
    assert served.returncode == 1
    assert "does not import" in served.stderr and "SyntaxError" in served.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["hint", "nope"], "no kata called 'nope'"),
        (["solution", "k77"], "no kata called 'k77'"),
        (["reset"], "say which kata to reset"),
    ],
)
def test_a_mistake_on_the_command_line_is_a_clear_message(clone, args, message):
    """Unknown katas and missing arguments: one line on stderr, exit 2, no traceback."""
    result = kata(clone, *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_a_damaged_progress_file_is_named_not_a_traceback(clone):
    """A bad line in .kata-progress says which line and how to recover."""
    (clone / ".kata-progress").write_text("k01_fire_and_forget state=maybe\n")
    result = kata(clone, "list")
    assert result.returncode == 2
    assert ".kata-progress is damaged: line 1" in result.stderr


# ------------------------------------------------------------------ reset


def test_reset_puts_a_committed_stub_back_byte_for_byte_after_asking(clone):
    """The learner committed their edit; reset asks, and recovers the stub from git, no network."""
    path = clone / "katas" / K01.slug / K01.module_files[0]
    shipped = path.read_bytes()
    path.write_text("# my work, committed\n")
    git(clone, "commit", "-qam", "my work")

    declined = kata(clone, "reset", "k01", stdin="n\n")
    assert declined.returncode == 1 and "Nothing reset" in declined.stdout
    assert path.read_text() == "# my work, committed\n"

    accepted = kata(clone, "reset", "k01", stdin="y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert "[y/N]" in accepted.stdout
    assert path.read_bytes() == shipped


def test_reset_all_restores_every_stub(clone):
    """--all with --yes: every kata's stub is as shipped again, and its progress cleared."""
    edited = {}
    for kata_ in manifest.load():
        for name in kata_.module_files:
            path = clone / "katas" / kata_.slug / name
            edited[path] = path.read_bytes()
            path.write_text("# edited\n")
    (clone / ".kata-progress").write_text(f"{K01.slug} state=started hints=1:1\n")
    result = kata(clone, "reset", "--all", "--yes")
    assert result.returncode == 0, result.stderr
    assert all(path.read_bytes() == shipped for path, shipped in edited.items())
    assert K01.slug not in (clone / ".kata-progress").read_text()


def test_reset_without_git_says_so(clone, tmp_path):
    """An edited stub cannot be recovered without git: a clear message, not a traceback."""
    path = clone / "katas" / K01.slug / K01.module_files[0]
    path.write_text("# edited\n")
    empty = tmp_path / "empty-path"
    empty.mkdir()
    result = kata(clone, "reset", "k01", "--yes", PATH=str(empty))
    assert result.returncode == 2
    assert "git is not installed" in result.stderr
    assert path.read_text() == "# edited\n"


# ------------------------------------------------------------------ watch


def test_watch_reruns_on_save_and_on_enter_and_moves_on_when_green(clone, live):
    """Saving a file of the current kata, or pressing Enter, gives a new verdict; green moves on."""
    add_probes(clone)
    probe = clone / "katas" / "k98_probe" / "probe.py"
    watch = live(clone, "watch")
    watch.wait_for(r"Probe 98\s+0/1 specs pass")
    watch.wait_for(r"Watching katas/k98_probe")
    probe.write_text("ANSWER = 41\n")
    watch.wait_for(r"saved probe.py: verdict in")
    watch.wait_for(r"expected: 42")
    watch.send("\n")
    watch.wait_for(r"Enter: verdict in")
    probe.write_text("ANSWER = 42\n")
    watch.wait_for(r"Probe 98\s+1/1 specs pass")
    watch.wait_for(r"Moving on to k99 Probe 99")
    watch.wait_for(r"Probe 99\s+0/1 specs pass")
    (clone / "katas" / "k99_probe" / "probe.py").write_text("ANSWER = 42\n")
    watch.wait_for(r"Every kata is green")
    code, _ = watch.finish()
    assert code == 0
    assert "k98_probe state=done" in (clone / ".kata-progress").read_text()


def test_watch_without_fork_quits_cleanly_on_ctrl_c(clone, live):
    """The subprocess fallback gives a verdict; Ctrl-C ends watch mode with exit 0 and no traceback."""
    add_probes(clone)
    watch = live(clone, "watch", "--no-fork")
    watch.wait_for(r"Probe 98\s+0/1 specs pass")
    watch.wait_for(r"Watching")
    watch.process.send_signal(signal.SIGINT)
    code, output = watch.finish()
    assert code == 0, output
    assert "Stopped watching" in output and "Traceback" not in output


# ------------------------------------------------------------------ serve


def test_serve_runs_the_learners_app_on_127_0_0_1_until_ctrl_c(clone, live):
    """A real HTTP request reaches the kata's app; its docs page is served; Ctrl-C stops it."""
    solve(clone, K01)
    server = live(clone, "serve", "k01", "--port", "0")
    url = server.wait_for(r"interactive docs: (http://127\.0\.0\.1:\d+)/docs").group(1)
    response = httpx.post(f"{url}/notifications", json={"email": "ada@example.com", "message": "hi"}, timeout=WAIT)
    assert response.status_code == 202, response.text
    assert response.json() == {"status": "queued", "email": "ada@example.com"}
    assert "swagger" in httpx.get(f"{url}/docs", timeout=WAIT).text.lower()
    server.wait_for(r"\[demo mailer .*\] email #1 to ada@example.com: sending, 1 in progress \(in .*thread")
    server.process.send_signal(signal.SIGINT)
    code, output = server.finish()
    assert code == 0, output
    assert "Server stopped." in output and "Traceback" not in output


def test_serve_on_a_port_in_use_says_so(clone):
    """Another program on the port: a clear message naming another port to try."""
    solve(clone, K01)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = kata(clone, "serve", "k01", "--port", str(port))
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and f"--port {port + 1}" in result.stderr


def test_serve_says_so_when_a_kata_has_no_app_to_serve(clone):
    """A kata without `serve` in the manifest: a clear message, no server."""
    add_probes(clone)
    result = kata(clone, "serve", "k98")
    assert result.returncode == 2
    assert "k98_probe has no app to serve" in result.stderr


# ------------------------------------------------------------------ in process: the pieces


def test_kata_grade_hands_its_arguments_to_dojo_grade(monkeypatch):
    """`kata grade ARGS` is `dojo.grade.main(ARGS)`, exit status included."""
    received = []
    fake = type(sys)("dojo.grade")
    fake.main = lambda argv: received.append(argv) or 3
    monkeypatch.setitem(sys.modules, "dojo.grade", fake)
    assert cli.main(["grade", "--class", "x"]) == 3
    assert received == [["--class", "x"]]


def test_kata_grade_says_so_when_grading_is_not_installed(monkeypatch, capsys):
    """Without dojo/grade.py, `kata grade` is a one-line message and exit 2."""
    monkeypatch.setitem(sys.modules, "dojo.grade", None)
    assert cli.main(["grade"]) == 2
    assert "grading (dojo/grade.py) is not part of this checkout" in capsys.readouterr().err


def test_the_fork_server_knows_which_libraries_a_kata_imports():
    """Kata 1's spec and stub import the stack, never the kata's own modules or dojo."""
    names = runner.kata_imports(K01.slug)
    assert "fastapi" in names and "pytest" in names
    assert not [name for name in names if name.split(".")[0] in {"dojo", *K01.modules, "__future__"}]


def test_the_fork_servers_children_leave_no_folder_of_the_code_they_ran(monkeypatch, tmp_path):
    """A mutant's or the stubs' folder is removed by the child that made it, run or only prepared.

    The children leave with os._exit (pytest's clean-up would only cost time), so nothing of
    pytest_unconfigure runs there: before this, each mutant the checks ran left a folder in /tmp.
    """
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    server = runner.ForkServer()
    try:  # `again`: a spare child is prepared for the same request, then never used
        impls = ("mutant:k01_fire_and_forget/answers_200", "shipped")
        ran = [server.run(runner.Request(K01.slug, impl)) for impl in impls]
    finally:
        server.close()
    assert all(verdict.specs and not verdict.problem for verdict in ran), [verdict.problem for verdict in ran]
    deadline = time.monotonic() + 5  # the spare child leaves when it reads that the server is gone
    while (left := [path.name for path in tmp_path.glob("kata-*")]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert left == []


def test_the_manifest_refuses_a_serve_entry_outside_the_katas_modules():
    """`serve` must be "module:factory" with one of the kata's own modules."""
    data = manifest.tomllib.loads((REPO_ROOT / "dojo" / "manifest.toml").read_text())
    data["kata"][0]["serve"] = "elsewhere:create_app"
    with pytest.raises(manifest.ManifestError, match="serve must be 'module:factory'"):
        manifest.parse(data)


def test_a_factory_gets_demo_collaborators_by_parameter_name_or_a_clear_error():
    """Known names are filled, defaults kept; an unknown required name says what exists."""

    def factory(mailer, clock, retries=3):
        return (mailer, clock, retries)

    mailer, clock, retries = demo.build_app(factory)
    assert isinstance(mailer, demo.ConsoleMailer) and isinstance(clock, demo.RealClock) and retries == 3

    def needy(ledger):
        return ledger

    with pytest.raises(demo.DemoError, match=r"needs 'ledger'.*\(it has: analytics, clock, .*mailer"):
        demo.build_app(needy)


def test_the_progress_file_round_trips_and_keeps_what_it_does_not_know(tmp_path):
    """Unknown katas and keys survive a rewrite; a malformed line is named."""
    path = tmp_path / ".kata-progress"
    path.write_text(
        textwrap.dedent("""
        # a comment
        k01_fire_and_forget state=done hash=abc hints=1:2,3:1 colour=blue
        k42_from_the_future state=started hints=2:1
        """)
    )
    progress = Progress.load(path)
    assert progress.katas["k01_fire_and_forget"].hints == {1: 2, 3: 1}
    progress.save()
    again = Progress.load(path)
    assert again.katas == progress.katas
    assert "k42_from_the_future state=started hints=2:1" in path.read_text()
    path.write_text("k01_fire_and_forget hints=one\n")
    with pytest.raises(ProgressError, match="line 1"):
        Progress.load(path)


# ------------------------------------------------------------------ defects of the first learner trial (issue 8)


SERVED_PROBE = '''"""A probe with an app: one endpoint the stub has not written yet."""

from fastapi import FastAPI


def create_app(mailer):
    """The app, with the demo mailer."""
    app = FastAPI(title="Probe 97")

    @app.post("/jobs", status_code=202)
    def start_job() -> dict[str, str]:
        raise NotImplementedError("TODO(k97) task 1: answer 202")

    return app
'''


def add_served_probe(clone: Path) -> None:
    """Append k97_served, a kata whose stub serves an app that raises the stub's TODO."""
    entry = PROBE_MANIFEST.format(slug="k97_served", order=97)
    entry = entry.replace('spec = "test_probe.py"\n', 'spec = "test_probe.py"\nserve = "probe:create_app"\n')
    text = (clone / "dojo" / "manifest.toml").read_text() + entry
    (clone / "dojo" / "manifest.toml").write_text(text)
    for root in ("katas", "solutions"):
        (clone / root / "k97_served").mkdir()
        (clone / root / "k97_served" / "probe.py").write_text(SERVED_PROBE)
    (clone / "katas" / "k97_served" / "test_probe.py").write_text(PROBE_SPEC.format(slug="k97_served"))


def test_hint_gives_the_hints_of_the_task_named(clone):
    """`kata hint KATA --task N`: that task's hints one by one, whatever fails first; a wrong N is named."""
    first = kata(clone, "hint", "k01", "--task", "2")
    assert first.returncode == 0, first.stderr
    task = K01.task(2)
    assert f"task 2: {task.title}" in first.stdout
    assert f"hint 1 of {len(task.hints)}:" in first.stdout and f"hint 2 of {len(task.hints)}" not in first.stdout
    assert "`kata hint k01 --task 2` again" in first.stdout
    second = kata(clone, "hint", "k01", "--task", "2")
    assert f"hint 2 of {len(task.hints)}:" in second.stdout
    assert re.search(rf"^{K01.slug} .*hints=2:2", (clone / ".kata-progress").read_text(), re.MULTILINE)
    missing = kata(clone, "hint", "k01", "--task", "9")
    assert missing.returncode == 2
    assert f"{K01.slug} has no task 9; its tasks are 1, 2" in missing.stderr


def test_the_bare_command_and_watch_take_a_kata(clone, live):
    """`kata k99` runs kata 99's specs though 98 is current; `kata watch k99` watches it; a typo names the commands."""
    add_probes(clone)
    named = kata(clone, "k99")
    assert named.returncode == 1
    assert re.search(r"Probe 99\s+0/1 specs pass", named.stdout) and "Probe 98" not in named.stdout
    assert "kata k99 " in named.stdout and "kata watch k99" in named.stdout, "the next steps name the kata too"
    typo = kata(clone, "lsit")
    assert typo.returncode == 2
    assert "no kata called 'lsit'" in typo.stderr and "the commands are: list, watch" in typo.stderr
    backwards = kata(clone, "k99", "watch")
    assert backwards.returncode == 2 and "`kata watch k99`" in backwards.stderr
    watch = live(clone, "watch", "k99")
    watch.wait_for(r"Probe 99\s+0/1 specs pass")
    watch.wait_for(r"Keys: h hint · l list · r or Enter rerun · q quit")
    watch.send("q\n")
    code, output = watch.finish()
    assert code == 0 and "Stopped watching" in output


def test_watch_takes_letters_typed_with_enter_when_stdin_is_not_a_terminal(clone, live):
    """Piped stdin: h shows a hint, l the list, r reruns, q quits; the screen says so."""
    add_probes(clone)
    watch = live(clone, "watch")
    watch.wait_for(r"Probe 98\s+0/1 specs pass")
    watch.wait_for(r"Keys: .*\(type the letter, then Enter\)")
    watch.send("h\n")
    watch.wait_for(r"hint 1 of 2:")
    watch.send("l\n")
    watch.wait_for(r"k99_probe\s+not started")
    watch.send("r\n")
    watch.wait_for(r"r: verdict in")
    watch.send("q\n")
    code, output = watch.finish()
    assert code == 0 and "Stopped watching. Your progress is saved." in output
    assert "k98_probe state=started hints=1:1" in (clone / ".kata-progress").read_text()


class PtyLive:
    """`kata` on a pseudo-terminal: keys arrive one by one, as a learner types them."""

    def __init__(self, clone: Path, *args: str) -> None:
        import pty

        self.main, child = pty.openpty()
        self.process = subprocess.Popen(
            [str(KATA_SCRIPT), *args],
            cwd=clone,
            env=environment(clone, NO_COLOR="1"),
            stdin=child,
            stdout=child,
            stderr=child,
            start_new_session=True,
        )
        os.close(child)
        self.output = ""
        self.read_to = 0
        self.lock = threading.Lock()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.main, 4096)
            except OSError:
                return
            if not chunk:
                return
            with self.lock:
                self.output += chunk.decode(errors="replace")

    def wait_for(self, pattern: str) -> None:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            with self.lock:
                match = re.search(pattern, self.output[self.read_to :])
                if match:
                    self.read_to += match.end()
                    return
            time.sleep(0.02)
        pytest.fail(f"no {pattern!r} within {WAIT} s; output:\n{self.output}")

    def press(self, key: str) -> None:
        os.write(self.main, key.encode())

    def close(self) -> int | None:
        try:
            code = self.process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = None
        self.process.wait()
        os.close(self.main)
        return code


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal (POSIX)")
def test_watch_takes_single_keys_in_a_terminal(clone):
    """In a terminal, a key alone acts (no Enter), as in rustlings: h hint, l list, r rerun, q quit."""
    add_probes(clone)
    watch = PtyLive(clone, "watch")
    try:
        watch.wait_for(r"Probe 98\s+0/1 specs pass")
        watch.wait_for(r"Keys: h hint · l list · r or Enter rerun · q quit; Ctrl-C quits too")
        watch.press("h")
        watch.wait_for(r"hint 1 of 2:")
        watch.wait_for(r"press h again")
        watch.press("l")
        watch.wait_for(r"k99_probe\s+not started")
        watch.press("r")
        watch.wait_for(r"r: verdict in")
        watch.wait_for(r"Keys:")
        watch.press("q")
        watch.wait_for(r"Stopped watching")
    finally:
        code = watch.close()
    assert code == 0, watch.output
    assert "Traceback" not in watch.output


def test_a_kata_red_again_after_it_went_green_is_not_counted_done(clone):
    """Edited after green and failing now: the bare command runs it again, shows it red, and counts it out."""
    add_probes(clone)
    katas = len(manifest.load()) + 2
    probe = clone / "katas" / "k98_probe" / "probe.py"
    probe.write_text("ANSWER = 42\n")
    assert "Probe 98 is green" in kata(clone).stdout  # then k99 fails
    probe.write_text("ANSWER = 41\n")  # the learner breaks it again
    again = kata(clone)
    assert again.returncode == 1
    assert "k98 Probe 98 changed since it went green: its specs run again." in again.stdout
    assert re.search(r"Probe 98\s+0/1 specs pass", again.stdout)
    assert f"{katas - 2}/{katas} katas done" in again.stdout
    assert "Every kata is green" not in again.stdout and f"{katas}/{katas}" not in again.stdout
    listing = kata(clone, "list")
    assert f"{katas - 2}/{katas} katas done" in listing.stdout
    assert re.search(r"k98_probe\s+current", listing.stdout)


def test_next_points_at_the_line_that_stops_the_import(clone):
    """A syntax error, or an exception while importing: "Next: edit" names that line, not a TODO."""
    add_probes(clone)
    probe = clone / "katas" / "k98_probe" / "probe.py"
    probe.write_text('"""Probe."""\n\n\nANSWER = (\n\ndef oops(:\n')
    syntax = kata(clone)
    assert "Your code does not import" in syntax.stdout
    line = re.search(r"line (\d+)", syntax.stdout)
    assert line, syntax.stdout
    assert f"Next: edit katas/k98_probe/probe.py:{line.group(1)}\n" in syntax.stdout
    probe.write_text('"""Probe."""\n\nimport json\n\nANSWER = json.loads(NOT_DEFINED)\n')
    failing = kata(clone)
    assert "NameError" in failing.stdout
    assert "Next: edit katas/k98_probe/probe.py:5\n" in failing.stdout


def test_list_calls_a_kata_started_only_once_its_stub_is_edited_or_a_hint_asked(clone):
    """Running a kata's specs does not start it; editing its stub, or asking its hints, does."""
    k02 = manifest.load().get("k02")
    (clone / ".kata-progress").write_text(f"{k02.slug} state=started red=1@0000000000000000\n")
    listing = kata(clone, "list")
    assert re.search(rf"{k02.slug}\s+not started", listing.stdout), listing.stdout
    kata(clone, "hint", "k02", "--task", "1")
    assert re.search(rf"{k02.slug}\s+started", kata(clone, "list").stdout)
    (clone / ".kata-progress").unlink()
    with (clone / "katas" / k02.slug / k02.module_files[0]).open("a") as stub:
        stub.write("# my first edit\n")
    assert re.search(rf"{k02.slug}\s+started", kata(clone, "list").stdout)


def test_the_cli_says_the_command_that_works_for_how_it_was_installed(clone):
    """Run by `uv run`, it says `uv run kata ...`; installed with pip, plain `kata ...`."""
    with_uv = kata(clone, "list", UV="/usr/local/bin/uv")
    assert "`uv run kata` runs its specs" in with_uv.stdout
    with_pip = kata(clone, "list")
    assert "`kata` runs its specs" in with_pip.stdout and "uv run" not in with_pip.stdout


def test_serve_docs_work_offline_and_a_stubs_500_says_the_todo(clone, live):
    """/docs loads Swagger UI from this machine with call durations on; a stub's 500 names its TODO and line."""
    add_served_probe(clone)
    server = live(clone, "serve", "k97", "--port", "0", "--host", "127.0.0.2")
    url = server.wait_for(r"interactive docs: (http://127\.0\.0\.2:\d+)/docs").group(1)
    page = httpx.get(f"{url}/docs", timeout=WAIT)
    assert page.status_code == 200
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert assets and all(asset.startswith("/") for asset in assets), f"assets from elsewhere: {assets}"
    assert "cdn" not in page.text.lower()
    assert '"displayRequestDuration": true' in page.text
    for asset in assets:
        fetched = httpx.get(url + asset, timeout=WAIT)
        assert fetched.status_code == 200 and len(fetched.content) > 1000, asset
    failed = httpx.post(f"{url}/jobs", timeout=WAIT)
    assert failed.status_code == 500
    assert "NotImplementedError: TODO(k97) task 1: answer 202" in failed.text
    assert "katas/k97_served/probe.py:12, in start_job" in failed.text
    server.wait_for(r"NotImplementedError: TODO\(k97\) task 1: answer 202 \(katas/k97_served/probe.py:12")
    server.process.send_signal(signal.SIGINT)
    code, output = server.finish()
    assert code == 0, output


def test_the_solution_diff_compares_code_not_comments_or_docstrings():
    """Comment and docstring churn is left out; a changed line of code is shown, with its real line numbers."""
    stub = (
        '"""Module."""\n\n\ndef f(x):\n    """Say what f does."""\n'
        "    # TODO(k00) task 1: add one\n    return x  # for now\n"
    )
    solution = '"""The module, solved."""\n\n\ndef f(x):\n    """Add one."""\n    return x + 1\n'
    diff = cli.code_diff(stub, solution, "mine.py", "solution.py")
    assert diff == ["--- mine.py (yours)", "+++ solution.py", "@@ your line 4, solution line 4 @@",
                    " def f(x):", "-    return x", "+    return x + 1"]  # fmt: skip
    assert cli.code_diff(stub, stub.replace("for now", "later"), "a", "b") == []
