"""Recipes: a TOML file that says what to fine-tune, on what, with which loss, and how to evaluate it.

A recipe is read, overridden (``--set``), and checked in full here, before any model loads: unknown sections or keys,
missing keys and wrong types against the schema (schema.py), then what the values mean together (recipe_checks.py):
unknown losses and loss settings, missing data files, roles that do not fit the loss. Each error names the key
(``[train] batch_size``) and what was wrong. Paths in a recipe are relative to the recipe file.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from minilm.evaluation.evaluators import metric_key
from minilm.evaluation.metrics import METRICS
from minilm.losses.inputs import Needs
from minilm.run.recipe_checks import TEXT_ROLES, check_values, metric_problem
from minilm.run.registry import TEACHER_KEY, LossSpec, UnknownLossSettings
from minilm.run.schema import (
    EVAL_NAME,
    FORMATS,
    OPTIONAL_SECTIONS,
    REQUIRED,
    SAMPLERS,
    SCHEMA,
    RecipeError,
    check_section,
    eval_tables,
)

# The schema's and the checks' names, importable from here as before they had modules of their own.
__all__ = [
    "EVAL_NAME",
    "FORMATS",
    "OPTIONAL_SECTIONS",
    "REQUIRED",
    "SAMPLERS",
    "SCHEMA",
    "TEXT_ROLES",
    "Recipe",
    "RecipeError",
    "apply_overrides",
    "eval_tables",
    "load_recipe",
    "make_quick",
    "metric_problem",
    "parse_override",
    "read_recipe",
    "validate",
]


@dataclass
class Recipe:
    path: Path
    name: str
    description: str
    model: dict
    data: dict
    loss: dict  # {"name": ..., **settings}
    train: dict
    eval: dict | None
    overrides: tuple = ()  # the command line's --set / --data / --quick, as typed (recorded with the run)
    _loss_spec: LossSpec | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def loss_spec(self) -> LossSpec:
        """The [loss] table resolved once (a file path in it is relative to the recipe's folder); resolved again only
        if the table has changed since (a sweep's configuration, an override)."""
        spec = self._loss_spec
        if spec is None or spec.name != self.loss["name"] or spec.settings != self.loss_settings():
            self._loss_spec = spec = LossSpec.resolve(self.loss["name"], self.loss_settings(), self.path.parent)
        return spec

    @property
    def loss_needs(self) -> Needs:
        """What rows the loss declares it needs (``@minilm.losses.needs``)."""
        return self.loss_spec.needs

    def loss_settings(self) -> dict:
        return {k: v for k, v in self.loss.items() if k != "name"}

    @property
    def evaluations(self) -> dict[str, dict]:
        """Every evaluation by name: the [eval.<name>] tables, or the one [eval] table under the name "" (whose
        metrics keep their plain names)."""
        if self.eval is None:
            return {}
        return {"": self.eval} if "task" in self.eval else self.eval

    def metric_names(self) -> list[str]:
        """What the evaluations log: ``name/metric`` for each metric of each named evaluation (plain names for the
        one unnamed evaluation), in order: what metric_for_best and a sweep's metric choose from."""
        return [metric_key(name, m) for name, e in self.evaluations.items() for m in METRICS[e["task"]]]

    def eval_files(self) -> dict[str, str]:
        """Every file the evaluations read, by a key naming it ("eval", "eval.corpus"; "eval.<name>", ...)."""
        files = {}
        for name, e in self.evaluations.items():
            key = f"eval.{name}" if name else "eval"
            files[key] = e["data"]
            if e["corpus"]:
                files[f"{key}.corpus"] = e["corpus"]
        return files

    @property
    def teacher_model(self) -> bool:
        """Whether a teacher model ([loss] teacher), not a data column, gives the teacher's embeddings."""
        return self.loss.get(TEACHER_KEY) is not None

    def as_dict(self) -> dict:
        out = {
            "name": self.name,
            "description": self.description,
            "model": self.model,
            "data": self.data,
            "loss": self.loss,
            "train": self.train,
        }
        if self.eval is not None:
            out["eval"] = self.eval
        return copy.deepcopy(out)


def make_quick(recipe: Recipe) -> Recipe:
    """A smoke-test version of ``recipe``: two small steps and a small evaluation, everything else unchanged."""
    t = recipe.train
    t.update(
        max_steps=2,
        batch_size=min(t["batch_size"], 16),
        save_steps=0,
        eval_steps=0,
        load_best_at_end=False,
        early_stopping_patience=0,
    )
    if t["mini_batch_size"]:
        t["mini_batch_size"] = min(t["mini_batch_size"], 8)
    for e in recipe.evaluations.values():
        e["limit"] = 32
    return recipe


def parse_override(text: str) -> tuple[list[str], object]:
    """``train.batch_size=8`` -> (["train", "batch_size"], 8); the value is read as a TOML value, else as a string."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise RecipeError(f"--set {text!r}: expected key=value, e.g. train.batch_size=8")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return key.strip().split("."), parsed


def load_recipe(path: str | Path, overrides: list[str] = (), data: str | None = None) -> Recipe:
    path = Path(path)
    raw = read_recipe(path)
    renamed = apply_overrides(raw, overrides)
    if data is not None:
        raw.setdefault("data", {})["train"] = str(Path(data).resolve())
    return validate(raw, path, renamed)


def read_recipe(path: Path) -> dict:
    """The recipe file as TOML, unchecked (``validate`` checks it)."""
    if not path.is_file():
        raise RecipeError(f"recipe {path} does not exist")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"{path}: not valid TOML: {e}") from None


def apply_overrides(raw: dict, overrides: list[str]) -> str | None:
    """Apply ``--set key=value`` items to ``raw`` in place; returns the item that renamed the loss, if one did."""
    recipe_loss = raw.get("loss", {}).get("name") if isinstance(raw.get("loss"), dict) else None
    renamed = None  # "--set loss.name=X": the recipe's other [loss] settings belong to its own loss
    for text in overrides:
        keys, value = parse_override(text)
        if keys == ["loss", "name"] and value != recipe_loss:
            renamed = text
        node = raw
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise RecipeError(f"--set {text!r}: {k} is not a section")
        node[keys[-1]] = value
    return renamed


def validate(raw: dict, path: Path, renamed: str | None = None) -> Recipe:
    """The checked recipe; ``renamed`` is the ``--set loss.name=...`` that replaced the recipe's loss, if any."""
    sections = {k: v for k, v in raw.items() if isinstance(v, dict)}
    top = {k: v for k, v in raw.items() if not isinstance(v, dict)}
    for name in sections:
        if name not in SCHEMA:
            raise RecipeError(f"{path}: unknown section [{name}]; known: {', '.join(s for s in SCHEMA if s)}")
    for name in SCHEMA:
        if name and name not in sections and name not in OPTIONAL_SECTIONS:
            raise RecipeError(f"{path}: missing section [{name}]")
    head = check_section(top, "", path)
    loss_raw = dict(sections["loss"])
    loss_head = check_section({"name": loss_raw.pop("name")} if "name" in loss_raw else {}, "loss", path)
    try:
        spec = LossSpec.resolve(loss_head["name"], loss_raw, path.parent)
        spec.check()
    except UnknownLossSettings as e:
        if renamed is None:
            raise RecipeError(f"{path}: [loss] {e}") from None
        raise RecipeError(
            f"{path}: --set {renamed} replaced the recipe's loss, but its [loss] settings "
            f"{', '.join(e.unknown)} belong to the old loss; loss {e.name!r} takes {', '.join(e.valid)}. "
            f"Replace the whole table to drop them: --set 'loss={{name=\"{e.name}\"}}' "
            f"(settings of the new loss go inside the braces)"
        ) from None
    except ValueError as e:
        raise RecipeError(f"{path}: [loss] {e}") from None
    loss = {"name": loss_head["name"], **loss_raw}
    recipe = Recipe(
        path=path,
        name=head["name"],
        description=head["description"],
        model=check_section(sections["model"], "model", path),
        data=check_section(sections["data"], "data", path),
        loss=loss,
        train=check_section(sections["train"], "train", path),
        eval=eval_tables(sections["eval"], path) if "eval" in sections else None,
    )
    recipe._loss_spec = spec  # resolved and checked above: the run holds this one
    check_values(recipe)
    return recipe
