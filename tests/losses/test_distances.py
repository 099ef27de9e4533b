"""minilm.losses.distances against float64 Python-loop oracles, the sign convention, row-wise vs all-pairs agreement,
gradcheck, and the name tables.

Tolerances: float64 values vs the oracle rtol 1e-10, atol 1e-12, except the Gram-matrix euclidean distance matrix,
atol 1e-7 (two equal rows at different positions come out ~1e-8, not 0; its diagonal is checked to be exactly 0);
gradcheck at its float64 defaults (eps 1e-6, atol 1e-5, rtol 1e-3), on inputs away from the non-differentiable
points (zero vectors, equal rows, equal coordinates for manhattan).
"""

from __future__ import annotations

import math

import pytest
import torch

from minilm.losses import distances as D

TOL = dict(rtol=1e-10, atol=1e-12)
GRAM_TOL = dict(rtol=1e-10, atol=1e-7)


def _close(ours, expected, rtol, atol):  # torch.allclose: torch.testing.assert_close costs ~1 s of imports
    assert ours.shape == expected.shape and ours.dtype == expected.dtype
    assert torch.allclose(ours, expected, rtol=rtol, atol=atol), (ours - expected).abs().max().item()


# ---------------------------------------------------------------------------------------------------------------------
# oracles: one pair at a time, plain Python floats


def _norm(u):
    return math.sqrt(sum(x * x for x in u))


def o_euclidean(u, v):
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(u, v)))


def o_manhattan(u, v):
    return sum(abs(x - y) for x, y in zip(u, v))


def o_cos_sim(u, v):  # a zero vector has cosine 0 with everything (F.normalize's eps 1e-12)
    return sum(x * y for x, y in zip(u, v)) / (max(_norm(u), 1e-12) * max(_norm(v), 1e-12))


def o_cos_dist(u, v):
    return 1.0 - o_cos_sim(u, v)


def o_dot(u, v):
    return sum(x * y for x, y in zip(u, v))


ROWWISE = [
    (D.euclidean_distance, o_euclidean),
    (D.cosine_distance, o_cos_dist),
    (D.manhattan_distance, o_manhattan),
    (D.cosine_similarity, o_cos_sim),
]
SELF_MATRICES = [(D.euclidean_distance_matrix, o_euclidean), (D.cosine_distance_matrix, o_cos_dist)]  # f(x)
CROSS_MATRICES = [(D.cosine_similarity_matrix, o_cos_sim), (D.dot_similarity_matrix, o_dot)]  # f(a, b)


def _ids(cases):
    return [fn.__name__ for fn, _ in cases]


def _emb(n, d=5, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _awkward(n=6, seed=0):
    """Random rows, one zero vector (row 1) and one row repeated (row 3 == row 0)."""
    x = _emb(n, seed=seed)
    x[1] = 0
    x[3] = x[0]
    return x


def _tol(fn):
    return GRAM_TOL if fn is D.euclidean_distance_matrix else TOL


# ---------------------------------------------------------------------------------------------------------------------
# values vs the oracle


@pytest.mark.parametrize("fn, oracle", ROWWISE, ids=_ids(ROWWISE))
def test_rowwise_matches_oracle(fn, oracle):
    a, b = _awkward(seed=1), _emb(6, seed=2)
    b[2] = 0  # zero vector on the other side
    b[4] = a[4]  # equal pair
    b[5] = a[1]  # zero vs zero
    expected = torch.tensor([oracle(u, v) for u, v in zip(a.tolist(), b.tolist())], dtype=torch.float64)
    _close(fn(a, b), expected, **TOL)


@pytest.mark.parametrize("fn, oracle", SELF_MATRICES, ids=_ids(SELF_MATRICES))
def test_self_matrix_matches_oracle(fn, oracle):
    x = _awkward()
    rows = x.tolist()
    expected = torch.tensor([[oracle(u, v) for v in rows] for u in rows], dtype=torch.float64)
    _close(fn(x), expected, **_tol(fn))


@pytest.mark.parametrize("fn, oracle", CROSS_MATRICES, ids=_ids(CROSS_MATRICES))
def test_cross_matrix_matches_oracle(fn, oracle):
    a, b = _awkward(5, seed=3), _emb(7, seed=4)  # B != B'
    b[6] = 0
    b[2] = a[2]
    expected = torch.tensor([[oracle(u, v) for v in b.tolist()] for u in a.tolist()], dtype=torch.float64)
    _close(fn(a, b), expected, **TOL)


def test_zero_vector_cosine_is_zero_not_nan():
    z, v = torch.zeros(1, 4, dtype=torch.float64), _emb(1, 4)
    for a, b in [(z, v), (v, z), (z, z)]:
        assert D.cosine_similarity(a, b).item() == 0.0
        assert D.cosine_distance(a, b).item() == 1.0
        assert D.cosine_similarity_matrix(a, b).item() == 0.0
    assert D.cosine_distance_matrix(torch.cat([z, v])).isfinite().all()


def test_euclidean_matrix_equal_rows_zero_diagonal_and_zero_gradient():
    x = _awkward().requires_grad_()  # includes a zero row and two equal rows
    m = D.euclidean_distance_matrix(x)
    assert (m.diagonal() == 0).all()
    (grad,) = torch.autograd.grad(m.diagonal().sum(), x, retain_graph=True)
    assert (grad == 0).all()  # the diagonal is identically 0: its gradient is exactly 0, not NaN
    (grad,) = torch.autograd.grad(m.sum(), x)
    assert grad.isfinite().all()  # the off-diagonal equal pair (~1e-8 apart) must not give NaN either
    # an all-equal batch: every entry is 0 and the gradient 0
    same = _emb(1).expand(4, -1).clone().requires_grad_()
    m = D.euclidean_distance_matrix(same)
    (grad,) = torch.autograd.grad(m.sum(), same)
    assert grad.isfinite().all()


def test_euclidean_rowwise_equal_rows_zero_gradient():
    a = _emb(3).requires_grad_()
    d = D.euclidean_distance(a, a.detach().clone())
    assert (d == 0).all()
    (grad,) = torch.autograd.grad(d.sum(), a)
    assert (grad == 0).all()


# ---------------------------------------------------------------------------------------------------------------------
# the sign convention: *_distance smaller-is-closer, *_similarity larger-is-closer


@pytest.mark.parametrize("fn", [D.euclidean_distance, D.cosine_distance, D.manhattan_distance, D.cosine_similarity])
def test_rowwise_identical_is_closest(fn):
    x, others = _emb(1, seed=5), _emb(20, seed=6)
    same = fn(x, x)
    rest = fn(x.expand_as(others), others)
    if fn.__name__.endswith("_distance"):
        assert (same < rest).all()
    else:
        assert (same > rest).all()


@pytest.mark.parametrize("fn", [D.euclidean_distance_matrix, D.cosine_distance_matrix])
def test_distance_matrix_diagonal_is_row_minimum(fn):
    m = fn(_emb(8, seed=7))
    off = m.masked_fill(torch.eye(8, dtype=torch.bool), torch.inf)
    assert (m.diagonal() < off.min(dim=1).values).all()


@pytest.mark.parametrize("fn", [D.cosine_similarity_matrix, D.dot_similarity_matrix])
def test_similarity_matrix_diagonal_is_row_maximum(fn):
    x = torch.nn.functional.normalize(_emb(8, seed=8), dim=-1)  # unit rows: dot of x with itself is then the max
    m = fn(x, x)
    off = m.masked_fill(torch.eye(8, dtype=torch.bool), -torch.inf)
    assert (m.diagonal() > off.max(dim=1).values).all()


# ---------------------------------------------------------------------------------------------------------------------
# row-wise vs all-pairs: the (a; b) matrix at [i, B + i], or the (a, b) matrix's diagonal, is the row-wise value


@pytest.mark.parametrize(
    "matrix, rowwise",
    [(D.euclidean_distance_matrix, D.euclidean_distance), (D.cosine_distance_matrix, D.cosine_distance)],
    ids=["euclidean", "cosine"],
)
def test_self_matrix_agrees_with_rowwise(matrix, rowwise):
    a, b = _awkward(seed=9), _emb(6, seed=10)
    b[2] = 0
    n = len(a)
    m = matrix(torch.cat([a, b]))
    _close(m[:n, n:].diagonal(), rowwise(a, b), **_tol(matrix))


def test_cross_matrix_agrees_with_rowwise():
    a, b = _awkward(seed=11), _emb(6, seed=12)
    b[2] = 0
    _close(D.cosine_similarity_matrix(a, b).diagonal(), D.cosine_similarity(a, b), **TOL)
    _close(D.dot_similarity_matrix(a, b).diagonal(), (a * b).sum(-1), **TOL)


# ---------------------------------------------------------------------------------------------------------------------
# gradcheck (float64), away from zero vectors and equal rows


@pytest.mark.parametrize("fn", [fn for fn, _ in ROWWISE + CROSS_MATRICES], ids=_ids(ROWWISE + CROSS_MATRICES))
def test_gradcheck_two_argument(fn):
    a, b = _emb(4, seed=13).requires_grad_(), _emb(4, seed=14).requires_grad_()
    assert torch.autograd.gradcheck(fn, (a, b))


@pytest.mark.parametrize("fn", [fn for fn, _ in SELF_MATRICES], ids=_ids(SELF_MATRICES))
def test_gradcheck_self_matrix(fn):
    assert torch.autograd.gradcheck(fn, (_emb(5, seed=15).requires_grad_(),))


# ---------------------------------------------------------------------------------------------------------------------
# tables: each name maps to the function of that name, and the family matches the suffix


@pytest.mark.parametrize(
    "table, pattern",
    [
        (D.PAIRWISE_DISTANCES, "{}_distance"),
        (D.DISTANCE_MATRICES, "{}_distance_matrix"),
        (D.SIMILARITY_MATRICES, "{}_similarity_matrix"),
    ],
    ids=["PAIRWISE_DISTANCES", "DISTANCE_MATRICES", "SIMILARITY_MATRICES"],
)
def test_table_names_map_to_same_named_functions(table, pattern):
    assert table
    for name, fn in table.items():
        assert fn is getattr(D, pattern.format(name)), name
        assert fn.__name__ == pattern.format(name)
