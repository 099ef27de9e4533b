"""The encoder layer through torch.compile: bias + GELU, residual + LayerNorm and the softmax fuse into few loops.

What is compiled is the per-tensor work of a layer: ``SelfAttention.attend`` (the attention math on one padded grid),
``SelfAttention.output`` (output projection, residual and LayerNorm) and ``FeedForward.forward``. The padded forward
and the unpadded one (minilm.fast.unpadded) both call these pieces; the unpadded path's loop over attention groups
stays eager, since a batch has a varying number of length groups and a compiled loop would recompile for every new
count. Shapes are dynamic (batch, length and unpadded-token count are symbols), so batches reuse the compiled graphs;
the first call of each new *kind* of call (train vs eval, grad vs no grad, a one-sequence group, which dynamo
specialises) still compiles once.

The compiled functions are the unbound methods, bound to each module as instance attributes: ``copy.deepcopy`` of
a compiled model rebinds them to the copy (a compiled bound method would keep running the original's weights).
"""

from __future__ import annotations

from types import MethodType

import torch

from minilm.model import BertModel, FeedForward, Layer, SelfAttention

_COMPILED = "_minilm_compiled"
_attend = torch.compile(SelfAttention.attend, dynamic=True)
_output = torch.compile(SelfAttention.output, dynamic=True)
_feed_forward = torch.compile(FeedForward.forward, dynamic=True)


def compile_layer(layer: Layer) -> Layer:
    """Compile a layer's pieces in place (dynamic shapes); the module, its parameters and state_dict are unchanged."""
    attention = layer.attention
    attention.attend = MethodType(_attend, attention)
    attention.output = MethodType(_output, attention)
    layer.ffn.forward = MethodType(_feed_forward, layer.ffn)
    setattr(layer, _COMPILED, True)
    return layer


def compile_layers(bert: BertModel) -> BertModel:
    """Compile every encoder layer; identical layers share the compiled graphs (parameters are graph inputs)."""
    for layer in bert.layers:
        compile_layer(layer)
    return bert


def is_compiled(layer: Layer) -> bool:
    return getattr(layer, _COMPILED, False)
