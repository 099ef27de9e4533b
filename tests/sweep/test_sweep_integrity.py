"""A sweep directory follows the train rules, and its results stay tied to the code that made them (issues 19 and
20): changed loss code (the file, or a module beside it that it imports) refused naming the file unless
--restart-changed; a folder of other files refused; one sweep at a time; run folders unique after slugging; settings
checked before anything large is built; the user's loss failing in a run named; a rerun of a finished sweep without
`metric` leaves sweep.csv as it was; a resumed run's time counts its attempts."""

import json
import time

import pytest
import torch
from helpers import save_tiny_base

from minilm import cli
from minilm.run.output_dir import OutputDirError, claim_directory
from minilm.sweep.runner import SWEEP_OUTPUTS, SweepError, run_sweep
from minilm.train import trainer as trainer_module

BASE = """name = "tiny"
[model]
base = "{base}"
[data]
train = "train.csv"
roles = {{ anchor = "anchor", positive = "positive", negative = "negative" }}
[train]
batch_size = 4
max_steps = 3
save_steps = 1
[loss]
name = "mnrl"
[eval]
task = "triplet"
data = "eval.csv"
roles = {{ anchor = "anchor", positive = "positive", negative = "negative" }}
"""

LOSS = """
from minilm.losses import needs
from margins import MARGIN


@needs("columns", columns=3)
def hinge(anchor, positive, negative, fail: bool = False):
    if fail and anchor.requires_grad:
        raise ValueError("margin table is empty")
    gap = (anchor - positive).pow(2).sum(1) - (anchor - negative).pow(2).sum(1) + MARGIN
    return gap.clamp(min=0).mean()
"""

SWEEP = """recipe = "base.toml"
seeds = {seeds}
{extra}
[[configs]]
label = "mnrl"
loss = {{ name = "mnrl" }}

[[configs]]
label = "hinge"
loss = {{ name = "losses/hinge.py:hinge"{settings} }}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory, minilm_dir):

    root = tmp_path_factory.mktemp("sweep-integrity")
    save_tiny_base(root, minilm_dir)
    rows = [
        f"question {i} on topic {i % 5},answer {i} on topic {i % 5},note {i} on topic {(i + 2) % 5}" for i in range(16)
    ]
    (root / "train.csv").write_text("anchor,positive,negative\n" + "\n".join(rows) + "\n")
    (root / "eval.csv").write_text("anchor,positive,negative\n" + "\n".join(rows[:8]) + "\n")
    (root / "base.toml").write_text(BASE.format(base=root / "base"))
    (root / "losses").mkdir()
    (root / "losses" / "hinge.py").write_text(LOSS)
    (root / "losses" / "margins.py").write_text("MARGIN = 0.2\n")
    return root


def sweep_file(folder, name, seeds="[1]", extra="", settings=""):
    path = folder / f"{name}.toml"
    path.write_text(SWEEP.format(seeds=seeds, extra=extra, settings=settings))
    return path


def quiet(_):
    pass


@pytest.mark.slow
def test_edited_loss_code_is_refused_naming_the_file_until_restarted(folder, tmp_path, monkeypatch):
    path, out = sweep_file(folder, "edits"), tmp_path / "out"
    run_sweep(path, out, plots=False, log=quiet)
    record = json.loads((out / "runs" / "hinge" / "seed-1" / "run.json").read_text())
    assert sorted(record["code_sha256"]) == [str(folder / "losses" / n) for n in ("hinge.py", "margins.py")]
    assert len(record["data_sha256"]["train"]) == 64
    loss = folder / "losses" / "hinge.py"
    original = loss.read_text()
    try:
        loss.write_text(original + "\n# tuned\n")  # between two invocations of a finished sweep
        with pytest.raises(
            SweepError,
            match=rf"'hinge' seed 1: loss code {folder / 'losses' / 'hinge.py'}: changed "
            r".*rerun with --restart-changed to start those runs over",
        ):
            run_sweep(path, out, plots=False, log=quiet)
        lines = []
        run_sweep(path, out, plots=False, log=lines.append, restart_changed=True)
        assert any(line.startswith("[hinge seed 1] starting over: loss code") for line in lines)
        assert "1 finished, 1 to run" in "\n".join(lines)  # mnrl's run kept, hinge's run again
    finally:
        loss.write_text(original)


@pytest.mark.slow
def test_edited_evaluation_data_is_refused_naming_the_file(folder, tmp_path):
    path, out = sweep_file(folder, "data-edits"), tmp_path / "out"
    run_sweep(path, out, plots=False, log=quiet)
    data = folder / "eval.csv"
    original = data.read_text()
    try:
        data.write_text(original + "one more,row of,evaluation\n")
        with pytest.raises(SweepError, match=r"'mnrl' seed 1: eval data \S*eval\.csv: changed"):
            run_sweep(path, out, plots=False, log=quiet)
    finally:
        data.write_text(original)


@pytest.mark.slow
def test_a_killed_sweep_with_an_edited_sibling_module_is_refused_naming_it(folder, tmp_path, monkeypatch):
    path, out = sweep_file(folder, "killed"), tmp_path / "out"
    original_log = trainer_module.Trainer.write_log

    def die_in_hinge(self, record):
        original_log(self, record)
        if record.get("step") == 2 and "loss" in record and "hinge" in str(self.output_dir):
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(trainer_module.Trainer, "write_log", die_in_hinge)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(path, out, plots=False, log=quiet)
    monkeypatch.setattr(trainer_module.Trainer, "write_log", original_log)
    margins = folder / "losses" / "margins.py"
    try:
        margins.write_text("MARGIN = 0.5\n")
        with pytest.raises(SweepError, match=rf"loss code {margins}: changed"):
            run_sweep(path, out, plots=False, log=quiet)
        assert (out / "runs" / "hinge" / "seed-1" / "checkpoints").is_dir()  # refused: nothing touched
    finally:
        margins.write_text("MARGIN = 0.2\n")
    lines = []
    run_sweep(path, out, plots=False, log=lines.append)  # the code it ran with: resumed
    assert any("[hinge seed 1] resumed from step-0000001" in line for line in lines)  # killed before saving step 2
    result = json.loads((out / "runs" / "hinge" / "seed-1" / "result.json").read_text())
    assert result["status"] == "done" and result["steps"] == 3


@pytest.mark.slow
def test_a_resumed_runs_time_counts_its_earlier_attempt(folder, tmp_path, monkeypatch):
    path, out = sweep_file(folder, "timed"), tmp_path / "out"
    original_state = trainer_module.Trainer.state_dict

    def slow_first_attempt(self):  # the attempt before the kill took 5 s more than it seems
        state = original_state(self)
        state["seconds"] += 5.0
        return state

    monkeypatch.setattr(trainer_module.Trainer, "state_dict", slow_first_attempt)
    original_log = trainer_module.Trainer.write_log

    def die(self, record):
        original_log(self, record)
        if record.get("step") == 2 and "loss" in record and "hinge" in str(self.output_dir):
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(trainer_module.Trainer, "write_log", die)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(path, out, plots=False, log=quiet)
    checkpoint = out / "runs" / "hinge" / "seed-1" / "checkpoints" / "step-0000001" / "trainer_state.pt"
    recorded = torch.load(checkpoint, weights_only=True)["seconds"]
    monkeypatch.setattr(trainer_module.Trainer, "state_dict", original_state)
    monkeypatch.setattr(trainer_module.Trainer, "write_log", original_log)
    started = time.perf_counter()
    run_sweep(path, out, plots=False, log=quiet)
    this_attempt = time.perf_counter() - started
    result = json.loads((out / "runs" / "hinge" / "seed-1" / "result.json").read_text())
    assert recorded > 5.0 and result["seconds"] >= recorded
    assert result["seconds"] > this_attempt  # not the resumed part alone
    mnrl = json.loads((out / "runs" / "mnrl" / "seed-1" / "result.json").read_text())
    assert f"{result['seconds'] + mnrl['seconds']:.0f} s of run time in all" in (out / "sweep.md").read_text()


@pytest.mark.slow
def test_a_finished_sweep_without_metric_reruns_and_leaves_sweep_csv_intact(folder, tmp_path, monkeypatch):
    from minilm.sweep import report

    path, out = sweep_file(folder, "nometric"), tmp_path / "out"
    run_sweep(path, out, plots=False, log=quiet)
    csv_before = (out / "sweep.csv").read_bytes()
    lines, figures, save = [], {}, report._save

    def keep(fig, target):
        figures[target.name] = [ax.get_title() for ax in fig.axes if ax.get_visible()]
        save(fig, target)

    monkeypatch.setattr(report, "_save", keep)
    run_sweep(path, out, plots=True, log=lines.append)  # the rerun draws the plots too
    assert "2 finished, 0 to run" in lines[0]
    assert (out / "sweep.csv").read_bytes() == csv_before and b"None_before" not in csv_before
    assert "cosine_accuracy_before" in csv_before.decode()
    assert figures["loss.png"] == ["mnrl", "hinge"]  # one panel per configuration, each on its own scale


def test_the_users_loss_failing_in_a_sweep_run_is_named(folder, tmp_path, capfd):
    path = sweep_file(folder, "failing", settings=", fail = true")
    assert cli.main(["sweep", str(path), "--output", str(tmp_path / "out"), "--no-plots"]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert err[-1].startswith(
        "minilm sweep: error: [hinge seed 1] loss hinge.py:hinge failed at step 1 (epoch 0): "
        "ValueError: margin table is empty (at hinge.py line 9, in hinge)"
    ), err[-1]
    assert "internal error" not in err[-1]


@pytest.mark.parametrize("theirs", [["sweep.md"], ["sweep.md", "thesis.tex"]])
def test_a_folder_of_other_files_is_refused_and_nothing_is_added(folder, tmp_path, theirs):
    out = tmp_path / "mine"
    out.mkdir()
    for name in theirs:  # a sweep.md without a sweep's runs/ beside it is not a sweep's
        (out / name).write_text("my notes")
    with pytest.raises(
        OutputDirError,
        match=rf"output directory {out} holds files that are not a minilm sweep's "
        rf"\({', '.join(theirs)}\); choose another --output",
    ):
        run_sweep(sweep_file(folder, "foreign"), out, plots=False, log=quiet)
    assert sorted(p.name for p in out.iterdir()) == theirs and (out / "sweep.md").read_text() == "my notes"


def test_a_second_sweep_into_a_busy_output_fails_at_once(folder, tmp_path):
    out = tmp_path / "busy"
    busy = rf"output directory {out} is in use by another minilm run \(pid "
    with claim_directory(out, SWEEP_OUTPUTS, "a minilm sweep"), pytest.raises(OutputDirError, match=busy):
        run_sweep(sweep_file(folder, "busy"), out, plots=False, log=quiet)  # while a first sweep holds the folder
    assert not (out / "runs").exists()


@pytest.mark.parametrize("labels", [("a b", "a_b"), ("hinge", "Hinge")])
def test_labels_that_slug_to_one_folder_are_refused_by_name(folder, labels):
    path = sweep_file(folder, "slugs")
    first, second = (f'label = "{label}"' for label in labels)
    path.write_text(path.read_text().replace('label = "hinge"', second).replace('label = "mnrl"', first))
    with pytest.raises(
        SweepError,
        match=rf"configurations '{labels[0]}' and '{labels[1]}' would share the run folder "
        rf"runs/",
    ):
        run_sweep(path, folder / "never", plots=False, log=quiet)
    assert not (folder / "never").exists()


def test_a_billion_seeds_is_refused_before_anything_is_built(folder):
    started = time.perf_counter()
    with pytest.raises(
        SweepError,
        match=r"seeds asks for 1000000000 runs per configuration; a sweep runs at most "
        r"10000 runs in all",
    ):
        run_sweep(sweep_file(folder, "huge", seeds="1000000000"), folder / "never", plots=False, log=quiet)
    assert time.perf_counter() - started < 5
    grid = sweep_file(folder, "grid", settings=" }\ngrid = { fail = [" + ", ".join(["false"] * 101) + "]")
    text = grid.read_text().replace("seeds = [1]", "seeds = 100")
    grid.write_text(text)
    with pytest.raises(SweepError, match=r"\[\[configs\]\] 2: grid and lr make 101 configurations"):
        run_sweep(grid, folder / "never", plots=False, log=quiet)
