"""Check a lesson's exercise against minilm: ``python course/check.py LESSON [YOUR_FILE]``.

LESSON is the lesson's number (1 to 9); YOUR_FILE defaults to the lesson's file in ``course/exercises/``. Every
function of the exercise runs on several seeded cases beside minilm's own implementation; the first case that differs
is reported with its shapes, where the results differ and a hint. The exit status is 0 when every function passes.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

COURSE = Path(__file__).resolve().parent
# The course teaches the minilm beside it, even when another copy is installed; and the exercises, checkers and
# solutions all import _minilm from the course folder.
for folder in (COURSE.parent, COURSE):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import _checking  # noqa: E402
import torch  # noqa: E402


@dataclass
class Report:
    passed: bool
    text: str


def lesson_name(number: int) -> str:
    """``3`` -> ``"03_encoder"``: the stem shared by the lesson's text, exercise and checker."""
    found = sorted(p.stem for p in COURSE.glob(f"{number:02d}_*.md"))
    if not found:
        raise SystemExit(
            f"there is no lesson {number}; the lessons are {', '.join(str(int(stem[:2])) for stem in lessons())}"
        )
    return found[0]


def lessons() -> list[str]:
    """Every lesson's stem, in order."""
    return sorted(p.stem for p in COURSE.glob("[0-9][0-9]_*.md"))


def exercise_file(number: int) -> Path:
    return COURSE / "exercises" / f"{lesson_name(number)}.py"


def load_file(path: Path, name: str):
    """Import a Python file by path as a fresh module (a learner may check several copies in one session)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def checks_of(number: int):
    return load_file(COURSE / "checks" / f"{lesson_name(number)}.py", f"course_checks_{number:02d}")


def check_module(number: int, module, source: str, learner_file: Path | None = None) -> Report:
    """Run lesson ``number``'s checker on ``module`` (anything with the exercise's functions as attributes)."""
    checks = checks_of(number)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the cases are tiny: a second thread only adds waiting, a lot of it on a busy machine
    try:
        outcomes = [_checking.run_exercise(exercise, module, learner_file) for exercise in checks.EXERCISES]
    finally:
        torch.set_num_threads(threads)
    text = _checking.render(f"Lesson {number}, {checks.TITLE}", source, outcomes)
    if getattr(checks, "NOTE", None):
        text += checks.NOTE + "\n"
    return Report(all(o.status == "ok" for o in outcomes), text)


def check_file(number: int, path: Path | None = None) -> Report:
    path = Path(path) if path is not None else exercise_file(number)
    if not path.is_file():
        return Report(False, f"{path}: no such file\n")
    try:
        module = load_file(path, f"your_lesson_{number:02d}")
    except Exception as error:  # a syntax error or a failing import in the learner's file
        where = _checking.where_raised(error, path)
        return Report(False, f"{path} could not be imported: {type(error).__name__}: {error}{where}\n")
    return check_module(number, module, str(path), path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lesson", type=int, help="lesson number, 1 to 9")
    parser.add_argument(
        "file", nargs="?", type=Path, help="your solution (default: the lesson's file in course/exercises/)"
    )
    args = parser.parse_args(argv)
    report = check_file(args.lesson, args.file)
    print(report.text, end="")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
