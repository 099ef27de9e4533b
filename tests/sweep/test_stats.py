"""The sweep's interval arithmetic against hand computations and scipy (test-only), and the table that shows it."""

from __future__ import annotations

import math

import pytest

from minilm.sweep.stats import paired_difference, t_interval, t_quantile

# Student-t 0.975 quantiles as printed in statistics tables (3 decimals): df -> t
TABLE = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 9: 2.262, 19: 2.093, 29: 2.045}


def test_t_interval_by_hand():
    """0.80, 0.84, 0.82: mean 0.82; deviations -0.02, 0.02, 0; s = sqrt(0.0008 / 2) = 0.02;
    half-width t(0.975, 2) * s / sqrt(3) = 4.302653 * 0.02 / 1.732051 = 0.049683."""
    got = t_interval([0.80, 0.84, 0.82])
    assert got.n == 3 and got.mean == pytest.approx(0.82, abs=1e-15) and got.std == pytest.approx(0.02, rel=1e-12)
    assert got.high - got.mean == pytest.approx(0.0496827542, rel=1e-9)
    assert got.low == pytest.approx(0.82 - 0.0496827542, rel=1e-9)


def test_paired_difference_by_hand():
    """Baseline 0.88, 0.90, 0.86 and a config 0.91, 0.92, 0.90 on the same seeds: differences 0.03, 0.02, 0.04,
    mean 0.03, s = 0.01, half-width 4.302653 * 0.01 / sqrt(3) = 0.024841: [0.005159, 0.054841] excludes 0 — while
    the unpaired intervals overlap (the seed moved both configs together)."""
    baseline = {1: 0.88, 2: 0.90, 3: 0.86}
    config = {1: 0.91, 2: 0.92, 3: 0.90, 4: 0.5}  # seed 4 has no baseline run: left out
    diff = paired_difference(config, baseline)
    assert diff.n == 3 and diff.mean == pytest.approx(0.03, abs=1e-12) and diff.std == pytest.approx(0.01, rel=1e-9)
    assert (diff.low, diff.high) == (pytest.approx(0.0051586229, rel=1e-8), pytest.approx(0.0548413771, rel=1e-8))
    assert diff.excludes_zero
    unpaired = t_interval(list(baseline.values())), t_interval([0.91, 0.92, 0.90])
    assert unpaired[0].high > unpaired[1].low  # unpaired, the two intervals overlap
    assert paired_difference({5: 1.0}, baseline) is None


def test_t_quantile_against_the_printed_table_and_scipy():
    from scipy import stats

    for df, t in TABLE.items():
        assert round(t_quantile(0.975, df), 3) == t
    for df in [*range(1, 40), 100, 1000]:
        for p in (0.6, 0.9, 0.95, 0.975, 0.995, 0.9995):
            assert t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-9)
    assert t_quantile(0.025, 4) == pytest.approx(-t_quantile(0.975, 4))


def test_one_value_has_no_interval_and_bad_input_is_refused():
    one = t_interval([0.7])
    assert (one.n, one.mean, one.std, one.low, one.high) == (1, 0.7, None, None, None) and not one.excludes_zero
    for bad, message in [([], "at least one value"), ([1.0, math.nan], "finite values")]:
        with pytest.raises(ValueError, match=message):
            t_interval(bad)
    with pytest.raises(ValueError, match="confidence must be in"):
        t_interval([1.0, 2.0], confidence=1.5)
    with pytest.raises(ValueError, match="df must be >= 1"):
        t_quantile(0.9, 0)


def test_the_markdown_table_marks_intervals_that_exclude_zero(tmp_path):
    from types import SimpleNamespace

    from minilm.sweep.report import markdown
    from minilm.sweep.spec import Config, Sweep

    recipe = SimpleNamespace(train={"max_steps": 10, "batch_size": 16, "epochs": 1})
    sweep = Sweep(
        tmp_path / "s.toml",
        "s",
        "",
        tmp_path / "r.toml",
        [1, 2, 3],
        "acc",
        "none",
        [Config("base", {}, {}), Config("better", {}, {}), Config("noisy", {}, {})],
        runs=[SimpleNamespace(recipe=recipe)] * 9,
    )
    values = {0: [0.88, 0.90, 0.86], 1: [0.91, 0.92, 0.90], 2: [0.95, 0.85, 0.87]}
    rows = [
        {
            "config_index": c,
            "seed": s + 1,
            "status": "done",
            "acc": v,
            "acc_before": 0.8,
            "seconds": 1.0,
            "final_loss": 0.5,
            "stat.active": 0.25,
        }
        for c, vs in values.items()
        for s, v in enumerate(vs)
    ]
    table = markdown(sweep, rows)
    assert "| base | 3 | 0.8000 | 0.8800 | 0.0200 | [0.8303, 0.9297] | baseline | — | — | — |" in table
    # better: p 0.035 by the paired t-test, 0.070 after Holm over 2 comparisons: no star (issue 19)
    assert (
        "| better | 3 | 0.8000 | 0.9100 | 0.0100 | [0.8852, 0.9348] | +0.0300 | [+0.0052, +0.0548] | 0.035 | 0.070 |"
    ) in table
    assert "| +0.0100 | [-0.1390, +0.1590] | 0.800 | 0.800 |" in table and table.count("✱") == 1  # the legend
    assert "| better | 0.5000 | — | — | — | 0.2500 |" in table
