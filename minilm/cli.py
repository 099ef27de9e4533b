"""The command line: parse the arguments, call one function of the layer that does the work, print. Errors a user can
fix (``ValueError`` / ``OSError`` naming the file or option) end with exit status 2 and one line."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np

from minilm.loading.hub import DEFAULT_MODEL
from minilm.train.trainer import TrainingDiverged
from minilm.util import usercode
from minilm.util.devices import check_cpu_only, resolve_device
from minilm.util.extras import MissingExtra
from minilm.util.usercode import UserCodeError


def chosen_device(args):
    """``--device`` (default: CUDA, then MPS, then the CPU), refused before any model loads when it is not here, as is
    a CPU-only option (``--quantized-model``) asked for on another device."""
    device = resolve_device(args.device, "--device")
    if getattr(args, "quantized_model", False):
        check_cpu_only("--quantized-model", device)
    return device


def cmd_encode(args) -> int:
    from minilm.corpus.encode import (
        CorpusOptions,
        check_input_file,
        describe,
        encode_file,
        ranges_from_file,
        written_paths,
    )
    from minilm.corpus.npyfile import check_not_an_input, check_overwritable
    from minilm.corpus.shards import parse_shard, shard_from_env, target_path
    from minilm.encoder import SentenceEncoder

    device = chosen_device(args)
    if args.input != "-":  # before the model loads
        check_input_file(Path(args.input))
    shard = parse_shard(args.shard) if args.shard else shard_from_env() or (0, 1)  # torchrun: RANK / WORLD_SIZE
    output = Path(args.output)
    # Every file the command reads; the output may be none of them (a calibration .npy would pass as an old output).
    inputs = {"--calibration": args.calibration, "--ranges": args.ranges}
    inputs = {option: Path(path) for option, path in inputs.items() if path}
    target = target_path(output, shard)
    check_not_an_input(
        written_paths(target, shard[1]), {**inputs, **({"input": Path(args.input)} if args.input != "-" else {})}
    )
    check_overwritable(target, None if args.input == "-" else Path(args.input))
    if args.ranges and args.calibration:
        raise ValueError("give --ranges or --calibration, not both")
    ranges = (
        ranges_from_file(args.ranges, "ranges")
        if args.ranges
        else (ranges_from_file(args.calibration, "calibration") if args.calibration else None)
    )
    options = CorpusOptions(
        batch_size=args.batch_size,
        prompt=args.prompt,
        prompt_name=args.prompt_name,
        normalize_embeddings=args.normalize_embeddings,
        truncate_dim=args.truncate_dim,
        precision=args.precision,
        ranges=ranges,
        quantized_model=args.quantized_model,
        **({"chunk_lines": args.chunk_lines} if args.chunk_lines is not None else {}),
    )
    model = SentenceEncoder.from_pretrained(args.model, device=device, compile=args.compile)
    if args.max_seq_length is not None:
        model.max_seq_length = args.max_seq_length
    written = encode_file(
        model,
        args.input,
        args.output,
        options,
        shard,
        restart=args.restart,
        progress=not args.no_progress,
        inputs=inputs,
    )
    print(describe(written, args.input), file=sys.stderr)
    return 0


def cmd_encode_join(args) -> int:
    from minilm.corpus.shards import join_parts

    rows, width, dtype = join_parts(args.output, delete_parts=args.delete_parts)
    print(f"joined {rows:,} x {width} {dtype} embeddings into {args.output}", file=sys.stderr)
    return 0


def cmd_compare(args) -> int:
    from minilm.run.compare import read_sentences, report, run_compare

    if not (math.isfinite(args.tolerance) and args.tolerance >= 0):  # nan would pass every comparison as "not above"
        raise ValueError(f"--tolerance must be >= 0 and finite, got {args.tolerance}")
    device = chosen_device(args)
    sentences = read_sentences(args.input, args.input_format)
    result = run_compare(
        args.model, sentences, args.pairs, args.pairs_format, args.batch_size, args.quantized_model, device
    )
    print(report(result, args.model, args.tolerance))
    return 0 if result.max_abs_difference <= args.tolerance else 1


def cmd_similarity(args) -> int:
    from minilm.corpus.encode import check_finite_rows
    from minilm.encoder import SentenceEncoder

    model = SentenceEncoder.from_pretrained(args.model)
    emb = model.encode(args.sentences)
    check_finite_rows(emb, "sentence", model=f"model {args.model}")
    sim = model.similarity(emb, emb)
    width = max(len(s) for s in args.sentences)
    for i, sentence in enumerate(args.sentences):
        print(f"{sentence[:40]:<{min(width, 40)}}  " + "  ".join(f"{v:+.4f}" for v in sim[i]))
    return 0


def cmd_train(args) -> int:
    from minilm.run.build import run_recipe
    from minilm.run.recipe import load_recipe, make_quick

    overrides = args.set + (["train.compile=true"] if args.compile else [])
    overrides += [f"train.device={args.device}"] if args.device else []
    recipe = load_recipe(args.recipe, overrides, args.data)  # fully checked before any model loads
    if args.quick:
        recipe = make_quick(recipe)
    recipe.overrides = (
        tuple(f"--set {o}" for o in overrides)
        + ((f"--data {args.data}",) if args.data else ())
        + (("--quick",) if args.quick else ())
    )
    output = Path(args.output) if args.output else Path("runs") / recipe.name
    history = run_recipe(recipe, output, resume=args.resume, overwrite=args.overwrite)
    if len(history) >= 2:
        before, after = history[0], history[-1]
        width = max(20, *(len(key) + 2 for key in before))  # named evaluations' keys run long: retrieval/recall@10
        print("metric".ljust(width) + "before    after")
        for key in before:
            if key != "step":
                print(f"{key:<{width}}{before[key]:.4f}    {after[key]:.4f}")
    return 0


def cmd_sweep(args) -> int:
    from minilm.sweep.runner import run_sweep

    run_sweep(
        args.sweep,
        args.output,
        jobs=args.jobs,
        plots=not args.no_plots,
        restart_changed=args.restart_changed,
        device=args.device,
    )
    return 0


def cmd_eval(args) -> int:
    from minilm.encoder import SentenceEncoder
    from minilm.evaluation.evaluators import make_evaluator

    device = chosen_device(args)
    for item in args.roles or []:
        if "=" not in item or not all(part.strip() for part in item.split("=", 1)):
            raise ValueError(f"--roles {item!r}: expected ROLE=COLUMN, e.g. anchor=question")
    roles = dict(item.split("=", 1) for item in args.roles) if args.roles else None
    evaluate = make_evaluator(args.task, args.data, args.format, roles, args.batch_size)
    model = args.model or DEFAULT_MODEL
    result = evaluate(SentenceEncoder.from_pretrained(model, device=device))
    # which model scored what: the default model is said, never assumed silently
    said = f"model {model}" + ("" if args.model else " (the default: no --model given)")
    rows = getattr(evaluate, "rows", None)
    print(f"{said}: {args.task} on {'?' if rows is None else f'{rows:,}'} rows of {args.data}")
    undefined = [key for key, value in result.items() if not np.isfinite(value)]
    if undefined:
        raise ValueError(
            f"{', '.join(undefined)} on {args.data} is undefined ({result[undefined[0]]}): model "
            f"{model} gives every pair the same similarity"
        )
    for key, value in result.items():
        print(f"{key:<20}{value:.6f}")
    return 0


def cmd_plot(args) -> int:
    from minilm.run.plots import plot_run

    for path in plot_run(args.run_dir, args.output):
        print(path)
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


DEVICE_HELP = "auto (default: CUDA, then MPS, then the CPU), cpu, cuda, cuda:N or mps"


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="minilm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "encode",
        help="embed one text per line of a file (any size) into a .npy file",
        description="Embed one text per line (split on \\n or \\r\\n only) into an (N, D) .npy "
        "file, streaming in bounded memory; an interrupted run resumes where it stopped "
        "when rerun with the same settings. Several processes or machines: --shard i/n "
        "(or torchrun, which sets RANK / WORLD_SIZE), then `minilm encode-join`.",
    )
    p.add_argument("--model", default=DEFAULT_MODEL, help="local directory or hub id")
    p.add_argument("--input", required=True, help="text file, one text per line, UTF-8; '-' reads stdin")
    p.add_argument("--output", required=True, help="where to write the (N, D) array (.npy)")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--prompt", help="text put in front of every line (sentence-transformers' prompt)")
    p.add_argument("--prompt-name", help="one of the model's prompts (config_sentence_transformers.json)")
    p.add_argument("--normalize-embeddings", action="store_true", help="L2-normalise (after --truncate-dim)")
    p.add_argument("--truncate-dim", type=int, help="keep the first D dimensions (Matryoshka models)")
    p.add_argument(
        "--max-seq-length",
        type=int,
        help="tokens per line, [CLS]/[SEP] included; longer lines are truncated (and counted)",
    )
    p.add_argument(
        "--precision",
        choices=["float32", "int8", "uint8", "binary", "ubinary"],
        default="float32",
        help="quantise the output as sentence-transformers' encode(precision=...); int8 / uint8 need "
        "--ranges or --calibration",
    )
    p.add_argument("--ranges", help=".npy of shape (2, D): per-dimension min and max for int8 / uint8")
    p.add_argument("--calibration", help=".npy of float embeddings (M, D) to take int8 / uint8 ranges from")
    p.add_argument(
        "--quantized-model",
        action="store_true",
        help="run a dynamically int8-quantised copy of the model (CPU; float output; benchmarks/README.md)",
    )
    p.add_argument("--compile", action="store_true", help="torch.compile the encoder layers (minilm.kernels)")
    p.add_argument("--device", help=DEVICE_HELP)
    p.add_argument("--shard", metavar="I/N", help="encode the I-th of N parts of the input into OUTPUT's part file")
    p.add_argument(
        "--chunk-lines",
        type=int,
        help="lines read, encoded and recorded at a time (default 4096, corpus.CHUNK_LINES); the unit of "
        "resumption and of sharding",
    )
    p.add_argument("--restart", action="store_true", help="discard an interrupted run's partial output")
    p.add_argument("--no-progress", action="store_true", help="no progress lines on stderr")
    p.set_defaults(run=cmd_encode)

    p = sub.add_parser("encode-join", help="join the parts of a sharded `minilm encode` into one .npy, in input order")
    p.add_argument("--output", required=True, help="the --output the shards were given")
    p.add_argument("--delete-parts", action="store_true", help="remove the part files and manifests once joined")
    p.set_defaults(run=cmd_encode_join)

    p = sub.add_parser(
        "compare",
        help="encode a file with minilm and with sentence-transformers and compare",
        description="Encode the lines of a file with minilm and with sentence-transformers (pip "
        "install 'minilm[compare]') from the same model folder; print max |difference|, "
        "the cosine between the two embeddings of each line, top-10 neighbour agreement "
        "and, with --pairs, both Spearman correlations. Exit status 1 when max "
        "|difference| exceeds --tolerance, 2 on an error.",
    )
    p.add_argument("--model", default=DEFAULT_MODEL, help="local directory or hub id")
    p.add_argument("--input", required=True, help="text file, one sentence per line (an STS file: --input-format sts)")
    p.add_argument(
        "--input-format",
        choices=["lines", "sts"],
        default="lines",
        help="sts: the sentences of both columns of an STS-benchmark file",
    )
    p.add_argument(
        "--pairs",
        help="scored pairs: an STS-benchmark file (--pairs-format sts) or a .csv/.tsv/.jsonl with columns a, b, score",
    )
    p.add_argument("--pairs-format", choices=["auto", "sts"], default="auto")
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest max |difference| that passes (1e-4)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--quantized-model", action="store_true", help="minilm's side runs its int8 model (CPU)")
    p.add_argument("--device", help=f"both models' device: {DEVICE_HELP}")
    p.set_defaults(run=cmd_compare)

    p = sub.add_parser("similarity", help="print the cosine similarity matrix of the given sentences")
    p.add_argument("--model", default=DEFAULT_MODEL, help="local directory or hub id")
    p.add_argument("sentences", nargs="+")
    p.set_defaults(run=cmd_similarity)

    p = sub.add_parser(
        "train",
        help="fine-tune as a recipe (recipes/*.toml) says",
        description="Fine-tune as a recipe says. Several processes or GPUs: "
        "torchrun --nproc_per_node N -m minilm train RECIPE (docs/distributed.md).",
    )
    p.add_argument("recipe", help="path to a recipe .toml")
    p.add_argument("--data", help="training file to use instead of the recipe's [data] train")
    p.add_argument("--output", help="output directory (default runs/<recipe name>)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe value, e.g. --set train.batch_size=8 --set loss.margin=0.5",
    )
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the output directory")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run in the output directory (its run.json, log.jsonl, final/, checkpoints/)",
    )
    p.add_argument("--quick", action="store_true", help="smoke test: 2 steps of at most 16 rows, small evaluation")
    p.add_argument(
        "--compile",
        action="store_true",
        help="same as --set train.compile=true: compiled layers, AdamW step and MNRL (minilm.kernels)",
    )
    p.add_argument("--device", help=f"same as --set train.device=...: {DEVICE_HELP}")
    p.set_defaults(run=cmd_train)

    p = sub.add_parser(
        "sweep",
        help="compare loss configurations over seeds: paired runs, intervals, plots",
        description="Run a sweep file: one base recipe, loss configurations x seeds, paired; writes "
        "sweep.csv, sweep.md and plots. Rerun it to finish a killed sweep (docs/research.md).",
    )
    p.add_argument("sweep", help="path to a sweep .toml (examples/sweeps/)")
    p.add_argument("--output", help="output directory (default runs/<sweep name>)")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time, each in its own process (default 1)")
    p.add_argument("--no-plots", action="store_true", help="write the tables only")
    p.add_argument(
        "--restart-changed",
        action="store_true",
        help="start over the runs whose loss code or data changed since they were recorded (refused otherwise); "
        "their results are discarded",
    )
    p.add_argument("--device", help=f"every run's [train] device: {DEVICE_HELP}")
    p.set_defaults(run=cmd_sweep)

    p = sub.add_parser("eval", help="evaluate a model on a file")
    p.add_argument("--model", help=f"local directory or hub id (default {DEFAULT_MODEL}, said in the output)")
    p.add_argument("--data", required=True, help=".csv/.tsv/.jsonl file, or an STS-benchmark file with --format sts")
    p.add_argument("--task", required=True, choices=["triplet", "similarity", "retrieval"])
    p.add_argument("--format", default="auto", choices=["auto", "sts"])
    p.add_argument(
        "--roles",
        nargs="*",
        metavar="ROLE=COLUMN",
        help="which column plays which role (default: columns named anchor/positive/negative or a/b/score)",
    )
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--device", help=DEVICE_HELP)
    p.set_defaults(run=cmd_eval)

    p = sub.add_parser(
        "plot",
        help="PNG charts of a training run: loss, learning rate, gradient norm, eval metrics",
        description="Read RUN_DIR/log.jsonl (the output directory of minilm train) and write one PNG "
        "per series. Needs matplotlib: pip install 'minilm[plot]'.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="output directory of minilm train")
    p.add_argument("--output", help="where to write the PNGs (default RUN_DIR/plots)")
    p.set_defaults(run=cmd_plot)
    return parser


def one_line(error: BaseException) -> str:
    return "; ".join(part.strip() for part in str(error).splitlines() if part.strip()) or type(error).__name__


def main(argv: list[str] | None = None) -> int:
    """Run a command. Every error ends as one line on stderr: exit status 2 for bad input (a file, key, line or argument
    named), 130 when interrupted, 1 for anything unforeseen (a bug: MINILM_DEBUG=1 shows its traceback)."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (OSError, ValueError, TypeError, TrainingDiverged, MissingExtra, UserCodeError) as e:
        # a bad model, file or input; a diverged run; an optional package not installed; the user's loss code raised
        print(f"minilm {args.command}: error: {one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"minilm {args.command}: interrupted", file=sys.stderr)
        return 130
    except (Exception, SystemExit) as e:
        frame = usercode.culprit(e)
        if frame is not None:  # the user's code raised or exited where no step names it (an extension's state_dict)
            print(f"minilm {args.command}: error: {usercode.describe(e)}{usercode.where(frame)}", file=sys.stderr)
            return 2
        if isinstance(e, SystemExit):
            raise
        if os.environ.get("MINILM_DEBUG"):
            raise
        print(
            f"minilm {args.command}: internal error, please report it: {type(e).__name__}: {one_line(e)} "
            f"(MINILM_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return 1
