"""Recipes: a TOML file that says what to fine-tune, on what, with which loss, and how to evaluate it.

Everything is checked here, before any model loads: unknown sections or keys, missing keys, wrong types, unknown
losses and loss settings, missing data files. Each error names the key (``[train] batch_size``) and what was wrong.
Paths in a recipe are relative to the recipe file.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from minilm.data.retrieval import CORPUS_ROLES, QUERY_ROLES
from minilm.evaluation.evaluators import metric_key
from minilm.evaluation.metrics import METRICS, TASKS
from minilm.loading.hub import looks_like_path
from minilm.losses.inputs import MODEL_ROLES, Needs, roles_of
from minilm.run.registry import (
    GUIDE_KEY,
    PAIRS_KEY,
    TEACHER_KEY,
    LossSpec,
    UnknownLossSettings,
    is_module_loss,
    makes_pairs,
)
from minilm.train.config import GRADIENT_CACHE_KEYS, TrainConfig, check_best_settings, train_schema
from minilm.train.distributed import process_device
from minilm.train.reporting import check_report_to
from minilm.train.wiring import refusal as extension_refusal
from minilm.util.devices import check_precision, check_tf32

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
    "train": train_schema(REQUIRED),  # from minilm.train_config.TrainConfig: one place for keys and defaults
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


def _check_section(raw: dict, section: str, where: Path, name: str = "") -> dict:
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


def _check_path(recipe_path: Path, value: str, key: str) -> str:
    resolved = (recipe_path.parent / value).resolve()
    if not resolved.is_file():
        raise RecipeError(f"{recipe_path}: {key} file {value} not found (looked at {resolved})")
    return str(resolved)


def _check_base(recipe_path: Path, base: str, key: str = "[model] base") -> str:
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
    head = _check_section(top, "", path)
    loss_raw = dict(sections["loss"])
    loss_head = _check_section({"name": loss_raw.pop("name")} if "name" in loss_raw else {}, "loss", path)
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
        model=_check_section(sections["model"], "model", path),
        data=_check_section(sections["data"], "data", path),
        loss=loss,
        train=_check_section(sections["train"], "train", path),
        eval=eval_tables(sections["eval"], path) if "eval" in sections else None,
    )
    recipe._loss_spec = spec  # resolved and checked above: the run holds this one
    _check_values(recipe)
    return recipe


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
        return _check_section(raw, "eval", where)
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
    return {name: _check_section(table, "eval", where, name) for name, table in named.items()}


def _check_eval(where: Path, name: str, e: dict) -> None:
    """One evaluation's values: task, format, sizes, files and the roles its task reads."""
    label = f"[eval.{name}]" if name else "[eval]"
    section = label[1:-1]
    if e["task"] not in TASKS:
        raise RecipeError(f"{where}: {label} task must be one of {sorted(TASKS)}, got {e['task']!r}")
    if e["format"] not in FORMATS:
        raise RecipeError(f"{where}: {label} format must be one of {FORMATS}, got {e['format']!r}")
    if e["batch_size"] < 1 or e["limit"] < 0:
        key, low = ("batch_size", ">= 1") if e["batch_size"] < 1 else ("limit", ">= 0 (0: every row)")
        raise RecipeError(f"{where}: {label} {key} must be {low}, got {e[key]}")
    e["data"] = _check_path(where, e["data"], f"{label} data")
    if e["corpus_roles"] and not e["corpus"]:
        raise RecipeError(f"{where}: {label} corpus_roles name the columns of a corpus file, but there is no corpus")
    if e["corpus"]:
        if e["task"] != "retrieval" or e["format"] != "auto":
            got = f"task {e['task']!r}" if e["task"] != "retrieval" else f"format {e['format']!r}"
            raise RecipeError(
                f"{where}: {label} corpus is a file of documents to retrieve, for task 'retrieval' with files read "
                f"by their suffix (.jsonl, .csv, .tsv), not {got}"
            )
        e["corpus"] = _check_path(where, e["corpus"], f"{label} corpus")
        for key, known in (("roles", QUERY_ROLES), ("corpus_roles", CORPUS_ROLES)):
            unknown = [role for role in e[key] if role not in known]
            bad = [role for role, column in e[key].items() if not isinstance(column, str)]
            if unknown or bad:
                raise RecipeError(
                    f"{where}: {label} {key} map {', '.join(known)} to a column name each"
                    f"{f'; unknown {unknown}' if unknown else ''}{f'; not a name: {bad}' if bad else ''}"
                )
        if not e["header"] and not e["columns"]:
            raise RecipeError(f"{where}: {label} header = false needs columns = [...] naming the cells in order")
        return
    _check_columns(where, section, e)
    _check_roles(where, section, e, TASKS[e["task"]], f"task {e['task']!r}")


def _check_values(r: Recipe) -> None:
    where, t = r.path, r.train
    for key in ("batch_size", "epochs"):
        if t[key] < 1:
            raise RecipeError(f"{where}: [train] {key} must be >= 1, got {t[key]}")
    for key in ("max_steps", "warmup_steps", "eval_steps", "save_steps", "mini_batch_size", "mini_batch_num_tokens"):
        if t[key] < 0:
            raise RecipeError(f"{where}: [train] {key} must be >= 0, got {t[key]}")
    if t["distributed_timeout_s"] <= 0:
        raise RecipeError(f"{where}: [train] distributed_timeout_s must be > 0, got {t['distributed_timeout_s']}")
    if not 0 <= t["seed"] < 2**63:
        raise RecipeError(f"{where}: [train] seed must be in [0, 2**63), got {t['seed']}")
    if t["keep_checkpoints"] < 1:
        raise RecipeError(f"{where}: [train] keep_checkpoints must be >= 1, got {t['keep_checkpoints']}")
    if t["loss_lr"] < 0:
        raise RecipeError(
            f"{where}: [train] loss_lr must be >= 0 (0: the loss's parameters use lr), got {t['loss_lr']}"
        )
    if t["loss_lr"] and not is_module_loss(r.loss_spec.function):
        raise RecipeError(
            f"{where}: [train] loss_lr is set, but loss {r.loss['name']!r} is a function without "
            f"parameters (an nn.Module loss has them)"
        )
    if t["lr"] <= 0 or t["max_grad_norm"] <= 0 or t["weight_decay"] < 0 or not 0 <= t["warmup_ratio"] <= 1:
        raise RecipeError(
            f"{where}: [train] needs lr > 0, max_grad_norm > 0, weight_decay >= 0, 0 <= warmup_ratio <= 1"
        )
    if t["warmup_steps"] and t["warmup_ratio"]:
        raise RecipeError(f"{where}: [train] give warmup_steps or warmup_ratio, not both")
    _check_device(r)
    declared = r.loss_needs
    if declared.guide:
        if GUIDE_KEY not in r.loss:
            raise RecipeError(
                f"{where}: missing key [loss] {GUIDE_KEY}: loss {r.loss['name']!r} masks false negatives "
                f"with a frozen guide model; name one, e.g. {GUIDE_KEY} = "
                f'"sentence-transformers/all-MiniLM-L6-v2" (a folder relative to the recipe, or a '
                f"hub id; the model being fine-tuned may be its own guide)"
            )
        r.loss[GUIDE_KEY] = _check_base(where, r.loss[GUIDE_KEY], f"[loss] {GUIDE_KEY}")
    if r.teacher_model:  # the loss takes one (check_loss_kwargs): its role must not also come from the file
        r.loss[TEACHER_KEY] = _check_base(where, r.loss[TEACHER_KEY], f"[loss] {TEACHER_KEY}")
        role = MODEL_ROLES[declared.kind]
        if role in r.data["roles"]:
            raise RecipeError(
                f"{where}: [loss] {TEACHER_KEY} names a teacher model ({r.loss[TEACHER_KEY]}) and "
                f"[data] roles name a teacher column ({role} = {r.data['roles'][role]!r}): the "
                f"teacher's embeddings come from one or the other; drop one"
            )
    # what the loss's extensions (a trained copy, every layer, a user's own) cannot run with, before any model loads
    problem = extension_refusal(declared, r.loss, repr(r.loss["name"]), TrainConfig.from_dict(t), 1)
    if problem is not None:
        raise RecipeError(f"{where}: [train] {problem}")
    for key in GRADIENT_CACHE_KEYS:
        if t[key] and declared.kind != "columns":
            raise RecipeError(f"{where}: [train] {key} (gradient cache) needs an in-batch loss, not {r.loss['name']}")
    if t["mini_batch_size"] and t["mini_batch_num_tokens"]:
        raise RecipeError(
            f"{where}: [train] give mini_batch_size (rows per mini-batch) or mini_batch_num_tokens "
            f"(real tokens per mini-batch), not both: the token budget decides the rows"
        )
    d = r.data
    if d["sampler"] not in SAMPLERS:
        raise RecipeError(f"{where}: [data] sampler must be one of {SAMPLERS}, got {d['sampler']!r}")
    if makes_pairs(declared) and d["sampler"] != "auto":
        raise RecipeError(
            f"{where}: [data] sampler {d['sampler']!r}: loss {r.loss['name']!r} builds its own batches "
            f"(identical and random pairs of one text column, {PAIRS_KEY} in [loss]); leave it auto"
        )
    if d["sampler"] == "group_by_label" and declared.kind != "labels":
        raise RecipeError(f"{where}: [data] sampler group_by_label needs a labelled loss, not {r.loss['name']}")
    if d["format"] not in FORMATS:
        raise RecipeError(f"{where}: [data] format must be one of {FORMATS}, got {d['format']!r}")
    r.model["base"] = _check_base(where, r.model["base"])
    d["train"] = _check_path(where, d["train"], "[data] train")
    _check_columns(where, "data", d)
    _check_roles(where, "data", d, declared, f"loss {r.loss['name']!r}", r.teacher_model)
    for name, e in r.evaluations.items():
        _check_eval(where, name, e)
    _check_best(r)


def metric_problem(r: Recipe, metric: str) -> str | None:
    """Why ``metric`` is not one the recipe's evaluations log (``name/metric`` with named evaluations), or None."""
    known = r.metric_names()
    if metric in known:
        return None
    named = "" not in r.evaluations
    hint = (
        f" (a metric of a named evaluation is <name>/<metric>, e.g. {known[0]!r})"
        if named and "/" not in metric
        else ""
    )
    what = "the evaluations" if named else f"the [eval] task {r.eval['task']!r}"
    return f"must be a metric of {what}: one of {known}, got {metric!r}{hint}"


def _check_device(r: Recipe) -> None:
    """[train] device is on this machine (each torchrun process's own GPU), and runs [train] precision and tf32."""
    t = r.train
    try:
        device = process_device(t["device"], "[train] device")
        check_precision(t["precision"], device, "[train] precision")
        check_tf32(t["tf32"], device, "[train] tf32")
    except ValueError as e:
        raise RecipeError(f"{r.path}: {e}") from None


def _check_best(r: Recipe) -> None:
    """metric_for_best names a metric the evaluations log; what uses it has the evaluations it needs; report_to."""
    where, t = r.path, r.train
    if t["metric_for_best"]:
        if r.eval is None:
            raise RecipeError(f"{where}: [train] metric_for_best = {t['metric_for_best']!r} needs an [eval] section")
        problem = metric_problem(r, t["metric_for_best"])
        if problem is not None:
            raise RecipeError(f"{where}: [train] metric_for_best {problem}")
    try:
        check_best_settings(TrainConfig.from_dict(t))
        check_report_to(t["report_to"])
    except ValueError as e:
        raise RecipeError(f"{where}: [train] {e}") from None


# The roles of a kind that name text columns (each a column name or a list of them), in order; the number of text
# columns they give must be one the loss declares. The other kinds have a fixed count their roles already pin down.
TEXT_ROLES = {
    "columns": ("anchor", "positive", "negative"),
    "teacher_scores": ("anchor", "positive", "negative"),
    "teacher_embeddings": ("text",),
}


def _check_roles(where: Path, section: str, d: dict, declared: Needs, user: str, teacher_model: bool = False) -> None:
    """The roles a section maps must give what ``user`` (a loss or an evaluation task) declares it needs (with a
    teacher model, the texts only)."""
    if declared.model_copy and (d["format"] == "sts" or not isinstance(d["roles"].get("text"), str)):
        got = "an STS file gives pairs" if d["format"] == "sts" else f"[{section}] roles are {d['roles']}"
        raise RecipeError(
            f"{where}: {got}, but {user} reads one text column, which the model and its trained copy "
            f'both embed: roles = {{ text = "<column>" }}'
        )
    if d["format"] == "sts":
        if declared.kind == "labels":
            raise RecipeError(f"{where}: [{section}] an STS file gives pairs or scores, but {user} needs labels")
        if not declared.accepts(2):
            raise RecipeError(
                f"{where}: [{section}] an STS file gives 2 text columns, but {user} needs {declared.describe()}"
            )
        return
    required, optional = roles_of(declared.kind, teacher_model, declared.model_copy)
    missing = [role for role in required if role not in d["roles"]]
    unknown = [role for role in d["roles"] if role not in required + optional]
    if missing or unknown:
        raise RecipeError(
            f"{where}: [{section}] roles {sorted(d['roles'])} do not fit {user}, which needs "
            f"{declared.describe()}; missing {missing}, unknown {unknown}"
        )
    text_roles = TEXT_ROLES.get(declared.kind)
    if text_roles is not None and not declared.model_copy:
        names = []
        for role in text_roles:
            value = d["roles"].get(role, [])
            names += [value] if isinstance(value, str) else list(value)
        if not declared.accepts(len(names)):
            raise RecipeError(
                f"{where}: [{section}] roles give {len(names)} text columns, but {user} needs "
                f"{declared.describe()}; the text columns named are {names}"
            )


def _check_columns(where: Path, section: str, d: dict) -> None:
    if d["format"] != "sts" and not d["roles"]:
        raise RecipeError(f"{where}: missing key [{section}] roles (which column plays which part)")
    if not all(isinstance(v, (str, list)) for v in d["roles"].values()):
        raise RecipeError(f"{where}: [{section}] roles must map each role to a column name")
    if not d["header"] and not d["columns"]:
        raise RecipeError(f"{where}: [{section}] header = false needs columns = [...] naming the cells in order")
    if not all(isinstance(c, str) for c in d["columns"]):
        raise RecipeError(f"{where}: [{section}] columns must be a list of column names")
