"""``minilm plot`` draws the statistics a loss reported (minilm/run/plots.py): stats.png, one panel per statistic on
its own scale, titled by its name; no stats.png for a run whose loss reported none."""

import json

import pytest

from minilm.run.plots import plot_run, stats_figure, stats_series

RECORDS = [
    {"step": 0, "eval": {"sts/spearman": 0.5, "ir/ndcg@10": 0.25}},
    *(
        {
            "step": s,
            "epoch": 0,
            "loss": 2.0 / s,
            "lr": 1e-5,
            "grad_norm": 0.5,
            "stats": {"temperature": 0.05 + s / 1000, "accuracy": s / 10, "masked": None},
        }
        for s in range(1, 6)
    ),
    {"step": 5, "eval": {"sts/spearman": 0.75, "ir/ndcg@10": 0.5}},
]


def write_run(directory, records):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return directory


def test_statistics_are_read_by_name_and_step_numbers_only():
    series = stats_series(RECORDS + [{"step": 5, "loss": 1.0, "stats": {"accuracy": 0.9, "flag": True}}])
    assert set(series) == {"temperature", "accuracy"}  # a null and a boolean are not plotted
    assert series["accuracy"] == {1: 0.1, 2: 0.2, 3: 0.3, 4: 0.4, 5: 0.9}  # a step logged twice: the last value
    assert series["temperature"][1] == pytest.approx(0.051)


@pytest.mark.parametrize("names", [["temperature"], ["temperature", "accuracy"], ["a", "b", "c"]])
def test_one_panel_per_statistic_titled_by_its_name(names):
    import matplotlib.pyplot as plt

    series = {name: {1: float(i), 2: float(i) + 1} for i, name in enumerate(names)}
    fig = stats_figure("run", series)
    try:
        assert [ax.get_title() for ax in fig.axes] == names  # no empty panel left over
        lows = [ax.get_ylim()[0] for ax in fig.axes]
        assert lows == sorted(lows) and lows[0] < lows[-1] or len(names) == 1  # each panel on its own scale
    finally:
        plt.close(fig)


def test_plot_run_writes_stats_png_with_the_panels(tmp_path, monkeypatch):
    import matplotlib.image

    from minilm.run import plots

    made = []
    original = plots.stats_figure
    monkeypatch.setattr(plots, "stats_figure", lambda *a: made.append(original(*a)) or made[-1])
    run = write_run(tmp_path / "run", RECORDS)
    written = plot_run(run)
    assert [p.name for p in written] == [
        "loss.png",
        "lr.png",
        "grad_norm.png",
        "eval_sts_spearman.png",
        "eval_ir_ndcg_at_10.png",
        "stats.png",
    ]
    assert [ax.get_title() for ax in made[0].axes] == ["temperature", "accuracy"]
    image = matplotlib.image.imread(run / "plots" / "stats.png")
    assert image.shape[1] > image.shape[0] > 100  # two panels side by side


def test_no_stats_png_without_statistics(tmp_path):
    plain = [{k: v for k, v in r.items() if k != "stats"} for r in RECORDS]
    written = plot_run(write_run(tmp_path / "run", plain))
    assert "stats.png" not in [p.name for p in written] and not (tmp_path / "run" / "plots" / "stats.png").exists()
