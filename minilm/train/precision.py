"""Mixed precision: the model's forward under autocast, everything else in float32; fp16's dynamic loss scaling.

``[train] precision`` is a property of the step, never of a loss. With ``"bf16"`` or ``"fp16"`` the model's forward
(every matmul, attention) runs under ``torch.autocast`` in that dtype, while the weights, their gradients and AdamW's
moments stay float32 (master weights), and the loss sees float32 embeddings: a loss is written once, for float32.
``"fp32"`` has no ``Precision`` at all: the step runs exactly as it always has, with no autocast context and no
scaler.

fp16 has 5 exponent bits: gradients of a few 1e-8 flush to zero. The loss is therefore multiplied by a scale before
the backward (the gradients with it, by linearity), and the gradients divided by it again before clipping. A scale
that is too large overflows some gradient to infinity: that step is skipped (no update; the batch is used up) and the
scale halved; after ``growth_interval`` good steps in a row it is doubled, to find the largest scale that fits
(Micikevicius et al. 2018, "Mixed Precision Training"; torch.amp.GradScaler's rule). The scale stays a power of two,
so scaling and unscaling are exact. bf16 has float32's exponent range and needs no scale.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from minilm.util.devices import check_precision

INITIAL_SCALE = 2.0**16  # as torch.amp.GradScaler
GROWTH_INTERVAL = 2000  # good steps in a row before the scale doubles (GradScaler's default)
MAX_SKIPS_IN_ROW = 50  # a scale still overflowing after this many halvings (2^16 -> 2^-34) is not an overflow


class LossScaler:
    """Dynamic loss scale for fp16: ``scale_loss`` before the backward, ``unscale_`` before clipping, ``update`` with
    whether the step's loss and gradients were finite. Its state is three numbers, checkpointed with the trainer's."""

    def __init__(
        self,
        scale: float = INITIAL_SCALE,
        growth_interval: int = GROWTH_INTERVAL,
        max_skips_in_row: int = MAX_SKIPS_IN_ROW,
    ):
        if not (scale > 0 and math.log2(scale).is_integer()):
            raise ValueError(f"the loss scale must be a power of two (exact to scale and unscale), got {scale}")
        self.scale = float(scale)
        self.growth_interval, self.max_skips_in_row = growth_interval, max_skips_in_row
        self.good_steps = 0  # finite steps since the scale last changed
        self.skips_in_row = 0  # non-finite steps in a row, each one skipped

    def scale_loss(self, loss: Tensor) -> Tensor:
        return loss * self.scale

    @torch.no_grad()
    def unscale_(self, params: Sequence[Tensor]) -> None:
        """Divide every gradient by the scale, in place (a power of two: exact, unless a value is subnormal)."""
        grads = [p.grad for p in params if p.grad is not None]
        if grads:
            torch._foreach_mul_(grads, 1.0 / self.scale)

    def update(self, finite: bool) -> bool:
        """Account for one step; True when it must be skipped (its loss or gradients were not finite)."""
        if finite:
            self.skips_in_row = 0
            self.good_steps += 1
            if self.good_steps == self.growth_interval:
                self.scale *= 2.0
                self.good_steps = 0
            return False
        self.skips_in_row += 1
        self.good_steps = 0
        self.scale *= 0.5
        return True

    @property
    def collapsed(self) -> bool:
        """Too many skips in a row: the forward overflows fp16 (or the model has diverged), whatever the scale."""
        return self.skips_in_row >= self.max_skips_in_row

    def state_dict(self) -> dict:
        return {"scale": self.scale, "good_steps": self.good_steps, "skips_in_row": self.skips_in_row}

    def load_state_dict(self, state: dict) -> None:
        self.scale = float(state["scale"])
        self.good_steps, self.skips_in_row = int(state["good_steps"]), int(state["skips_in_row"])


class Precision:
    """How a step computes in ``name`` ("bf16" or "fp16") on ``device``: autocast around the model's forward, float32
    out of it, and for fp16 a ``LossScaler``."""

    def __init__(self, name: str, device: torch.device):
        if name == "fp32":
            raise ValueError("fp32 runs without a Precision (the plain step): use make_precision")
        self.name, self.dtype = name, check_precision(name, device)
        self.device_type = device.type
        self.scaler = LossScaler() if name == "fp16" else None

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype)

    def embed(self, embed: Callable, model: nn.Module, columns) -> tuple[list[Tensor], dict]:
        """An ``Embed`` under autocast; its embeddings and whatever else it returns (every layer's) as float32."""
        with self.autocast():
            embeddings, more = embed(model, columns)
        return as_float32(embeddings), as_float32(more)

    def forward(self, model: nn.Module, **features) -> Tensor:
        """One forward of ``model`` under autocast; its embeddings (b, D) as float32."""
        with self.autocast():
            return model(**features).float()

    def backward(self, loss: Tensor) -> None:
        """The backward of ``loss`` (times the scale under fp16)."""
        (loss if self.scaler is None else self.scaler.scale_loss(loss)).backward()


def make_precision(name: str, device: torch.device) -> Precision | None:
    """None for fp32 (the step is left exactly as it is), else the ``Precision`` of ``name`` on ``device`` (refused by
    name when the device cannot run it)."""
    check_precision(name, device)
    return None if name == "fp32" else Precision(name, device)


def as_float32(value):
    """Floating tensors inside ``value`` (a tensor, a list, tuple or dict of them, nested) as float32."""
    if isinstance(value, Tensor):
        return value.float() if value.is_floating_point() and value.dtype != torch.float32 else value
    if isinstance(value, dict):
        return {k: as_float32(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(as_float32(v) for v in value)
    return value


@contextmanager
def tf32_matmuls(enabled: bool) -> Iterator[None]:
    """``[train] tf32``: CUDA float32 matmuls and convolutions in TF32 (10-bit mantissa, Ampere and later) within the
    block, as they were before afterwards. Off: nothing is touched."""
    if not enabled:
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
