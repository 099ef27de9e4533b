"""Tests mirror modules. Every test file outside the cross-cutting folders names the module it tests:
- ``tests/<group>/test_<module>[_<aspect>].py`` tests ``minilm/<group>/<module>.py``;
- ``tests/<group>/test_<group>[_<aspect>].py`` tests the package ``minilm/<group>/`` as a whole (its ``__init__``'s
  re-exports, or several of its modules together);
- ``tests/test_<module>[_<aspect>].py`` tests a top-level module ``minilm/<module>.py`` (model, encoder, cli).
``minilm.kernels`` lives in the repository's ``kernels/`` (pyproject's package-dir), so ``tests/kernels/`` mirrors that.
Tests of no one module (end to end, executed docs, repository checks; parity across the loss catalogue) live in the
cross-cutting folders. Basenames are unique across tests/: pytest's default import mode imports each file by it."""

from collections import Counter
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
CROSS_CUTTING = {
    "integration": "end to end, executed docs, repository checks",
    "parity": "the loss catalogue against sentence-transformers and pytorch-metric-learning",
    "course": "the course/ folder beside minilm: its checkers, mistakes and lesson texts",
}
RULE = (
    "tests/<group>/test_<module>[_<aspect>].py for minilm/<group>/<module>.py, "
    "tests/<group>/test_<group>[_<aspect>].py for the package minilm/<group>/, "
    "tests/test_<module>[_<aspect>].py for minilm/<module>.py, or a cross-cutting "
    f"folder ({', '.join(f'tests/{name}/' for name in CROSS_CUTTING)})"
)


def source_of(package: str) -> Path:
    """The folder a package's modules are in: minilm/<group>, unless pyproject maps it elsewhere (minilm.kernels)."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    mapped = pyproject["tool"]["setuptools"].get("package-dir", {})
    return REPO / mapped.get(package, package.replace(".", "/"))


def names(name: str, module: str) -> bool:
    return name == module or name.startswith(module + "_")


def problem(test: Path) -> str | None:
    """Why ``test`` (a path under tests/) breaks the rule, or None."""
    parts = test.relative_to(TESTS).parts
    if parts[0] in CROSS_CUTTING:
        return None if len(parts) == 2 else f"tests/{test.relative_to(TESTS)}: one folder deep only; the rule is {RULE}"
    name = test.stem.removeprefix("test_")
    if len(parts) == 1:
        modules = [p.stem for p in source_of("minilm").glob("*.py") if not p.stem.startswith("_")]
        where = "minilm/<module>.py"
    elif len(parts) == 2:
        folder = source_of(f"minilm.{parts[0]}")
        if not (folder / "__init__.py").is_file():
            return f"tests/{test.relative_to(TESTS)}: there is no package minilm.{parts[0]}; the rule is {RULE}"
        modules = [parts[0]] + [p.stem for p in folder.glob("*.py") if not p.stem.startswith("_")]
        where = f"minilm/{parts[0]}/<module>.py (or the package itself, test_{parts[0]}[_<aspect>].py)"
    else:
        return f"tests/{test.relative_to(TESTS)}: one folder deep only; the rule is {RULE}"
    if any(names(name, module) for module in modules):
        return None
    return f"tests/{test.relative_to(TESTS)} names no module {where}; the rule is {RULE}"


def test_every_test_file_names_the_module_it_tests():
    problems = [p for test in sorted(TESTS.rglob("test_*.py")) if (p := problem(test))]
    assert not problems, "\n".join(problems)


def test_basenames_are_unique_across_folders():
    # conftest.py is per folder by design; pytest imports each by its path, not its basename.
    counts = Counter(p.name for p in TESTS.rglob("*.py") if p.name != "conftest.py")
    assert not [name for name, n in counts.items() if n > 1], sorted(
        str(p.relative_to(TESTS)) for p in TESTS.rglob("*.py") if counts[p.name] > 1
    )


def test_the_rule_refuses_what_it_should():
    assert problem(TESTS / "losses" / "test_in_batch_hardness.py") is None
    assert problem(TESTS / "losses" / "test_losses.py") is None
    assert problem(TESTS / "kernels" / "test_mnrl.py") is None
    assert problem(TESTS / "test_encoder_save.py") is None
    assert problem(TESTS / "integration" / "test_anything.py") is None
    for wrong in [
        TESTS / "losses" / "test_batching.py",
        TESTS / "nowhere" / "test_x.py",
        TESTS / "test_trainer.py",
        TESTS / "train" / "deeper" / "test_trainer.py",
        TESTS / "test_in.py",
    ]:
        message = problem(wrong)
        assert message and str(wrong.relative_to(TESTS)) in message and "the rule is" in message, (wrong, message)
