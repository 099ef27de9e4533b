"""minilm.losses.miners against Python-loop oracles that follow each docstring literally, and where gradients land.

Per anchor i: positives are the other rows with i's label, negatives the rows with a different label. Distance matrices
are real distances (torch.cdist of random points), plus an integer grid with many ties and zero distances.

Tolerances: masks, and which gradient entries are nonzero, compare exactly; miner values and gradient values vs the
oracle rtol 1e-12, atol 1e-12 (farthest_negative shifts a row by its minimum and back, which can round by an ulp, and a
gradient entry that sums several weights depends on the summation order).
"""

from __future__ import annotations

import pytest
import torch

from minilm.losses import miners as M

TOL = dict(rtol=1e-12, atol=1e-12)


def _close(ours, expected, rtol, atol):  # torch.allclose: torch.testing.assert_close costs ~1 s of imports
    assert ours.shape == expected.shape and ours.dtype == expected.dtype
    assert torch.allclose(ours, expected, rtol=rtol, atol=atol), (ours - expected).abs().max().item()


LABELS = {
    "all_distinct": [0, 1, 2, 3, 4, 5],
    "all_equal": [7, 7, 7, 7, 7, 7],
    "pairs": [0, 0, 1, 1, 2, 2],
    "singleton": [0, 0, 0, 1, 1, 2],  # anchor 5 has no positive
    "shuffled": [2, 0, 1, 0, 2, 1],
    "batch_of_1": [3],
}


def _points(n, seed, grid=False):
    g = torch.Generator().manual_seed(seed)
    if grid:  # coordinates in {0, 1, 2}: equal distances everywhere, duplicate points at distance 0
        return torch.randint(0, 3, (n, 2), generator=g).double()
    return torch.randn(n, 4, generator=g, dtype=torch.float64)


def _dist(n, kind):
    x = _points(n, seed={"random": 0, "random2": 1, "ties": 2}[kind], grid=kind == "ties")
    return torch.cdist(x, x)


# ---------------------------------------------------------------------------------------------------------------------
# oracles: per anchor, plain Python lists


def _pos(labels, i):
    return [j for j in range(len(labels)) if j != i and labels[j] == labels[i]]


def _neg(labels, i):
    return [j for j in range(len(labels)) if labels[j] != labels[i]]


def o_hardest_positive(d, labels):  # farthest positive; 0 without positives
    return [max((d[i][j] for j in _pos(labels, i)), default=0.0) for i in range(len(d))]


def o_hardest_negative(d, labels):  # closest negative; row max + row min without negatives
    return [min(d[i][j] for j in _neg(labels, i)) if _neg(labels, i) else max(d[i]) + min(d[i]) for i in range(len(d))]


def o_farthest_negative(d, labels):  # (B, 1): farthest negative; row min without negatives
    return [[max(d[i][j] for j in _neg(labels, i)) if _neg(labels, i) else min(d[i])] for i in range(len(d))]


def o_semi_hard_negative(d, labels):
    out = []
    for i in range(len(d)):
        neg = [d[i][k] for k in _neg(labels, i)]
        row = []
        for j in range(len(d)):
            farther = [v for v in neg if v > d[i][j]]  # strictly farther than d(i, j)
            row.append(min(farther) if farther else (max(neg) if neg else min(d[i])))
        out.append(row)
    return out


MINERS = [
    (M.hardest_positive, o_hardest_positive),
    (M.hardest_negative, o_hardest_negative),
    (M.farthest_negative, o_farthest_negative),
    (M.semi_hard_negative, o_semi_hard_negative),
]


# ---------------------------------------------------------------------------------------------------------------------
# values


@pytest.mark.parametrize("case", list(LABELS))
def test_masks_match_definition(case):
    labels = LABELS[case]
    n = len(labels)
    pos = [[j in _pos(labels, i) for j in range(n)] for i in range(n)]
    neg = [[j in _neg(labels, i) for j in range(n)] for i in range(n)]
    assert M.positive_mask(torch.tensor(labels)).tolist() == pos
    assert M.negative_mask(torch.tensor(labels)).tolist() == neg


@pytest.mark.parametrize("kind", ["random", "random2", "ties"])
@pytest.mark.parametrize("case", list(LABELS))
@pytest.mark.parametrize("miner, oracle", MINERS, ids=[m.__name__ for m, _ in MINERS])
def test_miner_matches_oracle(miner, oracle, case, kind):
    labels = LABELS[case]
    dist = _dist(len(labels), kind)
    expected = torch.tensor(oracle(dist.tolist(), labels), dtype=torch.float64)
    _close(miner(dist, torch.tensor(labels)), expected, **TOL)


def test_ties_case_has_ties():  # guard: the "ties" matrices really contain equal and zero off-diagonal distances
    d = _dist(6, "ties")
    off = d[~torch.eye(6, dtype=torch.bool)]
    assert len(off.unique()) < len(off) // 2
    assert (off == 0).any()


def test_semi_hard_is_strictly_farther():
    # anchor 0: positive 1 at 2.0; negatives at 2.0 (equal, not farther), 3.0 and 5.0 -> 3.0
    d = torch.tensor([[0.0, 2.0, 2.0, 3.0, 5.0]] * 5)
    out = M.semi_hard_negative(d, torch.tensor([0, 0, 1, 1, 1]))
    assert out[0, 1].item() == 3.0
    assert out[0, 4].item() == 5.0  # nothing farther than 5.0 -> the farthest negative


# ---------------------------------------------------------------------------------------------------------------------
# gradients reach only the selected entries (random distances: no ties, so the selection is unique)


def _argsel(d, i, cols, pick):
    return pick(cols, key=lambda j: d[i][j])


def o_grad(name, d, labels, w):
    """d(sum(w * miner(d))) / d(dist): w lands on the selected entry (both entries for row max + row min)."""
    n = len(d)
    g = [[0.0] * n for _ in range(n)]
    for i in range(n):
        pos, neg, everything = _pos(labels, i), _neg(labels, i), list(range(n))
        if name == "hardest_positive":
            if pos:
                g[i][_argsel(d, i, pos, max)] += w[i][0]
        elif name == "hardest_negative":
            if neg:
                g[i][_argsel(d, i, neg, min)] += w[i][0]
            else:
                g[i][_argsel(d, i, everything, max)] += w[i][0]
                g[i][_argsel(d, i, everything, min)] += w[i][0]
        elif name == "farthest_negative":
            g[i][_argsel(d, i, neg, max) if neg else _argsel(d, i, everything, min)] += w[i][0]
        else:  # semi_hard_negative: one weight per (anchor, candidate)
            for j in range(n):
                farther = [k for k in neg if d[i][k] > d[i][j]]
                if farther:
                    k = _argsel(d, i, farther, min)
                else:
                    k = _argsel(d, i, neg, max) if neg else _argsel(d, i, everything, min)
                g[i][k] += w[i][j]
    return g


@pytest.mark.parametrize("case", list(LABELS))
@pytest.mark.parametrize("miner", [m for m, _ in MINERS], ids=[m.__name__ for m, _ in MINERS])
def test_gradient_reaches_only_selected_entries(miner, case):
    labels = LABELS[case]
    dist = _dist(len(labels), "random").requires_grad_()
    out = miner(dist, torch.tensor(labels))
    w = torch.rand(out.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64) + 0.5  # no zero weight
    (grad,) = torch.autograd.grad((w * out).sum(), dist)
    w_rows = w.reshape(len(labels), -1).tolist()  # (B,) and (B, 1) outputs -> one weight per row
    expected = torch.tensor(o_grad(miner.__name__, dist.tolist(), labels, w_rows), dtype=torch.float64)
    assert ((grad != 0) == (expected != 0)).all()  # exactly the selected entries, nothing else
    _close(grad, expected, **TOL)  # the weights, up to the order they were summed in
