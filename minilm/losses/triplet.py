"""Triplet losses: triplets given as three columns, and triplets mined inside a labelled batch.

Layers: ``distances.py`` (how far apart) -> ``miners.py`` (which triplets) -> here (how to penalise). Values and
gradients match sentence-transformers 6.2 (tests/parity/test_losses_vs_st.py).

``report=True`` makes a loss return ``(loss, statistics)`` (see ``inputs.split_output``): the fraction of active
triplets (those with a positive loss; for soft margin, those whose positive is farther than their negative) and the
mean positive / negative distance, the hardest ones per anchor for the batch losses. They are detached tensors
computed from values the loss already has; the loss itself is the same either way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from minilm.losses import miners
from minilm.losses.distances import DISTANCE_MATRICES, PAIRWISE_DISTANCES
from minilm.losses.inputs import needs
from minilm.util.checks import check_embeddings, check_flag, check_number, check_targets, lookup


def _hinge(x: Tensor, margin: float, soft_margin: bool) -> Tensor:
    """relu(x + margin), or softplus(x) (no margin) for the soft-margin variants. x = d(a, p) - d(a, n)."""
    return F.softplus(x) if soft_margin else F.relu(x + margin)


def _active(x: Tensor, margin: float, soft_margin: bool) -> Tensor:
    """Bool: the triplet contributes: x + margin > 0 (hard margin) or x > 0 (soft margin: the triplet is violated)."""
    return x.detach() > 0 if soft_margin else x.detach() + margin > 0


@torch.no_grad()
def _hardest_statistics(dist: Tensor, labels: Tensor) -> dict[str, Tensor]:
    dist = dist.detach()
    return {
        "hardest_positive_distance": miners.hardest_positive(dist, labels).mean(),
        "hardest_negative_distance": miners.hardest_negative(dist, labels).mean(),
    }


@needs("columns", columns=3)
def triplet_loss(
    anchor: Tensor,
    positive: Tensor,
    negative: Tensor,
    distance: str = "euclidean",
    margin: float = 5.0,
    report: bool = False,
) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
    """mean_i relu(d(a_i, p_i) - d(a_i, n_i) + margin); distance "euclidean", "cosine" (1 - cos) or "manhattan".

    Uses true (non-negative) distances, as sentence-transformers 6.x does. Beware: sentence-transformers 5.0-5.1
    negated the euclidean and manhattan distances here, so runs trained with those versions optimised the opposite
    objective (pulling negatives closer) and their numbers are not comparable with ours.
    """
    anchor, positive, negative = check_embeddings(anchor=anchor, positive=positive, negative=negative)
    dist = lookup(PAIRWISE_DISTANCES, distance, "distance")
    margin = check_number(margin, "margin")
    check_flag(report, "report")
    d_ap, d_an = dist(anchor, positive), dist(anchor, negative)  # (B,) each
    loss = F.relu(d_ap - d_an + margin).mean()
    if not report:
        return loss
    return loss, {
        "active_triplets": _active(d_ap - d_an, margin, False).float().mean(),
        "positive_distance": d_ap.detach().mean(),
        "negative_distance": d_an.detach().mean(),
    }


def _labelled(
    embeddings: Tensor, labels: Tensor, distance: str, margin: float, soft_margin: bool, report: bool
) -> tuple[Tensor, Tensor, float]:
    """Shared front of the batch triplet losses: check inputs, return (distance matrix (B, B), labels (B,), margin)."""
    check_flag(soft_margin, "soft_margin")
    check_flag(report, "report")
    (embeddings,) = check_embeddings(embeddings=embeddings)
    labels = check_targets(labels, embeddings.shape[0], "labels", "labels")
    to_matrix = lookup(DISTANCE_MATRICES, distance, "distance")
    return to_matrix(embeddings), labels, check_number(margin, "margin")


@needs("labels")
def batch_hard_triplet_loss(
    embeddings: Tensor,
    labels: Tensor,
    margin: float = 5.0,
    distance: str = "euclidean",
    soft_margin: bool = False,
    report: bool = False,
) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
    """mean over anchors of hinge(hardest d(a, p) - hardest d(a, n)) (Hermans et al. 2017).

    Anchors without a positive use d(a, p) = 0; anchors without a negative use the miner's fallback (see
    ``miners.hardest_negative``); a batch of one gives ``margin``. soft_margin=True uses softplus and ignores margin
    (sentence-transformers' BatchHardSoftMarginTripletLoss).
    """
    dist, labels, margin = _labelled(embeddings, labels, distance, margin, soft_margin, report)
    hardest_positive, hardest_negative = miners.hardest_positive(dist, labels), miners.hardest_negative(dist, labels)
    gap = hardest_positive - hardest_negative  # (B,)
    loss = _hinge(gap, margin, soft_margin).mean()
    if not report:
        return loss
    return loss, {
        "active_triplets": _active(gap, margin, soft_margin).float().mean(),
        "hardest_positive_distance": hardest_positive.detach().mean(),
        "hardest_negative_distance": hardest_negative.detach().mean(),
    }


@needs("labels")
def batch_semi_hard_triplet_loss(
    embeddings: Tensor,
    labels: Tensor,
    margin: float = 5.0,
    distance: str = "euclidean",
    soft_margin: bool = False,
    report: bool = False,
) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
    """Mean over all (anchor, positive) pairs of hinge(d(a, p) - d(a, n_semi)) (FaceNet, Schroff et al. 2015).

    n_semi is ``miners.semi_hard_negative``. No positive pairs in the batch gives 0. soft_margin=True (softplus, no
    margin) has no sentence-transformers counterpart.
    """
    dist, labels, margin = _labelled(embeddings, labels, distance, margin, soft_margin, report)
    pairs = miners.positive_mask(labels)  # (B, B)
    gap = dist - miners.semi_hard_negative(dist, labels)  # (B, B): (anchor, positive) -> d(a, p) - d(a, n_semi)
    per_pair = _hinge(gap, margin, soft_margin) * pairs  # (B, B)
    loss = per_pair.sum() / pairs.sum().clamp_min(1)
    if not report:
        return loss
    active = (_active(gap, margin, soft_margin) & pairs).sum() / pairs.sum().clamp_min(1)  # of the (a, p) pairs
    return loss, {"active_triplets": active, **_hardest_statistics(dist, labels)}


@needs("labels")
def batch_all_triplet_loss(
    embeddings: Tensor,
    labels: Tensor,
    margin: float = 5.0,
    distance: str = "euclidean",
    soft_margin: bool = False,
    report: bool = False,
) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
    """hinge(d(a, p) - d(a, n)) averaged over the valid triplets whose loss is > 1e-16 (easy triplets do not dilute).

    No such triplet gives 0. soft_margin=True (softplus, no margin) has no sentence-transformers counterpart.
    """
    dist, labels, margin = _labelled(embeddings, labels, distance, margin, soft_margin, report)
    a, p = miners.positive_mask(labels).nonzero(as_tuple=True)  # (P,) each: only real pairs, not a (B, B, B) cube
    gap = dist[a, p][:, None] - dist[a]  # (P, B): column n is d(a, p) - d(a, n)
    valid = labels[a][:, None] != labels[None, :]  # (P, B): keep n negative
    per_triplet = _hinge(gap, margin, soft_margin) * valid
    counted = (per_triplet > 1e-16).sum()
    loss = per_triplet.sum() / counted.clamp_min(1)
    if not report:
        return loss
    # active: the triplets the mean runs over (loss > 1e-16), as a fraction of all valid triplets
    return loss, {"active_triplets": counted / valid.sum().clamp_min(1), **_hardest_statistics(dist, labels)}
