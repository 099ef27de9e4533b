"""minilm sweep on a tiny random encoder: a user's loss trained with no edit to minilm, paired batches, tables and
plots, refusals before any model loads, resume after a kill, parallel jobs, and runs equal to minilm train's."""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import pytest
import torch
from helpers import make_tiny_checkpoint
from safetensors.torch import load_file

from minilm import cli
from minilm.run.build import run_recipe
from minilm.sweep.runner import SweepError, load_sweep, run_sweep
from minilm.train import trainer as trainer_module

BASE = """
name = "tiny"
[model]
base = "{base}"
[data]
train = "train.csv"
roles = {{ anchor = "anchor", positive = "positive", negative = "negative" }}
[loss]
name = "mnrl"
[train]
batch_size = 8
max_steps = 4
save_steps = 2
[eval]
task = "triplet"
data = "eval.csv"
roles = {{ anchor = "anchor", positive = "positive", negative = "negative" }}
"""

MY_LOSS = '''
"""A researcher's loss in their own folder: cosine triplet with a squared hinge."""
import torch
from minilm.losses import needs
from minilm.losses.distances import cosine_distance


@needs("columns", columns=3)
def squared_triplet(anchor, positive, negative, margin: float = 0.2):
    gap = cosine_distance(anchor, positive) - cosine_distance(anchor, negative) + margin
    return torch.relu(gap).pow(2).mean(), {"active": (gap > 0).float().mean()}
'''

SWEEP = """
description = "tiny test sweep"
recipe = "recipes/base.toml"
seeds = [3, 4]
{extra}
[[configs]]
label = "mnrl"
loss = {{ name = "mnrl", report = true }}

[[configs]]
loss = {{ name = "my_losses/squared.py:squared_triplet" }}
grid = {{ margin = [0.1, 0.4] }}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory, minilm_dir):
    """A researcher's folder: recipes/base.toml, its data, a sweep file and a loss file, nothing inside minilm."""
    root = tmp_path_factory.mktemp("research")
    make_tiny_checkpoint(root / "base", minilm_dir, layers=2, normalize=True)
    (root / "recipes").mkdir()
    rows = [
        f"question {i} about topic {i % 7},answer {i} on topic {i % 7},note {i} on topic {(i + 3) % 7}"
        for i in range(48)
    ]
    (root / "recipes" / "train.csv").write_text("anchor,positive,negative\n" + "\n".join(rows) + "\n")
    evals = [
        f"query {i} on subject {i % 5},reply {i} on subject {i % 5},aside {i} on subject {(i + 2) % 5}"
        for i in range(30)
    ]
    (root / "recipes" / "eval.csv").write_text("anchor,positive,negative\n" + "\n".join(evals) + "\n")
    (root / "recipes" / "base.toml").write_text(BASE.format(base=root / "base"))
    (root / "my_losses").mkdir()
    (root / "my_losses" / "squared.py").write_text(MY_LOSS)
    return root


def write_sweep(folder: Path, name: str, extra: str = "", text: str = SWEEP) -> Path:
    path = folder / f"{name}.toml"
    path.write_text(text.format(extra=extra))
    return path


@pytest.fixture(scope="module")
def swept(folder):
    """One sweep through the command line, recording which rows every run trained on, step by step."""
    seen = {}
    original = trainer_module.Trainer.train_step

    def recording(self, rows):
        seen.setdefault(str(self.output_dir), []).append(list(rows))
        return original(self, rows)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(trainer_module.Trainer, "train_step", recording)
        path = write_sweep(folder, "compare")
        assert cli.main(["sweep", str(path), "--output", str(folder / "out")]) == 0
    return folder / "out", seen


@pytest.mark.slow
def test_a_users_loss_is_swept_and_tables_and_plots_are_written(swept):
    out, _ = swept
    with open(out / "sweep.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    labels = ["mnrl", "squared_triplet margin=0.1", "squared_triplet margin=0.4"]
    assert [(r["config"], r["seed"]) for r in rows] == [(label, s) for label in labels for s in ("3", "4")]
    assert all(r["status"] == "done" and r["steps"] == "4" for r in rows)
    assert all(r["stat.active"] for r in rows[2:]) and all(r["stat.accuracy"] for r in rows[:2])
    assert {r["cosine_accuracy_before"] for r in rows} == {rows[0]["cosine_accuracy_before"]}  # evaluated once
    md = (out / "sweep.md").read_text()
    for label in labels:
        assert f"| {label} | 2 |" in md
    assert "| mnrl | 2 |" in md and "baseline" in md and "95 % interval of Δ" in md
    for name in ("loss.png", "stats.png", "metric.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    run = out / "runs" / "squared_triplet_margin=0.1" / "seed-3"
    assert sorted(p.name for p in run.iterdir()) == ["log.jsonl", "result.json", "run.json"]  # no models kept
    assert not list(out.rglob(".*.tmp"))  # every file renamed into place


@pytest.mark.slow
def test_runs_are_paired_same_rows_per_step_for_a_seed(swept):
    _, seen = swept
    by_seed = {}
    for directory, batches in seen.items():
        by_seed.setdefault(Path(directory).name, []).append(batches)
    assert sorted(by_seed) == ["seed-3", "seed-4"] and all(len(v) == 3 for v in by_seed.values())
    for runs in by_seed.values():
        assert len(runs[0]) == 4 and all(batches == runs[0] for batches in runs)  # every config, same batches
    assert by_seed["seed-3"][0] != by_seed["seed-4"][0]  # seeds differ


@pytest.mark.slow
def test_a_sweep_run_is_the_run_minilm_train_makes(folder):
    """Model copied instead of re-read, tokenizer cache, shared evaluation: none of it changes a single bit."""
    text = SWEEP.replace("seeds = [3, 4]", 'seeds = [4]\nkeep = "final"').replace("[0.1, 0.4]", "[0.4]")
    path = write_sweep(folder, "keep", text=text)
    sweep = load_sweep(path, folder / "kept")
    run_sweep(path, folder / "kept", plots=False, log=lambda _: None)
    spec = sweep.runs[-1]  # the user's loss, margin 0.4, seed 4
    run_recipe(spec.recipe, folder / "bare", log=lambda _: None)
    a, b = (
        load_file(spec.directory / "final" / "model.safetensors"),
        load_file(folder / "bare" / "final" / "model.safetensors"),
    )
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    bare = [json.loads(line) for line in (folder / "bare" / "log.jsonl").read_text().splitlines()]
    swept_log = [json.loads(line) for line in (spec.directory / "log.jsonl").read_text().splitlines()]
    assert bare == swept_log


@pytest.mark.slow
def test_a_killed_sweep_rerun_skips_finished_runs_and_resumes_the_unfinished_one(folder, swept, monkeypatch):
    path = write_sweep(folder, "compare")
    out = folder / "killed"
    original = trainer_module.Trainer.write_log
    started = []

    def die_in_the_third_run(self, record):
        original(self, record)
        if (
            record.get("step") == 3
            and "loss" in record
            and "margin=0.1" in str(self.output_dir)
            and self.output_dir.name == "seed-3"
        ):
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(trainer_module.Trainer, "write_log", die_in_the_third_run)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(path, out, plots=False, log=lambda _: None)
    killed = out / "runs" / "squared_triplet_margin=0.1" / "seed-3"
    assert not (killed / "result.json").is_file() and (killed / "checkpoints" / "step-0000002").is_dir()
    assert [p.parent.parent.name for p in out.rglob("result.json")] == ["mnrl"]  # seed by seed: mnrl seed 3 first

    monkeypatch.setattr(trainer_module.Trainer, "write_log", original)
    original_init = trainer_module.Trainer.__init__

    def note(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        started.append(self.output_dir)

    monkeypatch.setattr(trainer_module.Trainer, "__init__", note)
    lines = []
    run_sweep(path, out, plots=False, log=lines.append)
    assert len(started) == 5 and started[0] == killed  # the finished run skipped, the killed one resumed first
    assert any("[squared_triplet margin=0.1 seed 3] resumed from step-0000002" in line for line in lines)
    reference, _ = swept
    for run in ("mnrl/seed-3", "squared_triplet_margin=0.1/seed-3", "squared_triplet_margin=0.4/seed-4"):
        a = (out / "runs" / run / "log.jsonl").read_text()
        assert a == (reference / "runs" / run / "log.jsonl").read_text(), run  # as if never killed
    assert (out / "sweep.csv").read_text().count("\n") == 7


@pytest.mark.slow
@pytest.mark.subprocess
def test_parallel_jobs_run_in_worker_processes(folder, swept, monkeypatch):
    from minilm.sweep import runner as sweep_module

    original = sweep_module.train_run

    def with_pid(run, shared):
        result = original(run, shared)
        (run.directory / "pid").write_text(str(os.getpid()))
        return result

    monkeypatch.setattr(sweep_module, "train_run", with_pid)
    text = SWEEP.replace("seeds = [3, 4]", "seeds = [3]")  # 3 runs, 2 at a time
    results = run_sweep(
        write_sweep(folder, "parallel", text=text), folder / "parallel", jobs=2, plots=False, log=lambda _: None
    )
    assert len(results) == 3 and all(r["status"] == "done" for r in results)
    pids = {p.read_text() for p in (folder / "parallel").rglob("pid")}
    assert len(pids) == 2 and str(os.getpid()) not in pids
    reference, _ = swept
    for mine in sorted((folder / "parallel" / "runs").rglob("result.json")):
        theirs = reference / mine.relative_to(folder / "parallel")
        losses = [
            [
                json.loads(line)["loss"]
                for line in (path.parent / "log.jsonl").read_text().splitlines()
                if '"loss"' in line
            ]
            for path in (mine, theirs)
        ]
        assert losses[0] == pytest.approx(losses[1], rel=1e-4)  # one thread per worker: only summation order differs


BAD_SWEEPS = [
    (
        SWEEP.replace("grid = {{ margin", "grid = {{ margn"),
        r"\[\[configs\]\] 2: grid key margn is not a setting of loss '.*squared_triplet'; it takes margin",
    ),
    (SWEEP.replace('name = "mnrl", report = true', 'name = "mnrl", margin = 0.1'), "has no setting 'margin'"),
    (SWEEP.replace('name = "mnrl", report = true', 'name = "nowhere.py:f"'), "nowhere.py not found"),
    (
        SWEEP.replace('name = "mnrl", report = true', 'name = "mnrl" }}\ntrain = {{ seed = 1'),
        "train sets seed, which decide the batches",
    ),
    (SWEEP.replace('label = "mnrl"', 'label = "squared_triplet margin=0.1"'), "labels must be distinct"),
    (SWEEP.replace("seeds = [3, 4]", "seeds = [3, 3]"), "seeds must be a positive count or a list of distinct"),
    (SWEEP.replace("seeds = [3, 4]", "seeds = [3, 4]\nsteps = 5"), "unknown key steps"),
    (
        SWEEP.replace("grid = {{ margin = [0.1, 0.4] }}", "grid = {{ margin = 0.1 }}"),
        "grid.margin must be a non-empty list",
    ),
    (SWEEP.replace('recipe = "recipes/base.toml"', 'recipe = "recipes/none.toml"'), "none.toml does not exist"),
    (SWEEP + '\n[[configs]]\nloss = {{ name = "batch_hard_triplet" }}\n', "do not fit loss 'batch_hard_triplet'"),
]


@pytest.mark.parametrize("text, message", BAD_SWEEPS)
def test_a_bad_sweep_is_refused_before_any_model_loads(folder, monkeypatch, text, message):
    from minilm.encoder import SentenceEncoder

    monkeypatch.setattr(SentenceEncoder, "from_pretrained", lambda *a, **k: pytest.fail("model loaded"))
    with pytest.raises(SweepError, match=message):
        run_sweep(write_sweep(folder, "bad", text=text), folder / "bad-out")


def test_a_recipe_without_evaluation_cannot_be_swept(folder):
    plain = folder / "recipes" / "no_eval.toml"
    plain.write_text(BASE.format(base=folder / "base").split("[eval]")[0])
    with pytest.raises(SweepError, match="has no \\[eval\\] table"):
        load_sweep(write_sweep(folder, "noeval", text=SWEEP.replace("base.toml", "no_eval.toml")))


def test_a_metric_the_evaluation_does_not_give_is_refused(folder):
    with pytest.raises(SweepError, match=r"metric 'spearman' is not one the evaluation gives: \['cosine_accuracy'\]"):
        run_sweep(write_sweep(folder, "metric", 'metric = "spearman"'), folder / "metric-out", log=lambda _: None)


@pytest.mark.slow
def test_a_run_directory_of_another_configuration_is_not_reused(folder, swept):
    out, _ = swept
    changed = SWEEP.replace("margin = [0.1, 0.4] }}", "margin = [0.1, 0.4] }}\ntrain = {{ lr = 1e-4 }}")
    with pytest.raises(SweepError, match="holds a run of another configuration"):
        run_sweep(write_sweep(folder, "compare", text=changed), out)
    write_sweep(folder, "compare")


@pytest.mark.slow
def test_without_matplotlib_the_tables_are_written_and_the_plots_explained(swept, monkeypatch):
    from minilm.sweep.report import write_plots

    out, _ = swept
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    lines = []
    assert write_plots(load_sweep(out.parent / "compare.toml", out), out, lines.append) is False
    assert lines == [
        "plots need matplotlib, an optional extra: pip install 'minilm[plot]' (sweep.csv and sweep.md were written)"
    ]


def test_the_cached_tokenizer_gives_the_same_ids_and_truncations(minilm_dir):
    from minilm.loading.tokenizer import WordPieceTokenizer
    from minilm.sweep.runner import CachedTokenizer

    plain = WordPieceTokenizer.from_dir(minilm_dir, 8)
    cached = CachedTokenizer(WordPieceTokenizer.from_dir(minilm_dir, 8))
    texts = ["short", "a sentence far longer than eight tokens, surely", "short", "two words"]
    for _ in range(2):  # the second call answers from the cache
        expected_cut, got_cut = [], []
        assert cached.encode_ids(texts, got_cut) == plain.encode_ids(texts, expected_cut)
        assert got_cut == expected_cut == [1]
