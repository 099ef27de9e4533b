"""Contrastive Tension (Carlsson et al. 2021): two copies of the model, trained against each other without labels.
Matches sentence-transformers 6.2's ContrastiveTensionLoss and ContrastiveTensionLossInBatchNegatives
(tests/parity/test_losses_vs_st_catalogue.py).

Both take the embeddings of the first copy (``embeddings_a``) and of the second (``embeddings_b``), and declare it
with ``@needs(..., model_copy=True)``: the trainer keeps a second trained copy of the model (built once from the
starting weights) that embeds the first column, while the model itself embeds the second and is what gets saved (the
ModelCopy extension, minilm/train/model_copy.py). The batches of ``contrastive_tension_loss`` (one identical pair, then
``pos_neg_ratio - 1`` random pairs) come from ``samplers.TensionPairSampler``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minilm.losses.distances import SIMILARITY_MATRICES, dot_similarity
from minilm.losses.inputs import needs
from minilm.util.checks import check_embeddings, check_number, check_targets, lookup


@needs("scores", model_copy=True)
def contrastive_tension_loss(embeddings_a: Tensor, embeddings_b: Tensor, scores: Tensor) -> Tensor:
    """sum_i BCE-with-logits(a_i . b_i, y_i), y = scores: 1 when both copies embedded the same sentence, 0 for two
    random sentences. Summed, not averaged, as in the paper and sentence-transformers."""
    a, b = check_embeddings(embeddings_a=embeddings_a, embeddings_b=embeddings_b)
    y = check_targets(scores, a.shape[0], "scores", "scores").to(a.dtype)
    return F.binary_cross_entropy_with_logits(dot_similarity(a, b), y, reduction="sum")


@needs("columns", columns=2, in_batch_negatives=True, model_copy=True)
class ContrastiveTensionInBatchLoss(nn.Module):
    """The in-batch-negatives form: both copies embed the same batch of sentences; the mean of the cross-entropies
    of exp(logit_scale) * sim(a_i, b_j) over j (target i) and over i (target j). ``logit_scale`` is learnable,
    initialised to log(scale)."""

    def __init__(self, scale: float = 20.0, similarity: str = "cosine"):
        super().__init__()
        self.similarity = similarity
        lookup(SIMILARITY_MATRICES, similarity, "similarity")
        self.logit_scale = nn.Parameter(torch.tensor(math.log(check_number(scale, "scale", positive=True))))

    def forward(self, embeddings_a: Tensor, embeddings_b: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        a, b = check_embeddings(embeddings_a=embeddings_a, embeddings_b=embeddings_b)
        scale = self.logit_scale.exp()
        logits = lookup(SIMILARITY_MATRICES, self.similarity, "similarity")(a, b) * scale  # (B, B)
        target = torch.arange(a.shape[0], device=a.device)
        loss = (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2
        return loss, {"scale": scale.detach()}

    def statistics(self) -> dict[str, Tensor]:
        """The scale as it is now: the trainer logs it after each update, over the forward's (the value before)."""
        return {"scale": self.logit_scale.detach().exp()}
