"""Lesson 6's checker: in-batch logits against minilm's cosine_similarity_matrix, the loss against minilm's
multiple_negatives_ranking_loss."""

import _minilm
import torch
from _checking import POSITIONAL, Exercise, function_case

TITLE = "in-batch negatives"


def minilm_in_batch_logits(anchors, positives, *hard_negatives, scale=20.0):
    return scale * _minilm.cosine_similarity_matrix(anchors, torch.cat([positives, *hard_negatives]))


def minilm_mnrl(anchors, positives, *hard_negatives, scale=20.0):
    return _minilm.multiple_negatives_ranking_loss(anchors, positives, *hard_negatives, scale=scale)


def batch_inputs(B, D, k, scale, dtype):
    def make(g):
        # lengths far from 1, so that a dot product in place of the cosine shows
        anchors = 3 * torch.randn(B, D, generator=g, dtype=dtype)
        columns = {"anchors": anchors, "positives": anchors + 2 * torch.randn(B, D, generator=g, dtype=dtype)}
        for j in range(k):
            columns[f"hard_negatives[{j}]"] = anchors + 4 * torch.randn(B, D, generator=g, dtype=dtype)
        return {POSITIONAL: columns, "scale": scale}

    return make


def grads(k):
    return [
        (POSITIONAL, "anchors"),
        (POSITIONAL, "positives"),
        *((POSITIONAL, f"hard_negatives[{j}]") for j in range(k)),
    ]


LOGITS_HINT = (
    "Entry [i, j] is scale times the cosine of anchor i and candidate j (lengths divided out, not a plain "
    "dot product); the candidates are the positives, then the hard negatives column by column."
)
CROSS_ENTROPY_HINT = (
    "Row i of the logits scores anchor i against every candidate and its right answer is column i: "
    "the loss is the cross-entropy of each row with target i, averaged over the rows. The logits "
    "are cosines (lengths divided out), not dot products."
)
SCALE_HINT = (
    "The logits are scale x cosine. Cosines lie in [-1, 1], so a softmax over them alone is nearly flat; "
    "the scale (20 by default, a temperature of 0.05) sharpens it, and the loss and its gradients change "
    "with it."
)
HARD_HINT = (
    "Hard negatives are extra candidates seen by every anchor: all B positives first, then each column of "
    "hard negatives, so a row has B * (1 + k) logits; anchor i's right answer is still column i."
)


def logits_cases():
    return [
        function_case(
            "4 pairs, scale 20",
            LOGITS_HINT,
            batch_inputs(4, 8, 0, 20.0, torch.float32),
            minilm_in_batch_logits,
            grads(0),
        ),
        function_case(
            "2 columns of hard negatives, scale 50, float64",
            LOGITS_HINT,
            batch_inputs(3, 16, 2, 50.0, torch.float64),
            minilm_in_batch_logits,
            grads(2),
            seed=1,
            dtype=torch.float64,
        ),
    ]


def mnrl_cases():
    return [
        function_case(
            "4 pairs, scale 1", CROSS_ENTROPY_HINT, batch_inputs(4, 8, 0, 1.0, torch.float32), minilm_mnrl, grads(0)
        ),
        function_case(
            "6 pairs, scale 20", SCALE_HINT, batch_inputs(6, 8, 0, 20.0, torch.float32), minilm_mnrl, grads(0), seed=1
        ),
        function_case(
            "one column of hard negatives",
            HARD_HINT,
            batch_inputs(5, 16, 1, 20.0, torch.float32),
            minilm_mnrl,
            grads(1),
            seed=2,
        ),
        function_case(
            "two columns of hard negatives, scale 50, float64",
            HARD_HINT,
            batch_inputs(4, 32, 2, 50.0, torch.float64),
            minilm_mnrl,
            grads(2),
            seed=3,
            dtype=torch.float64,
        ),
    ]


EXERCISES = [Exercise("in_batch_logits", logits_cases), Exercise("mnrl", mnrl_cases)]
