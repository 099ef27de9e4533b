"""encode(workers=N): batches in flight side by side on CPU give the same embeddings, in order, as one at a time,
and torch's thread count is restored afterwards, also when a batch fails. Tolerance: float32 equality to 1e-6 (the
per-batch computation is the same; only the matmul thread count differs)."""

import pytest
import torch
from helpers import tiny_encoder

from minilm.loading.tokenizer import WordPieceTokenizer

WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
]
TEXTS = [" ".join(WORDS[: 1 + (5 * i) % 14]) for i in range(37)]  # 37 ragged texts: 5 batches of 8, one short


@pytest.fixture(scope="module")
def model(minilm_dir):
    return tiny_encoder(WordPieceTokenizer.from_dir(minilm_dir, 64))


@pytest.mark.parametrize("workers", [2, 3, 8])
def test_workers_give_the_same_embeddings_in_order(model, workers):
    threads = torch.get_num_threads()
    one = model.encode(TEXTS, batch_size=8, workers=1)
    many = model.encode(TEXTS, batch_size=8, workers=workers)
    assert abs(one - many).max() <= 1e-6
    assert abs(model.encode(TEXTS[5], workers=workers) - one[5]).max() <= 1e-6  # single string, one batch
    assert torch.get_num_threads() == threads


def test_thread_count_restored_when_a_batch_fails(model, monkeypatch):
    threads = torch.get_num_threads()

    def fail(*args, **kwargs):
        raise RuntimeError("batch exploded")

    monkeypatch.setattr(model, "_embed_with", fail)
    with pytest.raises(RuntimeError, match="batch exploded"):
        model.encode(TEXTS, batch_size=8, workers=2)
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_bad_workers_refused(model, workers):
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        model.encode(TEXTS, workers=workers)


def test_autocast_applies_in_every_worker(model):
    """autocast is per thread, like inference mode: encode carries the caller's setting into its workers."""
    plain = model.encode(TEXTS, batch_size=8, workers=1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        one = model.encode(TEXTS, batch_size=8, workers=1)
        two = model.encode(TEXTS, batch_size=8, workers=2)
    assert abs(one - plain).max() > 1e-4  # bf16 really was used
    assert abs(one - two).max() <= 1e-6


def test_compiled_model_encodes_one_batch_at_a_time(model, monkeypatch):
    """torch.compile'd code is not thread-safe, so a compiled model's default is one worker."""
    import minilm.encoder

    seen = []
    real = minilm.encoder.batch_workers
    monkeypatch.setattr(minilm.encoder, "batch_workers", lambda n: seen.append(n) or real(n))
    model.encode(TEXTS, batch_size=8)
    monkeypatch.setattr(model, "_compiled", True)
    model.encode(TEXTS, batch_size=8)
    assert seen == [2 if torch.get_num_threads() >= 2 else 1, 1]


def test_batch_workers_map_in_order_on_shared_threads_and_restore_the_count():
    from minilm.fast.workers import batch_workers, default_workers

    total = torch.get_num_threads()
    with batch_workers(2) as run:
        seen = list(run(lambda i: (i, torch.get_num_threads()), range(6)))
        assert torch.get_num_threads() == max(1, total // 2)
    assert [i for i, _ in seen] == list(range(6)) and all(n == max(1, total // 2) for _, n in seen)
    assert torch.get_num_threads() == total
    with batch_workers(1) as run:
        assert run is map
    assert default_workers(torch.device("cpu"), compiled=True) == 1
