"""The repository agrees with its manifest: folders, files, READMEs, markers, stubs.

Nothing here reads the learner's edits as a defect: stubs are judged as shipped.
"""

from __future__ import annotations

import ast
import inspect
import os
import re
import shutil
import subprocess
import sys

import pytest

from dojo import impl, maintain, manifest
from dojo.manifest import KATAS_DIR, MUTANTS_DIR, REPO_ROOT, SOLUTIONS_DIR, git_blob_id

KATAS = list(manifest.load())
by_slug = pytest.mark.parametrize("kata", KATAS, ids=lambda kata: kata.slug)

IGNORED = {"__pycache__", ".pytest_cache", ".hypothesis", ".DS_Store"}
TOP_LEVEL = {
    "katas",
    "solutions",
    "tests",
    "dojo",
    ".ci",
    ".github",
    ".devcontainer",
    "conftest.py",
    "pyproject.toml",
    "uv.lock",
    "README.md",
    ".gitignore",
    ".python-version",
    "LICENSE",
    "requirements.txt",
}


def tracked_or_present(folder):
    return sorted(p.name for p in folder.iterdir() if p.name not in IGNORED)


def test_the_manifest_lists_every_kata_folder_and_nothing_else():
    """katas/, solutions/ and tests/mutants/ hold exactly the manifest's katas."""
    slugs = sorted(kata.slug for kata in KATAS)
    assert tracked_or_present(KATAS_DIR) == slugs, "katas/ and the manifest disagree"
    assert tracked_or_present(SOLUTIONS_DIR) == slugs, "solutions/ and the manifest disagree"
    assert set(tracked_or_present(MUTANTS_DIR)) <= set(slugs), "tests/mutants/ has a folder for no kata"


def test_the_top_level_holds_only_what_the_layout_names():
    """No stray files at the top: the layout in README.md is the whole story."""
    result = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip("not a git checkout: nothing tells a tracked file from a local one")
    top = {line.split("/", 1)[0] for line in result.stdout.splitlines()}
    assert top <= TOP_LEVEL, f"unexpected at the top level: {sorted(top - TOP_LEVEL)}"


@by_slug
def test_a_kata_folder_holds_its_readme_spec_and_stubs_only(kata):
    """A learner's kata folder is README.md, the spec, the stub modules, the files given (and maybe a conftest.py)."""
    expected = {"README.md", kata.spec, *kata.module_files, *kata.given}
    present = set(tracked_or_present(kata.folder))
    assert expected <= present, f"{kata.slug} lacks {sorted(expected - present)}"
    assert present <= expected | {"conftest.py"}, f"stray files in katas/{kata.slug}: {sorted(present - expected)}"


@by_slug
def test_a_solution_folder_mirrors_the_stub_modules(kata):
    """solutions/<slug> has the same module names as the stub, nothing else."""
    assert set(tracked_or_present(kata.solution_folder)) == set(kata.module_files)


@by_slug
def test_every_kata_has_mutants_and_each_applies_to_its_solution(kata, tmp_path):
    """A mutant's 'old' text stands exactly once in today's solution."""
    mutants = impl.mutants(kata.slug)
    assert mutants, f"{kata.slug} has no mutants under tests/mutants/{kata.slug}"
    stray = [p.name for p in kata.mutants_folder.iterdir() if p.suffix != ".toml" and p.name not in IGNORED]
    assert not stray, f"stray files among the mutants of {kata.slug}: {stray}"
    for mutant in mutants:
        folder = tmp_path / mutant.name
        folder.mkdir()
        for name in kata.module_files:
            (folder / name).write_bytes((kata.solution_folder / name).read_bytes())
        mutant.apply(folder)
        changed = [n for n in kata.module_files if (folder / n).read_bytes() != (kata.solution_folder / n).read_bytes()]
        assert changed, f"mutant {mutant.name} changes nothing"


HEADING = re.compile(r"^## (\d+)\. (.+)$", re.MULTILINE)


@by_slug
def test_readme_task_headings_match_the_manifest(kata):
    """README `## N. Title` headings are the manifest's tasks, in order, with the same titles."""
    readme = (kata.folder / "README.md").read_text(encoding="utf-8")
    headings = [(int(number), title.strip()) for number, title in HEADING.findall(readme)]
    assert headings == [(task.number, task.title) for task in kata.tasks]


@by_slug
def test_every_task_has_specs_and_every_spec_has_a_known_task(kata):
    """The spec's task markers cover exactly the README's tasks."""
    tree = ast.parse(kata.spec_path.read_text(encoding="utf-8"))
    marked: dict[str, int] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
            for decorator in node.decorator_list:
                if (
                    isinstance(decorator, ast.Call)
                    and ast.unparse(decorator.func) == "pytest.mark.task"
                    and decorator.args
                    and isinstance(decorator.args[0], ast.Constant)
                ):
                    marked[node.name] = decorator.args[0].value
            assert node.name in marked, f"{node.name} has no @pytest.mark.task(N)"
            assert ast.get_docstring(node), f"{node.name} has no one-line docstring saying what must hold"
    assert set(marked.values()) == {task.number for task in kata.tasks}


@by_slug
def test_readme_hints_are_the_manifests(kata):
    """The hints block in the README is generated from the manifest and up to date."""
    readme = (kata.folder / "README.md").read_text(encoding="utf-8")
    assert maintain.readme_with_hints(kata, readme) == readme, "run `uv run python -m dojo.maintain`"
    for task in kata.tasks:
        assert task.hints and all(hint.strip() for hint in task.hints), f"task {task.number} needs hints"
        assert task.points > 0


def _shipped_stub(kata, name):
    try:
        return impl.shipped_source(kata, name).decode("utf-8")
    except impl.ImplError as error:
        pytest.fail(f"the shipped stub cannot be recovered: {error}")


@by_slug
def test_stubs_as_shipped_have_a_todo_for_every_task_and_solutions_none(kata):
    """Every place to edit says TODO(kNN) task N; the model answers carry no TODO."""
    tag = f"TODO(k{kata.order:02d})"
    stub_text = "\n".join(_shipped_stub(kata, name) for name in kata.module_files)
    for task in kata.tasks:
        assert f"{tag} task {task.number}" in stub_text, f"no '{tag} task {task.number}' in the stubs"
    for name in kata.module_files:
        assert "TODO" not in (kata.solution_folder / name).read_text(encoding="utf-8"), f"TODO left in solution {name}"


def _public_shape(module) -> dict[str, str]:
    shape = {}
    for name, value in vars(module).items():
        imported = getattr(value, "__module__", module.__name__) != module.__name__
        if name.startswith("_") or inspect.ismodule(value) or imported:
            continue
        if inspect.isclass(value):
            shape[name] = "class"
            for attr, member in vars(value).items():
                if callable(member) and not attr.startswith("_"):
                    shape[f"{name}.{attr}"] = str(inspect.signature(member))
        elif callable(value):
            shape[name] = ("async def" if inspect.iscoroutinefunction(value) else "def") + str(inspect.signature(value))
        else:
            shape[name] = type(value).__name__
    return shape


@by_slug
def test_stub_and_solution_expose_the_same_public_names_and_signatures(kata, tmp_path):
    """What the specs can touch is the same in the stub (as shipped) and the solution.

    A test-file module (``module_kind = "tests"``) is the learner's own suite: its tests are
    whatever the learner writes, so only its being a test file is compared.
    """
    (tmp_path / kata.slug).mkdir()
    for name in kata.module_files:
        (tmp_path / kata.slug / name).write_text(_shipped_stub(kata, name), encoding="utf-8")
    for module in kata.modules:
        stub = _public_shape(impl.import_kata_module(tmp_path, kata.slug, module))
        solution = _public_shape(impl.import_kata_module(SOLUTIONS_DIR, kata.slug, module))
        if kata.module_is_tests:
            for shape in (stub, solution):
                assert any(name.startswith("test_") and "def(" in kind for name, kind in shape.items()), (
                    f"{kata.slug}/{module}.py: a test-file module with no test function"
                )
            continue
        assert stub == solution, f"{kata.slug}/{module}.py: the stub's public names or signatures differ"


@pytest.mark.skipif(
    os.environ.get("KATAS_MAINTAINER") != "1",
    reason="maintainers only (KATAS_MAINTAINER=1, set by .ci/run): in a learner's clone the stubs are the learner's",
)
def test_the_manifest_records_the_stubs_in_the_working_tree():
    """A maintainer who edits a stub refreshes its shipped id (`python -m dojo.maintain`)."""
    for kata in KATAS:
        for name in kata.module_files:
            blob = git_blob_id((kata.folder / name).read_bytes())
            assert kata.shipped.get(name) == blob, f"{kata.slug}/{name} changed: run `uv run python -m dojo.maintain`"


def test_every_kata_says_what_it_teaches_and_the_readme_lists_it():
    """The top-level README's table of katas is the manifest's, summaries included."""
    assert all(kata.summary.strip() for kata in KATAS), "every kata needs a `summary` in the manifest"
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert maintain.readme_with_table(manifest.load(), text) == text, "run `uv run python -m dojo.maintain`"


def test_the_readme_promises_only_the_katas_that_exist_and_marks_the_rest_coming():
    """Its opening lines and table say which katas are ready and which are only planned (dojo/coming.toml)."""
    coming = maintain.load_coming()
    assert not maintain.coming_problems(manifest.load(), coming)
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert maintain.readme_with_topics(manifest.load(), coming, text) == text, "run `uv run python -m dojo.maintain`"
    opening = text[: text.index(maintain.TOPICS_END)]
    ready, _, planned = opening.partition("**Coming**")
    for entry in coming:
        title = entry.title[:1].lower() + entry.title[1:]
        assert title in planned and title not in ready, f"kata {entry.order} is not marked as coming"


def test_the_readme_describes_what_the_command_line_does():
    """The states `kata list` shows, and the pip path's pinned install, as the code has them."""
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    row = next(line for line in text.splitlines() if line.startswith("| `uv run kata list`"))
    for state in ("done", "changed since done", "current", "started", "not started"):
        assert f"**{state}**" in row, f"the README's `kata list` row does not say what {state!r} means"
    assert "edited its stub or asked for one of its hints" in row
    assert "python -m pip install -r requirements.txt" in text


def test_maintain_check_agrees():
    """`python -m dojo.maintain --check` finds the READMEs current (the stubs' ids are judged above)."""
    result = subprocess.run(
        [sys.executable, "-m", "dojo.maintain", "--check"], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    stale = [line for line in result.stdout.splitlines() if "shipped blob ids" not in line and "out of date" in line]
    assert not stale, result.stdout


@by_slug
def test_every_kata_can_be_served_with_the_demo_collaborators(kata, tmp_path):
    """`kata serve` builds the app from the stub as shipped and from the solution alike."""
    from dojo import demo

    assert kata.serve, f'{kata.slug} has no `serve = "module:factory"` in the manifest'
    module, _, factory = kata.serve.partition(":")
    (tmp_path / kata.slug).mkdir()
    for name in kata.module_files:
        (tmp_path / kata.slug / name).write_text(_shipped_stub(kata, name), encoding="utf-8")
    for name in kata.given:  # the app a test-file kata serves is one of the files it gives
        (tmp_path / kata.slug / name).write_bytes((kata.folder / name).read_bytes())
    given = f"{module}.py" in kata.given  # a given app is the same file whoever writes the kata's module
    for root in (tmp_path,) if given else (tmp_path, SOLUTIONS_DIR):
        built = demo.build_app(getattr(impl.import_kata_module(root, kata.slug, module), factory))
        assert callable(built), f"{kata.slug}: {kata.serve} did not return an ASGI app"


def _fixtures(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", *args, "--fixtures", "-q", "-p", "no:cacheprovider"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_a_learners_run_does_not_load_the_checks_own_plugin():
    """pytester serves tests/ only: `pytest katas/<slug>` runs without it."""
    spec = str(KATAS[0].spec_path.relative_to(REPO_ROOT))
    assert not re.search(r"^pytester\b", _fixtures(spec), re.MULTILINE), "a learner's run loads pytester"
    assert re.search(r"^pytester\b", _fixtures("tests/test_repository.py"), re.MULTILINE)


def test_the_licence_pyproject_names_ships():
    """pyproject.toml says MIT: the MIT licence text is at the top, and comments cite only shipped files."""
    text = (REPO_ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "The Background Task Katas authors" in text
    pyproject = (REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'license = "MIT"' in pyproject
    for name in re.findall(r"\b([A-Z][A-Z_]+\.md)\b", pyproject):
        assert (REPO_ROOT / name).is_file(), f"pyproject.toml cites {name}, which the repository does not ship"


EXPORT = ("export", "--format", "requirements-txt", "--no-hashes", "--group", "dev", "--frozen")


def test_requirements_txt_pins_what_uv_lock_pins(tmp_path):
    """The pip path installs the lock's versions: requirements.txt is `uv export` of uv.lock, current."""
    uv = os.environ.get("UV") or shutil.which("uv")
    if uv is None:
        if os.environ.get("KATAS_MAINTAINER") == "1":
            pytest.fail("uv is needed to check requirements.txt against uv.lock")
        pytest.skip("uv is not installed: requirements.txt is checked where it is (CI)")
    exported = tmp_path / "requirements.txt"
    subprocess.run([uv, *EXPORT, "-o", str(exported)], cwd=REPO_ROOT, capture_output=True, check=True, timeout=120)

    def pins(text: str) -> list[str]:
        return [line for line in text.splitlines() if not line.startswith("#")]  # the header names the output path

    shipped = (REPO_ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert pins(shipped) == pins(exported.read_text(encoding="utf-8")), (
        f"requirements.txt is not current with uv.lock: run `uv {' '.join(EXPORT)} -o requirements.txt`"
    )


def test_the_specs_ids_are_the_same_in_every_process():
    """A spec's id names it in the gradebook, the spec cache and ``--task``: nothing random in a parameter.

    Two collections in two processes must list the same ids, in the same order; an id
    built from ``uuid4()`` or the clock differs between the grader's plan and the
    process that runs the spec, and the grading run stops.
    """
    command = [sys.executable, "-m", "pytest", "katas", "--impl=solutions", "--collect-only", "-q"]
    command += ["-p", "no:randomly", "-p", "no:cacheprovider"]
    runs = [subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False) for _ in range(2)]
    ids = [[line for line in run.stdout.splitlines() if "::" in line] for run in runs]
    assert runs[0].returncode == 0 and ids[0], runs[0].stdout + runs[0].stderr
    changed = [(a, b) for a, b in zip(*ids, strict=False) if a != b]
    assert ids[0] == ids[1], f"ids that differ between two collections: {changed[:3]}"


def test_the_specs_collect_without_any_code_to_test(tmp_path):
    """Collecting never imports a kata's module: the grader plans from an empty folder, and a broken module
    must fail its specs one by one, not stop the whole kata at collection."""
    for kata in KATAS:
        (tmp_path / kata.slug).mkdir()
    command = [sys.executable, "-m", "pytest", "katas", f"--impl={tmp_path}", "--collect-only", "-q"]
    command += ["-p", "no:randomly", "-p", "no:cacheprovider"]
    run = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
