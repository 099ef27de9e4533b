"""The package layout (docs/architecture.md): imports go down the layers, the references stay test-only, and
``minilm.kernels`` imports from a bare source checkout."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "minilm"

# Layer of each part of the package; a module may import from its own layer or a lower one (a higher number).
LAYERS = {"cli": 0, "training": 1, "compare": 1, "evaluation": 2, "losses": 3, "checks": 4}
MODEL_SIDE = 2  # encoder, model, fast, weights, tokenizer, hub: below training, beside the loss library


def layer_of(module: str) -> int:
    parts = module.split(".")
    if parts[0] != "minilm" or len(parts) == 1:
        return 99
    return LAYERS.get(parts[1], MODEL_SIDE)


def imports_of(path: Path) -> set[str]:
    """Absolute names of the minilm modules (and third-party top-level packages) ``path`` imports."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                found.add(".".join(base + ([node.module] if node.module else [])))
            else:
                found.add(node.module)
    return found


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__"), path


def test_imports_go_down_the_layers():
    upward = []
    for name, path in modules():
        if name in ("minilm", "minilm.__main__"):
            continue
        for imported in imports_of(path):
            if imported.startswith("minilm.kernels"):
                continue  # optional kernels, imported lazily where the flag is read
            if imported.startswith("minilm.") and layer_of(imported) < layer_of(name):
                upward.append(f"{name} imports {imported}")
    assert not upward, upward


def test_the_loss_library_imports_only_checks_and_itself():
    for name, path in modules():
        if name.startswith("minilm.losses"):
            ours = {m for m in imports_of(path) if m.startswith("minilm")}
            assert all(m.startswith(("minilm.losses", "minilm.util.checks")) for m in ours), (name, ours)


def test_references_are_test_only():
    """Except in minilm/run/compare.py, the parity command behind the optional extra [compare], which imports
    sentence-transformers when it runs."""
    for name, path in modules():
        heavy = {m for m in imports_of(path) if m.split(".")[0] in ("sentence_transformers", "transformers")}
        assert not heavy or (name == "minilm.run.compare" and heavy == {"sentence_transformers"}), (name, heavy)


@pytest.mark.subprocess
def test_kernels_import_from_a_bare_checkout():
    """No install, no site-packages (-S: the editable install's finder is not there): the checkout alone."""
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import importlib.util, minilm; "
            "spec = importlib.util.find_spec('minilm.kernels.mnrl'); print(spec.origin)")
    out = subprocess.run([sys.executable, "-S", "-c", code, str(REPO)], capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()) == REPO / "kernels" / "mnrl.py"


def test_every_package_is_installed():
    """A non-editable install ships only the packages pyproject lists: each folder of minilm/ must be there."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    folders = {".".join(p.parent.relative_to(REPO).parts) for p in PACKAGE.rglob("__init__.py")}
    assert folders | {"minilm.kernels"} == listed
