"""minilm.losses against brute-force oracles (Python loops, float64), gradcheck, and bad input.

Tolerances: float64 loss values vs the oracle rtol 1e-6, atol 1e-7 (the Gram-matrix euclidean distance of two equal
rows is ~1e-8, not 0); gradcheck at its float64 defaults (eps 1e-6, atol 1e-5, rtol 1e-3).
"""

from __future__ import annotations

import math

import pytest
import torch

from minilm import losses as L

# ---------------------------------------------------------------------------------------------------------------------
# oracles: one triplet / pair at a time, plain Python floats


def _norm(u):
    return math.sqrt(sum(x * x for x in u))


def o_distance(u, v, name):
    if name == "euclidean":
        return math.sqrt(sum((x - y) ** 2 for x, y in zip(u, v)))
    if name == "manhattan":
        return sum(abs(x - y) for x, y in zip(u, v))
    return 1.0 - o_cos(u, v)


def o_cos(u, v):  # a zero vector has cosine 0 with everything (torch's normalize eps)
    return sum(x * y for x, y in zip(u, v)) / (max(_norm(u), 1e-12) * max(_norm(v), 1e-12))


def o_hinge(x, margin, soft):
    return math.log1p(math.exp(x)) if soft else max(x + margin, 0.0)


def o_triplet(a, p, n, distance, margin):
    total = sum(max(o_distance(x, y, distance) - o_distance(x, z, distance) + margin, 0) for x, y, z in zip(a, p, n))
    return total / len(a)


def o_batch_hard(x, labels, margin, distance, soft):
    total = 0.0
    for i in range(len(x)):
        row = [o_distance(x[i], x[j], distance) for j in range(len(x))]
        pos = [row[j] for j in range(len(x)) if j != i and labels[j] == labels[i]]
        neg = [row[j] for j in range(len(x)) if labels[j] != labels[i]]
        hardest_pos = max(pos) if pos else 0.0  # defined: no positive reads as distance 0
        hardest_neg = min(neg) if neg else max(row) + min(row)  # defined: no negative -> row max + row min
        total += o_hinge(hardest_pos - hardest_neg, margin, soft)
    return total / len(x)


def o_semi_hard(x, labels, margin, distance, soft):
    total, pairs = 0.0, 0
    for i in range(len(x)):
        row = [o_distance(x[i], x[j], distance) for j in range(len(x))]
        neg = [row[k] for k in range(len(x)) if labels[k] != labels[i]]
        for j in range(len(x)):
            if j == i or labels[j] != labels[i]:
                continue
            farther = [d for d in neg if d > row[j]]
            semi = min(farther) if farther else (max(neg) if neg else min(row))
            total += o_hinge(row[j] - semi, margin, soft)
            pairs += 1
    return total / pairs if pairs else 0.0


def o_batch_all(x, labels, margin, distance, soft):
    d = [[o_distance(u, v, distance) for v in x] for u in x]
    total, count = 0.0, 0
    for a in range(len(x)):
        for p in range(len(x)):
            for n in range(len(x)):
                if a != p and labels[a] == labels[p] and labels[n] != labels[a]:
                    loss = o_hinge(d[a][p] - d[a][n], margin, soft)
                    total += loss
                    count += loss > 1e-16
    return total / count if count else 0.0


def o_mnrl(anchors, positives, *negatives, scale, similarity, symmetric):
    sim = o_cos if similarity == "cosine" else (lambda u, v: sum(x * y for x, y in zip(u, v)))

    def cross_entropy(rows, candidates):
        total = 0.0
        for i, u in enumerate(rows):
            logits = [scale * sim(u, c) for c in candidates]
            top = max(logits)
            total += top + math.log(sum(math.exp(z - top) for z in logits)) - logits[i]
        return total / len(rows)

    forward = cross_entropy(anchors, [c for column in (positives, *negatives) for c in column])
    return (forward + cross_entropy(positives, anchors)) / 2 if symmetric else forward


def o_cosent(a, b, scores, scale):
    s = [scale * o_cos(u, v) for u, v in zip(a, b)]
    n = len(s)
    return math.log(1 + sum(math.exp(s[i] - s[j]) for i in range(n) for j in range(n) if scores[i] < scores[j]))


# ---------------------------------------------------------------------------------------------------------------------
# inputs, including the edge cases


def _emb(n, d=6, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _label_cases():
    x = _emb(9)
    zero = x.clone()
    zero[[1, 4]] = 0  # zero-vector embeddings
    dup = x.clone()
    dup[3] = dup[0]  # equal embeddings -> equal distances, zero distance between different rows
    eye = torch.eye(6, dtype=torch.float64)  # every pairwise distance equal
    return {
        "random": (x, torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2])),
        "duplicate_labels_no_positive": (x, torch.tensor([0, 0, 0, 1, 1, 5, 2, 2, 7])),
        "one_class": (x, torch.zeros(9, dtype=torch.long)),
        "all_distinct": (x, torch.arange(9)),
        "batch_of_1": (x[:1], torch.tensor([3])),
        "batch_of_2_same": (x[:2], torch.tensor([1, 1])),
        "batch_of_2_diff": (x[:2], torch.tensor([1, 2])),
        "zero_vectors": (zero, torch.tensor([0, 0, 1, 1, 0, 1, 2, 2, 2])),
        "duplicate_rows": (dup, torch.tensor([0, 1, 1, 0, 1, 2, 2, 0, 1])),
        "equal_distances": (eye, torch.tensor([0, 0, 1, 1, 2, 2])),
        "bool_labels": (x[:5], torch.tensor([True, False, True, True, False])),
    }


LABEL_CASES = _label_cases()
BATCH_LOSSES = [
    (L.batch_hard_triplet_loss, o_batch_hard),
    (L.batch_semi_hard_triplet_loss, o_semi_hard),
    (L.batch_all_triplet_loss, o_batch_all),
]


def _close(ours, expected):
    assert torch.isfinite(ours)
    assert ours.item() == pytest.approx(expected, rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("case", list(LABEL_CASES))
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("loss, oracle", BATCH_LOSSES, ids=["hard", "semi_hard", "all"])
def test_batch_triplet_losses_match_oracle(loss, oracle, soft, distance, case):
    x, labels = LABEL_CASES[case]
    margin = 0.7 if distance == "cosine" else 2.5
    x = x.clone().requires_grad_()
    ours = loss(x, labels, margin=margin, distance=distance, soft_margin=soft)
    _close(ours, oracle(x.tolist(), labels.tolist(), margin, distance, soft))
    (grad,) = torch.autograd.grad(ours, x)
    assert torch.isfinite(grad).all()  # no NaN from the square root at zero distance


@pytest.mark.parametrize("distance", ["euclidean", "cosine", "manhattan"])
@pytest.mark.parametrize("n", [1, 2, 7])
def test_triplet_loss_matches_oracle(distance, n):
    a, p, q = _emb(n, seed=1), _emb(n, seed=2), _emb(n, seed=3)
    p[0] = a[0]  # zero distance: gradient must stay finite
    q[-1] = 0  # a zero vector
    leaves = [t.clone().requires_grad_() for t in (a, p, q)]
    ours = L.triplet_loss(*leaves, distance=distance, margin=1.5)
    _close(ours, o_triplet(a.tolist(), p.tolist(), q.tolist(), distance, 1.5))
    assert all(torch.isfinite(g).all() for g in torch.autograd.grad(ours, leaves))


def test_triplet_uses_true_distances():
    # negative farther than positive -> zero loss (sentence-transformers 5.0-5.1 had the sign flipped)
    a, p, n = torch.zeros(1, 2), torch.tensor([[1.0, 0]]), torch.tensor([[10.0, 0]])
    for distance in ("euclidean", "manhattan"):
        assert L.triplet_loss(a, p, n, distance=distance, margin=1.0).item() == 0.0


@pytest.mark.parametrize("n_negatives", [0, 2])
@pytest.mark.parametrize("similarity", ["cosine", "dot"])
@pytest.mark.parametrize("symmetric", [False, True])
@pytest.mark.parametrize("n", [1, 2, 6])
def test_mnrl_matches_oracle(n, symmetric, similarity, n_negatives):
    cols = [_emb(n, seed=s) for s in range(2 + n_negatives)]
    if n > 1:
        cols[1][1] = cols[0][1]  # anchor equal to its positive
        cols[0][0] = 0  # zero anchor
    scale = 20.0 if similarity == "cosine" else 0.5
    ours = L.multiple_negatives_ranking_loss(*cols, scale=scale, similarity=similarity, symmetric=symmetric)
    _close(ours, o_mnrl(*[c.tolist() for c in cols], scale=scale, similarity=similarity, symmetric=symmetric))


@pytest.mark.parametrize(
    "scores",
    [
        [0.1, 0.5, 0.3, 0.9, 0.0, 0.7],
        [1.0, 1.0, 0.0, 0.0, 1.0, 0.5],  # ties form no pair
        [2.0] * 6,  # all tied -> log(1) = 0
        [3, 1, 2, 0, 5, 4],  # integer scores
    ],
)
@pytest.mark.parametrize("n", [1, 2, 6])
def test_cosent_matches_oracle(scores, n):
    a, b = _emb(n, seed=4), _emb(n, seed=5)
    a[0] = 0
    s = torch.tensor(scores[:n])
    _close(L.cosent_loss(a, b, s, scale=20.0), o_cosent(a.tolist(), b.tolist(), s.tolist(), 20.0))


def test_matryoshka_matches_oracle():
    x, labels = LABEL_CASES["random"]
    a, p = _emb(5, 8, seed=6), _emb(5, 8, seed=7)
    dims, weights = (8, 4, 2), (1.0, 0.5, 2.0)

    def shrink(t, d):
        return torch.nn.functional.normalize(t[:, :d], dim=-1).tolist()

    wrapped = L.matryoshka(L.multiple_negatives_ranking_loss, dims, weights)
    expected = sum(
        w * o_mnrl(shrink(a, d), shrink(p, d), scale=20.0, similarity="cosine", symmetric=False)
        for d, w in zip(dims, weights)
    )
    _close(wrapped(a, p), expected)
    wrapped = L.matryoshka(L.batch_hard_triplet_loss, dims=(6, 3))  # labels (1-D) pass through untruncated
    expected = sum(o_batch_hard(shrink(x, d), labels.tolist(), 0.5, "euclidean", False) for d in (6, 3))
    _close(wrapped(x, labels, margin=0.5), expected)
    assert wrapped.__name__ == "batch_hard_triplet_loss"


# ---------------------------------------------------------------------------------------------------------------------
# gradcheck (float64): each loss is differentiable where it should be


def _gradcheck(fn, *inputs):
    leaves = [t.clone().requires_grad_() for t in inputs]
    assert torch.autograd.gradcheck(fn, leaves)


@pytest.mark.parametrize("distance", ["euclidean", "cosine", "manhattan"])
def test_gradcheck_triplet(distance):
    fn = lambda a, p, n: L.triplet_loss(a, p, n, distance=distance, margin=1.0)  # noqa: E731
    _gradcheck(fn, _emb(4), _emb(4, seed=1), _emb(4, seed=2))


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
@pytest.mark.parametrize("loss", [b[0] for b in BATCH_LOSSES], ids=["hard", "semi_hard", "all"])
def test_gradcheck_batch_triplets(loss, distance, soft):
    labels = torch.tensor([0, 1, 0, 1, 2, 2, 0])
    margin = 0.5 if distance == "cosine" else 2.0
    _gradcheck(lambda x: loss(x, labels, margin=margin, distance=distance, soft_margin=soft), _emb(7))


@pytest.mark.parametrize("similarity, symmetric", [("cosine", False), ("dot", False), ("cosine", True)])
def test_gradcheck_mnrl(similarity, symmetric):
    def fn(*c):
        return L.multiple_negatives_ranking_loss(*c, scale=5.0, similarity=similarity, symmetric=symmetric)

    _gradcheck(fn, _emb(4), _emb(4, seed=1), _emb(4, seed=2))


def test_gradcheck_cosent_and_matryoshka():
    scores = torch.tensor([0.2, 0.9, 0.2, 0.5, 0.1])
    _gradcheck(lambda a, b: L.cosent_loss(a, b, scores, scale=5.0), _emb(5), _emb(5, seed=1))
    wrapped = L.matryoshka(L.multiple_negatives_ranking_loss, dims=(6, 3))
    _gradcheck(wrapped, _emb(4), _emb(4, seed=1))


# ---------------------------------------------------------------------------------------------------------------------
# bad input: one clear error naming the argument


def _x(n=4, d=3):
    return torch.randn(n, d)


BAD_CALLS = {
    "batch mismatch triplet": (lambda: L.triplet_loss(_x(), _x(), _x(5)), ValueError, "negative"),
    "batch mismatch mnrl": (lambda: L.multiple_negatives_ranking_loss(_x(), _x(3)), ValueError, "positives"),
    "dim mismatch negatives": (
        lambda: L.multiple_negatives_ranking_loss(_x(), _x(), _x(4, 2)),
        ValueError,
        r"hard_negatives\[0\]",
    ),
    "batch mismatch cosent": (lambda: L.cosent_loss(_x(), _x(2), torch.rand(4)), ValueError, "embeddings_b"),
    "labels length": (lambda: L.batch_hard_triplet_loss(_x(), torch.tensor([0, 1, 0])), ValueError, "labels"),
    "labels 2-D": (lambda: L.batch_all_triplet_loss(_x(), torch.zeros(4, 1, dtype=torch.long)), ValueError, "labels"),
    "labels dtype": (lambda: L.batch_semi_hard_triplet_loss(_x(), torch.tensor([0.0, 1, 0, 1])), TypeError, "labels"),
    "labels not tensor": (lambda: L.batch_hard_triplet_loss(_x(), [0, 1, 0, 1]), TypeError, "labels"),
    "scores length": (lambda: L.cosent_loss(_x(), _x(), torch.rand(3)), ValueError, "scores"),
    "scores NaN": (lambda: L.cosent_loss(_x(), _x(), torch.tensor([0.1, float("nan"), 0, 1])), ValueError, "scores"),
    "unknown distance": (lambda: L.triplet_loss(_x(), _x(), _x(), distance="cosin"), ValueError, "distance"),
    "manhattan matrix": (
        lambda: L.batch_hard_triplet_loss(_x(), torch.arange(4), distance="manhattan"),
        ValueError,
        "distance",
    ),
    "unknown similarity": (
        lambda: L.multiple_negatives_ranking_loss(_x(), _x(), similarity="l2"),
        ValueError,
        "similarity",
    ),
    "NaN embeddings": (
        lambda: L.batch_hard_triplet_loss(torch.full((3, 2), float("nan")), torch.arange(3)),
        ValueError,
        "embeddings",
    ),
    "inf embeddings": (lambda: L.triplet_loss(_x(), _x().fill_(float("inf")), _x()), ValueError, "positive"),
    "int embeddings": (
        lambda: L.cosent_loss(torch.ones(4, 3, dtype=torch.long), _x(), torch.rand(4)),
        TypeError,
        "embeddings_a",
    ),
    "1-D embeddings": (lambda: L.triplet_loss(torch.rand(4), torch.rand(4), torch.rand(4)), ValueError, "anchor"),
    "empty batch": (lambda: L.multiple_negatives_ranking_loss(_x(0), _x(0)), ValueError, "anchors"),
    "list embeddings": (lambda: L.triplet_loss([[0.0]], _x(), _x()), TypeError, "anchor"),
    "scale zero": (lambda: L.multiple_negatives_ranking_loss(_x(), _x(), scale=0), ValueError, "scale"),
    "margin string": (lambda: L.triplet_loss(_x(), _x(), _x(), margin="1"), TypeError, "margin"),
    "soft_margin string": (
        lambda: L.batch_hard_triplet_loss(_x(), torch.arange(4), soft_margin="yes"),
        TypeError,
        "soft_margin",
    ),
    "matryoshka dims too big": (
        lambda: L.matryoshka(L.triplet_loss, dims=(8, 4))(_x(), _x(), _x()),
        ValueError,
        "dims",
    ),
    "matryoshka weights": (lambda: L.matryoshka(L.triplet_loss, dims=(2,), weights=(1, 2)), ValueError, "weights"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_input_raises_naming_argument(case):
    call, error, name = BAD_CALLS[case]
    with pytest.raises(error, match=name):
        call()


def test_half_precision_is_computed_in_float32():
    x = torch.randn(6, 4).half()
    out = L.batch_hard_triplet_loss(x, torch.tensor([0, 0, 1, 1, 2, 2]))
    assert out.dtype == torch.float32
    assert out.item() == pytest.approx(L.batch_hard_triplet_loss(x.float(), torch.tensor([0, 0, 1, 1, 2, 2])).item())


# ---------------------------------------------------------------------------------------------------------------------
# report=True: the same loss, plus statistics (checked against loop oracles, float64)


def o_hardest(x, labels, distance):
    """Per anchor (hardest positive distance, hardest negative distance), with the miners' fallbacks."""
    out = []
    for i in range(len(x)):
        row = [o_distance(x[i], x[j], distance) for j in range(len(x))]
        pos = [row[j] for j in range(len(x)) if j != i and labels[j] == labels[i]]
        neg = [row[j] for j in range(len(x)) if labels[j] != labels[i]]
        out.append((max(pos) if pos else 0.0, min(neg) if neg else max(row) + min(row)))
    return out


def o_active_fraction(x, labels, margin, distance, soft, loss):
    """Fraction of the triplets each batch loss averages over that contribute (hinge argument > 0)."""
    d = [[o_distance(u, v, distance) for v in x] for u in x]

    def active(gap):
        return gap > 0 if soft else gap + margin > 0

    if loss == "hard":
        return sum(active(hp - hn) for hp, hn in o_hardest(x, labels, distance)) / len(x)
    hits = total = 0
    for a in range(len(x)):
        neg = [d[a][n] for n in range(len(x)) if labels[n] != labels[a]]
        for p in range(len(x)):
            if p == a or labels[p] != labels[a]:
                continue
            if loss == "semi_hard":
                farther = [v for v in neg if v > d[a][p]]
                semi = min(farther) if farther else (max(neg) if neg else min(d[a]))
                hits, total = hits + active(d[a][p] - semi), total + 1
            else:  # all: a triplet counts when its loss exceeds 1e-16, out of all valid triplets
                for v in neg:
                    hits, total = hits + (o_hinge(d[a][p] - v, margin, soft) > 1e-16), total + 1
    return hits / total if total else 0.0


# Cases without ties at the hinge: at a tie, "active" hangs on the last bit of a distance. With no negative, the
# miners' fallback makes batch-hard's gap minus the self-distance (~1e-16 for cosine), a tie for the soft margin.
STAT_CASES = [
    (case, soft)
    for case in ["random", "duplicate_labels_no_positive", "one_class", "all_distinct", "batch_of_1", "batch_of_2_diff"]
    for soft in (False, True)
    if not (soft and case in ("one_class", "batch_of_1"))
]


@pytest.mark.parametrize("case, soft", STAT_CASES)
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
@pytest.mark.parametrize(
    "loss, name",
    [
        (L.batch_hard_triplet_loss, "hard"),
        (L.batch_semi_hard_triplet_loss, "semi_hard"),
        (L.batch_all_triplet_loss, "all"),
    ],
    ids=["hard", "semi", "all"],
)
def test_batch_triplet_statistics_match_oracle(loss, name, soft, distance, case):
    x, labels = LABEL_CASES[case]
    margin = 0.7 if distance == "cosine" else 2.5
    plain = loss(x, labels, margin=margin, distance=distance, soft_margin=soft)
    value, stats = loss(x, labels, margin=margin, distance=distance, soft_margin=soft, report=True)
    assert torch.equal(value, plain)  # reporting changes nothing about the loss
    assert not any(s.requires_grad for s in stats.values())
    xs, ys = x.tolist(), labels.tolist()
    hardest = o_hardest(xs, ys, distance)
    assert stats["active_triplets"].item() == pytest.approx(o_active_fraction(xs, ys, margin, distance, soft, name))
    assert stats["hardest_positive_distance"].item() == pytest.approx(
        sum(h[0] for h in hardest) / len(xs), rel=1e-6, abs=1e-7
    )
    assert stats["hardest_negative_distance"].item() == pytest.approx(
        sum(h[1] for h in hardest) / len(xs), rel=1e-6, abs=1e-7
    )


def test_triplet_statistics_match_oracle():
    a, p, n = _emb(7, seed=1), _emb(7, seed=2), _emb(7, seed=3)
    value, stats = L.triplet_loss(a, p, n, distance="cosine", margin=0.3, report=True)
    assert torch.equal(value, L.triplet_loss(a, p, n, distance="cosine", margin=0.3))
    d_ap = [o_distance(u, v, "cosine") for u, v in zip(a.tolist(), p.tolist())]
    d_an = [o_distance(u, v, "cosine") for u, v in zip(a.tolist(), n.tolist())]
    assert stats["active_triplets"].item() == pytest.approx(sum(x - y + 0.3 > 0 for x, y in zip(d_ap, d_an)) / 7)
    assert stats["positive_distance"].item() == pytest.approx(sum(d_ap) / 7, rel=1e-6)
    assert stats["negative_distance"].item() == pytest.approx(sum(d_an) / 7, rel=1e-6)


@pytest.mark.parametrize("n_negatives", [0, 2])
@pytest.mark.parametrize("symmetric", [False, True])
def test_mnrl_statistics_match_oracle(symmetric, n_negatives):
    cols = [_emb(6, seed=s) for s in range(2 + n_negatives)]
    plain = L.multiple_negatives_ranking_loss(*cols, symmetric=symmetric)
    value, stats = L.multiple_negatives_ranking_loss(*cols, symmetric=symmetric, report=True)
    assert torch.equal(value, plain)
    anchors = cols[0].tolist()
    candidates = [c for column in cols[1:] for c in column.tolist()]
    positive = [o_cos(u, candidates[i]) for i, u in enumerate(anchors)]
    hardest = [max(o_cos(u, c) for j, c in enumerate(candidates) if j != i) for i, u in enumerate(anchors)]
    assert stats["positive_similarity"].item() == pytest.approx(sum(positive) / 6, rel=1e-6)
    assert stats["hardest_negative_similarity"].item() == pytest.approx(sum(hardest) / 6, rel=1e-6)
    assert stats["accuracy"].item() == pytest.approx(sum(p > h for p, h in zip(positive, hardest)) / 6)


def test_mnrl_statistics_of_a_lone_pair_have_no_negative():
    from minilm.losses.inputs import split_output

    _, stats = split_output(L.multiple_negatives_ranking_loss(_emb(1), _emb(1, seed=1), report=True))
    assert stats["hardest_negative_similarity"] is None and stats["accuracy"] == 1.0  # -inf is logged as null


def test_report_must_be_a_flag():
    with pytest.raises(TypeError, match="report must be True or False"):
        L.multiple_negatives_ranking_loss(_emb(2), _emb(2), report=1)
    with pytest.raises(TypeError, match="report must be True or False"):
        L.batch_hard_triplet_loss(_emb(4), torch.tensor([0, 0, 1, 1]), report="yes")
