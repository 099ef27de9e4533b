"""SIGKILL at random points of a training run. Whatever the point, right after the kill every model folder in the output
directory is complete (a write in progress lives only under a hidden temporary name), and ``--resume`` (or a fresh
start, if the kill came before the run was recorded) ends with weights bit-identical to an uninterrupted run.

Kill points are random times within the length of an uninterrupted run, drawn from a seed taken from the clock and
printed (``MINILM_FAULT_SEED=<seed>`` replays one). ``MINILM_FAULT_POINTS`` sets how many (20 by default, which keeps
the test under a minute; the long run in docs/reliability.md used 200). Runs are forked from a server that has
imported torch and minilm once, so each costs the training, not the interpreter start.
"""

import json
import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from helpers import quiet_cli, save_tiny_base, warm_forkserver, write_pairs
from safetensors.torch import load_file

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]  # a minute of training runs, killed

POINTS = int(os.environ.get("MINILM_FAULT_POINTS", "20"))
SEED = int(os.environ.get("MINILM_FAULT_SEED", str(time.time_ns() % 2**32)))
RECIPE = """name = "faults"
[model]
base = "{base}"
[data]
train = "pairs.csv"
roles = {{ anchor = "anchor", positive = "positive" }}
[loss]
name = "mnrl"
[train]
batch_size = 8
max_steps = 6
save_steps = 1
keep_checkpoints = 2
"""
MODEL_FILES = (
    "modules.json",
    "config.json",
    "model.safetensors",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
    "tokenizer.json",
)


@pytest.fixture(scope="module")
def forked():
    return warm_forkserver("minilm.run.build", "minilm.encoder", __name__)


@pytest.fixture(scope="module")
def recipe(tmp_path_factory, minilm_dir):
    directory = tmp_path_factory.mktemp("faults")
    save_tiny_base(directory, minilm_dir, max_length=64)
    write_pairs(directory / "pairs.csv", rows=64, topics=7)
    (directory / "r.toml").write_text(RECIPE.format(base=directory / "base"), encoding="utf-8")
    return directory / "r.toml"


def start(ctx, recipe: Path, out: Path, *flags: str):
    process = ctx.Process(target=quiet_cli, args=(["train", str(recipe), "--output", str(out), *flags],))
    process.start()
    return process


def finish(ctx, recipe: Path, out: Path, *flags: str) -> int:
    process = start(ctx, recipe, out, *flags)
    process.join(600)  # generous: a loaded CI machine may be slow, and a hang must still end the test
    return process.exitcode


def check_no_half_model(out: Path, where: str) -> list[str]:
    """Every visible model folder and checkpoint is complete; returns what a kill caught in progress (temporaries)."""
    import torch

    for model in [out / "final", *(out / "checkpoints").glob("step-*/model")]:
        if not model.exists():
            continue
        for name in MODEL_FILES:
            assert (model / name).is_file(), f"{where}: {model} lacks {name}"
        load_file(model / "model.safetensors")
        for name in ("modules.json", "config.json", "1_Pooling/config.json"):
            json.loads((model / name).read_text())
    for step in (out / "checkpoints").glob("step-*"):
        assert (step / "model").is_dir(), f"{where}: {step} has no model"
        torch.load(step / "trainer_state.pt", weights_only=True)
    log = out / "log.jsonl"
    if log.is_file():
        for line in log.read_text().split("\n")[:-1][:-1]:  # every line but a possibly torn last one
            json.loads(line)
    return [p.name for p in out.rglob("*.minilm-tmp-*")]


def test_sigkill_at_random_points_then_resume_is_bit_identical(forked, recipe, tmp_path):
    print(f"\nfault test: seed {SEED} (MINILM_FAULT_SEED={SEED} replays it), {POINTS} kill points")
    began = time.monotonic()
    reference = tmp_path / "reference"
    t0 = time.monotonic()
    assert finish(forked, recipe, reference) == 0
    length = time.monotonic() - t0
    assert (reference / "run.json").is_file()  # the children run this checkout's minilm
    want = load_file(reference / "final" / "model.safetensors")
    rng = random.Random(SEED)
    seen = Counter()
    for point in range(POINTS):
        delay = rng.uniform(0, length)
        where = f"seed {SEED}, point {point}, kill after {delay:.3f} s"
        out = tmp_path / f"run{point}"
        process = start(forked, recipe, out)
        time.sleep(delay)
        if process.exitcode is None:
            os.kill(process.pid, signal.SIGKILL)
        process.join(600)
        if process.exitcode != -signal.SIGKILL:
            seen["finished before the kill"] += 1
        caught = check_no_half_model(out, where)
        steps = sorted(p.name for p in (out / "checkpoints").glob("step-*"))
        seen["during a write" if caught else "between writes"] += 1
        seen[f"{len(steps)} checkpoints{' + final' if (out / 'final').exists() else ''}"] += 1
        flags = ("--resume",) if (out / "run.json").is_file() else ()
        code = finish(forked, recipe, out, *flags)
        assert code == 0, f"{where}: resume exited with {code}"
        got = load_file(out / "final" / "model.safetensors")
        assert got.keys() == want.keys(), where
        for key in want:
            assert (got[key] == want[key]).all(), f"{where}: {key} differs from the uninterrupted run"
        log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        assert [r["step"] for r in log if "loss" in r] == [1, 2, 3, 4, 5, 6], where
        assert not list(out.rglob("*.minilm-tmp-*")), f"{where}: temporaries left after the resumed run"
    print(
        f"fault test: {POINTS} points in {time.monotonic() - began:.1f} s (one run {length:.2f} s): "
        + ", ".join(f"{k}: {v}" for k, v in sorted(seen.items()))
    )
