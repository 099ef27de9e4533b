"""The second trained copy of the model that a loss declared with ``@needs(..., model_copy=True)`` compares against
(Contrastive Tension, minilm/losses/tension.py): its data, its making, and the settings it cannot run with.

As in sentence-transformers 6.2, the copy is made once from the starting weights and both are optimised; the copy
embeds the first text column, the model the second, and only the model is saved. The trainer holds the copy
(``Trainer.model_copy``): its parameters in the optimiser and under the one clipping norm, its state in every
checkpoint. A resume restores it from there, never re-copies the trained model.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from minilm.train.config import GRADIENT_CACHE_KEYS


class TextPairs:
    """One text column, batched as pairs of row indices (``samplers.TensionPairSampler``): the copy embeds the first
    text of each pair, the model the second; the score is 1 for an identical pair (i, i), 0 for a random one."""

    target_name = None  # the file has no target column: the sampler makes the scores
    targets = None

    def __init__(self, texts: list[str]):
        self.columns = [list(texts)]

    def __len__(self) -> int:
        return len(self.columns[0])

    def batch(self, pairs: list[tuple[int, int]]) -> tuple[list[list[str]], dict]:
        texts = self.columns[0]
        columns = [[texts[i] for i, _ in pairs], [texts[j] for _, j in pairs]]
        return columns, {"scores": torch.tensor([float(i == j) for i, j in pairs])}


def make_copy(model: nn.Module) -> nn.Module:
    """A separate trained copy of ``model``'s current weights (the starting weights, when a run begins)."""
    return copy.deepcopy(model)  # parameters, buffers and which of them train, as the model has them


def refusal(name: str, config, world_size: int) -> str | None:
    """Why a loss with a model copy cannot run with these settings, or None."""
    for key in GRADIENT_CACHE_KEYS:
        if getattr(config, key):
            return (f"{key} (gradient cache) cannot run loss {name}, which embeds its columns through two models "
                    f"(the model and its trained copy); the cache embeds every column through one: unset it")
    if config.compile:
        return (f"compile = true compiles the model's layers in place, not its trained copy's, which loss {name} "
                f"also trains: unset it")
    if world_size > 1:
        return (f"loss {name} trains a copy of the model, which would run outside DDP: it trains in one process "
                f"only (not under torchrun)")
    return None
