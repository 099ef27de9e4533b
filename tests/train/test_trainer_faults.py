"""The trainer under faults: a full disk, a diverging step, damaged checkpoints and logs. Nothing is lost, nothing
non-finite is written, and every stop names the step, file or tensor."""

import errno
import json

import pytest
import torch
from helpers import killed_after_step, write_tiny_recipe

from minilm.encoder import SentenceEncoder
from minilm.run.build import run_recipe
from minilm.run.recipe import load_recipe
from minilm.train.checkpoints import checkpoints

QUIET = {"log": lambda _: None}


@pytest.fixture()
def recipe_path(tmp_path, tiny_base):
    return write_tiny_recipe(tmp_path, tiny_base)


def strict_json_lines(path):
    """Every line parsed as strict JSON: NaN / Infinity are refused, as any JSON reader but Python's refuses them."""

    def refuse(constant):
        raise AssertionError(f"{path}: {constant} is not JSON")

    return [json.loads(line, parse_constant=refuse) for line in path.read_text().split("\n") if line]


def hidden_leftovers(output):
    return [p for p in output.rglob(".*") if p.name != ".lock"]


@pytest.mark.slow
def test_a_full_disk_at_a_checkpoint_names_it_and_keeps_the_previous_one(recipe_path, tmp_path, monkeypatch):
    from minilm.train import trainer

    real, calls = trainer.torch.save, []

    def disk_fills_up(obj, path):
        calls.append(path)
        if len(calls) == 2:  # the second checkpoint: its model is written, its trainer state is not
            raise OSError(errno.ENOSPC, "No space left on device")
        real(obj, path)

    monkeypatch.setattr(trainer.torch, "save", disk_fills_up)
    out = tmp_path / "out"
    with pytest.raises(
        OSError,
        match=r"cannot write .*checkpoints/step-0000004: No space left on device; .*"
        r"training stopped after step 4; last good checkpoint: .*step-0000002",
    ):
        run_recipe(load_recipe(recipe_path), out, **QUIET)
    assert [p.name for p in checkpoints(out)] == ["step-0000002"]
    assert SentenceEncoder.from_pretrained(checkpoints(out)[0] / "model").encode("x").shape == (64,)
    assert not (out / "final").exists() and hidden_leftovers(out) == []


def test_log_lines_are_json_even_when_a_metric_is_nan(recipe_path, tmp_path, monkeypatch):
    from minilm.run import build as run

    monkeypatch.setattr(run, "make_evaluator", lambda *a, **k: lambda model: {"spearman": float("nan")})
    recipe = load_recipe(recipe_path, ["train.save_steps=0", "train.max_steps=2"])
    recipe.eval = {
        "task": "similarity",
        "data": recipe.data["train"],
        "format": "auto",
        "roles": {},
        "batch_size": 8,
        "limit": 0,
        "header": True,
        "columns": [],
        "corpus": "",
        "corpus_roles": {},
    }  # only fingerprinted: a stub
    run_recipe(recipe, tmp_path / "out", **QUIET)
    records = strict_json_lines(tmp_path / "out" / "log.jsonl")
    evals = [r for r in records if "eval" in r]
    assert evals[0] == {"step": 0, "eval": {"spearman": None}, "nonfinite": {"eval.spearman": "nan"}}
    assert [r["step"] for r in records if "loss" in r] == [1, 2]


@pytest.mark.slow
def test_checkpoints_are_built_under_a_temporary_name_of_this_process(recipe_path, tmp_path, monkeypatch):
    import os

    from minilm.util import io

    seen = []
    real = io.put_in_place
    monkeypatch.setattr(
        io, "put_in_place", lambda tmp, target: seen.append((tmp.name, target.name)) or real(tmp, target)
    )
    run_recipe(load_recipe(recipe_path, ["train.keep_checkpoints=1"]), tmp_path / "out", **QUIET)
    steps = [(tmp, target) for tmp, target in seen if target.startswith("step-")]
    assert [target for _, target in steps] == ["step-0000002", "step-0000004"]
    assert all(tmp.startswith(f".{target}.minilm-tmp-{os.getpid()}-") for tmp, target in steps)
    assert [p.name for p in checkpoints(tmp_path / "out")] == ["step-0000004"]  # the older one pruned
    assert hidden_leftovers(tmp_path / "out") == []


@pytest.mark.parametrize(
    "override",
    [
        "train.lr=nan",
        "train.lr=inf",
        "train.max_grad_norm=nan",
        "train.weight_decay=inf",
        "train.warmup_ratio=nan",
        "data.min_score=-inf",
    ],
)
def test_nonfinite_recipe_numbers_are_refused_by_key(recipe_path, override):
    from minilm.run.recipe import RecipeError

    key = override.split("=")[0].split(".")
    with pytest.raises(RecipeError, match=rf"\[{key[0]}\] {key[1]} must be a finite number"):
        load_recipe(recipe_path, [override])


@pytest.mark.slow
@pytest.mark.parametrize(
    "steps, message",
    [
        (6, r"step 2 \(epoch 0\): \w+ contains NaN or infinite values; the weights after step 1 overflow"),
        (1, r"after step 1 \(epoch 0\) the weights are finite but the model's embeddings are not"),
    ],
)
def test_a_learning_rate_that_blows_up_the_model_stops_the_run_and_saves_nothing(recipe_path, tmp_path, steps, message):
    """lr 1e10: step 1's loss, gradient norm and updated weights are all finite, but the weights are so large that
    the next forward pass overflows. Caught at the next step, or before the final save when there is none."""
    from minilm.train.trainer import TrainingDiverged

    out = tmp_path / "out"
    with pytest.raises(TrainingDiverged, match=message):
        run_recipe(load_recipe(recipe_path, ["train.lr=1e10", f"train.max_steps={steps}"]), out, **QUIET)
    assert not (out / "final").exists() and checkpoints(out) == []
    assert [r["step"] for r in strict_json_lines(out / "log.jsonl") if "loss" in r] == [1]


def test_a_step_that_makes_a_weight_nonfinite_keeps_the_last_good_checkpoint(recipe_path, tmp_path, monkeypatch):
    from minilm.train import trainer
    from minilm.train.trainer import TrainingDiverged

    real = trainer.AdamW.step

    def poisoned_step(self):
        real(self)
        self.calls = getattr(self, "calls", 0) + 1
        if self.calls == 3:
            with torch.no_grad():
                self.param_groups[0]["params"][0].view(-1)[7] = float("inf")

    monkeypatch.setattr(trainer.AdamW, "step", poisoned_step)
    out = tmp_path / "out"
    with pytest.raises(
        TrainingDiverged,
        match=r"step 3 .* non-finite .*Nothing from this step was saved; last good "
        r"checkpoint: .*step-0000002",
    ):
        run_recipe(load_recipe(recipe_path), out, **QUIET)
    assert [p.name for p in checkpoints(out)] == ["step-0000002"] and not (out / "final").exists()
    assert [r["step"] for r in strict_json_lines(out / "log.jsonl") if "loss" in r] == [1, 2]
    emb = SentenceEncoder.from_pretrained(checkpoints(out)[0] / "model").encode(["fine"])
    assert torch.isfinite(torch.from_numpy(emb)).all()


def final_weights(output):
    from safetensors.torch import load_file

    return load_file(output / "final" / "model.safetensors")


def assert_identical(a, b):
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture()
def interrupted(recipe_path, tmp_path, monkeypatch):
    """(straight run, run stopped after step 5 with checkpoints at steps 2 and 4)."""
    run_recipe(load_recipe(recipe_path), tmp_path / "straight", **QUIET)
    killed_after_step(monkeypatch, 5, lambda: run_recipe(load_recipe(recipe_path), tmp_path / "cut", **QUIET))
    assert [p.name for p in checkpoints(tmp_path / "cut")] == ["step-0000002", "step-0000004"]
    return tmp_path / "straight", tmp_path / "cut"


def resume(recipe_path, out):
    said = []
    run_recipe(load_recipe(recipe_path), out, resume=True, log=said.append)
    return said


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["trainer_state.pt", "model/model.safetensors", "model/config.json"])
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_one(recipe_path, interrupted, damage):
    straight, cut = interrupted
    path = cut / "checkpoints" / "step-0000004" / damage
    path.write_bytes(path.read_bytes()[:100])
    said = resume(recipe_path, cut)
    assert any(f"checkpoint {cut / 'checkpoints' / 'step-0000004'} is damaged" in line for line in said)
    assert any("resumed from" in line and "step-0000002" in line for line in said)
    assert_identical(final_weights(straight), final_weights(cut))
    assert [r["step"] for r in strict_json_lines(cut / "log.jsonl") if "loss" in r] == [1, 2, 3, 4, 5, 6]


@pytest.mark.slow
def test_every_checkpoint_damaged_is_an_error_naming_the_newest(recipe_path, interrupted):
    _, cut = interrupted
    for checkpoint in checkpoints(cut):
        (checkpoint / "trainer_state.pt").write_bytes(b"not a torch file")
    from minilm.loading.weights import CheckpointError

    with pytest.raises(
        CheckpointError,
        match=r"every checkpoint under .* is damaged \(newest step-0000004: "
        r".*trainer_state.pt is unreadable",
    ):
        resume(recipe_path, cut)


@pytest.mark.slow
def test_a_torn_last_log_line_is_dropped_on_resume(recipe_path, interrupted):
    straight, cut = interrupted
    with open(cut / "log.jsonl", "a") as f:
        f.write('{"step": 6, "epoch": 0, "lo')  # a kill in the middle of a write
    said = resume(recipe_path, cut)
    assert any("dropped a torn last line" in line for line in said)
    assert [r["step"] for r in strict_json_lines(cut / "log.jsonl") if "loss" in r] == [1, 2, 3, 4, 5, 6]
    assert_identical(final_weights(straight), final_weights(cut))


@pytest.mark.slow
def test_a_log_line_that_minilm_did_not_write_stops_the_resume_naming_it(recipe_path, interrupted):
    _, cut = interrupted
    lines = (cut / "log.jsonl").read_text().split("\n")
    lines[2] = "edited by hand"
    (cut / "log.jsonl").write_text("\n".join(lines))
    with pytest.raises(ValueError, match=rf"{cut / 'log.jsonl'}:3: not a JSON object"):
        resume(recipe_path, cut)
    assert "edited by hand" in (cut / "log.jsonl").read_text()  # left as it was
