"""The research examples in examples/losses/, loaded the way a user loads them (a file path, no edit to minilm):
float64 loop oracles, gradcheck, and the learnable temperature trained, resumed and gradient-cached.

Tolerances: float64 loss values and statistics vs the oracle rtol 1e-9 (same formula, summed in another order);
gradcheck at its float64 defaults. Training: bit-identical for resume (same seed, CPU); gradient cache vs plain
(float32, dropout off) loss rtol 1e-6 and every gradient, the temperature's included, within 1e-5 relative.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from helpers import killed_after_step, tiny_encoder
from safetensors.torch import load_file

from minilm.losses.inputs import needs_of, split_output
from minilm.run.build import run_recipe
from minilm.run.recipe import load_recipe
from minilm.run.registry import make_loss, resolve_loss
from minilm.train.step import loss_backward

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "losses"
INFONCE = f"{EXAMPLES / 'learnable_temperature.py'}:LearnableTemperatureInfoNCE"
MASKED = f"{EXAMPLES / 'masked_negatives.py'}:masked_in_batch_loss"


def _emb(n, d=5, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def o_cos(u, v):
    dot = sum(x * y for x, y in zip(u, v))
    return dot / (max(math.sqrt(sum(x * x for x in u)), 1e-12) * max(math.sqrt(sum(y * y for y in v)), 1e-12))


def o_infonce(anchors, *columns, temperature):
    candidates = [c for column in columns for c in column]
    total = 0.0
    for i, a in enumerate(anchors):
        logits = [o_cos(a, c) / temperature for c in candidates]
        top = max(logits)
        total += top + math.log(sum(math.exp(z - top) for z in logits)) - logits[i]
    return total / len(anchors)


def o_masked(anchors, *columns, scale, margin):
    """(loss, masked fraction of all negatives, masked fraction of the rows' own hard negatives)."""
    b = len(anchors)
    candidates = [c for column in columns for c in column]
    total, masked, hard_masked = 0.0, 0, 0
    for i, a in enumerate(anchors):
        positive = o_cos(a, candidates[i])
        kept = []
        for j, c in enumerate(candidates):
            sim = o_cos(a, c)
            if j != i and sim > positive - margin:
                masked += 1
                hard_masked += j >= b and j % b == i  # column k's row i: anchor i's own hard negative
            else:
                kept.append(scale * sim)
        top = max(kept)
        total += top + math.log(sum(math.exp(z - top) for z in kept)) - scale * positive
    hard = b * (len(columns) - 1)
    return total / b, masked / (b * len(candidates) - b), hard_masked / hard if hard else None


@pytest.mark.slow
@pytest.mark.parametrize("negatives", [0, 2])
@pytest.mark.parametrize("temperature", [0.05, 0.3])
def test_learnable_temperature_infonce_matches_oracle(temperature, negatives):
    loss = make_loss(INFONCE, {"init_temperature": temperature}).double()
    assert needs_of(loss).in_batch_negatives
    cols = [_emb(6, seed=s) for s in range(2 + negatives)]
    value, stats = split_output(loss(*cols))
    assert stats["temperature"] == pytest.approx(temperature, rel=1e-7)  # its log was stored in float32
    temperature = stats["temperature"]
    assert value.item() == pytest.approx(o_infonce(*[c.tolist() for c in cols], temperature=temperature), rel=1e-9)
    assert torch.autograd.gradcheck(lambda *x: loss(*x)[0], [c.clone().requires_grad_() for c in cols])
    # d loss / d log_temperature, against a central difference of the oracle
    (grad,) = torch.autograd.grad(loss(*cols)[0], [loss.log_temperature])
    h = 1e-6
    numeric = (
        o_infonce(*[c.tolist() for c in cols], temperature=temperature * math.exp(h))
        - o_infonce(*[c.tolist() for c in cols], temperature=temperature * math.exp(-h))
    ) / (2 * h)
    assert grad.item() == pytest.approx(numeric, rel=1e-6)


def test_learnable_temperature_refuses_bad_settings():
    with pytest.raises(ValueError, match="init_temperature must lie in"):
        make_loss(INFONCE, {"init_temperature": 2.0})
    with pytest.raises(ValueError, match="init_temperature must be a finite positive number"):
        make_loss(INFONCE, {"init_temperature": -0.1})


@pytest.mark.slow
@pytest.mark.parametrize("negatives", [0, 1, 2])
@pytest.mark.parametrize("margin", [-0.2, 0.1, 0.5])
def test_masked_in_batch_loss_matches_oracle(margin, negatives):
    loss = resolve_loss(MASKED)
    cols = [_emb(7, seed=10 + s) for s in range(2 + negatives)]
    value, stats = split_output(loss(*cols, scale=20.0, margin=margin))
    want, fraction, hard = o_masked(*[c.tolist() for c in cols], scale=20.0, margin=margin)
    assert value.item() == pytest.approx(want, rel=1e-9)
    assert stats["masked_fraction"] == pytest.approx(fraction)
    assert stats.get("masked_hard_negatives") == (pytest.approx(hard) if hard is not None else None)
    assert torch.autograd.gradcheck(
        lambda *x: loss(*x, scale=20.0, margin=margin)[0], [c.clone().requires_grad_() for c in cols]
    )


def test_masking_nothing_is_mnrl():
    from minilm.losses import multiple_negatives_ranking_loss

    cols = [_emb(5, seed=s) for s in range(3)]
    value, stats = resolve_loss(MASKED)(*cols, margin=-3.0)  # cosines differ by at most 2: nothing is masked
    assert stats["masked_fraction"].item() == 0.0
    assert value.item() == pytest.approx(multiple_negatives_ranking_loss(*cols).item(), rel=1e-12)


# ------------------------------------------------------------------------------------------- training with it

RECIPE = """
name = "temperature"
[model]
base = "{base}"
[data]
train = "{data}"
roles = {{ anchor = "anchor", positive = "positive", negative = "negative" }}
[loss]
name = "{loss}"
init_temperature = 0.1
[train]
batch_size = 8
max_steps = 6
save_steps = 2
keep_checkpoints = 5
loss_lr = 1e-2
"""


@pytest.fixture()
def recipe_path(tmp_path, tiny_base):
    data = tmp_path / "triplets.csv"
    rows = [
        f"question {i} about topic {i % 7},answer {i} on topic {i % 7},note {i} on topic {(i + 3) % 7}"
        for i in range(40)
    ]
    data.write_text("anchor,positive,negative\n" + "\n".join(rows) + "\n", encoding="utf-8")
    path = tmp_path / "temperature.toml"
    path.write_text(RECIPE.format(base=tiny_base, data=data, loss=INFONCE), encoding="utf-8")
    return path


def _logged(output: Path) -> list[dict]:
    return [json.loads(line) for line in (output / "log.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_the_temperature_moves_and_is_logged(recipe_path, tmp_path):
    run_recipe(load_recipe(recipe_path), tmp_path / "out", log=lambda _: None)
    steps = [r for r in _logged(tmp_path / "out") if "loss" in r]
    temperatures = [r["stats"]["temperature"] for r in steps]
    assert len(temperatures) == 6 and all(isinstance(t, float) for t in temperatures)
    assert temperatures[0] != pytest.approx(0.1, rel=1e-6)  # logged after the first update (it starts at 0.1)
    assert abs(temperatures[-1] / temperatures[0] - 1) > 0.01  # loss_lr 1e-2 for 5 updates: ~5 % in log space
    assert {"positive_similarity", "hardest_negative_similarity", "accuracy"} <= set(steps[0]["stats"])


@pytest.mark.slow
def test_kill_and_resume_gives_identical_weights_and_temperature(recipe_path, tmp_path, monkeypatch):
    from minilm.train import trainer

    finished = {}
    original_finish = trainer.Trainer.finish

    def keep_loss_state(self):
        finished[self.output_dir.name] = {k: v.clone() for k, v in self.parts["loss"].module.state_dict().items()}
        original_finish(self)

    monkeypatch.setattr(trainer.Trainer, "finish", keep_loss_state)
    run_recipe(load_recipe(recipe_path), tmp_path / "straight", log=lambda _: None)
    killed_after_step(
        monkeypatch, 5, lambda: run_recipe(load_recipe(recipe_path), tmp_path / "resumed", log=lambda _: None)
    )
    run_recipe(load_recipe(recipe_path), tmp_path / "resumed", resume=True, log=lambda _: None)

    a, b = (load_file(tmp_path / name / "final" / "model.safetensors") for name in ("straight", "resumed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(finished["straight"]["log_temperature"], finished["resumed"]["log_temperature"])
    assert finished["straight"]["log_temperature"].item() != pytest.approx(math.log(0.1))  # it did move
    logged = [
        [r["stats"]["temperature"] for r in _logged(tmp_path / name) if "loss" in r] for name in ("straight", "resumed")
    ]
    assert logged[0] == logged[1]


@pytest.mark.slow
def test_gradient_cache_equals_the_plain_step(minilm_dir):
    from minilm.loading.tokenizer import WordPieceTokenizer

    model = tiny_encoder(WordPieceTokenizer.from_dir(minilm_dir, 64))  # eval mode: dropout off
    columns = [
        [f"question {i} about topic {i % 3}" + " please" * (i % 4) for i in range(9)],
        [f"answer {i} on topic {i % 3}" for i in range(9)],
        [f"note {i} elsewhere" for i in range(9)],
    ]
    results = []
    for mini_batch_size in (None, 4):
        loss_fn = make_loss(INFONCE, {"init_temperature": 0.07}, context={"embedding_dim": 32})
        model.zero_grad(set_to_none=True)
        loss = loss_backward(model, columns, loss_fn, mini_batch_size)
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        results.append((loss, grads, loss_fn.log_temperature.grad.clone()))
    (plain, plain_grads, plain_t), (cached, cached_grads, cached_t) = results
    assert cached.item() == pytest.approx(plain.item(), rel=1e-6)
    assert plain_t.abs().item() > 0
    assert (cached_t - plain_t).abs().item() <= 1e-5 * plain_t.abs().item()
    assert plain_grads.keys() == cached_grads.keys()
    for name, want in plain_grads.items():
        assert (cached_grads[name] - want).norm() <= 1e-5 * want.norm() + 1e-8, name


def test_the_shipped_sweep_is_checked_in_full_without_a_model(monkeypatch, tmp_path):
    from minilm.encoder import SentenceEncoder
    from minilm.sweep.runner import load_sweep

    monkeypatch.setattr(SentenceEncoder, "from_pretrained", lambda *a, **k: pytest.fail("model loaded"))
    sweep = load_sweep(EXAMPLES.parent / "sweeps" / "loss_comparison.toml", tmp_path)
    assert [c.label for c in sweep.configs] == ["mnrl", "triplet", "infonce-learned-t", "masked"]
    assert len(sweep.runs) == 12 and {r.recipe.data["sampler"] for r in sweep.runs} == {"no_duplicates"}
    assert {r.recipe.data["train"] for r in sweep.runs} == {
        str(EXAMPLES.parents[1] / "recipes" / "data" / "default_triplets.csv")
    }


# ------------------------------------------------------------------------------------------- cross-batch memory (XBM)

XBM = f"{EXAMPLES / 'cross_batch_memory.py'}:cross_batch_memory_loss"


def o_xbm(anchors, positives, memory, scale):
    """The loop oracle: mean_i -log softmax_i(scale * cos(a_i, c)) over c = positives, then the memory's rows."""
    candidates = list(positives) + list(memory)
    total = 0.0
    for i, a in enumerate(anchors):
        logits = [scale * o_cos(a, c) for c in candidates]
        top = max(logits)
        total += top + math.log(sum(math.exp(z - top) for z in logits)) - logits[i]
    return total / len(anchors)


def test_xbm_loss_matches_its_oracle_and_is_mnrl_without_memory():
    from minilm.losses import multiple_negatives_ranking_loss

    loss_fn = resolve_loss(XBM)
    a, p, m = _emb(5, seed=1), _emb(5, seed=2), _emb(7, seed=3)
    loss, stats = split_output(loss_fn(a, p, memory=m, scale=7.0))
    assert loss.item() == pytest.approx(o_xbm(a.tolist(), p.tolist(), m.tolist(), 7.0), rel=1e-9)
    assert stats == {"memory_size": 7.0}
    empty = split_output(loss_fn(a, p, memory=None, scale=20.0))[0]
    assert empty.item() == pytest.approx(multiple_negatives_ranking_loss(a, p, scale=20.0).item(), rel=1e-12)
    a, p, m = (t.clone().requires_grad_() for t in (a, p, m))
    assert torch.autograd.gradcheck(lambda a, p, m: split_output(loss_fn(a, p, memory=m, scale=3.0))[0], (a, p, m))


def test_xbm_is_refused_by_name_under_torchrun_and_its_memory_setting_checked():
    from minilm.train.config import TrainConfig

    extension = needs_of(resolve_loss(XBM)).extensions[0]
    assert "keeps a memory of past batches in one process" in extension.refusal("'xbm'", TrainConfig(), 2)
    assert extension.refusal("'xbm'", TrainConfig(), 1) is None
    with pytest.raises(ValueError, match="memory_batches must be a positive int, got 0"):
        extension(0)


XBM_RECIPE = """name = "xbm"
[model]
base = "{base}"
[data]
train = "{data}"
roles = {{ anchor = "anchor", positive = "positive" }}
sampler = "no_duplicates"
[loss]
name = "{loss}"
memory_batches = 2
[train]
batch_size = 8
max_steps = 6
save_steps = 1
keep_checkpoints = 10
"""


@pytest.mark.slow  # three training processes (~9 s of CPU); the XBM oracle test stays in the fast tier
@pytest.mark.subprocess
def test_xbm_trains_from_a_recipe_and_resumes_bit_identically_after_sigkill(tmp_path, tiny_base):
    """The queue fills (memory_size 0, 8, 16, 16, ...), is checkpointed at every step, and a run SIGKILLed mid-way
    and resumed ends with the same weights, the same queue and the same log as one never interrupted."""
    import os
    import signal
    import subprocess
    import sys
    import time

    data = tmp_path / "pairs.csv"
    rows = [f"question {i} about topic {i % 7},answer {i} on topic {i % 7} in words" for i in range(48)]
    data.write_text("anchor,positive\n" + "\n".join(rows) + "\n", encoding="utf-8")
    recipe = tmp_path / "xbm.toml"
    recipe.write_text(XBM_RECIPE.format(base=tiny_base, data=data, loss=XBM), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def train(output: Path, *extra: str) -> subprocess.Popen:
        command = [sys.executable, "-m", "minilm", "train", str(recipe), "--output", str(output), *extra]
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    straight = train(tmp_path / "straight")
    assert straight.wait(timeout=300) == 0, straight.stderr.read()
    killed = train(tmp_path / "killed")
    deadline = time.monotonic() + 300
    while not (tmp_path / "killed" / "checkpoints" / "step-0000003").exists():  # at least three steps in, not finished
        assert killed.poll() is None and time.monotonic() < deadline, "the run ended before it could be killed"
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    resumed = train(tmp_path / "killed", "--resume")
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()

    a, b = (load_file(tmp_path / name / "final" / "model.safetensors") for name in ("straight", "killed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    states = [
        torch.load(tmp_path / name / "checkpoints" / "step-0000005" / "trainer_state.pt", weights_only=False)
        for name in ("straight", "killed")
    ]
    queues = [state["extensions"]["xbm"] for state in states]
    assert queues[0].keys() == queues[1].keys() == {"0", "1"}  # memory_batches = 2: the last two batches
    assert all(torch.equal(queues[0][k], queues[1][k]) for k in queues[0])
    logged = [[r for r in _logged(tmp_path / name) if "loss" in r] for name in ("straight", "killed")]
    assert logged[0] == logged[1]
    assert [r["stats"]["memory_size"] for r in logged[0]] == [0.0, 8.0, 16.0, 16.0, 16.0, 16.0]


def test_the_shipped_xbm_recipe_is_checked_in_full_without_a_model(monkeypatch):
    from minilm.encoder import SentenceEncoder

    monkeypatch.setattr(SentenceEncoder, "from_pretrained", lambda *a, **k: pytest.fail("model loaded"))
    recipe = load_recipe(EXAMPLES.parent / "recipes" / "cross_batch_memory.toml")
    assert recipe.loss_needs.extensions[0].name == "xbm" and recipe.loss["memory_batches"] == 4
    assert recipe.data["sampler"] == "no_duplicates"
    with pytest.raises(ValueError, match="memory_batches must be a positive int, got 0"):
        load_recipe(EXAMPLES.parent / "recipes" / "cross_batch_memory.toml", ["loss.memory_batches=0"])
