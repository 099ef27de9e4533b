"""Metric-learning staples on a labelled batch (one text and a class label per row), as pytorch-metric-learning 2.9
computes them: SupCon, NT-Xent, Circle and Multi-Similarity (with its miner). Class-proxy losses are in proxies.py.

Each takes (embeddings (B, D), labels (B,)) and compares every pair of rows: positives share a label, negatives do
not (``miners.positive_mask`` / ``negative_mask``). pytorch-metric-learning reduces differently per loss; each
docstring says how, and tests/parity/test_losses_vs_pml.py checks values and gradients against it. Like PML, a batch
without a single positive pair or negative pair gives 0 (with a zero gradient).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from minilm.losses import miners
from minilm.losses.distances import SIMILARITY_MATRICES, cosine_similarity_matrix
from minilm.losses.inputs import needs
from minilm.util.checks import check_embeddings, check_flag, check_number, check_targets, lookup


def _labelled(embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Checked (embeddings, labels, positive mask, negative mask), masks (B, B) bool."""
    (x,) = check_embeddings(embeddings=embeddings)
    labels = check_targets(labels, x.shape[0], "labels", "labels")
    return x, labels, miners.positive_mask(labels), miners.negative_mask(labels)


def _zero(x: Tensor) -> Tensor:
    return (x * 0).sum()  # 0 with a zero gradient, as pytorch-metric-learning returns


def _masked_logsumexp(x: Tensor, keep: Tensor, add_one: bool = False) -> Tensor:
    """Row-wise log(sum over kept entries of exp(x)) [+ 1 inside the log]; 0 for a row that keeps nothing."""
    x = x.masked_fill(~keep, -torch.inf)
    if add_one:
        x = torch.cat([x, x.new_zeros(x.shape[0], 1)], dim=1)
    out = x.logsumexp(dim=1)  # (B,)
    return out.masked_fill(~keep.any(dim=1), 0)  # also removes the NaN gradient of an all -inf row


def _mean_of_positive(per_anchor: Tensor) -> Tensor:
    """Mean over the anchors whose loss is > 0 (PML's AvgNonZeroReducer); 0 when there is none."""
    active = per_anchor > 0
    return (per_anchor * active).sum() / active.sum().clamp_min(1)


@needs("labels")
def supcon_loss(embeddings: Tensor, labels: Tensor, temperature: float = 0.1, similarity: str = "cosine") -> Tensor:
    """Supervised contrastive loss (Khosla et al. 2020): per anchor, minus the mean over its positives p of
    log softmax_p(sim / temperature) over all other rows; averaged over anchors with a positive loss."""
    x, _, pos, neg = _labelled(embeddings, labels)
    temperature = check_number(temperature, "temperature", positive=True)
    sim = lookup(SIMILARITY_MATRICES, similarity, "similarity")
    if not (bool(pos.any()) and bool(neg.any())):
        return _zero(x)
    logits = sim(x, x) / temperature  # (B, B)
    log_prob = logits - _masked_logsumexp(logits, pos | neg)[:, None]  # the diagonal is never a candidate
    per_anchor = -torch.where(pos, log_prob, 0).sum(dim=1) / pos.sum(dim=1).clamp_min(1)
    return _mean_of_positive(per_anchor)


@needs("labels")
def ntxent_loss(embeddings: Tensor, labels: Tensor, temperature: float = 0.07, similarity: str = "cosine") -> Tensor:
    """NT-Xent / InfoNCE over labelled pairs (Chen et al. 2020, SimCLR): for every positive pair (a, p),
    -log(exp(s_ap / t) / (exp(s_ap / t) + sum over a's negatives n of exp(s_an / t))); mean over positive pairs."""
    x, _, pos, neg = _labelled(embeddings, labels)
    temperature = check_number(temperature, "temperature", positive=True)
    sim = lookup(SIMILARITY_MATRICES, similarity, "similarity")
    if not (bool(pos.any()) and bool(neg.any())):
        return _zero(x)
    logits = sim(x, x) / temperature  # (B, B)
    negatives = logits.masked_fill(~neg, -torch.inf).logsumexp(dim=1, keepdim=True)  # (B, 1), -inf without any
    per_pair = torch.logaddexp(logits, negatives) - logits  # (B, B): -log softmax of the positive against them
    return torch.where(pos, per_pair, 0).sum() / pos.sum()


@needs("labels")
def circle_loss(embeddings: Tensor, labels: Tensor, margin: float = 0.4, gamma: float = 80.0) -> Tensor:
    """Circle loss (Sun et al. 2020) on cosine similarities: per anchor softplus(logsumexp_p(-gamma a_p (s_p - O_p)) +
    logsumexp_n(gamma a_n (s_n - O_n))) with optima O_p = 1 - margin, O_n = margin and self-paced weights
    a_p = relu(1 + margin - s_p), a_n = relu(s_n + margin) (no gradient); mean over anchors with a positive loss
    (anchors lacking a positive or a negative give 0)."""
    x, _, pos, neg = _labelled(embeddings, labels)
    margin = check_number(margin, "margin")
    gamma = check_number(gamma, "gamma", positive=True)
    if not (bool(pos.any()) or bool(neg.any())):
        return _zero(x)
    s = cosine_similarity_matrix(x, x)  # (B, B)
    weight_pos = F.relu(1 + margin - s.detach())
    weight_neg = F.relu(s.detach() + margin)
    logits = torch.where(pos, -gamma * weight_pos * (s - (1 - margin)), gamma * weight_neg * (s - margin))
    per_anchor = F.softplus(_masked_logsumexp(logits, pos) + _masked_logsumexp(logits, neg))
    per_anchor = per_anchor * (pos.any(dim=1) & neg.any(dim=1))
    return _mean_of_positive(per_anchor)


@needs("labels")
def multi_similarity_loss(
    embeddings: Tensor,
    labels: Tensor,
    alpha: float = 2.0,
    beta: float = 50.0,
    base: float = 0.5,
    mine: bool = True,
    epsilon: float = 0.1,
) -> Tensor:
    """Multi-Similarity loss (Wang et al. 2019) on cosine similarities: per anchor
    1/alpha log(1 + sum_p exp(-alpha (s_p - base))) + 1/beta log(1 + sum_n exp(beta (s_n - base))), mean over all
    anchors. With ``mine`` the pairs are those ``miners.multi_similarity_pairs`` keeps (margin ``epsilon``), as PML's
    MultiSimilarityMiner + MultiSimilarityLoss; without, every pair of the batch."""
    x, labels, pos, neg = _labelled(embeddings, labels)
    alpha = check_number(alpha, "alpha", positive=True)
    beta = check_number(beta, "beta", positive=True)
    base = check_number(base, "base")
    epsilon = check_number(epsilon, "epsilon")
    s = cosine_similarity_matrix(x, x)  # (B, B)
    if check_flag(mine, "mine"):
        pos, neg = miners.multi_similarity_pairs(s, labels, epsilon)
    if int(pos.sum()) <= 1 and int(neg.sum()) <= 1:  # PML's rule: at most one pair of each kind gives 0
        return _zero(x)
    per_anchor = (
        _masked_logsumexp(-alpha * (s - base), pos, add_one=True) / alpha
        + _masked_logsumexp(beta * (s - base), neg, add_one=True) / beta
    )
    return per_anchor.mean()
