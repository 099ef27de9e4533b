"""The recipe's schema: its sections, each key's type and default (``SCHEMA``), and one table checked against it.

A table's keys, types and defaults are checked here, and its paths resolved (relative to the recipe file); what the
values mean together (a loss and its data, the evaluations, [train]) is checked in recipe_checks.py. The [train]
table's keys and defaults come from ``TrainConfig`` (minilm/train/config.py), so they are declared once.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path

from minilm.loading.hub import looks_like_path
from minilm.train.config import train_schema

REQUIRED = object()

# section -> key -> (type or tuple of types, default or REQUIRED)
SCHEMA: dict[str, dict[str, tuple]] = {
    "": {"name": (str, REQUIRED), "description": (str, "")},
    "model": {"base": (str, REQUIRED)},
    "data": {
        "train": (str, REQUIRED),  # a .csv/.tsv/.jsonl file, or an STS-benchmark file with format = "sts"
        "format": (str, "auto"),  # "auto" (by suffix) or "sts"
        "roles": (dict, {}),  # role -> column name, e.g. {anchor = "query", positive = "product"}
        "header": (bool, True),  # false: the file has no header row and `columns` names its cells in order
        "columns": (list, []),
        "min_score": (float, 4.0),  # format "sts" with a pair loss: pairs scoring at least this are positives
        "sampler": (str, "auto"),  # "auto", "random", "no_duplicates" or "group_by_label"
        "drop_last": (bool, False),  # true: a batch shorter than batch_size (an epoch's last) is left out
    },
    "loss": {"name": (str, REQUIRED)},  # registry name or import path; plus the loss's own settings
    "train": train_schema(REQUIRED),  # from minilm.train.config.TrainConfig: one place for keys and defaults
    # one evaluation's table, or several named ones: [eval.<name>] tables, each with these keys (``eval_tables``)
    "eval": {
        "task": (str, REQUIRED),  # "triplet", "similarity" or "retrieval"
        "data": (str, REQUIRED),  # with a corpus: the queries and their relevant ids (minilm/data/retrieval.py)
        "format": (str, "auto"),
        "roles": (dict, {}),  # with a corpus: {query = ..., relevant = ...}, by default those names
        "header": (bool, True),
        "columns": (list, []),
        "batch_size": (int, 32),
        "limit": (int, 0),  # > 0: this many rows (queries) drawn at random, the same ones every run (evaluators.py)
        "corpus": (str, ""),  # retrieval: a file of documents with ids, distractors included; "": the positives
        "corpus_roles": (dict, {}),  # the corpus file's columns: {id = ..., text = ...}, by default those names
    },
}
EVAL_NAME = re.compile(r"[A-Za-z0-9_-]+")  # a named evaluation's name: its metrics are logged as name/metric
OPTIONAL_SECTIONS = {"eval"}
SAMPLERS = ("auto", "random", "no_duplicates", "group_by_label")
FORMATS = ("auto", "sts")


class RecipeError(ValueError):
    """A recipe that cannot run; the message names the file and the key."""


def check_section(raw: dict, section: str, where: Path, name: str = "") -> dict:
    """``raw`` checked against SCHEMA[section] (``name``: a named table of it, e.g. [eval.sts]), defaults filled."""
    schema = SCHEMA[section]
    label = f"[{section}.{name}] " if name else f"[{section}] " if section else ""
    out = {}
    for key in raw:
        if key not in schema:
            raise RecipeError(f"{where}: unknown key {label}{key}; known: {', '.join(schema)}")
    for key, (kind, default) in schema.items():
        if key not in raw:
            if default is REQUIRED:
                raise RecipeError(f"{where}: missing key {label}{key}")
            out[key] = copy.deepcopy(default)
            continue
        value = raw[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise RecipeError(f"{where}: {label}{key} must be {kind.__name__}, got {type(value).__name__} {value!r}")
        if kind is float and not math.isfinite(value):  # TOML and --set accept nan and inf; no setting means them
            raise RecipeError(f"{where}: {label}{key} must be a finite number, got {value!r}")
        out[key] = value
    return out


def check_path(recipe_path: Path, value: str, key: str) -> str:
    resolved = (recipe_path.parent / value).resolve()
    if not resolved.is_file():
        raise RecipeError(f"{recipe_path}: {key} file {value} not found (looked at {resolved})")
    return str(resolved)


def check_base(recipe_path: Path, base: str, key: str = "[model] base") -> str:
    """[model] base (or [loss] guide): a folder beside the recipe (relative paths are the recipe's, like every path
    in it), an absolute folder, or a hub id. A relative name that can only be a path must be a folder beside the
    recipe."""
    if Path(base).expanduser().is_absolute():
        return base
    local = (recipe_path.parent / base).resolve()
    if local.is_dir():
        return str(local)
    if looks_like_path(base):
        raise RecipeError(f"{recipe_path}: {key} folder {base} not found (looked at {local}, relative to the recipe)")
    return base


def eval_tables(raw: dict, where: Path) -> dict:
    """[eval]: one evaluation's settings (the single-table form), or named evaluations, one [eval.<name>] table each;
    each checked against the schema. The one form or the other, never both in one recipe."""
    nested = {k for k, (kind, _) in SCHEMA["eval"].items() if kind is dict}  # roles: a table inside one evaluation
    named = {k: v for k, v in raw.items() if isinstance(v, dict) and k not in nested}
    settings = [k for k in raw if k not in named]
    if "task" in raw or not named:
        if named:
            raise RecipeError(
                f"{where}: [eval] holds one evaluation's settings ({', '.join(settings)}) and named evaluations "
                f"({', '.join(f'[eval.{k}]' for k in named)}): give every evaluation its own [eval.<name>] table"
            )
        return check_section(raw, "eval", where)
    if settings:
        raise RecipeError(
            f"{where}: [eval] has named evaluations ({', '.join(f'[eval.{k}]' for k in named)}) and also "
            f"{', '.join(settings)} outside them: every setting goes inside an evaluation's own table"
        )
    for name in named:
        if not EVAL_NAME.fullmatch(name):
            raise RecipeError(
                f"{where}: [eval.{name}]: an evaluation's name is letters, digits, _ and - (its metrics are logged "
                f"as <name>/<metric>), got {name!r}"
            )
    return {name: check_section(table, "eval", where, name) for name, table in named.items()}
