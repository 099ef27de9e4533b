"""Lesson 3, solved: minilm/model.py's FeedForward, SelfAttention, Layer and BertModel.forward written out, with
minilm's additive_mask and the attention of lesson 2's solution."""

import math

import _minilm
import torch.nn.functional as F


def linear(x, p, name):
    return x @ p[f"{name}.weight"].T + p[f"{name}.bias"]


def layer_norm(x, p, name, eps):
    return F.layer_norm(x, x.shape[-1:], p[f"{name}.weight"], p[f"{name}.bias"], eps)


def feed_forward(x, p, eps):
    return layer_norm(x + linear(F.gelu(linear(x, p, "up")), p, "down"), p, "norm", eps)


def attention_block(x, mask, p, n_head, eps):
    B, T, H = x.shape
    q, k, v = (linear(x, p, name).view(B, T, n_head, H // n_head).transpose(1, 2) for name in ("query", "key", "value"))
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]) + mask
    y = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, T, H)
    return layer_norm(x + linear(y, p, "out"), p, "norm", eps)


def sub(p, prefix):
    return {name.removeprefix(prefix): t for name, t in p.items() if name.startswith(prefix)}


def encoder_layer(x, mask, p, n_head, eps):
    return feed_forward(attention_block(x, mask, sub(p, "attention."), n_head, eps), sub(p, "ffn."), eps)


def encoder(x, attention_mask, layers, n_head, eps):
    mask = _minilm.additive_mask(attention_mask, x.dtype)
    for p in layers:
        x = encoder_layer(x, mask, p, n_head, eps)
    return x
