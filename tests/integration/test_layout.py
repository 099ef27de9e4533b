"""The package layout (docs/architecture.md): imports go down the layers, the references stay test-only, and
``minilm.kernels`` imports from a bare source checkout."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "minilm"

# Layer of each part of the package (docs/architecture.md); a module may import from its own layer or a lower one (a
# higher number). Every folder and top-level module of minilm/ is listed: a new one must be placed.
LAYERS = {
    "cli": 0,  # the command line
    "_moved": 0,  # old import paths, leading to every new place
    "sweep": 1,  # minilm sweep: many runs of one recipe
    "run": 2,  # a recipe made into a run (train, eval, compare)
    "train": 3,  # the loop, its step and what it is made of
    "evaluation": 4,  # evaluators and metrics
    "encoder": 5,  # SentenceEncoder: tokenise, encode, save
    "corpus": 5,  # minilm encode of a whole file
    "card": 6,  # the model card a save writes
    "data": 6,  # data files into rows
    "losses": 7,  # the loss library: maths of embeddings
    "encoding": 8,  # encode options, output quantisation
    "loading": 8,  # weights, tokenizer, hub, the sentence-transformers folder
    "fast": 8,  # the speed machinery applied to the model
    "model": 9,  # textbook BERT
    "util": 10,  # io, checks, extras, progress
}


def layer_of(module: str) -> int:
    parts = module.split(".")
    if parts[0] != "minilm" or len(parts) == 1:
        return 99
    return LAYERS[parts[1]]


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


def test_every_part_of_the_package_has_a_layer():
    parts = {
        p.stem if p.is_file() else p.name
        for p in PACKAGE.iterdir()
        if (p.suffix == ".py" or (p / "__init__.py").is_file()) and p.name not in ("__init__.py", "__main__.py")
    }
    assert parts == set(LAYERS)


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
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import importlib.util, minilm; "
        "spec = importlib.util.find_spec('minilm.kernels.mnrl'); print(spec.origin)"
    )
    out = subprocess.run([sys.executable, "-S", "-c", code, str(REPO)], capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()) == REPO / "kernels" / "mnrl.py"


def test_every_package_is_installed():
    """A non-editable install ships only the packages pyproject lists: each folder of minilm/ must be there."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"])
    folders = {".".join(p.parent.relative_to(REPO).parts) for p in PACKAGE.rglob("__init__.py")}
    assert folders | {"minilm.kernels"} == listed
