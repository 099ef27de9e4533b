"""Turn a checked recipe into data, sampler, loss, evaluator and trainer, and run it (``minilm train``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path

import torch

from minilm.card import TrainingCard
from minilm.data.dataset import TextPairs, TrainData
from minilm.data.readers import STS_COLUMNS, read_roles, role_columns
from minilm.evaluation.evaluators import evaluate_all, make_evaluator
from minilm.run.citations import describe_loss
from minilm.run.output_dir import claim as output_dir_claim
from minilm.run.output_dir import run_record
from minilm.run.preflight import check_teacher_scores, check_teacher_width, checked_sampler
from minilm.run.recipe import Recipe
from minilm.run.registry import GUIDE_KEY, PAIRS_DEFAULT, PAIRS_KEY, TEACHER_KEY, makes_pairs
from minilm.train import distributed
from minilm.train.checkpoints import newest_usable_checkpoint
from minilm.train.config import non_defaults
from minilm.train.extensions import RunContext
from minilm.train.samplers import (
    GroupByLabelBatchSampler,
    NoDuplicatesBatchSampler,
    RandomBatchSampler,
    TensionPairSampler,
)
from minilm.train.trainer import TrainConfig, Trainer
from minilm.train.wiring import build_extensions


def load_train_data(recipe: Recipe) -> TrainData:
    d, declared = recipe.data, recipe.loss_needs
    got = read_roles(
        d["train"],
        d["format"],
        d["roles"],
        declared.kind,
        d["min_score"],
        d["header"],
        d["columns"],
        recipe.teacher_model,
        declared.model_copy,
    )
    if declared.model_copy:  # one text column: pairs of it (0/1 scores), or the same texts through both models
        return TextPairs(got[0]) if makes_pairs(declared) else TrainData(columns=[got[0], list(got[0])])
    if declared.target is None or recipe.teacher_model:  # a teacher model gives the targets at each step
        return TrainData(columns=got)
    *columns, targets = got
    return TrainData(columns=list(columns), targets=list(targets), target_name=declared.target)


def run_context(model, data: TrainData) -> dict:
    """What a loss class may ask the run for (``inputs.CONTEXT``): the embedding width, and for labelled data the
    number of classes (labels are class indices 0..num_labels - 1, so a head has a row for each)."""
    context = {"embedding_dim": model.embedding_dim}
    if data.target_name == "labels" and min(data.targets) >= 0:  # negative labels index nothing: a loss asking fails
        context["num_labels"] = max(data.targets) + 1
    return context


def build_loss(recipe: Recipe, model, data: TrainData) -> Callable:
    """The recipe's loss, settings bound; a loss class is built with the run's context, its random initial
    parameters drawn from ``[train] seed`` alone (not from whatever ran before in the process)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe.train["seed"])
        return recipe.loss_spec.build(run_context(model, data))


def build_trainer(
    recipe: Recipe,
    model,
    data: TrainData,
    sampler,
    evaluate: Callable | None,
    output_dir: Path | None,
    log: Callable[[str], None],
    load_model: Callable | None = None,
    card: bool = True,
) -> Trainer:
    """The one place a recipe's trainer is assembled, for ``minilm train`` and each run of ``minilm sweep``: the loss
    bound, and every extension its declaration wants built (``load_model`` loads a frozen model the recipe names;
    a sweep passes one that loads each model once)."""
    from minilm.encoder import SentenceEncoder

    config = TrainConfig.from_dict(recipe.train)
    loss_fn = build_loss(recipe, model, data)
    if load_model is None:  # frozen models embed on the run's device
        device = distributed.process_device(config.device)
        load_model = functools.partial(SentenceEncoder.from_pretrained, device=device)
    run = RunContext(
        model,
        loss_fn,
        config,
        settings=dict(recipe.loss),
        target_name=data.target_name,
        load_model=load_model,
        world_size=distributed.world_size(),
    )
    return Trainer(
        model,
        loss_fn,
        data,
        sampler,
        config,
        evaluate,
        output_dir,
        log,
        card=training_card(recipe, data) if card else None,
        extensions=build_extensions(run),
    )


def sampler_name(recipe: Recipe) -> str:
    """The recipe's [data] sampler, "auto" resolved: in-batch negatives must not meet their own text; batch-hard
    needs label pairs."""
    name = recipe.data["sampler"]
    if makes_pairs(recipe.loss_needs):  # the only sampler that makes its rows (the recipe refuses any other)
        return "tension_pairs"
    if name == "auto":
        declared = recipe.loss_needs
        name = (
            "no_duplicates"
            if declared.in_batch_negatives
            else "group_by_label"
            if declared.kind == "labels"
            else "random"
        )
    return name


def make_sampler(recipe: Recipe, data: TrainData):
    name, batch_size, seed = sampler_name(recipe), recipe.train["batch_size"], recipe.train["seed"]
    drop_last = recipe.data["drop_last"]
    if name == "tension_pairs":  # whole batches only, whatever drop_last says: each batch has the same mix
        return TensionPairSampler(len(data), batch_size, recipe.loss.get(PAIRS_KEY, PAIRS_DEFAULT), seed=seed)
    if name == "group_by_label":
        return GroupByLabelBatchSampler(data.targets, batch_size, seed=seed, drop_last=drop_last)
    if name == "no_duplicates":
        return NoDuplicatesBatchSampler(data.columns, batch_size, seed=seed, drop_last=drop_last)
    return RandomBatchSampler(len(data), batch_size, seed=seed, drop_last=drop_last)


def recipe_evaluator(recipe: Recipe) -> Callable | None:
    """The evaluator the recipe's [eval] table describes (its named evaluations run as one, metrics as name/metric),
    or None without one. A file that cannot be read is an error naming the evaluation."""
    evaluators = {}
    for name, e in recipe.evaluations.items():
        try:
            evaluators[name] = make_evaluator(
                e["task"],
                e["data"],
                e["format"],
                e["roles"],
                e["batch_size"],
                e["limit"],
                e["header"],
                e["columns"],
                corpus=e["corpus"] or None,
                corpus_roles=e["corpus_roles"],
            )
        except ValueError as error:
            raise ValueError(f"{recipe.path}: [eval{f'.{name}' if name else ''}] {error}") from None
    if not evaluators:
        return None
    return evaluators[""] if "" in evaluators else evaluate_all(evaluators)


def training_card(recipe: Recipe, data: TrainData) -> TrainingCard:
    """What the model card says about this run before it starts: base model, data, loss, hyperparameters."""
    d, kind = recipe.data, recipe.loss_needs.kind
    names = (
        list(STS_COLUMNS[: 3 if kind == "scores" else 2])
        if d["format"] == "sts"
        else role_columns(d["roles"], kind, recipe.teacher_model, recipe.loss_needs.model_copy)
    )
    values = data.columns + ([data.targets] if data.targets is not None else [])
    config = TrainConfig.from_dict(recipe.train)
    sampler = {"sampler": sampler_name(recipe), "drop_last": d["drop_last"]}
    chosen = {key: sampler[key] for key in ("sampler",) if d["sampler"] != "auto"}
    chosen.update({"drop_last": True} if d["drop_last"] else {})
    e = recipe.evaluations.get("")  # the one unnamed evaluation; named ones are listed as ``evaluations``
    loss = describe_loss(recipe.loss["name"], recipe.loss_settings(), recipe.path.parent)
    # a frozen guide or teacher model shapes what was learnt: the card names it with the loss's settings
    loss.settings.update({key: recipe.loss[key] for key in (GUIDE_KEY, TEACHER_KEY) if recipe.loss.get(key)})
    return TrainingCard(
        base_model=recipe.model["base"],
        dataset_name=Path(d["train"]).name,
        columns=dict(zip(names, values)),
        loss=loss,
        hyperparameters={**asdict(config), **sampler},
        non_default={**non_defaults(config), **chosen},
        eval_task=e["task"] if e else None,
        eval_dataset=Path(e["data"]).stem if e else None,
        evaluations=[(name, e["task"], Path(e["data"]).stem) for name, e in recipe.evaluations.items() if name],
    )


def claim_for(recipe: Recipe, output_dir: Path, resume: bool, overwrite: bool):
    """Claim ``output_dir`` for this run (rank 0 does; every rank raises its refusal, so none waits for a peer)."""
    problem = claim = None
    if distributed.rank() == 0:
        try:
            claim = output_dir_claim(output_dir, run_record(recipe), resume, overwrite)
        except (OSError, ValueError) as e:
            problem = e
    problems = distributed.gather_objects(None if problem is None else (type(problem), str(problem)))
    if problem is not None:
        raise problem
    if problems[0] is not None:
        kind, message = problems[0]
        raise kind(message)
    return claim


def run_recipe(
    recipe: Recipe, output_dir: str | Path, resume: bool = False, log=print, overwrite: bool = False
) -> list[dict]:
    """Fine-tune as ``recipe`` says; returns the evaluation history (before, every eval_steps, after).

    ``output_dir`` holds one run (minilm.run.output_dir): a new or empty one is claimed for this run, the same
    run is continued with ``resume``, a different one replaced only with ``overwrite``.
    Launched by torchrun, every process runs this: it joins the process group (and leaves it at the end), and only
    rank 0 logs; the others return an empty history.
    """
    device = distributed.process_device(recipe.train["device"], "[train] device")  # checked with the recipe
    created = distributed.init_from_env(recipe.train["distributed_timeout_s"], device)
    try:
        with ExitStack() as held:  # the output directory's lock, for as long as the run uses it
            return _run(
                recipe, Path(output_dir), resume, log if distributed.rank() == 0 else lambda _: None, overwrite, held
            )
    finally:
        if created:
            distributed.shutdown()


def _run(
    recipe: Recipe, output_dir: Path, resume: bool, log, overwrite: bool = False, held: ExitStack | None = None
) -> list[dict]:
    from minilm.encoder import SentenceEncoder

    distributed.check_batch_size(recipe.train["batch_size"], distributed.world_size())  # before anything loads
    data = load_train_data(recipe)  # data and evaluator are read before the model: bad rows fail fast
    sampler = checked_sampler(recipe, data, make_sampler, distributed.world_size())  # degenerate runs refused
    check_teacher_scores(recipe, data)  # teacher numbers that do not fit the candidates, before the model loads
    check_teacher_width(recipe)  # a teacher model of another width than the loss compares, from the config files
    evaluate = recipe_evaluator(recipe)
    claim = claim_for(recipe, output_dir, resume, overwrite)  # held until the run ends (released by ``held``)
    if held is not None and claim is not None:
        held.enter_context(claim)
    load = functools.partial(SentenceEncoder.from_pretrained, device=distributed.process_device(recipe.train["device"]))
    found = newest_usable_checkpoint(output_dir, load, log) if resume else None
    model = found[2] if found else load(recipe.model["base"])
    trainer = build_trainer(recipe, model, data, sampler, evaluate, output_dir, log)
    if found:
        trainer.resume_from(found[0], found[1])
        log(f"resumed from {found[0]} at step {trainer.step}")
    elif resume:
        trainer.resume_from(None)
        log(f"no checkpoint in {output_dir} yet: the recorded run starts again from step 0")
    world = distributed.world_size()
    per_rank = f" ({world} processes x {recipe.train['batch_size'] // world})" if world > 1 else ""
    log(
        f"{recipe.name}: {len(data)} rows, {trainer.total_steps} steps of batch {recipe.train['batch_size']}"
        f"{per_rank}, loss {recipe.loss['name']}"
    )
    return trainer.train()
