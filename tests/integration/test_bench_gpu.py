"""benchmarks/bench_gpu.py --dry-run: every part of the GPU check runs on the CPU with a tiny model, so the script
cannot rot between runs on a GPU. The numbers are not checked here (a CPU, a random model), only that each part ran
and reported every row, within a minute of CPU time (wall time depends on what else the machine runs: 30-40 s idle,
about 100 s at a load average of 10 on 2 cores, for about 25 s of CPU)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_gpu_check_runs_dry_on_the_cpu(tmp_path, sts_dir):
    out = tmp_path / "bench_gpu.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "bench_gpu.py"),
            "--dry-run",
            "--data",
            str(sts_dir),
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "dry run (CPU, tiny random model)" in done.stdout
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["dry_run"] and result["environment"]["device"] == "cpu"
    assert set(result["part_seconds"]) == {"encode parity", "training", "encode speed", "torchrun"}
    assert result["cpu_seconds"] < 60, result["cpu_seconds"]
    cases = [r["case"] for r in result["rows"]]
    parity = [r for r in result["rows"] if r["part"] == "encode parity"]
    assert len(parity) == 6 and sum("Spearman" in r["case"] for r in parity) == 2
    assert all(r["limit"] is not None and r["ok"] is not None for r in parity)
    assert sum("steps/s" in c for c in cases) == 4 and sum("sentences/s" in c for c in cases) == 3
    assert {c.split(":")[0] for c in cases if "steps/s" in c} == {
        f"MNRL b{b} {p}" for b in (8, 16) for p in ("fp32", "bf16")
    }
    peaks = [r for r in result["rows"] if "peak MB" in r["case"]]
    assert len(peaks) == 4 and all(r["value"] is None for r in peaks)  # CUDA's counter only: blank on the CPU
    torchrun = next(r for r in result["rows"] if r["part"] == "torchrun")
    assert torchrun["ok"] and "over gloo" in torchrun["case"]
    assert all(r["ok"] for r in result["rows"] if r["case"].endswith("vs CPU: max |diff|"))


@pytest.mark.slow  # two Python processes importing torch: ~5 s idle
def test_the_gpu_check_names_missing_data_and_a_missing_gpu(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    script = str(REPO / "benchmarks" / "bench_gpu.py")
    done = subprocess.run(
        [sys.executable, script, "--dry-run", "--data", str(tmp_path)], capture_output=True, text=True, env=env
    )
    assert done.returncode == 2 and f"{tmp_path / 'sts-train.csv'} not found; give --data DIR" in done.stderr
    if not torch.cuda.is_available():
        done = subprocess.run(
            [sys.executable, script, "--device", "cpu", "--data", str(tmp_path)],
            capture_output=True,
            text=True,
            env=env,
        )
        assert done.returncode == 2 and "no GPU here (use --dry-run to check the script on the CPU)" in done.stderr
