"""Losses on pairs (a_i, b_i) with a per-pair target: 1 similar / 0 dissimilar, or a gold similarity score.

Values and gradients match sentence-transformers 6.2's ContrastiveLoss, OnlineContrastiveLoss and
CosineSimilarityLoss (tests/parity/test_losses_vs_st.py). AnglE, a ranking loss like CoSENT, lives beside it in
scored.py.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from minilm.losses.distances import PAIRWISE_DISTANCES, cosine_similarity
from minilm.losses.inputs import needs
from minilm.util.checks import check_embeddings, check_number, check_targets, lookup


def _pairs(embeddings_a: Tensor, embeddings_b: Tensor, scores: Tensor, distance: str) -> tuple[Tensor, Tensor]:
    """Shared front: check the pair, return (d(a_i, b_i) (B,), targets (B,) as given)."""
    a, b = check_embeddings(embeddings_a=embeddings_a, embeddings_b=embeddings_b)
    y = check_targets(scores, a.shape[0], "scores", "scores")
    return lookup(PAIRWISE_DISTANCES, distance, "distance")(a, b), y


@needs("scores")
def contrastive_loss(
    embeddings_a: Tensor, embeddings_b: Tensor, scores: Tensor, distance: str = "cosine", margin: float = 0.5
) -> Tensor:
    """mean_i 1/2 [y_i d_i^2 + (1 - y_i) relu(margin - d_i)^2] (Hadsell et al. 2006), y = scores (1 similar,
    0 dissimilar; values between weight the two terms, as in sentence-transformers); distance "cosine" (1 - cos,
    sentence-transformers' default), "euclidean" or "manhattan"."""
    d, y = _pairs(embeddings_a, embeddings_b, scores, distance)
    margin = check_number(margin, "margin")
    y = y.to(d.dtype)
    return (0.5 * (y * d.pow(2) + (1 - y) * F.relu(margin - d).pow(2))).mean()


@needs("scores")
def online_contrastive_loss(
    embeddings_a: Tensor, embeddings_b: Tensor, scores: Tensor, distance: str = "cosine", margin: float = 0.5
) -> Tensor:
    """The contrastive loss summed over the hard pairs of the batch only: positives (y = 1) farther apart than the
    closest negative, negatives (y = 0) closer than the farthest positive: sum d_p^2 + sum relu(margin - d_n)^2.

    A batch without negatives takes the positives' mean distance as the threshold (and vice versa), as
    sentence-transformers does. scores must be 0 or 1 (sentence-transformers silently drops other values).
    """
    d, y = _pairs(embeddings_a, embeddings_b, scores, distance)
    margin = check_number(margin, "margin")
    d_pos, d_neg = d[y == 1], d[y == 0]
    if len(d_pos) + len(d_neg) != len(d):
        raise ValueError("scores must be 0 (dissimilar) or 1 (similar) for online_contrastive_loss")
    # the thresholds select pairs (no gradient flows through a comparison)
    hard_neg = d_neg[d_neg < (d_pos.max() if len(d_pos) else d_neg.mean())]
    hard_pos = d_pos[d_pos > (d_neg.min() if len(d_neg) else d_pos.mean())]
    return hard_pos.pow(2).sum() + F.relu(margin - hard_neg).pow(2).sum()


@needs("scores")
def cosine_similarity_loss(embeddings_a: Tensor, embeddings_b: Tensor, scores: Tensor) -> Tensor:
    """mean_i (cos(a_i, b_i) - scores_i)^2: regress the cosine onto the gold score (sentence-transformers'
    CosineSimilarityLoss with its default MSE). Scores should lie in [-1, 1], usually [0, 1]."""
    a, b = check_embeddings(embeddings_a=embeddings_a, embeddings_b=embeddings_b)
    y = check_targets(scores, a.shape[0], "scores", "scores").to(a.dtype)
    return F.mse_loss(cosine_similarity(a, b), y)
