"""The interval arithmetic of a sweep: mean, standard deviation and a Student-t confidence interval over seeds, the
same for paired differences against a baseline, the paired t-test's p-value and Holm's correction across
configurations.

A sweep runs every configuration once per seed, and for one seed every configuration sees the same batches and
dropout draws. The difference ``metric(config, seed) - metric(baseline, seed)`` therefore cancels what the seed did
to both, and its interval over seeds is usually much narrower than the two unpaired intervals suggest.

With n values x_1..x_n: mean m, sample standard deviation s (n - 1 in the denominator), and the 95 % interval
m +- t(0.975, n - 1) * s / sqrt(n). The t quantile comes from the regularised incomplete beta function (the Student
t CDF is I_{df / (df + t^2)}(df / 2, 1 / 2) / 2 in the tail), inverted by bisection: numpy has no t quantile and
scipy is not a run-time dependency. An interval needs at least two values that are not all equal: with one value
there is no spread to estimate, and with zero spread the interval would have zero width and claim certainty that
two or three seeds cannot give. ``why_none`` says which.

The p-value of a configuration is the two-sided paired t-test of its per-seed differences d against the baseline
(H0: the mean difference is 0): t = mean(d) / (s_d / sqrt(n)), p = 2 P(T_{n-1} > |t|), which is scipy's
``ttest_rel`` (and ``ttest_1samp(d, 0)``). Comparing m configurations with one baseline is m tests; Holm's step-down
correction keeps the chance of any false claim among them at 0.05: sort the p-values p_(1) <= ... <= p_(m), adjust
p_(i) to max over j <= i of min(1, (m - j + 1) p_(j)), and claim those below 0.05.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# A spread this small relative to the values is rounding: 0.91 - 0.88 and 0.92 - 0.89 differ in the 17th digit.
ROUNDING = 1e-12


@dataclass(frozen=True)
class Interval:
    n: int
    mean: float
    std: float | None  # None for n < 2
    low: float | None  # the confidence interval; None for n < 2
    high: float | None

    @property
    def excludes_zero(self) -> bool:
        return self.low is not None and (self.low > 0 or self.high < 0)

    @property
    def why_none(self) -> str | None:
        """Why there is no interval (one value; no spread), or None when there is one."""
        if self.n < 2:
            return f"{self.n} run: no interval"
        if self.low is None:
            return f"no spread over {self.n} seeds (every value {self.mean:.4f}): no interval"
        return None


def t_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean, sample standard deviation and the two-sided Student-t interval of ``values``."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    xs = [float(v) for v in values]
    if not xs:
        raise ValueError("t_interval needs at least one value")
    if not all(math.isfinite(x) for x in xs):
        raise ValueError(f"t_interval needs finite values, got {xs}")
    n = len(xs)
    mean = sum(xs) / n
    if n < 2:
        return Interval(n, mean, None, None, None)
    std = math.sqrt(sum((x - mean) ** 2 for x in xs) / (n - 1))
    if std <= ROUNDING * max(1.0, max(abs(x) for x in xs)):  # equal values (their differences, to rounding)
        return Interval(n, mean, 0.0, None, None)
    half = t_quantile(0.5 + confidence / 2, n - 1) * std / math.sqrt(n)
    return Interval(n, mean, std, mean - half, mean + half)


def paired_t_test(differences: Sequence[float]) -> float | None:
    """The two-sided p-value of the paired t-test on per-seed ``differences`` (H0: mean 0); None when there is no
    test: fewer than two values, or no spread (``Interval.why_none``)."""
    spread = t_interval(differences)
    if spread.low is None:
        return None
    t = spread.mean / (spread.std / math.sqrt(spread.n))
    return min(1.0, 2 * t_tail(t, spread.n - 1))


def holm(p_values: dict) -> dict:
    """Holm-adjusted p-values, by the same keys: the i-th smallest of m is multiplied by m - i + 1, capped at 1, and
    made non-decreasing in that order (a p-value is never adjusted below a smaller one's adjustment)."""
    ordered = sorted(p_values, key=lambda key: p_values[key])
    m, running, adjusted = len(ordered), 0.0, {}
    for i, key in enumerate(ordered):
        running = max(running, min(1.0, (m - i) * p_values[key]))
        adjusted[key] = running
    return adjusted


def paired_difference(values: dict, baseline: dict, confidence: float = 0.95) -> Interval | None:
    """The interval of ``values[seed] - baseline[seed]`` over the seeds both have; None if they share none."""
    seeds = [s for s in values if s in baseline]
    if not seeds:
        return None
    return t_interval([values[s] - baseline[s] for s in seeds], confidence)


def t_quantile(p: float, df: int) -> float:
    """The p-quantile of Student's t with ``df`` degrees of freedom (bisection on ``t_cdf``, to ~1e-12)."""
    if not 0 < p < 1:
        raise ValueError(f"p must be in (0, 1), got {p}")
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    if p < 0.5:
        return -t_quantile(1 - p, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < p:  # the tail of df = 1 is heavy: grow the bracket
        low, high = high, high * 2
    for _ in range(200):
        mid = (low + high) / 2
        if t_cdf(mid, df) < p:
            low = mid
        else:
            high = mid
        if high - low <= 1e-13 * max(1.0, high):
            break
    return (low + high) / 2


def t_cdf(t: float, df: int) -> float:
    """P(T <= t) for Student's t with ``df`` degrees of freedom."""
    tail = t_tail(abs(t), df)  # P(T > |t|)
    return 1 - tail if t > 0 else tail


def t_tail(t: float, df: int) -> float:
    """P(T > |t|), computed directly (1 - t_cdf would lose the digits of a tiny tail)."""
    return 0.5 * regularized_incomplete_beta(df / 2, 0.5, df / (df + t * t))


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b) by its continued fraction (modified Lentz), using the symmetry I_x(a, b) = 1 - I_{1-x}(b, a)
    where the fraction converges slowly (Numerical Recipes, section 6.4)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x > (a + 1) / (a + b + 2):
        return 1 - regularized_incomplete_beta(b, a, 1 - x)
    tiny = 1e-300
    c, d = 1.0, 1 - (a + b) * x / (a + 1)
    d = 1 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1 + numerator * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + numerator / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1) < 1e-15:
            break
    return math.exp(log_front) * f / a
