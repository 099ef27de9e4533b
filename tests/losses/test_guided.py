"""minilm.losses.guided (GISTEmbed): float64 loop oracle, gradcheck, bad input. Parity with sentence-transformers'
GISTEmbedLoss and CachedGISTEmbedLoss is in tests/parity/test_losses_vs_st_catalogue.py.

Tolerances: float64 values vs the oracle rtol 1e-6, atol 1e-7; gradcheck at its float64 defaults.
"""

from __future__ import annotations

import math

import pytest
import torch
from test_in_batch import o_logsumexp
from test_losses import o_cos

from minilm import losses as L


def o_gist(columns, guide, temperature, strategy, margin, contrast_anchors, contrast_positives):
    anchors, positives, *negatives = columns
    g_anchors, g_positives, *g_negatives = guide
    b = len(anchors)
    total = 0.0
    for i in range(b):
        g_pos = o_cos(g_anchors[i], g_positives[i])
        threshold = g_pos - margin if strategy == "absolute" else g_pos - abs(g_pos) * margin
        logits = []

        def pool(rows, g_rows, u, g_u, keep=None):
            for j, (v, g_v) in enumerate(zip(rows, g_rows)):
                masked = o_cos(g_u, g_v) > threshold and j != keep
                logits.append(-math.inf if masked else o_cos(u, v) / temperature)

        pool(positives, g_positives, anchors[i], g_anchors[i], keep=i)
        target = logits[i]
        if contrast_anchors:
            pool(anchors, g_anchors, anchors[i], g_anchors[i])
        if contrast_positives:
            pool(positives, g_positives, positives[i], g_positives[i])
        for negative, g_negative in zip(negatives, g_negatives):
            pool(negative, g_negative, anchors[i], g_anchors[i])
        total += o_logsumexp(logits) - target
    return total / b


def _emb(n, d=6, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _setup(n, n_negatives, guide_dim=5):
    columns = [_emb(n, seed=s) for s in range(2 + n_negatives)]
    # a guide that roughly agrees with the student, so some candidates land on each side of the threshold
    guide = [torch.cat([c[:, : guide_dim - 1], _emb(n, 1, seed=10 + k)], dim=1) for k, c in enumerate(columns)]
    return columns, guide


@pytest.mark.parametrize(
    "options",
    [
        dict(margin_strategy="absolute", margin=0.0, contrast_anchors=True, contrast_positives=True),
        dict(margin_strategy="absolute", margin=0.1, contrast_anchors=False, contrast_positives=True),
        dict(margin_strategy="relative", margin=0.1, contrast_anchors=True, contrast_positives=False),
        dict(margin_strategy="relative", margin=-0.2, contrast_anchors=False, contrast_positives=False),
    ],
)
@pytest.mark.parametrize("n_negatives", [0, 1, 2])
@pytest.mark.parametrize("n", [1, 2, 7])
def test_gist_matches_oracle(n, n_negatives, options):
    columns, guide = _setup(n, n_negatives)
    ours = L.gist_embed_loss(*columns, guide=guide, temperature=0.05, **options)
    expected = o_gist(
        [c.tolist() for c in columns],
        [g.tolist() for g in guide],
        0.05,
        options["margin_strategy"],
        options["margin"],
        options["contrast_anchors"],
        options["contrast_positives"],
    )
    assert torch.isfinite(ours) and ours.item() == pytest.approx(expected, rel=1e-6, abs=1e-7)


def test_gist_without_masking_is_mnrl_and_the_guide_takes_no_gradient():
    columns, _ = _setup(7, 0)
    leaves = [c.clone().requires_grad_() for c in columns]
    orthogonal = [torch.eye(7, dtype=torch.float64).requires_grad_() for _ in range(2)]  # only (a_i, p_i) agree
    plain = L.gist_embed_loss(*leaves, guide=orthogonal, contrast_anchors=False, contrast_positives=False)
    mnrl = L.multiple_negatives_ranking_loss(*columns, scale=100.0)  # temperature 0.01
    assert plain.item() == pytest.approx(mnrl.item(), rel=1e-12)
    self_guided = L.gist_embed_loss(*leaves, guide=columns, contrast_anchors=False, contrast_positives=False)
    assert self_guided.item() < plain.item()  # the negatives scored above each positive are masked out
    (plain + self_guided).backward()
    assert all(g.grad is None for g in orthogonal) and all(x.grad is not None for x in leaves)


@pytest.mark.parametrize("n_negatives", [0, 1])
@pytest.mark.parametrize("strategy", ["absolute", "relative"])
def test_gradcheck_gist(strategy, n_negatives):
    columns, guide = _setup(5, n_negatives)
    leaves = [c.clone().requires_grad_() for c in columns]
    assert torch.autograd.gradcheck(
        lambda *c: L.gist_embed_loss(*c, guide=guide, temperature=0.5, margin_strategy=strategy, margin=0.05), leaves
    )


def _x(n=4, d=3):
    return torch.randn(n, d)


BAD_CALLS = {
    "no guide": (lambda: L.gist_embed_loss(_x(), _x()), TypeError, "guide"),
    "guide tensor": (lambda: L.gist_embed_loss(_x(), _x(), guide=_x()), TypeError, "guide"),
    "guide count": (lambda: L.gist_embed_loss(_x(), _x(), _x(), guide=[_x(), _x()]), TypeError, "guide"),
    "guide rows": (lambda: L.gist_embed_loss(_x(), _x(), guide=[_x(3), _x(3)]), ValueError, r"guide\[0\]"),
    "guide width mismatch": (
        lambda: L.gist_embed_loss(_x(), _x(), guide=[_x(4, 5), _x(4, 6)]),
        ValueError,
        r"guide\[1\]",
    ),
    "guide NaN": (
        lambda: L.gist_embed_loss(_x(), _x(), guide=[_x(), torch.full((4, 3), float("nan"))]),
        ValueError,
        r"guide\[1\]",
    ),
    "rows": (lambda: L.gist_embed_loss(_x(), _x(5), guide=[_x(), _x(5)]), ValueError, "positives"),
    "empty": (lambda: L.gist_embed_loss(_x(0), _x(0), guide=[_x(0), _x(0)]), ValueError, "anchors"),
    "int": (
        lambda: L.gist_embed_loss(torch.ones(4, 3, dtype=torch.long), _x(), guide=[_x(), _x()]),
        TypeError,
        "anchors",
    ),
    "strategy": (
        lambda: L.gist_embed_loss(_x(), _x(), guide=[_x(), _x()], margin_strategy="abs"),
        ValueError,
        "margin_strategy",
    ),
    "temperature": (
        lambda: L.gist_embed_loss(_x(), _x(), guide=[_x(), _x()], temperature=0),
        ValueError,
        "temperature",
    ),
    "flag": (
        lambda: L.gist_embed_loss(_x(), _x(), guide=[_x(), _x()], contrast_anchors=0),
        TypeError,
        "contrast_anchors",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_input_raises_naming_argument(case):
    call, error, name = BAD_CALLS[case]
    with pytest.raises(error, match=name):
        call()
