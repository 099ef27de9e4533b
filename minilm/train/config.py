"""The trainer's settings: one dataclass, also the source of the recipe ``[train]`` table (keys, types, defaults).

Kept apart from trainer.py so that checking a recipe does not import the trainer.
"""

from __future__ import annotations

import typing
from dataclasses import MISSING, dataclass, field, fields

# The settings that switch the gradient cache on (grad_cache.py): either splits a batch into mini-batches.
GRADIENT_CACHE_KEYS = ("mini_batch_size", "mini_batch_num_tokens")
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8  # the trainer's AdamW, as sentence-transformers' (and torch's) defaults


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
    device: str = "auto"  # "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:N", "mps"; torchrun: each rank's GPU
    precision: str = "fp32"  # "bf16" / "fp16": the forward under autocast, float32 weights (train/precision.py)
    tf32: bool = False  # CUDA only: float32 matmuls in TF32 (Ampere and later; ~10 mantissa bits, faster)
    metric_for_best: str = ""  # a key of the evaluation result ("cosine_accuracy"; "sts/spearman" with named ones)
    greater_is_better: bool = True  # for metric_for_best
    load_best_at_end: bool = (
        False  # final/ is the best evaluated model, not the last (needs metric_for_best, eval_steps)
    )
    early_stopping_patience: int = 0  # > 0: stop after this many evaluations without improvement of metric_for_best
    report_to: list = field(default_factory=lambda: ["jsonl"])  # "jsonl" (always: log.jsonl), "tensorboard"

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def train_schema(required: object) -> dict[str, tuple]:
    """Recipe ``[train]`` keys -> (type, default), from TrainConfig; batch_size is ``required``."""
    hints = typing.get_type_hints(TrainConfig)
    schema = {f.name: (hints[f.name], default_of(f)) for f in fields(TrainConfig)}
    schema["batch_size"] = (int, required)
    return schema


def default_of(f) -> object:
    """A TrainConfig field's default value (a fresh one for mutable defaults such as ``report_to``)."""
    return f.default_factory() if f.default is MISSING else f.default


def non_defaults(config: TrainConfig) -> dict:
    """The settings of ``config`` that differ from TrainConfig's defaults, in field order."""
    return {f.name: getattr(config, f.name) for f in fields(TrainConfig) if getattr(config, f.name) != default_of(f)}


def check_learning_rates(config: TrainConfig) -> None:
    """lr and loss_lr give AdamW a first step it can take in float32 (``optim.check_step_size``); a ValueError names
    the key."""
    from minilm.train.optim import check_step_size

    for key in ("lr", "loss_lr"):
        check_step_size(getattr(config, key), ADAM_BETAS[0], key)


def check_best_settings(config: TrainConfig) -> None:
    """metric_for_best, load_best_at_end and early_stopping_patience fit together; a ValueError names the key."""
    if config.early_stopping_patience < 0:
        raise ValueError(f"early_stopping_patience must be >= 0, got {config.early_stopping_patience}")
    users = [key for key in ("load_best_at_end", "early_stopping_patience") if getattr(config, key)]
    if users and not config.metric_for_best:
        raise ValueError(f"{users[0]} needs metric_for_best (a metric of the evaluation, e.g. 'cosine_accuracy')")
    if users and not config.eval_steps:
        raise ValueError(f"{users[0]} needs eval_steps > 0 (evaluations during training)")
