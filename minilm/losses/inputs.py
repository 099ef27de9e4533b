"""What a loss needs from the data, declared on the loss itself: the one table everything else derives from.

A loss is a function of embeddings (plus per-row targets), or an ``nn.Module`` class when it has parameters (a
learnable temperature, a classifier head, class proxies). What rows it needs is declared next to it::

    @needs("columns", columns=3)                                   # (anchor, positive, negative) triplets
    def triplet_loss(anchor, positive, negative, margin=5.0): ...

Data reading (which roles a file must map), recipe validation (before any model loads), the sampler choice (in-batch
negatives must not meet their own text; labels need pairs per class) and the evaluation tasks all read this
declaration, never a loss's name. A loss defined in a user's own file declares itself the same way.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import Tensor

# kind -> (required roles, optional roles): which columns of a data file a row of that kind is made of.
KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "columns": (("anchor", "positive"), ("negative",)),  # texts only: pairs, triplets, (anchor, positive, *negatives)
    "labels": (("text", "label"), ()),  # one text and an integer class label per row
    "scores": (("a", "b", "score"), ()),  # two texts and a real-valued similarity score per row
    "pair_labels": (("a", "b", "label"), ()),  # two texts and an integer class label (a classifier head: NLI)
    # texts plus a teacher's numbers per row: one per candidate (positive, negatives...), or its embedding
    "teacher_scores": (("anchor", "positive", "teacher"), ("negative",)),
    "teacher_embeddings": (("text", "teacher"), ()),  # text: one column, or a list (e.g. a sentence and a translation)
}
# The loss's keyword for the per-row targets of each kind.
TARGETS: dict[str, str | None] = {
    "columns": None,
    "labels": "labels",
    "scores": "scores",
    "pair_labels": "labels",
    "teacher_scores": "teacher_scores",
    "teacher_embeddings": "teacher_embeddings",
}
# The role a frozen model named in the recipe ([loss] teacher) fills instead of a data column, per kind. A sentence
# encoder gives embeddings, not a cross-encoder's scores, so only the teacher_embeddings kind can take a teacher model.
MODEL_ROLES: dict[str, str] = {"teacher_embeddings": "teacher"}
# Text columns a kind has exactly; for the other kinds a loss declares how many, at least MIN_COLUMNS.
FIXED_COLUMNS = {"labels": 1, "scores": 2, "pair_labels": 2}
MIN_COLUMNS = {"columns": 2, "teacher_scores": 2, "teacher_embeddings": 1}


def roles_of(
    kind: str, teacher_model: bool = False, model_copy: bool = False
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(required roles, optional roles) of a row of ``kind``; with ``teacher_model`` the role the model fills is
    neither: the file gives the texts only; with ``model_copy`` the file gives one text column, from which the run
    makes the loss's two columns (and its 0/1 scores)."""
    if model_copy:
        return ("text",), ()
    required, optional = KINDS[kind]
    if teacher_model and kind in MODEL_ROLES:
        required = tuple(role for role in required if role != MODEL_ROLES[kind])
    return required, optional


@dataclass(frozen=True)
class Needs:
    """The rows a loss (or an evaluation task) consumes."""

    kind: str  # "columns", "labels", "scores", "pair_labels", "teacher_scores", "teacher_embeddings" (see KINDS)
    columns: int  # text columns per row: fixed for labels (1), scores and pair_labels (2); a minimum for the others
    more_columns: bool = False  # any number of further text columns (hard negatives) is accepted
    in_batch_negatives: bool = False  # other rows of the batch serve as negatives: a batch must not repeat a text
    guide: bool = False  # takes a frozen guide model's embeddings of every column (``guide=``): [loss] guide names it
    # takes every earlier layer's pooled embeddings of every column (``layers=``, {layer: [column...]}, 0 the
    # embedding output) and the step's random.Random (``layer_rng=``), from which it draws the layers it trains
    layers: bool = False
    # the loss compares two trained copies of the model (Contrastive Tension): a copy made from the starting weights
    # embeds the first text column and the model the second; the file gives one text column (role text), which the
    # run turns into pairs (kind scores: identical and random pairs, labelled 1 / 0) or feeds to both (kind columns)
    model_copy: bool = False
    # objects of the run's a user's loss brings itself (minilm.train.extensions.Extension subclasses): a memory
    # queue, a frozen model of its own. The trainer builds one of each for the run and the loss gets what they add.
    extensions: tuple = ()

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, got {self.kind!r}")
        fixed = FIXED_COLUMNS.get(self.kind)
        if fixed is not None and (self.columns != fixed or self.more_columns):
            raise ValueError(f"kind {self.kind!r} has exactly {fixed} text column(s), got columns={self.columns}")
        least = MIN_COLUMNS.get(self.kind, 0)
        if self.model_copy and (self.kind not in ("scores", "columns") or self.columns != 2 or self.more_columns):
            raise ValueError(
                f"model_copy takes two text columns, one per copy (kind 'scores' or 'columns'), "
                f"got kind {self.kind!r} with columns={self.columns}"
            )
        if self.model_copy and (self.layers or self.guide):  # the copy has no earlier layers or guide wired
            raise ValueError("model_copy cannot be declared with layers or guide")
        if self.columns < least:
            names = "(anchor, positive)" if least == 2 else "(text)"
            raise ValueError(f"kind {self.kind!r} needs at least {least} text columns {names}, got {self.columns}")

    @property
    def target(self) -> str | None:
        return TARGETS[self.kind]

    def accepts(self, n_columns: int) -> bool:
        return n_columns == self.columns or (self.more_columns and n_columns > self.columns)

    def describe(self) -> str:
        if self.model_copy:
            return "one text column (role text), which the model and its trained copy both embed"
        if self.kind == "labels":
            return "one text column and a label (roles text, label)"
        if self.kind == "scores":
            return "two text columns and a score (roles a, b, score)"
        if self.kind == "pair_labels":
            return "two text columns and a class label (roles a, b, label)"
        if self.kind == "teacher_embeddings":
            return (
                f"{self.columns}{' or more' if self.more_columns else ''} text column(s) and the teacher's "
                f"embedding of each row (roles text, teacher)"
            )
        if self.kind == "teacher_scores":
            return (
                f"{self.columns}{' or more' if self.more_columns else ''} text columns (anchor, positive, "
                f"negative...) and the teacher's score of each candidate (roles anchor, positive, negative, "
                f"teacher)"
            )
        names = ["anchor", "positive"] + ["negative"] * (self.columns - 2)
        return (
            f"{self.columns}{' or more' if self.more_columns else ''} text columns ({', '.join(names)}"
            + (", negative..." if self.more_columns else "")
            + ")"
        )


def needs(
    kind: str,
    columns: int | None = None,
    more_columns: bool = False,
    in_batch_negatives: bool = False,
    guide: bool = False,
    layers: bool = False,
    model_copy: bool = False,
    extensions: tuple = (),
):
    """Decorator: declare what rows a loss needs (``columns`` defaults to the kind's fixed or least count); ``guide``:
    it also takes a guide model's embeddings of the same columns as the keyword ``guide`` (a list, one per column);
    ``layers``: it also takes every earlier layer's embeddings of the columns (``layers=``) and ``layer_rng=``;
    ``model_copy``: its two columns are embedded by a trained copy of the model and by the model (Contrastive
    Tension); ``extensions``: classes of the objects the run makes for it (``minilm.train.extensions``), whose
    inputs it takes by keyword."""
    default = FIXED_COLUMNS.get(kind, MIN_COLUMNS.get(kind, 2))
    declared = Needs(
        kind,
        columns if columns is not None else default,
        more_columns,
        in_batch_negatives,
        guide,
        layers,
        model_copy,
        tuple(extensions),
    )

    def mark(loss: Callable) -> Callable:
        loss.needs = declared
        return loss

    return mark


def needs_of(loss: Callable) -> Needs:
    """The declaration of ``loss`` (also through functools.partial and wrappers that keep ``__wrapped__``)."""
    seen = loss
    while True:
        declared = getattr(seen, "needs", None)
        if isinstance(declared, Needs):
            return declared
        if isinstance(seen, functools.partial):
            seen = seen.func
        elif hasattr(seen, "__wrapped__"):
            seen = seen.__wrapped__
        else:
            name = getattr(loss, "__qualname__", type(loss).__name__)
            raise TypeError(
                f"loss {name} does not declare its inputs: decorate it with "
                f"@minilm.losses.needs(kind, columns=...) (see docs/adding-a-loss.md)"
            )


def module_of(loss: Callable):
    """The nn.Module inside a built loss (through matryoshka, gather and functools.partial wrappers), or None."""
    from torch import nn

    seen = loss
    while not isinstance(seen, nn.Module):
        if isinstance(seen, functools.partial):
            seen = seen.func
        elif hasattr(seen, "__wrapped__"):
            seen = seen.__wrapped__
        else:
            return None
    return seen


# Names a loss class's __init__ may take to learn about the run; the trainer fills them, a recipe cannot set them.
CONTEXT = {
    "embedding_dim": "width of the model's sentence embeddings",
    "num_labels": "1 + the largest label of the training data: labels are class indices (labels and pair_labels kinds)",
}


class LossOutputError(TypeError):
    """What a loss returned (or did to its inputs) cannot be trained on: not a 0-d tensor, a statistic that is not one
    number, a loss detached from the embeddings, inputs changed in place. The trainer names the loss."""


def call_loss(loss_fn: Callable, embeddings: Sequence[Tensor], inputs: dict) -> tuple[Tensor, dict[str, float]]:
    """``loss_fn(*embeddings, **inputs)`` in a training step, as (loss, statistics), checked for what would train
    silently wrong: inputs changed in place (their version counters moved: free to read, no copy; the columns'
    embeddings are views of one tensor, so a change to one moves them all) and a loss that does not require grad
    (nothing would be learnt; its backward would fail with torch's own words)."""
    given = [("the embeddings", e) for e in embeddings] + [(k, v) for k, v in inputs.items() if isinstance(v, Tensor)]
    versions = [t._version for _, t in given]
    loss, stats = split_output(loss_fn(*embeddings, **inputs))
    changed = list(dict.fromkeys(name for (name, t), v in zip(given, versions) if t._version != v))
    if changed:
        raise LossOutputError(
            f"it changed {', '.join(changed)} in place (an in-place operation such as x.mul_(2), x += 1, x[i] = 0 or "
            f"F.normalize(x, out=x)); a loss must leave its inputs as given (the step and its extensions use them "
            f"after the loss): compute new tensors instead (x = x * 2)"
        )
    if not loss.requires_grad:
        raise LossOutputError(
            "it returned a loss that does not require grad: it is detached from the embeddings (.detach(), .item(), "
            ".data, torch.tensor(...) or torch.no_grad() inside the loss?), so nothing would be learnt from it"
        )
    return loss, stats


def split_output(output) -> tuple[Tensor, dict[str, float]]:
    """A loss's result as (loss, statistics).

    A loss returns a 0-d tensor, or ``(loss, stats)`` with ``stats`` a dict of name -> number (or 0-d tensor) that it
    reports: the fraction of active triplets, masked negatives, the temperature. Statistics are detached here.
    """
    if isinstance(output, tuple):
        if len(output) != 2 or not isinstance(output[1], dict):
            raise LossOutputError(
                f"a loss returns a 0-d tensor or (loss, dict of statistics), got a tuple of {len(output)} items"
            )
        loss, raw = output
    else:
        loss, raw = output, {}
    if not isinstance(loss, Tensor) or loss.ndim != 0:
        raise LossOutputError(
            f"a loss must return a 0-d tensor, got {type(loss).__name__}"
            + (f" of shape {tuple(loss.shape)}" if isinstance(loss, Tensor) else "")
        )
    stats = {}
    for name, value in raw.items():
        if isinstance(value, Tensor) and value.numel() != 1:
            raise LossOutputError(
                f"loss statistic {name!r} must be one number (a float or a 0-d tensor), got a tensor of shape "
                f"{tuple(value.shape)}: reduce it (.mean()) or report each value under its own name"
            )
        number = float(value.detach()) if isinstance(value, Tensor) else value
        if not isinstance(name, str) or isinstance(number, bool) or not isinstance(number, (int, float)):
            raise LossOutputError(f"loss statistic {name!r} must be a number, got {type(value).__name__}")
        stats[name] = float(number) if math.isfinite(number) else None  # JSON has no NaN: None, and logs say so
    return loss, stats
