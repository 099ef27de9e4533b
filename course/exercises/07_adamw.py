"""Lesson 7 exercise: one AdamW update, and the linear warmup / decay schedule of the learning rate.

Replace each ``raise NotImplementedError`` with your code, then run ``python course/check.py 7``.
"""

import math

import torch
from torch import Tensor


def adamw_update(
    param: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    step: int,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> tuple[Tensor, Tensor, Tensor]:
    """One AdamW update of one parameter tensor; returns (param, exp_avg, exp_avg_sq) after it.

    exp_avg and exp_avg_sq are the running first and second moments of the gradient (zeros before the first
    update); ``step`` is the number of this update, 1 for the first. With decoupled weight decay, bias-corrected
    moments, and eps added outside the square root (as torch.optim.AdamW). Work without autograd: this is the
    optimiser, not the model. You may return new tensors or update the given ones in place and return them.
    """
    raise NotImplementedError


def linear_schedule(step: int, warmup_steps: int, total_steps: int) -> float:
    """The learning-rate multiplier at optimiser step ``step`` (0 for the first update): rising linearly from 0 to 1
    over ``warmup_steps``, then falling linearly to 0 at ``total_steps``, and 0 after that."""
    raise NotImplementedError
