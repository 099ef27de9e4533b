"""benchmarks/bench_gpu.py --dry-run: every part of the GPU check runs on the CPU with a tiny model, so the script
cannot rot between runs on a GPU. The numbers are not checked here (a CPU, a random model), only that each part ran
and reported."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    cases = [r["case"] for r in result["rows"]]
    assert sum("steps/s" in c for c in cases) == 4 and sum("sentences/s" in c for c in cases) == 3
    torchrun = next(r for r in result["rows"] if r["part"] == "torchrun")
    assert torchrun["ok"] and "over gloo" in torchrun["case"]
    assert all(r["ok"] for r in result["rows"] if r["case"].endswith("vs CPU: max |diff|"))
