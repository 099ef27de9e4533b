"""An honest sweep report (issue 19): intervals only from at least two runs that differ, p-values of the paired
t-test (checked against scipy) with Holm's correction (checked by hand), gradient-norm columns, and well-formed
markdown in every case."""

from __future__ import annotations

import re
from types import SimpleNamespace

import pytest

from minilm.sweep.report import markdown
from minilm.sweep.spec import Config, Sweep
from minilm.sweep.stats import holm, paired_difference, paired_t_test, t_interval


def test_the_paired_t_test_is_scipys_ttest_rel():
    from scipy import stats

    cases = [
        ([0.88, 0.90, 0.86], [0.91, 0.92, 0.90]),
        ([0.5, 0.6], [0.7, 0.65]),
        ([0.1, 0.2, 0.3, 0.4, 0.5], [0.11, 0.25, 0.28, 0.47, 0.52]),
        ([0.8] * 4, [0.8, 0.81, 0.79, 0.8]),
        ([1.0, 2.0, 3.0], [1.0 + 1e-3, 2.0 + 1.1e-3, 3.0 + 0.9e-3]),  # a tiny p-value: the tail computed directly
    ]
    for baseline, config in cases:
        want = stats.ttest_rel(config, baseline).pvalue
        got = paired_t_test([c - b for c, b in zip(config, baseline)])
        assert got == pytest.approx(want, rel=1e-9), (baseline, config)


def test_no_test_and_no_interval_without_spread_or_with_one_run():
    same = [0.91 - 0.88, 0.92 - 0.89]  # equal differences, to rounding
    assert paired_t_test(same) is None and paired_t_test([0.03]) is None
    spread = paired_difference({1: 0.91, 2: 0.92}, {1: 0.88, 2: 0.89})
    assert spread.low is None and not spread.excludes_zero
    assert spread.why_none == "no spread over 2 seeds (every value 0.0300): no interval"
    assert t_interval([0.7]).why_none == "1 run: no interval"


def test_holm_by_hand():
    """p = 0.01, 0.04, 0.03, 0.2 over m = 4 comparisons. Sorted: 0.01, 0.03, 0.04, 0.2, multiplied by 4, 3, 2, 1:
    0.04, 0.09, 0.08, 0.2; made non-decreasing in that order: 0.04, 0.09, 0.09, 0.2. At 0.05 only 'a' stands, though
    three raw p-values are below 0.05."""
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.2})
    assert adjusted == pytest.approx({"a": 0.04, "b": 0.09, "c": 0.09, "d": 0.2})
    assert holm({"x": 0.6, "y": 0.7}) == pytest.approx({"x": 1.0, "y": 1.0})  # capped at 1
    assert holm({}) == {}


def sweep_of(labels, seeds):
    recipe = SimpleNamespace(train={"max_steps": 10, "batch_size": 16, "epochs": 1})
    return Sweep(
        SimpleNamespace(name="s.toml"),
        "s",
        "",
        SimpleNamespace(name="r.toml"),
        seeds,
        "acc",
        "none",
        [Config(label, {}, {}) for label in labels],
        runs=[SimpleNamespace(recipe=recipe)] * 9,
    )


def rows_of(values: dict, **extra):
    return [
        {
            "config_index": c,
            "seed": s + 1,
            "status": "done",
            "acc": v,
            "acc_before": 0.8,
            "seconds": 1.0,
            "final_loss": 0.5,
            **extra,
        }
        for c, vs in values.items()
        for s, v in enumerate(vs)
    ]


def tables_are_well_formed(text: str) -> list[list[str]]:
    """Every table: the separator and every row have the header's cell count (an escaped \\| is not a border)."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            current.append(re.split(r"(?<!\\)\|", line.strip())[1:-1])
        elif current:
            tables.append(current)
            current = []
    for table in tables:
        assert all(len(row) == len(table[0]) for row in table), table
        assert all(cell.strip() == "---" for cell in table[1])
    return tables


def test_two_seeds_with_identical_differences_get_no_interval_and_no_star():
    table = markdown(sweep_of(["base", "same gain"], [1, 2]), rows_of({0: [0.88, 0.89], 1: [0.91, 0.92]}))
    assert "| same gain | 2 | 0.8000 | 0.9150 | 0.0071 | [" in table  # its own values differ: an interval
    assert "| +0.0300 | no spread over 2 seeds (every value 0.0300): no interval | — | — |" in table
    assert table.count("✱") == 1  # the legend only
    tables_are_well_formed(table)


def test_holm_decides_the_star_and_the_columns_say_which_test():
    """Two configurations each 0.01-0.03 above the baseline on 4 seeds: p = 0.0354 each (below 0.05 alone); Holm
    over the two: 2 x 0.0354 = 0.0707 for the first, max(0.0707, 0.0354) for the second: no star. A third, far
    better one (p 0.0012) keeps its star: 3 x 0.0012."""
    base, gain = [0.80, 0.82, 0.84, 0.86], [0.81, 0.83, 0.86, 0.89]
    values = {0: base, 1: gain, 2: gain}
    table = markdown(sweep_of(["base", "one", "two"], [1, 2, 3, 4]), rows_of(values))
    assert table.count("| 0.035 | 0.071 |") == 2 and table.count("✱") == 1  # the legend only
    values[3] = [0.83, 0.86, 0.87, 0.90]
    table = markdown(sweep_of(["base", "one", "two", "big"], [1, 2, 3, 4]), rows_of(values))
    assert "| big | 4 |" in table and "| 0.0012 | 0.0036 ✱ |" in table and table.count("| 0.035 | 0.071 |") == 2
    assert "two-sided paired t-test" in table and "Holm's step-down method" in table
    tables_are_well_formed(table)


def test_markdown_is_well_formed_without_statistics_with_one_run_and_with_pipes_in_labels():
    for rows in ([], rows_of({0: [0.9]}), rows_of({0: [0.9, 0.8], 1: [0.7]}, **{"stat.x": 0.1})):
        tables = tables_are_well_formed(markdown(sweep_of(["a | b", "c\nd"], [1, 2]), rows))
        assert len(tables) == 2
        assert [row[0].strip() for row in tables[0][2:]] == ["a \\| b", "c d"]


def test_gradient_norm_columns_pool_every_step_of_every_seed():
    rows = rows_of({0: [0.9, 0.8]})
    rows[0].update(_grad_norms=[0.5, 2.0, 3.0], clipped_steps=2)  # max_grad_norm 1: two steps clipped
    rows[1].update(_grad_norms=[0.1, 0.2, 40.0], clipped_steps=1, max_grad_norm=1.0)
    table = markdown(sweep_of(["base"], [1, 2]), rows)
    # pooled: 0.1 0.2 0.5 2 3 40 -> median (0.5 + 2) / 2 = 1.25, max 40, 3 of 6 steps clipped
    assert "| base | 0.5000 | 1.2500 | 40.0000 | 50% (3 of 6) |" in table
    assert "max_grad_norm, 1.0:" in table
