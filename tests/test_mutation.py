"""The mutation pass (dojo/mutation.py): its operators, its ids, its verdicts, its records.

The last check is the one CI leans on: the committed figures in ``tests/mutation/`` are
those of the solutions and specs beside them.
"""

from __future__ import annotations

import textwrap

import pytest

from dojo import manifest, mutation

SOURCE = textwrap.dedent(
    '''\
    """A module docstring: never mutated."""

    from __future__ import annotations

    import logging

    logger = logging.getLogger(__name__)
    LIMIT = 3


    def pick(x: int, items: list[str] | None = None) -> int | None:
        """A docstring: never mutated."""
        total = 0
        for item in items or []:
            if x < LIMIT and item in "ab":
                total += x * 2
                break
            if not item:
                continue
        logger.error("failed %s", x)
        report(x, flag=True)
        return total


    async def wait(queue) -> None:
        await queue.join()
        return
    '''
)
K01 = manifest.load().get("k01_fire_and_forget")


def _mutants(source: str = SOURCE) -> dict[str, str]:
    """Each mutant's id -> its changed lines, as `--show` prints them (+ lines only)."""
    result = {}
    for m in mutation.mutations_of_source(source.encode(), "sample.py"):
        added = [line[2:].strip() for line in m.diff(source.encode()) if line.startswith("+ ")]
        result[m.id] = " | ".join(added)
    return result


def test_each_operator_makes_what_it_should():
    changed = set(_mutants().values())
    expected = {
        # comparisons, both ways of moving the limit, and membership
        "if x <= LIMIT and item in 'ab':".replace("'", '"'),
        'if x >= LIMIT and item in "ab":',
        'if x < LIMIT and item not in "ab":',
        # boolean operators and `not`
        'if (x < LIMIT) or (item in "ab"):',
        "for item in items and []:",
        "if item:",
        # arithmetic and augmented assignment
        "total += x / 2",
        "total -= x * 2",
        "total = x * 2",
        # constants
        "LIMIT = 4",
        "LIMIT = 2",
        "LIMIT = 0",
        "total = 1",
        'if x < LIMIT and item in "":',
        "report(x, flag=False)",
        'def pick(x: int, items: list[str] | None = "") -> int | None:',
        # statements, returns, loops, keywords, log levels
        "pass",
        "return None",
        "continue",
        "break",
        "report(x)",
        'logger.warning("failed %s", x)',
        'logger.critical("failed %s", x)',
        'logger.error("", x)',
    }
    missing = expected - changed
    assert not missing, f"operators did not make: {sorted(missing)}\nmade: {sorted(changed)}"


def test_docstrings_annotations_and_imports_are_left_alone():
    changed = " ".join(_mutants().values())
    assert "docstring" not in changed.lower() or "never mutated" in SOURCE
    for m in mutation.mutations_of_source(SOURCE.encode(), "sample.py"):
        old = [line for line in m.diff(SOURCE.encode()) if line.startswith("- ")]
        assert not any("never mutated" in line for line in old), f"{m.id} changes a docstring: {old}"
        assert not any("import" in line for line in old), f"{m.id} changes an import: {old}"
        if m.line == 11 and m.operator != "none":  # the def line: only its default may change
            pytest.fail(f"{m.id} changes the signature's annotations")
    # `return` at the end of a function and `x | None` in annotations make no mutant
    assert not any(m.startswith("sample.wait:stmt_pass") and "return" in m for m in _mutants())


def test_every_mutant_compiles_differs_and_has_its_own_id():
    """Every kata whose module is code (a test-file kata has no operator pass: see mutation.TESTS_KATA)."""
    for kata in manifest.load():
        if kata.module_is_tests:
            continue
        sources = mutation.solution_sources(kata)
        mutants = mutation.mutations_of(kata)
        assert mutants, f"{kata.slug}: no mutants"
        ids = [m.id for m in mutants]
        assert len(ids) == len(set(ids)), f"{kata.slug}: ids repeat"
        for m in mutants:
            mutated = m.apply(sources[m.file])
            assert mutated != sources[m.file]
            compile(mutated, m.file, "exec")


def test_ids_survive_edits_elsewhere():
    before = _mutants()
    edited = SOURCE.replace(
        "logger = logging.getLogger(__name__)",
        "logger = logging.getLogger(__name__)\n\n\ndef helper(y):\n    return y + 1  # new\n",
    ).replace("        total = 0", "        # a comment, and a blank line\n\n        total = 0  # start at nothing")
    after = _mutants(edited)
    assert set(before) <= set(after), f"ids lost: {sorted(set(before) - set(after))}"
    assert any(name.startswith("sample.helper:") for name in after)


def test_the_fingerprint_ignores_comments_but_not_code(monkeypatch):
    original = mutation.mutant_set_fingerprint(K01)
    source = mutation.solution_sources(K01)["notifications.py"]
    commented = source.replace(b"SUBJECT = ", b"# a comment\nSUBJECT = ", 1)
    changed = source.replace(b"import BackgroundTasks, FastAPI", b"import FastAPI, BackgroundTasks", 1)
    assert source not in (commented, changed)
    monkeypatch.setattr(mutation, "solution_sources", lambda _kata: {"notifications.py": commented})
    assert mutation.mutant_set_fingerprint(K01) == original
    monkeypatch.setattr(mutation, "solution_sources", lambda _kata: {"notifications.py": changed})
    assert mutation.mutant_set_fingerprint(K01) != original


def _outcome(name: str, verdict: str) -> mutation.Outcome:
    fake = mutation.Mutation(name, "x.py", 1, 1, 0, 0, b"", "stmt_pass")
    return mutation.Outcome(fake, verdict, "test_x" if verdict != "survived" else "")


def test_equivalents_are_honoured_in_the_score():
    outcomes = [
        _outcome("a", "rejected"),
        _outcome("b", "timed out"),
        _outcome("c", "survived"),
        _outcome("d", "survived"),
        _outcome("e", "rejected"),
    ]
    score = mutation.Score("k", outcomes, {"d": "same behaviour", "e": "claimed, wrongly"})
    assert [o.mutation.id for o in score.survived] == ["c"]
    assert [o.mutation.id for o in score.equivalent] == ["d"]
    assert [o.mutation.id for o in score.timed_out] == ["b"]
    assert [o.mutation.id for o in score.wrongly_equivalent] == ["e"]
    assert score.score == 75.0  # 3 rejected of 5 - 1 equivalent


@pytest.fixture(name="results")
def _results(tmp_path, monkeypatch):
    monkeypatch.setattr(mutation, "RESULTS_DIR", tmp_path)
    return tmp_path


@pytest.mark.usefixtures("results")
def test_record_keeps_the_equivalents_and_staleness_is_detected(monkeypatch):
    ids = [m.id for m in mutation.mutations_of(K01)]
    score = mutation.Score(K01.slug, [_outcome(ids[0], "survived"), _outcome(ids[1], "rejected")], {})
    path = mutation.record(K01, score)
    assert mutation.stale(K01) == []
    with path.open("a", encoding="utf-8") as handle:
        handle.write(f'\n[[equivalent]]\nid = "{ids[0]}"\nwhy = "reviewed: behaves as the solution"\n')
    score = mutation.Score(K01.slug, score.outcomes, mutation.load_review(K01.slug).equivalents)
    mutation.record(K01, score)
    review = mutation.load_review(K01.slug)
    assert review.equivalents == {ids[0]: "reviewed: behaves as the solution"}
    assert review.measured["score"] == 100.0 and review.measured["equivalent"] == 1
    assert path.read_text(encoding="utf-8").count("[measured]") == 1
    assert mutation.stale(K01) == []

    with path.open("a", encoding="utf-8") as handle:
        handle.write('\n[[equivalent]]\nid = "notifications.gone:stmt_pass:000000"\nwhy = "was"\n')
    assert any("no mutant of the solution any more" in problem for problem in mutation.stale(K01))

    source = mutation.solution_sources(K01)["notifications.py"]
    monkeypatch.setattr(
        mutation, "solution_sources", lambda _kata: {"notifications.py": source.replace(b"1000", b"2000")}
    )
    assert any("the solution changed" in problem and "--record" in problem for problem in mutation.stale(K01))


@pytest.mark.usefixtures("results")
def test_a_spec_change_makes_the_record_stale(monkeypatch, tmp_path):
    mutation.record(K01, mutation.Score(K01.slug, [], {}))
    assert mutation.stale(K01) == []
    spec = tmp_path / "test_copy.py"
    spec.write_bytes(K01.spec_path.read_bytes() + b"\n# one more line\n")
    monkeypatch.setattr(mutation, "spec_files", lambda _kata: [spec])
    assert any("the specs changed" in problem for problem in mutation.stale(K01))


@pytest.mark.usefixtures("results")
def test_a_kata_without_results_is_stale():
    assert any("has no measured results" in problem for problem in mutation.stale(K01))


@pytest.mark.slow
def test_the_pass_tells_survivors_rejections_and_hangs_apart():
    """Against k01's real specs: a change nobody can see, a deleted add_task, an endless import."""
    source = mutation.solution_sources(K01)["notifications.py"]
    survivor_at = source.index(b'SUBJECT = "')
    call = b"background_tasks.add_task("
    call_at = source.index(call)
    call_end = source.index(b"\n", call_at)
    mutants = [
        mutation.Mutation("unseen", "notifications.py", 1, 1, survivor_at, survivor_at, b"UNUSED = 1\n", "stmt_pass"),
        mutation.Mutation("no_add_task", "notifications.py", 1, 1, call_at, call_end, b"pass", "stmt_pass"),
        mutation.Mutation("hangs", "notifications.py", 1, 1, survivor_at, survivor_at, b"while True: pass\n", "x"),
    ]
    outcomes = {o.mutation.id: o for o in mutation.run_mutations(K01, mutants, workers=2, timeout=4)}
    assert outcomes["unseen"].verdict == "survived"
    assert outcomes["no_add_task"].verdict == "rejected" and outcomes["no_add_task"].by.startswith("test_")
    assert outcomes["hangs"].verdict == "timed out" and outcomes["hangs"].rejected


def test_the_committed_results_are_current():
    """CI's cheap check: rerun the pass (and commit its record) after changing a solution or its specs."""
    problems = [problem for kata in manifest.load() for problem in mutation.stale(kata)]
    assert not problems, "\n".join(problems)


def test_check_fails_when_the_measured_survivors_differ_from_the_record(monkeypatch, capsys):
    """`--check` (CI) passes only on the recorded survivors and score."""
    recorded = mutation.load_review(K01.slug).measured
    by_id = {m.id: m for m in mutation.mutations_of(K01)}
    survivors = {str(name) for name in recorded["survivors"]} | set(mutation.load_review(K01.slug).equivalents)
    surviving: set[str] = set()

    def fake_measure(kata, **_options):
        outcomes = [
            mutation.Outcome(m, "survived") if name in surviving else mutation.Outcome(m, "rejected", "test_x")
            for name, m in by_id.items()
        ]
        return mutation.Score(kata.slug, outcomes, mutation.load_review(kata.slug).equivalents)

    monkeypatch.setattr(mutation, "measure", fake_measure)
    surviving = set(survivors)
    assert mutation.main([K01.slug, "--check"]) == 0
    surviving = survivors | {next(name for name in by_id if name not in survivors)}  # one more survivor
    assert mutation.main([K01.slug, "--check"]) == 1
    assert "rerun with --record" in capsys.readouterr().out
