"""Lesson 5 exercise: distances between embeddings, and the triplet loss.

Replace each ``raise NotImplementedError`` with your code, then run ``python course/check.py 5``.
All functions work row by row: row i of one input goes with row i of the others.
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def euclidean_distance(a: Tensor, b: Tensor) -> Tensor:
    """||a_i - b_i||, row by row: a, b (B, D) -> (B,).

    Its gradient must be finite everywhere, also where a_i == b_i (minilm's is 0 there).
    """
    raise NotImplementedError


def cosine_distance(a: Tensor, b: Tensor) -> Tensor:
    """1 - cos(a_i, b_i), row by row: a, b (B, D) -> (B,). 0 for the same direction, 2 for opposite directions."""
    raise NotImplementedError


def triplet_loss(
    anchor: Tensor, positive: Tensor, negative: Tensor, distance: str = "euclidean", margin: float = 5.0
) -> Tensor:
    """The triplet loss of a batch of (anchor, positive, negative) rows, each (B, D) -> a 0-d tensor.

    distance is "euclidean", "cosine" (1 - cos) or "manhattan" (sum of |a - b|). A triplet costs nothing once its
    positive is closer to the anchor than its negative by at least ``margin``, and otherwise costs how far it is
    from that. The loss is the mean over the batch.
    """
    raise NotImplementedError
