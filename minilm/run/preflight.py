"""Runs that could not train, refused before any model loads: each refusal names the recipe key or data file.

A loss with in-batch negatives learns nothing from a one-row batch (its only candidate is its own positive); a
labelled loss learns nothing from batches without two rows of one label; a batch larger than the data is not the
batch the recipe asked for. All three used to run to the end with exit status 0 and an unchanged model. A teacher
that scores another number of candidates than the roles give text columns would fail only at the first step, after
the model loaded; it is refused here too, and so is a teacher model whose width is not the one the loss compares (read
from the two models' config.json files, not their weights).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import torch

from minilm.loading.hub import resolve_model_dir
from minilm.loading.weights import read_config
from minilm.losses.inputs import split_output
from minilm.run.recipe import Recipe, RecipeError
from minilm.run.registry import TEACHER_KEY, make_loss
from minilm.train.frozen import teacher_width


def checked_sampler(recipe: Recipe, data, make_sampler: Callable, world_size: int = 1):
    """``make_sampler(recipe, data)``, once the data can fill the recipe's batches and the batches can train."""
    where, path, loss = recipe.path, recipe.data["train"], recipe.loss["name"]
    declared, batch_size, rows = recipe.loss_needs, recipe.train["batch_size"], len(data)
    if batch_size > rows:
        raise RecipeError(f"{where}: [train] batch_size {batch_size} is more than the {rows} rows of {path}")
    # under torchrun each process's loss sees its own shard, unless gather_across_devices hands it the whole batch
    per_process = batch_size if recipe.train["gather_across_devices"] else batch_size // world_size
    if declared.in_batch_negatives and per_process < 2:
        raise RecipeError(
            f"{where}: loss {loss} takes its negatives from the other rows of a batch, so it needs at "
            f"least 2 rows per batch{' per process' if world_size > 1 else ''}; [train] batch_size is "
            f"{batch_size}{f' over {world_size} processes' if world_size > 1 else ''}"
        )
    if declared.kind == "labels":
        counts = Counter(data.targets)
        if batch_size < 2 or max(counts.values()) < 2:
            reason = (
                f"[train] batch_size is {batch_size}"
                if batch_size < 2
                else f"each of the {len(counts)} labels in {path} occurs on one row only"
            )
            raise RecipeError(
                f"{where}: loss {loss} needs batches holding two rows of one label (a positive pair), but {reason}"
            )
    try:
        sampler = make_sampler(recipe, data)
    except ValueError as e:
        raise RecipeError(f"{where}: [data] sampler cannot batch {path}: {e}") from None
    batches = sampler.batches(0)
    if not batches:
        raise RecipeError(f"{where}: [data] sampler builds no batch of {batch_size} from the {rows} rows of {path}")
    if declared.in_batch_negatives and max(len(b) for b in batches) < 2:
        raise RecipeError(
            f"{where}: loss {loss} needs at least 2 rows per batch, but the rows of {path} all share "
            f"a text, so no batch without repeated texts holds more than one"
        )
    return sampler


def check_teacher_scores(recipe: Recipe, data) -> None:
    """A teacher_scores loss run once on stand-in embeddings (2 rows, width 8) of the data's text columns and zeros of
    the data's teacher width: the loss's own shape check decides whether that many teacher numbers per row fit that
    many candidates (one per candidate, or a margin per negative), before any model loads."""
    declared = recipe.loss_needs
    if declared.kind != "teacher_scores":
        return
    d, name = recipe.data, recipe.loss["name"]
    width = len(data.targets[0])
    names = [d["roles"][r] for r in ("anchor", "positive")] + (
        [d["roles"]["negative"]]
        if isinstance(d["roles"].get("negative"), str)
        else list(d["roles"].get("negative", []))
    )
    generator = torch.Generator().manual_seed(0)
    embeddings = [torch.randn(2, 8, generator=generator) for _ in data.columns]
    try:
        loss = make_loss(name, recipe.loss_settings(), recipe.path.parent, context={"embedding_dim": 8})
        split_output(loss(*embeddings, teacher_scores=torch.zeros(2, width)))
    except (TypeError, ValueError) as e:
        raise RecipeError(
            f"{recipe.path}: [data] roles: teacher {d['roles']['teacher']!r} gives {width} number"
            f"{'s' if width != 1 else ''} per row of {d['train']}, which loss {name!r} does not take with "
            f"the {len(names)} text columns {names}: {e}"
        ) from None


def config_width(name_or_path: str) -> int | None:
    """The embedding width a model folder (or hub id) trains at, from its config.json alone; None when it cannot be
    read here (loading the model then says why)."""
    try:
        return read_config(resolve_model_dir(name_or_path) / "config.json").hidden_size
    except (OSError, ValueError):
        return None


def check_teacher_width(recipe: Recipe) -> None:
    """A teacher model ([loss] teacher) must embed at the width the loss compares the student with; both widths are
    read from config.json, so a mismatch is refused before any model loads."""
    if not recipe.teacher_model:
        return
    student, teacher = config_width(recipe.model["base"]), config_width(recipe.loss[TEACHER_KEY])
    if student is None or teacher is None:
        return  # the trainer checks the loaded models
    name = recipe.loss["name"]
    with torch.random.fork_rng(devices=[]):  # a projection's random init must not move the run's random stream
        loss = make_loss(name, recipe.loss_settings(), recipe.path.parent, context={"embedding_dim": student})
    wanted = teacher_width(loss, student)
    if teacher != wanted:
        raise RecipeError(
            f"{recipe.path}: [loss] {TEACHER_KEY} {recipe.loss[TEACHER_KEY]} embeds in {teacher} "
            f"dimensions, but loss {name!r} compares it with {wanted}-dimensional embeddings "
            f"({'its projection_dim' if wanted != student else 'the student, [model] base'}); "
            f"{teacher_width_hint(name, teacher)}"
        )


def teacher_width_hint(name: str, teacher: int) -> str:
    return (
        f'a teacher of another width needs a learned projection: name = "embed_distill" with projection_dim = {teacher}'
        if name != "embed_distill"
        else f"set projection_dim = {teacher}"
    )
