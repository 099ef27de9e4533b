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
    out = check_embedding_shapes(**named)
    for name, x in zip(named, out):
        if not _finite(x):
            raise NonFiniteError(f"{name} contains NaN or infinite values")
    return out


def check_finite_result(result: Tensor, **named: Tensor) -> None:
    """The finiteness half of ``check_embeddings`` / ``check_target_rows``, done after the loss instead of before it,
    for a loss in which every entry of every named input reaches ``result`` through sums and products (a dot product,
    a distance, a squared error): NaN or infinity anywhere in them makes ``result`` non-finite, so one look at the
    small ``result`` replaces a pass over each input. Only a non-finite result is traced back, naming the first input
    that holds NaN or infinity (finite inputs with a non-finite result are an overflow, and pass)."""
    if math.isfinite(result.detach().sum().item()):
        return
    for name, x in named.items():
        if not bool(torch.isfinite(x).all()):
            raise NonFiniteError(f"{name} contains NaN or infinite values")


def check_embedding_shapes(**named: Tensor) -> list[Tensor]:
    """``check_embeddings`` without the finiteness test, for a loss that runs ``check_finite_result`` on its output."""
    out, first, shape = [], None, None
    for name, x in named.items():
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"{name} must have shape (batch, dim) with batch >= 1, got shape {tuple(x.shape)}")
        if shape is None:
            first, shape = name, x.shape
        elif x.shape != shape:
            raise ValueError(f"{name} has shape {tuple(x.shape)} but {first} has shape {tuple(shape)}")
        out.append(x.float() if x.dtype in (torch.float16, torch.bfloat16) else x)
    return out


def _finite(x: Tensor) -> bool:
    """No NaN or infinity in x. One cheap reduction read back as a Python float (torch.isfinite on a 0-d tensor costs
    several times more); a non-finite sum can also be overflow, so only then look element-wise."""
    return math.isfinite(x.detach().sum().item()) or bool(torch.isfinite(x).all())


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
    if x.is_floating_point() and not _finite(x):
        raise NonFiniteError(f"{name} contains NaN or infinite values")
    return x.int() if x.dtype == torch.bool else x


def check_target_rows(
    x: Tensor, batch_size: int, name: str, widths: Sequence[int] | None = None, finite: bool = True
) -> Tensor:
    """Check per-example rows of numbers (a teacher's scores or embeddings): a finite floating (batch, K) tensor,
    with K one of ``widths`` when given. Half precisions are promoted to float32. ``finite=False`` leaves the
    finiteness test to ``check_finite_result`` after the loss."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.ndim != 2 or x.shape[0] != batch_size:
        raise ValueError(f"{name} must have shape ({batch_size}, K) (one row per example), got shape {tuple(x.shape)}")
    if widths is not None and x.shape[1] not in widths:
        expected = " or ".join(str(w) for w in widths)
        raise ValueError(f"{name} must have {expected} values per row, got {x.shape[1]}")
    if finite and not _finite(x):
        raise NonFiniteError(f"{name} contains NaN or infinite values")
    return x.float() if torch.finfo(x.dtype).bits < 32 else x


def check_number(value: object, name: str, positive: bool = False) -> float:
    """A finite real hyper-parameter (bools refused: margin=True is a typo, not 1.0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not math.isfinite(value) or (positive and value <= 0):
        raise ValueError(f"{name} must be a finite{' positive' if positive else ''} number, got {value}")
    return float(value)


def check_count(value: object, name: str, minimum: int = 1) -> int:
    """An integer setting such as a width or a number of classes (bools refused), at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_class_ids(labels: Tensor, num_labels: int, name: str = "labels") -> None:
    """Class ids (already through ``check_targets``) must index one of ``num_labels`` classes."""
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_labels):
        raise ValueError(
            f"{name} must be class ids in [0, {num_labels}), got values from {int(labels.min())} to {int(labels.max())}"
        )


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
    """A detached 2-D floating tensor (from a tensor or an array); half precisions go to float32 so near scores do not
    tie."""
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
