"""Distillation: a student fits a teacher's embeddings or scores, given per row as data (kinds "teacher_embeddings"
and "teacher_scores", ``minilm/losses/inputs.py``). Values and gradients match sentence-transformers 6.2's MSELoss,
EmbedDistillLoss, MarginMSELoss and DistillKLDivLoss (tests/test_losses_vs_st_catalogue.py).

A teacher model named in a recipe and run frozen during training is trainer wiring that does not exist yet; until
then the teacher's outputs are computed once and stored as a data column.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minilm.checks import check_count, check_embeddings, check_number, check_target_rows, lookup
from minilm.losses.distances import PAIRWISE_SIMILARITIES, cosine_distance, euclidean_distance
from minilm.losses.inputs import needs

EMBEDDING_DISTANCES = {
    "mse": lambda s, t: F.mse_loss(s, t),  # mean over rows and dimensions
    "l2": lambda s, t: euclidean_distance(s, t).mean(),
    "cosine": lambda s, t: cosine_distance(s, t).mean(),
}


def _named_columns(embeddings: tuple[Tensor, ...], name: str = "embeddings") -> list[Tensor]:
    if not embeddings:
        raise TypeError(f"{name}: give at least one embedding column")
    return check_embeddings(**{f"{name}[{i}]": e for i, e in enumerate(embeddings)})


@needs("teacher_embeddings", columns=1, more_columns=True)
def embed_distill_loss(*embeddings: Tensor, teacher_embeddings: Tensor, distance: str = "cosine") -> Tensor:
    """Mean over text columns of distance(student, teacher): "mse" (mean squared error over every entry, Reimers &
    Gurevych 2020's multilingual distillation), "l2" (mean euclidean distance) or "cosine" (mean 1 - cos).
    teacher_embeddings is (B, D), one teacher row shared by every column (a sentence and its translation), or
    (B, columns * D), each column's own."""
    students = _named_columns(embeddings)
    metric = lookup(EMBEDDING_DISTANCES, distance, "distance")
    b, width = students[0].shape
    teacher = check_target_rows(teacher_embeddings, b, "teacher_embeddings",
                                widths=sorted({width, len(students) * width}))
    teachers = [teacher] * len(students) if teacher.shape[1] == width else teacher.split(width, dim=1)
    return torch.stack([metric(s, t.detach().to(s.dtype)) for s, t in zip(students, teachers)]).mean()


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
        self.projection = None if projection_dim is None else nn.Linear(
            embedding_dim, check_count(projection_dim, "projection_dim"))
        self.teacher_dim = embedding_dim if projection_dim is None else projection_dim  # the width it expects

    def forward(self, *embeddings: Tensor, teacher_embeddings: Tensor) -> Tensor:
        students = _named_columns(embeddings)
        if self.projection is not None:
            if students[0].shape[1] != self.projection.in_features:
                raise ValueError(f"embeddings have width {students[0].shape[1]} but the projection was built for "
                                 f"embedding_dim {self.projection.in_features}")
            students = [self.projection(s.to(self.projection.weight.dtype)) for s in students]
        return embed_distill_loss(*students, teacher_embeddings=teacher_embeddings, distance=self.distance)


def _candidate_scores(queries: Tensor, positives: Tensor, negatives: tuple[Tensor, ...], similarity: str
                      ) -> tuple[Tensor, int]:
    """(B, 1 + k) student scores sim(query, candidate) for candidates (positive, negatives...), and B."""
    named = {f"negatives[{i}]": n for i, n in enumerate(negatives)}
    q, p, *n = check_embeddings(queries=queries, positives=positives, **named)
    sim = lookup(PAIRWISE_SIMILARITIES, similarity, "similarity")
    return torch.stack([sim(q, c) for c in (p, *n)], dim=1), q.shape[0]


@needs("teacher_scores", columns=3, more_columns=True)
def margin_mse_loss(queries: Tensor, positives: Tensor, *negatives: Tensor, teacher_scores: Tensor,
                    similarity: str = "dot") -> Tensor:
    """Margin-MSE (Hofstätter et al. 2020): mean over rows and negatives of
    ((s(q, p) - s(q, n_j)) - (t_p - t_{n_j}))^2. teacher_scores per row: the teacher's score of every candidate
    (positive, negatives...), or directly the k margins t_p - t_{n_j}. similarity "dot" (default) or "cosine"."""
    if not negatives:
        raise ValueError("margin_mse_loss needs at least one negative column (query, positive, negative...)")
    student, b = _candidate_scores(queries, positives, negatives, similarity)
    k = len(negatives)
    teacher = check_target_rows(teacher_scores, b, "teacher_scores", widths=(k + 1, k)).to(student.dtype)
    margins = teacher[:, :1] - teacher[:, 1:] if teacher.shape[1] == k + 1 else teacher
    return F.mse_loss(student[:, :1] - student[:, 1:], margins.detach())


@needs("teacher_scores", columns=3, more_columns=True)
def distill_kl_div_loss(queries: Tensor, positives: Tensor, *negatives: Tensor, teacher_scores: Tensor,
                        similarity: str = "dot", temperature: float = 1.0, student_temperature: float | None = None,
                        teacher_temperature: float | None = None) -> Tensor:
    """KL(teacher || student) between softmaxes over each row's candidates (positive, negatives...) of
    teacher_scores / teacher_temperature and sim(query, candidate) / student_temperature, averaged over rows and
    times student_temperature^2 (Hinton et al. 2015; Lin et al. 2020). Both temperatures default to
    ``temperature``."""
    if not negatives:
        raise ValueError("distill_kl_div_loss needs at least one negative column: a softmax over one candidate is "
                         "constant")
    student, b = _candidate_scores(queries, positives, negatives, similarity)
    t = check_number(temperature, "temperature", positive=True)
    t_student = t if student_temperature is None else check_number(student_temperature, "student_temperature",
                                                                   positive=True)
    t_teacher = t if teacher_temperature is None else check_number(teacher_temperature, "teacher_temperature",
                                                                   positive=True)
    teacher = check_target_rows(teacher_scores, b, "teacher_scores", widths=(student.shape[1],)).to(student.dtype)
    target = torch.softmax(teacher.detach() / t_teacher, dim=1)
    return F.kl_div(torch.log_softmax(student / t_student, dim=1), target, reduction="batchmean") * t_student**2
