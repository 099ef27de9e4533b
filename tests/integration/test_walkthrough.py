"""docs/walkthrough.md runs: every ```python block is executed in order in one namespace, on the real weights, and
what it prints must match the ```text block that follows it (numbers to 1e-4 relative or 1e-6 absolute, since float32
sums may differ in the last digits across CPUs; everything else exactly). The map of every file at its end must be
what docs/file_map.py computes from the tree."""

import contextlib
import importlib.util
import io
import math
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
WALKTHROUGH = REPO / "docs" / "walkthrough.md"
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def blocks(text: str) -> list[tuple[str, str]]:
    """(language, body) of every fenced block, in order."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.S | re.M)]


def same_output(expected: str, actual: str) -> bool:
    exp_lines, act_lines = expected.strip().splitlines(), actual.strip().splitlines()
    if len(exp_lines) != len(act_lines):
        return False
    for e, a in zip(exp_lines, act_lines):
        if NUMBER.sub("#", e) != NUMBER.sub("#", a):
            return False
        for x, y in zip(NUMBER.findall(e), NUMBER.findall(a)):
            if not math.isclose(float(x), float(y), rel_tol=1e-4, abs_tol=1e-6):
                return False
    return True


@pytest.mark.slow
@pytest.mark.real_weights
def test_walkthrough_runs_and_prints_what_it_says(minilm_dir):
    found = blocks(WALKTHROUGH.read_text(encoding="utf-8"))
    code = [i for i, (lang, _) in enumerate(found) if lang == "python"]
    assert len(code) >= 8, "the walkthrough has lost its code"
    namespace: dict = {"__name__": "walkthrough"}
    for i in code:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(found[i][1], f"{WALKTHROUGH}:block{i}", "exec"), namespace)
        language, expected = found[i + 1] if i + 1 < len(found) else ("", "")
        if language == "text":
            assert same_output(expected, out.getvalue()), (
                f"block {i} printed:\n{out.getvalue()}\nbut the walkthrough says:\n{expected}"
            )
        else:
            assert not out.getvalue().strip(), f"block {i} prints but no ```text block follows it"


def test_same_output_compares_numbers_with_tolerance_and_the_rest_exactly():
    assert same_output("loss 0.0090 shape (2, 10)", "loss 0.009000001 shape (2, 10)")
    assert not same_output("shape (2, 10)", "shape (2, 11)")
    assert not same_output("same as by hand: True", "same as by hand: False")
    assert not same_output("a\nb", "a")


def test_the_file_map_is_current():
    spec = importlib.util.spec_from_file_location("file_map", REPO / "docs" / "file_map.py")
    file_map = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(file_map)
    assert file_map.current() == file_map.render(), "run: python docs/file_map.py"
