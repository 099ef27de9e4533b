"""minilm.losses.in_batch beyond the classic MNRL (whose oracle is in tests/losses/test_losses.py): the directions,
partition modes and hardness weighting of sentence-transformers 6.2, and MegaBatchMargin. Float64 loop oracles,
gradcheck, bad input; reference parity in tests/parity/test_losses_vs_st_catalogue.py.

Tolerances: float64 values vs the oracle rtol 1e-6, atol 1e-7; gradcheck at its float64 defaults.
"""

from __future__ import annotations

import math

import pytest
import torch
from test_losses import o_cos

from minilm import losses as L


def o_dot(u, v):
    return sum(x * y for x, y in zip(u, v))


def o_logsumexp(xs):
    xs = [x for x in xs if x != -math.inf]
    top = max(xs)
    return top + math.log(sum(math.exp(x - top) for x in xs))


def o_directed_mnrl(
    anchors,
    positives,
    *negatives,
    scale,
    similarity,
    directions,
    partition_mode,
    hardness_mode=None,
    hardness_strength=0.0,
):
    sim = o_cos if similarity == "cosine" else o_dot
    b = len(anchors)
    docs = [(j, d) for column in (positives, *negatives) for j, d in enumerate(column)]  # (owner row, doc)
    total = 0.0
    for i in range(b):
        pools = {}
        q2d = []
        for k, (j, d) in enumerate(docs):
            s = sim(anchors[i], d)
            is_positive = k == i
            own = j == i
            raise_it = (
                hardness_mode is not None
                and hardness_strength > 0
                and (
                    (hardness_mode == "in_batch_negatives" and not own)
                    or (hardness_mode == "hard_negatives" and own and k >= b)
                    or (hardness_mode == "all_negatives" and not is_positive)
                )
            )
            q2d.append(scale * s + (hardness_strength * s if raise_it else 0.0))
        pools["query_to_doc"] = q2d
        if "query_to_query" in directions:
            pools["query_to_query"] = [scale * sim(anchors[i], anchors[j]) for j in range(b) if j != i]
        if "doc_to_query" in directions:
            pools["doc_to_query"] = [scale * sim(positives[i], anchors[j]) for j in range(b)]
        if "doc_to_doc" in directions:
            pools["doc_to_doc"] = [scale * sim(positives[i], d) for j, d in docs if j != i]
        pools = {k: v for k, v in pools.items() if v}  # a batch of one has no query_to_query / doc_to_doc entries
        if partition_mode == "joint":
            log_z = o_logsumexp([x for pool in pools.values() for x in pool])
        else:
            log_z = sum(o_logsumexp(pool) for pool in pools.values()) / len(pools)
        total += log_z - q2d[i]
    return total / b


def o_mega_batch_margin(anchors, positives, positive_margin, negative_margin):
    total = 0.0
    for i, a in enumerate(anchors):
        hardest = max(o_cos(a, p) for j, p in enumerate(positives) if j != i) if len(anchors) > 1 else -math.inf
        total += max(positive_margin - o_cos(a, positives[i]), 0.0) + max(hardest - negative_margin, 0.0)
    return total / len(anchors)


def _emb(n, d=6, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _close(ours, expected):
    assert torch.isfinite(ours)
    assert ours.item() == pytest.approx(expected, rel=1e-6, abs=1e-7)


DIRECTION_SETS = [
    (("query_to_doc",), "per_direction"),
    (("query_to_doc", "query_to_query"), "joint"),
    (("query_to_doc", "doc_to_query"), "joint"),
    (("query_to_doc", "doc_to_query"), "per_direction"),
    (("query_to_doc", "doc_to_doc"), "joint"),
    (("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc"), "joint"),
]


@pytest.mark.parametrize("n_negatives", [0, 2])
@pytest.mark.parametrize("similarity", ["cosine", "dot"])
@pytest.mark.parametrize("directions, partition_mode", DIRECTION_SETS)
@pytest.mark.parametrize("n", [1, 2, 5])
def test_directions_match_oracle(n, directions, partition_mode, similarity, n_negatives):
    cols = [_emb(n, seed=s) for s in range(2 + n_negatives)]
    if n > 1:
        cols[1][1] = cols[0][1]  # anchor equal to its positive
        cols[0][0] = 0  # zero anchor
    scale = 20.0 if similarity == "cosine" else 0.5
    kwargs = dict(scale=scale, similarity=similarity, directions=directions, partition_mode=partition_mode)
    ours = L.multiple_negatives_ranking_loss(*cols, **kwargs)
    _close(ours, o_directed_mnrl(*[c.tolist() for c in cols], **kwargs))


@pytest.mark.parametrize("hardness_mode", ["in_batch_negatives", "hard_negatives", "all_negatives"])
@pytest.mark.parametrize("directions, partition_mode", DIRECTION_SETS[:4])
@pytest.mark.parametrize("n_negatives", [0, 1, 2])
def test_hardness_matches_oracle(n_negatives, directions, partition_mode, hardness_mode):
    cols = [_emb(5, seed=s) for s in range(2 + n_negatives)]
    kwargs = dict(
        scale=20.0,
        similarity="cosine",
        directions=directions,
        partition_mode=partition_mode,
        hardness_mode=hardness_mode,
        hardness_strength=3.0,
    )
    _close(L.multiple_negatives_ranking_loss(*cols, **kwargs), o_directed_mnrl(*[c.tolist() for c in cols], **kwargs))


def test_symmetric_is_a_direction_set():
    a, p = _emb(6, seed=1), _emb(6, seed=2)
    by_flag = L.multiple_negatives_ranking_loss(a, p, symmetric=True)
    by_directions = L.multiple_negatives_ranking_loss(
        a, p, directions=["query_to_doc", "doc_to_query"], partition_mode="per_direction"
    )
    assert by_flag.item() == pytest.approx(by_directions.item(), rel=1e-12)
    with_hardness = L.multiple_negatives_ranking_loss(
        a, p, symmetric=True, hardness_mode="in_batch_negatives", hardness_strength=2.0
    )
    expected = o_directed_mnrl(
        a.tolist(),
        p.tolist(),
        scale=20.0,
        similarity="cosine",
        directions=("query_to_doc", "doc_to_query"),
        partition_mode="per_direction",
        hardness_mode="in_batch_negatives",
        hardness_strength=2.0,
    )
    _close(with_hardness, expected)


def test_hardness_strength_zero_changes_nothing():
    cols = [_emb(5, seed=s) for s in range(3)]
    plain = L.multiple_negatives_ranking_loss(*cols)
    assert L.multiple_negatives_ranking_loss(*cols, hardness_mode="all_negatives").item() == plain.item()


@pytest.mark.parametrize("n", [1, 2, 6])
def test_mega_batch_margin_matches_oracle(n):
    a, p = _emb(n, seed=3), _emb(n, seed=4)
    if n > 1:
        a[1] = 0
    _close(
        L.mega_batch_margin_loss(a, p, positive_margin=0.8, negative_margin=0.3),
        o_mega_batch_margin(a.tolist(), p.tolist(), 0.8, 0.3),
    )


def _gradcheck(fn, *inputs):
    leaves = [t.clone().requires_grad_() for t in inputs]
    assert torch.autograd.gradcheck(fn, leaves)


@pytest.mark.parametrize("directions, partition_mode", DIRECTION_SETS)
def test_gradcheck_directions(directions, partition_mode):
    def fn(*c):
        return L.multiple_negatives_ranking_loss(*c, scale=5.0, directions=directions, partition_mode=partition_mode)

    _gradcheck(fn, _emb(4), _emb(4, seed=1), _emb(4, seed=2))


def t_hardness_mnrl(anchors, positives, negatives, held, scale, strength, mode):
    """query_to_doc MNRL written row by row in torch, its hardness penalty computed from ``held`` (constant inputs):
    the function whose gradient the stop-gradient penalty must give."""
    b = len(anchors)
    docs = [(j, d) for column in (positives, negatives) for j, d in enumerate(column)]
    held_docs = [d for column in held[1:] for d in column]
    cos = torch.nn.functional.cosine_similarity
    total = 0
    for i in range(b):
        logits = []
        for k, (j, d) in enumerate(docs):
            raise_it = (
                (mode == "in_batch_negatives" and j != i)
                or (mode == "hard_negatives" and j == i and k >= b)
                or (mode == "all_negatives" and k != i)
            )
            penalty = strength * cos(held[0][i], held_docs[k], dim=0) if raise_it else 0
            logits.append(scale * cos(anchors[i], d, dim=0) + penalty)
        total = total + torch.stack(logits).logsumexp(0) - logits[i]
    return total / b


@pytest.mark.parametrize("hardness_mode", ["in_batch_negatives", "hard_negatives", "all_negatives"])
def test_hardness_gradient_holds_the_penalty_constant(hardness_mode):
    """The penalty carries no gradient (sentence-transformers detaches it), so gradcheck applies to the loss with the
    penalty frozen at the evaluation point: gradcheck that torch loop oracle, then match our autograd gradient to it."""
    cols = [_emb(4, seed=s) for s in range(3)]
    held = [c.clone() for c in cols]

    def oracle(a, p, n):
        return t_hardness_mnrl(a, p, n, held, 5.0, 2.0, hardness_mode)

    _gradcheck(oracle, *cols)
    leaves = [c.clone().requires_grad_() for c in cols]
    ours = L.multiple_negatives_ranking_loss(*leaves, scale=5.0, hardness_mode=hardness_mode, hardness_strength=2.0)
    expected = oracle(*leaves)
    assert ours.item() == pytest.approx(expected.item(), rel=1e-12)
    for g1, g2 in zip(torch.autograd.grad(ours, leaves), torch.autograd.grad(expected, leaves)):
        torch.testing.assert_close(g1, g2, rtol=1e-10, atol=1e-12)


def test_gradcheck_mega_batch_margin():
    _gradcheck(
        lambda a, p: L.mega_batch_margin_loss(a, p, positive_margin=0.9, negative_margin=-0.5), _emb(5), _emb(5, seed=1)
    )


def _x(n=4, d=3):
    return torch.randn(n, d)


BAD_CALLS = {
    "no query_to_doc": (
        lambda: L.multiple_negatives_ranking_loss(_x(), _x(), directions=["doc_to_query"]),
        ValueError,
        "query_to_doc",
    ),
    "unknown direction": (
        lambda: L.multiple_negatives_ranking_loss(_x(), _x(), directions=["query_to_doc", "q2q"]),
        ValueError,
        "directions",
    ),
    "directions string": (
        lambda: L.multiple_negatives_ranking_loss(_x(), _x(), directions="query_to_doc"),
        TypeError,
        "directions",
    ),
    "empty directions": (lambda: L.multiple_negatives_ranking_loss(_x(), _x(), directions=[]), TypeError, "directions"),
    "repeated direction": (
        lambda: L.multiple_negatives_ranking_loss(_x(), _x(), directions=["query_to_doc", "query_to_doc"]),
        ValueError,
        "directions",
    ),
    "partition mode": (
        lambda: L.multiple_negatives_ranking_loss(_x(), _x(), partition_mode="split"),
        ValueError,
        "partition_mode",
    ),
    "per_direction with query_to_query": (
        lambda: L.multiple_negatives_ranking_loss(
            _x(), _x(), directions=["query_to_doc", "query_to_query"], partition_mode="per_direction"
        ),
        ValueError,
        "partition_mode",
    ),
    "symmetric and directions": (
        lambda: L.multiple_negatives_ranking_loss(
            _x(), _x(), symmetric=True, directions=["query_to_doc", "doc_to_query"]
        ),
        ValueError,
        "symmetric",
    ),
    "hardness mode": (
        lambda: L.multiple_negatives_ranking_loss(_x(), _x(), hardness_mode="hard"),
        ValueError,
        "hardness_mode",
    ),
    "negative strength": (
        lambda: L.multiple_negatives_ranking_loss(_x(), _x(), hardness_strength=-1.0),
        ValueError,
        "hardness_strength",
    ),
    "strength string": (
        lambda: L.multiple_negatives_ranking_loss(_x(), _x(), hardness_mode="all_negatives", hardness_strength="1"),
        TypeError,
        "hardness_strength",
    ),
    "rows with directions": (
        lambda: L.multiple_negatives_ranking_loss(_x(), _x(3), directions=["query_to_doc", "doc_to_query"]),
        ValueError,
        "positives",
    ),
    "empty with hardness": (
        lambda: L.multiple_negatives_ranking_loss(_x(0), _x(0), hardness_mode="all_negatives"),
        ValueError,
        "anchors",
    ),
    "mega batch rows": (lambda: L.mega_batch_margin_loss(_x(), _x(5)), ValueError, "positives"),
    "mega batch empty": (lambda: L.mega_batch_margin_loss(_x(0), _x(0)), ValueError, "anchors"),
    "mega batch dtype": (
        lambda: L.mega_batch_margin_loss(torch.ones(4, 3, dtype=torch.int64), _x()),
        TypeError,
        "anchors",
    ),
    "mega batch margin": (
        lambda: L.mega_batch_margin_loss(_x(), _x(), positive_margin=None),
        TypeError,
        "positive_margin",
    ),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_input_raises_naming_argument(case):
    call, error, name = BAD_CALLS[case]
    with pytest.raises(error, match=name):
        call()
