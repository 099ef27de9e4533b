"""The trainer on tiny models: determinism, bit-identical resume, divergence, logs and checkpoints."""

import json

import pytest
import torch
from helpers import make_tiny_checkpoint
from safetensors.torch import load_file

from minilm.encoder import SentenceEncoder
from minilm.training.recipe import load_recipe
from minilm.training.run import run_recipe
from minilm.training.trainer import TrainingDiverged, checkpoints

RECIPE = """
name = "tiny"
[model]
base = "{base}"
[data]
train = "{data}"
roles = {{ anchor = "anchor", positive = "positive" }}
[loss]
name = "mnrl"
[train]
batch_size = 8
max_steps = 6
save_steps = 2
keep_checkpoints = 5
"""


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory, minilm_dir):
    directory = tmp_path_factory.mktemp("tiny-base")
    make_tiny_checkpoint(directory, minilm_dir, layers=2, normalize=True)
    return directory


@pytest.fixture()
def recipe_path(tmp_path, tiny_base):
    data = tmp_path / "pairs.csv"
    rows = [f"question number {i} about topic {i % 7},answer {i} explains topic {i % 7} in words" for i in range(40)]
    data.write_text("anchor,positive\n" + "\n".join(rows) + "\n", encoding="utf-8")
    path = tmp_path / "tiny.toml"
    path.write_text(RECIPE.format(base=tiny_base, data=data), encoding="utf-8")
    return path


def final_weights(output):
    return load_file(output / "final" / "model.safetensors")


def assert_identical(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_same_recipe_twice_gives_identical_weights(recipe_path, tmp_path, tiny_base):
    for name in ("a", "b"):
        run_recipe(load_recipe(recipe_path), tmp_path / name, log=lambda _: None)
    assert_identical(final_weights(tmp_path / "a"), final_weights(tmp_path / "b"))
    base = load_file(tiny_base / "model.safetensors")
    assert not torch.equal(final_weights(tmp_path / "a")["encoder.layer.0.output.dense.weight"],
                           base["encoder.layer.0.output.dense.weight"])


def test_interrupted_run_resumed_gives_identical_weights(recipe_path, tmp_path, monkeypatch):
    run_recipe(load_recipe(recipe_path), tmp_path / "straight", log=lambda _: None)

    from minilm.training import trainer

    original = trainer.Trainer.write_log

    def die_after_step_5(self, record):
        original(self, record)
        if record.get("step") == 5 and "loss" in record:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(trainer.Trainer, "write_log", die_after_step_5)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(load_recipe(recipe_path), tmp_path / "resumed", log=lambda _: None)
    monkeypatch.setattr(trainer.Trainer, "write_log", original)
    assert [p.name for p in checkpoints(tmp_path / "resumed")] == ["step-0000002", "step-0000004"]
    run_recipe(load_recipe(recipe_path), tmp_path / "resumed", resume=True, log=lambda _: None)
    assert_identical(final_weights(tmp_path / "straight"), final_weights(tmp_path / "resumed"))
    log = [json.loads(line) for line in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3, 4, 5, 6]  # the lost step 5 is logged once


def test_checkpoints_are_kept_and_loadable(recipe_path, tmp_path):
    run_recipe(load_recipe(recipe_path, ["train.keep_checkpoints=1"]), tmp_path / "out", log=lambda _: None)
    found = checkpoints(tmp_path / "out")
    assert [p.name for p in found] == ["step-0000004"]
    assert SentenceEncoder.from_pretrained(found[0] / "model").encode("x").shape == (64,)
    assert not list((tmp_path / "out" / "checkpoints").glob(".tmp*"))


def test_nan_loss_stops_with_step_and_keeps_last_checkpoint(recipe_path, tmp_path, monkeypatch):
    from minilm.training import run

    real = run.make_loss

    def poisoned(*args, **kwargs):
        loss = real(*args, **kwargs)
        calls = {"n": 0}

        def wrapped(*args, **kw):
            calls["n"] += 1
            value = loss(*args, **kw)
            return value * float("nan") if calls["n"] == 4 else value

        return wrapped

    monkeypatch.setattr(run, "make_loss", poisoned)
    with pytest.raises(TrainingDiverged, match=r"at step 4 .*weights were not updated.*step-0000002"):
        run_recipe(load_recipe(recipe_path), tmp_path / "out", log=lambda _: None)
    last = checkpoints(tmp_path / "out")[-1]
    assert last.name == "step-0000002"
    emb = SentenceEncoder.from_pretrained(last / "model").encode(["still fine"])
    assert torch.isfinite(torch.from_numpy(emb)).all()


def test_resume_without_checkpoint_is_an_error(recipe_path, tmp_path):
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        run_recipe(load_recipe(recipe_path), tmp_path / "empty", resume=True)


def test_gradient_cache_setting_gives_the_same_run(recipe_path, tmp_path):
    """mini_batch_size switches the gradient cache on; with dropout off the weights match the plain run."""
    plain = ["train.dropout=false", "train.save_steps=0"]
    run_recipe(load_recipe(recipe_path, plain), tmp_path / "plain", log=lambda _: None)
    run_recipe(load_recipe(recipe_path, plain + ["train.mini_batch_size=3"]), tmp_path / "cached", log=lambda _: None)
    a, b = final_weights(tmp_path / "plain"), final_weights(tmp_path / "cached")
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5, rtol=1e-4), key


def test_compile_setting_trains_like_eager(recipe_path, tmp_path):
    """train.compile: compiled layers, compiled AdamW step and fused MNRL give the eager run's weights (dropout off;
    float32 rounding of the fused kernels only); MNRL in another form keeps the reference loss."""
    from minilm.kernels.mnrl import fused_mnrl_loss
    from minilm.training.compiled import compiled_training
    from minilm.training.registry import make_loss

    class Model:  # what compiled_training needs of a model
        def compile_kernels(self):
            pass

    assert compiled_training(Model(), make_loss("mnrl", {"scale": 10.0}))[0].func is fused_mnrl_loss
    symmetric, _ = compiled_training(Model(), make_loss("mnrl", {"symmetric": True}))
    assert getattr(symmetric, "func", None) is not fused_mnrl_loss  # not the fused kernel's form
    base = ["train.dropout=false", "train.save_steps=0", "train.max_steps=3"]
    run_recipe(load_recipe(recipe_path, base), tmp_path / "eager", log=lambda _: None)
    run_recipe(load_recipe(recipe_path, base + ["train.compile=true"]), tmp_path / "compiled", log=lambda _: None)
    a, b = final_weights(tmp_path / "eager"), final_weights(tmp_path / "compiled")
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5, rtol=1e-4), key
