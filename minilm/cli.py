"""Command line: ``minilm encode``, ``minilm similarity`` (and the training commands, added by their modules)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .hub import DEFAULT_MODEL


def read_lines(source: str) -> list[str]:
    """One sentence per line from a file, or from stdin for ``-``; line endings stripped, nothing else."""
    if source == "-":
        text = sys.stdin.read()
    else:
        path = Path(source)
        if not path.is_file():
            raise SystemExit(f"minilm encode: input file {source} does not exist")
        text = path.read_text(encoding="utf-8")
    return text.splitlines()


def cmd_encode(args) -> int:
    from .encoder import SentenceEncoder

    sentences = read_lines(args.input)
    model = SentenceEncoder.from_pretrained(args.model)
    embeddings = model.encode(sentences, batch_size=args.batch_size)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, embeddings)
    print(f"wrote {embeddings.shape[0]} x {embeddings.shape[1]} embeddings to {out}", file=sys.stderr)
    return 0


def cmd_similarity(args) -> int:
    from .encoder import SentenceEncoder

    model = SentenceEncoder.from_pretrained(args.model)
    emb = model.encode(args.sentences)
    sim = model.similarity(emb, emb)
    width = max(len(s) for s in args.sentences)
    for i, sentence in enumerate(args.sentences):
        print(f"{sentence[:40]:<{min(width, 40)}}  " + "  ".join(f"{v:+.4f}" for v in sim[i]))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minilm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("encode", help="embed one sentence per line into a .npy file")
    p.add_argument("--model", default=DEFAULT_MODEL, help="local directory or hub id")
    p.add_argument("--input", required=True, help="text file, one sentence per line; '-' reads stdin")
    p.add_argument("--output", required=True, help="where to write the (N, H) float32 array (.npy)")
    p.add_argument("--batch-size", type=int, default=32)
    p.set_defaults(run=cmd_encode)

    p = sub.add_parser("similarity", help="print the cosine similarity matrix of the given sentences")
    p.add_argument("--model", default=DEFAULT_MODEL, help="local directory or hub id")
    p.add_argument("sentences", nargs="+")
    p.set_defaults(run=cmd_similarity)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (OSError, ValueError, TypeError) as e:  # bad model, file or input: one line, no traceback
        print(f"minilm {args.command}: error: {e}", file=sys.stderr)
        return 2
