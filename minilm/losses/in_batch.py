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
    report: bool = False,
) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
    """InfoNCE with in-batch negatives: cross-entropy of scale * sim(anchor_i, every positive and hard negative),
    target positive_i. similarity "cosine" or "dot".

    symmetric=True averages it with the positive -> anchor direction (candidates: the anchors only), i.e.
    sentence-transformers' MultipleNegativesSymmetricRankingLoss (directions query_to_doc + doc_to_query,
    partition_mode per_direction).

    report=True returns ``(loss, statistics)`` of the anchor -> candidates direction (see ``ranking_statistics``);
    the loss is the same.
    """
    named_negatives = {f"hard_negatives[{i}]": n for i, n in enumerate(hard_negatives)}
    anchors, positives, *negatives = check_embeddings(anchors=anchors, positives=positives, **named_negatives)
    sim = lookup(SIMILARITY_MATRICES, similarity, "similarity")
    scale = check_number(scale, "scale", positive=True)
    check_flag(symmetric, "symmetric")
    check_flag(report, "report")
    candidates = torch.cat([positives, *negatives])  # (B * (1 + k), D); row i is anchor i's positive
    similarities = sim(anchors, candidates)  # (B, B * (1 + k))
    logits = scale * similarities
    positive = logits.diagonal()  # (B,) anchor i against its own positive
    # Cross-entropy written as logsumexp - positive, as sentence-transformers 6.x writes it. F.cross_entropy is the
    # same formula but rounds differently once the loss is near 0 (rel. error ~1e-5 there); under Adam, which
    # normalises away gradient magnitude, that difference alone moves weights ~1e-4 apart from theirs in one step.
    log_z = logits.logsumexp(dim=1)  # (B,)
    if symmetric:  # the positive -> anchor direction shares the diagonal; average the two partition functions
        log_z = (log_z + (scale * sim(positives, anchors)).logsumexp(dim=1)) / 2
    loss = (log_z - positive).mean()
    return (loss, ranking_statistics(similarities)) if report else loss


@torch.no_grad()
def ranking_statistics(similarities: Tensor) -> dict[str, Tensor]:
    """What an in-batch ranking looked like: (B, C) anchor-candidate similarities, candidate i anchor i's positive.

    positive_similarity: mean sim(anchor_i, positive_i); hardest_negative_similarity: mean over anchors of the most
    similar other candidate (-inf, reported as None, when there is none); accuracy: fraction of anchors whose positive
    is strictly the most similar candidate. Detached; no host sync.
    """
    sims = similarities.detach()
    rows = torch.arange(sims.shape[0], device=sims.device)
    positive = sims[rows, rows]  # (B,)
    hardest = sims.index_put((rows, rows), sims.new_tensor(-torch.inf)).max(dim=1).values  # (B,)
    return {"positive_similarity": positive.mean(), "hardest_negative_similarity": hardest.mean(),
            "accuracy": (positive > hardest).float().mean()}
