"""Best checkpoint and early stopping (minilm/train/best.py and its use in the trainer): which model is the
best, that it survives pruning and becomes final/, when training stops, and that all of it survives --resume.

The evaluator is scripted (a score per step) so each case knows which step is best; the training itself is real."""

import json
import math

import pytest
import torch
from helpers import killed_after_step, tiny_encoder, write_tiny_recipe
from safetensors.torch import load_file

from minilm.run.build import run_recipe
from minilm.run.recipe import load_recipe
from minilm.train.best import BestTracker
from minilm.train.checkpoints import checkpoints
from minilm.train.config import TrainConfig
from minilm.train.trainer import TrainData, Trainer

# cosine_accuracy by step: best at step 2, then no improvement (the final evaluation at step 6 included)
SCORES = {0: 0.1, 1: 0.5, 2: 0.9, 3: 0.6, 4: 0.7, 5: 0.8, 6: 0.85}


def test_tracker_keeps_the_strictly_best_and_counts_evaluations_since():
    up = BestTracker("acc", greater_is_better=True, patience=2)
    assert [up.update(s, {"acc": v}) for s, v in [(1, 0.5), (2, 0.7), (3, 0.7), (4, math.nan), (5, 0.9)]] == [
        True,
        True,
        False,
        False,
        True,
    ]
    assert (up.best_step, up.best_value, up.evaluations_without_improvement) == (5, 0.9, 0)
    assert not up.should_stop
    up.update(6, {"acc": 0.1})
    up.update(7, {"acc": 0.2})
    assert up.should_stop
    down = BestTracker("loss", greater_is_better=False)
    assert [down.update(s, {"loss": v}) for s, v in [(1, 2.0), (2, 3.0), (3, 1.0)]] == [True, False, True]
    assert not down.should_stop  # patience 0: never stops
    first_nan = BestTracker("acc")
    assert not first_nan.update(1, {"acc": math.nan}) and first_nan.best_step is None


def test_tracker_state_round_trips_and_another_metrics_state_is_ignored():
    a = BestTracker("acc", patience=3)
    a.update(4, {"acc": 0.5})
    a.update(8, {"acc": 0.4})
    b = BestTracker("acc", patience=3)
    b.load_state_dict(a.state_dict())
    assert (b.best_step, b.best_value, b.evaluations_without_improvement) == (4, 0.5, 1)
    for other in (BestTracker("spearman"), BestTracker("acc", greater_is_better=False)):
        other.load_state_dict(a.state_dict())
        assert other.best_step is None


def test_a_metric_missing_from_the_result_is_named():
    with pytest.raises(ValueError, match=r"metric_for_best 'spearman' is not in .*\['cosine_accuracy'\]"):
        BestTracker("spearman").update(1, {"cosine_accuracy": 0.5})


def test_trainer_refuses_best_settings_it_cannot_honour(minilm_dir):
    from minilm.loading.tokenizer import WordPieceTokenizer
    from minilm.train.samplers import RandomBatchSampler

    model = tiny_encoder(WordPieceTokenizer.from_dir(minilm_dir, 32))
    data = TrainData(columns=[["a", "b"], ["c", "d"]])

    def make(config, evaluate=None, output_dir=None):
        return Trainer(model, lambda *a: None, data, RandomBatchSampler(2, 2), config, evaluate, output_dir)

    with pytest.raises(ValueError, match="metric_for_best 'cosine_accuracy' needs an evaluator"):
        make(TrainConfig(batch_size=2, metric_for_best="cosine_accuracy"))
    with pytest.raises(ValueError, match="load_best_at_end needs metric_for_best"):
        make(TrainConfig(batch_size=2, load_best_at_end=True, eval_steps=1))
    with pytest.raises(ValueError, match="early_stopping_patience needs eval_steps > 0"):
        make(
            TrainConfig(batch_size=2, metric_for_best="cosine_accuracy", early_stopping_patience=2),
            evaluate=lambda m: {},
        )
    with pytest.raises(ValueError, match="load_best_at_end needs an output directory"):
        make(
            TrainConfig(batch_size=2, metric_for_best="cosine_accuracy", load_best_at_end=True, eval_steps=1),
            evaluate=lambda m: {},
        )


@pytest.fixture()
def scripted(monkeypatch):
    """The recipe's evaluator replaced by SCORES at the step being evaluated; returns the steps evaluated."""
    from minilm.run import build as run
    from minilm.train import trainer

    evaluated = []
    original = trainer.Trainer.run_evaluation

    def run_evaluation(self):
        evaluated.append(self.step)
        return original(self)

    monkeypatch.setattr(trainer.Trainer, "run_evaluation", run_evaluation)
    monkeypatch.setattr(run, "make_evaluator", lambda *a, **k: lambda model: {"cosine_accuracy": SCORES[evaluated[-1]]})
    return evaluated


def run(path, output, *overrides, resume=False):
    return run_recipe(load_recipe(path, list(overrides)), output, resume=resume, log=lambda _: None)


def weights(folder):
    return load_file(folder / "model.safetensors")


def same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def logged_steps(output):
    log = [json.loads(line) for line in (output / "log.jsonl").read_text().splitlines()]
    return [r["step"] for r in log if "loss" in r], [r["step"] for r in log if "eval" in r]


BEST = [
    "train.metric_for_best='cosine_accuracy'",
    "train.eval_steps=1",
    "train.save_steps=1",
    "train.keep_checkpoints=1",
]


@pytest.mark.slow
def test_load_best_at_end_final_is_the_best_checkpoint_kept_through_pruning(tmp_path, tiny_base, scripted):
    path = write_tiny_recipe(tmp_path, tiny_base, train="", evaluate=True)
    history = run(path, tmp_path / "out", *BEST, "train.load_best_at_end=true")
    assert [h["step"] for h in history] == [0, 1, 2, 3, 4, 5, 6]
    kept = checkpoints(tmp_path / "out")
    assert [p.name for p in kept] == ["step-0000002", "step-0000005"]  # the newest, and the best beyond keep=1
    assert same(weights(tmp_path / "out" / "final"), weights(kept[0] / "model"))
    assert not same(weights(tmp_path / "out" / "final"), weights(kept[1] / "model"))
    card = (tmp_path / "out" / "final" / "README.md").read_text(encoding="utf-8")
    assert "| **cosine_accuracy** | **0.9000** |" in card and "at step 2" in card
    assert "the model saved here" in card


@pytest.mark.slow
def test_without_load_best_final_is_the_last_model_and_the_best_checkpoint_is_still_kept(tmp_path, tiny_base, scripted):
    path = write_tiny_recipe(tmp_path, tiny_base, train="", evaluate=True)
    run(path, tmp_path / "out", *BEST)
    kept = checkpoints(tmp_path / "out")
    assert [p.name for p in kept] == ["step-0000002", "step-0000005"]
    assert not same(weights(tmp_path / "out" / "final"), weights(kept[0] / "model"))
    card = (tmp_path / "out" / "final" / "README.md").read_text(encoding="utf-8")
    assert "| **cosine_accuracy** | **0.8500** |" in card and "at step 6" in card


def test_a_new_best_is_checkpointed_for_load_best_at_end_even_off_the_save_schedule(tmp_path, tiny_base, scripted):
    path = write_tiny_recipe(tmp_path, tiny_base, train="", evaluate=True)
    run(
        path,
        tmp_path / "out",
        "train.metric_for_best='cosine_accuracy'",
        "train.eval_steps=1",
        "train.load_best_at_end=true",
    )  # save_steps = 0: no scheduled checkpoint at all
    assert [p.name for p in checkpoints(tmp_path / "out")] == ["step-0000001", "step-0000002"]
    assert same(weights(tmp_path / "out" / "final"), weights(checkpoints(tmp_path / "out")[1] / "model"))


@pytest.mark.slow  # a training run with an evaluation per step; the fast tier keeps the best-checkpoint run
def test_early_stopping_stops_after_patience_evaluations_without_improvement(tmp_path, tiny_base, scripted):
    path = write_tiny_recipe(tmp_path, tiny_base, train="", evaluate=True)
    history = run(path, tmp_path / "out", *BEST, "train.early_stopping_patience=2", "train.load_best_at_end=true")
    assert logged_steps(tmp_path / "out") == ([1, 2, 3, 4], [0, 1, 2, 3, 4])  # steps 3 and 4 did not beat step 2
    assert [h["step"] for h in history] == [0, 1, 2, 3, 4]  # the model of step 4 is not evaluated twice
    assert same(weights(tmp_path / "out" / "final"), weights(checkpoints(tmp_path / "out")[0] / "model"))


@pytest.mark.slow
@pytest.mark.parametrize("killed_after", [3, 4])
def test_best_and_patience_survive_resume(tmp_path, tiny_base, scripted, monkeypatch, killed_after):
    """Killed after step 3 (newest checkpoint: step 2, the best) or step 4 (checkpoint 3: one evaluation without
    improvement): the resumed run stops at step 4 as the straight one does, with the same weights, log and final/."""
    path = write_tiny_recipe(tmp_path, tiny_base, train="", evaluate=True)
    settings = [*BEST, "train.keep_checkpoints=5", "train.early_stopping_patience=2", "train.load_best_at_end=true"]
    straight = run(path, tmp_path / "straight", *settings)

    killed_after_step(monkeypatch, killed_after, lambda: run(path, tmp_path / "resumed", *settings))
    assert checkpoints(tmp_path / "resumed")[-1].name == f"step-{killed_after - 1:07d}"
    resumed = run(path, tmp_path / "resumed", *settings, resume=True)
    assert resumed == straight
    assert logged_steps(tmp_path / "resumed") == logged_steps(tmp_path / "straight") == ([1, 2, 3, 4], [0, 1, 2, 3, 4])
    assert same(weights(tmp_path / "resumed" / "final"), weights(tmp_path / "straight" / "final"))
    assert same(weights(tmp_path / "resumed" / "final"), weights(checkpoints(tmp_path / "resumed")[1] / "model"))
    assert checkpoints(tmp_path / "resumed")[1].name == "step-0000002"


@pytest.mark.slow
@pytest.mark.subprocess
def test_early_stopping_and_load_best_under_torchrun(tmp_path, tiny_base):
    """Rank 0 evaluates and every rank takes its verdict: both ranks stop at the same step (none is left waiting at a
    collective) and final/ is the best checkpoint. The real evaluator runs here, so the expected stop is worked out
    from the scores the run logged."""
    from test_distributed import torchrun

    path = write_tiny_recipe(
        tmp_path,
        tiny_base,
        evaluate=True,
        train="metric_for_best = 'cosine_accuracy'\neval_steps = 1\n"
        "early_stopping_patience = 1\nload_best_at_end = true",
    )
    done, _ = torchrun(["-m", "minilm", "train", str(path), "--output", str(tmp_path / "out")], timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    log = [json.loads(line) for line in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    scores = [(r["step"], r["eval"]["cosine_accuracy"]) for r in log if "eval" in r and r["step"] > 0]
    best_value, best_step, last = None, None, 6
    for step, value in scores:  # patience 1: the first evaluation that does not improve stops the run
        if best_value is None or value > best_value:
            best_value, best_step = value, step
        elif step < 6:
            last = step
            break
    assert logged_steps(tmp_path / "out")[0] == list(range(1, last + 1))
    if best_step != last:
        best = tmp_path / "out" / "checkpoints" / f"step-{best_step:07d}" / "model"
        assert same(weights(tmp_path / "out" / "final"), weights(best))
