"""Dropout with cheap masks on CPU: 16 random bits per element instead of one Bernoulli draw each.

torch's CPU dropout draws every element with its own ``bernoulli_`` call into the Mersenne Twister, which for the
attention probabilities of a training batch (B, nh, T, T) is a sizeable share of a training step (benchmarks/README.md).
Here one 64-bit draw feeds four elements: each keeps its value when its 16 bits clear a threshold. The drop
probability is therefore ``p`` rounded to a multiple of 1/65536 (0.1 -> 0.100006) and the survivors are scaled by
1 / (1 - that), so the expectation is exact up to the rounding of that scale in the input's dtype (as with torch's).
Everything else is ordinary dropout: fresh masks from torch's global generator (``torch.manual_seed`` and the
gradient cache's RNG replay work unchanged), identity in eval mode. On other devices ``F.dropout`` is already fast,
so it is used as is.

``use_cheap_dropout(model)`` applies it from outside: every ``nn.Dropout`` of the model becomes a ``Dropout`` here,
the attention probabilities' included (``SelfAttention`` sends them through its ``attn_dropout`` module whenever
dropout is on).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

LEVELS = 1 << 16  # resolution of the drop probability


def quantised_p(p: float) -> float:
    """The drop probability the CPU masks realise for a requested ``p``."""
    return round(p * LEVELS) / LEVELS


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, device=None) -> torch.Tensor:
    """Bool mask of ``shape``: True (keep) with probability 1 - quantised_p(p), drawn from the global generator."""
    n = math.prod(shape)
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-(2**63), 2**63 - 1)  # 4 x 16 bits
    threshold = round(p * LEVELS) - LEVELS // 2  # int16 spans [-32768, 32767]: this many values lie below it
    return (bits.view(torch.int16)[:n] >= threshold).view(shape)


def check_p(p) -> float:
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be a number in [0, 1], got {p!r}")
    return float(p)


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """Zero elements of ``x`` with probability p (quantised on CPU, see above) and scale the rest by 1 / (1 - p)."""
    p = check_p(p)
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, True)
    q = quantised_p(p)
    if q >= 1.0:
        return x * 0.0
    # where() saves only the bool mask for backward (torch's CPU dropout saves a float one, 4x the memory).
    return torch.where(keep_mask(x.shape, p, x.device), x * (1.0 / (1.0 - q)), 0.0)


class Dropout(nn.Dropout):
    """``nn.Dropout`` with the cheap CPU masks; same ``p`` attribute and train/eval behaviour (never in place)."""

    def __init__(self, p: float = 0.5):
        super().__init__(check_p(p))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


def use_cheap_dropout(model: nn.Module) -> nn.Module:
    """Replace every plain ``nn.Dropout`` inside ``model`` by a ``Dropout`` with the same p and mode, in place."""
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if type(child) is nn.Dropout:
                setattr(parent, name, Dropout(child.p).train(child.training))
    return model
