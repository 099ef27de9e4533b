"""Lesson 4 exercise: from token vectors to one unit-length vector per sentence, and comparing them.

Replace each ``raise NotImplementedError`` with your code, then run ``python course/check.py 4``.
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def mean_pool(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    """Mean pooling: token vectors (B, T, H) and the 0/1 attention mask (B, T) -> one vector per sentence (B, H).

    A sentence's vector is the average of the vectors of its real tokens; padded positions do not count. A sentence
    without any real token gives a vector of zeros (not NaN): keep the divisor at least 1e-9, as
    sentence-transformers does.
    """
    raise NotImplementedError


def sentence_embedding(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    """What all-MiniLM-L6-v2 outputs: the mean-pooled vector (B, H) scaled to Euclidean length 1.

    Use the same floor as torch.nn.functional.normalize: divide by max(length, 1e-12).
    """
    raise NotImplementedError


def cosine_similarity_matrix(a: Tensor, b: Tensor) -> Tensor:
    """All cosines between the rows of a (B, D) and the rows of b (C, D) -> (B, C).

    Entry [i, j] is cos(a_i, b_j) = a_i . b_j / (|a_i| |b_j|). A zero vector has cosine 0 with everything (with the
    same 1e-12 floor on the lengths), not NaN.
    """
    raise NotImplementedError
