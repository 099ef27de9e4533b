"""The loss catalogue: every loss minilm ships, in one table (its recipe name, the function, its counterpart in
sentence-transformers or the paper's name for it, and the citation). The registry (``minilm.run.registry``), the
model card, docs/losses.md's table and the tests all read this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import minilm.losses as L
from minilm.losses.bibtex import (
    CARLSSON,
    CHEN,
    DENG,
    GUNTHER,
    HADSELL,
    HERMANS,
    HOFSTATTER,
    HUANG,
    KHOSLA,
    KIM_2023,
    KIM_PA,
    KUSUPATI,
    LI_2D,
    LI_LI,
    LIN,
    OORD,
    REIMERS_2019,
    REIMERS_2020,
    SOLATORIO,
    SUN,
    WANG_COS,
    WANG_MS,
    WIETING,
    ZHANG,
)


@dataclass(frozen=True)
class Reference:
    label: str  # what the card calls the loss: its sentence-transformers class, or the paper's name for it
    citation: str | None  # BibTeX; None where sentence-transformers cites nothing for its counterpart
    st_name: str | None = None  # the sentence-transformers loss class it matches, if there is one


def st(name: str, citation: str | None) -> Reference:
    return Reference(name, citation, name)


@dataclass(frozen=True)
class Entry:
    name: str  # the recipe's [loss] name
    function: Callable  # the loss: a function, or an nn.Module class when it has parameters
    reference: Reference  # its counterpart and citation


CATALOGUE: tuple[Entry, ...] = (
    Entry("triplet", L.triplet_loss, st("TripletLoss", HERMANS)),
    Entry("batch_hard_triplet", L.batch_hard_triplet_loss, st("BatchHardTripletLoss", HERMANS)),
    Entry("batch_semi_hard_triplet", L.batch_semi_hard_triplet_loss, st("BatchSemiHardTripletLoss", HERMANS)),
    Entry("batch_all_triplet", L.batch_all_triplet_loss, st("BatchAllTripletLoss", HERMANS)),
    Entry("mnrl", L.multiple_negatives_ranking_loss, st("MultipleNegativesRankingLoss", OORD)),
    Entry("cosent", L.cosent_loss, st("CoSENTLoss", HUANG)),
    Entry("contrastive", L.contrastive_loss, st("ContrastiveLoss", HADSELL)),
    Entry("online_contrastive", L.online_contrastive_loss, st("OnlineContrastiveLoss", None)),
    Entry("cosine_similarity", L.cosine_similarity_loss, st("CosineSimilarityLoss", None)),
    Entry("angle", L.angle_loss, st("AnglELoss", LI_LI)),
    Entry("mega_batch_margin", L.mega_batch_margin_loss, st("MegaBatchMarginLoss", WIETING)),
    Entry("supcon", L.supcon_loss, Reference("SupConLoss", KHOSLA)),
    Entry("ntxent", L.ntxent_loss, Reference("NTXentLoss", CHEN)),
    Entry("circle", L.circle_loss, Reference("CircleLoss", SUN)),
    Entry("multi_similarity", L.multi_similarity_loss, Reference("MultiSimilarityLoss", WANG_MS)),
    Entry("arcface", L.ArcFaceLoss, Reference("ArcFaceLoss", DENG)),
    Entry("cosface", L.CosFaceLoss, Reference("CosFaceLoss", WANG_COS)),
    Entry("proxy_anchor", L.ProxyAnchorLoss, Reference("ProxyAnchorLoss", KIM_PA)),
    Entry("softmax", L.SoftmaxLoss, st("SoftmaxLoss", REIMERS_2019)),
    Entry("mse", L.mse_distill_loss, st("MSELoss", REIMERS_2020)),
    Entry("embed_distill", L.EmbedDistillLoss, st("EmbedDistillLoss", KIM_2023)),
    Entry("margin_mse", L.margin_mse_loss, st("MarginMSELoss", HOFSTATTER)),
    Entry("distill_kl_div", L.distill_kl_div_loss, st("DistillKLDivLoss", LIN)),
    # a guide model's embeddings mask false negatives ([loss] guide names it); its cached form is this loss with
    # [train] mini_batch_size, as for every in-batch loss (CachedGISTEmbedLoss, cited the same way)
    Entry("gist", L.gist_embed_loss, st("GISTEmbedLoss", SOLATORIO)),
    # every earlier layer trained too ([loss] loss names the inner loss, loss_settings its settings)
    Entry("adaptive_layer", L.adaptive_layer, st("AdaptiveLayerLoss", LI_2D)),
    Entry("matryoshka_2d", L.matryoshka_2d, st("Matryoshka2dLoss", LI_2D)),
    # the model against a trained copy of itself, from one text column (minilm/train/model_copy.py)
    Entry("contrastive_tension", L.contrastive_tension_loss, st("ContrastiveTensionLoss", CARLSSON)),
    Entry(
        "contrastive_tension_in_batch",
        L.ContrastiveTensionInBatchLoss,
        st("ContrastiveTensionLossInBatchNegatives", CARLSSON),
    ),
)
LOSSES: dict[str, Callable] = {entry.name: entry.function for entry in CATALOGUE}
REFERENCES: dict[str, Reference] = {entry.name: entry.reference for entry in CATALOGUE}

# mnrl with symmetric = true is sentence-transformers' MNRL with directions (query_to_doc, doc_to_query),
# partition_mode "per_direction", which it cites differently.
MNRL_SYMMETRIC = st("MultipleNegativesRankingLoss", GUNTHER)
MATRYOSHKA = st("MatryoshkaLoss", KUSUPATI)
GOR = st("GlobalOrthogonalRegularizationLoss", ZHANG)  # gor_* settings add it to another loss
