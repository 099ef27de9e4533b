"""The encoder layer through torch.compile: bias + GELU, residual + LayerNorm and the softmax fuse into few loops.

What is compiled is the per-tensor work of a layer (the attention math on one padded grid, the output projection
with its residual and LayerNorm, the feed-forward), not the layer's loop over attention groups: a batch has a
varying number of length groups (model.Packed), and a compiled loop would recompile for every new count.
Shapes are dynamic (batch, length and packed-token count are symbols), so one compilation serves every batch; the
first call of each new *kind* of call (train vs eval, grad vs no grad) still compiles once.
"""

from __future__ import annotations

import torch

from minilm.model import BertModel, Layer

_COMPILED = "_minilm_compiled"


def compile_layer(layer: Layer) -> Layer:
    """Compile a layer's pieces in place (dynamic shapes); the module, its parameters and state_dict are unchanged."""
    attention = layer.attention
    attention._attend = torch.compile(attention._attend, dynamic=True)
    attention._output = torch.compile(attention._output, dynamic=True)
    layer.ffn.forward = torch.compile(layer.ffn.forward, dynamic=True)
    setattr(layer, _COMPILED, True)
    return layer


def compile_layers(bert: BertModel) -> BertModel:
    """Compile every encoder layer; identical layers share the compiled graphs (parameters are graph inputs)."""
    for layer in bert.layers:
        compile_layer(layer)
    return bert


def is_compiled(layer: Layer) -> bool:
    return getattr(layer, _COMPILED, False)
