"""Cache-sized forwards (minilm.fast.slices): where a batch is cut, and that encoding a batch as several forwards
gives the embeddings of one forward per batch. Tolerance: float32 to 1e-6 (each sequence's computation does not
depend on its batch mates; only the matmul row count changes)."""

import pytest
import torch
from helpers import WORDS, tiny_encoder

import minilm.fast.slices as slices
from minilm.fast.slices import CPU_FORWARD_TOKENS, forward_slices
from minilm.loading.tokenizer import WordPieceTokenizer

CPU = torch.device("cpu")


def test_a_batch_within_the_budget_runs_whole():
    assert forward_slices([20] * 32, CPU) == [slice(0, 32)]


def test_a_batch_past_the_budget_is_cut_and_every_slice_fits():
    lengths = sorted([256] * 20 + [100] * 30 + [10] * 14, reverse=True)
    cut = forward_slices(lengths, CPU)
    assert cut[0].start == 0 and cut[-1].stop == len(lengths)
    assert all(a.stop == b.start for a, b in zip(cut, cut[1:]))  # consecutive, nothing lost or repeated
    assert all((s.stop - s.start) * lengths[s.start] <= CPU_FORWARD_TOKENS for s in cut)
    assert len(cut) > 1 and [s.stop - s.start for s in cut][0] == CPU_FORWARD_TOKENS // 256


def test_a_sequence_longer_than_the_budget_runs_alone():
    assert forward_slices([5000, 4000, 10], CPU) == [slice(0, 1), slice(1, 2), slice(2, 3)]


def test_off_the_cpu_and_for_nothing_one_slice():
    assert forward_slices([256] * 64, torch.device("meta")) == [slice(0, 64)]
    assert forward_slices([], CPU) == [slice(0, 0)]


@pytest.fixture(scope="module")
def model(minilm_dir):
    return tiny_encoder(WordPieceTokenizer.from_dir(minilm_dir, 64))


@pytest.mark.parametrize("workers", [1, 2])
def test_cut_batches_give_the_embeddings_of_whole_ones(model, monkeypatch, workers):
    texts = [" ".join(WORDS[: 3 + (7 * i) % 12] * 4) for i in range(24)]  # ragged, up to 64 tokens
    calls = []
    hook = model.bert.register_forward_pre_hook(lambda module, args: calls.append(args[0].shape))
    try:
        whole = model.encode(texts, batch_size=24, workers=workers)
        assert len(calls) == 1
        monkeypatch.setattr(slices, "CPU_FORWARD_TOKENS", 128)
        calls.clear()
        cut = model.encode(texts, batch_size=24, workers=workers)
    finally:
        hook.remove()
    assert len(calls) > 2 and all(shape.numel() <= 128 or shape[0] == 1 for shape in calls)
    assert abs(whole - cut).max() <= 1e-6
