"""Distances and similarities between embeddings.

Naming states the sign: a ``*_distance`` is smaller-is-closer, a ``*_similarity`` larger-is-closer.
Each family is a dict from name to function, so a new metric is one function and one dict entry.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

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
    # torch's fused kernel: the same values as normalising each row and summing the products (0 for a zero vector,
    # not NaN), with fewer dispatches
    return F.cosine_similarity(a, b, dim=-1)


def angle_similarity(a: Tensor, b: Tensor) -> Tensor:
    """AnglE's similarity (Li & Li 2024): |Re + Im| of the complex quotient of the normalised halves, i.e. cos(a, b)
    plus a "sine" pairing dimension k with k + D/2. Not a geometric angle; an odd D gets a zero dimension appended,
    as sentence-transformers' ``pairwise_angle_sim`` does."""
    if a.shape[-1] % 2:
        a, b = F.pad(a, (0, 1)), F.pad(b, (0, 1))
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    a_re, a_im = a.chunk(2, dim=-1)
    b_re, b_im = b.chunk(2, dim=-1)
    return ((a * b).sum(dim=-1) + (a_im * b_re - a_re * b_im).sum(dim=-1)).abs()


def dot_similarity(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum(dim=-1)


PAIRWISE_SIMILARITIES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "cosine": cosine_similarity,
    "dot": dot_similarity,
}

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
