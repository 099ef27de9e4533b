"""In-batch negatives with false-negative masking, reporting how much it masked.

In-batch negatives assume every other row's text is unrelated to the anchor. When several rows share a topic, some
"negatives" are in fact positives, and the loss pushes them away. A common remedy masks the candidates that look too
good to be negatives: those whose similarity to the anchor comes within ``margin`` of the anchor's own positive.

How much that masks depends on the data and on the margin, and it can be far more than intended: hard negatives
are close to the positive by construction, so a margin of 0.1 can mask most of them. The loss therefore reports
what it masked (``masked_fraction`` of all negatives, ``masked_hard_negatives`` of the rows' own hard negatives),
and the trainer logs it with every step::

    [loss]
    name = "../examples/losses/masked_negatives.py:masked_in_batch_loss"
    margin = 0.1
"""

from __future__ import annotations

import torch
from torch import Tensor

from minilm.losses import needs
from minilm.losses.distances import cosine_similarity_matrix
from minilm.losses.in_batch import ranking_statistics
from minilm.util.checks import check_embeddings, check_number


@needs("columns", columns=2, more_columns=True, in_batch_negatives=True)
def masked_in_batch_loss(
    anchors: Tensor, positives: Tensor, *hard_negatives: Tensor, scale: float = 20.0, margin: float = 0.1
) -> tuple[Tensor, dict]:
    """MNRL (cosine, ``scale``) in which candidate j != i is left out of anchor i's softmax when
    cos(a_i, c_j) > cos(a_i, p_i) - margin. Candidates: the positives, then each hard-negative column."""
    named = {f"hard_negatives[{i}]": n for i, n in enumerate(hard_negatives)}
    anchors, positives, *negatives = check_embeddings(anchors=anchors, positives=positives, **named)
    scale = check_number(scale, "scale", positive=True)
    margin = check_number(margin, "margin")
    similarities = cosine_similarity_matrix(anchors, torch.cat([positives, *negatives]))  # (B, B * (1 + k))
    b, candidates = similarities.shape
    rows = torch.arange(b, device=similarities.device)
    own = torch.zeros_like(similarities, dtype=torch.bool)
    own[rows, rows] = True  # the anchor's positive is never masked
    positive = similarities.diagonal()  # (B,)
    # The decision is made on values: masking is a choice of which terms enter the loss, not something to learn.
    masked = (similarities.detach() > positive.detach()[:, None] - margin) & ~own  # (B, C)
    logits = (scale * similarities).masked_fill(masked, -torch.inf)
    loss = (logits.logsumexp(dim=1) - scale * positive).mean()
    with torch.no_grad():
        stats = {"masked_fraction": masked.sum() / max(b * candidates - b, 1), **ranking_statistics(similarities)}
        if negatives:  # anchor i's own hard negatives sit at columns b * (k + 1) + i
            hard = torch.stack([masked[rows, b * (k + 1) + rows] for k in range(len(negatives))])  # (k, B)
            stats["masked_hard_negatives"] = hard.float().mean()
    return loss, stats
