"""SIGKILL of a `minilm sweep --jobs 2` (issue 20): its workers die with it (no orphan keeps training into run folders
a rerun would resume), and a sweep killed at random points and run again ends equal to an uninterrupted one: the
same finished runs, the same sweep.csv (run times aside), every run's log.jsonl identical, each step logged once.

Kill points are random times within an uninterrupted sweep's length, drawn from a seed taken from the clock and
printed (``MINILM_FAULT_SEED=<seed>`` replays them); ``MINILM_SWEEP_FAULT_POINTS`` sets how many (3 by default, to
stay fast; docs/reliability.md gives a longer run). Sweeps are forked from a server that has imported torch and
minilm once (the trick of tests/integration/test_faults.py), each with one thread, so every run computes the same bits
whether it trains in a worker or in the sweep's own process.
"""

import csv
import io
import json
import os
import random
import signal
import sys
import time
from pathlib import Path

import pytest
from helpers import quiet_cli, save_tiny_base, warm_forkserver

POINTS = int(os.environ.get("MINILM_SWEEP_FAULT_POINTS", "3"))
SEED = int(os.environ.get("MINILM_FAULT_SEED", str(time.time_ns() % 2**32)))
BASE = """name = "faults"
[model]
base = "{base}"
[data]
train = "train.csv"
roles = {{ anchor = "anchor", positive = "positive", negative = "negative" }}
[loss]
name = "mnrl"
[train]
batch_size = 4
max_steps = {steps}
save_steps = 1
[eval]
task = "triplet"
data = "eval.csv"
roles = {{ anchor = "anchor", positive = "positive", negative = "negative" }}
"""
SWEEP = """recipe = "{recipe}"
seeds = [1, 2]

[[configs]]
label = "mnrl"
loss = {{ name = "mnrl" }}

[[configs]]
label = "triplet"
loss = {{ name = "triplet", distance = "cosine", margin = 0.3 }}
"""


@pytest.fixture(scope="module")
def forked():
    return warm_forkserver("minilm.sweep.runner", "minilm.encoder", __name__)


def make_sweep(directory: Path, minilm_dir: Path, steps: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    if not (directory / "base").is_dir():
        save_tiny_base(directory, minilm_dir)
    rows = [
        f"question {i} on topic {i % 5},answer {i} on topic {i % 5},note {i} on topic {(i + 2) % 5}" for i in range(24)
    ]
    (directory / "train.csv").write_text("anchor,positive,negative\n" + "\n".join(rows) + "\n")
    (directory / "eval.csv").write_text("anchor,positive,negative\n" + "\n".join(rows[:8]) + "\n")
    (directory / f"base{steps}.toml").write_text(BASE.format(base=directory / "base", steps=steps))
    path = directory / f"sweep{steps}.toml"
    path.write_text(SWEEP.format(recipe=f"base{steps}.toml"))
    return path


def start(ctx, path: Path, out: Path):
    process = ctx.Process(
        target=quiet_cli, args=(["sweep", str(path), "--output", str(out), "--jobs", "2", "--no-plots"],)
    )
    process.start()
    return process


def children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (from /proc; zombies count as gone)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if int(ppid) == pid and state != "Z":
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def free(out: Path) -> bool:
    """Nobody holds the sweep's lock: the killed sweep and every worker it forked are gone."""
    from minilm.run.output_dir import OutputDirError, claim_directory
    from minilm.sweep.runner import SWEEP_OUTPUTS

    try:
        with claim_directory(out, SWEEP_OUTPUTS, "a minilm sweep"):
            return True
    except OutputDirError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_the_workers_of_a_killed_sweep_die_with_it(forked, tmp_path, minilm_dir):
    path = make_sweep(tmp_path, minilm_dir, steps=400)  # long enough to be killed mid-training
    out = tmp_path / "out"
    process = start(forked, path, out)
    wait_until(
        lambda: len(children(process.pid)) == 2 and list(out.glob("runs/*/*/log.jsonl")),
        300,
        "the sweep never started its two workers",
    )
    workers = children(process.pid)
    os.kill(process.pid, signal.SIGKILL)
    process.join(60)
    wait_until(lambda: not any(alive(pid) for pid in workers), 10, f"workers {workers} outlived their sweep")
    assert free(out)  # and the lock they inherited is free: a rerun may go on


def comparable(out: Path) -> dict:
    """What an uninterrupted sweep and a killed-and-rerun one must share: the finished runs' results (less their
    time), their logs byte for byte, sweep.csv less the seconds column; and no leftover checkpoint or temporary."""
    found = {}
    for result in sorted(out.glob("runs/*/*/result.json")):
        run = result.parent
        record = json.loads(result.read_text())
        del record["seconds"]
        steps = [json.loads(line)["step"] for line in (run / "log.jsonl").read_text().splitlines() if '"loss"' in line]
        assert steps == sorted(set(steps)), f"{run}: steps logged twice: {steps}"
        found[str(run.relative_to(out))] = (
            record,
            (run / "log.jsonl").read_text(),
            sorted(p.name for p in run.iterdir()),
        )
    rows = list(csv.DictReader(io.StringIO((out / "sweep.csv").read_text())))
    found["sweep.csv"] = [{k: v for k, v in row.items() if k != "seconds"} for row in rows]
    assert not list(out.rglob("*.minilm-tmp-*")), "temporaries left"
    return found


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_sweep_killed_at_random_points_and_rerun_equals_an_uninterrupted_one(forked, tmp_path, minilm_dir):
    print(f"\nsweep fault test: seed {SEED} (MINILM_FAULT_SEED={SEED} replays it), {POINTS} kill points")
    path = make_sweep(tmp_path, minilm_dir, steps=4)
    began = time.monotonic()
    reference = start(forked, path, tmp_path / "reference")
    reference.join(600)
    length = time.monotonic() - began
    assert reference.exitcode == 0
    want = comparable(tmp_path / "reference")
    assert len(want) == 5  # 4 runs and the table
    rng = random.Random(SEED)
    for point in range(POINTS):
        delay = rng.uniform(0, length)
        where = f"seed {SEED}, point {point}, kill after {delay:.2f} s"
        out = tmp_path / f"sweep{point}"
        process = start(forked, path, out)
        time.sleep(delay)
        if process.exitcode is None:
            os.kill(process.pid, signal.SIGKILL)
        process.join(60)
        wait_until(lambda out=out: not out.exists() or free(out), 10, f"{where}: orphaned workers hold the lock")
        finished = len(list(out.glob("runs/*/*/result.json")))
        rerun = start(forked, path, out)
        rerun.join(600)
        assert rerun.exitcode == 0, f"{where}: the rerun exited with {rerun.exitcode}"
        assert comparable(out) == want, f"{where}: differs from the uninterrupted sweep"
        print(f"  point {point}: killed after {delay:.2f} s of {length:.2f} s, {finished} of 4 runs finished then")
    print(
        f"sweep fault test: {POINTS} points in {time.monotonic() - began:.1f} s, all equal to the uninterrupted sweep"
    )
