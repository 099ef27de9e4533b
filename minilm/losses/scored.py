"""Losses on pairs with a real-valued gold similarity score."""

from __future__ import annotations

import torch
from torch import Tensor

from minilm.losses.distances import angle_similarity, cosine_similarity
from minilm.losses.inputs import needs
from minilm.util.checks import check_embeddings, check_number, check_targets


@needs("scores")
def cosent_loss(embeddings_a: Tensor, embeddings_b: Tensor, scores: Tensor, scale: float = 20.0) -> Tensor:
    """CoSENT (Su 2022): log(1 + sum over pairs with scores[i] < scores[j] of exp(s_i - s_j)), s = scale * cos(a, b).

    Every pair whose cosines are ranked against the gold scores is penalised. Ties in scores form no pair.
    """
    a, b = check_embeddings(embeddings_a=embeddings_a, embeddings_b=embeddings_b)
    scores = check_targets(scores, a.shape[0], "scores", "scores")
    return _ranking_loss(check_number(scale, "scale", positive=True) * cosine_similarity(a, b), scores)


@needs("scores")
def angle_loss(embeddings_a: Tensor, embeddings_b: Tensor, scores: Tensor, scale: float = 20.0) -> Tensor:
    """AnglE (Li & Li 2024): CoSENT's ranking objective with s = scale * angle_similarity(a, b) instead of the cosine,
    whose gradient vanishes near cos = +-1 (sentence-transformers' AnglELoss on pairs with scores)."""
    a, b = check_embeddings(embeddings_a=embeddings_a, embeddings_b=embeddings_b)
    scores = check_targets(scores, a.shape[0], "scores", "scores")
    return _ranking_loss(check_number(scale, "scale", positive=True) * angle_similarity(a, b), scores)


def _ranking_loss(s: Tensor, scores: Tensor) -> Tensor:
    """log(1 + sum_{i, j: scores_i < scores_j} exp(s_i - s_j)) for predicted similarities s (B,)."""
    scores, order = scores.sort()
    s = s[order]
    # Instead of the (B, B) pair matrix: for each i, log sum_{j: scores_j > scores_i} exp(-s_j) is a suffix
    # log-sum-exp over the sorted batch, starting after i's tie group.
    suffix = torch.logcumsumexp(-s.flip(0), dim=0).flip(0)  # (B,) suffix[k] = log sum_{j >= k} exp(-s_j)
    suffix = torch.cat([suffix, s.new_full((1,), -torch.inf)])  # (B + 1,) empty suffix
    higher = torch.searchsorted(scores, scores, right=True)  # (B,) first index with a strictly higher score
    per_anchor = s + suffix[higher]  # (B,) log sum_j exp(s_i - s_j)
    return torch.logsumexp(torch.cat([s.new_zeros(1), per_anchor]), dim=0)  # the 0 is the "1 +"
