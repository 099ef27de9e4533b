"""A classifier head over sentence pairs (SBERT's NLI objective): a loss with parameters, trained with the model and
dropped afterwards. Matches sentence-transformers 6.2's SoftmaxLoss (tests/parity/test_losses_vs_st_catalogue.py)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minilm.losses.inputs import needs
from minilm.util.checks import check_class_ids, check_count, check_embeddings, check_flag, check_targets


@needs("pair_labels")
class SoftmaxLoss(nn.Module):
    """Cross-entropy of a linear classifier over features of the pair (u, v) (Reimers & Gurevych 2019):
    [u, v] if ``concat_embeddings``, |u - v| if ``concat_difference``, u * v if ``concat_product``, in that order
    (sentence-transformers' concatenation_sent_rep / _difference / _multiplication)."""

    def __init__(
        self,
        embedding_dim: int,
        num_labels: int,
        concat_embeddings: bool = True,
        concat_difference: bool = True,
        concat_product: bool = False,
    ):
        super().__init__()
        self.embedding_dim = check_count(embedding_dim, "embedding_dim")
        self.num_labels = check_count(num_labels, "num_labels")
        self.parts = (
            check_flag(concat_embeddings, "concat_embeddings"),
            check_flag(concat_difference, "concat_difference"),
            check_flag(concat_product, "concat_product"),
        )
        width = 2 * self.parts[0] + self.parts[1] + self.parts[2]
        if width == 0:
            raise ValueError("concat_embeddings, concat_difference and concat_product are all False: no features")
        self.classifier = nn.Linear(width * self.embedding_dim, self.num_labels)

    def forward(self, embeddings_a: Tensor, embeddings_b: Tensor, labels: Tensor) -> Tensor:
        u, v = check_embeddings(embeddings_a=embeddings_a, embeddings_b=embeddings_b)
        if u.shape[1] != self.embedding_dim:
            raise ValueError(
                f"embeddings_a has width {u.shape[1]} but the loss was built for embedding_dim {self.embedding_dim}"
            )
        labels = check_targets(labels, u.shape[0], "labels", "labels").long()
        check_class_ids(labels, self.num_labels)
        features = (
            ([u, v] if self.parts[0] else [])
            + ([(u - v).abs()] if self.parts[1] else [])
            + ([u * v] if self.parts[2] else [])
        )
        logits = self.classifier(torch.cat(features, dim=1).to(self.classifier.weight.dtype))
        return F.cross_entropy(logits, labels)
