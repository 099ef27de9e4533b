"""Mixed precision in the trainer, on the CPU (torch 2.13's CPU autocast runs bf16 and fp16 alike).

bf16 against float32, 10 steps of MNRL on a tiny model (2 layers, hidden 64), dropout off, lr 1e-3 (the weights move
~1 in norm, up to 5.5e-3 per element). Measured (1 thread, as here; 2 threads in brackets): per-step losses within
1.8e-4 relative (1.9e-4), the weights' distance from the float32 run 2.26% (2.30%) of the float32 run's own update
(norm over all weights), probe embeddings' cosine to the float32 run's >= 0.9999998. Tolerances: 1e-3 (5x the
measured loss gap), 5% (2x) and cosine 0.9999. Why these: bf16 keeps 8 significant bits (unit roundoff 2^-9 ~
2e-3), so each matmul's output, hence each gradient, carries relative errors of that order; AdamW divides the
gradient by its running RMS, so the update direction inherits them at a few percent, and no more (float32 weights and
moments: the errors do not accumulate from step to step beyond that). The element-wise maximum difference is no
measure: for a weight whose gradient is tiny, Adam's update is about lr in magnitude with a sign set by rounding, so
single elements differ by up to the whole update (measured 0.5x) while the model as a whole agrees.

fp16's loss scaler: skip / back-off / growth on injected infinite gradients (a parameter hook), a collapsing scale
stopping the run at step 50 with nothing saved, and a resume that continues bit for bit (scale and its counters in
the checkpoint).
"""

import json

import pytest
import torch
from helpers import killed_after_step, write_tiny_recipe

from minilm.encoder import SentenceEncoder
from minilm.losses import multiple_negatives_ranking_loss as mnrl
from minilm.run.build import run_recipe
from minilm.run.recipe import load_recipe
from minilm.train import precision as precision_module
from minilm.train import trainer as trainer_module
from minilm.train.precision import LossScaler, Precision, as_float32, make_precision, tf32_matmuls
from minilm.train.samplers import RandomBatchSampler
from minilm.train.step import GradCache, step
from minilm.train.trainer import TrainConfig, TrainData, Trainer, TrainingDiverged

TOPICS = ["cats", "dogs", "rain", "sun", "cars", "trains", "food", "music", "tea", "maps"]
ROWS = [
    (f"question {i} about {TOPICS[i % 10]}?", f"answer {i} on {TOPICS[i % 10]}" + " indeed" * (i % 4))
    for i in range(80)
]
PROBE = [row[0] for row in ROWS[:16]] + [row[1] for row in ROWS[:16]]
QUIET = {"log": lambda _: None}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_trainer(base, precision="fp32", steps=10, lr=1e-3, output_dir=None, **config):
    model = SentenceEncoder.from_pretrained(base)
    data = TrainData([list(column) for column in zip(*ROWS)])
    settings = TrainConfig(batch_size=8, max_steps=steps, lr=lr, dropout=False, precision=precision, **config)
    return Trainer(
        model, mnrl, data, RandomBatchSampler(len(data), 8, seed=0), settings, output_dir=output_dir, **QUIET
    )


def logged(trainer) -> list[dict]:
    """Every step record the trainer logs, kept in memory."""
    records = []
    original = trainer.write_log

    def keep(record):
        records.append(record)
        original(record)

    trainer.write_log = keep
    return records


def flat_weights(model) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def inject_inf(trainer, steps: set | None = None):
    """Make the gradient of one weight infinite at the given (1-based) steps, every step when None."""
    weight = trainer.model.bert.embeddings.norm.weight
    weight.register_hook(
        lambda g: torch.full_like(g, float("inf")) if steps is None or trainer.step + 1 in steps else g
    )


# ------------------------------------------------------------------------------------------- fp32 and bf16


def test_fp32_steps_run_without_autocast_or_scaler(tiny_base, monkeypatch):
    trainer = make_trainer(tiny_base, steps=2)
    assert trainer.precision is None and trainer.scaler is None
    real_autocast, real_step, in_step = torch.autocast, Trainer.train_step, []

    def autocast(*args, **kwargs):
        assert not in_step, "an fp32 step entered an autocast context"
        return real_autocast(*args, **kwargs)

    def train_step(self, rows):
        in_step.append(1)
        try:
            return real_step(self, rows)
        finally:
            in_step.clear()

    monkeypatch.setattr(torch, "autocast", autocast)
    monkeypatch.setattr(Trainer, "train_step", train_step)
    trainer.train()
    assert trainer.step == 2


def test_bf16_ten_steps_track_the_float32_run(tiny_base):
    start = flat_weights(SentenceEncoder.from_pretrained(tiny_base))
    runs = {}
    for name in ("fp32", "bf16"):
        trainer = make_trainer(tiny_base, name)
        records = logged(trainer)
        trainer.train()
        runs[name] = (
            flat_weights(trainer.model),
            [r["loss"] for r in records if "loss" in r],
            trainer.model.encode(PROBE, convert_to_tensor=True),
        )
    (w32, loss32, emb32), (w16, loss16, emb16) = runs["fp32"], runs["bf16"]
    assert len(loss32) == len(loss16) == 10
    assert max(abs(a - b) / abs(a) for a, b in zip(loss32, loss16)) < 1e-3
    moved = (w32 - start).norm()
    assert moved > 0.5  # the run really trained
    assert (w16 - w32).norm() < 0.05 * moved
    assert torch.nn.functional.cosine_similarity(emb32, emb16).min() > 0.9999
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # master weights stay float32
    assert all(s["exp_avg"].dtype == torch.float32 for s in trainer.optimizer.state.values())


def test_the_loss_sees_float32_embeddings_under_autocast(tiny_base):
    seen = []

    def spy(*embeddings, **kwargs):
        seen.extend(e.dtype for e in embeddings)
        return mnrl(*embeddings, **kwargs)

    model = SentenceEncoder.from_pretrained(tiny_base)
    columns = [[r[0] for r in ROWS[:8]], [r[1] for r in ROWS[:8]]]
    for cache in (None, GradCache(rows=3)):
        step(model, columns, spy, cache=cache, precision=Precision("bf16", torch.device("cpu")))
    assert set(seen) == {torch.float32}


def test_the_gradient_cache_under_bf16_gives_the_plain_bf16_step(tiny_base):
    model = SentenceEncoder.from_pretrained(tiny_base)
    columns = [[r[0] for r in ROWS[:12]], [r[1] for r in ROWS[:12]]]
    bf16 = Precision("bf16", torch.device("cpu"))
    results = []
    for cache in (None, GradCache(rows=4)):
        model.zero_grad()
        loss = step(model, columns, mnrl, cache=cache, precision=bf16).loss
        results.append((loss, torch.cat([p.grad.flatten() for p in model.parameters()])))
    (plain_loss, plain), (cached_loss, cached) = results
    # the same bf16 products over differently sized batches: equal up to bf16 rounding
    assert abs(plain_loss - cached_loss) < 1e-2 * plain_loss
    assert torch.nn.functional.cosine_similarity(plain, cached, dim=0) > 0.999


def test_as_float32_reaches_nested_outputs():
    half = torch.ones(2, dtype=torch.bfloat16)
    out = as_float32({"layers": {0: [half, half]}, "n": 3, "ids": torch.ones(2, dtype=torch.long)})
    assert out["layers"][0][1].dtype == torch.float32 and out["ids"].dtype == torch.long and out["n"] == 3


def test_make_precision_is_none_for_fp32_and_refuses_what_the_device_lacks(monkeypatch):
    assert make_precision("fp32", torch.device("cpu")) is None
    assert make_precision("fp16", torch.device("cpu")).scaler is not None
    assert make_precision("bf16", torch.device("cpu")).scaler is None
    monkeypatch.setattr("minilm.util.devices._cpu_autocast_runs", lambda dtype: False)
    with pytest.raises(ValueError, match=r"\[train\] precision 'bf16' is not supported on cpu; it runs fp32"):
        make_precision("bf16", torch.device("cpu"))


def test_tf32_switch_is_restored_and_untouched_when_off():
    before = torch.backends.cuda.matmul.allow_tf32
    with tf32_matmuls(False):
        assert torch.backends.cuda.matmul.allow_tf32 == before
    with tf32_matmuls(True):
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert torch.backends.cuda.matmul.allow_tf32 == before


def test_progress_run_json_and_card_say_what_the_run_ran_on(tmp_path, tiny_base, capsys, monkeypatch):
    import sys

    from minilm.train import trainer

    monkeypatch.setattr(trainer, "_STDERR", sys.stderr)  # the progress line's stream, as this test captures it
    path = write_tiny_recipe(tmp_path, tiny_base, steps=2, train='precision = "bf16"')
    run_recipe(load_recipe(path), tmp_path / "out", **QUIET)
    first = next(line for line in capsys.readouterr().err.splitlines() if line.startswith("train "))
    assert f"on cpu, bf16 autocast (master weights float32), torch {torch.__version__}, CUDA none" in first
    record = json.loads((tmp_path / "out" / "run.json").read_text(encoding="utf-8"))
    assert record["environment"]["precision"] == "bf16" and record["environment"]["device"] == "cpu"
    card = (tmp_path / "out" / "final" / "README.md").read_text(encoding="utf-8")
    assert "### Training Environment\n- Device: cpu\n- Precision: bf16 (the forward under autocast in bfloat16" in card
    assert "- `precision`: bf16" in card


# ------------------------------------------------------------------------------------------- fp16's loss scale


def test_the_scaler_backs_off_skips_and_grows():
    scaler = LossScaler(growth_interval=3)
    assert scaler.scale == 2.0**16
    assert [scaler.update(True) for _ in range(2)] == [False, False] and scaler.scale == 2.0**16
    scaler.update(True)
    assert scaler.scale == 2.0**17 and scaler.good_steps == 0  # three good steps in a row: doubled
    assert scaler.update(False) and scaler.scale == 2.0**16 and scaler.skips_in_row == 1
    scaler.update(True)
    scaler.update(True)
    assert scaler.scale == 2.0**16 and scaler.good_steps == 2  # the count restarted after the skip
    assert scaler.scale_loss(torch.tensor(0.5)).item() == 2.0**15
    params = [torch.zeros(2, requires_grad=True)]
    params[0].grad = torch.tensor([2.0**16, 3.0 * 2**16])
    scaler.unscale_(params)
    assert params[0].grad.tolist() == [1.0, 3.0]
    copy = LossScaler()
    copy.load_state_dict(scaler.state_dict())
    assert copy.state_dict() == scaler.state_dict() == {"scale": 2.0**16, "good_steps": 2, "skips_in_row": 0}


def test_the_scale_must_be_a_power_of_two():
    with pytest.raises(ValueError, match="the loss scale must be a power of two"):
        LossScaler(scale=1000.0)


def test_fp16_trains_on_the_cpu_with_its_scale_logged(tiny_base):
    trainer = make_trainer(tiny_base, "fp16", steps=3)
    before = flat_weights(trainer.model)
    records = logged(trainer)
    trainer.train()
    steps = [r for r in records if "loss" in r]
    assert [r["loss_scale"] for r in steps] == [2.0**16] * 3 and not any(r.get("skipped") for r in steps)
    after = flat_weights(trainer.model)
    assert torch.isfinite(after).all() and (after - before).norm() > 0.1


def test_an_overflowing_step_is_skipped_and_the_scale_halved(tiny_base):
    trainer = make_trainer(tiny_base, "fp16", steps=5)
    inject_inf(trainer, {3})
    records = logged(trainer)
    trainer.train()
    steps = [r for r in records if "loss" in r]
    assert [r.get("skipped", False) for r in steps] == [False, False, True, False, False]
    assert [r["loss_scale"] for r in steps] == [2.0**16] * 3 + [2.0**15] * 2
    assert steps[2]["grad_norm"] == float("inf")  # log.jsonl holds null and the reason
    # no update: AdamW's step count and the schedule did not advance for it
    assert {s["step"] for s in trainer.optimizer.state.values()} == {4}
    assert trainer.schedule.last_step == 4 and trainer.step == 5
    assert torch.isfinite(flat_weights(trainer.model)).all()


def test_the_scale_grows_after_a_run_of_good_steps(tiny_base):
    trainer = make_trainer(tiny_base, "fp16", steps=5)
    trainer.scaler.growth_interval = 2
    records = logged(trainer)
    trainer.train()
    assert [r["loss_scale"] for r in records if "loss" in r] == [2.0**16, 2.0**16, 2.0**17, 2.0**17, 2.0**18]


def test_a_collapsing_scale_stops_the_run_naming_the_step_and_saves_nothing(tiny_base, tmp_path):
    out = tmp_path / "out"
    trainer = make_trainer(tiny_base, "fp16", steps=60, output_dir=out)
    start = flat_weights(trainer.model)
    inject_inf(trainer)
    with pytest.raises(
        TrainingDiverged,
        match=r"step 50 \(epoch \d+\): the fp16 loss scale collapsed: steps 1 to 50 "
        r"\(50 in a row\) .*down to scale 5.82077e-11; .*bf16",
    ):
        trainer.train()
    assert torch.equal(flat_weights(trainer.model), start)  # no weight was ever updated
    assert not (out / "final").exists()
    lines = [json.loads(line) for line in (out / "log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["step"] for r in lines if "loss" in r] == list(range(1, 50))
    assert all(r["skipped"] and r["grad_norm"] is None for r in lines if "loss" in r)


def test_a_forward_overflow_under_fp16_is_a_skipped_step(tiny_base, monkeypatch):
    from minilm.util.checks import NonFiniteError

    trainer = make_trainer(tiny_base, "fp16", steps=3)
    real = trainer_module.step

    def overflowing(*args, **kwargs):
        if trainer.step + 1 == 2:
            raise NonFiniteError("anchors contains NaN or infinite values")
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "step", overflowing)
    records = logged(trainer)
    trainer.train()
    assert [r.get("skipped", False) for r in records if "loss" in r] == [False, True, False]


@pytest.fixture()
def overflow_at_step_two(monkeypatch):
    """Every trainer of the test gets an infinite gradient at step 2 (its unscale sees the step being taken)."""
    current = {}
    real_step, real_unscale = trainer_module.Trainer.train_step, precision_module.LossScaler.unscale_

    def train_step(self, rows):
        current["step"] = self.step + 1
        return real_step(self, rows)

    def unscale_(self, params):
        real_unscale(self, params)
        if current.get("step") == 2:
            next(p for p in params if p.grad is not None).grad.fill_(float("inf"))

    monkeypatch.setattr(trainer_module.Trainer, "train_step", train_step)
    monkeypatch.setattr(precision_module.LossScaler, "unscale_", unscale_)


def test_an_fp16_run_resumes_bit_for_bit_with_its_scale(tmp_path, tiny_base, monkeypatch, overflow_at_step_two):
    from safetensors.torch import load_file

    from minilm.train.checkpoints import checkpoints

    train = 'precision = "fp16"\nsave_steps = 2\nkeep_checkpoints = 5'
    path = write_tiny_recipe(tmp_path, tiny_base, steps=6, train=train)
    run_recipe(load_recipe(path), tmp_path / "straight", **QUIET)
    killed_after_step(monkeypatch, 5, lambda: run_recipe(load_recipe(path), tmp_path / "cut", **QUIET))
    assert [p.name for p in checkpoints(tmp_path / "cut")] == ["step-0000002", "step-0000004"]
    state = torch.load(tmp_path / "cut" / "checkpoints" / "step-0000004" / "trainer_state.pt", weights_only=False)
    assert state["precision"] == {"name": "fp16", "scaler": {"scale": 2.0**15, "good_steps": 2, "skips_in_row": 0}}
    run_recipe(load_recipe(path), tmp_path / "cut", resume=True, **QUIET)
    straight, resumed = (load_file(tmp_path / d / "final" / "model.safetensors") for d in ("straight", "cut"))
    assert straight.keys() == resumed.keys() and all(torch.equal(straight[k], resumed[k]) for k in straight)

    def scales(directory):
        lines = (tmp_path / directory / "log.jsonl").read_text(encoding="utf-8").splitlines()
        return [(r["step"], r["loss_scale"], r.get("skipped", False)) for r in map(json.loads, lines) if "loss" in r]

    assert scales("straight") == scales("cut")
    assert [s[1:] for s in scales("straight")] == [(2.0**16, False), (2.0**16, True)] + [(2.0**15, False)] * 4


def test_a_checkpoint_of_another_precision_is_refused(tmp_path, tiny_base):
    from minilm.train.checkpoints import read_state

    trainer = make_trainer(tiny_base, "fp16", steps=2, output_dir=tmp_path / "out", save_steps=1)
    trainer.train()
    state = read_state(tmp_path / "out" / "checkpoints" / "step-0000001")
    with pytest.raises(ValueError, match=r"trained with \[train\] precision 'fp16', this run has 'fp32'"):
        make_trainer(tiny_base, "fp32", steps=2).load_state_dict(state)
