"""Command line: ``minilm encode``, ``minilm similarity`` (and the training commands, added by their modules)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from .hub import DEFAULT_MODEL
from .io import decode_utf8, read_text, replacing, split_lines
from .training.trainer import TrainingDiverged


def read_lines(source: str) -> list[str]:
    """One sentence per line from a UTF-8 file, or from stdin for ``-``. Split on \\n and \\r\\n only: a form feed or a
    U+2028 inside a line stays in it, so row i of the output is always line i of the input."""
    if source == "-":
        return split_lines(decode_utf8(sys.stdin.buffer.read(), "<stdin>"))
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"input file {source} does not exist")
    return split_lines(read_text(path))


def check_finite_rows(embeddings: np.ndarray, model: str, where: str) -> None:
    """A model whose embeddings are NaN or infinite (its weights overflow) is an error, not numbers to print."""
    bad = np.flatnonzero(~np.isfinite(embeddings).all(axis=-1))
    if len(bad):
        raise ValueError(f"model {model} gives non-finite embeddings for {where} {bad[0] + 1}"
                         f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}; its weights are broken")


def cmd_encode(args) -> int:
    from .encoder import SentenceEncoder

    out = Path(args.output)
    if out.is_dir():  # checked before the model loads
        raise IsADirectoryError(f"--output {out} is a directory; give a file name, e.g. {out / 'embeddings.npy'}")
    sentences = read_lines(args.input)
    model = SentenceEncoder.from_pretrained(args.model, compile=args.compile)
    embeddings = model.encode(sentences, batch_size=args.batch_size, precision=args.precision)
    check_finite_rows(embeddings, args.model, "line")
    out.parent.mkdir(parents=True, exist_ok=True)
    with replacing(out) as f:  # exactly the path given (np.save would add .npy), and all of it or nothing
        np.save(f, embeddings)
    source = "stdin" if args.input == "-" else args.input
    print(f"read {len(sentences)} lines from {source}, wrote {embeddings.shape[0]} x {embeddings.shape[1]} embeddings "
          f"to {out}", file=sys.stderr)
    return 0


def cmd_similarity(args) -> int:
    from .encoder import SentenceEncoder

    model = SentenceEncoder.from_pretrained(args.model)
    emb = model.encode(args.sentences)
    check_finite_rows(emb, args.model, "sentence")
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
    recipe.overrides = tuple(f"--set {o}" for o in overrides) + ((f"--data {args.data}",) if args.data else ()) + (
        ("--quick",) if args.quick else ())
    output = Path(args.output) if args.output else Path("runs") / recipe.name
    history = run_recipe(recipe, output, resume=args.resume, overwrite=args.overwrite)
    if len(history) >= 2:
        before, after = history[0], history[-1]
        print("metric".ljust(20) + "before    after")
        for key in before:
            if key != "step":
                print(f"{key:<20}{before[key]:.4f}    {after[key]:.4f}")
    return 0


def cmd_sweep(args) -> int:
    from .training.sweep import run_sweep

    run_sweep(args.sweep, args.output, jobs=args.jobs, plots=not args.no_plots)
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
    undefined = [key for key, value in result.items() if not np.isfinite(value)]
    if undefined:
        raise ValueError(f"{', '.join(undefined)} on {args.data} is undefined ({result[undefined[0]]}): model "
                         f"{args.model} gives every pair the same similarity")
    for key, value in result.items():
        print(f"{key:<20}{value:.6f}")
    return 0


class Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line like every other error (exit status 2)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="minilm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("encode", help="embed one sentence per line into a .npy file")
    p.add_argument("--model", default=DEFAULT_MODEL, help="local directory or hub id")
    p.add_argument("--input", required=True, help="text file, one sentence per line; '-' reads stdin")
    p.add_argument("--output", required=True, help="where to write the (N, H) float32 array (.npy)")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--precision", choices=["float32", "int8"], default="float32",
                   help="int8: dynamically quantised linear layers (CPU; see benchmarks/README.md)")
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
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run in the output directory (its run.json, log.jsonl, final/, checkpoints/)")
    p.add_argument("--quick", action="store_true", help="smoke test: 2 steps of at most 16 rows, small evaluation")
    p.add_argument("--compile", action="store_true",
                   help="same as --set train.compile=true: compiled layers, AdamW step and MNRL (minilm.kernels)")
    p.set_defaults(run=cmd_train)

    p = sub.add_parser("sweep", help="compare loss configurations over seeds: paired runs, intervals, plots",
                       description="Run a sweep file: one base recipe, loss configurations x seeds, paired; writes "
                                   "sweep.csv, sweep.md and plots. Rerun it to finish a killed sweep (docs/research.md).")
    p.add_argument("sweep", help="path to a sweep .toml (examples/sweeps/)")
    p.add_argument("--output", help="output directory (default runs/<sweep name>)")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time, each in its own process (default 1)")
    p.add_argument("--no-plots", action="store_true", help="write the tables only")
    p.set_defaults(run=cmd_sweep)

    p = sub.add_parser("eval", help="evaluate a model on a file")
    p.add_argument("--model", default=DEFAULT_MODEL, help="local directory or hub id")
    p.add_argument("--data", required=True, help=".csv/.tsv/.jsonl file, or an STS-benchmark file with --format sts")
    p.add_argument("--task", required=True, choices=["triplet", "similarity", "retrieval"])
    p.add_argument("--format", default="auto", choices=["auto", "sts"])
    p.add_argument("--roles", nargs="*", metavar="ROLE=COLUMN",
                   help="which column plays which role (default: columns named anchor/positive/negative or a/b/score)")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.set_defaults(run=cmd_eval)
    return parser


def one_line(error: BaseException) -> str:
    return "; ".join(part.strip() for part in str(error).splitlines() if part.strip()) or type(error).__name__


def main(argv: list[str] | None = None) -> int:
    """Run a command. Every error ends as one line on stderr: exit status 2 for bad input (a file, key, line or argument
    named), 130 when interrupted, 1 for anything unforeseen (a bug: MINILM_DEBUG=1 shows its traceback)."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (OSError, ValueError, TypeError, TrainingDiverged) as e:  # bad model, file or input; a diverged run
        print(f"minilm {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"minilm {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        if os.environ.get("MINILM_DEBUG"):
            raise
        print(f"minilm {args.command}: internal error, please report it: {type(e).__name__}: {one_line(e)} "
              f"(MINILM_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1
