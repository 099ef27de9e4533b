"""A dynamically int8-quantised copy of a ``BertModel``, for ``SentenceEncoder.encode(quantized_model=True)`` on CPU.

Dynamic quantisation stores each linear's weights in int8 and quantises its input per batch, with one scale for the
whole activation tensor. The model itself is left unchanged; the copy is cached and rebuilt when a weight changes.
"""

from __future__ import annotations

import copy
import warnings

import torch
import torch.nn as nn

from minilm.model import BertModel

# Linears left in fp32. One tensor-wide activation scale fits the feed-forward down projections of the first layers
# badly (their inputs, after GELU, carry a few huge outliers), and since the scale is per batch, the error also
# depends on how sentences fall into batches. Keeping these two was the smallest set that held the STS-dev Spearman
# drop well inside 0.005 over several batchings (the alternatives measured are in benchmarks/README.md).
INT8_KEEP_FP32 = ("layers.0.ffn.down", "layers.1.ffn.down")


def quantize_int8(bert: BertModel) -> nn.Module:
    """A dynamically int8-quantised copy of ``bert`` (CPU only), in eval mode; ``bert`` is unchanged."""
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

    spec = {
        name: default_dynamic_qconfig
        for name, module in bert.named_modules()
        if isinstance(module, nn.Linear) and name not in INT8_KEEP_FP32
    }
    # A fresh, uncompiled module (quantised linears are not for torch.compile), built without touching the global
    # RNG that seeded dropout draws rely on; it keeps each layer's choice of attention math.
    with torch.random.fork_rng(devices=[]):
        fresh = BertModel(copy.deepcopy(bert.config))
    fresh.load_state_dict(bert.state_dict())
    for ours, theirs in zip(fresh.layers, bert.layers):
        ours.attention.sdpa = theirs.attention.sdpa
    with warnings.catch_warnings():  # torch flags its quantised tensor types as deprecated; they still work
        warnings.simplefilter("ignore")
        return quantize_dynamic(fresh.eval(), spec)


class Int8Cache:
    """Holds the int8 copy of one model, rebuilt whenever any of the model's weights has changed since."""

    def __init__(self):
        self.key = None  # (data pointer, version) of every parameter the copy was built from
        self.model: nn.Module | None = None

    def get(self, bert: BertModel) -> nn.Module:
        device = next(bert.parameters()).device
        if device.type != "cpu":
            raise ValueError(f"quantized_model=True runs on CPU only; the model is on {device}")
        key = tuple((p.data_ptr(), p._version) for p in bert.parameters())
        if self.model is None or self.key != key:
            self.key, self.model = key, quantize_int8(bert)
        return self.model
