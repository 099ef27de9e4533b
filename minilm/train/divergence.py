"""A run that stopped being finite, caught at the step that made it so: the checks the trainer runs on its weights,
its optimiser state and its embeddings, and the error that ends such a run.

A step's loss and gradient norm are checked as they are read back (trainer.py). What they cannot show is checked
here: an update that made a weight or an AdamW moment NaN or infinite (``weights_finite``, read back with the next
step's numbers, then ``check_saved_tensors`` to name the tensor), and finite weights whose forward pass overflows
(``check_embeddings``, before anything is saved). Either way nothing non-finite is logged or saved, and the last
checkpoint stays the last good one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch


class TrainingDiverged(RuntimeError):
    """The loss or the gradient norm stopped being finite; the weights were not updated with it."""


@dataclass
class Unconfirmed:
    """A step taken whose log record waits for the next read-back to say its update left every weight finite."""

    weights_finite: torch.Tensor | None  # 0-d bool on the device, not read yet; None: no update (a skipped step)
    record: dict
    lr: float


def check_float32_weights(model: torch.nn.Module) -> None:
    """Training keeps float32 master weights (and AdamW moments); a half-precision model is refused by name."""
    other = sorted({str(p.dtype) for p in model.parameters() if p.is_floating_point() and p.dtype != torch.float32})
    if other:
        raise ValueError(
            f"the model to train has {', '.join(other)} weights; training keeps float32 weights and runs the forward "
            f'in bf16 or fp16 under autocast: load it in float32 and set [train] precision = "bf16" or "fp16"'
        )


def saved_tensors(model, parts: dict, extensions: Iterable, optimizer) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor a checkpoint or the final save holds: the model's weights, each checkpointed or saved part's
    state, each extension's own state (a queue) and the optimiser's moments of every parameter, by name."""
    yield from model.named_parameters()
    names = {id(p): name for name, p in model.named_parameters()}
    for name, part in parts.items():
        names.update({id(p): f"{name}.{key}" for key, p in part.module.named_parameters()})
        if part.checkpointed or part.saved:
            for key, value in part.module.state_dict().items():
                yield f"{name}.{key}", value
    for ext in extensions:
        for key, value in ext.state_dict().items():
            yield f"{ext.name}.{key}", value
    for param, moments in optimizer.state.items():  # exp_avg_sq can overflow while the weights stay finite
        for key, value in moments.items():
            if isinstance(value, torch.Tensor):
                yield f"optimizer.{names.get(id(param), 'parameter')}.{key}", value


def weights_finite(tensors: Iterable[tuple[str, torch.Tensor]], device) -> torch.Tensor:
    """0-d bool on ``device``, not read back: every tensor's sum is finite (one cheap reduction each; a false
    alarm, a sum that overflowed, is told apart by ``check_saved_tensors``)."""
    sums = [t.detach().sum().to(device) for _, t in tensors if t.is_floating_point()]
    return torch.isfinite(torch.stack(sums)).all() if sums else torch.ones((), dtype=torch.bool)


def check_saved_tensors(
    tensors: Iterable[tuple[str, torch.Tensor]], lr: float, step: int, epoch: int, last_good: str
) -> None:
    """Stop the run at the step that made any saved tensor NaN or infinite (e.g. a learning rate far too high),
    naming the first such tensor; ``last_good`` ends the message (where the last good checkpoint is)."""
    named = [(n, t.detach()) for n, t in tensors if t.is_floating_point()]
    sums = torch.stack([t.sum() for _, t in named]) if named else torch.zeros(0)  # one cheap reduction each
    if bool(torch.isfinite(sums).all()):
        return
    bad = [name for name, t in named if not bool(torch.isfinite(t).all())]
    if not bad:  # a sum overflowed, the values themselves are finite
        return
    what = "optimiser state" if bad[0].startswith("optimizer.") else "weight"
    raise TrainingDiverged(
        f"step {step} (epoch {epoch}, lr {lr:.3g}) made {what} {bad[0]} non-finite"
        f"{f' (and {len(bad) - 1} more tensors)' if len(bad) > 1 else ''} though its loss and gradient norm were "
        f"finite; the learning rate is likely too high. Nothing from this step was saved{last_good}"
    )


def check_embeddings(model, texts: list[str], step: int, epoch: int, last_good: str) -> None:
    """The model's embeddings of ``texts`` (a few training texts) must be finite: weights can all be finite and
    still overflow in the forward pass (huge after one step of a far too high learning rate)."""
    embeddings = model.encode(texts, convert_to_tensor=True, workers=1)
    if not bool(torch.isfinite(embeddings).all()):
        raise TrainingDiverged(
            f"after step {step} (epoch {epoch}) the weights are finite but the model's embeddings are "
            f"not (they overflow: learning rate too high?); nothing was saved{last_good}"
        )


def check_loss_scale(scaler, step: int, epoch: int, last_good: str) -> None:
    """fp16: stop the run when ``scaler`` (precision.LossScaler, just lowered for ``step``) has collapsed: too many
    steps in a row overflowed, down to the smallest scale."""
    if scaler.collapsed:
        first = step + 1 - scaler.skips_in_row
        raise TrainingDiverged(
            f"step {step} (epoch {epoch}): the fp16 loss scale collapsed: steps {first} to "
            f"{step} ({scaler.skips_in_row} in a row) all had a non-finite loss or gradient, "
            f"down to scale {scaler.scale:g}; the model's forward overflows float16 (or the run has "
            f'diverged): train with [train] precision = "bf16" or "fp32". No weight was updated by '
            f"these steps{last_good}"
        )


def last_good(checkpoint: Path | None) -> str:
    """The end of a message that stops a run: where its last good checkpoint is, if it has one."""
    return f"; last good checkpoint: {checkpoint}" if checkpoint else ""
