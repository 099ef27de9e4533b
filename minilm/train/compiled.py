"""The one place that decides compiled vs eager training: ``[train] compile = true`` goes through here.

Compiled pieces live in the top-level ``kernels/`` folder (``minilm.kernels``), each tested against the eager path
it replaces. On CPU they do not pay (benchmarks/README.md), so the default is eager.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from minilm.losses import multiple_negatives_ranking_loss
from minilm.train.optim import AdamW


def compiled_training(model, loss_fn: Callable) -> tuple[Callable, type[AdamW]]:
    """Compile ``model``'s layers in place; return the loss to train with and the optimiser class.

    The loss becomes the fused kernel when it is in-batch negatives in the kernel's form (cosine, one direction, no
    matryoshka wrapper), recognised by the function itself, not by a recipe name.
    """
    from minilm.kernels.adamw import FusedAdamW
    from minilm.kernels.mnrl import fused_mnrl_loss

    model.compile_kernels()
    if isinstance(loss_fn, functools.partial) and loss_fn.func is multiple_negatives_ranking_loss and not loss_fn.args:
        settings = dict(loss_fn.keywords)
        scale = settings.pop("scale", 20.0)
        if settings.items() <= {"similarity": "cosine", "symmetric": False}.items():
            loss_fn = functools.partial(fused_mnrl_loss, scale=scale)
    return loss_fn, FusedAdamW
