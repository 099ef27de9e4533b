"""Every layer's embeddings, for a loss declared with ``@needs(..., layers=True)`` (AdaptiveLayer, Matryoshka2d).

The loss gets the last layer's embeddings as its columns, every earlier layer's as ``layers`` ({0: embedding output,
..., L - 1: [column...]}), pooled as the last layer is, and ``layer_rng``, a random.Random from which it draws the
layers it trains this step: a function of the seed and the step alone (a string seed hashes the same in every
process), so a resumed run draws what the uninterrupted one did.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from minilm.losses.inputs import Needs
from minilm.train.columns import embed_columns_by_layer
from minilm.train.config import GRADIENT_CACHE_KEYS, TrainConfig
from minilm.train.extensions import Extension, RunContext


class EveryLayer(Extension):
    name = "layers"

    def __init__(self, seed: int = 0):
        self.seed = seed

    @classmethod
    def takes(cls, needs: Needs) -> bool:
        return needs.layers

    @classmethod
    def refusal(cls, loss: str, config: TrainConfig, world_size: int) -> str | None:
        """The gradient cache embeds the last layer only, and under torchrun the per-layer forward would bypass DDP."""
        for key in GRADIENT_CACHE_KEYS:
            if getattr(config, key):
                return (
                    f"{key} (gradient cache) cannot run loss {loss}: the cache embeds the last layer only, and "
                    f"this loss trains every layer; unset it"
                )
        if world_size > 1:
            return (
                f"loss {loss} trains every layer, which runs the model outside DDP: it trains in one process only "
                f"(not under torchrun)"
            )
        return None

    @classmethod
    def example_inputs(cls, embeddings: list[Tensor]) -> dict:
        gen = torch.Generator().manual_seed(2)  # two earlier layers, shaped like the last
        layers = {i: [torch.randn(e.shape, generator=gen) for e in embeddings] for i in range(2)}
        return {"layers": layers, "layer_rng": random.Random(0)}

    @classmethod
    def build(cls, run: RunContext) -> EveryLayer:
        return cls(run.config.seed)

    def embedding(self):
        return embed_every_layer

    def loss_inputs(self, columns: Sequence, step: int, device) -> dict:
        return {"layer_rng": random.Random(f"layers:{self.seed}:{step}")}


def embed_every_layer(model: nn.Module, columns: Sequence) -> tuple[list[Tensor], dict]:
    *earlier, last = embed_columns_by_layer(model, columns)
    return last, {"layers": dict(enumerate(earlier))}
