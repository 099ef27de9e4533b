"""Triplet mining from a (B, B) distance matrix and (B,) class labels.

A miner picks, per anchor (row), which positive and which negative a triplet loss should look at. Positives of anchor
i are the other rows with i's label; negatives are rows with a different label. Edge cases (no positive, no negative,
a batch of one) resolve exactly as sentence-transformers 6.2 resolves them, so losses built on these agree with it.
All miners are vectorised over the batch; the selections are made on values, gradients flow to the selected entries.
"""

from __future__ import annotations

import torch
from torch import Tensor


def positive_mask(labels: Tensor) -> Tensor:
    """(B, B) bool: j is a positive of anchor i (same label, j != i)."""
    same = labels[:, None] == labels[None, :]
    return same & ~torch.eye(len(labels), dtype=torch.bool, device=labels.device)


def negative_mask(labels: Tensor) -> Tensor:
    """(B, B) bool: j is a negative of anchor i (different label)."""
    return labels[:, None] != labels[None, :]


def hardest_positive(dist: Tensor, labels: Tensor) -> Tensor:
    """(B,) farthest positive per anchor; 0 for an anchor without positives (non-positives read as distance 0)."""
    return (dist * positive_mask(labels)).max(dim=1).values


def hardest_negative(dist: Tensor, labels: Tensor) -> Tensor:
    """(B,) closest negative per anchor.

    Non-negatives are lifted by the row maximum so they never beat a real negative; an anchor with no negative at all
    (one class in the batch) therefore gets row max + row min, which is the row max for euclidean distance.
    """
    row_max = dist.max(dim=1, keepdim=True).values  # (B, 1)
    return (dist + row_max * ~negative_mask(labels)).min(dim=1).values


def farthest_negative(dist: Tensor, labels: Tensor) -> Tensor:
    """(B, 1) farthest negative per anchor, or the row minimum when the anchor has no negative."""
    row_min = dist.min(dim=1, keepdim=True).values  # (B, 1)
    # shifting by the row min makes every entry >= 0, so masked-out zeros cannot beat a real negative
    return ((dist - row_min) * negative_mask(labels)).max(dim=1, keepdim=True).values + row_min


def semi_hard_negative(dist: Tensor, labels: Tensor) -> Tensor:
    """(B, B) for each (anchor i, candidate j): the closest negative of i strictly farther than dist[i, j] (FaceNet's
    semi-hard negative); if there is none, i's farthest negative; with no negatives at all, i's row minimum.

    Sorting each row of negatives once and binary-searching keeps this O(B^2 log B) instead of a (B, B, B) cube.
    """
    n = dist.shape[0]
    # non-negatives become +inf and sort last; the diagonal is never a negative, so every row ends in +inf
    negatives = dist.masked_fill(~negative_mask(labels), torch.inf).sort(dim=1, stable=True).values  # (B, B)
    first_farther = torch.searchsorted(negatives.detach(), dist.detach().contiguous(), right=True)  # (B, B)
    candidate = negatives.gather(1, first_farther.clamp_max(n - 1))  # (B, B), +inf where none is farther
    return torch.where(torch.isfinite(candidate), candidate, farthest_negative(dist, labels))


def multi_similarity_pairs(sim: Tensor, labels: Tensor, epsilon: float) -> tuple[Tensor, Tensor]:
    """(B, B) bool masks of the informative pairs of Wang et al. 2019 (pytorch-metric-learning's
    MultiSimilarityMiner), from a similarity matrix (larger is closer): a positive pair is kept when its similarity
    minus epsilon is below the anchor's most similar negative; a negative pair when its similarity plus epsilon is
    above the anchor's least similar positive. An anchor without negatives keeps no positive, and vice versa."""
    pos, neg = positive_mask(labels), negative_mask(labels)
    sim = sim.detach()  # selection only
    hardest_negative = sim.masked_fill(~neg, -torch.inf).amax(dim=1, keepdim=True)  # (B, 1)
    easiest_positive = sim.masked_fill(~pos, torch.inf).amin(dim=1, keepdim=True)  # (B, 1)
    return pos & (sim - epsilon < hardest_negative), neg & (sim + epsilon > easiest_positive)
