"""The metric-learning staples against pytorch-metric-learning 2.9 on identical inputs, through tests/parity.py
(value difference <= 1e-5, largest gradient difference <= 1e-4, each scaled by max(1, |reference|); float32 and
float64; figures recorded for docs/losses.md).

Mapping of conventions: PML's default CosineSimilarity distance is our cosine similarity (larger is closer) -- PML
calls every metric a "distance" and flips signs by ``is_inverted``; ours states the sign in the name. PML's
DotProductSimilarity(normalize_embeddings=False) is our similarity="dot" (PML normalises by default).
ArcFace/CosFace: PML's ``W`` (embedding_size, num_classes) is our ``proxies.T`` (num_labels, embedding_dim); PML's
ArcFace ``margin`` is in degrees, ours in radians. ProxyAnchor's ``proxies`` have the same layout in both. Reductions
are PML's defaults, which ours reproduce: SupCon and Circle average over anchors with a positive loss, NT-Xent over
positive pairs, Multi-Similarity and ArcFace/CosFace over the batch, ProxyAnchor sums per proxy and divides by the
proxies with positives / all proxies.
"""

from __future__ import annotations

import math

import pytest
import torch
from parity import compare

from minilm import losses as L

pytestmark = pytest.mark.slow  # parity across the catalogue; the loss tests' oracles stay in the fast tier

pml_losses = pytest.importorskip("pytorch_metric_learning.losses")
from pytorch_metric_learning.distances import DotProductSimilarity  # noqa: E402
from pytorch_metric_learning.miners import MultiSimilarityMiner  # noqa: E402

DTYPES = [torch.float32, torch.float64]
LABELS = {
    "random": torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 3, 0]),
    "no_positive_for_some": torch.tensor([0, 0, 1, 2, 2, 2, 3, 4, 4, 5, 6, 6]),
    "one_class": torch.zeros(12, dtype=torch.long),
    "all_distinct": torch.arange(12),
    "batch_2": torch.tensor([0, 1]),
}


def _emb(n, d=16, dtype=torch.float32, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)).to(dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("labels", list(LABELS))
@pytest.mark.parametrize("similarity", ["cosine", "dot"])
def test_supcon_and_ntxent(similarity, labels, dtype):
    y = LABELS[labels]
    kwargs = {} if similarity == "cosine" else {"distance": DotProductSimilarity(normalize_embeddings=False)}
    t = 0.1 if similarity == "cosine" else 4.0  # dot products of 16-d gaussians are O(4)
    x = [_emb(len(y), dtype=dtype)]
    compare(
        "supcon",
        lambda e: L.supcon_loss(e[0], y, temperature=t, similarity=similarity),
        lambda e: pml_losses.SupConLoss(temperature=t, **kwargs)(e[0], y),
        x,
    )
    compare(
        "ntxent",
        lambda e: L.ntxent_loss(e[0], y, temperature=t, similarity=similarity),
        lambda e: pml_losses.NTXentLoss(temperature=t, **kwargs)(e[0], y),
        x,
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("labels", list(LABELS))
def test_circle(labels, dtype):
    y = LABELS[labels]
    for m, gamma in [(0.4, 80.0), (0.25, 16.0)]:
        compare(
            "circle",
            lambda e: L.circle_loss(e[0], y, margin=m, gamma=gamma),
            lambda e: pml_losses.CircleLoss(m=m, gamma=gamma)(e[0], y),
            [_emb(len(y), dtype=dtype, seed=1)],
        )


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("labels", list(LABELS))
@pytest.mark.parametrize("mine", [False, True])
def test_multi_similarity(mine, labels, dtype):
    y = LABELS[labels]
    pml = pml_losses.MultiSimilarityLoss(alpha=2, beta=50, base=0.5)
    miner = MultiSimilarityMiner(epsilon=0.1)

    def theirs(e):
        return pml(e[0], y, miner(e[0], y)) if mine else pml(e[0], y)

    # low-dimensional embeddings make the similarities spread, so the miner keeps some pairs and drops others
    compare(
        "multi_similarity",
        lambda e: L.multi_similarity_loss(e[0], y, mine=mine, epsilon=0.1),
        theirs,
        [_emb(len(y), d=4, dtype=dtype, seed=2)],
    )


def _labels(n, num_labels, seed):
    return torch.randint(0, num_labels, (n,), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n", [1, 12])
def test_arcface_and_cosface(n, dtype):
    y = _labels(n, 5, seed=3)
    for margin, scale in [(0.5, 64.0), (0.2, 8.0)]:
        pml = pml_losses.ArcFaceLoss(num_classes=5, embedding_size=16, margin=math.degrees(margin), scale=scale)
        ours = L.ArcFaceLoss(embedding_dim=16, num_labels=5, margin=margin, scale=scale)
        pml.to(dtype), ours.to(dtype)
        with torch.no_grad():
            ours.proxies.copy_(pml.W.T)
        compare(
            "arcface",
            lambda e: ours(e[0], y),
            lambda e: pml(e[0], y),
            [_emb(n, dtype=dtype, seed=4)],
            [ours.proxies],
            [(pml.W, lambda g: g.T)],
        )
    for margin, scale in [(0.35, 64.0), (0.1, 8.0)]:
        pml = pml_losses.CosFaceLoss(num_classes=5, embedding_size=16, margin=margin, scale=scale)
        ours = L.CosFaceLoss(embedding_dim=16, num_labels=5, margin=margin, scale=scale)
        pml.to(dtype), ours.to(dtype)
        with torch.no_grad():
            ours.proxies.copy_(pml.W.T)
        compare(
            "cosface",
            lambda e: ours(e[0], y),
            lambda e: pml(e[0], y),
            [_emb(n, dtype=dtype, seed=5)],
            [ours.proxies],
            [(pml.W, lambda g: g.T)],
        )


def test_arcface_fallback_branch_matches_pml():
    """A sample nearly opposite its class proxy (theta > pi - margin) takes the linear fallback in both."""
    pml = pml_losses.ArcFaceLoss(num_classes=2, embedding_size=2, margin=math.degrees(0.5), scale=4.0)
    ours = L.ArcFaceLoss(embedding_dim=2, num_labels=2, margin=0.5, scale=4.0)
    with torch.no_grad():
        pml.W.copy_(torch.eye(2))
        ours.proxies.copy_(pml.W.T)
    x = torch.tensor([[-1.0, 0.05], [0.2, 1.0]])
    y = torch.tensor([0, 1])
    compare("arcface", lambda e: ours(e[0], y), lambda e: pml(e[0], y), [x], [ours.proxies], [(pml.W, lambda g: g.T)])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n", [1, 12])
def test_proxy_anchor(n, dtype):
    y = _labels(n, 5, seed=6)
    for margin, alpha in [(0.1, 32.0), (0.3, 4.0)]:
        pml = pml_losses.ProxyAnchorLoss(num_classes=5, embedding_size=16, margin=margin, alpha=alpha)
        ours = L.ProxyAnchorLoss(embedding_dim=16, num_labels=5, margin=margin, alpha=alpha)
        pml.to(dtype), ours.to(dtype)
        with torch.no_grad():
            ours.proxies.copy_(pml.proxies)
        compare(
            "proxy_anchor",
            lambda e: ours(e[0], y),
            lambda e: pml(e[0], y),
            [_emb(n, dtype=dtype, seed=7)],
            [ours.proxies],
            [pml.proxies],
        )
