"""Distances and similarities between embeddings, plus the one input check every loss shares.

Naming states the sign: a ``*_distance`` is smaller-is-closer, a ``*_similarity`` larger-is-closer.
Each family is a dict from name to function, so a new metric is one function and one dict entry.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

# ---------------------------------------------------------------------------------------------------------------------
# input checks (shared by every loss: one place, one wording)


def check_embeddings(**named: Tensor) -> list[Tensor]:
    """Check embedding matrices passed by keyword (the keyword names the argument in errors); return them in order.

    Each must be a finite floating (B, D) tensor, all with the same B and D. float16/bfloat16 are promoted to float32
    so that distances are not rounded into spurious ties (sentence-transformers does the same).
    """
    out, first = [], None
    for name, x in named.items():
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"{name} must have shape (batch, dim) with batch >= 1, got shape {tuple(x.shape)}")
        if first is not None and x.shape != out[0].shape:
            raise ValueError(f"{name} has shape {tuple(x.shape)} but {first} has shape {tuple(out[0].shape)}")
        # one cheap reduction first; a non-finite sum can also be overflow, so confirm element-wise before raising
        if not bool(torch.isfinite(x.detach().sum())) and not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} contains NaN or infinite values")
        out.append(x.float() if torch.finfo(x.dtype).bits < 32 else x)
        first = first or name
    return out


def check_targets(x: Tensor, batch_size: int, name: str, kind: str) -> Tensor:
    """Check per-example targets: kind "labels" (integer/bool class ids) or "scores" (real numbers, finite)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if kind == "labels" and (x.is_floating_point() or x.is_complex()):
        raise TypeError(f"{name} must be an integer or bool tensor of class ids, got dtype {x.dtype}")
    if kind == "scores" and x.is_complex():
        raise TypeError(f"{name} must be a real-valued tensor, got dtype {x.dtype}")
    if x.ndim != 1 or x.shape[0] != batch_size:
        raise ValueError(f"{name} must have shape ({batch_size},) (one per example), got shape {tuple(x.shape)}")
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x.int() if x.dtype == torch.bool else x


def lookup(table: dict[str, Callable], name: str, arg: str) -> Callable:
    """table[name], or a ValueError naming the argument and the valid choices."""
    if not isinstance(name, str) or name not in table:
        raise ValueError(f"{arg} must be one of {sorted(table)}, got {name!r}")
    return table[name]


# ---------------------------------------------------------------------------------------------------------------------
# row-wise: d(a[i], b[i]) -> (B,)


def euclidean_distance(a: Tensor, b: Tensor) -> Tensor:
    # vector_norm's backward is 0 (not NaN) at a == b
    return torch.linalg.vector_norm(a - b, dim=-1)


def cosine_distance(a: Tensor, b: Tensor) -> Tensor:
    return 1 - cosine_similarity(a, b)


def manhattan_distance(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).abs().sum(dim=-1)


def cosine_similarity(a: Tensor, b: Tensor) -> Tensor:
    # F.normalize maps a zero vector to zero (eps 1e-12), so its similarity to anything is 0, not NaN
    return (F.normalize(a, dim=-1) * F.normalize(b, dim=-1)).sum(dim=-1)


PAIRWISE_DISTANCES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "euclidean": euclidean_distance,
    "cosine": cosine_distance,
    "manhattan": manhattan_distance,
}

# ---------------------------------------------------------------------------------------------------------------------
# all pairs: M[i, j] = f(a[i], b[j]) -> (B, B')


def euclidean_distance_matrix(x: Tensor) -> Tensor:
    """||x_i - x_j|| from the Gram matrix; the diagonal is exactly 0 and its gradient 0 (safe square root)."""
    gram = x @ x.T  # (B, B)
    sq = gram.diagonal()  # (B,) squared norms, read off the Gram so x_i - x_i cancels exactly
    d2 = (sq[:, None] - 2 * gram + sq[None, :]).clamp_min(0)  # rounding can go slightly negative
    pos = d2 > 0
    # sqrt'(0) is infinite; feed the sqrt a dummy 1 there and zero the result, so the gradient is 0 rather than NaN
    return torch.where(pos, d2.where(pos, 1).sqrt(), 0)


def cosine_distance_matrix(x: Tensor) -> Tensor:
    return 1 - cosine_similarity_matrix(x, x)


def cosine_similarity_matrix(a: Tensor, b: Tensor) -> Tensor:
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T


def dot_similarity_matrix(a: Tensor, b: Tensor) -> Tensor:
    return a @ b.T


# The batch triplet losses take these; sentence-transformers offers exactly these two for them.
DISTANCE_MATRICES: dict[str, Callable[[Tensor], Tensor]] = {
    "euclidean": euclidean_distance_matrix,
    "cosine": cosine_distance_matrix,
}

SIMILARITY_MATRICES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "cosine": cosine_similarity_matrix,
    "dot": dot_similarity_matrix,
}
