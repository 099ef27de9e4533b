"""The loss library: distances (how far apart), miners (which triplets), losses (how to penalise). Maths only.

A loss is a plain function of embedding tensors (B, D), then per-row targets if it needs them, then settings with
defaults (or an ``nn.Module`` class when it has parameters), and it declares what rows it needs with ``@needs``
(``inputs.py``). docs/losses.md lists every loss with its reference and measured parity. How a recipe names a loss, and
which losses it can name, is the trainer's business: ``minilm/run/registry.py``.
"""

from minilm.losses.classifier import SoftmaxLoss
from minilm.losses.distill import (
    EmbedDistillLoss,
    distill_kl_div_loss,
    embed_distill_loss,
    margin_mse_loss,
    mse_distill_loss,
)
from minilm.losses.guided import gist_embed_loss
from minilm.losses.in_batch import mega_batch_margin_loss, multiple_negatives_ranking_loss
from minilm.losses.inputs import KINDS, Needs, needs, needs_of
from minilm.losses.layers import (
    adaptive_layer,
    adaptive_layer_loss,
    choose_layers,
    layered_needs,
    matryoshka_2d,
    matryoshka_2d_loss,
)
from minilm.losses.matryoshka import matryoshka
from minilm.losses.metric_learning import circle_loss, multi_similarity_loss, ntxent_loss, supcon_loss
from minilm.losses.pairs import contrastive_loss, cosine_similarity_loss, online_contrastive_loss
from minilm.losses.proxies import ArcFaceLoss, CosFaceLoss, ProxyAnchorLoss
from minilm.losses.regularizers import global_orthogonal_regularization, with_global_orthogonal_regularization
from minilm.losses.scored import angle_loss, cosent_loss
from minilm.losses.tension import ContrastiveTensionInBatchLoss, contrastive_tension_loss
from minilm.losses.triplet import (
    batch_all_triplet_loss,
    batch_hard_triplet_loss,
    batch_semi_hard_triplet_loss,
    triplet_loss,
)

__all__ = [
    "KINDS",
    "Needs",
    "needs",
    "needs_of",
    "triplet_loss",
    "batch_hard_triplet_loss",
    "batch_semi_hard_triplet_loss",
    "batch_all_triplet_loss",
    "multiple_negatives_ranking_loss",
    "cosent_loss",
    "matryoshka",
    "contrastive_loss",
    "online_contrastive_loss",
    "cosine_similarity_loss",
    "angle_loss",
    "mega_batch_margin_loss",
    "supcon_loss",
    "ntxent_loss",
    "circle_loss",
    "multi_similarity_loss",
    "ArcFaceLoss",
    "CosFaceLoss",
    "ProxyAnchorLoss",
    "SoftmaxLoss",
    "embed_distill_loss",
    "mse_distill_loss",
    "EmbedDistillLoss",
    "margin_mse_loss",
    "distill_kl_div_loss",
    "gist_embed_loss",
    "global_orthogonal_regularization",
    "with_global_orthogonal_regularization",
    "contrastive_tension_loss",
    "ContrastiveTensionInBatchLoss",
    "adaptive_layer_loss",
    "matryoshka_2d_loss",
    "choose_layers",
    "adaptive_layer",
    "matryoshka_2d",
    "layered_needs",
]
