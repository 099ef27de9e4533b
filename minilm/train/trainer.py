"""The trainer: batches -> one step (``step.py``) -> clip -> AdamW -> schedule, with logs, evaluations and checkpoints.

Same seed, same data -> bit-identical weights on CPU; a run resumed from a checkpoint continues exactly as the
uninterrupted run would have (model, optimiser, schedule, sampler position, RNG state and every extension's state are
all saved). What a loss needs besides the batch's embeddings (its own parameters, a frozen guide or teacher model,
every layer, a trained copy of the model, a user's memory queue) comes as extension objects
(``extensions.py``; which ones, from the loss's declaration: ``wiring.py``): the trainer optimises, clips,
checkpoints and saves their parts as each ``Part`` says, and passes the loss what they add, without naming any.
Statistics a loss reports go to ``log.jsonl`` with each step (``"stats"``), with what the extensions report after the
update (a learned parameter's value: the one the next step uses, and after the last step the one saved).
Under torchrun each process trains on its shard of every batch through DDP; only rank 0 logs, evaluates and saves
(see minilm/train/distributed.py and docs/distributed.md). The model trains on ``[train] device`` (its loss inputs and
the extensions' parts follow it), under ``[train] precision`` (precision.py: autocast in the step, float32 weights and
moments, fp16's loss scale checkpointed with the rest). A step reads the device back once: its loss, its gradient norm
and whether the previous step left every weight finite; a step is logged once that is known. With ``metric_for_best``
the best evaluation is tracked (best.py): ``load_best_at_end`` makes it final/, ``early_stopping_patience`` stops the
run; a resume keeps both.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save

from minilm.card import TrainingCard
from minilm.data.dataset import TrainData
from minilm.loading.weights import load_weights
from minilm.losses.inputs import LossOutputError
from minilm.train import distributed
from minilm.train.best import BestTracker
from minilm.train.checkpoints import STATE_NAME, checkpoint_name, checkpoints, read_state, write_state
from minilm.train.compiled import compiled_training
from minilm.train.config import TrainConfig, check_best_settings
from minilm.train.extensions import Extension, Part, RunContext
from minilm.train.optim import AdamW, LinearWarmupSchedule, clip_grad_norm, param_groups
from minilm.train.precision import make_precision, tf32_matmuls
from minilm.train.reporting import TensorBoard, check_report_to
from minilm.train.step import GradCache, embed_plain, step
from minilm.train.wiring import build_extensions, check_extensions
from minilm.util import usercode
from minilm.util.checks import NonFiniteError
from minilm.util.devices import check_tf32, environment, environment_line, to_device
from minilm.util.io import (
    WriteError,
    append_line,
    building,
    json_line,
    read_json_lines,
    remove_tree,
    write_bytes,
    write_json,
    write_text,
)
from minilm.util.progress import Progress

LOG_NAME = "log.jsonl"
_STDERR = sys.stderr  # the process's stderr as at import: a status line, not a message to capture
# A checkpoint's keys that are the trainer's own; every other key is a part's state (``Part.checkpointed``).
TRAINER_KEYS = {
    "step",
    "epoch",
    "optimizer",
    "schedule",
    "sampler",
    "rng",
    "rng_by_rank",
    "history",
    "extensions",
    "best",
    "seconds",
    "precision",
}

__all__ = ["LOG_NAME", "TrainConfig", "TrainData", "Trainer", "TrainingDiverged"]


class TrainingDiverged(RuntimeError):
    """The loss or the gradient norm stopped being finite; the weights were not updated with it."""


@dataclass
class Unconfirmed:
    """A step taken whose log record waits for the next read-back to say its update left every weight finite."""

    weights_finite: torch.Tensor | None  # 0-d bool on the device, not read yet; None: no update (a skipped step)
    record: dict
    lr: float


class Trainer:
    save_final = True  # write output_dir/final at the end (a sweep that keeps no models switches it off)

    def __init__(
        self,
        model,
        loss_fn: Callable,
        data: TrainData,
        sampler,
        config: TrainConfig,
        evaluate: Callable | None = None,
        output_dir: str | Path | None = None,
        log: Callable[[str], None] = print,
        card: TrainingCard | None = None,
        extensions: Sequence[Extension] = (),
    ):
        """``extensions``: objects made by the caller (a recipe run builds all its loss wants, loading its frozen
        models); the others the loss's declaration wants, and its parameters, are made here."""
        self.model, self.loss_fn, self.data, self.sampler, self.config = model, loss_fn, data, sampler, config
        self.evaluate, self.say = evaluate, log
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        self.is_main = self.rank == 0  # the one process that logs, evaluates and writes files
        # where the model trains; targets, extension inputs and parts go there too
        self.device = distributed.process_device(config.device, "[train] device")
        check_float32_weights(model)
        self.precision = make_precision(config.precision, self.device)  # None for fp32: the plain step
        self.scaler = self.precision.scaler if self.precision is not None else None  # fp16's loss scale
        check_tf32(config.tf32, self.device)
        self.environment = environment(self.device, config.precision)  # progress line, model card
        model.to(self.device)
        run = RunContext(model, loss_fn, config, target_name=data.target_name, world_size=self.world_size)
        self.extensions = build_extensions(run, list(extensions))  # before compiling or wrapping: starting weights
        check_extensions(run, self.extensions)
        self.parts: dict[str, Part] = {name: part for ext in self.extensions for name, part in ext.parts().items()}
        for part in self.parts.values():
            part.module.to(self.device)
            if part.trains:
                distributed.broadcast_parameters(part.module)  # equal on every rank
        self.embed = next((e.embedding() for e in self.extensions if e.embedding() is not None), embed_plain)
        rows, tokens = config.mini_batch_size or None, config.mini_batch_num_tokens or None
        self.cache = GradCache(rows, tokens) if rows is not None or tokens is not None else None
        self.forward_model = model  # what the step calls: the model, or DDP around it
        optimizer_class = AdamW
        if config.compile:  # before any wrapping: the fused loss is chosen by what the loss function is
            self.loss_fn, optimizer_class = compiled_training(model, loss_fn)
        if self.world_size > 1:
            distributed.check_batch_size(config.batch_size, self.world_size)
            self.sampler = distributed.ShardedBatchSampler(sampler, self.rank, self.world_size)
            self.forward_model = distributed.wrap(model)
            if config.gather_across_devices:
                self.loss_fn = distributed.gather_loss(self.loss_fn)
        torch.manual_seed(config.seed + self.rank)  # dropout draws, distinct per rank; the sampler has its own seed
        self.total_steps = config.max_steps or sum(len(self.sampler.batches(e)) for e in range(config.epochs))
        self.optimizer = optimizer_class(
            self.optimizer_groups(), lr=config.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=config.weight_decay
        )
        self.schedule = LinearWarmupSchedule(
            self.optimizer, self.total_steps, config.warmup_steps, config.warmup_ratio or None
        )
        self.step = 0
        self.epoch = 0
        # run time: this attempt's (since the trainer was built), plus that of the attempts before a resume, as their
        # checkpoint recorded it (what a killed attempt did after its last checkpoint is redone, not counted)
        self.started, self.seconds_before = time.perf_counter(), 0.0
        self.history: list[dict] = []  # evaluation results, in order
        self.last_checkpoint: Path | None = None
        training = [part for part in self.parts.values() if part.trains]
        self.outside_ddp = [p for part in training for p in part.module.parameters() if p.requires_grad]
        # clipped together, under one global norm
        self.params = [p for p in model.parameters() if p.requires_grad] + self.outside_ddp
        self.progress: Progress | None = None
        check_best_settings(config)
        check_report_to(config.report_to)
        if config.metric_for_best and evaluate is None:
            raise ValueError(f"metric_for_best {config.metric_for_best!r} needs an evaluator")
        if config.load_best_at_end and self.output_dir is None:
            raise ValueError("load_best_at_end needs an output directory (the best model is kept as a checkpoint)")
        self.best = (
            BestTracker(config.metric_for_best, config.greater_is_better, config.early_stopping_patience)
            if config.metric_for_best
            else None
        )
        self.card = card  # what the model card says about the run (filled in further at each save)
        self.tensorboard: TensorBoard | None = None  # opened at the first record (report_to = ["tensorboard"])
        self.log_records: list[dict] | None = None  # log.jsonl as records: read once (for a card), then kept in step
        self.unconfirmed: Unconfirmed | None = None  # the last step, logged once its weights are known finite

    def extension(self, kind: type[Extension]) -> Extension | None:
        """This run's extension of class ``kind``, or None."""
        return next((ext for ext in self.extensions if isinstance(ext, kind)), None)

    def optimizer_groups(self) -> list[dict]:
        """The model's parameter groups, then each training part's (at its own lr when it has one); the same
        weight-decay rule for all."""
        groups = param_groups(self.model, self.config.weight_decay)
        for part in self.parts.values():
            if part.trains:
                for group in param_groups(part.module, self.config.weight_decay):
                    if group["params"]:
                        groups.append({**group, "lr": part.lr} if part.lr else group)
        return groups

    # ------------------------------------------------------------------------------------------- the loop: named steps

    def train(self) -> list[dict]:
        """Train to ``total_steps``: evaluate first (unless resuming), then take a batch, step, log, maybe evaluate,
        maybe save, until done; evaluate and save the final model last."""
        if self.step == 0:
            self.run_evaluation()
        if self.is_main:  # about 20 lines a run in a log file, however fast it goes
            self.progress = Progress(
                self.total_steps,
                "steps",
                "train",
                stream=_STDERR,
                start=self.step,
                every=max(1, self.total_steps // 20),
            )
        with tf32_matmuls(self.config.tf32):
            for rows in self.batches():
                self.train_step(rows)  # logs the step before it
                self.maybe_evaluate()
                self.maybe_save()
            self.finish()
        return self.history

    def batches(self) -> Iterator[list[int]]:
        """The sampler's batches from the current position, epoch after epoch, until ``total_steps``."""
        resuming_mid_epoch = self.step > 0
        while self.step < self.total_steps and not self.stopped_early():
            if not resuming_mid_epoch:
                self.sampler.set_epoch(self.epoch)
            resuming_mid_epoch = False
            if not self.sampler.batches(self.epoch):
                raise ValueError(
                    f"the batch sampler yields no batch in epoch {self.epoch}: too few rows for batch_size?"
                )
            self.train_mode()
            for rows in self.sampler:
                yield rows
                if self.step >= self.total_steps or self.stopped_early():
                    return
            self.epoch += 1

    def train_mode(self) -> None:
        """Dropout on (as ``[train] dropout`` says) in the model and every part that trains."""
        self.model.train(self.config.dropout)
        for part in self.parts.values():
            if part.trains:
                part.module.train(self.config.dropout)

    def train_step(self, rows: list[int]) -> dict:
        """One step (the loss's inputs, forward and backward), clip, AdamW and schedule; the log record of the step,
        logged when the next read-back (the next step's, an evaluation's, a save's or the end's) confirms it."""
        columns, targets = self.data.batch(rows)
        with self.users_code():  # the loss, and what its extensions add, may be the user's own code
            inputs = {k: to_device(v, self.device) for k, v in targets.items()}
            for ext in self.extensions:
                inputs.update(ext.loss_inputs(columns, self.step, self.device))
            try:
                result = step(self.forward_model, columns, self.loss_fn, inputs, self.embed, self.cache, self.precision)
            except NonFiniteError as e:  # finite weights can still overflow in the forward pass
                self.optimizer.zero_grad()
                self.confirm_step()  # the step before made a weight non-finite: that is the error to report
                if self.scaler is not None:  # fp16: an overflow in the forward, skipped as an overflow of the backward
                    return self.skip_step(math.nan, math.nan)
                raise TrainingDiverged(
                    f"step {self.step + 1} (epoch {self.epoch}): {e}; the weights after step {self.step} overflow "
                    f"(learning rate too high?); nothing from this step was saved{self._last_good()}"
                ) from None
        distributed.average_gradients(self.outside_ddp)  # DDP averages the model's; the parts' are outside it
        loss = distributed.mean_over_ranks(result.loss)  # every rank logs and checks the same number
        if self.scaler is not None:
            self.scaler.unscale_(self.params)  # the gradients of the scaled loss, back to the loss's own
        grad_norm = clip_grad_norm(self.params, self.config.max_grad_norm)  # DDP made the gradients equal on every rank
        loss_value, norm_value = self.read_back(loss, grad_norm)  # the step's one device sync
        if not (math.isfinite(loss_value) and math.isfinite(norm_value)):
            self.optimizer.zero_grad()
            if self.scaler is not None:  # fp16: the scale overflowed the gradients; skip, with a lower scale
                return self.skip_step(loss_value, norm_value)
            raise TrainingDiverged(
                f"loss {loss_value} / gradient norm {norm_value} at step {self.step + 1} "
                f"(epoch {self.epoch}); weights were not updated{self._last_good()}"
            )
        lr = self.optimizer.param_groups[0]["lr"]
        scale = self.scaler.scale if self.scaler is not None else None
        if self.scaler is not None:
            self.scaler.update(finite=True)
        self.optimizer.step()
        self.schedule.step()
        self.optimizer.zero_grad()
        with self.users_code():
            for ext in self.extensions:
                ext.after_step(result)
        self.step += 1
        record = {"step": self.step, "epoch": self.epoch, "loss": loss_value, "lr": lr, "grad_norm": norm_value}
        if scale is not None:
            record["loss_scale"] = scale
        stats = dict(self.mean_statistics(result.stats)) if result.stats else {}
        for ext in self.extensions:  # values as they are after the update (a learned temperature): equal on every rank
            stats.update(ext.statistics())
        if stats:
            record["stats"] = stats
        self.unconfirmed = Unconfirmed(self.weights_finite(), record, lr)
        return record

    def read_back(self, loss: torch.Tensor, grad_norm: torch.Tensor) -> tuple[float, float]:
        """The step's loss and gradient norm as numbers, in one device sync that also reads whether the previous
        step's update left every weight finite (and logs that step, or stops the run naming it)."""
        waiting = self.unconfirmed.weights_finite if self.unconfirmed is not None else None
        values = [loss, grad_norm] + ([waiting] if waiting is not None else [])
        numbers = torch.stack([v.detach().float().reshape(()).to(self.device) for v in values]).tolist()
        self.confirm_step(bool(numbers[2]) if waiting is not None else None)
        return numbers[0], numbers[1]

    def confirm_step(self, weights_finite: bool | None = None) -> None:
        """Log the last step now that its weights are known finite (``weights_finite`` read back with the next
        step's numbers; None: read it here, at an evaluation, a save or the end), or stop the run naming it."""
        last, self.unconfirmed = self.unconfirmed, None
        if last is None:
            return
        if weights_finite is None:
            weights_finite = last.weights_finite is None or bool(last.weights_finite)
        if not weights_finite:  # names the tensor (or passes: a sum overflowed, the values are finite)
            self.check_weights(last.lr, last.record["step"], last.record["epoch"])
        self.log_step(last.record)

    def skip_step(self, loss_value: float, norm_value: float) -> dict:
        """fp16: the step's scaled gradients (or its forward) overflowed. No update: the weights, AdamW's moments and
        the schedule stay as they were; the batch is used up and the loss scale halved. Too many in a row stop the
        run."""
        scale = self.scaler.scale
        self.scaler.update(finite=False)
        if self.scaler.collapsed:
            first = self.step + 2 - self.scaler.skips_in_row
            raise TrainingDiverged(
                f"step {self.step + 1} (epoch {self.epoch}): the fp16 loss scale collapsed: steps {first} to "
                f"{self.step + 1} ({self.scaler.skips_in_row} in a row) all had a non-finite loss or gradient, "
                f"down to scale {self.scaler.scale:g}; the model's forward overflows float16 (or the run has "
                f'diverged): train with [train] precision = "bf16" or "fp32". No weight was updated by '
                f"these steps{self._last_good()}"
            )
        lr = self.optimizer.param_groups[0]["lr"]
        self.step += 1
        record = {"step": self.step, "epoch": self.epoch, "loss": loss_value, "lr": lr, "grad_norm": norm_value}
        record.update(loss_scale=scale, skipped=True)
        self.unconfirmed = Unconfirmed(None, record, lr)
        return record

    def users_code(self):
        """A block that may run the user's code (their loss, their extension): what it raises, SystemExit included,
        or a loss output the step refuses (detached, changed inputs), ends the run as one error naming the loss as
        ``file.py:function``, the step and the error (``minilm/util/usercode.py``); a non-finite tensor stays a
        diverged run."""
        return usercode.blame(
            self.loss_fn,
            f"at step {self.step + 1} (epoch {self.epoch})",
            always=(LossOutputError,),
            never=(NonFiniteError, TrainingDiverged),
        )

    def mean_statistics(self, stats: dict) -> dict:
        """The loss's statistics averaged over ranks (each rank's are of its shard unless the loss is gathered)."""
        if self.world_size == 1:
            return stats
        values = torch.tensor([math.nan if v is None else v for v in stats.values()], device=self.device)
        means = distributed.mean_over_ranks(values).tolist()
        return {k: v if math.isfinite(v) else None for k, v in zip(stats, means)}

    def saved_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Every tensor a checkpoint or the final save holds: the model's weights, each checkpointed part's state,
        each extension's own state (a queue) and the optimiser's moments of every parameter, by name."""
        yield from self.model.named_parameters()
        names = {id(p): name for name, p in self.model.named_parameters()}
        for name, part in self.parts.items():
            names.update({id(p): f"{name}.{key}" for key, p in part.module.named_parameters()})
            if part.checkpointed or part.saved:
                for key, value in part.module.state_dict().items():
                    yield f"{name}.{key}", value
        for ext in self.extensions:
            for key, value in ext.state_dict().items():
                yield f"{ext.name}.{key}", value
        for param, moments in self.optimizer.state.items():  # exp_avg_sq can overflow while the weights stay finite
            for key, value in moments.items():
                if isinstance(value, torch.Tensor):
                    yield f"optimizer.{names.get(id(param), 'parameter')}.{key}", value

    def weights_finite(self) -> torch.Tensor:
        """0-d bool on the device, not read back: every saved tensor's sum is finite (one cheap reduction each; a
        false alarm, a sum that overflowed, is told apart by ``check_weights``)."""
        sums = [t.detach().sum().to(self.device) for _, t in self.saved_tensors() if t.is_floating_point()]
        return torch.isfinite(torch.stack(sums)).all() if sums else torch.ones((), dtype=torch.bool)

    def check_weights(self, lr: float, step: int | None = None, epoch: int | None = None) -> None:
        """Stop the run at the step that made any saved tensor NaN or infinite (e.g. a learning rate far too high):
        nothing non-finite is logged or saved, and the last checkpoint stays the last good one."""
        step, epoch = self.step if step is None else step, self.epoch if epoch is None else epoch
        named = [(n, t.detach()) for n, t in self.saved_tensors() if t.is_floating_point()]
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
            f"finite; the learning rate is likely too high. Nothing from this step was saved{self._last_good()}"
        )

    def check_outputs(self) -> None:
        """Before anything is saved: the model's embeddings of a few training texts must be finite. Weights can all be
        finite and still overflow in the forward pass (huge after one step of a far too high learning rate)."""
        self.confirm_step()
        texts = [column[0] for column in self.data.columns]
        embeddings = self.model.encode(texts, convert_to_tensor=True, workers=1)
        if not bool(torch.isfinite(embeddings).all()):
            raise TrainingDiverged(
                f"after step {self.step} (epoch {self.epoch}) the weights are finite but the model's embeddings are "
                f"not (they overflow: learning rate too high?); nothing was saved{self._last_good()}"
            )

    def _last_good(self) -> str:
        return f"; last good checkpoint: {self.last_checkpoint}" if self.last_checkpoint else ""

    def log_step(self, record: dict) -> None:
        self.write_log(record)
        if self.progress is not None:
            detail = f"loss {record['loss']:.4f}  lr {record['lr']:.2e}"
            if record.get("skipped"):
                detail += f"  skipped (fp16 loss scale {record['loss_scale']:g} overflowed)"
            if self.progress.last_shown is None:  # the run's first line says what it runs on
                detail += "  " + environment_line(self.environment)
            self.progress.update(record["step"], detail)

    def maybe_evaluate(self) -> None:
        every = self.config.eval_steps
        if every and self.step % every == 0 and self.step < self.total_steps:
            self.confirm_step()
            self.track_best(self.run_evaluation())
            self.model.train(self.config.dropout)

    def maybe_save(self) -> None:
        every = self.config.save_steps
        new_best = self.config.load_best_at_end and self.best.best_step == self.step  # final/ may become this model
        if (every and self.step % every == 0 or new_best) and self.step < self.total_steps:
            self.save_checkpoint()

    def finish(self) -> None:
        self.check_outputs()
        self.model.eval()
        if not self.stopped_early():  # an early stop has just evaluated this model
            self.track_best(self.run_evaluation())
        if self.output_dir is not None and self.is_main and self.save_final:  # one process writes final/
            final_step = self.load_best() if self.config.load_best_at_end else self.step
            self.model.save(self.output_dir / "final", card=self.model_card(final_step))
            self.save_parts_beside(self.output_dir / "final")
            self.say(f"saved the fine-tuned model to {self.output_dir / 'final'}")
        if self.tensorboard is not None:
            self.tensorboard.close()

    def save_parts_beside(self, directory: Path) -> None:
        """Each part saved with the model (a loss's parameters: a classifier head, a temperature): its state_dict to
        ``<name>.safetensors`` and its class and tensor shapes to ``<name>.json``, in ``directory``."""
        for name, part in self.parts.items():
            if not part.saved:
                continue
            module = part.module
            state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
            about = {
                "class": f"{type(module).__module__}.{type(module).__qualname__}",
                "tensors": {k: list(v.shape) for k, v in state.items()},
                # used with the model (a classifier head), or learnt for training only (a temperature)
                "part_of_model": bool(getattr(module, "part_of_model", False)),
            }
            write_bytes(directory / f"{name}.safetensors", save(state))  # each whole or absent
            write_json(directory / f"{name}.json", about)

    def run_evaluation(self) -> dict | None:
        """Evaluate, record and log; the result (None on the ranks that do not evaluate, or without an evaluator)."""
        if self.evaluate is None or not self.is_main:  # the other ranks wait for it at their next collective
            return None
        result = self.evaluate(self.model)
        self.history.append({"step": self.step, **result})
        self.write_log({"step": self.step, "eval": result})
        self.say(f"eval at step {self.step}: " + "  ".join(f"{k} {v:.4f}" for k, v in result.items()))
        return result

    # ------------------------------------------------------------------------------------------- best model, early stop

    def track_best(self, result: dict | None) -> None:
        """Compare an evaluation with the best so far (metric_for_best). Rank 0 evaluates and every rank takes its
        verdict, since the checkpoint a new best triggers and an early stop are steps all ranks take together."""
        if self.best is None:
            return
        if result is not None:
            self.best.update(self.step, result)
        self.best.load_state_dict(distributed.gather_objects(self.best.state_dict())[0])
        if self.stopped_early() and self.step < self.total_steps:
            best = (
                "none" if self.best.best_step is None else f"{self.best.best_value:.4f} at step {self.best.best_step}"
            )
            self.say(
                f"early stopping at step {self.step}: {self.best.metric} has not improved for "
                f"{self.best.patience} evaluations (best {best})"
            )

    def stopped_early(self) -> bool:
        return self.best is not None and self.best.should_stop

    def load_best(self) -> int:
        """load_best_at_end: put the best checkpoint's weights into the model; the step of the model it now holds."""
        best = self.best.best_step
        if best is None or best == self.step:  # the last model is the best (or nothing was ever better than NaN)
            return self.step
        path = self.output_dir / "checkpoints" / checkpoint_name(best) / "model"
        if not (path / "model.safetensors").is_file():
            raise FileNotFoundError(f"load_best_at_end: the best checkpoint (step {best}) is missing: {path}")
        load_weights(self.model.bert, path)
        saved = {name: part for name, part in self.parts.items() if part.saved}
        if saved:  # what is saved with the model is the best step's too
            state = read_state(path.parent)
            for name, part in saved.items():
                part.module.load_state_dict(state[name])
        self.say(
            f"load_best_at_end: final/ is the model of step {best} ({self.best.metric} "
            f"{self.best.best_value:.4f}), not the last one (step {self.step})"
        )
        return best

    def prunable_checkpoints(self) -> list[Path]:
        """The checkpoints beyond the newest keep_checkpoints, except the best one, which pruning keeps."""
        best = self.best.best_step if self.best is not None else None
        keep = checkpoint_name(best) if best is not None else None
        return [p for p in checkpoints(self.output_dir)[: -self.config.keep_checkpoints] if p.name != keep]

    # ------------------------------------------------------------------------------------------- model card, reports

    def model_card(self, step: int) -> TrainingCard | None:
        """The run's card for the model of ``step`` (rank 0): the log so far and that model's own evaluation."""
        if self.card is None:
            return None
        card = self.card
        if self.log_records is None:
            log = self.output_dir / LOG_NAME if self.output_dir is not None else None
            self.log_records = read_json_lines(log)[0] if log is not None and log.is_file() else []
        card.log = list(self.log_records)
        card.steps_per_epoch = card.steps_per_epoch or len(self.sampler.batches(0))
        card.evaluation = next((h for h in reversed(self.history) if h["step"] == step), None)
        card.metric_for_best = self.config.metric_for_best
        card.best_step = self.best.best_step if self.best is not None else None
        card.environment = self.environment
        return card

    def report(self, record: dict) -> None:
        """report_to: the log record also goes to TensorBoard (log.jsonl is written by write_log)."""
        if "tensorboard" in self.config.report_to:
            if self.tensorboard is None:
                self.tensorboard = TensorBoard(self.output_dir / "tensorboard", purge_step=record["step"])
            self.tensorboard.write(record)

    def write_log(self, record: dict) -> None:
        """One JSON Lines record per call, appended in a single write; NaN and infinity become null plus the reason."""
        if self.output_dir is None or not self.is_main:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        line = json_line(record)
        append_line(self.output_dir / LOG_NAME, line)
        if self.log_records is not None:
            self.log_records.append(json.loads(line))  # as read_json_lines would read it back
        self.report(record)

    # ------------------------------------------------------------------------------------------- checkpoints

    def state_dict(self) -> dict:
        """Everything a resume needs. Under several processes this is a collective (every rank's RNG goes in)."""
        rng = torch.get_rng_state()
        return {
            "step": self.step,
            "epoch": self.epoch,
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "sampler": self.sampler.state_dict(),
            "rng": rng,
            "rng_by_rank": distributed.gather_objects(rng),
            "history": self.history,
            **{name: part.module.state_dict() for name, part in self.parts.items() if part.checkpointed},
            "extensions": {ext.name: ext.state_dict() for ext in self.extensions if ext.state_dict()},
            "best": self.best.state_dict() if self.best is not None else None,
            "seconds": self.seconds(),
            "precision": {
                "name": self.config.precision,
                "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            },
        }

    def seconds(self) -> float:
        """The run's time so far, over every attempt (``started``)."""
        return self.seconds_before + time.perf_counter() - self.started

    def load_state_dict(self, state: dict) -> None:
        kept = {name for name, part in self.parts.items() if part.checkpointed}
        parts_in_state = set(state) - TRAINER_KEYS
        if kept != parts_in_state:
            raise ValueError(
                f"the checkpoint holds the state of {sorted(parts_in_state) or 'no part'} besides the model, but this "
                f"run's loss brings {sorted(kept) or 'none'}: was it written with another loss?"
            )
        extension_states = state.get("extensions", {})
        unknown = set(extension_states) - {ext.name for ext in self.extensions}
        if unknown:
            raise ValueError(
                f"the checkpoint holds the state of extension(s) {sorted(unknown)}, which this run's "
                f"loss does not have: was it written with another loss?"
            )
        precision = state.get("precision") or {"name": "fp32", "scaler": None}  # older checkpoints: float32 runs
        if precision["name"] != self.config.precision:
            raise ValueError(
                f"the checkpoint was trained with [train] precision {precision['name']!r}, this run has "
                f"{self.config.precision!r}: resume with the precision it was written with"
            )
        self.step, self.epoch, self.history = state["step"], state["epoch"], list(state["history"])
        self.seconds_before = float(state.get("seconds", 0.0))  # absent in a checkpoint of an older minilm
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.sampler.load_state_dict(state["sampler"])
        for name in kept:  # each part as trained so far, never rebuilt from the resumed model
            self.parts[name].module.load_state_dict(state[name])
        for ext in self.extensions:
            ext.load_state_dict(extension_states.get(ext.name, {}))
        by_rank = state.get("rng_by_rank", [])
        torch.set_rng_state(by_rank[self.rank] if len(by_rank) == self.world_size else state["rng"])
        if self.best is not None and state.get("best") is not None:
            self.best.load_state_dict(state["best"])
        if self.scaler is not None:
            self.scaler.load_state_dict(precision["scaler"])

    def save_checkpoint(self) -> Path:
        """checkpoints/step-N/{model/, trainer_state.pt}, built beside and renamed into place in one go (by rank 0)."""
        self.check_outputs()
        state = self.state_dict()  # on every rank: it is a collective
        root = self.output_dir / "checkpoints"
        final = root / checkpoint_name(self.step)
        if self.is_main:
            try:
                with building(final) as tmp:  # a temporary name unique to this process, swapped in when complete
                    self.model.save(tmp / "model", card=self.model_card(self.step))
                    write_state(state, tmp / STATE_NAME)
                for old in self.prunable_checkpoints():
                    remove_tree(old)  # renamed away first: a kill mid-removal leaves no half checkpoint
            except OSError as e:
                raise WriteError(
                    e.errno,
                    f"{e}; training stopped after step {self.step}{self._last_good()}",
                    getattr(e, "reason", ""),
                ) from None
        self.last_checkpoint = final
        return final

    def resume_from(self, checkpoint: Path | None, state: dict | None = None) -> None:
        """Continue from ``checkpoint`` (its model must already be loaded into ``self.model``; ``state`` is its
        read_state, if already read); None starts the recorded run again from step 0."""
        if checkpoint is not None:
            self.load_state_dict(state if state is not None else read_state(checkpoint))
            self.last_checkpoint = checkpoint
        if self.output_dir is not None and self.is_main:
            self.trim_log()

    def trim_log(self) -> None:
        """Drop what the interrupted run logged after the step resumed from (and a torn last line, if a kill cut
        one short); the log is rewritten beside and renamed, so a kill here leaves the old log."""
        log = self.output_dir / LOG_NAME
        if not log.is_file():
            return
        records, torn = read_json_lines(log)
        if torn:
            self.say(f"{log}: dropped a torn last line (the interrupted run's last write)")
        kept = [r for r in records if r.get("step", 0) <= self.step] if self.step else []  # step 0: all is redone
        write_text(log, "".join(json_line(r) + "\n" for r in kept))
        self.log_records = None  # read again when a card needs it


def check_float32_weights(model: torch.nn.Module) -> None:
    """Training keeps float32 master weights (and AdamW moments); a half-precision model is refused by name."""
    other = sorted({str(p.dtype) for p in model.parameters() if p.is_floating_point() and p.dtype != torch.float32})
    if other:
        raise ValueError(
            f"the model to train has {', '.join(other)} weights; training keeps float32 weights and runs the forward "
            f'in bf16 or fp16 under autocast: load it in float32 and set [train] precision = "bf16" or "fp16"'
        )
