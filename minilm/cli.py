"""Command line: ``minilm encode``, ``minilm similarity`` (and the training commands, added by their modules)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .hub import DEFAULT_MODEL
from .training.trainer import TrainingDiverged


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
    model = SentenceEncoder.from_pretrained(args.model, compile=args.compile)
    embeddings = model.encode(sentences, batch_size=args.batch_size, quantized_model=args.quantized_model)
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


def cmd_train(args) -> int:
    from .training.recipe import load_recipe, make_quick
    from .training.run import run_recipe

    overrides = args.set + (["train.compile=true"] if args.compile else [])
    recipe = load_recipe(args.recipe, overrides, args.data)  # fully checked before any model loads
    if args.quick:
        recipe = make_quick(recipe)
    output = Path(args.output) if args.output else Path("runs") / recipe.name
    history = run_recipe(recipe, output, resume=args.resume)
    if len(history) >= 2:
        before, after = history[0], history[-1]
        print("metric".ljust(20) + "before    after")
        for key in before:
            if key != "step":
                print(f"{key:<20}{before[key]:.4f}    {after[key]:.4f}")
    return 0


def cmd_eval(args) -> int:
    from .encoder import SentenceEncoder
    from .training.run import make_evaluator

    for item in args.roles or []:
        if "=" not in item or not all(part.strip() for part in item.split("=", 1)):
            raise ValueError(f"--roles {item!r}: expected ROLE=COLUMN, e.g. anchor=question")
    roles = dict(item.split("=", 1) for item in args.roles) if args.roles else None
    evaluate = make_evaluator(args.task, args.data, args.format, roles, args.batch_size)
    result = evaluate(SentenceEncoder.from_pretrained(args.model))
    for key, value in result.items():
        print(f"{key:<20}{value:.6f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minilm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("encode", help="embed one sentence per line into a .npy file")
    p.add_argument("--model", default=DEFAULT_MODEL, help="local directory or hub id")
    p.add_argument("--input", required=True, help="text file, one sentence per line; '-' reads stdin")
    p.add_argument("--output", required=True, help="where to write the (N, H) float32 array (.npy)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--quantized-model", action="store_true",
                   help="run a dynamically int8-quantised copy of the model (CPU; float output; benchmarks/README.md)")
    p.add_argument("--compile", action="store_true", help="torch.compile the encoder layers (minilm.kernels)")
    p.set_defaults(run=cmd_encode)

    p = sub.add_parser("similarity", help="print the cosine similarity matrix of the given sentences")
    p.add_argument("--model", default=DEFAULT_MODEL, help="local directory or hub id")
    p.add_argument("sentences", nargs="+")
    p.set_defaults(run=cmd_similarity)

    p = sub.add_parser("train", help="fine-tune as a recipe (recipes/*.toml) says",
                       description="Fine-tune as a recipe says. Several processes or GPUs: "
                                   "torchrun --nproc_per_node N -m minilm train RECIPE (docs/distributed.md).")
    p.add_argument("recipe", help="path to a recipe .toml")
    p.add_argument("--data", help="training file to use instead of the recipe's [data] train")
    p.add_argument("--output", help="output directory (default runs/<recipe name>)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe value, e.g. --set train.batch_size=8 --set loss.margin=0.5")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the output directory")
    p.add_argument("--quick", action="store_true", help="smoke test: 2 steps of at most 16 rows, small evaluation")
    p.add_argument("--compile", action="store_true",
                   help="same as --set train.compile=true: compiled layers, AdamW step and MNRL (minilm.kernels)")
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("eval", help="evaluate a model on a file")
    p.add_argument("--model", default=DEFAULT_MODEL, help="local directory or hub id")
    p.add_argument("--data", required=True, help=".csv/.tsv/.jsonl file, or an STS-benchmark file with --format sts")
    p.add_argument("--task", required=True, choices=["triplet", "similarity", "retrieval"])
    p.add_argument("--format", default="auto", choices=["auto", "sts"])
    p.add_argument("--roles", nargs="*", metavar="ROLE=COLUMN",
                   help="which column plays which role (default: columns named anchor/positive/negative or a/b/score)")
    p.add_argument("--batch-size", type=int, default=32)
    p.set_defaults(run=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (OSError, ValueError, TypeError, TrainingDiverged) as e:  # bad model, file or input; a diverged run
        print(f"minilm {args.command}: error: {e}", file=sys.stderr)
        return 2
