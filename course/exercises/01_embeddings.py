"""Lesson 1 exercise: from WordPiece ids to token vectors.

Replace each ``raise NotImplementedError`` with your code, then run ``python course/check.py 1``.
Use plain torch operations; the point is to write each step yourself.
"""

import torch
from torch import Tensor


def pad_batch(token_ids: list[list[int]]) -> tuple[Tensor, Tensor]:
    """Put token id lists of different lengths into one rectangular batch.

    token_ids: B lists of WordPiece ids, each already starting with [CLS] (101) and ending with [SEP] (102).
    Returns (input_ids, attention_mask), both (B, T) int64, where T is the length of the longest list:
    input_ids holds each list followed by [PAD] ids (0) up to T; attention_mask is 1 where input_ids holds a real
    token ([CLS] and [SEP] included) and 0 on padding.
    """
    raise NotImplementedError


def layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> Tensor:
    """LayerNorm over the last dimension, written out: x (..., H), weight and bias (H,) -> (..., H).

    Each vector x[..., :] is shifted to mean 0 and divided by sqrt(variance + eps), then multiplied elementwise by
    ``weight`` and shifted by ``bias``. It must be differentiable with respect to x, weight and bias. Do not call
    torch.nn.functional.layer_norm: that is what the checker compares you with.
    """
    raise NotImplementedError


def embed(
    input_ids: Tensor,
    token_type_ids: Tensor,
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    norm_weight: Tensor,
    norm_bias: Tensor,
    eps: float,
) -> Tensor:
    """BERT's embedding layer: ids (B, T) -> token vectors (B, T, H).

    input_ids: (B, T) WordPiece ids; token_type_ids: (B, T) segment ids (0 for sentence A, 1 for sentence B).
    word: (V, H) the vocabulary's vectors; position: (P, H) one vector per position, P >= T; token_type: (2, H).
    norm_weight, norm_bias, eps: the LayerNorm applied to the sum (you may call your layer_norm).
    Dropout follows in the model, but it is off in evaluation, so leave it out.
    """
    raise NotImplementedError
