"""``minilm sweep SWEEP.toml``: one base recipe, a grid of loss configurations (and learning rates) x N seeds.

A sweep file names a base recipe (its data, model, evaluation and training settings) and the configurations to
compare; the first is the baseline::

    recipe = "../../recipes/default_triplets.toml"   # relative to this file
    seeds = [1, 2, 3]                                # or seeds = 3 for 0, 1, 2
    metric = "cosine_accuracy"                       # default: the evaluation's first metric
    set = ["train.max_steps=20"]                     # --set items applied to the base recipe for every run

    [[configs]]
    loss = { name = "mnrl", report = true }

    [[configs]]
    loss = { name = "triplet", distance = "cosine", report = true }
    grid = { margin = [0.1, 0.3] }                   # one configuration per value (a product over several keys)
    lr = [2e-5, 5e-5]                                # a learning rate, or a list of them (another grid axis)
    train = { loss_lr = 1e-2 }                       # other [train] keys of this configuration

Runs are **paired**: for one seed every configuration gets the same sampler (the base recipe's, or the one the
losses' declarations call for), hence the same batches in the same order, and the same dropout seed, so differences
between configurations are paired differences (``sweep_stats.py``). A configuration may not set what decides the
batches (seed, batch_size, epochs, max_steps).

**Cheap**: the base model is read once and copied per run, texts are tokenised once (one tokenizer cache shared by
every run), the training data and the evaluator are built once, and the evaluation before training, the same for
every run, is computed once. **Resumable**: each run lives in ``OUTPUT/runs/<config>/seed-<s>/`` (the trainer's
log.jsonl and checkpoints, ``run.json`` saying what it is, ``result.json`` once finished); a rerun skips finished
runs and resumes unfinished ones from their newest checkpoint. ``jobs`` > 1 runs that many at a time in forked
worker processes, each with its share of the CPU threads. Every file the sweep writes is written beside its target
and renamed into place. The tables and plots: ``sweep_report.py``.
"""

from __future__ import annotations

import copy
import json
import multiprocessing
import re
import shutil
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import torch

from minilm.checks import check_texts
from minilm.training.recipe import Recipe, RecipeError, apply_overrides, read_recipe, validate
from minilm.training.registry import UnknownLossSettings, check_loss_kwargs, loss_needs

RUN_RECORD = "run.json"  # what a run is: its configuration, seed and full recipe
RESULT = "result.json"  # written last: the run is finished
PAIRING_KEYS = ("seed", "batch_size", "epochs", "max_steps")  # what decides a run's batches: shared by every config
TOP_KEYS = {"name": str, "description": str, "recipe": str, "seeds": (list, int), "metric": str, "set": list,
            "keep": str, "configs": list}
CONFIG_KEYS = {"label": str, "loss": dict, "grid": dict, "lr": (float, int, list), "train": dict}
KEEP = ("none", "final")  # what stays of a finished run besides its log: nothing more, or its final model


class SweepError(ValueError):
    """A sweep file that cannot run; the message names the file and the key."""


@dataclass
class Config:
    label: str
    loss: dict  # {"name": ..., **settings}
    train: dict  # [train] keys this configuration sets (lr included)


@dataclass
class RunSpec:
    index: int  # of the configuration: 0 is the baseline
    label: str
    seed: int
    recipe: Recipe
    directory: Path
    keep: str = "none"  # KEEP: what stays of it besides its log and result

    def record(self) -> dict:
        return {"label": self.label, "config": self.index, "seed": self.seed, "recipe": self.recipe.as_dict()}


@dataclass
class Sweep:
    path: Path
    name: str
    description: str
    base: Path  # the base recipe
    seeds: list[int]
    metric: str | None
    keep: str
    configs: list[Config]
    runs: list[RunSpec] = field(default_factory=list)


# ------------------------------------------------------------------------------------------- reading the sweep file


def load_sweep(path: str | Path, output: str | Path | None = None) -> Sweep:
    """Read and check a sweep file, and build (and check) the recipe of every run: all before any model loads."""
    path = Path(path)
    if not path.is_file():
        raise SweepError(f"sweep file {path} does not exist")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise SweepError(f"{path}: not valid TOML: {e}") from None
    _check_types(raw, TOP_KEYS, path, "")
    for key in ("recipe", "seeds", "configs"):
        if key not in raw:
            raise SweepError(f"{path}: missing key {key}")
    seeds = list(range(raw["seeds"])) if isinstance(raw["seeds"], int) else raw["seeds"]
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds) or \
            len(set(seeds)) != len(seeds):
        raise SweepError(f"{path}: seeds must be a positive count or a list of distinct ints, got {raw['seeds']!r}")
    keep = raw.get("keep", "none")
    if keep not in KEEP:
        raise SweepError(f"{path}: keep must be one of {KEEP}, got {keep!r}")
    if not raw["configs"]:
        raise SweepError(f"{path}: configs is empty: add [[configs]] tables (the first is the baseline)")
    sweep = Sweep(path, raw.get("name", path.stem), raw.get("description", ""), (path.parent / raw["recipe"]).resolve(),
                  seeds, raw.get("metric"), keep, [])
    for i, table in enumerate(raw["configs"], 1):
        sweep.configs += _expand(table, i, path)
    labels = [c.label for c in sweep.configs]
    if len(set(labels)) != len(labels):
        raise SweepError(f"{path}: configuration labels must be distinct, got {labels}; give each a label")
    base_raw = _base_recipe(sweep, raw.get("set", []))
    sampler = _common_sampler(sweep, base_raw)
    output = Path(output) if output is not None else Path("runs") / sweep.name
    for index, config in enumerate(sweep.configs):
        for seed in seeds:
            recipe = _run_recipe(sweep, base_raw, config, seed, sampler)
            directory = output / "runs" / _slug(config.label) / f"seed-{seed}"
            sweep.runs.append(RunSpec(index, config.label, seed, recipe, directory, keep))
    return sweep


def _check_types(table: dict, schema: dict, path: Path, where: str) -> None:
    for key, value in table.items():
        if key not in schema:
            raise SweepError(f"{path}: unknown key {where}{key}; known: {', '.join(schema)}")
        kinds = schema[key] if isinstance(schema[key], tuple) else (schema[key],)
        if not isinstance(value, kinds) or isinstance(value, bool):
            names = " or ".join(k.__name__ for k in kinds)
            raise SweepError(f"{path}: {where}{key} must be {names}, got {type(value).__name__} {value!r}")


def _expand(table: dict, number: int, path: Path) -> list[Config]:
    """One [[configs]] table -> its configurations: the product of its grid axes (and learning rates)."""
    where = f"[[configs]] {number}: "
    _check_types(table, CONFIG_KEYS, path, where)
    if "name" not in table.get("loss", {}):
        raise SweepError(f"{path}: {where}needs loss = {{ name = ... }} (a registry name or an import path)")
    loss = dict(table["loss"])
    loss["name"] = _loss_path(loss["name"], path.parent)
    grid = dict(table.get("grid", {}))
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise SweepError(f"{path}: {where}grid.{key} must be a non-empty list of values, got {values!r}")
    try:
        check_loss_kwargs(loss["name"], {k: None for k in grid}, dry_run=False, base_dir=path.parent)
    except UnknownLossSettings as e:
        raise SweepError(f"{path}: {where}grid key{'s' if len(e.unknown) > 1 else ''} {', '.join(e.unknown)} "
                         f"{'are' if len(e.unknown) > 1 else 'is'} not a setting of loss {e.name!r}; "
                         f"it takes {', '.join(e.valid)}") from None
    except ValueError as e:
        raise SweepError(f"{path}: {where}{e}") from None
    train = dict(table.get("train", {}))
    fixed = [k for k in PAIRING_KEYS if k in train]
    if fixed:
        raise SweepError(f"{path}: {where}train sets {', '.join(fixed)}, which decide the batches a run sees; a "
                         f"sweep pairs runs by giving every configuration the same: set them in the base recipe")
    lrs = table.get("lr")
    lrs = [None] if lrs is None else lrs if isinstance(lrs, list) else [lrs]
    if not lrs or not all(lr is None or (isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0)
                          for lr in lrs):
        raise SweepError(f"{path}: {where}lr must be a positive number or a non-empty list of them, got {lrs!r}")
    short = loss["name"].rpartition(":")[2]
    configs = []
    for values in product(*grid.values(), lrs):
        *settings, lr = values
        chosen = dict(zip(grid, settings))
        label = table.get("label", short)
        label += "".join(f" {k}={v}" for k, v in chosen.items()) + (f" lr={lr:g}" if lr is not None else "")
        configs.append(Config(label.strip(), {**loss, **chosen}, {**train, **({"lr": float(lr)} if lr else {})}))
    return configs


def _loss_path(name: str, sweep_dir: Path) -> str:
    """A loss file named in a sweep is relative to the sweep file (the recipe would read it relative to itself)."""
    where, colon, attribute = name.rpartition(":")
    if colon and where.endswith(".py") and not Path(where).is_absolute():
        return f"{(sweep_dir / where).resolve()}:{attribute}"
    return name


def _base_recipe(sweep: Sweep, overrides: list) -> dict:
    if not all(isinstance(item, str) for item in overrides):
        raise SweepError(f"{sweep.path}: set must be a list of KEY=VALUE strings, got {overrides!r}")
    try:
        raw = read_recipe(sweep.base)
        apply_overrides(raw, overrides)
    except RecipeError as e:
        raise SweepError(f"{sweep.path}: recipe: {e}") from None
    if "seed" in raw.get("train", {}) and any(item.strip().startswith("train.seed") for item in overrides):
        raise SweepError(f"{sweep.path}: set gives train.seed, but a sweep's seeds come from its seeds key")
    if "eval" not in raw:
        raise SweepError(f"{sweep.path}: the base recipe {sweep.base} has no [eval] table; a sweep compares the "
                         f"evaluation metric of its runs")
    return raw


def _common_sampler(sweep: Sweep, base_raw: dict) -> str:
    """One sampler for every run: the recipe's, else no_duplicates if any loss uses in-batch negatives (a no-duplicates
    batch is a fine batch for the others), group_by_label for labelled losses, random otherwise."""
    chosen = base_raw.get("data", {}).get("sampler", "auto")
    if chosen != "auto":
        return chosen
    declared = []
    for config in sweep.configs:
        try:
            declared.append(loss_needs(config.loss["name"], sweep.base.parent))
        except ValueError as e:
            raise SweepError(f"{sweep.path}: configuration {config.label!r}: {e}") from None
    if any(d.in_batch_negatives for d in declared):
        return "no_duplicates"
    return "group_by_label" if any(d.kind == "labels" for d in declared) else "random"


def _run_recipe(sweep: Sweep, base_raw: dict, config: Config, seed: int, sampler: str) -> Recipe:
    raw = copy.deepcopy(base_raw)
    raw["loss"] = dict(config.loss)
    raw.setdefault("train", {}).update(config.train, seed=seed)
    raw.setdefault("data", {})["sampler"] = sampler
    try:
        return validate(raw, sweep.base)
    except RecipeError as e:
        raise SweepError(f"{sweep.path}: configuration {config.label!r}: {e}") from None


def _slug(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", label).strip("_") or "config"


# ------------------------------------------------------------------------------------------- running it


class CachedTokenizer:
    """Wraps a WordPieceTokenizer so that each distinct text is tokenised once; the output is the same (the same ids,
    padded by the same ``pad``). A sweep's runs share one: every run's batches and evaluations reuse its ids."""

    def __init__(self, inner):
        self.inner, self.ids = inner, {}

    def encode_ids(self, texts: list[str]) -> list[list[int]]:
        check_texts(texts)
        missing = [t for t in dict.fromkeys(texts) if t not in self.ids]
        if missing:
            self.ids.update(zip(missing, self.inner.encode_ids(missing)))
        return [self.ids[t] for t in texts]

    def __call__(self, texts: list[str]):
        return self.inner.pad(self.encode_ids(texts))

    def __getattr__(self, name: str):  # pad, max_seq_length, files, pad_id: the wrapped tokenizer's
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


@dataclass
class Shared:
    """What every run of a sweep shares: read, tokenised and evaluated once."""

    model: object  # the base SentenceEncoder (a CachedTokenizer inside); each run trains a copy
    data: object  # TrainData
    evaluate: Callable
    before: dict  # the evaluation of the base model
    log: Callable[[str], None]

    def copy_model(self):
        return copy.deepcopy(self.model, memo={id(self.model.tokenizer): self.model.tokenizer})


def run_sweep(path: str | Path, output: str | Path | None = None, jobs: int = 1, plots: bool = True,
              log: Callable[[str], None] = print) -> list[dict]:
    """Run every pending run of the sweep, then write sweep.csv, sweep.md and the plots; returns the results."""
    from minilm.training.sweep_report import write_plots, write_tables

    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"--jobs must be a positive int, got {jobs!r}")
    sweep = load_sweep(path, output)
    output = Path(output) if output is not None else Path("runs") / sweep.name
    pending = [run for run in sweep.runs if not _finished(run)]
    pending.sort(key=lambda run: (sweep.seeds.index(run.seed), run.index))  # seed by seed: pairs complete early
    log(f"sweep {sweep.name}: {len(sweep.configs)} configurations x {len(sweep.seeds)} seeds; "
        f"{len(sweep.runs) - len(pending)} finished, {len(pending)} to run")
    if pending:
        start = time.perf_counter()
        shared = _prepare(sweep, log)
        _check_metric(sweep, shared.before)
        log(f"base model, data and evaluation before training ready in {time.perf_counter() - start:.1f} s")
        for result in _execute(pending, shared, jobs):
            log(f"[{result['label']} seed {result['seed']}] {result['status']} in {result['seconds']:.1f} s")
            write_tables(sweep, output)
    write_tables(sweep, output)
    if plots:
        write_plots(sweep, output, log)
    return [json.loads((run.directory / RESULT).read_text(encoding="utf-8")) for run in sweep.runs
            if _finished(run)]


def _finished(run: RunSpec) -> bool:
    """A finished run of this very configuration; a directory started for another one is refused, not reused."""
    record = run.directory / RUN_RECORD
    if record.is_file():
        if json.loads(record.read_text(encoding="utf-8")) != json.loads(json.dumps(run.record())):
            raise SweepError(f"{run.directory} holds a run of another configuration (its {RUN_RECORD} differs from "
                             f"{run.label!r} seed {run.seed} of this sweep): use another --output, or remove it")
    return (run.directory / RESULT).is_file()


def _prepare(sweep: Sweep, log) -> Shared:
    from minilm.encoder import SentenceEncoder
    from minilm.training.run import load_train_data, recipe_evaluator

    first = sweep.runs[0].recipe  # data and evaluation are the base recipe's, the same for every run
    data = load_train_data(first)
    evaluate = recipe_evaluator(first)
    model = SentenceEncoder.from_pretrained(first.model["base"])
    model.tokenizer = CachedTokenizer(model.tokenizer)
    model.tokenizer.encode_ids([text for column in data.columns for text in column])  # once, before any fork
    before = evaluate(model)
    log("eval of the base model: " + "  ".join(f"{k} {v:.4f}" for k, v in before.items()))
    return Shared(model, data, evaluate, before, log)


def _check_metric(sweep: Sweep, before: dict) -> None:
    if sweep.metric is None:
        sweep.metric = next(iter(before))
    elif sweep.metric not in before:
        raise SweepError(f"{sweep.path}: metric {sweep.metric!r} is not one the evaluation gives: {sorted(before)}")


_WORK: tuple[list[RunSpec], Shared] | None = None  # what forked workers inherit


def _execute(pending: list[RunSpec], shared: Shared, jobs: int):
    """Yield each run's result as it finishes: in this process, or in ``jobs`` forked workers."""
    global _WORK
    if jobs == 1 or len(pending) == 1:
        for run in pending:
            yield train_run(run, shared)
        return
    _WORK = (pending, shared)  # the workers inherit the model, the data and the tokenizer cache through fork
    threads = max(1, torch.get_num_threads() // jobs)
    try:
        with multiprocessing.get_context("fork").Pool(jobs, initializer=torch.set_num_threads,
                                                      initargs=(threads,)) as pool:
            yield from pool.imap_unordered(_train_in_worker, range(len(pending)))
    finally:
        _WORK = None


def _train_in_worker(i: int) -> dict:
    pending, shared = _WORK
    return train_run(pending[i], shared)


def train_run(run: RunSpec, shared: Shared) -> dict:
    """Train one run (resuming from its newest checkpoint if it has one), record its result, free its checkpoints."""
    from minilm.training.config import TrainConfig
    from minilm.training.run import build_loss, make_sampler
    from minilm.training.trainer import Trainer, TrainingDiverged, checkpoints
    from minilm.weights import load_weights

    start = time.perf_counter()
    directory = run.directory
    directory.mkdir(parents=True, exist_ok=True)
    write_atomic(directory / RUN_RECORD, json.dumps(run.record(), indent=2) + "\n")
    found = checkpoints(directory)
    model = shared.copy_model()
    if found:
        load_weights(model.bert, found[-1] / "model")
        evaluate = shared.evaluate
    else:  # a fresh start: what an earlier attempt left before its first checkpoint goes
        for stale in (directory / "log.jsonl", directory / "checkpoints", directory / "final"):
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink(missing_ok=True)
        evaluate = _first_call_gives(shared.before, shared.evaluate)  # the base model's, evaluated once
    prefix = f"[{run.label} seed {run.seed}] "
    trainer = Trainer(model, build_loss(run.recipe, model, shared.data), shared.data,
                      make_sampler(run.recipe, shared.data), TrainConfig.from_dict(run.recipe.train), evaluate,
                      directory, lambda line: shared.log(prefix + line))
    trainer.save_final = run.keep == "final"
    if found:
        trainer.resume_from(found[-1])
        shared.log(f"{prefix}resumed from {found[-1].name}")
    status, error = "done", None
    try:
        trainer.train()
    except TrainingDiverged as e:
        status, error = "diverged", str(e)
    result = {**run.record(), "status": status, "error": error, "steps": trainer.step, "history": trainer.history,
              "seconds": time.perf_counter() - start}
    del result["recipe"]
    write_atomic(directory / RESULT, json.dumps(result, indent=2) + "\n")
    shutil.rmtree(directory / "checkpoints", ignore_errors=True)  # only a resume needed them
    return result


def _first_call_gives(result: dict, evaluate: Callable) -> Callable:
    """An evaluator whose first call (step 0: the untouched base model) returns ``result`` without evaluating."""
    calls = []

    def evaluate_once(model) -> dict:
        calls.append(1)
        return dict(result) if len(calls) == 1 else evaluate(model)

    return evaluate_once


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write beside ``path`` and rename into place: readers see the old file or the new one, never a part."""
    tmp = path.with_name(f".{path.name}.tmp")
    if isinstance(data, str):
        tmp.write_text(data, encoding="utf-8")
    else:
        tmp.write_bytes(data)
    tmp.replace(path)
