"""Lesson 6 exercise: in-batch negatives, MultipleNegativesRankingLoss (MNRL).

Replace each ``raise NotImplementedError`` with your code, then run ``python course/check.py 6``.

A batch is B (anchor, positive) rows, optionally with k columns of hard negatives (one per row each). The
candidates for every anchor are all B positives, then every row's first hard negative, then every row's second...:
B * (1 + k) candidates, and anchor i's right answer is candidate i, its own positive.
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def in_batch_logits(anchors: Tensor, positives: Tensor, *hard_negatives: Tensor, scale: float = 20.0) -> Tensor:
    """scale * cos(anchor_i, candidate_j) for every anchor and candidate: (B, D) inputs -> (B, B * (1 + k))."""
    raise NotImplementedError


def mnrl(anchors: Tensor, positives: Tensor, *hard_negatives: Tensor, scale: float = 20.0) -> Tensor:
    """MultipleNegativesRankingLoss: the cross-entropy of each anchor's row of in-batch logits against its own
    positive (column i), averaged over the B anchors -> a 0-d tensor."""
    raise NotImplementedError
