"""What a loss needs from the run besides the batch's embeddings: one small protocol, one object per need.

A frozen guide model (GIST), a frozen teacher model (distillation), every layer's embeddings (AdaptiveLayer,
Matryoshka2d), a trained copy of the model (Contrastive Tension), the loss's own parameters (a temperature, a
classifier head) and a user's own object (``examples/losses/cross_batch_memory.py``) are each an ``Extension``. Each
says what it refuses, which modules it brings and how the trainer treats each (``Part``), how it changes the way the
batch is embedded, and what it adds to the loss's inputs. The trainer loops over a run's extensions and names none.
Which extensions a loss gets follows from its ``@needs`` declaration, in one place: ``wiring.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import Tensor, nn

from minilm.losses.inputs import Needs, module_of, split_output
from minilm.train.config import TrainConfig
from minilm.train.step import Embed, StepResult


@dataclass
class Part:
    """A module an extension brings, and how the trainer treats it."""

    module: nn.Module
    trains: bool = False  # optimised and clipped with the model, in train mode while training; else frozen, never saved
    lr: float | None = None  # its own learning rate (None: the run's); only for a part that trains
    checkpointed: bool = False  # its state_dict in every checkpoint, restored on resume (a part that trains must be)
    saved: bool = False  # written beside the final model as <name>.safetensors and <name>.json (what it is)


@dataclass
class RunContext:
    """What an extension may ask of the run it is made for."""

    model: nn.Module  # the SentenceEncoder being trained (before any DDP or compile wrapping)
    loss_fn: Callable  # the bound loss
    config: TrainConfig
    settings: dict = field(default_factory=dict)  # the recipe's [loss] settings (an extension reads its own keys)
    target_name: str | None = None  # the keyword of the data's per-row targets, if it has any
    load_model: Callable[[str], nn.Module] | None = None  # name or folder -> SentenceEncoder (a sweep shares them)
    world_size: int = 1

    @property
    def loss_name(self) -> str:
        return loss_name(self.loss_fn)


class Extension:
    """The protocol. Every method has a do-nothing default, so an extension states only what it changes."""

    name: ClassVar[str] = ""  # its name in messages and its key in checkpoints (unique in a run)
    # [loss] keys it takes, with their defaults: a recipe may set them, the loss function never sees them
    settings: ClassVar[dict[str, object]] = {}

    @classmethod
    def takes(cls, needs: Needs) -> bool:
        """Whether a loss so declared can be given this object (a built-in extension answers from ``needs``; one a
        loss lists in ``@needs(..., extensions=...)`` is always taken)."""
        return cls in needs.extensions

    @classmethod
    def wanted(cls, needs: Needs, settings: dict) -> bool:
        """Whether a run of such a loss, with these [loss] settings, gets one."""
        return cls.takes(needs)

    @classmethod
    def refusal(cls, loss: str, config: TrainConfig, world_size: int) -> str | None:
        """Why loss ``loss`` with this extension cannot run with these settings, or None. Asked by the recipe before
        any model loads (world_size 1) and again by the trainer."""
        return None

    @classmethod
    def check_settings(cls, settings: dict) -> None:
        """Refuse a bad value of one of its [loss] ``settings`` (ValueError naming it), before any model loads."""

    @classmethod
    def example_inputs(cls, embeddings: list[Tensor]) -> dict:
        """What it would add to the loss's inputs for this small random batch of column embeddings (B, D): the recipe
        check calls the loss once with them, before any model loads, so a bad setting fails there."""
        return {}

    @classmethod
    def build(cls, run: RunContext) -> Extension:
        """The object for one run: load a model, copy the starting weights, make a queue."""
        return cls()

    def check(self, run: RunContext) -> None:
        """Refuse a run it does not fit, once the models are loaded (a width that differs, the model itself given as
        a frozen copy); ValueError naming what is wrong."""

    def parts(self) -> dict[str, Part]:
        """The modules it brings, by name (unique in a run; a checkpoint key)."""
        return {}

    def embedding(self) -> Embed | None:
        """How the batch's columns are embedded instead of one forward pass of the model (at most one per run)."""
        return None

    def loss_inputs(self, columns: Sequence, step: int, device) -> dict:
        """Keyword inputs it adds to the loss for the step about to run (0-based ``step``)."""
        return {}

    def after_step(self, result: StepResult) -> None:
        """What it keeps of a step that was applied (the loss, statistics and every column's embeddings)."""

    def statistics(self) -> dict[str, float | None]:
        """Numbers it reports once a step was applied (after the optimiser's update): logged with the step's
        statistics, over the loss's own of the same name, so a learned value is logged as it is after the update
        (what the next step uses, and after the last step what is saved)."""
        return {}

    def state_dict(self) -> dict[str, Tensor]:
        """State beyond its parts' modules (a queue), checkpointed and checked finite with the weights."""
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if state:
            raise ValueError(f"{self.name} keeps no state, but the checkpoint holds {sorted(state)}")


class LossParameters(Extension):
    """A loss with parameters (an nn.Module): optimised at ``[train] loss_lr`` when set, clipped and checkpointed with
    the model, and saved beside the final model (``final/loss.safetensors``), whatever it learns: a classifier head
    or a temperature. ``part_of_model = True`` on the class says the saved part is used with the model (a classifier
    head), not only in training (a temperature): ``final/loss.json`` records it.

    After each update it reports the loss's learned values (``statistics``): what the module's own ``statistics()``
    method returns if it has one (e.g. ``{"temperature": ...}`` from a log-temperature), else each 0-d parameter by
    name. The loss's forward can only report the values it was called with, before the update."""

    name = "loss"

    def __init__(self, module: nn.Module, lr: float | None = None):
        self.module, self.lr = module, lr

    @classmethod
    def build(cls, run: RunContext) -> LossParameters | None:
        module = module_of(run.loss_fn)
        return None if module is None else cls(module, run.config.loss_lr or None)

    def parts(self) -> dict[str, Part]:
        return {"loss": Part(self.module, trains=True, lr=self.lr, checkpointed=True, saved=True)}

    def statistics(self) -> dict[str, float | None]:
        with torch.no_grad():
            own = getattr(self.module, "statistics", None)
            if callable(own):
                return split_output((torch.zeros(()), own()))[1]  # its numbers checked and made floats, as a loss's
            scalars = {name: p for name, p in self.module.named_parameters() if p.ndim == 0 and p.is_floating_point()}
            return split_output((torch.zeros(()), scalars))[1]


def loss_name(loss_fn: Callable) -> str:
    """A loss's name for messages, through functools.partial and module wrappers."""
    inner = getattr(loss_fn, "func", None)
    return getattr(loss_fn, "__name__", getattr(inner, "__name__", type(loss_fn).__name__))
