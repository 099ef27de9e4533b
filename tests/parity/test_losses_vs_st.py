"""minilm.losses against sentence-transformers 6.2's own losses on identical embeddings.

ST is called through compute_loss_from_embeddings (model=None: it never touches the model there); MatryoshkaLoss,
which wraps the model's forward, runs on a stub model that returns the embeddings we give it.
Tolerances (float32 and float64 alike): value rtol 1e-6; gradient w.r.t. the embeddings rtol 1e-5 with an absolute
floor of 1e-5 * max|grad| (entries whose true gradient is 0 carry only rounding noise).
"""

from __future__ import annotations

import os
import warnings

import pytest
import torch
from torch import nn

from minilm import losses as L
from minilm.run.registry import LOSSES

pytestmark = pytest.mark.slow  # parity across the catalogue; the loss tests' oracles stay in the fast tier

os.environ.setdefault("HF_HUB_OFFLINE", "1")
st_losses = pytest.importorskip("sentence_transformers.sentence_transformer.losses")
from sentence_transformers.sentence_transformer.losses.batch_hard_triplet import (  # noqa: E402
    BatchHardTripletLossDistanceFunction as StMatrix,
)
from sentence_transformers.sentence_transformer.losses.triplet import TripletDistanceMetric as StPairwise  # noqa: E402
from sentence_transformers.util import cos_sim, dot_score  # noqa: E402

ST_PAIRWISE = {"euclidean": StPairwise.EUCLIDEAN, "cosine": StPairwise.COSINE, "manhattan": StPairwise.MANHATTAN}
ST_MATRIX = {"euclidean": StMatrix.euclidean_distance, "cosine": StMatrix.cosine_distance}
ST_SIMILARITY = {"cosine": cos_sim, "dot": dot_score}


def _value_and_grads(fn, embeddings):
    leaves = [e.clone().requires_grad_() for e in embeddings]
    value = fn(leaves)
    return value.detach(), torch.autograd.grad(value, leaves)


def _compare(ours, theirs, embeddings):
    v1, g1 = _value_and_grads(ours, embeddings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ST's deprecation notices
        v2, g2 = _value_and_grads(theirs, embeddings)
    assert v1.item() == pytest.approx(v2.item(), rel=1e-6, abs=1e-12)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * max(b.abs().max().item(), 1e-12))


def _emb(n, d=8, dtype=torch.float32, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)).to(dtype)


LABELS = {
    "random": torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 3, 0]),
    "no_positive": torch.tensor([0, 0, 1, 2, 2, 2, 3, 4, 4, 5, 6, 6]),
    "one_class": torch.zeros(12, dtype=torch.long),
    "batch_1": torch.tensor([0]),
    "batch_2": torch.tensor([0, 1]),
}
DTYPES = [torch.float32, torch.float64]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("distance", ["euclidean", "cosine", "manhattan"])
def test_triplet(distance, dtype):
    cols = [_emb(10, dtype=dtype, seed=s) for s in range(3)]
    st = st_losses.TripletLoss(None, ST_PAIRWISE[distance], triplet_margin=1.5)
    _compare(
        lambda e: L.triplet_loss(*e, distance=distance, margin=1.5),
        lambda e: st.compute_loss_from_embeddings(e, None),
        cols,
    )


BATCH = [
    ("hard", L.batch_hard_triplet_loss, False, lambda m, margin: st_losses.BatchHardTripletLoss(None, m, margin)),
    ("hard_soft", L.batch_hard_triplet_loss, True, lambda m, margin: st_losses.BatchHardSoftMarginTripletLoss(None, m)),
    (
        "semi_hard",
        L.batch_semi_hard_triplet_loss,
        False,
        lambda m, margin: st_losses.BatchSemiHardTripletLoss(None, m, margin),
    ),
    ("all", L.batch_all_triplet_loss, False, lambda m, margin: st_losses.BatchAllTripletLoss(None, m, margin)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("labels", list(LABELS))
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
@pytest.mark.parametrize("name, ours, soft, make_st", BATCH, ids=[b[0] for b in BATCH])
def test_batch_triplets(name, ours, soft, make_st, distance, labels, dtype):
    labels = LABELS[labels]
    margin = 0.4 if distance == "cosine" else 3.0
    st = make_st(ST_MATRIX[distance], margin)
    x = _emb(len(labels), dtype=dtype, seed=3)
    _compare(
        lambda e: ours(e[0], labels, margin=margin, distance=distance, soft_margin=soft),
        lambda e: st.compute_loss_from_embeddings(e, labels),
        [x],
    )


def test_batch_triplets_defaults_match_st():
    x, labels = _emb(12, seed=4), LABELS["random"]
    for ours, theirs in [
        (L.batch_hard_triplet_loss, st_losses.BatchHardTripletLoss(None)),
        (L.batch_semi_hard_triplet_loss, st_losses.BatchSemiHardTripletLoss(None)),
        (L.batch_all_triplet_loss, st_losses.BatchAllTripletLoss(None)),
    ]:
        _compare(lambda e: ours(e[0], labels), lambda e: theirs.compute_loss_from_embeddings(e, labels), [x])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n_negatives", [0, 1, 3])
@pytest.mark.parametrize("similarity", ["cosine", "dot"])
def test_mnrl(similarity, n_negatives, dtype):
    cols = [_emb(9, dtype=dtype, seed=s) for s in range(2 + n_negatives)]
    scale = 20.0 if similarity == "cosine" else 0.7
    st = st_losses.MultipleNegativesRankingLoss(None, scale=scale, similarity_fct=ST_SIMILARITY[similarity])
    _compare(
        lambda e: L.multiple_negatives_ranking_loss(*e, scale=scale, similarity=similarity),
        lambda e: st.compute_loss_from_embeddings(e, None),
        cols,
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("similarity", ["cosine", "dot"])
def test_mnrl_symmetric(similarity, dtype):
    cols = [_emb(9, dtype=dtype, seed=s) for s in range(2)]
    scale = 20.0 if similarity == "cosine" else 0.7
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        old = st_losses.MultipleNegativesSymmetricRankingLoss(None, scale, ST_SIMILARITY[similarity])
    new = st_losses.MultipleNegativesRankingLoss(
        None,
        scale,
        ST_SIMILARITY[similarity],
        directions=("query_to_doc", "doc_to_query"),
        partition_mode="per_direction",
    )
    for st in (old, new):
        _compare(
            lambda e: L.multiple_negatives_ranking_loss(*e, scale=scale, similarity=similarity, symmetric=True),
            lambda e: st.compute_loss_from_embeddings(e, None),
            cols,
        )


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize(
    "scores",
    [
        torch.tensor([0.1, 0.5, 0.3, 0.9, 0.0, 0.7, 0.2, 0.4]),
        torch.tensor([1.0, 1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.0]),  # ties
        torch.tensor([2, 0, 1, 5, 4, 3, 3, 1]),  # integer scores
        torch.tensor([True, False, True, True, False, False, True, False]),
    ],
    ids=["float", "ties", "int", "bool"],
)
def test_cosent(scores, dtype):
    st = st_losses.CoSENTLoss(None, scale=20.0)
    cols = [_emb(8, dtype=dtype, seed=s) for s in range(2)]
    _compare(
        lambda e: L.cosent_loss(*e, scores, scale=20.0), lambda e: st.compute_loss_from_embeddings(e, scores), cols
    )


class StubModel(nn.Module):
    """Stands in for a SentenceTransformer: the 'features' are the embeddings themselves."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, features):
        return {"sentence_embedding": features["embedding"]}  # a fresh dict: ST's Matryoshka mutates it

    def get_embedding_dimension(self) -> int:
        return self.dim


@pytest.mark.parametrize("loss_name", ["mnrl", "batch_hard_triplet", "cosent"])
def test_matryoshka(loss_name):
    stub = StubModel(16)
    dims, weights = (16, 8, 4), (1.0, 0.3, 2.0)
    if loss_name == "mnrl":
        inner, n_cols, target, kwargs = st_losses.MultipleNegativesRankingLoss(stub), 3, None, {}
    elif loss_name == "cosent":
        inner, n_cols, target, kwargs = st_losses.CoSENTLoss(stub), 2, torch.rand(10), {}
    else:
        inner, n_cols, target = st_losses.BatchHardTripletLoss(stub, margin=0.5), 1, torch.arange(10) % 3
        kwargs = {"margin": 0.5}
    st = st_losses.MatryoshkaLoss(stub, inner, list(dims), list(weights))
    ours = L.matryoshka(LOSSES[loss_name], dims, weights)
    targets = [] if target is None else [target]
    _compare(
        lambda e: ours(*e, *targets, **kwargs),
        lambda e: st([{"embedding": x} for x in e], target),
        [_emb(10, 16, seed=s) for s in range(n_cols)],
    )
