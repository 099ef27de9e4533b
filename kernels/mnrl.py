"""Fused in-batch-negatives loss: scale * cosine-similarity matrix + cross-entropy compiled into one graph.

Reference: ``minilm.losses.multiple_negatives_ranking_loss(anchors, positives, *hard_negatives, scale=...)``
with similarity="cosine", symmetric=False. ``scale`` is a 0-d tensor inside the graph, so changing it does not
recompile, and shapes are dynamic, so a new batch size does not either.
"""

from __future__ import annotations

import torch
from torch import Tensor

from minilm.losses.distances import cosine_similarity_matrix
from minilm.util.checks import check_embeddings, check_number


def _mnrl(anchors: Tensor, candidates: Tensor, scale: Tensor) -> Tensor:
    logits = scale * cosine_similarity_matrix(anchors, candidates)  # (B, B * (1 + k)); row i's target is column i
    # logsumexp - positive, as the reference and sentence-transformers write it: F.cross_entropy rounds differently
    # near zero loss, which Adam amplifies (minilm/losses/in_batch.py).
    return (torch.logsumexp(logits, dim=1) - logits.diagonal()).mean()


_compiled_mnrl = torch.compile(_mnrl, dynamic=True)


def fused_mnrl_loss(anchors: Tensor, positives: Tensor, *hard_negatives: Tensor, scale: float = 20.0) -> Tensor:
    """Compiled MultipleNegativesRankingLoss (cosine): same inputs, value and gradients as the reference."""
    named = {f"hard_negatives[{i}]": n for i, n in enumerate(hard_negatives)}
    anchors, positives, *negatives = check_embeddings(anchors=anchors, positives=positives, **named)
    scale = check_number(scale, "scale", positive=True)
    candidates = torch.cat([positives, *negatives])  # (B * (1 + k), D)
    return _compiled_mnrl(anchors, candidates, torch.tensor(scale, dtype=anchors.dtype, device=anchors.device))
