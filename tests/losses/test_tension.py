"""minilm.losses.tension (Contrastive Tension and its in-batch form): float64 loop oracles, gradcheck, bad input.
Parity with sentence-transformers is in tests/parity/test_losses_vs_st_catalogue.py.

Tolerances: float64 values vs the oracle rtol 1e-6, atol 1e-7; gradcheck at its float64 defaults.
"""

from __future__ import annotations

import math

import pytest
import torch
from test_in_batch import o_dot, o_logsumexp
from test_losses import o_cos

from minilm import losses as L
from minilm.losses.inputs import split_output


def o_tension(a, b, y):
    total = 0.0
    for u, v, t in zip(a, b, y):
        z = o_dot(u, v)
        total += max(z, 0) - z * t + math.log1p(math.exp(-abs(z)))  # BCE with logits
    return total


def o_tension_in_batch(a, b, scale, similarity):
    sim = o_cos if similarity == "cosine" else o_dot
    n = len(a)
    s = [[scale * sim(a[i], b[j]) for j in range(n)] for i in range(n)]
    rows = sum(o_logsumexp(s[i]) - s[i][i] for i in range(n)) / n
    cols = sum(o_logsumexp([s[i][j] for i in range(n)]) - s[j][j] for j in range(n)) / n
    return (rows + cols) / 2


def _emb(n, d=6, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("n", [1, 2, 8])
def test_tension_matches_oracle(n):
    a, b = _emb(n), _emb(n, seed=1)
    b[0] = a[0]
    y = (torch.arange(n) % 4 == 0).long()
    ours = L.contrastive_tension_loss(a, b, y)
    assert ours.item() == pytest.approx(o_tension(a.tolist(), b.tolist(), y.tolist()), rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("similarity, scale", [("cosine", 20.0), ("dot", 0.5)])
@pytest.mark.parametrize("n", [1, 2, 8])
def test_tension_in_batch_matches_oracle(n, similarity, scale):
    a, b = _emb(n), _emb(n, seed=1)
    loss = L.ContrastiveTensionInBatchLoss(scale=scale, similarity=similarity).double()
    value, stats = split_output(loss(a, b))
    assert value.item() == pytest.approx(
        o_tension_in_batch(a.tolist(), b.tolist(), scale, similarity), rel=1e-6, abs=1e-7
    )
    assert stats["scale"] == pytest.approx(scale)


def test_gradcheck_tension():
    y = torch.tensor([1, 0, 0, 1, 0])
    leaves = [_emb(5).requires_grad_(), _emb(5, seed=1).requires_grad_()]
    assert torch.autograd.gradcheck(lambda a, b: L.contrastive_tension_loss(a, b, y), leaves)
    loss = L.ContrastiveTensionInBatchLoss(scale=2.0).double()

    def fn(a, b, logit_scale):
        return torch.func.functional_call(loss, {"logit_scale": logit_scale}, (a, b))[0]

    assert torch.autograd.gradcheck(fn, leaves + [loss.logit_scale.detach().clone().requires_grad_()])


def _x(n=4, d=3):
    return torch.randn(n, d)


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda: L.contrastive_tension_loss(_x(), _x(5), torch.ones(4)), ValueError, "embeddings_b"),
        (lambda: L.contrastive_tension_loss(_x(), _x(), torch.ones(3)), ValueError, "scores"),
        (lambda: L.contrastive_tension_loss(_x(0), _x(0), torch.ones(0)), ValueError, "embeddings_a"),
        (lambda: L.contrastive_tension_loss(_x(), _x(), torch.tensor([0, 1, float("nan"), 0])), ValueError, "scores"),
        (lambda: L.ContrastiveTensionInBatchLoss()(_x(), _x(3)), ValueError, "embeddings_b"),
        (
            lambda: L.ContrastiveTensionInBatchLoss()(torch.ones(4, 3, dtype=torch.long), _x()),
            TypeError,
            "embeddings_a",
        ),
        (lambda: L.ContrastiveTensionInBatchLoss(scale=0.0), ValueError, "scale"),
        (lambda: L.ContrastiveTensionInBatchLoss(similarity="l2"), ValueError, "similarity"),
    ],
)
def test_bad_input_raises_naming_argument(call, error, name):
    with pytest.raises(error, match=name):
        call()
