"""The checks of a recipe's values, once each table has the schema's keys and types (schema.py): [train]'s
ranges and device, the loss against its data and its extensions' refusals, each evaluation's task, files and roles,
and metric_for_best against what the evaluations log. Each error is a RecipeError naming the file and the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from minilm.data.retrieval import CORPUS_ROLES, QUERY_ROLES
from minilm.evaluation.metrics import TASKS
from minilm.losses.inputs import MODEL_ROLES, Needs, roles_of
from minilm.run.registry import GUIDE_KEY, PAIRS_KEY, TEACHER_KEY, is_module_loss, makes_pairs
from minilm.run.schema import FORMATS, SAMPLERS, RecipeError, check_base, check_path
from minilm.train.config import GRADIENT_CACHE_KEYS, TrainConfig, check_best_settings, check_learning_rates
from minilm.train.distributed import process_device
from minilm.train.reporting import check_report_to
from minilm.train.wiring import refusal as extension_refusal
from minilm.util.devices import check_precision, check_tf32

if TYPE_CHECKING:
    from minilm.run.recipe import Recipe


def check_values(r: Recipe) -> None:
    """Every value of ``r`` (a recipe whose tables fit the schema), paths resolved in place; the first problem is a
    RecipeError."""
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
        r.loss[GUIDE_KEY] = check_base(where, r.loss[GUIDE_KEY], f"[loss] {GUIDE_KEY}")
    if r.teacher_model:  # the loss takes one (check_loss_kwargs): its role must not also come from the file
        r.loss[TEACHER_KEY] = check_base(where, r.loss[TEACHER_KEY], f"[loss] {TEACHER_KEY}")
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
    r.model["base"] = check_base(where, r.model["base"])
    d["train"] = check_path(where, d["train"], "[data] train")
    _check_columns(where, "data", d)
    _check_roles(where, "data", d, declared, f"loss {r.loss['name']!r}", r.teacher_model)
    for name, e in r.evaluations.items():
        _check_eval(where, name, e)
    _check_best(r)


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
    e["data"] = check_path(where, e["data"], f"{label} data")
    if e["corpus_roles"] and not e["corpus"]:
        raise RecipeError(f"{where}: {label} corpus_roles name the columns of a corpus file, but there is no corpus")
    if e["corpus"]:
        if e["task"] != "retrieval" or e["format"] != "auto":
            got = f"task {e['task']!r}" if e["task"] != "retrieval" else f"format {e['format']!r}"
            raise RecipeError(
                f"{where}: {label} corpus is a file of documents to retrieve, for task 'retrieval' with files read "
                f"by their suffix (.jsonl, .csv, .tsv), not {got}"
            )
        e["corpus"] = check_path(where, e["corpus"], f"{label} corpus")
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
    try:
        check_device_settings(r.train)
    except ValueError as e:
        raise RecipeError(f"{r.path}: {e}") from None


def check_device_settings(t: dict, prefix: str = "") -> None:
    """A [train] table's device is on this machine (each torchrun process's own GPU) and runs its precision and tf32;
    else a ValueError naming the setting, after ``prefix`` (a sweep names its run)."""
    device = process_device(t["device"], f"{prefix}[train] device")
    check_precision(t["precision"], device, f"{prefix}[train] precision")
    check_tf32(t["tf32"], device, f"{prefix}[train] tf32")


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
        check_learning_rates(TrainConfig.from_dict(t))
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
