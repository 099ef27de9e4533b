"""Evaluators: the metrics (as sentence-transformers computes them) and the evaluators a recipe or command names."""

# The names of the module this package replaced (``minilm.evaluation`` was one file), so old imports keep working.
from minilm.evaluation.evaluators import default_roles, make_evaluator
from minilm.evaluation.metrics import (
    METRICS,
    TASKS,
    evaluate_retrieval,
    evaluate_similarity,
    evaluate_triplets,
    retrieval_metrics,
    similarity_correlations,
    triplet_accuracy,
)

__all__ = [
    "METRICS",
    "TASKS",
    "default_roles",
    "evaluate_retrieval",
    "evaluate_similarity",
    "evaluate_triplets",
    "make_evaluator",
    "retrieval_metrics",
    "similarity_correlations",
    "triplet_accuracy",
]
