"""A sweep file, read and checked in full before any model loads: its configurations (grids expanded) and the
recipe of every run, each validated like a recipe given to ``minilm train``. The format: ``sweep.py``.

Every run of one seed gets the same sampler and the same pairing keys (seed, batch_size, epochs, max_steps), so
runs of different configurations are paired; a loss file named in a sweep is relative to the sweep file.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

import tomllib

from minilm.run.output_dir import data_fingerprint
from minilm.run.recipe import Recipe, RecipeError, apply_overrides, read_recipe, validate
from minilm.run.registry import (
    GUIDE_KEY,
    TEACHER_KEY,
    UnknownLossSettings,
    check_loss_kwargs,
    code_fingerprint,
    loss_needs,
    makes_pairs,
)

RUN_RECORD = "run.json"  # what a run is: its configuration, seed, full recipe and the fingerprints of its inputs
FINGERPRINTS = ("data_sha256", "code_sha256")  # the keys of a run record that say what its inputs were
RESULT = "result.json"  # written last: the run is finished
PAIRING_KEYS = ("seed", "batch_size", "epochs", "max_steps")  # what decides a run's batches: shared by every config
TOP_KEYS = {
    "name": str,
    "description": str,
    "recipe": str,
    "seeds": (list, int),
    "metric": str,
    "set": list,
    "keep": str,
    "configs": list,
}
CONFIG_KEYS = {"label": str, "loss": dict, "grid": dict, "lr": (float, int, list), "train": dict}
KEEP = ("none", "final")  # what stays of a finished run besides its log: nothing more, or its final model
MAX_RUNS = 10_000  # configurations x seeds: checked before anything is built


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
    data_sha256: dict = field(default_factory=dict)  # of its data files, by role
    code_sha256: dict = field(default_factory=dict)  # of every file of the user's loss code it runs

    def record(self) -> dict:
        """What the run is; not where it trains (``[train] device``: a rerun may finish it on another device)."""
        recipe = self.recipe.as_dict()
        recipe["train"].pop("device", None)
        return {
            "label": self.label,
            "config": self.index,
            "seed": self.seed,
            "recipe": recipe,
            FINGERPRINTS[0]: self.data_sha256,
            FINGERPRINTS[1]: self.code_sha256,
        }


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
    count = raw["seeds"] if isinstance(raw["seeds"], int) else len(raw["seeds"])
    if count > MAX_RUNS:  # before any list is built: seeds = 1000000000 would be gigabytes
        raise SweepError(
            f"{path}: seeds asks for {count} runs per configuration; a sweep runs at most {MAX_RUNS} runs in all "
            f"(configurations x seeds)"
        )
    seeds = list(range(raw["seeds"])) if isinstance(raw["seeds"], int) else raw["seeds"]
    if (
        not seeds
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds)
        or len(set(seeds)) != len(seeds)
    ):
        raise SweepError(f"{path}: seeds must be a positive count or a list of distinct ints, got {raw['seeds']!r}")
    keep = raw.get("keep", "none")
    if keep not in KEEP:
        raise SweepError(f"{path}: keep must be one of {KEEP}, got {keep!r}")
    if not raw["configs"]:
        raise SweepError(f"{path}: configs is empty: add [[configs]] tables (the first is the baseline)")
    sweep = Sweep(
        path,
        raw.get("name", path.stem),
        raw.get("description", ""),
        (path.parent / raw["recipe"]).resolve(),
        seeds,
        raw.get("metric"),
        keep,
        [],
    )
    for i, table in enumerate(raw["configs"], 1):
        sweep.configs += _expand(table, i, path, MAX_RUNS // len(seeds) - len(sweep.configs))
    labels = [c.label for c in sweep.configs]
    if len(set(labels)) != len(labels):
        raise SweepError(f"{path}: configuration labels must be distinct, got {labels}; give each a label")
    folders: dict[str, str] = {}
    for label in labels:  # one folder per configuration: two labels that slug alike would train into one
        other = folders.setdefault(_slug(label).casefold(), label)
        if other != label:
            raise SweepError(
                f"{path}: configurations {other!r} and {label!r} would share the run folder runs/{_slug(label)} "
                f"(a folder name keeps letters, digits and ._=+-; case is ignored); give one of them another label"
            )
    base_raw = _base_recipe(sweep, raw.get("set", []))
    sampler = _common_sampler(sweep, base_raw)
    output = Path(output) if output is not None else Path("runs") / sweep.name
    data: dict[tuple, dict] = {}  # every run reads the base recipe's data: hashed once
    for index, config in enumerate(sweep.configs):
        code = None
        for seed in seeds:
            recipe = _run_recipe(sweep, base_raw, config, seed, sampler)
            directory = output / "runs" / _slug(config.label) / f"seed-{seed}"
            files = (recipe.data["train"], *sorted(recipe.eval_files().items()))
            if files not in data:
                data[files] = data_fingerprint(recipe)
            if code is None:
                code = code_fingerprint(recipe.loss, recipe.path.parent)
            sweep.runs.append(RunSpec(index, config.label, seed, recipe, directory, keep, data[files], code))
    known = sweep.runs[0].recipe.metric_names()  # "name/metric" with named evaluations; checked before models load
    if sweep.metric is not None and sweep.metric not in known:
        hint = (
            " (a named evaluation's metric is <name>/<metric>)" if "/" in known[0] and "/" not in sweep.metric else ""
        )
        raise SweepError(f"{path}: metric {sweep.metric!r} is not one the evaluation gives: {known}{hint}")
    return sweep


def _check_types(table: dict, schema: dict, path: Path, where: str) -> None:
    for key, value in table.items():
        if key not in schema:
            raise SweepError(f"{path}: unknown key {where}{key}; known: {', '.join(schema)}")
        kinds = schema[key] if isinstance(schema[key], tuple) else (schema[key],)
        if not isinstance(value, kinds) or isinstance(value, bool):
            names = " or ".join(k.__name__ for k in kinds)
            raise SweepError(f"{path}: {where}{key} must be {names}, got {type(value).__name__} {value!r}")


def _expand(table: dict, number: int, path: Path, room: int) -> list[Config]:
    """One [[configs]] table -> its configurations: the product of its grid axes (and learning rates), refused
    before it is built when it is more than ``room`` (what MAX_RUNS leaves)."""
    where = f"[[configs]] {number}: "
    _check_types(table, CONFIG_KEYS, path, where)
    if "name" not in table.get("loss", {}):
        raise SweepError(f"{path}: {where}needs loss = {{ name = ... }} (a registry name or an import path)")
    loss = dict(table["loss"])
    loss["name"] = _loss_path(loss["name"], path.parent)
    for key in (GUIDE_KEY, TEACHER_KEY):
        if isinstance(loss.get(key), str):
            loss[key] = _model_path(loss[key], path.parent)
    grid = dict(table.get("grid", {}))
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise SweepError(f"{path}: {where}grid.{key} must be a non-empty list of values, got {values!r}")
    try:
        check_loss_kwargs(loss["name"], dict.fromkeys(grid), dry_run=False, base_dir=path.parent)
    except UnknownLossSettings as e:
        raise SweepError(
            f"{path}: {where}grid key{'s' if len(e.unknown) > 1 else ''} {', '.join(e.unknown)} "
            f"{'are' if len(e.unknown) > 1 else 'is'} not a setting of loss {e.name!r}; "
            f"it takes {', '.join(e.valid)}"
        ) from None
    except ValueError as e:
        raise SweepError(f"{path}: {where}{e}") from None
    train = dict(table.get("train", {}))
    fixed = [k for k in PAIRING_KEYS if k in train]
    if fixed:
        raise SweepError(
            f"{path}: {where}train sets {', '.join(fixed)}, which decide the batches a run sees; a "
            f"sweep pairs runs by giving every configuration the same: set them in the base recipe"
        )
    lrs = table.get("lr")
    lrs = [None] if lrs is None else lrs if isinstance(lrs, list) else [lrs]
    if not lrs or not all(
        lr is None or (isinstance(lr, (int, float)) and not isinstance(lr, bool) and lr > 0) for lr in lrs
    ):
        raise SweepError(f"{path}: {where}lr must be a positive number or a non-empty list of them, got {lrs!r}")
    size = math.prod(len(values) for values in grid.values()) * len(lrs)
    if size > room:
        raise SweepError(
            f"{path}: {where}grid and lr make {size} configurations; with the other configurations and the seeds "
            f"that is more than the {MAX_RUNS} runs a sweep runs at most"
        )
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


def _model_path(name: str, sweep_dir: Path) -> str:
    """A guide or teacher model folder named in a sweep is relative to the sweep file; a hub id stays as it is."""
    local = (sweep_dir / name).expanduser()
    return str(local.resolve()) if not Path(name).is_absolute() and local.is_dir() else name


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
        raise SweepError(
            f"{sweep.path}: the base recipe {sweep.base} has no [eval] table; a sweep compares the "
            f"evaluation metric of its runs"
        )
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
            declared.append(loss_needs(config.loss["name"], sweep.base.parent, config.loss))
        except ValueError as e:
            raise SweepError(f"{sweep.path}: configuration {config.label!r}: {e}") from None
    copies = {(d.model_copy, d.kind) for d in declared if d.model_copy}
    if copies and (len(copies) > 1 or not all(d.model_copy for d in declared)):
        labels = [c.label for c, d in zip(sweep.configs, declared) if d.model_copy]
        raise SweepError(
            f"{sweep.path}: configurations {labels} train against a copy of the model from one text "
            f"column, which the sweep's other configurations cannot share (its runs share the data): "
            f"sweep Contrastive Tension on its own, one form at a time"
        )
    if any(makes_pairs(d) for d in declared):
        return "auto"  # its own pair sampler, the only one it takes
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
