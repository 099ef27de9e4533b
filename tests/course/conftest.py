"""The course's tests: course/ on the import path (as check.py and run_lesson.py put it there), and one torch thread
per test."""

import sys
from pathlib import Path

import pytest

COURSE = Path(__file__).resolve().parents[2] / "course"
if str(COURSE) not in sys.path:
    sys.path.insert(0, str(COURSE))


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread per test. On two cores shared with other work, a second intra-op thread spends its time
    waiting for the first (a training step measured 5 to 10 times slower with two threads than with one on this
    machine under load); the lessons' printed numbers are the same to their tolerance either way."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def real_weights(minilm_dir):
    """all-MiniLM-L6-v2 loaded once for the module: the lessons share it through _minilm.pretrained()."""
    import _minilm

    return _minilm.pretrained()
