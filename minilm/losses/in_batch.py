"""In-batch negatives: every other row's positive (and every hard negative) is a negative for an anchor."""

from __future__ import annotations

import torch
from torch import Tensor

from minilm.checks import check_embeddings, check_flag, check_number, lookup
from minilm.losses.distances import SIMILARITY_MATRICES
from minilm.losses.inputs import needs


@needs("columns", columns=2, more_columns=True, in_batch_negatives=True)
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
