"""The second trained copy of the model that a loss declared with ``@needs(..., model_copy=True)`` compares against
(Contrastive Tension, minilm/losses/tension.py): the extension that makes and trains it (its data, pairs of one text
column: ``minilm/data/dataset.py`` ``TextPairs``).

As in sentence-transformers 6.2, the copy is made once from the starting weights and both are optimised; the copy
embeds the first text column, the model the second, and only the model is saved. The copy is a part that trains: in
the optimiser and under the one clipping norm, its state in every checkpoint. A resume restores it from there, never
re-copies the trained model.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

from torch import Tensor, nn

from minilm.losses.inputs import Needs
from minilm.train.columns import check_columns, embed_columns
from minilm.train.config import GRADIENT_CACHE_KEYS, TrainConfig
from minilm.train.extensions import Extension, Part, RunContext


def make_copy(model: nn.Module) -> nn.Module:
    """A separate trained copy of ``model``'s current weights (the starting weights, when a run begins)."""
    return copy.deepcopy(model)  # parameters, buffers and which of them train, as the model has them


class ModelCopy(Extension):
    """A trained copy of the model's starting weights: it embeds column 0, the model column 1."""

    name = "model_copy"

    def __init__(self, module: nn.Module):
        self.module = module

    @classmethod
    def takes(cls, needs: Needs) -> bool:
        return needs.model_copy

    @classmethod
    def refusal(cls, loss: str, config: TrainConfig, world_size: int) -> str | None:
        for key in GRADIENT_CACHE_KEYS:
            if getattr(config, key):
                return (
                    f"{key} (gradient cache) cannot run loss {loss}, which embeds its columns through two models "
                    f"(the model and its trained copy); the cache embeds every column through one: unset it"
                )
        if config.compile:
            return (
                f"compile = true compiles the model's layers in place, not its trained copy's, which loss {loss} "
                f"also trains: unset it"
            )
        if world_size > 1:
            return (
                f"loss {loss} trains a copy of the model, which would run outside DDP: it trains in one process "
                f"only (not under torchrun)"
            )
        return None

    @classmethod
    def build(cls, run: RunContext) -> ModelCopy:
        return cls(make_copy(run.model))  # before compiling or wrapping: the starting weights

    def parts(self) -> dict[str, Part]:
        return {"model_copy": Part(self.module, trains=True, checkpointed=True)}  # never saved as the model

    def embedding(self):
        return self.embed

    def embed(self, model: nn.Module, columns: Sequence) -> tuple[list[Tensor], dict]:
        """The copy embeds column 0 and the model column 1 (sentence-transformers' model1 and model2), each in its
        own forward pass since they are two models."""
        check_columns(columns, 1)
        if len(columns) != 2:
            raise ValueError(f"a loss comparing the model with its copy takes 2 columns, got {len(columns)}")
        (embeddings_a,) = embed_columns(self.module, columns[:1])
        (embeddings_b,) = embed_columns(model, columns[1:])
        return [embeddings_a, embeddings_b], {}
