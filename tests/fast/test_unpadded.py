"""Unpadded execution (minilm.fast.unpadded) against the padded reference, on a tiny random BERT.

Tolerances (fp32): embeddings and hidden states 1e-5 max abs; gradients 1e-5 relative to the largest entry of each
(embedding-table gradients sum over every token).
"""

import numpy as np
import pytest
import torch
from helpers import tiny_encoder

from minilm.fast.unpadded import (
    UNPAD_ABOVE,
    UnpaddedBatch,
    forward_unpadded,
    group_lengths,
    pool_unpadded,
    unpadding_pays,
)
from minilm.loading.tokenizer import WordPieceTokenizer
from minilm.model import pool

TEXTS = [
    "a short one",
    "",
    "A much longer sentence, with punctuation; and some rarer words like photosynthesis.",
    "the end",
    "medium length sentence about cats",
]


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    return WordPieceTokenizer.from_dir(minilm_dir, 64)


def run(model, features, unpadded):
    model.unpadded = unpadded
    model.zero_grad(set_to_none=True)
    emb = model(**features)
    (emb * torch.linspace(-1, 1, emb.shape[-1])).sum().backward()
    return emb.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
def test_unpadded_matches_padded_forward_and_backward(tokenizer, pooling):
    model = tiny_encoder(tokenizer, pooling)
    features = model.tokenize(TEXTS)
    assert (features["attention_mask"] == 0).any()
    emb_pad, grads_pad = run(model, features, unpadded=False)
    emb_unpad, grads_unpad = run(model, features, unpadded=True)
    assert (emb_pad - emb_unpad).abs().max() <= 1e-5
    assert grads_pad.keys() == grads_unpad.keys() and len(grads_pad) > 0
    for name in grads_pad:
        scale = max(1.0, grads_pad[name].abs().max().item())
        assert (grads_pad[name] - grads_unpad[name]).abs().max() <= 1e-5 * scale, name


def test_forward_unpadded_equals_padded_at_real_tokens(tokenizer):
    model = tiny_encoder(tokenizer)
    f = model.tokenize(TEXTS)
    with torch.no_grad():
        padded = model.bert(f["input_ids"], f["attention_mask"], f["token_type_ids"])  # (B, T, H)
        x, batch = forward_unpadded(model.bert, f["input_ids"], f["attention_mask"], f["token_type_ids"])
    keep = f["attention_mask"].bool()
    assert x.shape == (int(keep.sum()), 32)  # only real tokens were computed
    assert (batch.take(padded) - x).abs().max() <= 1e-5
    assert torch.equal(batch.take(batch.pad(x)), x)
    assert (batch.pad(x)[keep] - padded[keep]).abs().max() <= 1e-5  # back in the caller's order


@pytest.mark.parametrize("pooling", ["mean", "cls", "max"])
def test_embed_layers_unpadded_matches_padded_forward_and_backward(tokenizer, pooling):
    """Every layer's pooled embeddings (what AdaptiveLayer / Matryoshka2d train) from the unpadded path equal the padded
    reference's (the textbook model's hidden_states, pooled), forward and backward, within 1e-5; the last is
    forward's."""
    model = tiny_encoder(tokenizer, pooling, num_hidden_layers=3)
    features = model.tokenize(TEXTS)
    results = {}
    for unpadded in (False, True):
        model.unpadded = unpadded
        model.zero_grad(set_to_none=True)
        per_layer = model.embed_layers(**features)
        weights = torch.linspace(-1, 1, per_layer[0].shape[-1])
        sum((e * weights * (i + 1)).sum() for i, e in enumerate(per_layer)).backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results[unpadded] = [e.detach() for e in per_layer], grads
        with torch.no_grad():
            assert torch.equal(per_layer[-1].detach(), model(**features))  # the last layer is the model's output
    (padded, grads_pad), (unpadded, grads_unpad) = results[False], results[True]
    assert len(padded) == len(unpadded) == 4  # the embedding output and 3 layers
    for a, b in zip(padded, unpadded):
        assert (a - b).abs().max() <= 1e-5
    assert grads_pad.keys() == grads_unpad.keys() and len(grads_pad) > 0
    for name in grads_pad:
        scale = max(1.0, grads_pad[name].abs().max().item())
        assert (grads_pad[name] - grads_unpad[name]).abs().max() <= 1e-5 * scale, name


@pytest.mark.parametrize("mode", ["mean", "cls", "max"])
def test_pool_unpadded_equals_pool(mode):
    torch.manual_seed(1)
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]])
    hidden = torch.randn(3, 4, 8)
    batch = UnpaddedBatch.from_mask(mask)
    assert (pool(hidden, mask, mode) - pool_unpadded(batch.take(hidden), batch, mode)).abs().max() <= 1e-6
    with pytest.raises(ValueError, match="pooling mode"):
        pool_unpadded(batch.take(hidden), batch, "median")


def test_training_mode_embed_has_gradients_on_unpadded_path(tokenizer):
    model = tiny_encoder(tokenizer).train()
    assert model.unpadded  # the default
    emb = model.embed(TEXTS)
    assert emb.shape == (5, 32) and emb.requires_grad
    emb.sum().backward()
    assert model.bert.layers[0].ffn.up.weight.grad is not None


def test_encode_is_the_same_padded_or_unpadded(tokenizer):
    model = tiny_encoder(tokenizer)
    model.unpadded = False
    ref = model.encode(TEXTS, batch_size=2)
    model.unpadded = True
    assert np.abs(model.encode(TEXTS, batch_size=2) - ref).max() <= 1e-5


def test_group_lengths_rule():
    """Longest first; a group closes once it holds GROUP_MIN sequences and the next is <= 3/4 of its longest."""
    assert group_lengths([]) == []
    # 30 <= 0.75 * 40, but the first group needs 8 members first; then the 9th (a 30) opens the next group
    assert group_lengths([40] * 3 + [30] * 10 + [10] * 10) == [8, 8, 7]
    assert group_lengths([20] * 9 + [16] * 9) == [18]  # 16 > 0.75 * 20: same group
    assert group_lengths([40] * 8 + [30] * 8 + [23] * 8) == [8, 16]  # 23 > 0.75 * 30: joins the 30s


@pytest.mark.parametrize("train", [False, True])
def test_several_attention_groups_match_padded(tokenizer, train):
    """A random-length batch split into several attention groups still equals the padded reference, forward and
    backward, in the caller's order. Dropout draws differ between the layouts, so train mode checks only shapes
    and finite gradients."""
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa", "lambda", "mu"]
    texts = [" ".join(words[: 1 + (7 * i) % 12]) for i in range(24)]
    model = tiny_encoder(tokenizer, "mean")
    features = model.tokenize(texts)
    batch = UnpaddedBatch.from_mask(features["attention_mask"])
    assert len(batch.groups) > 1
    assert [g.start for g in batch.groups[1:]] == [g.end for g in batch.groups[:-1]]
    if not train:
        emb_pad, grads_pad = run(model, features, unpadded=False)
        emb_unpad, grads_unpad = run(model, features, unpadded=True)
        assert (emb_pad - emb_unpad).abs().max() <= 1e-5
        for name in grads_pad:
            scale = max(1.0, grads_pad[name].abs().max().item())
            assert (grads_pad[name] - grads_unpad[name]).abs().max() <= 1e-5 * scale, name
    else:
        model.train()
        emb, grads = run(model, features, unpadded=True)
        assert emb.shape == (24, 32) and all(torch.isfinite(g).all() for g in grads.values())


def test_model_py_modules_run_on_the_unpadded_path(tokenizer):
    """Training and encoding call model.py's own modules: forward hooks on BertModel, Layer and SelfAttention fire once
    per forward and once per layer per forward, on tokens in the unpadded layout (N, H); and a hook that edits a
    layer's output changes padded and unpadded encodings alike, so an architecture experiment is made once."""
    model = tiny_encoder(tokenizer)
    L = model.bert.config.num_hidden_layers
    calls = []

    def record(module, args, output):
        calls.append((type(module).__name__, tuple(args[0].shape)))

    modules = [model.bert, *model.bert.layers, *(layer.attention for layer in model.bert.layers)]
    handles = [m.register_forward_hook(record) for m in modules]
    features = model.tokenize(TEXTS)
    N = int(features["attention_mask"].sum())

    one_forward = ["SelfAttention", "Layer"] * L + ["BertModel"]  # hooks fire as each module returns

    model.train()
    model(**features).sum().backward()
    assert calls == [(name, (N,) if name == "BertModel" else (N, 32)) for name in one_forward]

    calls.clear()
    model.eval()
    model.encode(TEXTS, batch_size=2, workers=1)  # 3 batches, one at a time
    assert [name for name, _ in calls] == one_forward * 3
    assert any(name == "Layer" and len(shape) == 2 for name, shape in calls)  # (N, H): a batch went unpadded
    for h in handles:
        h.remove()

    last = model.bert.layers[-1]
    last.register_forward_hook(lambda module, args, output: (output[0] * 0 + 1, output[1]))  # every token the same
    for unpadded in (False, True):
        model.unpadded = unpadded
        emb = model.encode(TEXTS, batch_size=2)
        assert np.abs(emb - emb[0]).max() <= 1e-6, unpadded  # the edited layer ran on either path


def test_unpadding_pays_only_above_the_padding_share():
    """A pure function of the (B, T) mask: unpadded once more than UNPAD_ABOVE of the grid is padding."""

    def padded_by(pads: int, B: int = 10, T: int = 100) -> torch.Tensor:
        lengths = torch.full((B,), T)
        lengths[1:] -= pads // (B - 1)  # the first sequence sets T
        lengths[1] -= pads % (B - 1)
        return (torch.arange(T) < lengths[:, None]).long()  # (B, T)

    share = int(UNPAD_ABOVE * 1000)  # padded positions of the 10 x 100 grid at the share
    assert not unpadding_pays(padded_by(0)) and not unpadding_pays(padded_by(share - 1))
    assert unpadding_pays(padded_by(share + 1)) and unpadding_pays(padded_by(500))
    assert not unpadding_pays(torch.ones(1, 7, dtype=torch.long))  # one sentence


BATCHES = {
    "one length": ["one two three", "four five six", "seven eight nine"],
    "one sentence": ["just a single sentence here"],
    "ragged": TEXTS,
}


@pytest.mark.parametrize("case", sorted(BATCHES))
def test_each_batch_takes_its_path_and_both_paths_agree(tokenizer, monkeypatch, case):
    """The forward (training or encode) runs a batch without padding, or a single sentence, padded and a ragged batch
    unpadded; a hook on the first layer sees which: (B, T, H) or (N, H). The other path, forced, gives the same
    embeddings and gradients within the tolerances above; ``unpadded = False`` forces the padded one for every batch."""
    model = tiny_encoder(tokenizer)
    features = model.tokenize(BATCHES[case])
    unpadded = case == "ragged"
    assert (features["attention_mask"] == 0).any() == unpadded  # the first two really have no padding
    ranks = []
    model.bert.layers[0].register_forward_hook(lambda module, args, output: ranks.append(args[0].dim()))
    chosen = run(model, features, unpadded=True)  # the default: each batch chooses
    model.unpadded = False
    model.encode(BATCHES[case], batch_size=len(BATCHES[case]))
    assert ranks == [2 if unpadded else 3, 3]
    if unpadded:
        other = run(model, features, unpadded=False)
    else:
        monkeypatch.setattr("minilm.encoder.unpadding_pays", lambda mask: True)
        other = run(model, features, unpadded=True)
        assert ranks[-1] == 2  # the unpadded path really ran
    assert (chosen[0] - other[0]).abs().max() <= 1e-5
    assert chosen[1].keys() == other[1].keys() and len(chosen[1]) > 0
    for name in chosen[1]:
        scale = max(1.0, chosen[1][name].abs().max().item())
        assert (chosen[1][name] - other[1][name]).abs().max() <= 1e-5 * scale, name
