"""minilm.losses.regularizers (Global Orthogonal Regularization and the wrapper that adds it to a loss): float64 loop
oracle, gradcheck, bad input, the recipe keys. Parity with sentence-transformers is in
tests/parity/test_losses_vs_st_catalogue.py.

Tolerances: float64 values vs the oracle rtol 1e-6, atol 1e-7; gradcheck at its float64 defaults.
"""

from __future__ import annotations

import pytest
import torch
from test_losses import o_cos

from minilm import losses as L
from minilm.run.registry import check_loss_kwargs, make_loss


def o_gor(columns, mean_weight, second_moment_weight, aggregation):
    means, seconds = [], []
    for x in columns:
        b, d = len(x), len(x[0])
        sims = [o_cos(x[i], x[j]) for i in range(b) for j in range(b) if i != j]
        pairs = max(b * (b - 1), 1)
        means.append((sum(sims) / pairs) ** 2)
        seconds.append(max(sum(s * s for s in sims) / pairs - 1 / d, 0.0))
    agg = sum if aggregation == "sum" else (lambda v: sum(v) / len(v))
    return mean_weight * agg(means) + second_moment_weight * agg(seconds)


def _emb(n, d=6, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("aggregation", ["mean", "sum"])
@pytest.mark.parametrize("weights", [(1.0, 1.0), (0.5, 0.0), (0.0, 2.0)])
@pytest.mark.parametrize("n, columns", [(1, 1), (2, 2), (6, 3)])
def test_gor_matches_oracle(n, columns, weights, aggregation):
    xs = [_emb(n, seed=s) for s in range(columns)]
    xs[0][0] = xs[0][-1]  # a duplicate row
    value, parts = L.global_orthogonal_regularization(
        *xs, mean_weight=weights[0], second_moment_weight=weights[1], aggregation=aggregation
    )
    expected = o_gor([x.tolist() for x in xs], *weights, aggregation)
    assert value.item() == pytest.approx(expected, rel=1e-6, abs=1e-7)
    assert set(parts) == {k for k, w in zip(("gor_mean", "gor_second_moment"), weights) if w}


def test_wrapper_adds_the_regulariser_and_reports_it():
    a, p = _emb(5), _emb(5, seed=1)
    wrapped = L.with_global_orthogonal_regularization(L.multiple_negatives_ranking_loss, mean_weight=0.5)
    value, stats = wrapped(a, p, scale=10.0)
    expected = L.multiple_negatives_ranking_loss(a, p, scale=10.0) + o_gor([a.tolist(), p.tolist()], 0.5, 1.0, "mean")
    assert value.item() == pytest.approx(expected.item(), rel=1e-10)
    assert set(stats) == {"gor_mean", "gor_second_moment"}
    labels = torch.tensor([0, 0, 1, 1, 2])
    wrapped = L.with_global_orthogonal_regularization(L.batch_hard_triplet_loss, second_moment_weight=0.0)
    value, _ = wrapped(a, labels, margin=0.5)  # 1-D labels are not regularised
    expected = L.batch_hard_triplet_loss(a, labels, margin=0.5) + o_gor([a.tolist()], 1.0, 0.0, "mean")
    assert value.item() == pytest.approx(expected.item(), rel=1e-10)


def test_recipe_keys_switch_it_on():
    a, p = _emb(5), _emb(5, seed=1)
    check_loss_kwargs("mnrl", {"gor_mean_weight": 0.5, "gor_aggregation": "sum", "matryoshka_dims": [6, 3]})
    loss = make_loss("mnrl", {"scale": 10.0, "gor_mean_weight": 0.5})
    value, stats = loss(a, p)
    assert value.item() == pytest.approx(
        L.with_global_orthogonal_regularization(L.multiple_negatives_ranking_loss, mean_weight=0.5)(a, p, scale=10.0)[
            0
        ].item()
    )
    for kwargs, bad in [
        ({"gor_aggregation": "max"}, "aggregation"),
        ({"gor_mean_weight": "1"}, "mean_weight"),
        ({"gor_mean_weight": 0.0, "gor_second_moment_weight": 0.0}, "both 0"),
        ({"gor_weight": 1.0}, "gor_weight"),
    ]:
        with pytest.raises(ValueError, match=bad):
            check_loss_kwargs("mnrl", kwargs)


def test_gradcheck_gor():
    def fn(a, b):
        return L.global_orthogonal_regularization(a, b, aggregation="sum")[0]

    leaves = [_emb(5).requires_grad_(), _emb(5, seed=1).requires_grad_()]
    assert torch.autograd.gradcheck(fn, leaves)


def _x(n=4, d=3):
    return torch.randn(n, d)


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda: L.global_orthogonal_regularization(), TypeError, "at least one"),
        (lambda: L.global_orthogonal_regularization(_x(), _x(5)), ValueError, r"embeddings\[1\]"),
        (lambda: L.global_orthogonal_regularization(_x(0)), ValueError, r"embeddings\[0\]"),
        (lambda: L.global_orthogonal_regularization(torch.ones(4, 3, dtype=torch.long)), TypeError, r"embeddings\[0\]"),
        (lambda: L.global_orthogonal_regularization(_x(), similarity="l2"), ValueError, "similarity"),
        (lambda: L.with_global_orthogonal_regularization(L.cosent_loss, aggregation="max"), ValueError, "aggregation"),
        (lambda: L.with_global_orthogonal_regularization(L.cosent_loss, mean_weight=None), TypeError, "mean_weight"),
    ],
)
def test_bad_input_raises_naming_argument(call, error, name):
    with pytest.raises(error, match=name):
        call()
