"""The tooling the specs stand on: the switch, the failure messages, the timeline, the fakes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Awaitable

import httpx
import pytest
from fastapi import BackgroundTasks, FastAPI

from dojo import impl, manifest, runner
from dojo import timeline as timeline_module
from dojo.fakes import (
    BACKGROUND_HELD,
    BACKGROUND_RELEASED,
    CHARGE_APPROVED,
    CHARGE_ATTEMPTED,
    CHARGE_FAILED,
    EMAIL_BLOCKED_LOOP,
    EMAIL_SENT,
    EMAIL_STARTED,
    AsyncFakeOutbox,
    BackgroundGate,
    FakeClock,
    FakeGateway,
    FakeOutbox,
    FakeSleep,
)
from dojo.manifest import REPO_ROOT, git_blob_id
from dojo.teach import lesson
from dojo.timeline import (
    CALL_FINISHED,
    RESPONSE_COMPLETE,
    CatchAppErrors,
    StillRunningError,
    Timeline,
    describe_error,
    every_case,
    wait_until,
)

K01 = manifest.load().get("k01")


# ------------------------------------------------------------------ the switch


def test_the_switch_resolves_each_kind_of_code(tmp_path):
    """katas, solutions, a mutant, a clone and a bare katas/ folder all become a root of kata folders."""
    assert impl.resolve(None).root == manifest.KATAS_DIR
    assert impl.resolve("solutions").root == manifest.SOLUTIONS_DIR
    mutant = impl.resolve("mutant:k01_fire_and_forget/sends_inline")
    try:
        text = (mutant.root / "k01_fire_and_forget" / "notifications.py").read_text()
        assert "        send_notification_email(mailer" in text
    finally:
        mutant.close()
    assert not mutant.root.exists(), "a materialized mutant is removed when closed"
    (tmp_path / "clone" / "katas").mkdir(parents=True)
    assert impl.resolve(str(tmp_path / "clone")).root == tmp_path / "clone" / "katas"
    assert impl.resolve("clone", cwd=tmp_path).root == tmp_path / "clone" / "katas"
    assert impl.resolve(str(tmp_path)).root == tmp_path


@pytest.mark.parametrize("value", ["mutant:k01_fire_and_forget/no_such_mutant", "no/such/folder"])
def test_the_switch_explains_a_value_it_cannot_use(value):
    """A wrong --impl is a clear error naming what it accepts."""
    with pytest.raises(impl.ImplError, match=r"mutant|folder"):
        impl.resolve(value)


def test_a_stale_mutant_fails_loudly_instead_of_testing_the_solution(tmp_path):
    """A mutant whose 'old' text is gone from the solution is an error, not a silent no-op."""
    (tmp_path / "k01_fire_and_forget").mkdir()
    path = tmp_path / "k01_fire_and_forget" / "stale.toml"
    path.write_text('description = "x"\n[[replace]]\nfile = "notifications.py"\nold = "nowhere"\nnew = "x"\n')
    (tmp_path / "notifications.py").write_text("print('hi')\n")
    with pytest.raises(impl.ImplError, match="found it 0 times"):
        impl.load_mutant(path).apply(tmp_path)


def test_the_shipped_stub_is_recovered_from_git_after_the_learner_edits_it(tmp_path, monkeypatch):
    """`shipped` does not read the learner's file once it has changed: git's objects keep the original."""
    original = (K01.folder / "notifications.py").read_bytes()
    if git_blob_id(original) != K01.shipped["notifications.py"]:
        pytest.skip("this clone's stub is already edited")
    probe = subprocess.run(
        ["git", "cat-file", "-e", K01.shipped["notifications.py"]],
        cwd=REPO_ROOT,
        check=False,
    )
    if probe.returncode != 0:
        pytest.skip("the stub is not committed yet")
    copy = tmp_path / "katas"
    (copy / K01.slug).mkdir(parents=True)
    (copy / K01.slug / "notifications.py").write_text("# the learner's work in progress\n")
    monkeypatch.setattr(manifest, "KATAS_DIR", copy)
    assert impl.shipped_source(K01, "notifications.py") == original


def test_git_blob_id_is_gits_own():
    """The manifest's ids are what `git hash-object` prints."""
    content = (K01.folder / "README.md").read_bytes()
    result = subprocess.run(
        ["git", "hash-object", "--stdin"],
        input=content,
        capture_output=True,
        check=True,
    )
    assert git_blob_id(content) == result.stdout.decode().strip()


def test_the_manifest_finds_a_kata_by_slug_number_or_prefix():
    """`k01`, `1`, `01` and the slug name the same kata; a typo lists the real ones."""
    m = manifest.load()
    assert {m.get(name).slug for name in ["1", "01", "k01", "k01_fire", "k01_fire_and_forget"]} == {K01.slug}
    with pytest.raises(KeyError, match="k01_fire_and_forget"):
        m.get("nope")


@pytest.mark.parametrize(
    ("orders", "said"),
    [
        ([1], "1"),
        ([1, 2, 3, 4, 5, 6], "1-6"),
        ([1, 2, 3, 4, 5, 6, 10], "1-6, 10"),
        ([7, 8, 9, 11, 12, 17], "7-9, 11-12, 17"),
    ],
)
def test_the_readme_names_the_katas_ready_as_runs_without_claiming_a_gap(orders, said):
    """Katas 1-6 and 10 ready are "1-6, 10", never "1-10" while 7 to 9 are still coming."""
    from dojo import maintain

    assert maintain._span(orders) == said


SPEC = """
    from dojo.impl import kata_module
    import pytest
    mod = kata_module("k01_fire_and_forget", "notifications")

    @pytest.mark.task(1)
    def test_uses_the_module():
        '''x'''
        assert mod.create_app
"""


def _submission(tmp_path, source):
    (tmp_path / "sub" / "k01_fire_and_forget").mkdir(parents=True)
    (tmp_path / "sub" / "k01_fire_and_forget" / "notifications.py").write_text(textwrap.dedent(source))
    return tmp_path / "sub"


INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""


def _run(pytester, submission):
    pytester.makeini(INI)
    pytester.makepyfile(test_probe=textwrap.dedent(SPEC))
    return pytester.runpytest_inprocess(f"--impl={submission}", "-p", "dojo.plugin", "-p", "no:cacheprovider")


def test_a_submission_with_a_syntax_error_fails_each_spec_with_a_message(pytester, tmp_path):
    """A broken module is a FAILED spec that says which file and line, not a collection error."""
    result = _run(pytester, _submission(tmp_path, "def create_app(:\n    pass\n"))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*CANNOT IMPORT k01_fire_and_forget/notifications.py*", "*SyntaxError*line 1*"])


def test_a_submission_missing_a_function_fails_with_missing_name(pytester, tmp_path):
    """A missing name is reported as such, with what the module does define."""
    result = _run(pytester, _submission(tmp_path, "def something_else():\n    pass\n"))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*MISSING NAME 'create_app'*", "*defines: something_else*"])


def test_collecting_the_specs_never_imports_the_kata_module(pytester, tmp_path):
    """pytest's probes while collecting (``_mock_name`` …) must not run the learner's code before a spec does."""
    pytester.makeini(INI)
    pytester.makepyfile(test_probe=textwrap.dedent(SPEC))
    submission = _submission(tmp_path, "raise SystemExit('imported while collecting')\n")
    result = pytester.runpytest_inprocess(
        f"--impl={submission}", "-p", "dojo.plugin", "-p", "no:cacheprovider", "--collect-only"
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()


def test_the_run_header_names_the_code_under_test(pytester, tmp_path):
    """Whoever reads the output knows whose code was tested."""
    result = _run(pytester, _submission(tmp_path, "def create_app():\n    pass\n"))
    result.stdout.fnmatch_lines([f"code under test: submission {tmp_path / 'sub'}*"])
    result.assert_outcomes(passed=1)


def test_a_spec_without_a_task_marker_is_refused(pytester):
    """Every spec in a kata counts toward a task; an unmarked one is a usage error."""
    pytester.makeini(INI)
    pytester.mkdir("katas")
    pytester.mkdir("katas/k99_probe")
    pytester.path.joinpath("katas/k99_probe/test_probe.py").write_text("def test_x():\n    pass\n")
    result = pytester.runpytest_inprocess("-p", "dojo.plugin", "-p", "no:cacheprovider", "katas")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*has no @pytest.mark.task(N) marker*"])


def test_a_learners_own_test_file_in_a_kata_folder_runs_without_task_markers(pytester):
    """Kata 16's my_tests.py is the learner's suite, not a spec: run alone, it needs no task marker."""
    pytester.makeini(INI)
    pytester.mkdir("katas")
    pytester.mkdir("katas/k99_probe")
    pytester.path.joinpath("katas/k99_probe/my_tests.py").write_text("def test_x():\n    pass\n")
    result = pytester.runpytest_inprocess("-p", "dojo.plugin", "-p", "no:cacheprovider", "katas/k99_probe/my_tests.py")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=1)


# ------------------------------------------------------------------ the timeline


def _app_with_task(task, *, fail_in_endpoint=False):
    app = FastAPI()

    @app.post("/go", status_code=202)
    async def go(background_tasks: BackgroundTasks):
        if fail_in_endpoint:
            raise RuntimeError("boom in endpoint")
        background_tasks.add_task(task)
        return {"ok": True}

    return app


async def test_the_timeline_sees_the_response_complete_before_a_background_task():
    """Driving the app directly shows what test clients cannot: response first, task after."""
    timeline = Timeline()
    app = _app_with_task(lambda: timeline.record("task ran"))
    exchange = await timeline.request(app, "POST", "/go")
    assert exchange.status == 202 and exchange.json() == {"ok": True}
    assert timeline.names() == ["response start", RESPONSE_COMPLETE, "task ran", CALL_FINISHED]
    timeline.expect_order(RESPONSE_COMPLETE, "task ran", why="", revisit="")


async def test_expect_order_fails_with_both_orders_side_by_side():
    """The failure message shows the expected order beside what happened."""
    timeline = Timeline()
    timeline.record("email sent", "to ada")
    timeline.record(RESPONSE_COMPLETE)
    with pytest.raises(AssertionError) as failure:
        timeline.expect_order(RESPONSE_COMPLETE, "email sent", why="Too early.", revisit="task 3")
    message = str(failure.value)
    assert "Too early." in message and "revisit:  task 3" in message
    assert "1. response complete" in message and "#1 email sent  to ada" in message
    assert message.index("1. response complete") < message.index("#1 email sent")


async def test_wait_for_stops_a_hang_with_a_message():
    """A hung app fails after the safety timeout; a working one never waits for it."""
    timeline = Timeline(safety_timeout=0.01)
    with pytest.raises(AssertionError, match="seems to hang"):
        await timeline.wait_for("never")


async def test_wait_for_during_a_call_fails_at_once_when_the_call_ends_without_the_event():
    """A stub that queues nothing fails in milliseconds, not after the bound; an event recorded first still counts."""
    timeline = Timeline(safety_timeout=30)
    quiet = timeline.start(_app_with_task(lambda: None), "POST", "/go")
    started = time.perf_counter()
    with pytest.raises(AssertionError, match="The request ended and nothing called task ran had happened"):
        await timeline.wait_for("task ran", during=quiet)
    assert time.perf_counter() - started < 1
    busy = timeline.start(_app_with_task(lambda: timeline.record("task ran")), "POST", "/go")
    assert (await timeline.wait_for("task ran", during=busy)).name == "task ran"
    await busy


async def test_wait_until_asks_again_and_fails_at_once_once_the_calls_have_ended():
    """It returns when the condition holds; with ``during``, calls that ended without it fail it without waiting."""
    timeline = Timeline()
    holds = timeline.start(_app_with_task(lambda: timeline.record("task ran")), "POST", "/go")
    await wait_until(lambda: timeline.count("task ran") == 1, expected="", got=lambda: "", revisit="", during=[holds])
    never = [timeline.start(_app_with_task(lambda: None), "POST", "/go") for _ in range(2)]
    started = time.perf_counter()
    with pytest.raises(AssertionError, match="the requests had ended") as failure:
        await wait_until(
            lambda: timeline.count("task ran") == 3,
            expected="three runs",
            got=lambda: "one run",
            revisit="task 9",
            during=never,
        )
    assert time.perf_counter() - started < 1
    assert "three runs" in str(failure.value) and "one run" in str(failure.value) and "task 9" in str(failure.value)


async def test_every_case_is_checked_and_the_failure_names_each_case_that_went_wrong():
    """A failing case does not stop the next; one failure: the first case's lesson whole, the others by their got."""
    checked: list[int] = []

    async def check(number: int) -> None:
        checked.append(number)
        if number % 2:
            got = "HTTP 500" if number < 5 else "HTTP 413"
            assertion = "\nassert 500 == 202\n  +500\n  -202" if number == 1 else ""  # what pytest adds to an assert
            raise AssertionError(lesson(expected=f"202 for {number}", got=got, revisit="task 1: the idea") + assertion)

    cases = {f"case {number}": number for number in range(1, 7)}
    with pytest.raises(AssertionError) as failure:
        await every_case(cases, check, what="numbers", revisit="task 1")
    assert checked == [1, 2, 3, 4, 5, 6]
    assert str(failure.value) == (
        "3 of the 6 numbers went wrong; the first, 'case 1':"
        + lesson(expected="202 for 1", got="HTTP 500", revisit="task 1: the idea")
        + "  also:    'case 3' (the same); 'case 5' (got HTTP 413)\n"
    )
    await every_case({"even": 2, "also even": 4}, check, what="numbers", revisit="task 1")
    with pytest.raises(AssertionError) as alone:
        await every_case({"odd": 1}, check, what="numbers", revisit="task 1")
    assert "also" not in str(alone.value) and str(alone.value).startswith(
        "1 of the 1 numbers went wrong; the first, 'odd':"
    )


async def test_every_case_stops_a_hang_at_the_bound_naming_the_case_and_notes_an_error_of_the_spec(monkeypatch):
    """The cases share one bound: a hang ends the spec, naming its case; an error that is no failed check is raised."""
    monkeypatch.setattr(timeline_module, "BOUND", 0.05)

    async def check(delay: float) -> None:
        await asyncio.sleep(delay)

    started = time.perf_counter()
    with pytest.raises(StillRunningError) as hang:
        await every_case({"quick": 0, "slow": 0.04, "slower": 0.04, "last": 0}, check, what="waits", revisit="task 2")
    assert time.perf_counter() - started < 1
    assert str(hang.value).startswith("waits: stopped in the case 'slower' (3 of 4)")
    assert "each of the 4 waits checked within 0.05 s" in str(hang.value) and "task 2" in str(hang.value)

    async def broken(_: int) -> None:
        raise KeyError("id")

    with pytest.raises(KeyError) as error:
        await every_case({"first": 1}, broken, what="bodies", revisit="task 3")
    assert error.value.__notes__ == ["(the spec was checking the case 'first' of its bodies)"]


async def test_every_case_takes_the_bound_it_is_given():
    """A kata's own bound (a virtual clock's, say) bounds the cases in BOUND's stead; a hang there names its case."""
    bounded: list[str] = []

    async def own_bound(call: Awaitable[None], *, revisit: str, expected: str) -> None:
        bounded.append(expected)
        task = asyncio.ensure_future(call)
        done, _ = await asyncio.wait({task}, timeout=0.05)
        if not done:
            task.cancel()
            lesson_text = lesson(expected=f"{expected} on its own clock", got="still running", revisit=revisit)
            raise StillRunningError(lesson_text)
        task.result()

    async def check(delay: float) -> None:
        await asyncio.sleep(delay)

    await every_case({"quick": 0}, check, what="waits", revisit="task 5", within=own_bound)
    assert bounded == ["each of the 1 waits checked"]
    with pytest.raises(StillRunningError) as hang:
        await every_case({"quick": 0, "slow": 1}, check, what="waits", revisit="task 5", within=own_bound)
    assert str(hang.value).startswith("waits: stopped in the case 'slow' (2 of 2)")
    assert "each of the 2 waits checked on its own clock" in str(hang.value)


async def test_an_app_error_is_kept_not_raised_and_points_at_the_line():
    """Exceptions end up on the timeline and in the exchange, described at the user's frame."""
    timeline = Timeline()
    app = _app_with_task(lambda: None, fail_in_endpoint=True)
    exchange = await timeline.request(app, "POST", "/go")
    assert exchange.status == 500
    assert isinstance(exchange.error, RuntimeError)
    assert "test_dojo.py" in describe_error(exchange.error)
    assert timeline.count("app raised") == 1


def _reads_a_broken_document() -> None:
    json.loads("{")  # the error is raised three frames down, inside the standard library


def test_an_error_is_described_at_the_deepest_line_outside_the_libraries():
    """The line named is the user's own, even when the error was raised deeper, in a library."""
    with pytest.raises(ValueError) as raised:
        _reads_a_broken_document()
    line = _reads_a_broken_document.__code__.co_firstlineno + 1
    assert describe_error(raised.value) == (
        f"JSONDecodeError: {raised.value} (tests/test_dojo.py:{line}, in _reads_a_broken_document)"
    )


async def test_the_error_catcher_turns_a_crash_into_a_500_that_says_why():
    """The shared client's app answers 500 with the exception's text instead of raising it."""
    app = CatchAppErrors(_app_with_task(lambda: None, fail_in_endpoint=True))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.post("/go")
    assert response.status_code == 500
    assert "RuntimeError: boom in endpoint" in response.text
    assert len(app.errors) == 1


# ------------------------------------------------------------------ fakes


async def test_a_held_outbox_blocks_a_worker_thread_until_released():
    """hold() blocks a send in a thread; release() lets it through; both are on the timeline."""
    outbox = FakeOutbox()
    outbox.hold()
    worker = asyncio.ensure_future(asyncio.to_thread(outbox.send, "a@example.com", "s", "b"))
    started = await outbox.timeline.wait_for(EMAIL_STARTED)
    assert started.thread != threading.current_thread().name
    assert len(outbox) == 0
    outbox.release()
    await worker
    assert outbox.timeline.names() == [EMAIL_STARTED, EMAIL_SENT]
    assert [e.to for e in outbox.to("a@example.com")] == ["a@example.com"]


async def test_a_held_outbox_never_blocks_the_event_loop_thread():
    """A def send called from async code would freeze the test; the fake records it instead."""
    outbox = FakeOutbox()
    outbox.hold()
    outbox.send("a@example.com", "s", "b")
    assert EMAIL_BLOCKED_LOOP in outbox.timeline.names()


async def test_an_async_send_waits_for_release_without_blocking_the_loop():
    """asend() yields to the loop while held."""
    outbox = AsyncFakeOutbox()
    outbox.hold()
    sending = asyncio.ensure_future(outbox.asend("a@example.com", "s", "b"))
    await outbox.timeline.wait_for(EMAIL_STARTED)
    assert not sending.done()
    outbox.release()
    await sending
    assert len(outbox) == 1


def test_a_failing_outbox_raises_and_records():
    """fail_with() scripts a broken mail server."""
    outbox = FakeOutbox()
    outbox.fail_with(ConnectionError("down"))
    with pytest.raises(ConnectionError):
        outbox.send("a@example.com", "s", "b")
    assert outbox.timeline.names()[-1] == "email failed" and len(outbox) == 0


def test_each_fake_outbox_offers_one_way_to_send():
    """Code that calls the blocking send where the async one is wanted (or the reverse) fails, it does not pass."""
    assert hasattr(FakeOutbox(), "send") and not hasattr(FakeOutbox(), "asend")
    assert hasattr(AsyncFakeOutbox(), "asend") and not hasattr(AsyncFakeOutbox(), "send")


def test_the_fake_sleep_and_gateway_are_async_only():
    """A def-style sleep or charge would let blocking code pass a spec about the event loop."""
    assert not hasattr(FakeSleep(), "sync") and not hasattr(FakeGateway(), "charge_sync")


async def test_the_fake_sleep_moves_the_fake_clock_and_keeps_a_log():
    """Sleeping is instant, yet the clock and the log move as if time passed."""
    clock = FakeClock()
    sleep = FakeSleep(clock)
    start, mono = clock.now(), clock.monotonic()
    await sleep(1.5)
    await sleep(0.5)
    assert sleep.calls == [1.5, 0.5] and sleep.total == 2.0
    assert (clock.now() - start).total_seconds() == 2.0 and clock.monotonic() - mono == 2.0
    with pytest.raises(ValueError):
        clock.advance(-1)


async def test_the_fake_gateway_follows_its_script_and_repeats_the_last_outcome():
    """Scripted errors are raised fresh each time, values returned; past the script, the last outcome repeats."""
    gateway = FakeGateway([TimeoutError("slow"), "receipt-A", ConnectionError])
    with pytest.raises(TimeoutError, match="slow") as first:
        await gateway.charge("pay_1", 1250)
    assert await gateway.charge("pay_1", 1250) == "receipt-A"
    for _ in range(2):
        with pytest.raises(ConnectionError, match="scripted failure of charge"):
            await gateway.charge("pay_1", 1250)
    assert len(gateway) == 4
    assert [c.outcome for c in gateway.calls] == [
        "TimeoutError: slow",
        "'receipt-A'",
        "ConnectionError: scripted failure of charge 3",
        "ConnectionError: scripted failure of charge 4",
    ]
    assert gateway.timeline.names()[:2] == [CHARGE_ATTEMPTED, CHARGE_FAILED]
    assert gateway.timeline.count(CHARGE_APPROVED) == 1
    with pytest.raises(TimeoutError) as again:
        await gateway.will(TimeoutError("slow")).charge("pay_2", 1)
    assert again.value is not first.value, "each raise is a fresh copy: no traceback piles up"
    assert "pay_1" in repr(gateway) and "pay_2" in repr(gateway)


async def test_an_unscripted_gateway_approves_every_charge():
    """With no script, each charge returns receipt-N."""
    gateway = FakeGateway()
    assert [await gateway.charge("p", 1), await gateway.charge("p", 1)] == ["receipt-1", "receipt-2"]
    assert repr(FakeGateway()) == "FakeGateway(never charged)"


async def test_the_background_gate_holds_tasks_after_the_response_until_opened():
    """Through the gate the client has its answer, the task waits; the unwrapped app never waits."""
    timeline = Timeline()
    gate = BackgroundGate(timeline)
    app = _app_with_task(lambda: timeline.record("task ran"))
    held = timeline.start(gate.wrap(app), "POST", "/go")
    await timeline.wait_for(BACKGROUND_HELD)
    assert timeline.names() == ["response start", RESPONSE_COMPLETE, BACKGROUND_HELD]
    assert not held.done()
    gate.open()
    exchange = await held
    assert exchange.status == 202 and exchange.json() == {"ok": True}
    assert timeline.names()[3:] == [BACKGROUND_RELEASED, "task ran", CALL_FINISHED]
    await timeline.request(gate.wrap(app), "POST", "/go")  # open: nothing waits any more
    assert timeline.count(BACKGROUND_HELD) == 1 and timeline.count("task ran") == 2


# ------------------------------------------------------------------ start-up cost


class _Manager:
    def __init__(self):
        self.plugins = {"hypothesispytest": object()}

    def get_plugin(self, name):
        return self.plugins.get(name)

    def unregister(self, plugin):
        self.plugins = {k: v for k, v in self.plugins.items() if v is not plugin}


class _Session:
    def __init__(self):
        self.config = type("Config", (), {"pluginmanager": _Manager()})()


def test_a_spec_file_uses_hypothesis_when_it_imports_it_not_when_it_names_it(tmp_path):
    """Kata 16's specs name hypothesis without using it: importing it would cost each of its runs ~0.2 s."""
    from dojo.plugin import uses_hypothesis

    using = {kata.slug for kata in manifest.load() if uses_hypothesis(kata.spec_path)}
    assert {"k03_retry", "k17_batching"} <= using and "k16_testing_tasks" not in using
    for text, uses in (
        ("import hypothesis\n", True),
        ("from hypothesis import given, strategies as st\n", True),
        ("if True:\n    from hypothesis import given\n", True),
        ("import hypothesis_extra\n", False),
        ('ARGS = ["-p", "_hypothesis_pytestplugin"]  # when the file names hypothesis\n', False),
    ):
        spec = tmp_path / "test_x.py"
        spec.write_text(text, encoding="utf-8")
        assert uses_hypothesis(spec) is uses, text


def test_the_head_start_imports_what_the_code_imports_and_leaves_the_specs_imports_to_them():
    """Collecting imports the solution's libraries first; the spec file's come with it, unparsed by us."""
    kata = manifest.load().get("k07_db_session")
    code_only = kata.libraries(specs=False)
    assert set(code_only) <= set(kata.libraries())
    assert "sqlalchemy.ext.asyncio" in code_only and "asgi_lifespan" not in code_only and "pytest" not in code_only


def test_hypothesis_plugin_is_dropped_when_no_spec_uses_hypothesis(monkeypatch):
    """A kata without property specs does not pay for importing hypothesis at the end of the run."""
    from dojo import plugin

    monkeypatch.delitem(sys.modules, "hypothesis", raising=False)
    session = _Session()
    plugin.pytest_collection_finish(session)
    assert session.config.pluginmanager.get_plugin("hypothesispytest") is None


def test_hypothesis_plugin_stays_when_a_spec_uses_hypothesis():
    """With hypothesis imported by a spec, its plugin keeps reporting falsifying examples."""
    import hypothesis  # noqa: F401 - the point: a spec module imported it

    from dojo import plugin

    session = _Session()
    plugin.pytest_collection_finish(session)
    assert session.config.pluginmanager.get_plugin("hypothesispytest") is not None


# ------------------------------------------------------------------ teaching assertions


def test_expect_status_passes_silently_and_fails_with_a_lesson():
    """The right status is silent; a wrong one shows expected, got (with the body) and revisit."""
    from dojo.teach import expect_status

    expect_status(httpx.Response(202), 202, revisit="task 3")
    with pytest.raises(AssertionError) as failure:
        expect_status(httpx.Response(500, text="boom at line 9"), 202, revisit="task 3: queue it")
    message = str(failure.value)
    assert "expected: 202 Accepted" in message and "got:      500 boom at line 9" in message
    assert "revisit:  task 3: queue it" in message


def test_expect_json_compares_bodies_and_survives_a_body_that_is_not_json():
    """Equal JSON is silent; a different or non-JSON body fails with both shown."""
    from dojo.teach import expect_json

    expect_json(httpx.Response(200, json={"a": 1}), {"a": 1}, revisit="r")
    with pytest.raises(AssertionError, match=r'expected: \{"a": 1\}'):
        expect_json(httpx.Response(200, json={"a": 2}), {"a": 1}, revisit="r")
    with pytest.raises(AssertionError, match="Internal Server Error"):
        expect_json(httpx.Response(500, text="Internal Server Error"), {"a": 1}, revisit="r")


async def test_closing_the_timeline_settles_the_calls_a_spec_abandoned():
    """A call left unawaited must not log "Task exception was never retrieved" in a later spec."""
    timeline = Timeline()

    async def interrupted() -> None:
        raise RuntimeError("a time limit interrupted the app")

    finished = asyncio.ensure_future(interrupted())
    timeline._calls.append(finished)  # as start() records its calls
    await asyncio.sleep(0)
    assert finished.done() and finished._log_traceback, "asyncio would report it when collected"

    async def forever(_scope, _receive, _send):
        await asyncio.Event().wait()

    hanging = timeline.start(forever, "GET", "/")
    await asyncio.sleep(0)
    timeline.close()
    assert not finished._log_traceback, "close() read the exception"
    await asyncio.sleep(0)
    assert hanging.cancelled(), "close() cancelled the call still running"


# ------------------------------------------------------------------ the virtual clock (dojo/virtual_clock.py)


def on_the_virtual_clock(main):
    """Run ``main()`` on a fresh VirtualClockLoop (works on 3.10, which has no asyncio.Runner)."""
    from dojo.virtual_clock import VirtualClockLoop

    loop = VirtualClockLoop()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


def test_the_virtual_clock_stands_still_while_anything_can_run_so_a_poller_never_wakes():
    from dojo.virtual_clock import after_time_passes, settle

    async def main():
        box = []

        async def poll():
            while not box:  # noqa: ASYNC110 - the polling under test
                await asyncio.sleep(0.01)

        poller = asyncio.ensure_future(poll())
        await settle(lambda: False, rounds=3)  # the poller looked once, and sleeps
        box.append("a job")
        woke = await settle(poller.done)
        late = await after_time_passes(poller.done)
        return woke, late, asyncio.get_running_loop().time()

    woke, late, now = on_the_virtual_clock(main)
    assert (woke, late) == (False, True)
    assert now == pytest.approx(1.0)


def test_the_virtual_clock_jumps_when_idle_so_an_hour_passes_at_once_and_timeouts_fire():
    import time

    from dojo.virtual_clock import running_loop

    async def main():
        await asyncio.sleep(3600)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.Event().wait(), 5)
        return running_loop().time()

    started = time.perf_counter()
    assert on_the_virtual_clock(main) == pytest.approx(3605)
    assert time.perf_counter() - started < 2


def test_a_task_that_never_lets_the_loop_rest_cannot_starve_a_timeout():
    from dojo.virtual_clock import BUSY_LIMIT, idle_wait

    async def main():
        async def spin():
            while True:  # noqa: ASYNC110 - the polling under test
                await asyncio.sleep(0)

        spinner = asyncio.ensure_future(spin())
        busy, jumps = await idle_wait(10)
        spinner.cancel()
        return busy, jumps

    busy, jumps = on_the_virtual_clock(main)
    assert busy >= BUSY_LIMIT
    assert jumps == 1


def test_idle_wait_tells_a_parked_task_from_a_polling_one():
    from dojo.virtual_clock import idle_wait, settle

    async def main():
        event = asyncio.Event()
        parked = asyncio.ensure_future(event.wait())
        await settle(lambda: False, rounds=3)
        quiet = await idle_wait(10)

        async def poll():
            while not event.is_set():  # noqa: ASYNC110 - the polling under test
                await asyncio.sleep(0.01)

        poller = asyncio.ensure_future(poll())
        noisy = await idle_wait(10)
        event.set()
        await asyncio.gather(parked, poller)
        return quiet, noisy

    (quiet_busy, quiet_jumps), (_, noisy_jumps) = on_the_virtual_clock(main)
    assert quiet_busy <= 2
    assert quiet_jumps == 1
    assert noisy_jumps >= 1000


def test_stop_leftovers_ends_even_a_task_that_swallows_its_cancellation():
    from dojo.virtual_clock import stop_leftovers

    async def main():
        before = asyncio.all_tasks()

        async def stubborn():
            while True:
                with contextlib.suppress(asyncio.CancelledError):  # the mistake under test
                    await asyncio.Event().wait()

        task = asyncio.ensure_future(stubborn())
        await asyncio.sleep(0)
        await stop_leftovers(before)
        return task.done()

    assert on_the_virtual_clock(main) is True


# ------------------------------------------------------------------ demo collaborators


def test_a_kata_may_have_a_demo_collaborator_of_its_own(tmp_path):
    """build_app gives a kata listed in KATA_COLLABORATORS its own builder, every other kata the shared one."""
    import importlib.util

    from dojo import demo

    def factory_in(slug: str):
        folder = tmp_path / slug
        folder.mkdir()
        (folder / "app.py").write_text("def create_app(mailer):\n    return mailer\n")
        spec = importlib.util.spec_from_file_location(f"_demo_probe_{slug}", folder / "app.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.create_app

    assert type(demo.build_app(factory_in("k01_fire_and_forget"))) is demo.ThreadWatchingMailer
    assert type(demo.build_app(factory_in("k02_multiple_tasks"))) is demo.ConsoleMailer


def test_a_kata_may_have_a_finisher_that_adds_to_its_built_app(tmp_path, monkeypatch):
    """build_app hands the app a kata's factory built, with the collaborators it was given, to its finisher."""
    import importlib.util

    from dojo import demo

    folder = tmp_path / "k99_finished"
    folder.mkdir()
    (folder / "app.py").write_text("def create_app(clock):\n    return {'clock': clock}\n")
    spec = importlib.util.spec_from_file_location("_demo_probe_k99_finished", folder / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    seen = []

    def finish(app, factory, arguments):
        seen.append((factory, sorted(arguments)))
        app["finished"] = True

    monkeypatch.setitem(demo.KATA_FINISHERS, "k99_finished", finish)
    built = demo.build_app(module.create_app)
    assert built["finished"] is True
    assert type(built["clock"]) is demo.RealClock
    assert seen == [(module.create_app, ["clock"])]
    monkeypatch.delitem(demo.KATA_FINISHERS, "k99_finished")
    assert "finished" not in demo.build_app(module.create_app)


async def test_kata_11s_demo_receiver_checks_with_the_given_verify_and_answers_as_its_path_says():
    """401 when verify says no; busy: 429 and Retry-After twice, then 204; flaky: processed once, 500, then 204."""
    import io

    from dojo import demo

    out = io.StringIO()
    checked = []

    def verify(secret, *, msg_id, timestamp, signature, body, now):
        checked.append((secret, msg_id, timestamp, signature, body, type(now).__name__))
        return signature == "v1,good"

    receiver = demo.DemoReceiver(secret=b"s", verify=verify, clock=demo.RealClock(), out=out)
    transport = httpx.ASGITransport(app=receiver)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:

        async def send(path: str, msg_id: str, signature: str = "v1,good") -> httpx.Response:
            headers = {"webhook-id": msg_id, "webhook-timestamp": "1767603600", "webhook-signature": signature}
            return await client.post(path, content=b'{"type":"t"}', headers=headers)

        assert (await send("/ok", "m1", "v1,forged")).status_code == 401
        assert checked[0] == (b"s", "m1", "1767603600", "v1,forged", b'{"type":"t"}', "datetime")
        busy = [await send("/busy", "m2") for _ in range(3)]
        assert [(r.status_code, r.headers.get("retry-after")) for r in busy] == [(429, "3"), (429, "3"), (204, None)]
        flaky = [(await send("/flaky", "m3")).status_code for _ in range(2)]
        assert flaky == [500, 204]
        assert (await send("/down", "m4")).status_code == 503
        assert (await send("/gone", "m5")).status_code == 410
        assert (await send("/nowhere", "m6")).status_code == 404
        assert (await client.post("/ok", content=b"{}")).status_code == 400
    text = out.getvalue()
    assert text.count("PROCESSED") == 2  # busy's third attempt, flaky's first
    assert "already processed this id" in text


async def test_kata_1s_demo_mailer_says_where_each_send_runs():
    """On the event loop thread it says so loudly; in a worker thread it names the thread and the count."""
    import io

    from dojo import demo

    out = io.StringIO()
    mailer = demo.ThreadWatchingMailer(delay=0, out=out)
    mailer.send("ada@example.com", "s", "on the loop")
    await asyncio.to_thread(mailer.send, "grace@example.com", "s", "in a thread")
    lines = out.getvalue().splitlines()
    assert "email #1 to ada@example.com: sending, 1 in progress (ON THE EVENT LOOP THREAD" in lines[0]
    assert "email #2 to grace@example.com: sending, 1 in progress (in asyncio_" in "\n".join(lines)
    assert mailer.sent == 2


# ------------------------------------------------------------------ nothing left behind

LEAKY_SPECS = """
import asyncio
import socket
import sqlite3
import threading

import pytest


@pytest.fixture(autouse=True)
def _no_leaks(leak_check):
    return None


pytestmark = pytest.mark.leaks(revisit="task 1: close what you open (README: Sessions)")
kept = []


@pytest.fixture(autouse=True, scope="module")
def _close_what_the_specs_kept():
    yield
    for thing in kept:
        (thing.set if isinstance(thing, threading.Event) else thing.close)()


def test_closes_its_file(tmp_path):
    with (tmp_path / "f").open("w") as handle:
        handle.write("x")


async def test_async_spec_with_its_loop_and_a_thread_that_ends():
    await asyncio.to_thread(sum, [1, 2])
    await asyncio.sleep(0)


def test_leaves_a_file_open(tmp_path):
    kept.append((tmp_path / "left.txt").open("w"))


def test_leaves_a_socket_open():
    kept.append(socket.socket())


def test_leaves_a_thread_running():
    stop = threading.Event()
    kept.append(stop)
    threading.Thread(target=stop.wait, name="forgotten-worker", daemon=True).start()


def test_leaves_a_database_connection_open(tmp_path):
    kept.append(sqlite3.connect(tmp_path / "db.sqlite3"))
"""


def test_leak_check_fails_a_spec_that_left_a_file_socket_or_thread_open(pytester):
    pytester.makeini(INI + "asyncio_mode = auto\n")
    pytester.makepyfile(test_leaky=LEAKY_SPECS)
    result = pytester.runpytest_inprocess("-p", "dojo.plugin", "-p", "no:cacheprovider", "-p", "no:randomly")
    reports = result.reprec.getreports("pytest_runtest_logreport")
    failed = {(report.nodeid.split("::")[-1], report.when) for report in reports if report.failed}
    text = result.stdout.str()
    assert failed == {
        ("test_leaves_a_file_open", "teardown"),
        ("test_leaves_a_socket_open", "teardown"),
        ("test_leaves_a_thread_running", "teardown"),
        ("test_leaves_a_database_connection_open", "teardown"),
    }, text
    assert "left.txt" in text
    assert "socket:[" in text
    assert "thread 'forgotten-worker'" in text
    assert "db.sqlite3" in text
    assert "revisit:  task 1: close what you open (README: Sessions)" in text


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # the socket the collector closes says it was not closed
def test_leak_check_collects_garbage_only_when_something_looks_left_open(monkeypatch, tmp_path):
    """A clean spec pays no garbage collection; a socket held only by a dead cycle is collected, not reported."""
    import gc
    import socket

    from dojo import leaks

    collections = []
    real_collect = gc.collect
    monkeypatch.setattr(leaks.gc, "collect", lambda *args: collections.append(args) or real_collect(*args))

    before = leaks.snapshot()
    with (tmp_path / "closed.txt").open("w") as handle:
        handle.write("x")
    assert leaks.left_open(before, grace=0) == []
    assert collections == [], "nothing was left open: no collection needed"

    class Cycle:
        pass

    gc.disable()  # keep the cycle alive until the leak check collects it
    try:
        before = leaks.snapshot()
        cycle = Cycle()
        cycle.self = cycle
        cycle.sock = socket.socket()
        del cycle
        assert leaks.left_open(before, grace=0) == []
    finally:
        gc.enable()
    assert len(collections) == 1, "the socket looked open until the collection closed it"

    before = leaks.snapshot()
    kept = socket.socket()
    try:
        left = leaks.left_open(before, grace=0)
    finally:
        kept.close()
    assert len(left) == 1 and "socket:[" in left[0]


def test_the_learners_bytecode_is_never_written_and_the_setting_is_put_back(tmp_path, monkeypatch):
    """A .pyc of the learner's module could shadow a save made in the same second: none is written."""
    (tmp_path / "k99_probe").mkdir()
    (tmp_path / "k99_probe" / "probe.py").write_text("from . import helper\nVALUE = helper.VALUE\n")
    (tmp_path / "k99_probe" / "helper.py").write_text("VALUE = 7\n")
    monkeypatch.setattr(sys, "dont_write_bytecode", False)
    monkeypatch.delitem(sys.modules, "k99_probe", raising=False)
    try:
        assert impl.import_kata_module(tmp_path, "k99_probe", "probe").VALUE == 7
    finally:
        for name in [name for name in sys.modules if name.partition(".")[0] == "k99_probe"]:
            del sys.modules[name]
    assert not (tmp_path / "k99_probe" / "__pycache__").exists()
    assert sys.dont_write_bytecode is False


_SHARED_AND_SINGLE = """
import json, sys
from dojo import runner
slug, impl = sys.argv[1], sys.argv[2]
forked = []
join = runner._SecondProcess.join
runner._SecondProcess.join = lambda self: (forked.append(self.child is not None), join(self))
runs = [runner.run_in_process(slug, impl, share=share) for share in (True, False)]
outcomes = [[[s.name, s.task, s.outcome, s.message] for s in run.specs] + [run.problem] for run in runs]
print(json.dumps([forked, *outcomes]))
"""


@pytest.mark.parametrize("code", ["katas", "solutions"], ids=["red", "green"])
def test_a_run_shared_by_two_processes_gives_the_verdict_of_one(code):
    """Same specs, same order, same outcomes and messages, whether a long run is shared or not."""
    kata = manifest.load().get("k10_dead_letters_and_cleanup")
    result = subprocess.run(
        [sys.executable, "-c", _SHARED_AND_SINGLE, kata.slug, code],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    forked, shared, single = json.loads(result.stdout.strip().splitlines()[-1])
    assert forked == [True]  # the shared run did fork
    assert len(single) == 91  # 90 specs and the problem
    assert shared == single


def test_the_specs_of_a_second_process_that_dies_are_errors_in_their_place():
    collector = runner._Collector("k01_fire_and_forget")
    second = runner._SecondProcess(collector)
    collector.tasks = {"t.py::first": 1, "t.py::second": 1, "t.py::third": 2}
    second.order = {"t.py::first": 0, "t.py::second": 1, "t.py::third": 2}
    second.theirs = ["t.py::second"]
    collector.specs["t.py::third"] = runner.SpecResult("third", 2, "passed")
    collector.specs["t.py::first"] = runner.SpecResult("first", 1, "failed", "expected 1")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a child that dies without a word
        os._exit(3)
    os.close(write)
    second.child = (pid, read)
    second.join()
    assert [(spec.name, spec.outcome) for spec in collector.specs.values()] == [
        ("first", "failed"),
        ("second", "error"),
        ("third", "passed"),
    ]
    assert collector.specs["t.py::second"].task == 1
    assert "os._exit" in collector.specs["t.py::second"].message
