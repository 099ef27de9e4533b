"""The encoder layer through torch.compile: bias + GELU, residual + LayerNorm and the softmax fuse into few loops.

Shapes are dynamic (batch, length and packed-token count are symbols), so one compilation serves every batch; the
first call of each new *kind* of call (padded vs packed, train vs eval, grad vs no grad) still compiles once.
"""

from __future__ import annotations

import torch
from torch import nn

from minilm.model import BertModel, Layer


def compile_layer(layer: Layer) -> Layer:
    """Compile ``layer.forward`` in place (dynamic shapes); the module, its parameters and state_dict are unchanged."""
    layer.forward = torch.compile(layer.forward, dynamic=True)
    return layer


def compile_layers(bert: BertModel) -> BertModel:
    """Compile every encoder layer; identical layers share the compiled graph (parameters are graph inputs)."""
    for layer in bert.layers:
        compile_layer(layer)
    return bert


def is_compiled(module: nn.Module) -> bool:
    return "forward" in vars(module) and hasattr(module.forward, "_torchdynamo_orig_callable")
