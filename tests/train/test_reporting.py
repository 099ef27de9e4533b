"""report_to (minilm/train/reporting.py): TensorBoard events of a run, read back with TensorBoard's own reader,
each step once after a resume; a clear refusal, before any model loads, when TensorBoard is not installed."""

import sys

import pytest
from helpers import killed_after_step, write_tiny_recipe

from minilm.run.build import run_recipe
from minilm.run.recipe import RecipeError, load_recipe

TENSORBOARD = ["train.report_to=['jsonl', 'tensorboard']", "train.save_steps=2", "train.eval_steps=3"]


def scalars(output) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(output / "tensorboard"))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


@pytest.mark.slow
def test_tensorboard_gets_every_step_and_evaluation(tmp_path, tiny_base):
    path = write_tiny_recipe(tmp_path, tiny_base, train="", evaluate=True)
    history = run_recipe(load_recipe(path, TENSORBOARD), tmp_path / "out", log=lambda _: None)
    found = scalars(tmp_path / "out")
    assert {"train/loss", "train/lr", "train/grad_norm", "train/epoch", "eval/cosine_accuracy"} <= set(found)
    assert [step for step, _ in found["train/loss"]] == [1, 2, 3, 4, 5, 6]
    assert [step for step, _ in found["eval/cosine_accuracy"]] == [0, 3, 6]
    assert [value for _, value in found["eval/cosine_accuracy"]] == pytest.approx(
        [h["cosine_accuracy"] for h in history], abs=1e-7
    )  # stored as float32


@pytest.mark.slow
def test_a_resumed_run_shows_each_step_once(tmp_path, tiny_base, monkeypatch):
    path = write_tiny_recipe(tmp_path, tiny_base, train="", evaluate=True)
    killed_after_step(
        monkeypatch, 5, lambda: run_recipe(load_recipe(path, TENSORBOARD), tmp_path / "out", log=lambda _: None)
    )
    run_recipe(load_recipe(path, TENSORBOARD), tmp_path / "out", resume=True, log=lambda _: None)
    found = scalars(tmp_path / "out")
    assert [step for step, _ in found["train/loss"]] == [1, 2, 3, 4, 5, 6]  # step 5 ran twice, is shown once
    assert [step for step, _ in found["eval/cosine_accuracy"]] == [0, 3, 6]


def test_missing_tensorboard_is_refused_before_any_model_loads(tmp_path, tiny_base, monkeypatch):
    from minilm.encoder import SentenceEncoder

    monkeypatch.setattr(SentenceEncoder, "from_pretrained", lambda *a, **k: pytest.fail("model loaded"))
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # as if tensorboard were not installed
    path = write_tiny_recipe(tmp_path, tiny_base, train="", evaluate=True)
    with pytest.raises(
        RecipeError,
        match=r"\[train\] report_to = \[\"tensorboard\"\] needs .*"
        r"pip install 'minilm\[tensorboard\]'",
    ):
        load_recipe(path, TENSORBOARD)
    load_recipe(path)  # without it, nothing needs TensorBoard


def test_report_to_names_are_checked():
    from minilm.train.reporting import REPORTERS, check_report_to

    check_report_to(["jsonl"])
    check_report_to(list(REPORTERS))
    for bad, message in [
        (["jsonl", 3], "must be a list of names"),
        ("jsonl", "must be a list of names"),
        (["jsonl", "wandb"], r"unknown \['wandb'\]"),
        ([], 'must include "jsonl"'),
    ]:
        with pytest.raises(ValueError, match=message):
            check_report_to(bad)
