"""What a loss needs from the run besides the model's embeddings, checked when the trainer is built: a frozen guide
(GIST), a frozen teacher (distillation from a model), every layer (AdaptiveLayer, Matryoshka2d) or a trained copy of
the model (Contrastive Tension). Each comes from the loss's ``@needs`` declaration; a bare callable (tests,
notebooks) declares nothing and so needs none of them. A recipe is checked for the same before any model loads
(recipe.py, registry.py); these checks see the loaded models and the trainer's settings."""

from __future__ import annotations

from collections.abc import Callable

from minilm.losses.inputs import MODEL_ROLES, Needs, needs_of
from minilm.train import distributed
from minilm.train.config import GRADIENT_CACHE_KEYS, TrainConfig
from minilm.train.frozen import FrozenEncoder
from minilm.train.model_copy import make_copy, refusal
from minilm.run.registry import teacher_width


def declared(loss_fn: Callable) -> Needs | None:
    try:
        return needs_of(loss_fn)
    except TypeError:
        return None


def loss_name(loss_fn: Callable) -> str:
    """A loss's name for messages, through functools.partial and module wrappers."""
    inner = getattr(loss_fn, "func", None)
    return getattr(loss_fn, "__name__", getattr(inner, "__name__", type(loss_fn).__name__))


def check_guide(guide: FrozenEncoder | None, loss_fn: Callable, model) -> FrozenEncoder | None:
    """The guide a loss declared with ``@needs(..., guide=True)`` needs, and only such a loss gets one."""
    needs = declared(loss_fn)
    takes = needs is not None and needs.guide
    if takes and guide is None:
        raise ValueError(f"loss {loss_name(loss_fn)} takes a guide model's embeddings: give the trainer a guide (a "
                         f"recipe's [loss] guide)")
    if guide is not None and not takes:
        raise ValueError("a guide model was given, but the loss does not take one (@needs(..., guide=True))")
    if guide is not None and guide.encoder is model:
        raise ValueError("the guide must be a separate frozen copy, not the model being trained")
    return guide


def check_teacher(teacher: FrozenEncoder | None, loss_fn: Callable, model, teacher_column: str | None
                  ) -> FrozenEncoder | None:
    """A teacher model only for a loss of kind teacher_embeddings whose data holds no teacher column, at the width
    the loss compares with (the student's, or its projection's)."""
    if teacher is None:
        return None
    needs, name = declared(loss_fn), loss_name(loss_fn)
    if needs is None or needs.kind not in MODEL_ROLES:
        raise ValueError(f"a teacher model was given, but loss {name} takes no teacher embeddings (a loss of kind "
                         f"'teacher_embeddings' does)")
    if teacher_column is not None:
        raise ValueError(f"a teacher model was given and the data holds a teacher column ({teacher_column}): the "
                         f"teacher's embeddings come from one or the other")
    if teacher.encoder is model:
        raise ValueError("the teacher must be a separate frozen copy, not the model being trained")
    wanted = teacher_width(loss_fn, model.embedding_dim)
    if teacher.embedding_dim != wanted:
        raise ValueError(f"the teacher model embeds in {teacher.embedding_dim} dimensions, but loss {name} compares it "
                         f"with {wanted}-dimensional embeddings (the student's is {model.embedding_dim})")
    return teacher


def trains_layers(loss_fn: Callable, config: TrainConfig) -> bool:
    """Whether the loss trains every layer (``@needs(..., layers=True)``), refusing what cannot run it: the gradient
    cache embeds the last layer only, and under torchrun the per-layer forward would bypass DDP."""
    needs = declared(loss_fn)
    if needs is None or not needs.layers:
        return False
    problem = layers_refusal(loss_name(loss_fn), config, distributed.world_size())
    if problem is not None:
        raise ValueError(problem)
    return True


def layers_refusal(name: str, config: TrainConfig, world_size: int) -> str | None:
    """Why a loss over every layer cannot run with these settings, or None (the recipe asks with world_size 1,
    before any model loads; the trainer again with the real one)."""
    for key in GRADIENT_CACHE_KEYS:
        if getattr(config, key):
            return (f"{key} (gradient cache) cannot run loss {name}: the cache embeds the last layer only, and this "
                    f"loss trains every layer; unset it")
    if world_size > 1:
        return (f"loss {name} trains every layer, which runs the model outside DDP: it trains in one process only "
                f"(not under torchrun)")
    return None


def model_copy_for(loss_fn: Callable, config: TrainConfig, model):
    """A trained copy of the model's starting weights, for a loss declared with ``@needs(..., model_copy=True)``
    (None for any other), refusing the settings that cannot train it."""
    needs = declared(loss_fn)
    if needs is None or not needs.model_copy:
        return None
    problem = refusal(loss_name(loss_fn), config, distributed.world_size())
    if problem is not None:
        raise ValueError(problem)
    return make_copy(model)
