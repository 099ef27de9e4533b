"""The trainer: batches -> loss (optionally gradient-cached) -> clip -> AdamW -> schedule, with logs and checkpoints.

Same seed, same data -> bit-identical weights on CPU; a run resumed from a checkpoint continues exactly as the
uninterrupted run would have (model, optimiser, schedule, sampler position and RNG state are all saved).
A loss with parameters (an nn.Module: a learnable temperature, a classifier head) is trained with the model: its
parameters are optimised (at ``[train] loss_lr`` when set), checkpointed, and, when the loss class says
``part_of_model = True``, saved beside the final model (``final/loss.safetensors``). Statistics a loss reports go
to ``log.jsonl`` with each step (``"stats"``). A loss that takes a guide model's embeddings (GIST) gets them from a
frozen guide model (minilm/train/frozen.py), which is neither optimised nor checkpointed nor saved; a distillation
loss with a teacher model ([loss] teacher) gets the frozen teacher's embeddings of the batch's texts the same way.
A loss comparing the model with a trained copy of it (Contrastive Tension, minilm/train/model_copy.py) gets the
copy's embeddings of the first column and the model's of the second; the copy is optimised, clipped and checkpointed
with the model, never saved as the model. A loss over every layer (AdaptiveLayer, Matryoshka2d) draws its layers from
a random.Random seeded by the seed and the step, so a resume draws the same ones.
Under torchrun each process trains on its shard of every batch through DDP; only rank 0 logs, evaluates and saves
(see minilm/train/distributed.py and docs/distributed.md). With ``metric_for_best`` the best evaluation is tracked
(best.py): ``load_best_at_end`` makes it final/, ``early_stopping_patience`` stops the run; a resume keeps both.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import save

from minilm.card import TrainingCard
from minilm.util.checks import NonFiniteError
from minilm.util.io import (WriteError, append_line, building, json_line, read_json_lines, remove_tree, write_bytes,
                       write_json, write_text)
from minilm.train import distributed
from minilm.train.best import BestTracker
from minilm.train.compiled import compiled_training
from minilm.train.config import TrainConfig, check_best_settings
from minilm.train.frozen import FrozenEncoder
from minilm.train.optim import AdamW, LinearWarmupSchedule, clip_grad_norm, param_groups
from minilm.train.checkpoints import STATE_NAME, checkpoint_name, checkpoints, read_state, write_state
from minilm.train.loss_wiring import check_guide, check_teacher, model_copy_for, trains_layers
from minilm.run.registry import loss_module_of
from minilm.train.reporting import TensorBoard, check_report_to
from minilm.train.step import loss_backward_over_layers, loss_backward_with_copy, loss_backward_with_stats
from minilm.loading.weights import load_weights

LOG_NAME = "log.jsonl"
LOSS_WEIGHTS = "loss.safetensors"  # in final/: the state of a loss that is part of the model (a classifier head)
LOSS_CONFIG = "loss.json"  # beside it: which class, which parameters


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
        guide: FrozenEncoder | None = None,
        teacher: FrozenEncoder | None = None,
    ):
        self.model, self.loss_fn, self.data, self.sampler, self.config = model, loss_fn, data, sampler, config
        self.guide = check_guide(guide, loss_fn, self.model)
        self.teacher = check_teacher(teacher, loss_fn, self.model, data.target_name)
        self.over_layers = trains_layers(loss_fn, config)
        self.model_copy = model_copy_for(loss_fn, config, self.model)  # before compiling or wrapping: the starting weights
        self.evaluate, self.say = evaluate, log
        self.output_dir = Path(output_dir) if output_dir is not None else None
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        self.is_main = self.rank == 0  # the one process that logs, evaluates and writes files
        self.forward_model = model  # what the loss step calls: the model, or DDP around it
        self.device = next(model.parameters()).device  # labels and scores go where the embeddings are
        self.loss_module = self.place_loss_module(loss_fn)  # found before any wrapping hides it
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
        self.optimizer = optimizer_class(self.optimizer_groups(), lr=config.lr, betas=(0.9, 0.999),
                                         eps=1e-8, weight_decay=config.weight_decay)
        self.schedule = LinearWarmupSchedule(self.optimizer, self.total_steps, config.warmup_steps,
                                             config.warmup_ratio or None)
        self.step = 0
        self.epoch = 0
        self.history: list[dict] = []  # evaluation results, in order
        self.last_checkpoint: Path | None = None
        self.loss_params = [p for p in self.loss_module.parameters() if p.requires_grad] if self.loss_module else []
        copy_params = [p for p in self.model_copy.parameters() if p.requires_grad] if self.model_copy else []
        # clipped together, under one global norm
        self.params = [p for p in model.parameters() if p.requires_grad] + copy_params + self.loss_params
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
        self.log_records: list[dict] | None = None  # log.jsonl as records: read once (for a card), then kept in step

    def place_loss_module(self, loss_fn: Callable):
        """The loss's nn.Module (None for a function loss), moved to the model's device, equal on every rank."""
        module = loss_module_of(loss_fn)
        if module is not None:
            module.to(self.device)
            distributed.broadcast_parameters(module)
        return module

    def optimizer_groups(self) -> list[dict]:
        """The model's parameter groups, then its trained copy's (if any), then the loss's (at ``loss_lr`` when set);
        the same weight-decay rule for all."""
        groups = param_groups(self.model, self.config.weight_decay)
        if self.model_copy is not None:  # trained like the model, at its lr
            groups += [group for group in param_groups(self.model_copy, self.config.weight_decay) if group["params"]]
        if self.loss_module is not None:
            for group in param_groups(self.loss_module, self.config.weight_decay):
                if group["params"]:
                    groups.append({**group, "lr": self.config.loss_lr} if self.config.loss_lr else group)
        return groups

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
            if self.model_copy is not None:
                self.model_copy.train(self.config.dropout)
            if self.loss_module is not None:
                self.loss_module.train(self.config.dropout)
            for rows in self.sampler:
                yield rows
                if self.step >= self.total_steps or self.stopped_early():
                    return
            self.epoch += 1

    def train_step(self, rows: list[int]) -> dict:
        """Loss, backward, clip, AdamW and schedule for one batch; the log record of the step."""
        columns, targets = self.data.batch(rows)
        targets = {k: v.to(self.device) for k, v in targets.items()}
        if self.guide is not None:  # this rank's rows, as the frozen guide sees them (gathered with them, if at all)
            targets["guide"] = self.guide.embed(columns, self.device)
        if self.teacher is not None:  # one (B, D) per column, side by side: each column fits its own teacher row
            targets["teacher_embeddings"] = torch.cat(self.teacher.embed(columns, self.device), dim=1)
        try:
            if self.model_copy is not None:
                loss, stats = loss_backward_with_copy(self.forward_model, self.model_copy, columns, self.loss_fn,
                                                      **targets)
            elif self.over_layers:
                loss, stats = loss_backward_over_layers(self.forward_model, columns, self.loss_fn,
                                                        self.layer_rng(), **targets)
            else:
                loss, stats = loss_backward_with_stats(self.forward_model, columns, self.loss_fn,
                                                       self.config.mini_batch_size or None,
                                                       self.config.mini_batch_num_tokens or None, **targets)
        except NonFiniteError as e:  # finite weights can still overflow in the forward pass
            self.optimizer.zero_grad()
            raise TrainingDiverged(f"step {self.step + 1} (epoch {self.epoch}): {e}; the weights after step "
                                   f"{self.step} overflow (learning rate too high?); nothing from this step was "
                                   f"saved{self._last_good()}") from None
        distributed.average_gradients(self.loss_params)  # DDP averages the model's; the loss's are outside it
        loss = distributed.mean_over_ranks(loss)  # every rank logs and checks the same number
        grad_norm = clip_grad_norm(self.params, self.config.max_grad_norm)  # DDP made the gradients equal on every rank
        loss_value, norm_value = loss.item(), grad_norm.item()  # one device sync each
        if not (math.isfinite(loss_value) and math.isfinite(norm_value)):
            self.optimizer.zero_grad()
            raise TrainingDiverged(
                f"loss {loss_value} / gradient norm {norm_value} at step {self.step + 1} "
                f"(epoch {self.epoch}); weights were not updated{self._last_good()}"
            )
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.schedule.step()
        self.optimizer.zero_grad()
        self.step += 1
        self.check_weights(lr)
        record = {"step": self.step, "epoch": self.epoch, "loss": loss_value, "lr": lr, "grad_norm": norm_value}
        if stats:
            record["stats"] = self.mean_statistics(stats)
        return record

    def layer_rng(self) -> random.Random:
        """The generator a layer loss draws this step's layers from: a function of the seed and the step alone (a
        string seed hashes the same in every process), so a resumed run draws what the uninterrupted one did."""
        return random.Random(f"layers:{self.config.seed}:{self.step}")

    def mean_statistics(self, stats: dict) -> dict:
        """The loss's statistics averaged over ranks (each rank's are of its shard unless the loss is gathered)."""
        if self.world_size == 1:
            return stats
        values = torch.tensor([math.nan if v is None else v for v in stats.values()], device=self.device)
        means = distributed.mean_over_ranks(values).tolist()
        return {k: v if math.isfinite(v) else None for k, v in zip(stats, means)}

    def check_weights(self, lr: float) -> None:
        """Stop the run at the step that made any weight NaN or infinite (e.g. a learning rate far too high): nothing
        non-finite is logged or saved, and the last checkpoint stays the last good one."""
        sums = torch.stack([p.detach().sum() for p in self.params])  # one cheap reduction per tensor
        if bool(torch.isfinite(sums).all()):
            return
        named = list(self.model.named_parameters())
        named += [(f"copy.{n}", p) for n, p in self.model_copy.named_parameters()] if self.model_copy else []
        bad = [name for name, p in named if not bool(torch.isfinite(p.detach()).all())]
        if not bad:  # a sum overflowed, the values themselves are finite
            return
        raise TrainingDiverged(
            f"step {self.step} (epoch {self.epoch}, lr {lr:.3g}) made weight {bad[0]} non-finite"
            f"{f' (and {len(bad) - 1} more tensors)' if len(bad) > 1 else ''} though its loss and gradient norm were "
            f"finite; the learning rate is likely too high. Nothing from this step was saved{self._last_good()}"
        )

    def check_outputs(self) -> None:
        """Before anything is saved: the model's embeddings of a few training texts must be finite. Weights can all be
        finite and still overflow in the forward pass (huge after one step of a far too high learning rate)."""
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
        self.check_outputs()
        self.model.eval()
        if not self.stopped_early():  # an early stop has just evaluated this model
            self.track_best(self.run_evaluation())
        if self.output_dir is not None and self.is_main and self.save_final:  # one process writes final/
            final_step = self.load_best() if self.config.load_best_at_end else self.step
            self.model.save(self.output_dir / "final", card=self.model_card(final_step))
            self.save_loss_beside(self.output_dir / "final")
            self.say(f"saved the fine-tuned model to {self.output_dir / 'final'}")
        if self.tensorboard is not None:
            self.tensorboard.close()

    def save_loss_beside(self, directory: Path) -> None:
        """A loss that is part of the model (class attribute ``part_of_model = True``, e.g. a classifier head):
        its state_dict to ``loss.safetensors`` and its class and parameter shapes to ``loss.json``, in ``directory``."""
        module = self.loss_module
        if module is None or not getattr(module, "part_of_model", False):
            return
        state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
        about = {"class": f"{type(module).__module__}.{type(module).__qualname__}",
                 "tensors": {k: list(v.shape) for k, v in state.items()}}
        write_bytes(directory / LOSS_WEIGHTS, save(state))  # each whole or absent
        write_json(directory / LOSS_CONFIG, about)

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
        if self.loss_module is not None and getattr(self.loss_module, "part_of_model", False):  # its head too
            self.loss_module.load_state_dict(read_state(path.parent)["loss"])
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
        if self.log_records is None:
            log = self.output_dir / LOG_NAME if self.output_dir is not None else None
            self.log_records = read_json_lines(log)[0] if log is not None and log.is_file() else []
        card.log = list(self.log_records)
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
            **({"loss": self.loss_module.state_dict()} if self.loss_module is not None else {}),
            **({"model_copy": self.model_copy.state_dict()} if self.model_copy is not None else {}),
            "best": self.best.state_dict() if self.best is not None else None,
        }

    def load_state_dict(self, state: dict) -> None:
        if (self.loss_module is None) != ("loss" not in state):
            raise ValueError(f"the checkpoint {'holds no' if 'loss' not in state else 'holds a'} loss state, but this "
                             f"run's loss {'has' if self.loss_module is not None else 'has no'} parameters: "
                             f"was it written with another loss?")
        if (self.model_copy is None) != ("model_copy" not in state):
            trains = "trains a" if self.model_copy is not None else "trains no"
            raise ValueError(f"the checkpoint {'holds no' if 'model_copy' not in state else 'holds a'} trained copy of "
                             f"the model, but this run's loss {trains} copy: was it written with another loss?")
        self.step, self.epoch, self.history = state["step"], state["epoch"], list(state["history"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.sampler.load_state_dict(state["sampler"])
        if self.loss_module is not None:
            self.loss_module.load_state_dict(state["loss"])
        if self.model_copy is not None:  # the copy as trained so far, not a fresh copy of the resumed model
            self.model_copy.load_state_dict(state["model_copy"])
        by_rank = state.get("rng_by_rank", [])
        torch.set_rng_state(by_rank[self.rank] if len(by_rank) == self.world_size else state["rng"])
        if self.best is not None and state.get("best") is not None:
            self.best.load_state_dict(state["best"])

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
                raise WriteError(e.errno, f"{e}; training stopped after step {self.step}{self._last_good()}",
                                 getattr(e, "reason", "")) from None
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
