"""Per-run overhead of ``minilm sweep`` against bare ``minilm train`` of the same runs.

    python benchmarks/bench_sweep.py [--quick] [--steps 2] [--seeds 3]

The same recipe (recipes/default_triplets.toml, all-MiniLM-L6-v2, MNRL) for ``--steps`` steps, once per seed: as
separate ``minilm train`` processes (each starts Python, imports, reads the model, tokenises, evaluates before and
after, saves the model), and as one ``minilm sweep`` of one configuration over the same seeds (model read once,
texts tokenised once, the before-evaluation shared, no model saved). Each child times its training steps
(``Trainer.train_step``), so the overhead, wall time minus step time, is measured apart from the steps, whose time
swings with the machine's load. Writes benchmarks/results/bench_sweep.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import table, write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes" / "default_triplets.toml"

# Runs the command line with Trainer.train_step timed; prints {"steps": seconds per run, in order} last.
CHILD = """
import json, sys, time
from minilm.train import trainer
spent, real = {}, trainer.Trainer.train_step
def timed(self, rows):
    start = time.perf_counter()
    try:
        return real(self, rows)
    finally:
        spent[str(self.output_dir)] = spent.get(str(self.output_dir), 0.0) + time.perf_counter() - start
trainer.Trainer.train_step = timed
from minilm import cli
code = cli.main(sys.argv[1:])
print(json.dumps({"steps": list(spent.values())}))
sys.exit(code)
"""


def child(args: list[str], cwd: Path) -> tuple[float, list[float]]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args], cwd=cwd, env=env, check=True, capture_output=True, text=True, timeout=3600
    )
    return time.perf_counter() - start, json.loads(done.stdout.strip().splitlines()[-1])["steps"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1 step, 2 seeds")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    steps, seeds = (1, 2) if args.quick else (args.steps, args.seeds)
    overrides = [f"train.max_steps={steps}", "train.save_steps=0"]
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bare_wall, bare_steps = [], []
        for seed in range(seeds):
            flags = [x for item in overrides + [f"train.seed={seed}"] for x in ("--set", item)]
            wall, spent = child(["train", str(RECIPE), *flags, "--output", str(tmp / f"bare-{seed}")], tmp)
            bare_wall.append(wall)
            bare_steps += spent
        sweep_file = tmp / "one.toml"
        sweep_file.write_text(
            f"recipe = {json.dumps(str(RECIPE))}\nseeds = {seeds}\nset = {json.dumps(overrides)}\n"
            '[[configs]]\nloss = { name = "mnrl", scale = 20.0 }\n',
            encoding="utf-8",
        )
        sweep_wall, sweep_steps = child(["sweep", str(sweep_file), "--output", str(tmp / "sweep"), "--no-plots"], tmp)
        runs = [json.loads(p.read_text())["seconds"] for p in sorted((tmp / "sweep").rglob("result.json"))]
    bare = {
        "how": "minilm train, a process per run",
        "wall s/run": sum(bare_wall) / seeds,
        "steps s/run": sum(bare_steps) / seeds,
        "overhead s/run": (sum(bare_wall) - sum(bare_steps)) / seeds,
    }
    sweep = {
        "how": "minilm sweep, one process",
        "wall s/run": sum(runs) / seeds,
        "steps s/run": sum(sweep_steps) / seeds,
        "overhead s/run": (sum(runs) - sum(sweep_steps)) / seeds,
        "once s": sweep_wall - sum(runs),
    }
    print(
        f"{seeds} runs of {steps} step(s), batch 16, all-MiniLM-L6-v2, MNRL on default_triplets.csv; "
        f"load average {load:.1f} at the start"
    )
    print(table([bare, sweep], ["how", "wall s/run", "steps s/run", "overhead s/run", "once s"]))
    print(
        f"overhead per run: {sweep['overhead s/run']:.2f} s in the sweep vs {bare['overhead s/run']:.2f} s bare "
        f"(the sweep pays {sweep['once s']:.2f} s once: Python, imports, model, tokenising, the first evaluation)"
    )
    print(
        write_results(
            "bench_sweep",
            {
                "steps": steps,
                "seeds": seeds,
                "load_average_start": load,
                "bare_wall": bare_wall,
                "bare_steps": bare_steps,
                "sweep_wall": sweep_wall,
                "sweep_run_seconds": runs,
                "sweep_steps": sweep_steps,
            },
        )
    )


if __name__ == "__main__":
    main()
