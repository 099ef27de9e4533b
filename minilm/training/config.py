"""The trainer's settings: one dataclass, also the source of the recipe ``[train]`` table (keys, types, defaults).

Kept apart from trainer.py so that checking a recipe does not import the trainer.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, fields


@dataclass
class TrainConfig:
    batch_size: int = 32  # rows per optimiser step (the sampler is built with it); required in a recipe
    epochs: int = 1
    max_steps: int = 0  # > 0: stop after this many optimiser steps, whatever the epochs
    lr: float = 5e-5
    loss_lr: float = 0.0  # > 0: learning rate of the loss's own parameters (a temperature, a head); 0: lr
    warmup_steps: int = 0
    warmup_ratio: float = 0.0  # fraction of the steps, rounded up (give this or warmup_steps)
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    seed: int = 42
    dropout: bool = True  # dropout on while training, as in sentence-transformers
    mini_batch_size: int = 0  # > 0: gradient cache with mini-batches of this size (in-batch negatives, big batches)
    mini_batch_num_tokens: int = 0  # > 0: gradient cache, each mini-batch at most this many real tokens (not rows)
    eval_steps: int = 0  # > 0: evaluate every this many steps (and always before and at the end)
    save_steps: int = 0  # > 0: resumable checkpoint every this many steps
    keep_checkpoints: int = 2  # how many step checkpoints to keep (the newest)
    gather_across_devices: bool = False  # under torchrun: the loss sees every rank's rows (docs/distributed.md)
    distributed_timeout_s: float = 1800.0  # under torchrun: a rank waiting this long for the others fails the job
    compile: bool = False  # torch.compile the layers, AdamW step and MNRL (minilm.kernels); see benchmarks/README.md

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def train_schema(required: object) -> dict[str, tuple]:
    """Recipe ``[train]`` keys -> (type, default), from TrainConfig; batch_size is ``required``."""
    hints = typing.get_type_hints(TrainConfig)
    schema = {f.name: (hints[f.name], f.default) for f in fields(TrainConfig)}
    schema["batch_size"] = (int, required)
    return schema
