"""`minilm plot` beside a run (issue 20; minilm/run/plots.py, minilm/run/output_dir.py): a killed run's torn last log
line is dropped as the trainer drops it, and the plot's own plots/ folder never makes a rerun or a --resume refuse
the run folder (--overwrite removes it with the run)."""

import json

from helpers import write_tiny_recipe

from minilm import cli
from minilm.run.output_dir import claim, run_record
from minilm.run.plots import read_log
from minilm.run.recipe import load_recipe


def test_a_torn_last_line_is_dropped_as_the_trainer_drops_it(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    lines = [json.dumps({"step": s, "loss": 1.0 / s}) for s in range(1, 4)]
    (run / "log.jsonl").write_text("\n".join(lines) + '\n{"step": 4, "lo', encoding="utf-8")  # SIGKILL mid-write
    assert [r["step"] for r in read_log(run / "log.jsonl")] == [1, 2, 3]
    assert cli.main(["plot", str(run)]) == 0
    assert capsys.readouterr().out.split() == [str(run / "plots" / "loss.png")]
    assert sorted(p.name for p in (run / "plots").iterdir()) == ["loss.png"]  # no temporary left


def test_the_plots_folder_is_the_runs_own(tmp_path):
    recipe = load_recipe(write_tiny_recipe(tmp_path, tmp_path / "no-model-needed"))
    recipe.overrides = ()
    record, out = run_record(recipe), tmp_path / "out"
    with claim(out, record):
        pass
    (out / "log.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    assert cli.main(["plot", str(out)]) == 0 and (out / "plots" / "loss.png").is_file()
    claim(out, record, resume=True).release()  # --resume: the same run, plots and all
    try:
        claim(out, record)
    except ValueError as e:  # a rerun is told the folder holds a run, not that plots/ is someone else's
        assert "already holds run 'tiny'; pass --resume" in str(e) and "not a minilm run" not in str(e)
    else:
        raise AssertionError("a second run into a run folder was not refused")
    claim(out, record, overwrite=True).release()
    assert not (out / "plots").exists() and not (out / "log.jsonl").exists()
