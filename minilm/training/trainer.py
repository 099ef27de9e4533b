"""The trainer: batches -> loss (optionally gradient-cached) -> clip -> AdamW -> schedule, with logs and checkpoints.

Same seed, same data -> bit-identical weights on CPU; a run resumed from a checkpoint continues exactly as the
uninterrupted run would have (model, optimiser, schedule, sampler position and RNG state are all saved).
Under torchrun each process trains on its shard of every batch through DDP; only rank 0 logs, evaluates and saves
(see minilm/training/distributed.py and docs/distributed.md). With ``metric_for_best`` the best evaluation is tracked
(best.py): ``load_best_at_end`` makes it final/, ``early_stopping_patience`` stops the run; a resume keeps both.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from minilm.card import TrainingCard
from minilm.training import distributed
from minilm.training.best import BestTracker
from minilm.training.compiled import compiled_training
from minilm.training.config import TrainConfig, check_best_settings
from minilm.training.optim import AdamW, LinearWarmupSchedule, clip_grad_norm, param_groups
from minilm.training.reporting import TensorBoard, check_report_to
from minilm.training.step import loss_backward
from minilm.weights import load_weights

STATE_NAME = "trainer_state.pt"


class TrainingDiverged(RuntimeError):
    """The loss or the gradient norm stopped being finite; the weights were not updated with it."""


@dataclass
class TrainData:
    """Text columns plus, for labelled or scored losses, one target per row, passed to the loss by name."""

    columns: list[list[str]]  # [anchors, positives, *negatives] | [texts] | [texts_a, texts_b]
    targets: list | None = None  # int labels or float scores, one per row
    target_name: str | None = None  # "labels" or "scores": the loss's keyword for the targets

    def __len__(self) -> int:
        return len(self.columns[0])

    def batch(self, rows: list[int]) -> tuple[list[list[str]], dict]:
        columns = [[column[i] for i in rows] for column in self.columns]
        if self.targets is None:
            return columns, {}
        dtype = torch.long if self.target_name == "labels" else torch.float32
        return columns, {self.target_name: torch.tensor([self.targets[i] for i in rows], dtype=dtype)}


class Progress:
    """One status line: rewritten in place on a terminal, printed about 20 times a run otherwise (logs, CI)."""

    def __init__(self, total: int, stream=sys.stderr):
        self.total, self.stream, self.start = total, stream, time.perf_counter()
        self.tty = stream.isatty()
        self.every = max(1, total // 20)

    def update(self, step: int, loss: float, lr: float) -> None:
        if not self.tty and step % self.every and step != self.total:
            return
        rate = step / max(time.perf_counter() - self.start, 1e-9)
        line = f"step {step}/{self.total}  loss {loss:.4f}  lr {lr:.2e}  {rate:.2f} step/s"
        print(f"\r{line}" if self.tty else line, end="" if self.tty else "\n", file=self.stream, flush=True)
        if self.tty and step == self.total:
            print(file=self.stream)


class Trainer:
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
    ):
        self.model, self.loss_fn, self.data, self.sampler, self.config = model, loss_fn, data, sampler, config
        self.evaluate, self.say = evaluate, log
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        self.is_main = self.rank == 0  # the one process that logs, evaluates and writes files
        self.forward_model = model  # what the loss step calls: the model, or DDP around it
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
        self.optimizer = optimizer_class(param_groups(model, config.weight_decay), lr=config.lr, betas=(0.9, 0.999),
                                         eps=1e-8, weight_decay=config.weight_decay)
        self.schedule = LinearWarmupSchedule(self.optimizer, self.total_steps, config.warmup_steps,
                                             config.warmup_ratio or None)
        self.step = 0
        self.epoch = 0
        self.history: list[dict] = []  # evaluation results, in order
        self.last_checkpoint: Path | None = None
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.device = next(model.parameters()).device  # labels and scores go where the embeddings are
        self.progress: Progress | None = None
        check_best_settings(config)
        check_report_to(config.report_to)
        if config.metric_for_best and evaluate is None:
            raise ValueError(f"metric_for_best {config.metric_for_best!r} needs an evaluator")
        if config.load_best_at_end and self.output_dir is None:
            raise ValueError("load_best_at_end needs an output directory (the best model is kept as a checkpoint)")
        self.best = BestTracker(config.metric_for_best, config.greater_is_better, config.early_stopping_patience) \
            if config.metric_for_best else None
        self.card = card  # what the model card says about the run (filled in further at each save)
        self.tensorboard: TensorBoard | None = None  # opened at the first record (report_to = ["tensorboard"])

    # ------------------------------------------------------------------------------------------- the loop: named steps

    def train(self) -> list[dict]:
        """Train to ``total_steps``: evaluate first (unless resuming), then take a batch, step, log, maybe evaluate,
        maybe save, until done; evaluate and save the final model last."""
        if self.step == 0:
            self.run_evaluation()
        self.progress = Progress(self.total_steps) if self.is_main else None
        for rows in self.batches():
            record = self.train_step(rows)
            self.log_step(record)
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
                raise ValueError(f"the batch sampler yields no batch in epoch {self.epoch}: too few rows for batch_size?")
            self.model.train(self.config.dropout)
            for rows in self.sampler:
                yield rows
                if self.step >= self.total_steps or self.stopped_early():
                    return
            self.epoch += 1

    def train_step(self, rows: list[int]) -> dict:
        """Loss, backward, clip, AdamW and schedule for one batch; the log record of the step."""
        columns, targets = self.data.batch(rows)
        targets = {k: v.to(self.device) for k, v in targets.items()}
        loss = loss_backward(self.forward_model, columns, self.loss_fn, self.config.mini_batch_size or None, **targets)
        loss = distributed.mean_over_ranks(loss)  # every rank logs and checks the same number
        grad_norm = clip_grad_norm(self.params, self.config.max_grad_norm)  # DDP made the gradients equal on every rank
        loss_value, norm_value = loss.item(), grad_norm.item()  # one device sync each
        if not (math.isfinite(loss_value) and math.isfinite(norm_value)):
            self.optimizer.zero_grad()
            where = f"; last good checkpoint: {self.last_checkpoint}" if self.last_checkpoint else ""
            raise TrainingDiverged(
                f"loss {loss_value} / gradient norm {norm_value} at step {self.step + 1} "
                f"(epoch {self.epoch}); weights were not updated{where}"
            )
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.schedule.step()
        self.optimizer.zero_grad()
        self.step += 1
        return {"step": self.step, "epoch": self.epoch, "loss": loss_value, "lr": lr, "grad_norm": norm_value}

    def log_step(self, record: dict) -> None:
        self.write_log(record)
        if self.progress is not None:
            self.progress.update(record["step"], record["loss"], record["lr"])

    def maybe_evaluate(self) -> None:
        every = self.config.eval_steps
        if every and self.step % every == 0 and self.step < self.total_steps:
            self.track_best(self.run_evaluation())
            self.model.train(self.config.dropout)

    def maybe_save(self) -> None:
        every = self.config.save_steps
        new_best = self.config.load_best_at_end and self.best.best_step == self.step  # final/ may become this model
        if (every and self.step % every == 0 or new_best) and self.step < self.total_steps:
            self.save_checkpoint()

    def finish(self) -> None:
        self.model.eval()
        if not self.stopped_early():  # an early stop has just evaluated this model
            self.track_best(self.run_evaluation())
        if self.output_dir is not None and self.is_main:  # the one process that writes final/ reads the best back
            final_step = self.load_best() if self.config.load_best_at_end else self.step
            self.model.save(self.output_dir / "final", card=self.model_card(final_step))
            self.say(f"saved the fine-tuned model to {self.output_dir / 'final'}")
        if self.tensorboard is not None:
            self.tensorboard.close()

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
            best = "none" if self.best.best_step is None else \
                f"{self.best.best_value:.4f} at step {self.best.best_step}"
            self.say(f"early stopping at step {self.step}: {self.best.metric} has not improved for "
                     f"{self.best.patience} evaluations (best {best})")

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
        self.say(f"load_best_at_end: final/ is the model of step {best} ({self.best.metric} "
                 f"{self.best.best_value:.4f}), not the last one (step {self.step})")
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
        log = self.output_dir / "log.jsonl" if self.output_dir is not None else None
        card.log = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.strip()] \
            if log is not None and log.is_file() else []
        card.steps_per_epoch = card.steps_per_epoch or len(self.sampler.batches(0))
        card.evaluation = next((h for h in reversed(self.history) if h["step"] == step), None)
        card.metric_for_best = self.config.metric_for_best
        card.best_step = self.best.best_step if self.best is not None else None
        return card

    def report(self, record: dict) -> None:
        """report_to: the log record also goes to TensorBoard (log.jsonl is written by write_log)."""
        if "tensorboard" in self.config.report_to:
            if self.tensorboard is None:
                self.tensorboard = TensorBoard(self.output_dir / "tensorboard", purge_step=record["step"])
            self.tensorboard.write(record)

    def write_log(self, record: dict) -> None:
        if self.output_dir is None or not self.is_main:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with open(self.output_dir / "log.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
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
            "best": self.best.state_dict() if self.best is not None else None,
        }

    def load_state_dict(self, state: dict) -> None:
        self.step, self.epoch, self.history = state["step"], state["epoch"], list(state["history"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.sampler.load_state_dict(state["sampler"])
        by_rank = state.get("rng_by_rank", [])
        torch.set_rng_state(by_rank[self.rank] if len(by_rank) == self.world_size else state["rng"])
        if self.best is not None and state.get("best") is not None:
            self.best.load_state_dict(state["best"])

    def save_checkpoint(self) -> Path:
        """checkpoints/step-N/{model/, trainer_state.pt}, built beside and renamed into place in one go (by rank 0)."""
        state = self.state_dict()  # on every rank: it is a collective
        root = self.output_dir / "checkpoints"
        final = root / checkpoint_name(self.step)
        if self.is_main:
            root.mkdir(parents=True, exist_ok=True)
            tmp = root / f".tmp-step-{self.step:07d}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            self.model.save(tmp / "model", card=self.model_card(self.step))
            torch.save(state, tmp / STATE_NAME)
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
            for old in self.prunable_checkpoints():
                shutil.rmtree(old)
        self.last_checkpoint = final
        return final

    def resume_from(self, checkpoint: Path) -> None:
        """Continue from ``checkpoint`` (its model must already be loaded into ``self.model``)."""
        self.load_state_dict(torch.load(checkpoint / STATE_NAME, weights_only=True))
        self.last_checkpoint = checkpoint
        log = self.output_dir / "log.jsonl" if self.output_dir and self.is_main else None
        if log is not None and log.is_file():  # drop what the interrupted run logged after this checkpoint
            kept = [line for line in log.read_text(encoding="utf-8").splitlines()
                    if json.loads(line)["step"] <= self.step]
            log.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def checkpoint_name(step: int) -> str:
    return f"step-{step:07d}"


def checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints under ``output_dir``, oldest first."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step-*") if (p / STATE_NAME).is_file() and (p / "model").is_dir())
