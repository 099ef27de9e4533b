"""What a run writes besides its log: checkpoints (the model and the trainer state, old ones pruned) and, at the end,
the fine-tuned model in final/ with its model card and the parts saved beside it.

Each is built under a temporary name and renamed into place, so a kill leaves the previous checkpoint whole; nothing is
saved before the model's embeddings are checked finite. With ``load_best_at_end`` final/ is the best evaluation's
model, read back from its checkpoint (which pruning keeps). Only rank 0 writes; the trainer state is a collective, so
every rank builds it.
"""

from __future__ import annotations

from pathlib import Path

from minilm.card import TrainingCard
from minilm.train.checkpoints import (
    STATE_NAME,
    checkpoint_name,
    load_checkpoint_model,
    prunable_checkpoints,
    save_parts_beside,
    write_state,
)
from minilm.train.divergence import last_good
from minilm.util.io import WriteError, building, remove_tree


def save_checkpoint(trainer) -> Path:
    """checkpoints/step-N/{model/, trainer_state.pt}, built beside and renamed into place in one go (by rank 0)."""
    trainer.check_outputs()
    state = trainer.state_dict()  # on every rank: it is a collective
    final = trainer.output_dir / "checkpoints" / checkpoint_name(trainer.step)
    if trainer.is_main:
        try:
            with building(final) as tmp:  # a temporary name unique to this process, swapped in when complete
                trainer.model.save(tmp / "model", card=model_card(trainer, trainer.step))
                write_state(state, tmp / STATE_NAME)
            best = trainer.best.best_step if trainer.best is not None else None
            for old in prunable_checkpoints(trainer.output_dir, trainer.config.keep_checkpoints, best):
                remove_tree(old)  # renamed away first: a kill mid-removal leaves no half checkpoint
        except OSError as e:
            raise WriteError(
                e.errno,
                f"{e}; training stopped after step {trainer.step}{last_good(trainer.last_checkpoint)}",
                getattr(e, "reason", ""),
            ) from None
    trainer.last_checkpoint = final
    return final


def save_final_model(trainer) -> None:
    """final/: the model (the best one with load_best_at_end, else the last), its card and the parts saved with it."""
    final_step = load_best(trainer) if trainer.config.load_best_at_end else trainer.step
    trainer.model.save(trainer.output_dir / "final", card=model_card(trainer, final_step))
    save_parts_beside(trainer.parts, trainer.output_dir / "final")
    trainer.say(f"saved the fine-tuned model to {trainer.output_dir / 'final'}")


def load_best(trainer) -> int:
    """load_best_at_end: put the best checkpoint's weights into the model; the step of the model it now holds."""
    best = trainer.best.best_step
    if best is None or best == trainer.step:  # the last model is the best (or nothing was ever better than NaN)
        return trainer.step
    load_checkpoint_model(trainer.model, trainer.parts, trainer.output_dir, best)
    trainer.say(
        f"load_best_at_end: final/ is the model of step {best} ({trainer.best.metric} "
        f"{trainer.best.best_value:.4f}), not the last one (step {trainer.step})"
    )
    return best


def model_card(trainer, step: int) -> TrainingCard | None:
    """The run's card for the model of ``step`` (rank 0): the log so far and that model's own evaluation."""
    card = trainer.card
    if card is None:
        return None
    card.log = trainer.run_log.records()
    card.steps_per_epoch = card.steps_per_epoch or len(trainer.sampler.batches(0))
    card.evaluation = next((h for h in reversed(trainer.history) if h["step"] == step), None)
    card.metric_for_best = trainer.config.metric_for_best
    card.best_step = trainer.best.best_step if trainer.best is not None else None
    card.environment = trainer.environment
    return card
