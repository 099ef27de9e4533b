"""A batch's text columns as the model takes them: checked, tokenised, stacked into one batch, split back.

Shared by the plain step (``step.py``) and the gradient cache (``grad_cache.py``), which both import from here and
not from each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from minilm.util.devices import to_device

Column = Sequence[str] | Mapping[str, Tensor]  # texts, or already tokenised features (B, T) per key


def embed_columns(model: nn.Module, columns: Sequence[Column]) -> list[Tensor]:
    """Every column's embeddings (B, D), from one forward pass over all columns stacked into one batch.

    One pass instead of one per column: the matmuls get k times the rows, and the word-embedding table gets one
    dense (vocab, H) gradient instead of k of them summed. Unpadded execution skips the extra padding a joint batch
    carries everywhere but inside attention. What it bought is measured in benchmarks/README.md.
    """
    embeddings = model(**joint_features(model, columns))  # (k * B, D)
    return list(embeddings.split([rows_of(column) for column in columns]))


def embed_columns_by_layer(model: nn.Module, columns: Sequence[Column]) -> list[list[Tensor]]:
    """Per hidden state (the embedding output, layer 1, ..., the last layer), every column's embeddings (B, D),
    pooled as the last layer is, from one forward pass; the last entry equals ``embed_columns``."""
    per_layer = bare_model(model).embed_layers(**joint_features(model, columns))  # L + 1 of (k * B, D)
    sizes = [rows_of(column) for column in columns]
    return [list(embeddings.split(sizes)) for embeddings in per_layer]


def joint_features(model: nn.Module, columns: Sequence[Column]) -> dict[str, Tensor]:
    """The columns' token features stacked row-wise into one batch (k * B, T), on the model's device (copied there
    without waiting, ``to_device``)."""
    device = model_device(model)
    if all(not isinstance(column, Mapping) for column in columns):
        features = bare_model(model).tokenize([text for column in columns for text in column])
    else:
        tokenised = [c if isinstance(c, Mapping) else bare_model(model).tokenize(list(c)) for c in columns]
        features = _stack_features([{k: v.to(device) for k, v in c.items()} for c in tokenised])
    return {k: to_device(v, device) for k, v in features.items()}


def _stack_features(columns: list[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """Concatenate tokenised columns row-wise, right-padding each (B, T) tensor with zeros to the widest T.

    Zero is a masked position (attention_mask 0) whatever the id there, so the padding changes no real token."""
    keys = set(columns[0])
    for i, column in enumerate(columns):
        if set(column) != keys:
            raise ValueError(f"columns[{i}] has feature keys {sorted(column)}, columns[0] has {sorted(keys)}")
        for key, value in column.items():
            if value.ndim != 2:
                raise ValueError(f"columns[{i}][{key!r}] must be (batch, tokens), got shape {tuple(value.shape)}")
    width = max(v.shape[1] for column in columns for v in column.values())
    return {k: torch.cat([F.pad(column[k], (0, width - column[k].shape[1])) for column in columns]) for k in keys}


def check_columns(columns: Sequence[Column], mini_batch_size: int) -> None:
    if isinstance(mini_batch_size, bool) or not isinstance(mini_batch_size, int) or mini_batch_size < 1:
        raise ValueError(f"mini_batch_size must be a positive int, got {mini_batch_size!r}")
    if isinstance(columns, (str, Mapping)) or not isinstance(columns, Sequence) or not columns:
        raise TypeError("columns must be a non-empty list of columns (each a list of texts or a feature dict)")
    for i, column in enumerate(columns):
        if isinstance(column, str) or not isinstance(column, (Sequence, Mapping)):
            raise TypeError(f"columns[{i}] must be a list of texts or a feature dict, got {type(column).__name__}")
    sizes = [rows_of(column) for column in columns]
    if min(sizes) == 0 or len(set(sizes)) > 1:
        raise ValueError(f"columns must be non-empty and of equal length, got lengths {sizes}")


def bare_model(model: nn.Module) -> nn.Module:
    """The encoder itself, also when it is wrapped in DistributedDataParallel (which has no ``tokenize``)."""
    return getattr(model, "module", model)


def model_device(model: nn.Module) -> torch.device:
    return getattr(bare_model(model), "device", None) or next(model.parameters()).device


def rows_of(column: Column) -> int:
    return len(next(iter(column.values()))) if isinstance(column, Mapping) else len(column)
