"""``minilm plot RUN_DIR`` (minilm/run/plots.py): one PNG per logged series, read back as images; clear errors
for a missing log, a bad line and a missing matplotlib."""

import json
import sys

import pytest

from minilm import cli
from minilm.run.plots import log_series, smoothed

RECORDS = [
    {"step": 0, "eval": {"cosine_accuracy": 0.5, "recall@10": 0.25}},
    *(
        {"step": s, "epoch": 0, "loss": 2.0 / s, "lr": 1e-5 * s, "grad_norm": 0.5, "temperature": 0.05}
        for s in range(1, 61)
    ),
    {"step": 30, "eval": {"cosine_accuracy": 0.75, "recall@10": 0.5}},
    {"step": 60, "eval": {"cosine_accuracy": 0.625, "recall@10": None}},  # a value the run could not log
]


def write_run(directory, records=RECORDS):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return directory


@pytest.mark.slow
def test_plot_writes_a_png_per_series(tmp_path, capsys):
    import matplotlib.image

    run = write_run(tmp_path / "run")
    assert cli.main(["plot", str(run)]) == 0
    names = ["loss", "lr", "grad_norm", "temperature", "eval_cosine_accuracy", "eval_recall_at_10"]
    assert capsys.readouterr().out.split() == [str(run / "plots" / f"{n}.png") for n in names]
    for name in names:
        image = matplotlib.image.imread(run / "plots" / f"{name}.png")
        assert image.shape[0] > 100 and image.shape[1] > 100, name
    assert cli.main(["plot", str(run), "--output", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "loss.png").is_file()


def test_series_by_step_numbers_only_last_value_of_a_step_wins():
    train, evals = log_series(RECORDS + [{"step": 60, "epoch": 0, "loss": 9.0, "lr": None, "flag": True}])
    assert set(train) == {"loss", "lr", "grad_norm", "temperature"}  # not step, epoch, None or booleans
    assert train["loss"][60] == 9.0 and train["lr"][60] == pytest.approx(6e-4) and len(train["loss"]) == 60
    assert evals == {"cosine_accuracy": {0: 0.5, 30: 0.75, 60: 0.625}, "recall@10": {0: 0.25, 30: 0.5}}


def test_smoothing_is_tensorboards_debiased_moving_average():
    values = [1.0, 3.0, 2.0]
    by_hand, average = [], 0.0
    for i, v in enumerate(values, 1):
        average = 0.9 * average + 0.1 * v
        by_hand.append(average / (1 - 0.9**i))
    assert smoothed(values) == pytest.approx(by_hand, rel=1e-12)
    assert smoothed([4.0, 4.0]) == pytest.approx([4.0, 4.0], rel=1e-12)


def test_plot_errors_name_the_file(tmp_path, capsys):
    assert cli.main(["plot", str(tmp_path / "nothing")]) == 2
    assert (
        "nothing/log.jsonl not found: RUN_DIR must be the output directory of minilm train" in capsys.readouterr().err
    )
    run = write_run(tmp_path / "bad")
    with open(run / "log.jsonl", "a", encoding="utf-8") as f:
        f.write('{not json\n{"step": 99, "loss": 1.0}\n')  # not the last line: not a torn write
    assert cli.main(["plot", str(run)]) == 2
    assert f"{run / 'log.jsonl'}:{len(RECORDS) + 1}: not a JSON line" in capsys.readouterr().err
    empty = write_run(tmp_path / "empty", [])
    assert cli.main(["plot", str(empty)]) == 2
    assert "has no step or evaluation records" in capsys.readouterr().err


def test_missing_matplotlib_says_which_extra_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if matplotlib were not installed
    assert cli.main(["plot", str(write_run(tmp_path / "run"))]) == 2
    err = capsys.readouterr().err
    assert "minilm plot needs" in err and "pip install 'minilm[plot]'" in err
    assert not (tmp_path / "run" / "plots").exists()
