"""One training step's forward and backward: embed the batch's columns, apply the loss, back-propagate.

A step is two choices composed, never a variant per loss:

- **how the columns are embedded**: an ``Embed`` function, ``model, columns -> (embeddings, more loss inputs)``.
  ``embed_plain`` stacks every column into one forward pass; an extension object may bring its own (every layer's
  embeddings, or column 0 through a trained copy of the model: ``minilm/train/extensions.py``);
- **how the backward is done**: in one pass, or, with a ``GradCache`` (``grad_cache.py``), in mini-batches of bounded
  memory with the same gradients.

Mixed precision (``precision.py``) wraps the model's forward in either: autocast in, float32 embeddings out, and the
loss scaled for the backward under fp16. Without one (fp32) the step is the plain computation, untouched.

The loss receives the embeddings, then the keyword inputs the step is given (targets, what extensions add) and what
the embedding added. A loss with parameters (an nn.Module) gets their gradients accumulated in ``.grad`` either way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from minilm.losses.inputs import call_loss
from minilm.train.columns import Column, check_columns, embed_columns
from minilm.train.grad_cache import cached_step
from minilm.train.precision import Precision

Embed = Callable[[nn.Module, Sequence[Column]], tuple[list[Tensor], dict]]


@dataclass(frozen=True)
class StepResult:
    loss: Tensor  # 0-d, detached
    stats: dict[str, float | None]  # what the loss reported (``inputs.split_output``)
    embeddings: list[Tensor]  # every column's (B, D), detached: what extensions observe after the step


@dataclass(frozen=True)
class GradCache:
    """Run the backward in mini-batches (Gao et al. 2021): of ``rows`` rows, or of as many rows as fit ``tokens``
    real tokens when that is set."""

    rows: int | None = None
    tokens: int | None = None


def embed_plain(model: nn.Module, columns: Sequence[Column]) -> tuple[list[Tensor], dict]:
    """Every column through the model in one forward pass; nothing more for the loss."""
    return embed_columns(model, columns), {}


def step(
    model: nn.Module,
    columns: Sequence[Column],
    loss_fn: Callable[..., Tensor],
    inputs: dict | None = None,
    embed: Embed = embed_plain,
    cache: GradCache | None = None,
    precision: Precision | None = None,
) -> StepResult:
    """``loss_fn(*embeddings, **inputs)`` and its backward; parameter ``.grad`` is accumulated, not zeroed (and, under
    fp16, multiplied by the loss scale: the trainer unscales it)."""
    inputs = inputs or {}
    if cache is not None:
        if embed is not embed_plain:  # the cache re-embeds each mini-batch through the one model
            raise ValueError("the gradient cache embeds every column through the model alone, not another embedding")
        # with a token budget the rows per mini-batch follow from the tokens: the row count is not used
        loss, stats, embeddings = cached_step(
            model, columns, loss_fn, cache.rows or 1, cache.tokens, precision=precision, **inputs
        )
        return StepResult(loss, stats, embeddings)
    check_columns(columns, 1)
    embeddings, more = embed(model, columns) if precision is None else precision.embed(embed, model, columns)
    loss, stats = call_loss(loss_fn, embeddings, {**inputs, **more})  # checked: attached, inputs left as given
    if precision is None:
        loss.backward()
    else:
        precision.backward(loss)
    return StepResult(loss.detach(), stats, [e.detach() for e in embeddings])


def loss_backward(
    model: nn.Module,
    columns: Sequence[Column],
    loss_fn: Callable[..., Tensor],
    mini_batch_size: int | None = None,
    **loss_kwargs,
) -> Tensor:
    """One step's loss and backward, for callers that hold a model and a loss (tests, notebooks, benchmarks);
    ``mini_batch_size`` switches the gradient cache on. Returns the detached loss."""
    cache = GradCache(mini_batch_size) if mini_batch_size is not None else None
    return step(model, columns, loss_fn, loss_kwargs, cache=cache).loss
