"""What a checkpoint's ``trainer_state.pt`` holds of a trainer, and putting it back: everything a resume needs to
continue exactly as the uninterrupted run would have.

That is the position (step, epoch, sampler), the optimiser and schedule, the RNG of every rank, the evaluations so
far and the best of them, the run time, fp16's loss scale, and the state of every part a loss brings that is
checkpointed (``Part.checkpointed``, under the part's name) and of every extension that keeps one (a queue). A state
is put back only into the run it fits: the same parts, extensions and precision (``check_state_fits``).
"""

from __future__ import annotations

import torch

from minilm.train import distributed

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


def check_state_fits(state: dict, parts: dict, extension_names: set[str], precision: str) -> None:
    """A trainer state resumes only the run it was written by: the same checkpointed parts (``parts``: name ->
    Part), no extension this run lacks, the same ``[train] precision``. Otherwise a ValueError says which."""
    kept = {name for name, part in parts.items() if part.checkpointed}
    parts_in_state = set(state) - TRAINER_KEYS
    if kept != parts_in_state:
        raise ValueError(
            f"the checkpoint holds the state of {sorted(parts_in_state) or 'no part'} besides the model, but this "
            f"run's loss brings {sorted(kept) or 'none'}: was it written with another loss?"
        )
    unknown = set(state.get("extensions", {})) - extension_names
    if unknown:
        raise ValueError(
            f"the checkpoint holds the state of extension(s) {sorted(unknown)}, which this run's "
            f"loss does not have: was it written with another loss?"
        )
    written = (state.get("precision") or {"name": "fp32"})["name"]  # older checkpoints: float32 runs
    if written != precision:
        raise ValueError(
            f"the checkpoint was trained with [train] precision {written!r}, this run has "
            f"{precision!r}: resume with the precision it was written with"
        )


def trainer_state(trainer) -> dict:
    """Everything a resume needs. Under several processes this is a collective (every rank's RNG goes in)."""
    rng = torch.get_rng_state()
    return {
        "step": trainer.step,
        "epoch": trainer.epoch,
        "optimizer": trainer.optimizer.state_dict(),
        "schedule": trainer.schedule.state_dict(),
        "sampler": trainer.sampler.state_dict(),
        "rng": rng,
        "rng_by_rank": distributed.gather_objects(rng),
        "history": trainer.history,
        **{name: part.module.state_dict() for name, part in trainer.parts.items() if part.checkpointed},
        "extensions": {ext.name: ext.state_dict() for ext in trainer.extensions if ext.state_dict()},
        "best": trainer.best.state_dict() if trainer.best is not None else None,
        "seconds": trainer.seconds(),
        "precision": {
            "name": trainer.config.precision,
            "scaler": trainer.scaler.state_dict() if trainer.scaler is not None else None,
        },
    }


def load_trainer_state(trainer, state: dict) -> None:
    """Put ``state`` (a ``trainer_state``) back into ``trainer``, once it is known to fit its run."""
    check_state_fits(state, trainer.parts, {ext.name for ext in trainer.extensions}, trainer.config.precision)
    trainer.step, trainer.epoch, trainer.history = state["step"], state["epoch"], list(state["history"])
    trainer.seconds_before = float(state.get("seconds", 0.0))  # absent in a checkpoint of an older minilm
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.schedule.load_state_dict(state["schedule"])
    trainer.sampler.load_state_dict(state["sampler"])
    for name, part in trainer.parts.items():  # each part as trained so far, never rebuilt from the resumed model
        if part.checkpointed:
            part.module.load_state_dict(state[name])
    for ext in trainer.extensions:
        ext.load_state_dict(state.get("extensions", {}).get(ext.name, {}))
    by_rank = state.get("rng_by_rank", [])
    torch.set_rng_state(by_rank[trainer.rank] if len(by_rank) == trainer.world_size else state["rng"])
    if trainer.best is not None and state.get("best") is not None:
        trainer.best.load_state_dict(state["best"])
    if trainer.scaler is not None:  # fp16, as the checkpoint's precision (checked to be the same)
        trainer.scaler.load_state_dict(state["precision"]["scaler"])
