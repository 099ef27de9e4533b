"""Guided in-batch negatives: a frozen guide model's similarities decide which in-batch candidates are likely false
negatives, and those are masked out of the softmax. Matches sentence-transformers 6.2's GISTEmbedLoss and (through
the gradient cache) CachedGISTEmbedLoss (tests/parity/test_losses_vs_st_catalogue.py).

The guide's embeddings of every column are an input here (``guide=``), declared with ``@needs(..., guide=True)``:
the loss stays a pure function of tensors. The trainer loads the guide model a recipe names (``[loss] guide``), keeps
it frozen and out of the optimiser, and embeds each batch with it (``minilm/train/frozen.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from minilm.losses.distances import cosine_similarity_matrix
from minilm.losses.inputs import needs
from minilm.util.checks import check_embeddings, check_flag, check_number, lookup

MARGIN_STRATEGIES = {
    "absolute": lambda positive, margin: positive - margin,
    "relative": lambda positive, margin: positive - positive.abs() * margin,
}


@needs("columns", columns=2, more_columns=True, in_batch_negatives=True, guide=True)
def gist_embed_loss(
    anchors: Tensor,
    positives: Tensor,
    *hard_negatives: Tensor,
    guide: Sequence[Tensor],
    temperature: float = 0.01,
    margin_strategy: str = "absolute",
    margin: float = 0.0,
    contrast_anchors: bool = True,
    contrast_positives: bool = True,
) -> Tensor:
    """GISTEmbed (Solatorio 2024): cross-entropy over cos / temperature of anchor i against every positive (target
    positive_i), every hard negative and, optionally, the other anchors (anchor -> anchor) and positive i against
    the positives (positive -> positive). A candidate is masked out when the guide finds it more similar than
    threshold_i = g(a_i, p_i) - margin ("absolute") or g(a_i, p_i) - |g(a_i, p_i)| margin ("relative"), g the guide's
    cosine; positive_i itself is never masked.

    ``guide``: the guide model's embeddings of the same columns, in order (any width; no gradient flows to them).
    """
    named = {f"hard_negatives[{i}]": n for i, n in enumerate(hard_negatives)}
    anchors, positives, *negatives = check_embeddings(anchors=anchors, positives=positives, **named)
    if isinstance(guide, Tensor) or not isinstance(guide, Sequence) or len(guide) != 2 + len(negatives):
        raise TypeError(
            f"guide must be a list of the guide model's embeddings, one per column "
            f"({2 + len(negatives)}), got {type(guide).__name__}"
            + (f" of {len(guide)}" if isinstance(guide, Sequence) else "")
        )
    g_anchors, g_positives, *g_negatives = (
        g.detach() for g in check_embeddings(**{f"guide[{i}]": g for i, g in enumerate(guide)})
    )
    if g_anchors.shape[0] != anchors.shape[0]:
        raise ValueError(f"guide[0] has {g_anchors.shape[0]} rows but anchors has {anchors.shape[0]}")
    threshold_of = lookup(MARGIN_STRATEGIES, margin_strategy, "margin_strategy")
    margin = check_number(margin, "margin")
    temperature = check_number(temperature, "temperature", positive=True)
    check_flag(contrast_anchors, "contrast_anchors")
    check_flag(contrast_positives, "contrast_positives")

    guided_ap = cosine_similarity_matrix(g_anchors, g_positives)  # (B, B)
    threshold = threshold_of(guided_ap.diagonal()[:, None], margin)  # (B, 1)
    own = torch.eye(anchors.shape[0], dtype=torch.bool, device=anchors.device)

    def filtered(sim: Tensor, guided: Tensor, keep: Tensor | None = None) -> Tensor:
        masked = guided > threshold  # the guide rates the candidate above the anchor's own positive
        return sim.masked_fill(masked if keep is None else masked & ~keep, -torch.inf)

    pools = [filtered(cosine_similarity_matrix(anchors, positives), guided_ap, keep=own)]
    if contrast_anchors:
        pools.append(
            filtered(cosine_similarity_matrix(anchors, anchors), cosine_similarity_matrix(g_anchors, g_anchors))
        )
    if contrast_positives:
        pools.append(
            filtered(cosine_similarity_matrix(positives, positives), cosine_similarity_matrix(g_positives, g_positives))
        )
    for negative, g_negative in zip(negatives, g_negatives):
        pools.append(
            filtered(cosine_similarity_matrix(anchors, negative), cosine_similarity_matrix(g_anchors, g_negative))
        )
    logits = torch.cat(pools, dim=1) / temperature  # (B, B * pools)
    return F.cross_entropy(logits, torch.arange(anchors.shape[0], device=anchors.device))
