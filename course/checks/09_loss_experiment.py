"""Lesson 9's checker: t_interval and paired_difference against minilm.sweep.stats (through _minilm)."""

import _minilm
import torch
from _checking import Case, Exercise

TITLE = "a loss experiment over seeds"


FIELDS = ("n", "mean", "std", "low", "high")


def as_tuple(interval):
    return None if interval is None else (interval.n, interval.mean, interval.std, interval.low, interval.high)


def named(result):
    """(n, mean, std, low, high) by name, so that the report says which of them differs."""
    if isinstance(result, tuple) and len(result) == len(FIELDS):
        return dict(zip(FIELDS, result))
    return {"result": result}


def interval_case(name, hint, values, confidence=0.95) -> Case:
    def yours(fn):
        return named(fn(list(values), confidence))

    def minilm():
        return named(as_tuple(_minilm.t_interval(list(values), confidence)))

    shown = f"values={[round(v, 4) for v in values]}, confidence={confidence}"
    return Case(name, shown, hint, yours, minilm, torch.float64)


def paired_case(name, hint, values, baseline, confidence=0.95) -> Case:
    def yours(fn):
        return named(fn(dict(values), dict(baseline), confidence))

    def minilm():
        return named(as_tuple(_minilm.paired_difference(dict(values), dict(baseline), confidence)))

    shown = f"values={values}, baseline={baseline}"
    return Case(name, shown, hint, yours, minilm, torch.float64)


T_HINT = (
    "mean = sum / n; std = the sample standard deviation (squared deviations summed, divided by n - 1); the "
    "interval is mean -/+ t x std / sqrt(n), with t = t_quantile(0.5 + confidence / 2, n - 1)."
)
ONE_HINT = "One value has no spread to estimate: return (1, that value, None, None, None)."
TWO_HINT = (
    "Two values leave one degree of freedom: t_quantile(0.975, 1) is 12.7, not the normal 1.96. Use the t "
    "quantile with n - 1 degrees of freedom whatever n is."
)
CONFIDENCE_HINT = "A 90 % interval leaves 5 % in each tail: the quantile is at 0.5 + confidence / 2."
PAIR_HINT = "The differences values[seed] - baseline[seed] (this configuration minus the baseline), then t_interval."
BY_SEED_HINT = (
    "Pair by seed, not by position: the dicts list their seeds in different orders here, and a difference "
    "only means something between two runs that shared a seed (the same batches, the same start)."
)
COMMON_HINT = "Use only the seeds both dicts have; a seed that ran in one configuration only has no partner."
NONE_HINT = "No seed in common: nothing to pair, return None."


def interval_cases():
    g = torch.Generator().manual_seed(9)
    ten = [0.9 + 0.05 * float(x) for x in torch.rand(10, generator=g, dtype=torch.float64)]
    return [
        interval_case("three seeds", T_HINT, [0.95, 0.94, 0.96]),
        interval_case("ten seeds", T_HINT, ten),
        interval_case("two seeds", TWO_HINT, [0.91, 0.95]),
        interval_case("one seed", ONE_HINT, [0.93]),
        interval_case("a 90 % interval", CONFIDENCE_HINT, [0.95, 0.94, 0.96, 0.92], confidence=0.9),
    ]


def paired_cases():
    return [
        paired_case(
            "the same seeds in the same order", PAIR_HINT, {1: 0.93, 2: 0.95, 3: 0.92}, {1: 0.95, 2: 0.96, 3: 0.95}
        ),
        paired_case(
            "the same seeds in another order",
            BY_SEED_HINT,
            {3: 0.92, 1: 0.93, 2: 0.95, 4: 0.94},
            {1: 0.95, 2: 0.96, 3: 0.95, 4: 0.97},
        ),
        paired_case(
            "a seed only one side has",
            COMMON_HINT,
            {1: 0.93, 2: 0.95, 3: 0.92, 5: 0.99},
            {1: 0.95, 2: 0.96, 3: 0.95, 4: 0.90},
        ),
        paired_case("no seed in common", NONE_HINT, {1: 0.93, 2: 0.95}, {3: 0.95, 4: 0.96}),
    ]


EXERCISES = [Exercise("t_interval", interval_cases), Exercise("paired_difference", paired_cases)]
