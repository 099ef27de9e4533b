"""Lesson 5's checker: distances against minilm.losses.distances, the triplet loss against minilm's triplet_loss."""

import _minilm
import torch
from _checking import Exercise, function_case

TITLE = "distances and the triplet loss"


def minilm_euclidean_distance(a, b):
    return _minilm.euclidean_distance(a, b)


def minilm_cosine_distance(a, b):
    return _minilm.cosine_distance(a, b)


def minilm_triplet_loss(anchor, positive, negative, distance="euclidean", margin=5.0):
    return _minilm.triplet_loss(anchor, positive, negative, distance=distance, margin=margin)


def pair_inputs(B, D, dtype, same_row=None, scale=1.0):
    def make(g):
        a = torch.randn(B, D, generator=g, dtype=dtype) * scale
        b = torch.randn(B, D, generator=g, dtype=dtype) * scale
        if same_row is not None:
            b[same_row] = a[same_row]
        return {"a": a, "b": b}

    return make


EUCLIDEAN_HINT = "The length of the difference a_i - b_i: the square root of the sum of its squares, one per row."
SAME_ROW_HINT = (
    "Row 1 has a == b. The derivative of the square root is infinite at 0, so sqrt(sum of squares) "
    "gives a NaN gradient there; torch.linalg.vector_norm defines that gradient as 0, as minilm does."
)
COSINE_HINT = "1 minus the cosine of a_i and b_i, row by row (each row's dot product over the two lengths)."


def euclidean_cases():
    grads = ("a", "b")
    return [
        function_case(
            "4 pairs of 8 dimensions",
            EUCLIDEAN_HINT,
            pair_inputs(4, 8, torch.float32),
            minilm_euclidean_distance,
            grads,
        ),
        function_case(
            "384 dimensions, float64",
            EUCLIDEAN_HINT,
            pair_inputs(3, 384, torch.float64),
            minilm_euclidean_distance,
            grads,
            seed=1,
            dtype=torch.float64,
        ),
        function_case(
            "a pair of identical rows",
            SAME_ROW_HINT,
            pair_inputs(3, 8, torch.float32, same_row=1),
            minilm_euclidean_distance,
            grads,
            seed=2,
        ),
    ]


def cosine_cases():
    grads = ("a", "b")
    return [
        function_case(
            "4 pairs of 8 dimensions",
            COSINE_HINT,
            pair_inputs(4, 8, torch.float32, scale=3.0),
            minilm_cosine_distance,
            grads,
        ),
        function_case(
            "384 dimensions, float64",
            COSINE_HINT,
            pair_inputs(3, 384, torch.float64),
            minilm_cosine_distance,
            grads,
            seed=1,
            dtype=torch.float64,
        ),
    ]


def triplet_inputs(B, D, dtype, distance, margin, satisfied=False):
    def make(g):
        anchor = torch.randn(B, D, generator=g, dtype=dtype)
        positive = anchor + 0.8 * torch.randn(B, D, generator=g, dtype=dtype)
        negative = torch.randn(B, D, generator=g, dtype=dtype)
        if satisfied:  # positives almost on the anchors, negatives on the far side
            positive = anchor + 0.01 * torch.randn(B, D, generator=g, dtype=dtype)
            negative = -anchor
        return {"anchor": anchor, "positive": positive, "negative": negative, "distance": distance, "margin": margin}

    return make


TRIPLET_HINT = (
    "Per triplet: d(a, p) - d(a, n) + margin, clipped at 0 from below; then the mean. The sign matters: "
    "the loss must fall as the positive comes closer and as the negative goes away. (sentence-transformers "
    "5.0-5.1 flipped it for euclidean and manhattan, so their runs trained the opposite objective.)"
)
DISTANCE_HINT = (
    "distance='cosine' means 1 - cos, and 'manhattan' the sum of |a - b|; each row's distance first, "
    "then the hinge and the mean."
)
SATISFIED_HINT = (
    "Every triplet here already has its negative farther than its positive by more than the margin, "
    "so each costs 0 and passes no gradient: clip at 0 (relu), don't take an absolute value or a square."
)


def triplet_cases():
    grads = ("anchor", "positive", "negative")
    return [
        function_case(
            "euclidean, margin 5 (the default)",
            TRIPLET_HINT,
            triplet_inputs(6, 8, torch.float32, "euclidean", 5.0),
            minilm_triplet_loss,
            grads,
        ),
        function_case(
            "euclidean, margin 1: some triplets cost nothing",
            TRIPLET_HINT,
            triplet_inputs(8, 4, torch.float32, "euclidean", 1.0),
            minilm_triplet_loss,
            grads,
            seed=1,
        ),
        function_case(
            "cosine, margin 0.3",
            DISTANCE_HINT,
            triplet_inputs(6, 16, torch.float32, "cosine", 0.3),
            minilm_triplet_loss,
            grads,
            seed=2,
        ),
        function_case(
            "manhattan, margin 2, float64",
            DISTANCE_HINT,
            triplet_inputs(5, 8, torch.float64, "manhattan", 2.0),
            minilm_triplet_loss,
            grads,
            seed=3,
            dtype=torch.float64,
        ),
        function_case(
            "every triplet already satisfied",
            SATISFIED_HINT,
            triplet_inputs(4, 8, torch.float64, "euclidean", 1.0, satisfied=True),
            minilm_triplet_loss,
            grads,
            seed=4,
            dtype=torch.float64,
        ),
    ]


EXERCISES = [
    Exercise("euclidean_distance", euclidean_cases),
    Exercise("cosine_distance", cosine_cases),
    Exercise("triplet_loss", triplet_cases),
]
