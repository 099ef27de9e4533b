"""Lesson 3 exercise: the encoder layer (attention block, feed-forward block) and the stack of layers.

Replace each ``raise NotImplementedError`` with your code, then run ``python course/check.py 3``.

Parameters come as dicts of tensors named as minilm's modules name them (``p["up.weight"]``...). A linear layer's
weight is (out, in) and its bias (out,): y = x @ weight.T + bias. For the attention inside a block you may paste
your lesson 2 functions here or call torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask)
on (B, nh, T, hd) tensors; lesson 2 is where attention is checked.
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def feed_forward(x: Tensor, p: dict[str, Tensor], eps: float) -> Tensor:
    """The feed-forward block: x (B, T, H) -> (B, T, H), each token on its own.

    p holds "up.weight" (I, H), "up.bias" (I,), "down.weight" (H, I), "down.bias" (H,), "norm.weight" (H,) and
    "norm.bias" (H,). Widen to I with the up projection, apply GELU (the exact, erf-based one), project back down to
    H, add the block's input x (the residual) and LayerNorm the sum, with eps.
    """
    raise NotImplementedError


def attention_block(x: Tensor, mask: Tensor, p: dict[str, Tensor], n_head: int, eps: float) -> Tensor:
    """The self-attention block: x (B, T, H) and an additive mask (B, 1, 1, T) -> (B, T, H).

    p holds "query", "key", "value" and "out" linear layers (each "<name>.weight" (H, H) and "<name>.bias" (H,))
    and "norm.weight", "norm.bias". Project x to queries, keys and values, run multi-head attention with n_head
    heads, project the result with "out", add x and LayerNorm the sum.
    """
    raise NotImplementedError


def encoder_layer(x: Tensor, mask: Tensor, p: dict[str, Tensor], n_head: int, eps: float) -> Tensor:
    """One encoder layer: x (B, T, H), additive mask (B, 1, 1, T) -> (B, T, H).

    p holds the attention block's parameters under "attention." ("attention.query.weight", ...) and the
    feed-forward block's under "ffn." ("ffn.up.weight", ...). Attention block first, then feed-forward.
    """
    raise NotImplementedError


def encoder(x: Tensor, attention_mask: Tensor, layers: list[dict[str, Tensor]], n_head: int, eps: float) -> Tensor:
    """The stack: the embedding layer's output x (B, T, H) and the 0/1 attention mask (B, T) -> the last hidden
    state (B, T, H). ``layers`` holds one parameter dict per layer, in order, named as for encoder_layer."""
    raise NotImplementedError
