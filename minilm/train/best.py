"""The best evaluation so far and the evaluations since it improved: what load_best_at_end and early stopping use.

The metric is a key of the evaluation result: a metric name, or ``name/metric`` when the recipe has named evaluations
(``[eval.<name>]``). Only evaluations during and after training count (the one before training scores the base
model, which no checkpoint holds). A value is better only if strictly better in the configured direction; NaN never
is. The tracker's state is part of a checkpoint, so a resumed run keeps its best-so-far and its patience count.
"""

from __future__ import annotations

import math


class BestTracker:
    def __init__(self, metric: str, greater_is_better: bool = True, patience: int = 0):
        self.metric, self.greater_is_better, self.patience = metric, greater_is_better, patience
        self.best_value: float | None = None
        self.best_step: int | None = None
        self.evaluations_without_improvement = 0

    def update(self, step: int, result: dict) -> bool:
        """Record the evaluation made at ``step``; True if it is the best so far."""
        if self.metric not in result:
            named = "/" in next(iter(result), "") and "/" not in self.metric
            raise ValueError(
                f"metric_for_best {self.metric!r} is not in the evaluation result (it has {sorted(result)})"
                + (": with named evaluations a metric is <name>/<metric>" if named else "")
            )
        value = float(result[self.metric])
        improved = not math.isnan(value) and (
            self.best_value is None or (value > self.best_value if self.greater_is_better else value < self.best_value)
        )
        if improved:
            self.best_value, self.best_step = value, step
            self.evaluations_without_improvement = 0
        else:
            self.evaluations_without_improvement += 1
        return improved

    @property
    def should_stop(self) -> bool:
        """Early stopping: ``patience`` evaluations in a row without improvement."""
        return self.patience > 0 and self.evaluations_without_improvement >= self.patience

    def why_stopped(self) -> str:
        """Early stopping's reason, for the run's log."""
        best = "none" if self.best_step is None else f"{self.best_value:.4f} at step {self.best_step}"
        return f"{self.metric} has not improved for {self.patience} evaluations (best {best})"

    def state_dict(self) -> dict:
        return {
            "metric": self.metric,
            "greater_is_better": self.greater_is_better,
            "best_value": self.best_value,
            "best_step": self.best_step,
            "evaluations_without_improvement": self.evaluations_without_improvement,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue from ``state``; a state kept for another metric or direction is not this run's best: ignored."""
        if (state["metric"], state["greater_is_better"]) != (self.metric, self.greater_is_better):
            return
        self.best_value, self.best_step = state["best_value"], state["best_step"]
        self.evaluations_without_improvement = state["evaluations_without_improvement"]
