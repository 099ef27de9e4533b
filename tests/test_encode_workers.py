"""encode(workers=N): batches in flight side by side on CPU give the same embeddings, in order, as one at a time,
and torch's thread count is restored afterwards, also when a batch fails. Tolerance: float32 equality to 1e-6 (the
per-batch computation is the same; only the matmul thread count differs)."""

import pytest
import torch

from minilm.encoder import SentenceEncoder
from minilm.model import BertConfig, BertModel
from minilm.tokenizer import WordPieceTokenizer

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi".split()
TEXTS = [" ".join(WORDS[: 1 + (5 * i) % 14]) for i in range(37)]  # 37 ragged texts: 5 batches of 8, one short


@pytest.fixture(scope="module")
def model(minilm_dir):
    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                        max_position_embeddings=64)
    return SentenceEncoder(BertModel(config), WordPieceTokenizer.from_dir(minilm_dir, 64), "mean", True)


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
