"""Class-proxy losses: one learnable vector per class (``proxies``, (num_labels, embedding_dim)), so these are
``nn.Module`` losses whose parameters the trainer optimises with the model. Values and gradients match
pytorch-metric-learning 2.9 (tests/parity/test_losses_vs_pml.py; PML's ``W`` is our ``proxies.T``, its ArcFace margin is
in degrees where ours is in radians).

Each takes (embeddings (B, D), labels (B,)); the run supplies ``embedding_dim`` and ``num_labels``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minilm.losses.distances import cosine_similarity_matrix
from minilm.losses.inputs import needs
from minilm.util.checks import check_class_ids, check_count, check_embeddings, check_number, check_targets


class _Proxies(nn.Module):
    """One proxy per class; ``cosines`` checks a batch and returns cos(embedding_i, proxy_c) (B, C)."""

    def __init__(self, embedding_dim: int, num_labels: int):
        super().__init__()
        self.embedding_dim = check_count(embedding_dim, "embedding_dim")
        self.num_labels = check_count(num_labels, "num_labels")
        self.proxies = nn.Parameter(torch.empty(self.num_labels, self.embedding_dim))

    def cosines(self, embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        (x,) = check_embeddings(embeddings=embeddings)
        if x.shape[1] != self.embedding_dim:
            raise ValueError(
                f"embeddings have width {x.shape[1]} but the loss was built for embedding_dim {self.embedding_dim}"
            )
        labels = check_targets(labels, x.shape[0], "labels", "labels").long()
        check_class_ids(labels, self.num_labels)
        return cosine_similarity_matrix(x, self.proxies.to(x.dtype)), labels


@needs("labels")
class ArcFaceLoss(_Proxies):
    """ArcFace (Deng et al. 2019): cross-entropy over scale * cos, the target class's angle widened by ``margin``
    radians: cos(theta + m) while theta <= pi - m, else cos(theta) - m sin(m) (keeps the logit monotonic)."""

    def __init__(self, embedding_dim: int, num_labels: int, margin: float = 0.5, scale: float = 64.0):
        super().__init__(embedding_dim, num_labels)
        self.margin = check_number(margin, "margin")
        if not 0 <= self.margin < math.pi:
            raise ValueError(f"margin is an angle in radians in [0, pi), got {self.margin}")
        self.scale = check_number(scale, "scale", positive=True)
        nn.init.normal_(self.proxies)  # PML's default initialisation

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        cos, labels = self.cosines(embeddings, labels)
        target = cos.gather(1, labels[:, None])  # (B, 1)
        theta = torch.acos(target.clamp(-1, 1))
        widened = torch.where(
            theta <= math.pi - self.margin,
            torch.cos(theta + self.margin),
            torch.cos(theta) - self.margin * math.sin(self.margin),
        )
        logits = cos.scatter(1, labels[:, None], widened)
        return F.cross_entropy(self.scale * logits, labels)


@needs("labels")
class CosFaceLoss(_Proxies):
    """CosFace / large-margin cosine loss (Wang et al. 2018): cross-entropy over scale * (cos - margin on the
    target class)."""

    def __init__(self, embedding_dim: int, num_labels: int, margin: float = 0.35, scale: float = 64.0):
        super().__init__(embedding_dim, num_labels)
        self.margin = check_number(margin, "margin")
        self.scale = check_number(scale, "scale", positive=True)
        nn.init.normal_(self.proxies)  # PML's default initialisation

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        cos, labels = self.cosines(embeddings, labels)
        logits = cos - self.margin * F.one_hot(labels, self.num_labels).to(cos.dtype)
        return F.cross_entropy(self.scale * logits, labels)


@needs("labels")
class ProxyAnchorLoss(_Proxies):
    """Proxy-Anchor (Kim et al. 2020): each proxy is an anchor over the batch,
    mean over proxies with a positive of log(1 + sum_pos exp(-alpha (cos - margin)))
    + mean over all proxies of log(1 + sum_neg exp(alpha (cos + margin)))."""

    def __init__(self, embedding_dim: int, num_labels: int, margin: float = 0.1, alpha: float = 32.0):
        super().__init__(embedding_dim, num_labels)
        self.margin = check_number(margin, "margin")
        self.alpha = check_number(alpha, "alpha", positive=True)
        nn.init.kaiming_normal_(self.proxies, mode="fan_out")  # PML's default initialisation

    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        cos, labels = self.cosines(embeddings, labels)
        pos = F.one_hot(labels, self.num_labels).bool()  # (B, C)
        zero = cos.new_zeros(1, self.num_labels)  # the "1 +" inside each log

        def log_one_plus(x: Tensor, keep: Tensor) -> Tensor:  # (C,) log(1 + sum over kept rows of exp(x))
            return torch.cat([x.masked_fill(~keep, -torch.inf), zero]).logsumexp(dim=0)

        with_pos = pos.any(dim=0)  # (C,)
        pos_term = log_one_plus(-self.alpha * (cos - self.margin), pos)
        neg_term = log_one_plus(self.alpha * (cos + self.margin), ~pos)
        return pos_term.sum() / with_pos.sum() + neg_term.sum() / self.num_labels
