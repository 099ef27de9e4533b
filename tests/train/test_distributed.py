"""Training with several processes (torch.distributed, gloo over 127.0.0.1) against one process.

Real processes: torch.multiprocessing (spawn) for the numerical checks, torchrun as a subprocess for the failure and
resume checks. Tiny random encoder (2 layers, hidden 64), dropout off, MNRL with hard negatives.
Tolerances (float32): losses relative 1e-5; each parameter gradient ||dist - single|| <= 5e-5 ||single|| + 1e-8
(each process packs and groups its own half of the batch, so summation order differs from the single process, and
CoSENT's scale-20 exponentials amplify that rounding to ~1.4e-5; the floor covers gradients that are 0 in exact
arithmetic and carry only rounding noise); weights after 10 steps
max |dist - single| <= 1e-5 (lr 1e-3, so the weights move ~1e-2: the check is 1000x finer than the update).
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers import make_tiny_checkpoint
from safetensors.torch import load_file

from minilm.encoder import SentenceEncoder
from minilm.losses import cosent_loss
from minilm.losses import multiple_negatives_ranking_loss as mnrl
from minilm.run.build import run_recipe
from minilm.run.recipe import RecipeError, load_recipe
from minilm.train import distributed
from minilm.train.checkpoints import checkpoints
from minilm.train.samplers import NoDuplicatesBatchSampler, RandomBatchSampler
from minilm.train.step import loss_backward

WORLD, GLOBAL_BATCH, LOCAL_BATCH, STEPS = 2, 32, 16, 10
TOPICS = ["cats", "dogs", "rain", "sun", "cars", "trains", "food", "music", "tea", "maps"]
ROWS = [
    (
        f"question {i} about {TOPICS[i % 10]}?",
        f"answer {i} on {TOPICS[i % 10]}" + " indeed" * (i % 4),
        f"unrelated note {i} on {TOPICS[(i + 3) % 10]}",
    )
    for i in range(160)
]
BATCH = [list(column) for column in zip(*ROWS[:GLOBAL_BATCH])]  # anchors, positives, negatives: one global batch
SCORES = torch.linspace(0, 1, GLOBAL_BATCH)  # for CoSENT on (anchors, positives): targets are gathered too
RECIPE = """
name = "dist"
[model]
base = "{base}"
[data]
train = "{data}"
roles = {{ anchor = "anchor", positive = "positive", negative = "negative" }}
[loss]
name = "mnrl"
[train]
batch_size = 32
max_steps = 10
lr = 1e-3
dropout = false
gather_across_devices = true
distributed_timeout_s = 30.0
save_steps = 2
keep_checkpoints = 5
"""
# A loss with a parameter (the example's learnable temperature), saved beside final/ so the runs can be compared.
SAVED_TEMPERATURE = f"""
import sys
sys.path.insert(0, {str(Path(__file__).resolve().parents[2] / "examples" / "losses")!r})
from learnable_temperature import LearnableTemperatureInfoNCE


class Saved(LearnableTemperatureInfoNCE):
    part_of_model = True
"""
TEMPERATURE = ['loss={name="saved_temperature.py:Saved", init_temperature=0.1}', "train.loss_lr=1e-2"]
ENV = {"MASTER_ADDR": "127.0.0.1", "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def grads(model) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.named_parameters()}


def assert_close_grads(got: dict, want: dict) -> None:
    for name in want:
        err = (got[name] - want[name]).norm()
        assert err <= 5e-5 * want[name].norm() + 1e-8, (name, err.item(), want[name].norm().item())


def max_weight_diff(a: Path, b: Path) -> float:
    wa, wb = load_file(a / "final" / "model.safetensors"), load_file(b / "final" / "model.safetensors")
    assert wa.keys() == wb.keys()
    return max((wa[k] - wb[k]).abs().max().item() for k in wa)


# ------------------------------------------------------------------------------------------- the spawned ranks


def rank_worker(rank: int, port: int, base: str, recipe: str, out: str) -> None:
    """One rank: steps on its half of BATCH (plain, gathered, gathered + cached), then two 10-step recipe runs."""
    os.environ.update(ENV, MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=timedelta(seconds=60))
    out = Path(out)
    model = SentenceEncoder.from_pretrained(base)  # eval mode: dropout off
    ddp = distributed.wrap(model)
    mine = slice(rank * LOCAL_BATCH, (rank + 1) * LOCAL_BATCH)
    half = [column[mine] for column in BATCH]
    gathered_mnrl = distributed.gather_loss(mnrl)
    steps = {
        "plain": (mnrl, None, half, {}),
        "gathered": (gathered_mnrl, None, half, {}),
        "cached": (gathered_mnrl, 5, half, {}),
        "cosent": (distributed.gather_loss(cosent_loss), None, half[:2], {"scores": SCORES[mine]}),
    }
    results = {}
    for name, (loss_fn, mini, columns, targets) in steps.items():
        model.zero_grad(set_to_none=True)
        loss = loss_backward(ddp, columns, loss_fn, mini, **targets)
        results[name] = (loss, grads(model))
    grad_owner = torch.nn.Parameter(torch.zeros(3))
    grad_owner.grad = torch.full((3,), float(rank + 1))
    distributed.average_gradients([grad_owner])  # what the trainer does for a loss's own parameters
    results["averaged"] = grad_owner.grad.clone()
    torch.save(results, out / f"rank{rank}.pt")
    run_recipe(load_recipe(recipe), out / "run", log=lambda _: None)
    run_recipe(load_recipe(recipe, ["train.mini_batch_size=6"]), out / "run_cached", log=lambda _: None)
    for name, extra in (("run_temperature", []), ("run_temperature_cached", ["train.mini_batch_size=6"])):
        run_recipe(load_recipe(recipe, TEMPERATURE + extra), out / name, log=lambda _: None)
    dist.destroy_process_group()


def spawn(fn, args: tuple, timeout: float = 90) -> None:
    context = mp.start_processes(fn, args=args, nprocs=WORLD, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for p in context.processes:
                p.kill()
            raise TimeoutError(f"ranks still running after {timeout} s")


def torchrun(args: list[str], timeout: float = 90) -> tuple[subprocess.CompletedProcess, float]:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes",
        "1",
        "--nproc_per_node",
        str(WORLD),
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(free_port()),
        *args,
    ]
    start = time.monotonic()
    done = subprocess.run(command, env={**os.environ, **ENV}, capture_output=True, text=True, timeout=timeout)
    return done, time.monotonic() - start


# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One thread per process, as the ranks have: extra threads on 2 busy cores only spin (seconds become minutes)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def setup(tmp_path_factory, minilm_dir):
    root = tmp_path_factory.mktemp("dist")
    make_tiny_checkpoint(root / "base", minilm_dir, layers=2, normalize=True)
    data = root / "triplets.csv"
    data.write_text("anchor,positive,negative\n" + "\n".join(",".join(row) for row in ROWS) + "\n", encoding="utf-8")
    recipe = root / "dist.toml"
    recipe.write_text(RECIPE.format(base=root / "base", data=data), encoding="utf-8")
    (root / "saved_temperature.py").write_text(SAVED_TEMPERATURE, encoding="utf-8")
    return root, recipe


@pytest.fixture(scope="module")
def single(setup):
    """One process, the whole batch: loss and gradients of BATCH and of each half, and a 10-step run."""
    root, recipe = setup
    model = SentenceEncoder.from_pretrained(root / "base")
    full = loss_backward(model, BATCH, mnrl), grads(model)
    model.zero_grad(set_to_none=True)
    cosent = loss_backward(model, BATCH[:2], cosent_loss, scores=SCORES), grads(model)
    halves = [
        loss_backward(model, [c[r * LOCAL_BATCH : (r + 1) * LOCAL_BATCH] for c in BATCH], mnrl) for r in range(WORLD)
    ]
    run_recipe(load_recipe(recipe), root / "single", log=lambda _: None)
    run_recipe(load_recipe(recipe, TEMPERATURE), root / "single_temperature", log=lambda _: None)
    return {
        "full": full,
        "cosent": cosent,
        "halves": halves,
        "run": root / "single",
        "temperature": root / "single_temperature",
    }


@pytest.fixture(scope="module")
def ranks(setup):
    """The same work on 2 processes; returns each rank's step results and the output root."""
    root, recipe = setup
    out = root / "ranks"
    out.mkdir()
    spawn(rank_worker, (free_port(), str(root / "base"), str(recipe), str(out)))
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)], out


# ------------------------------------------------------------------------------------------- numbers


@pytest.mark.slow
@pytest.mark.subprocess
def test_without_gather_each_rank_has_the_loss_of_its_own_half(ranks, single):
    results, _ = ranks
    for r in range(WORLD):
        torch.testing.assert_close(results[r]["plain"][0], single["halves"][r], rtol=1e-5, atol=0)


@pytest.mark.slow
@pytest.mark.subprocess
def test_gathered_step_equals_one_process_on_the_global_batch(ranks, single):
    results, _ = ranks
    loss, want = single["full"]
    for r in range(WORLD):  # DDP leaves the same averaged gradients on every rank
        torch.testing.assert_close(results[r]["gathered"][0], loss, rtol=1e-5, atol=0)
        assert_close_grads(results[r]["gathered"][1], want)


@pytest.mark.slow
@pytest.mark.subprocess
def test_gathered_targets_give_the_global_loss(ranks, single):
    """CoSENT ranks every pair of the batch against every other: right only if the scores are gathered too."""
    results, _ = ranks
    loss, want = single["cosent"]
    for r in range(WORLD):
        torch.testing.assert_close(results[r]["cosent"][0], loss, rtol=1e-5, atol=0)
        assert_close_grads(results[r]["cosent"][1], want)


@pytest.mark.slow
@pytest.mark.subprocess
def test_gradient_cache_with_gather_equals_plain_gather(ranks):
    results, _ = ranks
    for r in range(WORLD):
        torch.testing.assert_close(results[r]["cached"][0], results[r]["gathered"][0], rtol=1e-5, atol=0)
        assert_close_grads(results[r]["cached"][1], results[r]["gathered"][1])


@pytest.mark.slow
@pytest.mark.subprocess
def test_ten_gathered_steps_give_the_single_process_weights(ranks, single):
    _, out = ranks
    assert max_weight_diff(out / "run", single["run"]) <= 1e-5
    assert max_weight_diff(out / "run_cached", single["run"]) <= 1e-5
    base = load_file(single["run"].parent / "base" / "model.safetensors")
    moved = load_file(single["run"] / "final" / "model.safetensors")
    assert (
        moved["encoder.layer.0.output.dense.weight"] - base["encoder.layer.0.output.dense.weight"]
    ).abs().max() > 1e-3


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_loss_parameter_is_averaged_over_ranks_and_trains_like_one_process(ranks, single):
    """The learnable temperature lives outside DDP: its gradient is averaged by the trainer; gathered, 2 x 16 rows
    give the single process's encoder weights and temperature, with and without the gradient cache."""
    results, out = ranks
    for r in range(WORLD):
        assert torch.equal(results[r]["averaged"], torch.full((3,), 1.5))
    want = load_file(single["temperature"] / "final" / "loss.safetensors")["log_temperature"]
    assert abs(want.item() - math.log(0.1)) > 1e-3  # it moved
    for name in ("run_temperature", "run_temperature_cached"):
        assert max_weight_diff(out / name, single["temperature"]) <= 1e-5
        got = load_file(out / name / "final" / "loss.safetensors")["log_temperature"]
        assert abs(got.item() - want.item()) <= 1e-5, name


# ------------------------------------------------------------------------------------------- failures, resume

FAULTY = """
import os, sys, time
from minilm import cli
from minilm.train import trainer

step, how = int(sys.argv[1]), sys.argv[2]
real, calls = trainer.clip_grad_norm, [0]

def clip(params, max_norm):  # rank 1 dies (or stalls) after the backward of this step
    calls[0] += 1
    if calls[0] == step and os.environ["RANK"] == "1":
        if how == "exit":
            os._exit(3)
        time.sleep(600)
    return real(params, max_norm)

trainer.clip_grad_norm = clip
sys.exit(cli.main(sys.argv[3:]))
"""


@pytest.fixture()
def faulty(tmp_path):
    path = tmp_path / "faulty.py"
    path.write_text(FAULTY, encoding="utf-8")
    return path


@pytest.mark.slow
@pytest.mark.subprocess
def test_dead_rank_fails_the_job_and_torchrun_resume_finishes_it(setup, single, faulty, tmp_path):
    _, recipe = setup
    out = tmp_path / "out"
    done, seconds = torchrun([str(faulty), "5", "exit", "train", str(recipe), "--output", str(out)])
    assert done.returncode != 0, done.stderr[-2000:]
    assert seconds < 60
    last = checkpoints(out)[-1]
    assert last.name == "step-0000004"
    emb = SentenceEncoder.from_pretrained(last / "model").encode(["still fine"])
    assert torch.isfinite(torch.from_numpy(emb)).all()

    done, _ = torchrun(["-m", "minilm", "train", str(recipe), "--output", str(out), "--resume"])
    assert done.returncode == 0, done.stderr[-2000:]
    assert max_weight_diff(out, single["run"]) <= 1e-5
    steps = [line for line in (out / "log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert len(steps) == STEPS  # rank 0 alone logged, each step once


@pytest.mark.slow
@pytest.mark.subprocess
def test_stalled_rank_fails_the_job_after_the_recipe_timeout(setup, faulty, tmp_path):
    _, recipe = setup
    args = [
        str(faulty),
        "3",
        "sleep",
        "train",
        str(recipe),
        "--output",
        str(tmp_path / "out"),
        "--set",
        "train.distributed_timeout_s=5",
    ]
    done, seconds = torchrun(args)
    assert done.returncode != 0, done.stderr[-2000:]
    assert "timed out" in done.stderr.lower()  # rank 0 gave up waiting (gloo's message), it did not crash
    assert seconds < 60


# ------------------------------------------------------------------------------------------- in one process


def test_shards_are_contiguous_slices_of_the_global_batches():
    inner = [NoDuplicatesBatchSampler([[str(i) for i in range(21)]], 8, seed=3) for _ in range(WORLD)]
    shards = [distributed.ShardedBatchSampler(s, r, WORLD) for r, s in enumerate(inner)]
    global_batches = NoDuplicatesBatchSampler([[str(i) for i in range(21)]], 8, seed=3).batches(0)
    assert [len(b) for b in global_batches] == [8, 8, 5]
    got = list(zip(*(list(s) for s in shards)))
    assert [a + b for a, b in got] == [global_batches[0], global_batches[1], global_batches[2][:4]]  # 5 -> 2 x 2
    assert len(shards[0]) == 3 and shards[1].state_dict() == inner[1].state_dict()


def test_tiny_last_batch_is_skipped_and_state_is_the_global_position():
    shard = distributed.ShardedBatchSampler(RandomBatchSampler(9, 4, seed=0), rank=1, world=2)
    assert [len(b) for b in shard.batches(0)] == [2, 2]  # the last batch has 1 row: fewer than one per rank
    iterator = iter(shard)
    next(iterator)
    assert shard.state_dict()["position"] == 1


def test_batch_size_must_divide_among_processes():
    distributed.check_batch_size(32, 4)
    with pytest.raises(ValueError, match=r"batch_size 30 is not divisible by the number of processes \(4\)"):
        distributed.check_batch_size(30, 4)
    with pytest.raises(ValueError, match=r"rank must be in \[0, 2\)"):
        distributed.ShardedBatchSampler(RandomBatchSampler(9, 4), rank=2, world=2)


def test_one_process_ignores_the_distributed_settings():
    assert not distributed.init_from_env(5.0)  # WORLD_SIZE unset: nothing to join
    assert distributed.world_size() == 1 and distributed.rank() == 0
    x = torch.tensor(1.5)
    assert distributed.mean_over_ranks(x) is x and distributed.gather_objects(x) == [x]


def test_recipe_timeout_must_be_positive(setup):
    _, recipe = setup
    assert load_recipe(recipe).train["distributed_timeout_s"] == 30.0
    with pytest.raises(RecipeError, match=r"\[train\] distributed_timeout_s must be > 0"):
        load_recipe(recipe, ["train.distributed_timeout_s=0"])
    with pytest.raises(RecipeError, match=r"\[train\] gather_across_devices must be bool"):
        load_recipe(recipe, ["train.gather_across_devices=1"])
