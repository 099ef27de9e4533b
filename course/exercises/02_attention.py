"""Lesson 2 exercise: scaled dot-product self-attention with a padding mask and several heads.

Replace each ``raise NotImplementedError`` with your code, then run ``python course/check.py 2``.
Shapes: B sentences, T tokens, H hidden width, nh heads of hd = H / nh dimensions each.
"""

import torch
from torch import Tensor


def additive_mask(attention_mask: Tensor, dtype: torch.dtype) -> Tensor:
    """Turn a 0/1 attention mask (B, T) into the additive mask that attention adds to its scores: (B, 1, 1, T).

    0 where the mask is 1 (a real token) and the most negative finite number of ``dtype`` where it is 0 (padding).
    The two middle dimensions of size 1 let it broadcast over the heads and over the query positions.
    """
    raise NotImplementedError


def attention_probs(q: Tensor, k: Tensor, mask: Tensor) -> Tensor:
    """Attention probabilities of every head: q, k (B, nh, T, hd) and an additive mask (B, 1, 1, T) -> (B, nh, T, T).

    Entry [b, h, i, j] is how much query token i attends to key token j in head h: the scaled dot product of
    query i with key j, plus the mask, through a softmax over j. Each row sums to 1; padded keys get 0.
    """
    raise NotImplementedError


def multi_head_attention(q: Tensor, k: Tensor, v: Tensor, mask: Tensor, n_head: int) -> Tensor:
    """Multi-head attention: q, k, v (B, T, H) (already projected), additive mask (B, 1, 1, T) -> (B, T, H).

    Split H into ``n_head`` heads of hd = H / n_head dimensions (head h holds dimensions h*hd to (h+1)*hd - 1),
    attend within each head (your attention_probs, then the probability-weighted average of the values), and put
    the heads' outputs back side by side in the same order.
    """
    raise NotImplementedError
