"""Input checks shared by the losses, the evaluators and the tokenizer: one place, one wording.

Every check names the argument it refuses (``anchor must have shape (batch, dim) ...``), so an error says what was
wrong and where. Losses call these on entry; nothing downstream re-checks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor


class NonFiniteError(ValueError):
    """A tensor that must be finite holds NaN or infinity (the trainer reports it as divergence, naming the step)."""


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
            raise NonFiniteError(f"{name} contains NaN or infinite values")
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
        raise NonFiniteError(f"{name} contains NaN or infinite values")
    return x.int() if x.dtype == torch.bool else x


def check_number(value: object, name: str, positive: bool = False) -> float:
    """A finite real hyper-parameter (bools refused: margin=True is a typo, not 1.0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not math.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"{name} must be a finite{' positive' if positive else ''} number, got {value}")
    return float(value)


def check_flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def lookup(table: dict[str, Callable], name: str, arg: str) -> Callable:
    """table[name], or a ValueError naming the argument and the valid choices."""
    if not isinstance(name, str) or name not in table:
        raise ValueError(f"{arg} must be one of {sorted(table)}, got {name!r}")
    return table[name]


def check_texts(texts, name: str = "texts", n: int | None = None, ref_name: str = "") -> None:
    """A list or tuple of strings; with ``n``, exactly n of them (``ref_name`` says whose length that is)."""
    if isinstance(texts, str) or not isinstance(texts, (list, tuple)):
        raise TypeError(f"{name} must be a list of strings, got {type(texts).__name__}")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{name}[{i}] is {type(text).__name__}, not str: {text!r:.60}")
    if n is not None and len(texts) != n:
        raise ValueError(f"{name} has {len(texts)} items but {ref_name} has {n}")


def check_nonempty_texts(texts: Sequence[str], name: str, n: int | None = None, ref_name: str = "") -> None:
    """``check_texts`` for evaluation inputs, which must also hold at least one text."""
    if isinstance(texts, str):
        raise TypeError(f"{name} must be a sequence of strings, not a single string")
    if len(texts) == 0:
        raise ValueError(f"{name} is empty")
    check_texts(list(texts), name, n, ref_name)


def as_float_matrix(x, name: str) -> Tensor:
    """A detached 2-D floating tensor (from a tensor or an array); half precisions go to float32 so near scores do not tie."""
    t = torch.as_tensor(x).detach()  # metrics never need autograd
    if not torch.is_floating_point(t):
        raise TypeError(f"{name} must hold floating-point embeddings, got dtype {t.dtype}")
    if t.dim() != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got shape {tuple(t.shape)}")
    if t.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    return t.float() if torch.finfo(t.dtype).bits < 32 else t


def check_same_shape(ref: Tensor, ref_name: str, other: Tensor, name: str) -> None:
    if other.shape != ref.shape:
        raise ValueError(f"{name} has shape {tuple(other.shape)} but {ref_name} has shape {tuple(ref.shape)}")
