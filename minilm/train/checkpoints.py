"""A training run's checkpoints on disk: ``OUTPUT/checkpoints/step-N/`` holds the model (``model/``) and the trainer
state (``trainer_state.pt``: optimiser, schedule, sampler position, RNG, history), written whole or not at all by the
trainer; here they are named, listed, read and written, and a damaged one is skipped for the one before it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch

from minilm.loading.weights import CheckpointError

STATE_NAME = "trainer_state.pt"


def write_state(state: dict, path: Path) -> None:
    """torch.save to ``path``; a failed write (a full disk) is raised as the OSError it is, which torch would turn
    into a RuntimeError about stream positions."""

    class Recorder:  # the file as torch sees it, keeping the OSError of a failed write
        error = None

        def write(self, data):
            try:
                return f.write(data)
            except OSError as e:
                Recorder.error = e
                raise

        def flush(self):
            f.flush()

    with open(path, "wb") as f:
        try:
            torch.save(state, Recorder())
        except RuntimeError:
            if Recorder.error is not None:
                raise Recorder.error from None
            raise


def read_state(checkpoint: Path) -> dict:
    """The trainer state of ``checkpoint``; an unreadable one is a CheckpointError naming the file."""
    path = checkpoint / STATE_NAME
    try:
        state = torch.load(path, weights_only=True)
    except Exception as e:  # torch raises several types (pickle, zip, EOF, RuntimeError) for a damaged file
        raise CheckpointError(
            f"{path} is unreadable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
        ) from None
    missing = [
        k
        for k in ("step", "epoch", "optimizer", "schedule", "sampler", "rng", "history")
        if not isinstance(state, dict) or k not in state
    ]
    if missing:
        raise CheckpointError(f"{path} is not a trainer state (missing {', '.join(missing)})")
    return state


def checkpoint_name(step: int) -> str:
    return f"step-{step:07d}"


def checkpoints(output_dir: Path) -> list[Path]:
    """Complete checkpoints under ``output_dir``, oldest first."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step-*") if (p / STATE_NAME).is_file() and (p / "model").is_dir())


def newest_usable_checkpoint(output_dir: Path, load_model: Callable[[Path], object], log=print):
    """(checkpoint, its trainer state, its model) for the newest checkpoint that loads, or None if there is none.
    A damaged one (unreadable state or model) is named and skipped for the one before it."""
    found, damaged = checkpoints(output_dir), []
    for checkpoint in reversed(found):
        try:
            return checkpoint, read_state(checkpoint), load_model(checkpoint / "model")
        except (CheckpointError, OSError, ValueError) as e:
            damaged.append(f"{checkpoint.name}: {e}")
            log(f"checkpoint {checkpoint} is damaged, falling back to the one before: {e}")
    if found:
        raise CheckpointError(
            f"--resume: every checkpoint under {Path(output_dir) / 'checkpoints'} is damaged "
            f"(newest {damaged[0]}); use --overwrite to start again"
        )
    return None
