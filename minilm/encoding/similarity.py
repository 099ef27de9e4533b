"""Similarity of embeddings as sentence-transformers' ``similarity`` / ``similarity_pairwise`` compute it: the same
four functions (cosine, dot, euclidean and manhattan, the last two as negative distances), the same inputs (a tensor,
an array, a list of either, one embedding), the same result (a float tensor), computed the same way so that the
numbers are equal.

One difference, on purpose: integer embeddings (``precision`` int8 / uint8 / binary / ubinary) are refused with an
error saying what to do. sentence-transformers ends in a torch error for most of them, and for ``dot`` multiplies
in int8 and returns wrapped-around numbers; binary embeddings are packed bits, which no float similarity reads.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

SIMILARITY_FUNCTIONS = ("cosine", "dot", "euclidean", "manhattan")


def check_similarity_fn_name(value) -> str:
    """A name of SIMILARITY_FUNCTIONS (sentence-transformers' SimilarityFunction members are accepted by value)."""
    value = getattr(value, "value", value)
    if value not in SIMILARITY_FUNCTIONS:
        raise ValueError(f"similarity_fn_name must be one of {SIMILARITY_FUNCTIONS}, got {value!r}")
    return value


def as_float_tensor(x, name: str) -> torch.Tensor:
    """``x`` (tensor, array, list of either, nested lists) as a tensor, half precision widened to float32; integer
    embeddings refused by name."""
    if isinstance(x, list) and x and all(isinstance(v, torch.Tensor) for v in x):
        x = torch.stack(x)
    elif isinstance(x, list) and x and all(isinstance(v, np.ndarray) for v in x):
        x = torch.from_numpy(np.stack(x))
    elif isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    elif not isinstance(x, torch.Tensor):
        x = torch.tensor(x)
    if not x.is_floating_point():
        kind = str(x.dtype).removeprefix("torch.")
        raise ValueError(
            f"similarity: {name} holds {kind} embeddings (quantised with precision int8 / uint8 / binary?); "
            "similarity is computed on float embeddings: encode with precision='float32' (the default), or convert "
            "int8 / uint8 ones with .astype(np.float32); binary ones are packed bits (np.unpackbits, or compare them "
            "by Hamming distance)"
        )
    return x.float() if torch.finfo(x.dtype).bits < 32 else x


def _pair(a, b, batch: bool) -> tuple[torch.Tensor, torch.Tensor]:
    a, b = as_float_tensor(a, "embeddings1"), as_float_tensor(b, "embeddings2")
    if batch:
        a, b = (a.unsqueeze(0) if a.dim() == 1 else a), (b.unsqueeze(0) if b.dim() == 1 else b)
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(
            f"similarity: embedding widths differ, embeddings1 has {a.shape[-1]} and embeddings2 has {b.shape[-1]}"
        )
    dtype = torch.promote_types(a.dtype, b.dtype)
    return a.to(dtype), b.to(dtype)


def similarity(a, b, fn_name: str = "cosine") -> torch.Tensor:
    """(N, M) similarities of every row of ``a`` with every row of ``b`` (a single embedding counts as one row)."""
    a, b = _pair(a, b, batch=True)  # (N, D), (M, D)
    if fn_name == "cosine":
        return F.normalize(a, p=2, dim=-1) @ F.normalize(b, p=2, dim=-1).T
    if fn_name == "dot":
        return a @ b.T
    if fn_name == "euclidean":
        return -torch.cdist(a, b, p=2.0)
    if fn_name == "manhattan":
        return -torch.cdist(a, b, p=1.0)
    raise ValueError(f"similarity_fn_name must be one of {SIMILARITY_FUNCTIONS}, got {fn_name!r}")


def similarity_pairwise(a, b, fn_name: str = "cosine") -> torch.Tensor:
    """(N,) similarities of ``a[i]`` with ``b[i]``."""
    a, b = _pair(a, b, batch=False)
    if fn_name == "cosine":
        return (F.normalize(a, p=2, dim=-1) * F.normalize(b, p=2, dim=-1)).sum(dim=-1)
    if fn_name == "dot":
        return (a * b).sum(dim=-1)
    if fn_name == "euclidean":
        return -torch.linalg.vector_norm(a - b, dim=-1)
    if fn_name == "manhattan":
        return -torch.sum(torch.abs(a - b), dim=-1)
    raise ValueError(f"similarity_fn_name must be one of {SIMILARITY_FUNCTIONS}, got {fn_name!r}")
