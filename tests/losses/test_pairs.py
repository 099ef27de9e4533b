"""minilm.losses.pairs (contrastive, online contrastive, cosine similarity) and scored.angle_loss: float64 loop
oracles, gradcheck, bad input. Reference parity is in tests/parity/test_losses_vs_st_catalogue.py.

Tolerances: float64 values vs the oracle rtol 1e-6, atol 1e-7; gradcheck at its float64 defaults.
"""

from __future__ import annotations

import math

import pytest
import torch
from test_losses import o_cos, o_distance

from minilm import losses as L


def o_contrastive(a, b, y, distance, margin):
    total = 0.0
    for u, v, t in zip(a, b, y):
        d = o_distance(u, v, distance)
        total += 0.5 * (t * d * d + (1 - t) * max(margin - d, 0.0) ** 2)
    return total / len(a)


def o_online_contrastive(a, b, y, distance, margin):
    d = [o_distance(u, v, distance) for u, v in zip(a, b)]
    pos = [x for x, t in zip(d, y) if t == 1]
    neg = [x for x, t in zip(d, y) if t == 0]
    neg_threshold = max(pos) if pos else sum(neg) / len(neg)
    pos_threshold = min(neg) if neg else sum(pos) / len(pos)
    return sum(x * x for x in pos if x > pos_threshold) + sum(max(margin - x, 0) ** 2 for x in neg if x < neg_threshold)


def o_cosine_similarity(a, b, y):
    return sum((o_cos(u, v) - t) ** 2 for u, v, t in zip(a, b, y)) / len(a)


def o_angle_similarity(u, v):
    if len(u) % 2:
        u, v = u + [0.0], v + [0.0]
    nu, nv = max(math.sqrt(sum(x * x for x in u)), 1e-12), max(math.sqrt(sum(x * x for x in v)), 1e-12)
    u, v = [x / nu for x in u], [x / nv for x in v]
    h = len(u) // 2
    # the complex product (u_re + i u_im) * conj(v_re + i v_im) summed: Re = cos, and the sine term
    re = sum(u[k] * v[k] + u[h + k] * v[h + k] for k in range(h))
    im = sum(u[h + k] * v[k] - u[k] * v[h + k] for k in range(h))
    return abs(re + im)


def o_angle(a, b, scores, scale):
    s = [scale * o_angle_similarity(u, v) for u, v in zip(a, b)]
    n = len(s)
    return math.log(1 + sum(math.exp(s[i] - s[j]) for i in range(n) for j in range(n) if scores[i] < scores[j]))


def _emb(n, d=6, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _close(ours, expected):
    assert torch.isfinite(ours)
    assert ours.item() == pytest.approx(expected, rel=1e-6, abs=1e-7)


LABELS = {
    "mixed": [1, 0, 0, 1, 1, 0, 1],
    "all_positive": [1] * 7,
    "all_negative": [0] * 7,
    "one_each": [1, 0, 0, 0, 0, 0, 0],
}


@pytest.mark.parametrize("labels", list(LABELS))
@pytest.mark.parametrize("distance", ["cosine", "euclidean", "manhattan"])
@pytest.mark.parametrize("n", [1, 2, 7])
def test_contrastive_losses_match_oracle(n, distance, labels):
    a, b = _emb(n, seed=1), _emb(n, seed=2)
    if n > 1:
        b[1] = a[1]  # zero distance
        a[0] = 0  # zero vector
    y = torch.tensor(LABELS[labels][:n])
    margin = 0.5 if distance == "cosine" else 3.0
    _close(
        L.contrastive_loss(a, b, y, distance=distance, margin=margin),
        o_contrastive(a.tolist(), b.tolist(), y.tolist(), distance, margin),
    )
    _close(
        L.online_contrastive_loss(a, b, y, distance=distance, margin=margin),
        o_online_contrastive(a.tolist(), b.tolist(), y.tolist(), distance, margin),
    )


def test_contrastive_soft_labels_and_bool():
    a, b = _emb(5, seed=3), _emb(5, seed=4)
    y = torch.tensor([0.2, 0.9, 0.0, 1.0, 0.5])  # weights, as sentence-transformers allows
    _close(L.contrastive_loss(a, b, y), o_contrastive(a.tolist(), b.tolist(), y.tolist(), "cosine", 0.5))
    yb = torch.tensor([True, False, True, True, False])
    _close(
        L.online_contrastive_loss(a, b, yb),
        o_online_contrastive(a.tolist(), b.tolist(), yb.int().tolist(), "cosine", 0.5),
    )


@pytest.mark.parametrize("n", [1, 2, 6])
def test_cosine_similarity_loss_matches_oracle(n):
    a, b = _emb(n, seed=5), _emb(n, seed=6)
    a[0] = 0
    y = torch.rand(n, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    _close(L.cosine_similarity_loss(a, b, y), o_cosine_similarity(a.tolist(), b.tolist(), y.tolist()))


@pytest.mark.parametrize("scores", [[0.1, 0.5, 0.3, 0.9, 0.0, 0.7], [1.0, 1.0, 0.0, 0.0, 1.0, 0.5], [2.0] * 6])
@pytest.mark.parametrize("d", [6, 7])  # odd widths get a zero dimension
@pytest.mark.parametrize("n", [1, 2, 6])
def test_angle_matches_oracle(n, d, scores):
    a, b = _emb(n, d, seed=7), _emb(n, d, seed=8)
    a[0] = 0
    s = torch.tensor(scores[:n])
    _close(L.angle_loss(a, b, s, scale=20.0), o_angle(a.tolist(), b.tolist(), s.tolist(), 20.0))


def _gradcheck(fn, *inputs):
    leaves = [t.clone().requires_grad_() for t in inputs]
    assert torch.autograd.gradcheck(fn, leaves)


@pytest.mark.parametrize("distance", ["cosine", "euclidean", "manhattan"])
def test_gradcheck_contrastive(distance):
    y = torch.tensor([1, 0, 0, 1, 1, 0])
    margin = 0.8 if distance == "cosine" else 4.0  # every negative inside the margin: all terms active
    _gradcheck(lambda a, b: L.contrastive_loss(a, b, y, distance=distance, margin=margin), _emb(6), _emb(6, seed=1))
    _gradcheck(
        lambda a, b: L.online_contrastive_loss(a, b, y, distance=distance, margin=margin), _emb(6), _emb(6, seed=1)
    )


def test_gradcheck_cosine_similarity_and_angle():
    y = torch.tensor([0.2, 0.9, 0.2, 0.5, 0.1])
    _gradcheck(lambda a, b: L.cosine_similarity_loss(a, b, y), _emb(5), _emb(5, seed=1))
    _gradcheck(lambda a, b: L.angle_loss(a, b, y, scale=5.0), _emb(5), _emb(5, seed=1))
    _gradcheck(lambda a, b: L.angle_loss(a, b, y, scale=5.0), _emb(5, 7), _emb(5, 7, seed=1))


def _x(n=4, d=3):
    return torch.randn(n, d)


PAIR_LOSSES = [L.contrastive_loss, L.online_contrastive_loss, L.cosine_similarity_loss, L.angle_loss]


@pytest.mark.parametrize("loss", PAIR_LOSSES, ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda f: f(_x(), _x(3), torch.ones(4)), ValueError, "embeddings_b"),  # mismatched rows
        (lambda f: f(_x(), _x(4, 2), torch.ones(4)), ValueError, "embeddings_b"),  # mismatched width
        (lambda f: f(torch.rand(4), torch.rand(4), torch.ones(4)), ValueError, "embeddings_a"),  # 1-D
        (lambda f: f(_x(0), _x(0), torch.ones(0)), ValueError, "embeddings_a"),  # empty batch
        (lambda f: f(_x(), _x(), torch.ones(3)), ValueError, "scores"),  # one score short
        (lambda f: f(_x(), _x(), torch.ones(4, 1)), ValueError, "scores"),  # 2-D scores
        (lambda f: f(_x(), _x(), torch.tensor([0, 1, float("nan"), 1])), ValueError, "scores"),
        (lambda f: f(_x(), _x(), [0, 1, 0, 1]), TypeError, "scores"),
        (lambda f: f(torch.ones(4, 3, dtype=torch.long), _x(), torch.ones(4)), TypeError, "embeddings_a"),
    ],
    ids=["rows", "width", "1-D", "empty", "scores length", "scores 2-D", "scores NaN", "scores list", "int"],
)
def test_bad_input_raises_naming_argument(loss, call, error, name):
    with pytest.raises(error, match=name):
        call(loss)


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda: L.contrastive_loss(_x(), _x(), torch.ones(4), distance="cos"), ValueError, "distance"),
        (lambda: L.contrastive_loss(_x(), _x(), torch.ones(4), margin="1"), TypeError, "margin"),
        (lambda: L.online_contrastive_loss(_x(), _x(), torch.tensor([0, 1, 2, 1])), ValueError, "scores"),
        (lambda: L.online_contrastive_loss(_x(), _x(), torch.ones(4), margin=float("inf")), ValueError, "margin"),
        (lambda: L.angle_loss(_x(), _x(), torch.ones(4), scale=0), ValueError, "scale"),
    ],
)
def test_bad_settings_raise_naming_argument(call, error, name):
    with pytest.raises(error, match=name):
        call()
