"""Every kata is written in the format that teaches the why (issue 8's kata format, version 2).

- The README explains before it asks: **Concepts** (the mechanisms, readable offline),
  numbered tasks, **Experiments** to predict, run and observe with ``kata serve``, and
  **What this does not give you** (the limits of the design).
- A failure message teaches without dictating: its ``revisit`` names the task, the idea in
  prose and the README section that explains it (:data:`dojo.teach.REVISIT`), and holds no
  code (:func:`dojo.teach.code_in`). The code of a fix lives in the hints only.
- Hints grow: a direction first, then the API, then near-code in the last one.
- A stub's TODO says what must hold, not how to build it.
- Nothing a learner reads mentions a tutorial they have never seen.
"""

from __future__ import annotations

import ast
import re

import pytest

from dojo import manifest
from dojo.teach import REVISIT, code_in

KATAS = list(manifest.load())
by_slug = pytest.mark.parametrize("kata", KATAS, ids=lambda kata: kata.slug)

HEADING = re.compile(r"^(#{2,3}) (.+?)\s*$", re.MULTILINE)
CONCEPTS, EXPERIMENTS, LIMITS = "Concepts", "Experiments", "What this does not give you"


def sections(text: str) -> dict[str, tuple[int, str]]:
    """Every ``##``/``###`` heading of a README: its title -> (level, the text under it)."""
    found = list(HEADING.finditer(text))
    out = {}
    for index, match in enumerate(found):
        level = len(match.group(1))
        end = len(text)
        for later in found[index + 1 :]:
            if len(later.group(1)) <= level:
                end = later.start()
                break
        title = re.sub(r"^\d+\.\s+", "", match.group(2))  # "## 3. Queue it" is the section "Queue it"
        out[title] = (level, text[match.end() : end])
    return out


def subsections(body: str) -> list[str]:
    return re.findall(r"^### (.+?)\s*$", body, re.MULTILINE)


def readme(kata) -> str:
    return (kata.folder / "README.md").read_text(encoding="utf-8")


@by_slug
def test_the_readme_explains_concepts_before_the_first_task(kata):
    """A Concepts section with at least two ideas, each under its own heading, comes before task 1."""
    text = readme(kata)
    found = sections(text)
    assert CONCEPTS in found, f"{kata.slug}: README has no `## {CONCEPTS}` section"
    ideas = subsections(found[CONCEPTS][1])
    assert len(ideas) >= 2, f"{kata.slug}: `## {CONCEPTS}` should explain at least two ideas (### each), has {ideas}"
    assert text.index(f"## {CONCEPTS}") < text.index("## 1. "), f"{kata.slug}: Concepts must come before task 1"


@by_slug
def test_the_readme_has_experiments_to_predict_run_and_observe_with_kata_serve(kata):
    """Two or more experiments, each with Predict, Run and Observe, driven through `kata serve`."""
    found = sections(readme(kata))
    assert EXPERIMENTS in found, f"{kata.slug}: README has no `## {EXPERIMENTS}` section"
    body = found[EXPERIMENTS][1]
    assert "kata serve" in body, f"{kata.slug}: the experiments never say how to start the app (`kata serve`)"
    titles = subsections(body)
    assert len(titles) >= 2, f"{kata.slug}: at least two experiments (### each), found {titles}"
    for title in titles:
        text = found[title][1]
        for step in ("**Predict**", "**Run**", "**Observe**"):
            assert step in text, f"{kata.slug}: experiment {title!r} has no {step} step"


@by_slug
def test_the_readme_says_what_the_design_does_not_give_you(kata):
    """The limits of the kata's design, as a list, each pointing somewhere further."""
    found = sections(readme(kata))
    assert LIMITS in found, f"{kata.slug}: README has no `## {LIMITS}` section"
    bullets = re.findall(r"^[-*] ", found[LIMITS][1], re.MULTILINE)
    assert len(bullets) >= 2, f"{kata.slug}: `## {LIMITS}` should list at least two limits"


@by_slug
def test_nothing_a_learner_reads_mentions_a_tutorial(kata):
    """Learners never saw the material the katas come from: a wrong snippet is shown in our own words."""
    texts = {"README.md": readme(kata), kata.spec: kata.spec_path.read_text(encoding="utf-8")}
    for name in kata.module_files:
        texts[name] = (kata.folder / name).read_text(encoding="utf-8")
        texts[f"solutions/{name}"] = (kata.solution_folder / name).read_text(encoding="utf-8")
    texts["hints"] = "\n".join(hint for task in kata.tasks for hint in (task.title, *task.hints))
    mentions = [name for name, text in texts.items() if re.search(r"tutorial", text, re.IGNORECASE)]
    assert not mentions, f"{kata.slug}: 'tutorial' appears in {mentions}"


def _revisit_texts(tree: ast.Module) -> list[tuple[int, str | None]]:  # noqa: C901 - one case per form of value
    """Each ``revisit=`` of a spec file: (line, its text with f-string fields as X), None if not literal."""
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for keyword in node.keywords:
            if keyword.arg != "revisit":
                continue
            value = keyword.value
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.append((value.lineno, value.value))
            elif isinstance(value, ast.JoinedStr):
                text = "".join(part.value if isinstance(part, ast.Constant) else "X" for part in value.values)
                found.append((value.lineno, text))
            elif isinstance(value, ast.Name) and value.id in constants:
                found.append((value.lineno, constants[value.id]))
            elif isinstance(value, ast.Name) and _is_parameter(value, parents):
                continue  # a helper passing on its own `revisit` argument: its callers are checked
            else:
                found.append((value.lineno, None))
    return found


def _is_parameter(name: ast.Name, parents: dict) -> bool:
    node = parents.get(name)
    while node is not None and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        node = parents.get(node)
    if node is None:
        return False
    arguments = node.args
    every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    return any(argument.arg == name.id for argument in every)


def _spec_sources(kata):
    yield kata.spec_path
    conftest = kata.folder / "conftest.py"
    if conftest.exists():
        yield conftest


@by_slug
def test_every_failure_message_points_at_a_task_and_a_readme_section_without_the_code_of_the_fix(kata):
    """`revisit` reads "task N: <the idea, in prose> (README: <section>)": the section exists, no code."""
    titles = set(sections(readme(kata)))
    tasks = {task.number for task in kata.tasks}
    problems = []
    count = 0
    for path in _spec_sources(kata):
        for line, text in _revisit_texts(ast.parse(path.read_text(encoding="utf-8"))):
            count += 1
            where = f"{path.name}:{line}"
            if text is None:
                problems.append(f"{where}: revisit is not a literal text the check can read")
                continue
            match = REVISIT.match(text)
            if match is None:
                problems.append(f"{where}: {text!r} is not 'task N: <idea> (README: <section>)'")
                continue
            if int(match["task"]) not in tasks:
                problems.append(f"{where}: task {match['task']} is not a task of this kata")
            if match["section"] not in titles:
                problems.append(f"{where}: the README has no section {match['section']!r}")
            if code := code_in(match["idea"]):
                problems.append(f"{where}: code in the lesson ({', '.join(map(repr, code))}): {match['idea']!r}")
    assert count, f"{kata.slug}: its specs have no `revisit=` at all"
    assert not problems, f"{kata.slug}:\n  " + "\n  ".join(problems)


@by_slug
def test_every_assertion_in_a_spec_carries_a_teaching_message(kata):
    """A bare `assert x == y` shows pytest's diff, not a lesson: each spec's assert has a message."""
    tree = ast.parse(kata.spec_path.read_text(encoding="utf-8"))
    bare = [
        node.lineno
        for function in ast.walk(tree)
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)) and function.name.startswith("test_")
        for node in ast.walk(function)
        if isinstance(node, ast.Assert) and node.msg is None
    ]
    assert not bare, f"{kata.slug}: asserts without a lesson at lines {bare}"


@by_slug
def test_hints_grow_from_a_direction_to_the_api_to_near_code(kata):
    """At least three hints a task: the first gives no code, the middle ones name an API, the last is near-code."""
    problems = []
    for task in kata.tasks:
        hints = task.hints
        name = f"task {task.number}"
        if len(hints) < 3:
            problems.append(f"{name}: {len(hints)} hint(s); three at least (direction, API, near-code)")
            continue
        if code := code_in(hints[0]):
            problems.append(f"{name}: the first hint should be a direction, it has code: {code}")
        if not any("`" in hint for hint in hints[1:-1]):
            problems.append(f"{name}: no middle hint names the API to use (in backticks)")
        spans = re.findall(r"`([^`]+)`", hints[-1])
        if not any(code_in(span, names_allowed=True) for span in spans):
            problems.append(f"{name}: the last hint should come near to code (a call or an assignment in backticks)")
    assert not problems, f"{kata.slug}:\n  " + "\n  ".join(problems)


def _todo_texts(source: str, order: int) -> list[tuple[int, str]]:
    """Each TODO of a stub: its comment (with the comment lines that continue it), or its NotImplementedError text."""
    marker = f"TODO(k{order:02d})"
    lines = source.splitlines()
    found = []
    for number, line in enumerate(lines):
        stripped = line.strip()
        if stripped.startswith("#") and marker in stripped:
            text = [stripped.lstrip("# ")]
            for following in lines[number + 1 :]:
                comment = following.strip()
                if not comment.startswith("#") or marker in comment:
                    break
                text.append(comment.lstrip("# "))
            found.append((number + 1, " ".join(text)))
    found.extend(
        (node.lineno, node.value)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(marker)
    )
    return found


@by_slug
def test_the_stubs_todos_say_what_must_hold_not_how_to_build_it(kata):
    """A TODO names the contract; the calls, assignments and data layout are the learner's to find."""
    problems = []
    for name in kata.module_files:
        source = (kata.folder / name).read_text(encoding="utf-8")
        for line, text in _todo_texts(source, kata.order):
            if code := code_in(text.split(":", 1)[-1], names_allowed=True):
                problems.append(f"{name}:{line}: {code} in {text!r}")
    assert not problems, f"{kata.slug}: TODOs that dictate code:\n  " + "\n  ".join(problems)
