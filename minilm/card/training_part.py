"""The training part of a model card: what ``minilm train`` knows about a run (``TrainingCard``, filled in by
run.py and the trainer) and the sections it becomes: evaluation, training data, loss, hyperparameters, logs."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from minilm.card.markdown import cell, html_list, indent, join_words, number, table

STATS_ROWS = 1000  # token statistics from the first this many rows, as sentence-transformers' cards say
# minilm's evaluation tasks and the sentence-transformers evaluator each one reproduces (minilm/evaluation/metrics.py).
EVALUATORS = {
    "triplet": "TripletEvaluator",
    "similarity": "EmbeddingSimilarityEvaluator",
    "retrieval": "InformationRetrievalEvaluator",
}
ST_LOSSES_URL = "https://sbert.net/docs/package_reference/sentence_transformer/losses.html"
ST_EVALUATION_URL = "https://sbert.net/docs/package_reference/sentence_transformer/evaluation.html"


@dataclass
class LossCard:
    """The loss a model was trained with, as the card shows it."""

    name: str  # as the recipe names it: "mnrl", "my_losses.py:my_loss"
    function: str  # the Python object that computed it, "module.qualname"
    settings: dict  # every setting it was called with, defaults included
    st_names: list[str] = field(default_factory=list)  # sentence-transformers' counterparts (outermost first)
    citations: dict[str, str] = field(default_factory=dict)  # heading -> BibTeX; none for a loss that declares none


@dataclass
class TrainingCard:
    """What ``minilm train`` knows about a run. run.py fills in the fixed part, the trainer the rest at each save."""

    base_model: str
    dataset_name: str
    columns: dict[str, list]  # training data: column name -> values (texts, int labels or float scores)
    loss: LossCard
    hyperparameters: dict  # every [train] setting (and the sampler), in order
    non_default: dict  # those that differ from the defaults
    eval_task: str | None = None
    eval_dataset: str | None = None
    # named evaluations ([eval.<name>] tables): (name, task, dataset) each; their metrics are logged as name/metric
    evaluations: list[tuple[str, str, str]] = field(default_factory=list)
    log: list[dict] = field(default_factory=list)  # the run's log.jsonl records
    steps_per_epoch: int = 0
    evaluation: dict | None = None  # metrics of the model being saved (an evaluation at its own step), else None
    metric_for_best: str = ""
    best_step: int | None = None  # the saved model is the best checkpoint of this step: its log row is bold
    environment: dict = field(default_factory=dict)  # what it trained on: device, precision, dtype, torch, cuda
    _stats: dict | None = field(default=None, repr=False)  # column statistics, computed once per run

    def text_columns(self) -> list[list[str]]:
        return [values for values in self.columns.values() if values and isinstance(values[0], str)]

    def column_stats(self, tokenizer) -> dict[str, dict]:
        if self._stats is None:
            self._stats = {name: column_stats(values[:STATS_ROWS], tokenizer) for name, values in self.columns.items()}
        return self._stats


def evaluation_section(training: TrainingCard) -> str:
    """Its metrics at the saved model's step: one table, or one per named evaluation (headed by its name)."""
    metrics = metrics_of(training.evaluation)
    if not training.evaluations:
        parts = [_evaluation_part(training, training.eval_task or "evaluation", training.eval_dataset, "", metrics)]
    else:
        parts = [
            _evaluation_part(
                training,
                task,
                dataset,
                name,
                {k: v for k, v in metrics.items() if k.startswith(f"{name}/")},
            )
            for name, task, dataset in training.evaluations
        ]
    return "\n\n".join(["## Evaluation\n\n### Metrics", *parts])


def _evaluation_part(training: TrainingCard, task: str, dataset: str | None, name: str, metrics: dict) -> str:
    evaluator = EVALUATORS.get(task)
    best = training.metric_for_best
    rows = [
        [f"**{k}**" if k == best else k, f"**{number(v)}**" if k == best else number(v)] for k, v in metrics.items()
    ]
    used = (
        (
            f"[<code>{evaluator}</code>]({ST_EVALUATION_URL}#sentence_transformers.sentence_transformer.evaluation."
            f"{evaluator}) (minilm's task `{task}`, which reproduces it)"
        )
        if evaluator
        else f"<code>{task}</code>"
    )
    return "\n".join(
        [
            f"#### {name} ({task.title()})" if name else f"#### {task.title()}",
            "",
            f"* Dataset: `{dataset}`",
            f"* Evaluated with {used} at step {training.evaluation.get('step', '?')}",
            "",
            table(["Metric", "Value"], rows),
        ]
    )


def dataset_section(training: TrainingCard, tokenizer) -> str:
    names = list(training.columns)
    size = len(training.columns[names[0]]) if names else 0
    stats = training.column_stats(tokenizer)
    stats_rows = [
        ["type", *(stats[n]["dtype"] for n in names)],
        ["details", *(html_list(stats[n]["data"]) for n in names)],
    ]
    samples = [[f"<code>{cell(training.columns[n][i])}</code>" for n in names] for i in range(min(3, size))]
    loss = training.loss
    st_name = loss.st_names[0] if loss.st_names else None
    if st_name:
        shown = (
            f"[<code>{st_name}</code>]({ST_LOSSES_URL}#{st_name.lower()}) (minilm's `{loss.name}`, "
            f"<code>{loss.function}</code>)"
        )
    else:
        shown = f"<code>{loss.function}</code> (`{loss.name}`)"
    settings = json.dumps(loss.settings, indent=4, default=str)
    return "\n".join(
        [
            "### Training Dataset",
            "",
            f"#### {training.dataset_name}",
            "",
            f"* Size: {size:,} training samples",
            f"* Columns: {join_words([f'<code>{n}</code>' for n in names])}",
            f"* Approximate statistics based on the first {min(size, STATS_ROWS)} samples:",
            indent(table(["", *names], stats_rows)),
            "* Samples:",
            indent(table(names, samples)),
            f"* Loss: {shown} with these parameters:",
            indent(f"```json\n{settings}\n```"),
        ]
    )


# minilm's [train] keys -> sentence-transformers' (transformers' TrainingArguments) names, with the value translated
# where the two say it differently (max_steps 0 is -1 there; no eval_steps means no evaluation strategy).
ST_NAMES = {
    "eval_steps": "eval_steps",
    "batch_size": "per_device_train_batch_size",
    "lr": "learning_rate",
    "weight_decay": "weight_decay",
    "max_grad_norm": "max_grad_norm",
    "epochs": "num_train_epochs",
    "max_steps": "max_steps",
    "warmup_ratio": "warmup_ratio",
    "warmup_steps": "warmup_steps",
    "save_steps": "save_steps",
    "keep_checkpoints": "save_total_limit",
    "seed": "seed",
    "compile": "torch_compile",
    "metric_for_best": "metric_for_best_model",
    "greater_is_better": "greater_is_better",
    "load_best_at_end": "load_best_model_at_end",
    "report_to": "report_to",
    "sampler": "batch_sampler",
}
# What minilm's AdamW and schedule always are (minilm/train/optim.py), under sentence-transformers' names.
FIXED = {
    "gradient_accumulation_steps": 1,
    "adam_beta1": 0.9,
    "adam_beta2": 0.999,
    "adam_epsilon": 1e-08,
    "lr_scheduler_type": "linear",
    "optim": "adamw_torch",  # minilm's own AdamW computes torch's (tests/train/test_optim.py)
}
# transformers' TrainingArguments defaults for those names: what "Non-Default" is measured against, as in its cards.
ST_DEFAULTS = {
    "eval_strategy": "no",
    "per_device_train_batch_size": 8,
    "learning_rate": 5e-05,
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
    "num_train_epochs": 3,
    "max_steps": -1,
    "warmup_ratio": 0.0,
    "warmup_steps": 0,
    "save_steps": 500,
    "save_total_limit": None,
    "seed": 42,
    "torch_compile": False,
    "metric_for_best_model": None,
    "greater_is_better": None,
    "load_best_model_at_end": False,
    "report_to": "none",
    "batch_sampler": "batch_sampler",
    **FIXED,
}


def st_hyperparameters(hyperparameters: dict) -> dict:
    """The run's settings under sentence-transformers' names (in its cards' order), then minilm's own settings,
    which have no counterpart there, under their [train] names."""
    out = {"eval_strategy": "steps" if hyperparameters.get("eval_steps") else "no"}
    for ours, theirs in ST_NAMES.items():
        if ours in hyperparameters:
            value = hyperparameters[ours]
            if ours == "max_steps" and value == 0:
                value = -1
            elif ours == "metric_for_best" and value == "":
                value = None
            elif ours == "greater_is_better" and not hyperparameters.get("metric_for_best"):
                value = None  # as transformers: set only with a metric to compare
            elif ours == "report_to":  # log.jsonl is always written; what else the run reported to
                value = [r for r in value if r != "jsonl"] or "none"
            out[theirs] = value
        if theirs == "max_grad_norm":
            out.update(FIXED)
    out.update({k: v for k, v in hyperparameters.items() if k not in ST_NAMES})
    return out


def hyperparameters_section(training: TrainingCard) -> str:
    every = st_hyperparameters(training.hyperparameters)
    ours = {ST_NAMES.get(k, k) for k in training.non_default}
    non_default = {
        k: v
        for k, v in every.items()
        if (k in ST_DEFAULTS and v != ST_DEFAULTS[k]) or (k not in ST_DEFAULTS and k in ours)
    }
    lines = ["### Training Hyperparameters"]
    if non_default:
        lines += ["#### Non-Default Hyperparameters", ""]
        lines += [f"- `{k}`: {v}" for k, v in non_default.items()]
        lines.append("")
    lines += ["#### All Hyperparameters", "<details><summary>Click to expand</summary>", ""]
    lines += [f"- `{k}`: {v}" for k, v in every.items()]
    lines += ["", "</details>"]
    return "\n".join(lines)


def environment_section(training: TrainingCard) -> str:
    """Where and in which precision the model was trained (``minilm.util.devices.environment``)."""
    env = training.environment
    if not env:
        return ""
    mixed = env.get("precision", "fp32") != "fp32"
    precision = (
        f"{env['precision']} (the forward under autocast in {env.get('dtype')}; float32 weights and optimiser state)"
        if mixed
        else "fp32 (float32 throughout)"
    )
    return "\n".join(
        [
            "### Training Environment",
            f"- Device: {env.get('device')}",
            f"- Precision: {precision}",
            f"- PyTorch: {env.get('torch')}, CUDA: {env.get('cuda')}",
        ]
    )


def logs_section(training: TrainingCard) -> str:
    """One row per evaluation and about twenty rows of training loss (each the mean since the previous loss row)."""
    steps = {r["step"]: r for r in training.log if "loss" in r}
    evals = {r["step"]: r["eval"] for r in training.log if "eval" in r}
    if not steps and not evals:
        return ""
    last = max([*steps, *evals])
    every = max(1, -(-last // 20))
    shown = sorted({s for s in steps if s % every == 0} | {last} | set(evals))
    metrics = list(dict.fromkeys(k for e in evals.values() for k in e))
    # one evaluation's metrics are prefixed with its dataset, as sentence-transformers' cards do; named ones are
    # already name/metric
    prefix = snake(training.eval_dataset) + "_" if training.eval_dataset and not training.evaluations else ""
    rows, since = [], 0
    for step in shown:
        window = [
            steps[s]["loss"] for s in range(since + 1, step + 1) if s in steps and steps[s].get("loss") is not None
        ]  # a loss the run could not log is left out
        loss = f"{sum(window) / len(window):.4f}" if window and step in steps else "-"
        if step in steps:
            since = step
        epoch = f"{round(step / training.steps_per_epoch, 4)}" if training.steps_per_epoch else "-"
        row = [epoch, str(step), loss] + [
            number(evals[step][m]) if step in evals and m in evals[step] else "-" for m in metrics
        ]
        if step == training.best_step:
            row = [f"**{cell}**" for cell in row]
        rows.append(row)
    text = "### Training Logs\n" + table(
        ["Epoch", "Step", "Training Loss", *(prefix + m for m in metrics)], rows, center=True
    )
    if training.best_step is not None and training.best_step in shown:
        saved = training.evaluation is not None and training.evaluation.get("step") == training.best_step
        text += f"\n* The bold row denotes the best `{training.metric_for_best}`" + (
            ": the model saved here." if saved else "."
        )
    return text


def widget(training: TrainingCard) -> list[dict]:
    """Up to five rows as the hub's widget shows them: a text and the row's other texts (plus other rows' to 3)."""
    texts = training.text_columns()
    if len(texts) < 2:
        return []
    n = min(5, len(texts[0]))
    out = []
    for i in range(n):
        others = [column[i] for column in texts[1:]]
        others += [texts[1][j] for j in range(len(texts[1])) if j != i][: max(0, 3 - len(others))]
        out.append({"source_sentence": texts[0][i], "sentences": others[:3]})
    return out


def column_stats(values: list, tokenizer) -> dict:
    """Type and details of one column, as sentence-transformers' cards give them: token lengths (with [CLS]/[SEP],
    after truncation) for texts, the share of each label for ints, min/mean/max for floats."""
    if not values:
        return {"dtype": "unknown", "data": {}}
    first = values[0]
    if isinstance(first, str):
        lengths = [len(ids) for ids in tokenizer.encode_ids(list(values))]
        return {
            "dtype": "string",
            "data": {
                "min": f"{min(lengths)} tokens",
                "mean": f"{round(sum(lengths) / len(lengths), 2)} tokens",
                "max": f"{max(lengths)} tokens",
            },
        }
    if isinstance(first, (bool, int)):
        counts: dict = {}
        for v in values:
            counts[v] = counts.get(v, 0) + 1
        approx = "~" if len(counts) > 1 else ""
        return {
            "dtype": type(first).__name__,
            "data": {k: f"{approx}{counts[k] / len(values):.2%}" for k in sorted(counts)},
        }
    if isinstance(first, float):
        return {
            "dtype": "float",
            "data": {
                "min": round(min(values), 2),
                "mean": round(sum(values) / len(values), 2),
                "max": round(max(values), 2),
            },
        }
    return {"dtype": type(first).__name__, "data": {}}


def metrics_of(evaluation: dict) -> dict:
    return {k: v for k, v in evaluation.items() if k != "step"}


def snake(name: str | None) -> str:
    return re.sub(r"[^0-9a-zA-Z]+", "_", name or "").strip("_").lower()
