"""Fine-tuning losses as pure functions of embedding tensors.

Layers: ``distances.py`` (how far apart) -> ``miners.py`` (which triplets) -> here (how to penalise). Each loss checks
its inputs through the shared helpers in ``distances.py``, so every loss rejects bad input with the same wording.
Values and gradients match sentence-transformers 6.2 (tests/test_losses_vs_st.py); see docs/adding-a-loss.md.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from minilm import miners
from minilm.distances import (
    DISTANCE_MATRICES,
    PAIRWISE_DISTANCES,
    SIMILARITY_MATRICES,
    check_embeddings,
    check_targets,
    cosine_similarity,
    lookup,
)


def check_number(value: object, name: str, positive: bool = False) -> float:
    """A finite real hyper-parameter (bools refused: margin=True is a typo, not 1.0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not math.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"{name} must be a finite{' positive' if positive else ''} number, got {value}")
    return float(value)


def check_flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def _hinge(x: Tensor, margin: float, soft_margin: bool) -> Tensor:
    """relu(x + margin), or softplus(x) (no margin) for the soft-margin variants. x = d(a, p) - d(a, n)."""
    return F.softplus(x) if soft_margin else F.relu(x + margin)


# ---------------------------------------------------------------------------------------------------------------------
# triplets given as three columns


def triplet_loss(
    anchor: Tensor, positive: Tensor, negative: Tensor, distance: str = "euclidean", margin: float = 5.0
) -> Tensor:
    """mean_i relu(d(a_i, p_i) - d(a_i, n_i) + margin); distance "euclidean", "cosine" (1 - cos) or "manhattan".

    Uses true (non-negative) distances, as sentence-transformers 6.x does. Beware: sentence-transformers 5.0-5.1
    negated the euclidean and manhattan distances here, so runs trained with those versions optimised the opposite
    objective (pulling negatives closer) and their numbers are not comparable with ours.
    """
    anchor, positive, negative = check_embeddings(anchor=anchor, positive=positive, negative=negative)
    dist = lookup(PAIRWISE_DISTANCES, distance, "distance")
    margin = check_number(margin, "margin")
    return F.relu(dist(anchor, positive) - dist(anchor, negative) + margin).mean()


# ---------------------------------------------------------------------------------------------------------------------
# triplets mined inside a labelled batch


def _labelled(
    embeddings: Tensor, labels: Tensor, distance: str, margin: float, soft_margin: bool
) -> tuple[Tensor, Tensor, float]:
    """Shared front of the batch triplet losses: check inputs, return (distance matrix (B, B), labels (B,), margin)."""
    check_flag(soft_margin, "soft_margin")
    (embeddings,) = check_embeddings(embeddings=embeddings)
    labels = check_targets(labels, embeddings.shape[0], "labels", "labels")
    to_matrix = lookup(DISTANCE_MATRICES, distance, "distance")
    return to_matrix(embeddings), labels, check_number(margin, "margin")


def batch_hard_triplet_loss(
    embeddings: Tensor, labels: Tensor, margin: float = 5.0, distance: str = "euclidean", soft_margin: bool = False
) -> Tensor:
    """mean over anchors of hinge(hardest d(a, p) - hardest d(a, n)) (Hermans et al. 2017).

    Anchors without a positive use d(a, p) = 0; anchors without a negative use the miner's fallback (see
    ``miners.hardest_negative``); a batch of one gives ``margin``. soft_margin=True uses softplus and ignores margin
    (sentence-transformers' BatchHardSoftMarginTripletLoss).
    """
    dist, labels, margin = _labelled(embeddings, labels, distance, margin, soft_margin)
    gap = miners.hardest_positive(dist, labels) - miners.hardest_negative(dist, labels)  # (B,)
    return _hinge(gap, margin, soft_margin).mean()


def batch_semi_hard_triplet_loss(
    embeddings: Tensor, labels: Tensor, margin: float = 5.0, distance: str = "euclidean", soft_margin: bool = False
) -> Tensor:
    """Mean over all (anchor, positive) pairs of hinge(d(a, p) - d(a, n_semi)) (FaceNet, Schroff et al. 2015).

    n_semi is ``miners.semi_hard_negative``. No positive pairs in the batch gives 0. soft_margin=True (softplus, no
    margin) has no sentence-transformers counterpart.
    """
    dist, labels, margin = _labelled(embeddings, labels, distance, margin, soft_margin)
    pairs = miners.positive_mask(labels)  # (B, B)
    per_pair = _hinge(dist - miners.semi_hard_negative(dist, labels), margin, soft_margin) * pairs  # (B, B)
    return per_pair.sum() / pairs.sum().clamp_min(1)


def batch_all_triplet_loss(
    embeddings: Tensor, labels: Tensor, margin: float = 5.0, distance: str = "euclidean", soft_margin: bool = False
) -> Tensor:
    """hinge(d(a, p) - d(a, n)) averaged over the valid triplets whose loss is > 1e-16 (easy triplets do not dilute).

    No such triplet gives 0. soft_margin=True (softplus, no margin) has no sentence-transformers counterpart.
    """
    dist, labels, margin = _labelled(embeddings, labels, distance, margin, soft_margin)
    a, p = miners.positive_mask(labels).nonzero(as_tuple=True)  # (P,) each: only real pairs, not a (B, B, B) cube
    gap = dist[a, p][:, None] - dist[a]  # (P, B): column n is d(a, p) - d(a, n)
    per_triplet = _hinge(gap, margin, soft_margin) * (labels[a][:, None] != labels[None, :])  # keep n negative
    return per_triplet.sum() / (per_triplet > 1e-16).sum().clamp_min(1)


# ---------------------------------------------------------------------------------------------------------------------
# in-batch negatives and scored pairs


def multiple_negatives_ranking_loss(
    anchors: Tensor,
    positives: Tensor,
    *hard_negatives: Tensor,
    scale: float = 20.0,
    similarity: str = "cosine",
    symmetric: bool = False,
) -> Tensor:
    """InfoNCE with in-batch negatives: cross-entropy of scale * sim(anchor_i, every positive and hard negative),
    target positive_i. similarity "cosine" or "dot".

    symmetric=True averages it with the positive -> anchor direction (candidates: the anchors only), i.e.
    sentence-transformers' MultipleNegativesSymmetricRankingLoss (directions query_to_doc + doc_to_query,
    partition_mode per_direction).
    """
    named_negatives = {f"hard_negatives[{i}]": n for i, n in enumerate(hard_negatives)}
    anchors, positives, *negatives = check_embeddings(anchors=anchors, positives=positives, **named_negatives)
    sim = lookup(SIMILARITY_MATRICES, similarity, "similarity")
    scale = check_number(scale, "scale", positive=True)
    check_flag(symmetric, "symmetric")
    candidates = torch.cat([positives, *negatives])  # (B * (1 + k), D); row i is anchor i's positive
    logits = scale * sim(anchors, candidates)  # (B, B * (1 + k))
    positive = logits.diagonal()  # (B,) anchor i against its own positive
    # Cross-entropy written as logsumexp - positive, as sentence-transformers 6.x writes it. F.cross_entropy is the
    # same formula but rounds differently once the loss is near 0 (rel. error ~1e-5 there); under Adam, which
    # normalises away gradient magnitude, that difference alone moves weights ~1e-4 apart from theirs in one step.
    log_z = logits.logsumexp(dim=1)  # (B,)
    if symmetric:  # the positive -> anchor direction shares the diagonal; average the two partition functions
        log_z = (log_z + (scale * sim(positives, anchors)).logsumexp(dim=1)) / 2
    return (log_z - positive).mean()


def cosent_loss(embeddings_a: Tensor, embeddings_b: Tensor, scores: Tensor, scale: float = 20.0) -> Tensor:
    """CoSENT (Su 2022): log(1 + sum over pairs with scores[i] < scores[j] of exp(s_i - s_j)), s = scale * cos(a, b).

    Every pair whose cosines are ranked against the gold scores is penalised. Ties in scores form no pair.
    """
    a, b = check_embeddings(embeddings_a=embeddings_a, embeddings_b=embeddings_b)
    scores = check_targets(scores, a.shape[0], "scores", "scores")
    s = check_number(scale, "scale", positive=True) * cosine_similarity(a, b)  # (B,)
    scores, order = scores.sort()
    s = s[order]
    # Instead of the (B, B) pair matrix: for each i, log sum_{j: scores_j > scores_i} exp(-s_j) is a suffix
    # log-sum-exp over the sorted batch, starting after i's tie group.
    suffix = torch.logcumsumexp(-s.flip(0), dim=0).flip(0)  # (B,) suffix[k] = log sum_{j >= k} exp(-s_j)
    suffix = torch.cat([suffix, s.new_full((1,), -torch.inf)])  # (B + 1,) empty suffix
    higher = torch.searchsorted(scores, scores, right=True)  # (B,) first index with a strictly higher score
    per_anchor = s + suffix[higher]  # (B,) log sum_j exp(s_i - s_j)
    return torch.logsumexp(torch.cat([s.new_zeros(1), per_anchor]), dim=0)  # the 0 is the "1 +"


# ---------------------------------------------------------------------------------------------------------------------
# wrappers and registry


def matryoshka(
    loss_fn: Callable[..., Tensor],
    dims: Sequence[int] = (384, 256, 128, 64, 32),
    weights: Sequence[float] | None = None,
) -> Callable[..., Tensor]:
    """Wrap a loss so it is summed over prefixes of the embedding (Kusupati et al. 2022):
    sum_k weights[k] * loss_fn(normalize(x[:, :dims[k]]) for every embedding argument x).

    Embedding arguments are the 2-D tensors (labels and scores are 1-D and pass through). Same signature as loss_fn.
    """
    dims = tuple(dims)
    weights = (1.0,) * len(dims) if weights is None else tuple(weights)
    if not dims or any(isinstance(d, bool) or not isinstance(d, int) or d <= 0 for d in dims):
        raise ValueError(f"dims must be a non-empty sequence of positive ints, got {dims}")
    if len(weights) != len(dims):
        raise ValueError(f"weights must have one entry per dim ({len(dims)}), got {len(weights)}")
    for w in weights:
        check_number(w, "weights")

    def is_embedding(x: object) -> bool:
        return isinstance(x, Tensor) and x.ndim == 2

    @functools.wraps(loss_fn)
    def wrapped(*args, **kwargs) -> Tensor:
        width = min((x.shape[1] for x in [*args, *kwargs.values()] if is_embedding(x)), default=0)
        if max(dims) > width:
            raise ValueError(f"dims {dims} exceed the embedding dimension {width}")
        total = 0.0
        for dim, weight in zip(dims, weights):

            def shrink(x):
                return F.normalize(x[:, :dim], dim=-1) if is_embedding(x) else x

            loss = loss_fn(*map(shrink, args), **{k: shrink(v) for k, v in kwargs.items()})
            total = total + weight * loss
        return total

    return wrapped


LOSSES: dict[str, Callable[..., Tensor]] = {
    "triplet": triplet_loss,
    "batch_hard_triplet": batch_hard_triplet_loss,
    "batch_semi_hard_triplet": batch_semi_hard_triplet_loss,
    "batch_all_triplet": batch_all_triplet_loss,
    "mnrl": multiple_negatives_ranking_loss,
    "cosent": cosent_loss,
}

# What a dataset must provide for each loss:
#   "columns": one text column per embedding argument (anchor, positive[, negatives...]), no label;
#   "labels":  one text column and an integer class label per row;
#   "scores":  two text columns and a real-valued similarity score per row.
LOSS_INPUTS: dict[str, str] = {
    "triplet": "columns",
    "batch_hard_triplet": "labels",
    "batch_semi_hard_triplet": "labels",
    "batch_all_triplet": "labels",
    "mnrl": "columns",
    "cosent": "scores",
}

MATRYOSHKA_KEYS = ("matryoshka_dims", "matryoshka_weights")


def make_loss(name: str, kwargs: dict | None = None) -> Callable[..., Tensor]:
    """The loss a recipe's ``[loss]`` table describes, hyper-parameters bound; matryoshka_dims/_weights wrap it."""
    kwargs = dict(kwargs or {})
    check_loss_kwargs(name, kwargs, dry_run=False)
    dims, weights = (kwargs.pop(k, None) for k in MATRYOSHKA_KEYS)
    if weights is not None and dims is None:
        raise ValueError("matryoshka_weights is set but matryoshka_dims is not")
    loss = functools.partial(LOSSES[name], **kwargs)
    return loss if dims is None else matryoshka(loss, dims, weights)


def check_loss_kwargs(name: str, kwargs: dict, dry_run: bool = True) -> None:
    """Validate a loss name and its keyword settings before any model loads; ValueError names the bad key.

    Keys are checked against the loss's signature; with dry_run the values are checked by running the loss once on a
    tiny random batch, so a bad distance name or a negative scale fails here, with the loss's own message.
    """
    if name not in LOSSES:
        raise ValueError(f"unknown loss name {name!r}; known: {sorted(LOSSES)}")
    params = inspect.signature(LOSSES[name]).parameters.values()
    settable = [p.name for p in params if p.default is not p.empty and p.kind is not p.VAR_KEYWORD]
    for key in kwargs:
        if key not in settable and key not in MATRYOSHKA_KEYS:
            raise ValueError(f"loss {name!r} has no setting {key!r}; valid: {settable + list(MATRYOSHKA_KEYS)}")
    if not dry_run:
        return
    dims = kwargs.get("matryoshka_dims")
    width = max(dims) if isinstance(dims, (list, tuple)) and dims and all(isinstance(d, int) for d in dims) else 8
    width = min(width, 8192)  # a dry run, not an allocation test
    try:
        loss = make_loss(name, kwargs)
        loss(*_dummy_inputs(name, width))
    except (TypeError, ValueError) as e:
        raise ValueError(f"loss {name!r}: {e}") from e


def _dummy_inputs(name: str, width: int) -> list[Tensor]:
    """Positional inputs of the right kind for a 4-row batch: one (4, width) embedding per required argument."""
    params = inspect.signature(LOSSES[name]).parameters.values()
    n_required = sum(p.default is p.empty and p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
    kind = LOSS_INPUTS[name]
    n_embeddings = n_required - (kind != "columns")
    gen = torch.Generator().manual_seed(0)
    inputs = list(torch.randn(n_embeddings, 4, width, generator=gen).unbind(0))
    if kind == "labels":
        inputs.append(torch.tensor([0, 0, 1, 1]))
    elif kind == "scores":
        inputs.append(torch.tensor([0.0, 0.3, 0.6, 1.0]))
    return inputs
