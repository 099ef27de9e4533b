"""Regularisers added to another loss: Global Orthogonal Regularization (Zhang et al. 2017) spreads a batch's
embeddings out, pushing non-matching pairs towards orthogonality. Matches sentence-transformers 6.2's
GlobalOrthogonalRegularizationLoss, which its trainer adds to the main loss
(tests/parity/test_losses_vs_st_catalogue.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from minilm.losses.distances import SIMILARITY_MATRICES
from minilm.losses.inputs import split_output
from minilm.util.checks import check_embeddings, check_number, lookup

AGGREGATIONS = {"mean": torch.mean, "sum": torch.sum}


def global_orthogonal_regularization(
    *embeddings: Tensor,
    mean_weight: float = 1.0,
    second_moment_weight: float = 1.0,
    aggregation: str = "mean",
    similarity: str = "cosine",
) -> tuple[Tensor, dict[str, Tensor]]:
    """For each column X (B, D), with s the similarities of its B (B - 1) distinct pairs:
    mean term (mean s)^2 and second-moment term relu(mean s^2 - 1/D) (the value for random directions);
    returns (mean_weight * aggregate(mean terms) + second_moment_weight * aggregate(second-moment terms), the two
    weighted parts as statistics), aggregate "mean" or "sum" over columns."""
    if not embeddings:
        raise TypeError("global_orthogonal_regularization needs at least one embedding column")
    columns = check_embeddings(**{f"embeddings[{i}]": e for i, e in enumerate(embeddings)})
    mean_weight = check_number(mean_weight, "mean_weight")
    second_moment_weight = check_number(second_moment_weight, "second_moment_weight")
    if not mean_weight and not second_moment_weight:
        raise ValueError("mean_weight and second_moment_weight are both 0: the regulariser would be 0")
    aggregate = lookup(AGGREGATIONS, aggregation, "aggregation")
    sim = lookup(SIMILARITY_MATRICES, similarity, "similarity")
    mean_terms, second_terms = [], []
    for x in columns:
        b, d = x.shape
        s = sim(x, x).fill_diagonal_(0)  # (B, B), no self-pairs (in place: the product's backward does not need it)
        pairs = max(b * (b - 1), 1)
        mean_terms.append((s.sum() / pairs).pow(2))
        second_terms.append(F.relu(s.pow(2).sum() / pairs - 1.0 / d))
    parts = {}
    if mean_weight:
        parts["gor_mean"] = mean_weight * aggregate(torch.stack(mean_terms))
    if second_moment_weight:
        parts["gor_second_moment"] = second_moment_weight * aggregate(torch.stack(second_terms))
    return sum(parts.values()), parts


def with_global_orthogonal_regularization(
    loss_fn: Callable[..., Tensor],
    mean_weight: float = 1.0,
    second_moment_weight: float = 1.0,
    aggregation: str = "mean",
    similarity: str = "cosine",
) -> Callable[..., tuple[Tensor, dict]]:
    """loss_fn plus global_orthogonal_regularization of its positional embedding arguments; the statistics are the
    loss's own plus gor_mean / gor_second_moment. Same signature as loss_fn."""
    settings = dict(
        mean_weight=mean_weight,
        second_moment_weight=second_moment_weight,
        aggregation=aggregation,
        similarity=similarity,
    )
    global_orthogonal_regularization(torch.eye(2), **settings)  # refuse bad settings now, not at the first step

    @functools.wraps(loss_fn)
    def wrapped(*args, **kwargs):
        loss, stats = split_output(loss_fn(*args, **kwargs))
        regulariser, parts = global_orthogonal_regularization(
            *(x for x in args if isinstance(x, Tensor) and x.ndim == 2), **settings
        )
        return loss + regulariser, {**stats, **parts}

    return wrapped
