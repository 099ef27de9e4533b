"""The cheap CPU dropout masks (minilm.fast.dropout) against what torch's dropout guarantees.

Rates are checked to 6 standard deviations of a binomial; survivors are scaled exactly (float32 equality); the
attention fast path with dropout equals the reference matmul attention given the same mask (1e-6, float32).
"""

import math

import pytest
import torch
import torch.nn as nn

from minilm.fast import make_fast
from minilm.fast.dropout import Dropout, dropout, keep_mask, quantised_p
from minilm.model import BertConfig, BertModel


@pytest.mark.parametrize("p", [0.1, 0.25, 0.5, 0.9])
def test_drop_rate_in_every_16_bit_lane(p):
    """Each 64-bit draw feeds four elements; every lane must drop at the same rate (a lane fed by a constant top
    bit would not)."""
    torch.manual_seed(0)
    n = 1 << 20
    keep = keep_mask((n,), p)
    q = quantised_p(p)
    assert abs(q - p) <= 0.5 / 65536
    lane_n = n // 4
    sigma = math.sqrt(q * (1 - q) / lane_n)
    for lane in range(4):
        rate = 1 - keep[lane::4].float().mean().item()
        assert abs(rate - q) < 6 * sigma, (lane, rate, q)


def test_survivors_scaled_exactly_and_backward_uses_the_same_mask():
    torch.manual_seed(1)
    x = torch.randn(64, 384, requires_grad=True)
    y = dropout(x, 0.1)
    kept = y != 0
    scale = 1 / (1 - quantised_p(0.1))
    assert torch.equal(y[kept], x[kept] * scale)
    g = torch.randn_like(y)
    y.backward(g)
    assert torch.equal(x.grad, torch.where(kept, g * scale, 0.0))


def test_seeded_reproducible_and_fresh_per_call():
    torch.manual_seed(2)
    a, b = keep_mask((1000,), 0.5), keep_mask((1000,), 0.5)
    torch.manual_seed(2)
    assert torch.equal(keep_mask((1000,), 0.5), a)
    assert not torch.equal(a, b)


def test_identity_when_off_and_zeros_at_one():
    x = torch.randn(5, 7)
    assert dropout(x, 0.1, training=False) is x
    assert dropout(x, 0.0) is x
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    module = Dropout(0.3).eval()
    assert module(x) is x
    assert keep_mask((0,), 0.1).shape == (0,)


@pytest.mark.parametrize("p", [-0.1, 1.5, True, "0.1", None])
def test_bad_probability_refused_by_module_and_function(p):
    with pytest.raises(ValueError, match="dropout probability"):
        Dropout(p)
    with pytest.raises(ValueError, match="dropout probability"):
        dropout(torch.ones(3), p)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, torch.float64])
def test_other_dtypes_keep_dtype_and_mean(dtype):
    """The output keeps the input dtype, and survivors carry 1 / (1 - p) as rounded in that dtype (bf16: 1.109375,
    so a -0.16 % bias, as with torch's own dropout); the mean is (1 - p) times that, to 6 sigma."""
    torch.manual_seed(5)
    n, q = 1 << 20, quantised_p(0.1)
    y = dropout(torch.ones(n, dtype=dtype), 0.1)
    assert y.dtype == dtype
    scale = (torch.ones((), dtype=dtype) * (1 / (1 - q))).item()
    assert set(y.unique().tolist()) == {0.0, scale}
    sigma = math.sqrt(q * (1 - q) / n) * scale
    assert abs(y.double().mean().item() - (1 - q) * scale) < 6 * sigma


def tiny_bert() -> BertModel:
    torch.manual_seed(0)
    return BertModel(
        BertConfig(
            vocab_size=100,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=16,
        )
    )


def test_make_fast_swaps_every_dropout_module_and_keeps_eval_outputs():
    bert = tiny_bert().eval()
    ids, mask = torch.randint(0, 100, (3, 7)), torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1] * 2 + [0] * 5])
    before = bert(ids, mask)
    plain = [name for name, m in bert.named_modules() if type(m) is nn.Dropout]
    assert len(plain) == 1 + 3 * 2  # embeddings; per layer attention probabilities, attention output, feed-forward
    make_fast(bert)
    cheap = {name: m.p for name, m in bert.named_modules() if isinstance(m, Dropout)}
    assert sorted(cheap) == sorted(plain) and set(cheap.values()) == {0.1}
    assert torch.equal(bert(ids, mask), before)


def test_attention_probabilities_get_the_cheap_mask_like_the_matmul_reference():
    """In training, SelfAttention sends the probabilities through its (swapped) dropout module: the result equals
    the reference matmul-softmax attention with the same keep mask applied by hand."""
    attention = make_fast(tiny_bert()).layers[0].attention.train()
    attention.attn_dropout.p = 0.25
    B, T, H, nh = 3, 5, 32, 4
    q, k, v = torch.randn(3, B, T, H).unbind(0)
    mask = torch.zeros(B, 1, 1, T)
    mask[1, ..., 3:] = torch.finfo(torch.float32).min
    torch.manual_seed(11)
    y, _ = attention.attend(q, k, v, mask)  # (B, T, H)
    torch.manual_seed(11)
    keep = keep_mask((B, nh, T, T), 0.25)
    heads = [t.view(B, T, nh, H // nh).transpose(1, 2) for t in (q, k, v)]  # (B, nh, T, hd)
    probs = (heads[0] @ heads[1].transpose(-2, -1) / math.sqrt(H // nh) + mask).softmax(-1)  # (B, nh, T, T)
    reference = torch.where(keep, probs / (1 - quantised_p(0.25)), 0.0) @ heads[2]  # (B, nh, T, hd)
    assert (y - reference.transpose(1, 2).reshape(B, T, H)).abs().max() <= 1e-6
