"""Gradient cache (Gao et al. 2021, "Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup").

In-batch-negative losses want big batches, but backprop through the encoder keeps every activation of the batch.
The loss itself only needs the (B, D) embeddings, so split the work:

  1. embed the batch in mini-batches without autograd (activations freed at once), saving the RNG state before each;
  2. compute the loss on all embeddings and its gradient w.r.t. the embeddings (one cheap call: ``loss_and_grads``;
     a loss with parameters, e.g. a learnable temperature, gets their gradients accumulated here too);
  3. re-embed each mini-batch with autograd, replaying its RNG state so dropout draws the same masks, and
     back-propagate the cached embedding gradient through it.

Peak memory is one mini-batch of activations; loss and parameter gradients equal the plain loss on the whole batch
up to float rounding (with dropout on, the masks differ from a whole-batch forward, but two cached runs with the same
seed agree). The trainer reaches this through ``step.step`` with a ``GradCache``. Under mixed precision both passes
run the model under autocast and the loss sees float32 embeddings; under fp16 the cached embedding gradients carry
the loss scale into the second pass, as one backward would (``precision.py``).
"""

from __future__ import annotations

import bisect
import functools
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from minilm.losses.inputs import call_loss
from minilm.train.columns import Column, bare_model, check_columns, model_device, rows_of
from minilm.train.precision import Precision
from minilm.util.devices import to_device


@dataclass
class RngState:
    cpu: Tensor
    cuda: Tensor | None  # state of the model's CUDA device, when it has one
    device: torch.device


def capture_rng(device: torch.device) -> RngState:
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return RngState(torch.get_rng_state(), cuda, device)


@contextmanager
def replay_rng(state: RngState) -> Iterator[None]:
    """Run with the RNG as it was at capture; the outer RNG stream is left untouched afterwards."""
    with torch.random.fork_rng(devices=[state.device] if state.cuda is not None else []):
        torch.set_rng_state(state.cpu)
        if state.cuda is not None:
            torch.cuda.set_rng_state(state.cuda, state.device)
        yield


def _sync_unless(model: nn.Module, accumulating: bool):
    """Under DDP, skip the gradient all-reduce of a backward that more mini-batches will add to; reduce once, last."""
    return model.no_sync() if accumulating and hasattr(model, "no_sync") else nullcontext()


def token_budget_spans(tokens_per_row: Sequence[int], budget: int) -> list[tuple[int, int]]:
    """Consecutive (begin, end) row spans holding at most ``budget`` real tokens each (a row longer than the budget
    gets a span of its own), as sentence-transformers' cached losses split by ``mini_batch_num_tokens``."""
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"mini_batch_num_tokens must be a positive int, got {budget!r}")
    cumulative = list(itertools.accumulate(tokens_per_row))
    spans, begin = [], 0
    while begin < len(cumulative):
        before = cumulative[begin - 1] if begin else 0
        end = max(bisect.bisect_right(cumulative, before + budget), begin + 1)
        spans.append((begin, end))
        begin = end
    return spans


def split_column(
    model: nn.Module, column: Column, mini_batch_size: int, mini_batch_num_tokens: int | None = None
) -> list[dict[str, Tensor]]:
    """Model inputs for consecutive mini-batches of one column, each padded only as far as it needs: of
    ``mini_batch_size`` rows, or, with ``mini_batch_num_tokens``, of as many rows as fit that many real tokens."""
    n = rows_of(column)
    spans = [(b, min(b + mini_batch_size, n)) for b in range(0, n, mini_batch_size)]
    if mini_batch_num_tokens is not None:
        if not isinstance(column, Mapping):
            column = bare_model(model).tokenize(list(column))
        if "attention_mask" not in column:
            raise ValueError("mini_batch_num_tokens needs an attention_mask in the tokenised column to count tokens")
        spans = token_budget_spans(column["attention_mask"].sum(dim=1).tolist(), mini_batch_num_tokens)
    if isinstance(column, Mapping):
        chunks = [{k: v[b:e] for k, v in column.items()} for b, e in spans]
        chunks = [_trim_padding(c) for c in chunks]
    else:
        texts = list(column)
        chunks = [bare_model(model).tokenize(texts[b:e]) for b, e in spans]
    device = model_device(model)
    return [{k: to_device(v, device) for k, v in c.items()} for c in chunks]


def _trim_padding(features: dict[str, Tensor]) -> dict[str, Tensor]:
    """Drop trailing token positions that are padding in every row of this mini-batch (they change nothing)."""
    mask = features.get("attention_mask")
    if mask is None or mask.ndim != 2 or not bool(mask.any()):
        return features
    width = int(mask.any(dim=0).nonzero().max()) + 1
    return {k: v[:, :width] if v.ndim == 2 and v.shape[1] == mask.shape[1] else v for k, v in features.items()}


def loss_and_grads(
    loss_fn: Callable[..., Tensor], embeddings: list[Tensor], precision: Precision | None = None, **loss_kwargs
) -> tuple[Tensor, list[Tensor], dict[str, float | None]]:
    """The one step that sees the whole batch: loss on every column's embeddings (B, D), d loss / d embeddings, and
    the statistics the loss reported. The gradients of the loss's own parameters (an nn.Module loss) are accumulated
    into their ``.grad`` here, as a plain ``loss.backward()`` would (all of them times the loss scale under fp16).

    Kept a single call so that a cross-process all-gather can wrap exactly this step (``distributed.gather_loss``
    wraps ``loss_fn``: the gather and its backward both happen inside here).
    """
    leaves = [e.detach().requires_grad_() for e in embeddings]
    with torch.enable_grad():
        loss, stats = call_loss(loss_fn, leaves, loss_kwargs)  # checked: attached, inputs left as given
        if precision is None:
            loss.backward()  # fills the leaves' .grad and the loss parameters' .grad in one pass
        else:
            precision.backward(loss)
    grads = [leaf.grad if leaf.grad is not None else torch.zeros_like(leaf) for leaf in leaves]  # an unused column
    return loss.detach(), grads, stats


def cached_loss_backward(
    model: nn.Module,
    columns: Sequence[Column],
    loss_fn: Callable[..., Tensor],
    mini_batch_size: int,
    mini_batch_num_tokens: int | None = None,
    **loss_kwargs,
) -> Tensor:
    """loss_fn(*column embeddings, **loss_kwargs) with its backward done in mini-batches; returns the detached loss.

    Parameter ``.grad`` is accumulated (not zeroed), exactly as ``loss.backward()`` on the whole batch would.
    ``mini_batch_num_tokens`` bounds each mini-batch by real tokens instead of rows (``token_budget_spans``).
    """
    return cached_step(model, columns, loss_fn, mini_batch_size, mini_batch_num_tokens, **loss_kwargs)[0]


def cached_step(
    model: nn.Module,
    columns: Sequence[Column],
    loss_fn: Callable[..., Tensor],
    mini_batch_size: int,
    mini_batch_num_tokens: int | None = None,
    precision: Precision | None = None,
    **loss_kwargs,
) -> tuple[Tensor, dict[str, float | None], list[Tensor]]:
    """``cached_loss_backward``, also returning the statistics the loss reported and every column's embeddings (B, D)
    from the no-grad pass (detached); ``precision`` runs the model's forwards under autocast."""
    forward = model if precision is None else functools.partial(precision.forward, model)
    check_columns(columns, mini_batch_size)
    device = model_device(model)
    chunks = [
        split_column(model, column, mini_batch_size, mini_batch_num_tokens) for column in columns
    ]  # [column][mini-batch]
    states, embeddings = [], []
    with torch.no_grad():
        for column_chunks in chunks:
            states.append([])
            parts = []
            for features in column_chunks:
                states[-1].append(capture_rng(device))
                parts.append(forward(**features))  # (b, D)
            embeddings.append(torch.cat(parts))  # (B, D)
    loss, grads, stats = loss_and_grads(loss_fn, embeddings, precision, **loss_kwargs)
    work = []  # (features, rng state, d loss / d its embeddings) for every mini-batch of every column
    for column_chunks, column_states, grad in zip(chunks, states, grads):
        sizes = [rows_of(features) for features in column_chunks]
        work += zip(column_chunks, column_states, grad.split(sizes))
    for i, (features, state, grad_part) in enumerate(work):
        with _sync_unless(model, accumulating=i < len(work) - 1):
            with replay_rng(state):
                emb = forward(**features)  # (b, D), same dropout masks as in the no-grad pass
            if emb.requires_grad:  # a frozen encoder has nothing to accumulate
                emb.backward(grad_part)
    return loss, stats, embeddings
