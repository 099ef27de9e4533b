"""In-batch negatives: every other row's positive (and every hard negative) is a negative for an anchor."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from minilm.losses.distances import SIMILARITY_MATRICES, cosine_similarity_matrix
from minilm.losses.inputs import needs
from minilm.util.checks import check_embeddings, check_flag, check_number, lookup


@needs("columns", columns=2, more_columns=True, in_batch_negatives=True)
def multiple_negatives_ranking_loss(
    anchors: Tensor,
    positives: Tensor,
    *hard_negatives: Tensor,
    scale: float = 20.0,
    similarity: str = "cosine",
    symmetric: bool = False,
    directions: Sequence[str] = ("query_to_doc",),
    partition_mode: str = "joint",
    hardness_mode: str | None = None,
    hardness_strength: float = 0.0,
    report: bool = False,
) -> Tensor | tuple[Tensor, dict[str, Tensor]]:
    """InfoNCE with in-batch negatives: cross-entropy of scale * sim(anchor_i, every positive and hard negative),
    target positive_i. similarity "cosine" or "dot".

    symmetric=True averages it with the positive -> anchor direction (candidates: the anchors only), i.e.
    sentence-transformers' MultipleNegativesSymmetricRankingLoss (directions query_to_doc + doc_to_query,
    partition_mode per_direction).

    sentence-transformers 6.2's options (see ``directed_log_partition``): ``directions`` adds candidate pools to
    anchor i's partition function -- "query_to_doc" (required: every positive and hard negative), "query_to_query"
    (the other anchors), "doc_to_query" (positive_i against every anchor), "doc_to_doc" (positive_i against the
    other rows' positives and hard negatives); ``partition_mode`` "joint" (one softmax over all pools) or
    "per_direction" (the mean of one log-partition per pool; only pools that contain the positive);
    ``hardness_mode`` "in_batch_negatives" / "hard_negatives" / "all_negatives" with ``hardness_strength`` > 0 adds
    strength * sim (not scaled, no gradient) to those negatives' logits, up-weighting the harder ones.
    The gradient cache (``[train] mini_batch_size``) gives the cached forms of all of these.

    report=True returns ``(loss, statistics)`` of the anchor -> candidates direction (see ``ranking_statistics``);
    the loss is the same.
    """
    check_flag(report, "report")
    default_directions = isinstance(directions, (list, tuple)) and tuple(directions) == ("query_to_doc",)
    if not default_directions or partition_mode != "joint" or hardness_mode is not None:
        loss = _directed_mnrl(
            anchors,
            positives,
            *hard_negatives,
            scale=scale,
            similarity=similarity,
            symmetric=symmetric,
            directions=directions,
            partition_mode=partition_mode,
            hardness_mode=hardness_mode,
            hardness_strength=hardness_strength,
        )
        if not report:
            return loss
        sim = lookup(SIMILARITY_MATRICES, similarity, "similarity")
        return loss, ranking_statistics(sim(anchors, torch.cat([positives, *hard_negatives])))
    check_strength(hardness_strength)
    named_negatives = {f"hard_negatives[{i}]": n for i, n in enumerate(hard_negatives)}
    anchors, positives, *negatives = check_embeddings(anchors=anchors, positives=positives, **named_negatives)
    sim = lookup(SIMILARITY_MATRICES, similarity, "similarity")
    scale = check_number(scale, "scale", positive=True)
    check_flag(symmetric, "symmetric")
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
    return {
        "positive_similarity": positive.mean(),
        "hardest_negative_similarity": hardest.mean(),
        "accuracy": (positive > hardest).float().mean(),
    }


# ---------------------------------------------------------------------------------------------------------------------
# sentence-transformers 6.2's MNRL options: directions, partition modes, hardness weighting

DIRECTIONS = ("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc")
PARTITION_MODES = ("joint", "per_direction")
HARDNESS_MODES = ("in_batch_negatives", "hard_negatives", "all_negatives")


def check_directions(directions: Sequence[str], partition_mode: str, symmetric: bool) -> tuple[str, ...]:
    """The directions a call asks for (symmetric=True is query_to_doc + doc_to_query), checked by name."""
    if isinstance(directions, str) or not isinstance(directions, Sequence) or not directions:
        raise TypeError(f"directions must be a non-empty list of names from {DIRECTIONS}, got {directions!r}")
    for name in directions:
        if name not in DIRECTIONS:
            raise ValueError(f"directions must be names from {DIRECTIONS}, got {name!r}")
    if "query_to_doc" not in directions:
        raise ValueError("directions must include 'query_to_doc' (its pool holds the positive)")
    if len(set(directions)) != len(directions):
        raise ValueError(f"directions has a repeated name: {list(directions)}")
    if partition_mode not in PARTITION_MODES:
        raise ValueError(f"partition_mode must be one of {PARTITION_MODES}, got {partition_mode!r}")
    if check_flag(symmetric, "symmetric"):
        if tuple(directions) != ("query_to_doc",) or partition_mode != "joint":
            raise ValueError(
                "symmetric=True means directions=('query_to_doc', 'doc_to_query') with partition_mode "
                "'per_direction'; give either symmetric or directions/partition_mode, not both"
            )
        return ("query_to_doc", "doc_to_query")
    if partition_mode == "per_direction" and set(directions) & {"query_to_query", "doc_to_doc"}:
        raise ValueError(
            "partition_mode='per_direction' needs every pool to hold the positive; 'query_to_query' and "
            "'doc_to_doc' do not: use partition_mode='joint'"
        )
    return tuple(directions)


def check_strength(hardness_strength: float) -> float:
    strength = check_number(hardness_strength, "hardness_strength")
    if strength < 0:
        raise ValueError(f"hardness_strength must be >= 0, got {strength}")
    return strength


def directed_log_partition(
    anchors: Tensor,
    positives: Tensor,
    negatives: Sequence[Tensor],
    sim,
    scale: float,
    directions: Sequence[str],
    per_direction: bool,
    hardness_mode: str | None,
    hardness_strength: float,
) -> tuple[Tensor, Tensor]:
    """(positive logit (B,), log-partition (B,)) of each anchor over the pools ``directions`` name.

    Pools, each a (B, *) block of logits for row i (masked entries -inf): query_to_doc sim(a_i, every positive and
    hard negative); query_to_query sim(a_i, a_j), j != i; doc_to_query sim(a_j, p_i) for every j; doc_to_doc
    sim(p_i, every positive and hard negative of rows j != i).
    """
    b = anchors.shape[0]
    candidates = torch.cat([positives, *negatives])  # (B * (1 + k), D); row i is anchor i's positive
    own = torch.eye(b, dtype=torch.bool, device=anchors.device).repeat(1, 1 + len(negatives))  # row i's own docs
    query_to_doc = sim(anchors, candidates)  # (B, B * (1 + k))
    pools = {"query_to_doc": scale * query_to_doc}
    if "query_to_query" in directions:
        pools["query_to_query"] = (scale * sim(anchors, anchors)).masked_fill(own[:, :b], -torch.inf)
    if "doc_to_query" in directions:
        pools["doc_to_query"] = scale * sim(positives, anchors)
    if "doc_to_doc" in directions:
        pools["doc_to_doc"] = (scale * sim(positives, candidates)).masked_fill(own, -torch.inf)
    if hardness_mode is not None and hardness_strength > 0:
        # which query_to_doc logits are raised: never the positive itself
        if hardness_mode == "in_batch_negatives":  # other rows' positives and hard negatives
            raised = ~own
        elif hardness_mode == "hard_negatives":  # row i's own hard negatives
            raised = own.clone()
            raised[:, :b] = False
        else:  # all_negatives: everything but the positive
            raised = torch.ones_like(own)
            raised[:, :b] = ~own[:, :b]
        pools["query_to_doc"] = pools["query_to_doc"] + hardness_strength * query_to_doc.detach() * raised
    positive = pools["query_to_doc"].diagonal()  # (B,)
    if per_direction:
        log_z = sum(pool.logsumexp(dim=1) for pool in pools.values()) / len(pools)
    else:
        log_z = torch.cat(list(pools.values()), dim=1).logsumexp(dim=1)
    return positive, log_z


def _directed_mnrl(
    anchors: Tensor,
    positives: Tensor,
    *hard_negatives: Tensor,
    scale: float,
    similarity: str,
    symmetric: bool,
    directions: Sequence[str],
    partition_mode: str,
    hardness_mode: str | None,
    hardness_strength: float,
) -> Tensor:
    named_negatives = {f"hard_negatives[{i}]": n for i, n in enumerate(hard_negatives)}
    anchors, positives, *negatives = check_embeddings(anchors=anchors, positives=positives, **named_negatives)
    sim = lookup(SIMILARITY_MATRICES, similarity, "similarity")
    scale = check_number(scale, "scale", positive=True)
    directions = check_directions(directions, partition_mode, symmetric)
    per_direction = symmetric or partition_mode == "per_direction"
    if hardness_mode is not None and hardness_mode not in HARDNESS_MODES:
        raise ValueError(f"hardness_mode must be None or one of {HARDNESS_MODES}, got {hardness_mode!r}")
    hardness_strength = check_strength(hardness_strength)
    positive, log_z = directed_log_partition(
        anchors, positives, negatives, sim, scale, directions, per_direction, hardness_mode, hardness_strength
    )
    return (log_z - positive).mean()


@needs("columns", columns=2, in_batch_negatives=True)
def mega_batch_margin_loss(
    anchors: Tensor, positives: Tensor, positive_margin: float = 0.8, negative_margin: float = 0.3
) -> Tensor:
    """mean_i relu(positive_margin - cos(a_i, p_i)) + relu(max_{j != i} cos(a_i, p_j) - negative_margin): the
    hardest in-batch negative of each anchor (Wieting & Gimpel 2018, sentence-transformers' MegaBatchMarginLoss;
    its mini-batched form is this loss under the gradient cache, ``[train] mini_batch_size``)."""
    anchors, positives = check_embeddings(anchors=anchors, positives=positives)
    positive_margin = check_number(positive_margin, "positive_margin")
    negative_margin = check_number(negative_margin, "negative_margin")
    cos = cosine_similarity_matrix(anchors, positives)  # (B, B)
    eye = torch.eye(cos.shape[0], dtype=torch.bool, device=cos.device)
    # max, not amax: when two negatives tie for the hardest, the whole gradient goes to the one max picks (the first),
    # as in sentence-transformers; amax would split it between them (same sum, different rows updated)
    hardest = cos.masked_fill(eye, -torch.inf).max(dim=1).values  # (B,) -inf for a batch of one: no negative, no loss
    return (F.relu(positive_margin - cos.diagonal()) + F.relu(hardest - negative_margin)).mean()
