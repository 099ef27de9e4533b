"""Run a lesson's text: ``python course/run_lesson.py LESSON [--figures DIR]``.

Every ```python block of the lesson's text (``course/NN_name.md``) runs in order in one namespace, as if typed into
one Python session, and prints what the lesson shows under it. Figures are written to ``course/figures/`` (or DIR),
which the code finds under the name ``FIGURES`` (and the course folder under ``COURSE``). The tests run every
lesson this way and check that each block prints what the text says it prints.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
from dataclasses import dataclass
from pathlib import Path

COURSE = Path(__file__).resolve().parent
if str(COURSE) not in sys.path:
    sys.path.insert(0, str(COURSE))

from _minilm import MissingExtra  # noqa: E402
from check import lesson_name  # noqa: E402  (check.py also puts the minilm beside the course on the path)


@dataclass
class Block:
    number: int  # position among the lesson's fenced blocks
    code: str
    shown: str | None  # the ```text block right after it, which is what it must print; None if there is none
    printed: str = ""


def blocks(text: str) -> list[Block]:
    """The ```python blocks of a lesson, each with the ```text block that follows it, if any."""
    fenced = [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)]
    found = []
    for i, (language, body) in enumerate(fenced):
        if language == "python":
            after = fenced[i + 1] if i + 1 < len(fenced) else ("", "")
            found.append(Block(i, body, after[1] if after[0] == "text" else None))
    return found


def run(number: int, figures: Path | None = None, echo: bool = True) -> list[Block]:
    """Execute lesson ``number``'s code blocks; return them with what each printed."""
    page = COURSE / f"{lesson_name(number)}.md"
    figures = Path(figures) if figures is not None else COURSE / "figures"
    figures.mkdir(parents=True, exist_ok=True)
    namespace = {"__name__": f"lesson_{number:02d}", "FIGURES": figures, "COURSE": COURSE}
    text = page.read_text(encoding="utf-8")
    done = []
    for block in blocks(text):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block.code, f"{page}:block{block.number}", "exec"), namespace)
        block.printed = out.getvalue()
        if echo:
            print(block.printed, end="")
        done.append(block)
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lesson", type=int, help="lesson number, 1 to 9")
    parser.add_argument("--figures", type=Path, help="where to write the figures (default: course/figures/)")
    args = parser.parse_args(argv)
    try:
        run(args.lesson, args.figures)
    except MissingExtra as error:
        print(
            f"\nLesson {args.lesson} draws its figure with matplotlib, which is not installed.\n{error}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
