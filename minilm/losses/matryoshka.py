"""Matryoshka representation learning: a loss summed over prefixes of the embedding."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch.nn.functional as F
from torch import Tensor

from minilm.losses.inputs import split_output
from minilm.util.checks import check_number


def matryoshka(
    loss_fn: Callable[..., Tensor],
    dims: Sequence[int] = (384, 256, 128, 64, 32),
    weights: Sequence[float] | None = None,
) -> Callable[..., Tensor]:
    """Wrap a loss so it is summed over prefixes of the embedding (Kusupati et al. 2022):
    sum_k weights[k] * loss_fn(normalize(x[:, :dims[k]]) for every embedding argument x).
    Statistics the loss reports are those of the first (widest) prefix.

    Embedding arguments are the positional 2-D tensors; keyword arguments (labels, scores, a teacher's scores or
    embeddings) pass through untouched. Same signature as loss_fn.
    """
    dims = tuple(dims)
    weights = (1.0,) * len(dims) if weights is None else tuple(weights)
    if not dims or any(isinstance(d, bool) or not isinstance(d, int) or d <= 0 for d in dims):
        raise ValueError(f"dims must be a non-empty sequence of positive ints, got {dims}")
    if len(weights) != len(dims):
        raise ValueError(f"weights must have one entry per dim ({len(dims)}), got {len(weights)}")
    for w in weights:
        check_number(w, "weights")

    def is_embedding(x: object) -> bool:
        return isinstance(x, Tensor) and x.ndim == 2

    @functools.wraps(loss_fn)
    def wrapped(*args, **kwargs) -> Tensor:
        width = min((x.shape[1] for x in args if is_embedding(x)), default=0)
        if max(dims) > width:
            raise ValueError(f"dims {dims} exceed the embedding dimension {width}")
        total, reported = 0.0, {}
        for dim, weight in zip(dims, weights):

            def shrink(x, dim=dim):
                return F.normalize(x[:, :dim], dim=-1) if is_embedding(x) else x

            loss, stats = split_output(loss_fn(*map(shrink, args), **kwargs))
            total = total + weight * loss
            reported = reported or stats  # the full-width (first) loss's statistics
        return (total, reported) if reported else total

    return wrapped
