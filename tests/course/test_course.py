"""The course (course/): every checker fails the untouched exercise and passes a solution built from minilm's own
functions; a deliberate mistake per lesson fails with the hint that names it and without showing the right code;
every lesson's text runs and prints what it says, writing its figures; the pieces stay consistent (stub exercises,
stated tolerances, links that resolve, minilm imported in one place only)."""

from __future__ import annotations

import ast
import contextlib
import inspect
import io
import math
import re
import subprocess
import sys
from pathlib import Path

import _checking
import check
import pytest
import run_lesson
from mistakes import MISTAKES

COURSE = Path(check.COURSE)
REPO = COURSE.parent
SOLUTIONS = Path(__file__).resolve().parent / "solutions"
LESSONS = list(range(1, 10))
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
# The lessons whose text trains or encodes hundreds of sentences.
SLOW_TEXTS = {8, 9}


def solution(number: int) -> Path:
    return SOLUTIONS / f"lesson{number:02d}.py"


def test_there_are_nine_lessons_each_with_a_text_an_exercise_and_a_checker():
    assert [int(stem[:2]) for stem in check.lessons()] == LESSONS
    for number in LESSONS:
        name = check.lesson_name(number)
        assert (COURSE / "exercises" / f"{name}.py").is_file()
        assert (COURSE / "checks" / f"{name}.py").is_file()
        assert solution(number).is_file()


@pytest.mark.parametrize("number", LESSONS)
def test_the_checker_fails_the_untouched_exercise_as_not_written(number):
    report = check.check_file(number)
    assert not report.passed
    functions = [e.function for e in check.checks_of(number).EXERCISES]
    for function in functions:
        assert re.search(rf"^{function} \.+ not written yet", report.text, re.MULTILINE), report.text
    assert f"0 of {len(functions)} functions pass." in report.text


@pytest.mark.parametrize("number", LESSONS)
def test_the_checker_passes_a_solution_built_from_minilm(number):
    report = check.check_file(number, solution(number))
    assert report.passed, report.text
    assert "FAILED" not in report.text


def right_code(number: int, function: str) -> list[str]:
    """The substantive lines of the reference solution's function: what a report must never print."""
    module = check.load_file(solution(number), f"reference_{number:02d}")
    source = inspect.getsource(getattr(module, function)).splitlines()[1:]
    return [line.strip() for line in source if len(line.strip()) > 12 and not line.strip().startswith(('"""', "#"))]


@pytest.mark.parametrize("mistake", MISTAKES, ids=str)
def test_a_deliberate_mistake_fails_with_its_hint_and_not_the_answer(mistake):
    module = check.load_file(solution(mistake.lesson), f"mistaken_{mistake.lesson:02d}")
    setattr(module, mistake.function, mistake.wrong)  # the solution's other functions call it too, as a learner's would
    report = check.check_module(mistake.lesson, module, "a deliberate mistake")
    assert not report.passed
    assert re.search(rf"^{mistake.function} \.+ FAILED at case", report.text, re.MULTILINE), report.text
    assert mistake.hint in report.text, report.text
    for line in right_code(mistake.lesson, mistake.function):
        assert line not in report.text


def test_a_failure_names_the_case_the_shapes_and_where():
    module = check.load_file(solution(2), "mistaken_02")
    module.attention_probs = MISTAKES[2].wrong
    text = check.check_module(2, module, "mistake").text
    assert "FAILED at case 1 of 5: one head, no padding [float32]" in text
    assert "inputs: q (1, 1, 5, 8) float32, k (1, 1, 5, 8) float32, mask (1, 1, 1, 5) float32" in text
    assert re.search(r"result: max \|yours - minilm\| = [\d.e+-]+ at \[0, 0, \d, \d\]", text)
    assert _checking.tolerance_text() in text


def test_an_error_in_the_learners_code_is_reported_with_its_line(tmp_path):
    mine = tmp_path / "mine.py"
    mine.write_text(
        "def t_interval(values, confidence=0.95):\n    return values[99]\n\n"
        "def paired_difference(values, baseline, confidence=0.95):\n    raise NotImplementedError\n"
    )
    report = check.check_file(9, mine)
    assert not report.passed
    assert "your function raised IndexError: list index out of range (mine.py line 2: return values[99])" in report.text
    assert re.search(r"^paired_difference \.+ not written yet", report.text, re.MULTILINE)


def test_a_file_that_does_not_import_is_reported(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("def pad_batch(token_ids:\n")
    report = check.check_file(1, broken)
    assert not report.passed and "could not be imported: SyntaxError" in report.text


def test_the_command_line():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert check.main(["9", str(solution(9))]) == 0
    assert "2 of 2 functions pass." in out.getvalue()


@pytest.mark.slow  # a process of its own (~2 s of CPU); test_the_command_line runs check.main in process
@pytest.mark.subprocess
def test_the_command_line_in_a_real_process():
    """One real process, as a learner runs it: from the repository root, the default exercise file."""
    done = subprocess.run(
        [sys.executable, "course/check.py", "9"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 1, done.stderr
    assert "t_interval ........... not written yet: it still raises NotImplementedError" in done.stdout


def same_output(expected: str, actual: str) -> bool:
    """Numbers to 1e-4 relative or 1e-6 absolute (float32 sums differ in their last digits across CPUs and thread
    counts); everything else exactly."""
    exp_lines, act_lines = expected.strip().splitlines(), actual.strip().splitlines()
    if len(exp_lines) != len(act_lines):
        return False
    for e, a in zip(exp_lines, act_lines):
        if NUMBER.sub("#", e) != NUMBER.sub("#", a):
            return False
        if not all(
            math.isclose(float(x), float(y), rel_tol=1e-4, abs_tol=1e-6)
            for x, y in zip(NUMBER.findall(e), NUMBER.findall(a))
        ):
            return False
    return True


def test_same_output_compares_numbers_with_tolerance_and_the_rest_exactly():
    assert same_output("loss 0.0090 (2, 10)", "loss 0.009000001 (2, 10)")
    assert not same_output("shape (2, 10)", "shape (2, 11)")
    assert not same_output("ranked first True", "ranked first False")
    assert not same_output("a\nb", "a")


def lesson_text_params():
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_TEXTS else n for n in LESSONS]


@pytest.mark.parametrize("number", lesson_text_params())
def test_the_lesson_text_runs_prints_what_it_says_and_draws_its_figures(number, tmp_path, real_weights):
    page = COURSE / f"{check.lesson_name(number)}.md"
    done = run_lesson.run(number, figures=tmp_path, echo=False)
    assert done, f"{page.name} has no code"
    for block in done:
        if block.shown is None:
            assert not block.printed.strip(), f"block {block.number} prints but no ```text block follows it"
        else:
            assert same_output(block.shown, block.printed), (
                f"{page.name} block {block.number} printed:\n{block.printed}\nbut the lesson says:\n{block.shown}"
            )
    drawn = re.findall(r"!\[[^\]]*\]\(figures/([^)]+)\)", page.read_text(encoding="utf-8"))
    if number == 2:
        assert "02_attention_map.png" in drawn  # the attention map of a real sentence
    for name in drawn:
        assert (tmp_path / name).is_file(), f"{page.name} shows figures/{name} but its code did not draw it"
        assert (COURSE / "figures" / name).is_file(), f"figures/{name} is not committed beside the lessons"


@pytest.mark.parametrize("number", LESSONS)
def test_the_exercise_is_signatures_and_docstrings_only_for_exactly_the_checked_functions(number):
    path = check.exercise_file(number)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef)]
    assert [f.name for f in functions] == [e.function for e in check.checks_of(number).EXERCISES]
    for f in functions:
        docstring, *rest = f.body
        assert isinstance(docstring, ast.Expr) and isinstance(docstring.value, ast.Constant), f"{f.name}: no docstring"
        assert len(rest) == 1 and isinstance(rest[0], ast.Raise), f"{f.name} must only raise NotImplementedError"
        assert ast.unparse(rest[0]) == "raise NotImplementedError"


@pytest.mark.parametrize("number", LESSONS)
def test_the_lesson_states_the_checkers_tolerances_and_links_to_minilm(number):
    text = (COURSE / f"{check.lesson_name(number)}.md").read_text(encoding="utf-8")
    assert _checking.tolerance_text() in text
    note = getattr(check.checks_of(number), "NOTE", None)
    if note:
        assert note in text
    assert f"python course/check.py {number}" in text and f"python course/run_lesson.py {number}" in text
    links = re.findall(r"\]\(([^)#\s]+)\)", text)
    assert any(link.startswith("../minilm/") for link in links), "no link to minilm's worked solution"
    for link in links:
        assert (COURSE / link).exists(), f"broken link {link}"


def test_the_course_readme_lists_every_lesson_and_its_links_resolve():
    text = (COURSE / "README.md").read_text(encoding="utf-8")
    for stem in check.lessons():
        assert f"]({stem}.md)" in text
    for link in re.findall(r"\]\(([^)#\s]+)\)", text):
        assert (COURSE / link).exists(), f"broken link {link}"


def minilm_imports(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] == "minilm"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "minilm":
            found.append(node.module)
    return found


def test_minilm_is_imported_in_one_place_only():
    """Everything the course takes from minilm comes through course/_minilm.py, so that a change of the package's
    layout is one file to repoint: the checkers, exercises, lesson code and the reference solutions included."""
    sources = {p: p.read_text(encoding="utf-8") for p in [*COURSE.rglob("*.py"), *Path(__file__).parent.rglob("*.py")]}
    for page in COURSE.glob("[0-9][0-9]_*.md"):
        sources[page] = "\n".join(block.code for block in run_lesson.blocks(page.read_text(encoding="utf-8")))
    assert minilm_imports(sources.pop(COURSE / "_minilm.py"))
    for path, source in sources.items():
        assert not minilm_imports(source), f"{path} imports minilm directly; go through course/_minilm.py"


def test_a_lesson_without_matplotlib_says_what_to_install(monkeypatch, capsys, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails, as when it is not installed
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    assert run_lesson.main(["7", "--figures", str(tmp_path)]) == 1
    message = capsys.readouterr().err
    assert "Lesson 7 draws its figure with matplotlib, which is not installed." in message
    assert "pip install 'minilm[plot]'" in message
