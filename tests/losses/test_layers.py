"""minilm.losses.layers (AdaptiveLayer and Matryoshka2d over per-layer embeddings): float64 loop oracle, gradcheck,
bad input, layer choice. Parity with sentence-transformers (on a tiny real model's hidden states) is in
tests/parity/test_losses_vs_st_catalogue.py.

Tolerances: float64 values vs the oracle rtol 1e-6, atol 1e-7; gradcheck at its float64 defaults.
"""

from __future__ import annotations

import math
import random

import pytest
import torch
from test_losses import o_mnrl
from test_metric_learning import o_lse

from minilm import losses as L


def o_kl(final_rows, layer_rows, t):
    total = 0.0
    for f, x in zip(final_rows, layer_rows):
        log_p = [v / t - o_lse([w / t for w in f]) for v in f]
        log_q = [v / t - o_lse([w / t for w in x]) for v in x]
        total += sum(math.exp(lp) * (lp - lq) for lp, lq in zip(log_p, log_q))
    return total / len(final_rows)


def o_adaptive(loss, final, layers, last, prior, kl_weight, t, weighting):
    w = {"uniform": lambda i: 1.0, "log": lambda i: 1 / (1 + math.log(1 + i)), "linear": lambda i: 1 / (1 + i)}
    total = loss(final) * last
    for index, columns in layers.items():
        total += loss(columns) * w[weighting](index) / len(layers) * prior
        if t > 0:
            total += o_kl([r for c in final for r in c], [r for c in columns for r in c], t) * t * kl_weight
    return total


def _emb(n, d=6, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _mnrl_oracle(columns):
    return o_mnrl(*columns, scale=20.0, similarity="cosine", symmetric=False)


def _setup(n_layers=3, n=5):
    final = [_emb(n, seed=1), _emb(n, seed=2)]
    layers = {i: [_emb(n, seed=10 * i + 3), _emb(n, seed=10 * i + 4)] for i in range(n_layers)}
    return final, layers


@pytest.mark.parametrize(
    "settings",
    [
        dict(
            last_layer_weight=1.0,
            prior_layers_weight=1.0,
            kl_div_weight=1.0,
            kl_temperature=0.3,
            layer_weighting="uniform",
        ),
        dict(
            last_layer_weight=2.0, prior_layers_weight=0.5, kl_div_weight=3.0, kl_temperature=1.5, layer_weighting="log"
        ),
        dict(
            last_layer_weight=1.0,
            prior_layers_weight=1.0,
            kl_div_weight=1.0,
            kl_temperature=0.0,
            layer_weighting="linear",
        ),
    ],
)
@pytest.mark.parametrize("chosen", [[], [1], [0, 2]])
def test_adaptive_layer_matches_oracle(chosen, settings):
    final, layers = _setup()
    layers = {i: layers[i] for i in chosen}
    ours = L.adaptive_layer_loss(L.multiple_negatives_ranking_loss, final, layers, **settings)
    expected = o_adaptive(
        _mnrl_oracle,
        [c.tolist() for c in final],
        {i: [c.tolist() for c in cols] for i, cols in layers.items()},
        settings["last_layer_weight"],
        settings["prior_layers_weight"],
        settings["kl_div_weight"],
        settings["kl_temperature"],
        settings["layer_weighting"],
    )
    assert ours.item() == pytest.approx(expected, rel=1e-6, abs=1e-7)


def test_matryoshka_2d_is_adaptive_layer_of_matryoshka_and_targets_pass_through():
    final, layers = [_emb(6, 8, seed=1)], {0: [_emb(6, 8, seed=2)], 2: [_emb(6, 8, seed=3)]}
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    ours = L.matryoshka_2d_loss(
        L.batch_hard_triplet_loss,
        final,
        layers,
        dims=(8, 4),
        weights=(1.0, 0.5),
        targets={"labels": labels},
        kl_temperature=0.5,
    )
    expected = L.adaptive_layer_loss(
        L.matryoshka(L.batch_hard_triplet_loss, (8, 4), (1.0, 0.5)),
        final,
        layers,
        {"labels": labels},
        kl_temperature=0.5,
    )
    assert ours.item() == expected.item()


def test_choose_layers_as_sentence_transformers_does():
    assert L.choose_layers(7, 0) == L.choose_layers(7, -1) == L.choose_layers(7, 6) == [0, 1, 2, 3, 4, 5]
    picked = L.choose_layers(7, 2, random.Random(0))
    assert len(picked) == 2 and set(picked) <= set(range(6))
    random.seed(3)
    expected = random.sample(range(6), 1)
    random.seed(3)
    assert L.choose_layers(7, 1) == expected  # the same draw as sentence-transformers' random.sample


def test_gradcheck_adaptive_layer():
    """The KL target (the last layer's softmax) carries no gradient, by design as in sentence-transformers: gradcheck
    the loss w.r.t. the earlier layers with the last layer fixed, and check the last layer's gradient is that of
    last_layer_weight * loss(final) alone."""
    final, layers = _setup(2, 4)

    def inner(a, b):
        return L.multiple_negatives_ranking_loss(a, b, scale=5.0)

    def fn(l0, l1):
        return L.adaptive_layer_loss(
            inner, final, {0: [l0, l1], 1: layers[1]}, kl_temperature=0.7, layer_weighting="log"
        )

    assert torch.autograd.gradcheck(fn, [x.clone().requires_grad_() for x in layers[0]])
    leaves = [x.clone().requires_grad_() for x in final]
    total = L.adaptive_layer_loss(inner, leaves, layers, last_layer_weight=2.0, kl_temperature=0.7)
    for g, expected in zip(torch.autograd.grad(total, leaves), torch.autograd.grad(2.0 * inner(*leaves), leaves)):
        torch.testing.assert_close(g, expected, rtol=1e-12, atol=1e-14)


def _x(n=4, d=3):
    return torch.randn(n, d)


@pytest.mark.parametrize(
    "call, error, name",
    [
        (
            lambda: L.adaptive_layer_loss(L.multiple_negatives_ranking_loss, [_x(), _x()], {0: [_x()]}),
            ValueError,
            r"layers\[0\]",
        ),
        (
            lambda: L.adaptive_layer_loss(L.multiple_negatives_ranking_loss, [_x(), _x()], {1: [_x(), _x(5)]}),
            ValueError,
            r"layers\[1\]\[1\]",
        ),
        (
            lambda: L.adaptive_layer_loss(L.multiple_negatives_ranking_loss, [_x(), _x(3)], {}),
            ValueError,
            r"final\[1\]",
        ),
        (
            lambda: L.adaptive_layer_loss(L.multiple_negatives_ranking_loss, [_x(0), _x(0)], {}),
            ValueError,
            r"final\[0\]",
        ),
        (
            lambda: L.adaptive_layer_loss(L.multiple_negatives_ranking_loss, [_x(), _x()], {}, layer_weighting="exp"),
            ValueError,
            "layer_weighting",
        ),
        (
            lambda: L.adaptive_layer_loss(L.multiple_negatives_ranking_loss, [_x(), _x()], {}, kl_temperature=-1.0),
            ValueError,
            "kl_temperature",
        ),
        (
            lambda: L.adaptive_layer_loss(L.multiple_negatives_ranking_loss, [_x(), _x()], {}, last_layer_weight="1"),
            TypeError,
            "last_layer_weight",
        ),
        (
            lambda: L.matryoshka_2d_loss(L.multiple_negatives_ranking_loss, [_x(), _x()], {}, dims=(8,)),
            ValueError,
            "dims",
        ),
    ],
)
def test_bad_input_raises_naming_argument(call, error, name):
    with pytest.raises(error, match=name):
        call()
