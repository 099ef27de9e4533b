"""Lesson 9 exercise: the interval arithmetic of a loss experiment over seeds.

Replace each ``raise NotImplementedError`` with your code, then run ``python course/check.py 9``.
Both functions return (n, mean, std, low, high): the number of values, their mean, their sample standard deviation
and the two-sided confidence interval [low, high] of the mean; std, low and high are None when n < 2.
"""

import math

from _minilm import t_quantile  # given: t_quantile(p, df), the p-quantile of Student's t with df degrees of freedom


def t_interval(values: list[float], confidence: float = 0.95) -> tuple:
    """(n, mean, std, low, high) of ``values``: the Student-t confidence interval of their mean."""
    raise NotImplementedError


def paired_difference(values: dict, baseline: dict, confidence: float = 0.95) -> tuple | None:
    """The interval of the differences values[seed] - baseline[seed], as t_interval gives it.

    values and baseline map a seed to a metric (one configuration's runs, and the baseline's). Pair by seed, over
    the seeds both have; None when they share none.
    """
    raise NotImplementedError
