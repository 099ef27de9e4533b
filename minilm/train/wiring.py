"""Which extension objects a loss gets: the one place that reads a loss's declaration for them.

A built-in extension is wanted by what ``@needs`` says (``guide=True``, ``layers=True``, ``model_copy=True``, kind
``teacher_embeddings`` with ``[loss] teacher``); a user's loss lists its own in ``@needs(..., extensions=(...))``; a
loss with parameters (an nn.Module) gets ``LossParameters``. A bare callable (tests, notebooks) declares nothing and
gets only the last.
"""

from __future__ import annotations

from collections.abc import Callable

from minilm.losses.inputs import Needs, needs_of
from minilm.train.every_layer import EveryLayer
from minilm.train.extensions import Extension, LossParameters, RunContext, loss_name
from minilm.train.frozen import GuideModel, TeacherModel
from minilm.train.model_copy import ModelCopy

BUILT_IN: tuple[type[Extension], ...] = (GuideModel, TeacherModel, EveryLayer, ModelCopy)


def declared(loss_fn: Callable) -> Needs | None:
    try:
        return needs_of(loss_fn)
    except TypeError:
        return None


def candidates(needs: Needs | None) -> list[type[Extension]]:
    """Every extension class a loss so declared could be given (a user's own after the built-in ones)."""
    if needs is None:
        return []
    return [cls for cls in (*BUILT_IN, *needs.extensions) if cls.takes(needs)]


def extension_classes(needs: Needs | None, settings: dict) -> list[type[Extension]]:
    """The extension classes a run of a loss so declared, with these [loss] settings, gets."""
    return [cls for cls in candidates(needs) if cls.wanted(needs, settings)]


def setting_keys(needs: Needs | None) -> dict[str, object]:
    """The [loss] keys the loss's extensions take (not the loss function's), with their defaults."""
    keys: dict[str, object] = {}
    for cls in candidates(needs):
        keys.update(cls.settings)
    return keys


def refusal(needs: Needs | None, settings: dict, loss: str, config, world_size: int) -> str | None:
    """Why the loss's extensions cannot run with these settings, or None."""
    for cls in extension_classes(needs, settings):
        problem = cls.refusal(loss, config, world_size)
        if problem is not None:
            return problem
    return None


def build_extensions(run: RunContext, given: list[Extension] = ()) -> list[Extension]:
    """The run's extensions: those ``given`` (built by the caller, e.g. with frozen models it loaded), then the others
    the loss wants, built here. Nothing is checked yet: ``check_extensions`` does that, once, in the trainer."""
    needs = declared(run.loss_fn)
    have = {type(ext) for ext in given}
    built = list(given)
    for cls in extension_classes(needs, run.settings):
        if cls not in have:
            built.append(cls.build(run))
    if LossParameters not in have:
        loss_parameters = LossParameters.build(run)
        if loss_parameters is not None:
            built.append(loss_parameters)
    return built


def check_extensions(run: RunContext, extensions: list[Extension]) -> None:
    """Refuse what cannot run: an object the loss does not take, a setting one refuses, a run one does not fit, two
    with one name, two that each change how the batch is embedded. ValueError naming the loss."""
    needs, name = declared(run.loss_fn), run.loss_name
    for ext in extensions:
        if not isinstance(ext, LossParameters) and type(ext) not in candidates(needs):
            raise ValueError(f"a {ext.name} was given, but loss {name} does not take one (see its @needs)")
    names = [ext.name for ext in extensions]
    if len(set(names)) != len(names):
        raise ValueError(f"loss {name}: two extensions share a name: {names}")
    for ext in extensions:
        problem = type(ext).refusal(name, run.config, run.world_size)
        if problem is not None:
            raise ValueError(problem)
        ext.check(run)
    if sum(ext.embedding() is not None for ext in extensions) > 1:
        raise ValueError(f"loss {name}: more than one extension changes how the batch is embedded: {names}")


__all__ = [
    "BUILT_IN",
    "build_extensions",
    "candidates",
    "check_extensions",
    "extension_classes",
    "loss_name",
    "refusal",
    "setting_keys",
]
