"""The trainer: batches -> one step (``step.py``) -> clip -> AdamW -> schedule, with logs, evaluations and checkpoints.

Same seed, same data -> bit-identical weights on CPU; a run resumed from a checkpoint continues exactly as the
uninterrupted run would have (what a checkpoint holds: state.py; writing it and final/: saving.py). What a loss needs
besides the batch's embeddings comes as extension objects (``extensions.py``; which ones, from the loss's
declaration: ``wiring.py``): the trainer optimises, clips, checkpoints and saves their parts as each ``Part`` says,
and passes the loss what they add, without naming any. Statistics a loss reports, and what the extensions report after
the update, are logged with each step (run_log.py). Under torchrun each process trains on its shard of every batch
through DDP; only rank 0 logs, evaluates and saves (distributed.py). The model trains on ``[train] device`` under
``[train] precision`` (precision.py). A step reads the device back once: its loss, its gradient norm and whether the
previous step left every weight finite (divergence.py); a step is logged once that is known. With ``metric_for_best``
the best evaluation is tracked (best.py) for ``load_best_at_end`` and ``early_stopping_patience``.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch

from minilm.card import TrainingCard
from minilm.data.dataset import TrainData
from minilm.losses.inputs import LossOutputError
from minilm.train import distributed
from minilm.train.best import BestTracker
from minilm.train.checkpoints import read_state
from minilm.train.compiled import compiled_training
from minilm.train.config import ADAM_BETAS, ADAM_EPS, TrainConfig, check_best_settings, check_learning_rates
from minilm.train.divergence import (
    TrainingDiverged,
    Unconfirmed,
    check_embeddings,
    check_float32_weights,
    check_loss_scale,
    check_saved_tensors,
    last_good,
    saved_tensors,
    weights_finite,
)
from minilm.train.extensions import Extension, Part, RunContext
from minilm.train.optim import AdamW, LinearWarmupSchedule, clip_grad_norm, param_groups
from minilm.train.precision import make_precision, tf32_matmuls
from minilm.train.reporting import check_report_to
from minilm.train.run_log import LOG_NAME, RunLog
from minilm.train.saving import save_checkpoint, save_final_model
from minilm.train.state import load_trainer_state, trainer_state
from minilm.train.step import GradCache, embed_plain, step
from minilm.train.wiring import build_extensions, check_extensions
from minilm.util import usercode
from minilm.util.checks import NonFiniteError
from minilm.util.devices import check_tf32, environment, to_device

_STDERR = sys.stderr  # the process's stderr as at import: a status line, not a message to capture
__all__ = ["LOG_NAME", "TrainConfig", "TrainData", "Trainer", "TrainingDiverged"]


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
            self.optimizer_groups(), lr=config.lr, betas=ADAM_BETAS, eps=ADAM_EPS, weight_decay=config.weight_decay
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
        check_best_settings(config)
        check_learning_rates(config)
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
        self.run_log = RunLog(self.output_dir, self.is_main, config.report_to, self.environment)  # and progress
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
        self.run_log.start_progress(self.total_steps, self.step, _STDERR)
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
                    f"(learning rate too high?); nothing from this step was saved{last_good(self.last_checkpoint)}"
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
                f"(epoch {self.epoch}); weights were not updated{last_good(self.last_checkpoint)}"
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
        stats = dict(distributed.mean_statistics(result.stats, self.device)) if result.stats else {}
        for ext in self.extensions:  # values as they are after the update (a learned temperature): equal on every rank
            stats.update(ext.statistics())
        if stats:
            record["stats"] = stats
        self.unconfirmed = Unconfirmed(weights_finite(self.saved_tensors(), self.device), record, lr)
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
        check_loss_scale(self.scaler, self.step + 1, self.epoch, last_good(self.last_checkpoint))
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

    def saved_tensors(self) -> Iterator[tuple[str, torch.Tensor]]:
        """Every tensor a checkpoint or the final save holds, by name (divergence.saved_tensors)."""
        return saved_tensors(self.model, self.parts, self.extensions, self.optimizer)

    def check_weights(self, lr: float, step: int | None = None, epoch: int | None = None) -> None:
        """Stop the run at the step that made any saved tensor NaN or infinite (e.g. a learning rate far too high):
        nothing non-finite is logged or saved, and the last checkpoint stays the last good one."""
        step, epoch = self.step if step is None else step, self.epoch if epoch is None else epoch
        check_saved_tensors(self.saved_tensors(), lr, step, epoch, last_good(self.last_checkpoint))

    def check_outputs(self) -> None:
        """Before anything is saved: the last step confirmed, and the model's embeddings of a few training texts
        finite (weights can all be finite and still overflow in the forward pass)."""
        self.confirm_step()
        texts = [column[0] for column in self.data.columns]
        check_embeddings(self.model, texts, self.step, self.epoch, last_good(self.last_checkpoint))

    def log_step(self, record: dict) -> None:
        self.write_log(record)
        self.run_log.show(record)

    def write_log(self, record: dict) -> None:
        """One record to log.jsonl (and TensorBoard), by the process that writes files (run_log.py)."""
        self.run_log.write(record)

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
            save_final_model(self)
        self.run_log.close()

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
            self.say(f"early stopping at step {self.step}: {self.best.why_stopped()}")

    def stopped_early(self) -> bool:
        return self.best is not None and self.best.should_stop

    # ------------------------------------------------------------------------------------------- checkpoints

    def state_dict(self) -> dict:
        """Everything a resume needs (state.py); under several processes a collective."""
        return trainer_state(self)

    def load_state_dict(self, state: dict) -> None:
        load_trainer_state(self, state)

    def seconds(self) -> float:
        """The run's time so far, over every attempt (``started``)."""
        return self.seconds_before + time.perf_counter() - self.started

    def save_checkpoint(self) -> Path:
        """checkpoints/step-N/{model/, trainer_state.pt}, written by rank 0 (saving.py)."""
        return save_checkpoint(self)

    def resume_from(self, checkpoint: Path | None, state: dict | None = None) -> None:
        """Continue from ``checkpoint`` (its model must already be loaded into ``self.model``; ``state`` is its
        read_state, if already read); None starts the recorded run again from step 0."""
        if checkpoint is not None:
            self.load_state_dict(state if state is not None else read_state(checkpoint))
            self.last_checkpoint = checkpoint
        self.run_log.trim(self.step, self.say)
