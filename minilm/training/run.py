"""Turn a checked recipe into data, sampler, loss, evaluator and trainer, and run it (``minilm train`` / ``minilm eval``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from minilm.card import TrainingCard
from minilm.evaluation import TASKS, evaluate_retrieval, evaluate_similarity, evaluate_triplets
from minilm.training import distributed
from minilm.training.citations import describe_loss
from minilm.training.config import non_defaults
from minilm.training.data import read_rows, read_sts, role_columns, to_roles
from minilm.training.recipe import Recipe
from minilm.training.registry import make_loss
from minilm.training.samplers import GroupByLabelBatchSampler, NoDuplicatesBatchSampler, RandomBatchSampler
from minilm.training.trainer import TrainConfig, TrainData, Trainer, checkpoints

STS_COLUMNS = ("sentence1", "sentence2", "score")  # what read_roles gives of an STS file, as the card names them


def read_roles(path: str, fmt: str, roles: dict, kind: str, min_score: float = 4.0, header: bool = True,
               columns: list | None = None):
    """What a loss or evaluator of ``kind`` needs from a file (see ``data.to_roles``)."""
    if fmt == "sts":
        s1, s2, scores = read_sts(path)
        if kind == "scores":
            return s1, s2, [s / 5.0 for s in scores]  # 0-5 gold rescaled to 0-1, as sentence-transformers' examples do
        if kind == "columns":
            keep = [i for i, s in enumerate(scores) if s >= min_score]
            return [[s1[i] for i in keep], [s2[i] for i in keep]]
        raise ValueError(f"{path}: an STS file gives pairs or scores, not labels")
    return to_roles(read_rows(path, columns=columns or None, has_header=header), roles, kind)


def load_train_data(recipe: Recipe) -> TrainData:
    d, declared = recipe.data, recipe.loss_needs
    got = read_roles(d["train"], d["format"], d["roles"], declared.kind, d["min_score"], d["header"], d["columns"])
    if declared.target is None:
        return TrainData(columns=got)
    *columns, targets = got
    return TrainData(columns=list(columns), targets=list(targets), target_name=declared.target)


def sampler_name(recipe: Recipe) -> str:
    """The recipe's [data] sampler, "auto" resolved: in-batch negatives must not meet their own text; batch-hard
    needs label pairs."""
    name = recipe.data["sampler"]
    if name == "auto":
        declared = recipe.loss_needs
        name = "no_duplicates" if declared.in_batch_negatives else "group_by_label" if declared.kind == "labels" \
            else "random"
    return name


def make_sampler(recipe: Recipe, data: TrainData):
    name, batch_size, seed = sampler_name(recipe), recipe.train["batch_size"], recipe.train["seed"]
    if name == "group_by_label":
        return GroupByLabelBatchSampler(data.targets, batch_size, seed=seed)
    if name == "no_duplicates":
        return NoDuplicatesBatchSampler(data.columns, batch_size, seed=seed)
    return RandomBatchSampler(len(data), batch_size, seed=seed)


def make_evaluator(task: str, path: str, fmt: str = "auto", roles: dict | None = None, batch_size: int = 32,
                   limit: int = 0, header: bool = True, columns: list | None = None) -> Callable:
    """A function model -> metrics dict for ``task`` on the file at ``path``."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    roles = roles or default_roles(task)
    got = read_roles(path, fmt, roles, TASKS[task].kind, header=header, columns=columns)
    if limit:
        got = [column[:limit] for column in got]
    if task == "triplet":
        if len(got) != 3:
            raise ValueError(f"{path}: triplet evaluation needs anchor, positive and negative columns")
        return lambda model: evaluate_triplets(model, *got, batch_size=batch_size)
    if task == "similarity":
        return lambda model: evaluate_similarity(model, *got, batch_size=batch_size)
    anchors, positives = got[0], got[1]
    corpus_ids = {text: i for i, text in enumerate(dict.fromkeys(positives))}  # identical documents are one document
    queries = {i: text for i, text in enumerate(anchors)}
    relevant = {i: {corpus_ids[positives[i]]} for i in range(len(anchors))}
    corpus = {i: text for text, i in corpus_ids.items()}
    return lambda model: evaluate_retrieval(model, queries, corpus, relevant, batch_size=batch_size)


def default_roles(task: str) -> dict:
    """Column names assumed when ``minilm eval`` is given none: the role names themselves."""
    if task == "similarity":
        return {"a": "a", "b": "b", "score": "score"}
    if task == "retrieval":
        return {"anchor": "anchor", "positive": "positive"}
    return {"anchor": "anchor", "positive": "positive", "negative": "negative"}


def training_card(recipe: Recipe, data: TrainData) -> TrainingCard:
    """What the model card says about this run before it starts: base model, data, loss, hyperparameters."""
    d, kind = recipe.data, recipe.loss_needs.kind
    names = list(STS_COLUMNS[: 3 if kind == "scores" else 2]) if d["format"] == "sts" else role_columns(d["roles"], kind)
    values = data.columns + ([data.targets] if data.targets is not None else [])
    config = TrainConfig.from_dict(recipe.train)
    sampler = {"sampler": sampler_name(recipe)}
    e = recipe.eval
    return TrainingCard(
        base_model=recipe.model["base"],
        dataset_name=Path(d["train"]).name,
        columns=dict(zip(names, values)),
        loss=describe_loss(recipe.loss["name"], recipe.loss_settings(), recipe.path.parent),
        hyperparameters={**asdict(config), **sampler},
        non_default={**non_defaults(config), **(sampler if d["sampler"] != "auto" else {})},
        eval_task=e["task"] if e else None,
        eval_dataset=Path(e["data"]).stem if e else None,
    )


def run_recipe(recipe: Recipe, output_dir: str | Path, resume: bool = False, log=print) -> list[dict]:
    """Fine-tune as ``recipe`` says; returns the evaluation history (before, every eval_steps, after).

    Launched by torchrun, every process runs this: it joins the process group (and leaves it at the end), and only
    rank 0 logs; the others return an empty history.
    """
    created = distributed.init_from_env(recipe.train["distributed_timeout_s"])
    try:
        return _run(recipe, Path(output_dir), resume, log if distributed.rank() == 0 else lambda _: None)
    finally:
        if created:
            distributed.shutdown()


def _run(recipe: Recipe, output_dir: Path, resume: bool, log) -> list[dict]:
    from minilm.encoder import SentenceEncoder

    distributed.check_batch_size(recipe.train["batch_size"], distributed.world_size())  # before anything loads
    data = load_train_data(recipe)  # data and evaluator are read before the model: bad rows fail fast
    sampler = make_sampler(recipe, data)
    loss_fn = make_loss(recipe.loss["name"], recipe.loss_settings(), recipe.path.parent)
    evaluate = None
    if recipe.eval is not None:
        e = recipe.eval
        evaluate = make_evaluator(e["task"], e["data"], e["format"], e["roles"], e["batch_size"], e["limit"],
                                  e["header"], e["columns"])
    found = checkpoints(output_dir) if resume else []
    if resume and not found:
        raise FileNotFoundError(f"--resume: no complete checkpoint under {output_dir / 'checkpoints'}")
    model = SentenceEncoder.from_pretrained(found[-1] / "model" if found else recipe.model["base"],
                                            device=distributed.device())
    trainer = Trainer(model, loss_fn, data, sampler, TrainConfig.from_dict(recipe.train), evaluate, output_dir, log,
                      card=training_card(recipe, data))
    if found:
        trainer.resume_from(found[-1])
        log(f"resumed from {found[-1]} at step {trainer.step}")
    world = distributed.world_size()
    per_rank = f" ({world} processes x {recipe.train['batch_size'] // world})" if world > 1 else ""
    log(f"{recipe.name}: {len(data)} rows, {trainer.total_steps} steps of batch {recipe.train['batch_size']}"
        f"{per_rank}, loss {recipe.loss['name']}")
    return trainer.train()
