"""Distillation: a student fits a teacher's embeddings or scores, given per row as data (kinds "teacher_embeddings"
and "teacher_scores", ``minilm/losses/inputs.py``). Values and gradients match sentence-transformers 6.2's MSELoss,
EmbedDistillLoss, MarginMSELoss and DistillKLDivLoss (tests/parity/test_losses_vs_st_catalogue.py).

The losses see tensors only: teacher embeddings come from a data column, or from a teacher model a recipe names
(``[loss] teacher``), which the trainer runs frozen on each batch (``minilm/train/frozen.py``). A teacher's scores
are a data column.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minilm.losses.distances import PAIRWISE_SIMILARITIES, cosine_distance, euclidean_distance
from minilm.losses.inputs import needs
from minilm.util.checks import (
    check_count,
    check_embedding_shapes,
    check_finite_result,
    check_number,
    check_target_rows,
    lookup,
)

EMBEDDING_DISTANCES = {
    "mse": lambda s, t: F.mse_loss(s, t),  # mean over rows and dimensions
    "l2": lambda s, t: euclidean_distance(s, t).mean(),
    "cosine": lambda s, t: cosine_distance(s, t).mean(),
}


def _named_columns(embeddings: tuple[Tensor, ...]) -> dict[str, Tensor]:
    """{"embeddings[i]": column i}, shapes checked; finiteness is checked on the loss (``check_finite_result``)."""
    if not embeddings:
        raise TypeError("embeddings: give at least one embedding column")
    named = {f"embeddings[{i}]": e for i, e in enumerate(embeddings)}
    return dict(zip(named, check_embedding_shapes(**named)))


@needs("teacher_embeddings", columns=1, more_columns=True)
def embed_distill_loss(*embeddings: Tensor, teacher_embeddings: Tensor, distance: str = "cosine") -> Tensor:
    """Mean over text columns of distance(student, teacher): "mse" (mean squared error over every entry, Reimers &
    Gurevych 2020's multilingual distillation), "l2" (mean euclidean distance) or "cosine" (mean 1 - cos).
    teacher_embeddings is (B, D), one teacher row shared by every column (a sentence and its translation), or
    (B, columns * D), each column's own."""
    named = _named_columns(embeddings)
    students = list(named.values())
    metric = lookup(EMBEDDING_DISTANCES, distance, "distance")
    b, width = students[0].shape
    teacher = check_target_rows(
        teacher_embeddings, b, "teacher_embeddings", widths=sorted({width, len(students) * width}), finite=False
    )
    teachers = [teacher] * len(students) if teacher.shape[1] == width else teacher.split(width, dim=1)
    losses = [metric(s, t.detach().to(s.dtype)) for s, t in zip(students, teachers)]
    loss = losses[0] if len(losses) == 1 else torch.stack(losses).mean()
    check_finite_result(loss, **named, teacher_embeddings=teacher)  # every entry of every input reaches the loss
    return loss


@needs("teacher_embeddings", columns=1, more_columns=True)
def mse_distill_loss(*embeddings: Tensor, teacher_embeddings: Tensor) -> Tensor:
    """embed_distill_loss with distance "mse": sentence-transformers' MSELoss."""
    return embed_distill_loss(*embeddings, teacher_embeddings=teacher_embeddings, distance="mse")


@needs("teacher_embeddings", columns=1, more_columns=True)
class EmbedDistillLoss(nn.Module):
    """embed_distill_loss after an optional learnable projection student -> teacher width (``projection_dim``), for
    a teacher whose embeddings are wider or narrower than the student's (sentence-transformers' EmbedDistillLoss)."""

    def __init__(self, embedding_dim: int, distance: str = "cosine", projection_dim: int | None = None):
        super().__init__()
        lookup(EMBEDDING_DISTANCES, distance, "distance")
        self.distance = distance
        embedding_dim = check_count(embedding_dim, "embedding_dim")
        self.projection = (
            None if projection_dim is None else nn.Linear(embedding_dim, check_count(projection_dim, "projection_dim"))
        )
        self.teacher_dim = embedding_dim if projection_dim is None else projection_dim  # the width it expects

    def forward(self, *embeddings: Tensor, teacher_embeddings: Tensor) -> Tensor:
        students = list(_named_columns(embeddings).values())
        if self.projection is not None:
            if students[0].shape[1] != self.projection.in_features:
                raise ValueError(
                    f"embeddings have width {students[0].shape[1]} but the projection was built for "
                    f"embedding_dim {self.projection.in_features}"
                )
            students = [self.projection(s.to(self.projection.weight.dtype)) for s in students]
        return embed_distill_loss(*students, teacher_embeddings=teacher_embeddings, distance=self.distance)


def _candidates(queries: Tensor, positives: Tensor, negatives: tuple[Tensor, ...]) -> dict[str, Tensor]:
    """The query and candidate columns by name, shapes checked; finiteness is checked on the student's scores, which
    every entry reaches through a dot product (``check_finite_result``)."""
    named = {"queries": queries, "positives": positives, **{f"negatives[{i}]": n for i, n in enumerate(negatives)}}
    return dict(zip(named, check_embedding_shapes(**named)))


@needs("teacher_scores", columns=3, more_columns=True)
def margin_mse_loss(
    queries: Tensor, positives: Tensor, *negatives: Tensor, teacher_scores: Tensor, similarity: str = "dot"
) -> Tensor:
    """Margin-MSE (Hofstätter et al. 2020): mean over rows and negatives of
    ((s(q, p) - s(q, n_j)) - (t_p - t_{n_j}))^2. teacher_scores per row: the teacher's score of every candidate
    (positive, negatives...), or directly the k margins t_p - t_{n_j}; with one negative, a 1-D (B,) tensor of margins
    too, as sentence-transformers takes it. similarity "dot" (default) or "cosine"."""
    if not negatives:
        raise ValueError("margin_mse_loss needs at least one negative column (query, positive, negative...)")
    named = _candidates(queries, positives, negatives)
    q, p, *n = named.values()
    sim = lookup(PAIRWISE_SIMILARITIES, similarity, "similarity")
    k = len(negatives)
    if k == 1 and isinstance(teacher_scores, Tensor) and teacher_scores.shape == (q.shape[0],):
        teacher_scores = teacher_scores[:, None]  # (B,) -> (B, 1): one margin per row, as sentence-transformers takes
    teacher = check_target_rows(teacher_scores, q.shape[0], "teacher_scores", widths=(k + 1, k)).to(q.dtype)
    margins = teacher[:, :1] - teacher[:, 1:] if teacher.shape[1] == k + 1 else teacher
    positive = sim(q, p)  # (B,)
    student = (
        (positive - sim(q, n[0]))[:, None] if k == 1 else positive[:, None] - torch.stack([sim(q, x) for x in n], dim=1)
    )  # (B, k)
    check_finite_result(student, **named)
    return F.mse_loss(student, margins.detach())


@needs("teacher_scores", columns=3, more_columns=True)
def distill_kl_div_loss(
    queries: Tensor,
    positives: Tensor,
    *negatives: Tensor,
    teacher_scores: Tensor,
    similarity: str = "dot",
    temperature: float = 1.0,
    student_temperature: float | None = None,
    teacher_temperature: float | None = None,
) -> Tensor:
    """KL(teacher || student) between softmaxes over each row's candidates (positive, negatives...) of
    teacher_scores / teacher_temperature and sim(query, candidate) / student_temperature, averaged over rows and
    times student_temperature^2 (Hinton et al. 2015; Lin et al. 2020). Both temperatures default to
    ``temperature``."""
    if not negatives:
        raise ValueError(
            "distill_kl_div_loss needs at least one negative column: a softmax over one candidate is constant"
        )
    named = _candidates(queries, positives, negatives)
    q, *candidates = named.values()
    sim = lookup(PAIRWISE_SIMILARITIES, similarity, "similarity")
    student = torch.stack([sim(q, c) for c in candidates], dim=1)  # (B, 1 + k)
    check_finite_result(student, **named)
    b = q.shape[0]
    t = check_number(temperature, "temperature", positive=True)
    t_student = (
        t if student_temperature is None else check_number(student_temperature, "student_temperature", positive=True)
    )
    t_teacher = (
        t if teacher_temperature is None else check_number(teacher_temperature, "teacher_temperature", positive=True)
    )
    teacher = check_target_rows(teacher_scores, b, "teacher_scores", widths=(student.shape[1],)).to(student.dtype)
    target = torch.softmax(teacher.detach() / t_teacher, dim=1)
    return F.kl_div(torch.log_softmax(student / t_student, dim=1), target, reduction="batchmean") * t_student**2
