"""A training run's checkpoints on disk: ``OUTPUT/checkpoints/step-N/`` holds the model (``model/``) and the trainer
state (``trainer_state.pt``: optimiser, schedule, sampler position, RNG, history, each part's and extension's state;
see state.py), written whole or not at all by the trainer; here they are named, listed, read, written and pruned, and a
damaged one is skipped for the one before it. The parts saved beside a model in final/ (a loss's classifier head, its
temperature) are written here too."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from safetensors.torch import save

from minilm.loading.weights import CheckpointError, load_weights
from minilm.util.io import write_bytes, write_json

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


def prunable_checkpoints(output_dir: Path, keep: int, best_step: int | None) -> list[Path]:
    """The checkpoints beyond the newest ``keep``, except the best one (of ``best_step``), which pruning keeps."""
    best = checkpoint_name(best_step) if best_step is not None else None
    return [p for p in checkpoints(output_dir)[:-keep] if p.name != best]


def save_parts_beside(parts: dict, directory: Path) -> None:
    """Each part saved with the model (``Part.saved``: a classifier head, a temperature): its state_dict to
    ``<name>.safetensors`` and its class and tensor shapes to ``<name>.json``, in ``directory``."""
    for name, part in parts.items():
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


def load_checkpoint_model(model, parts: dict, output_dir: Path, step: int) -> None:
    """load_best_at_end: put the weights of the checkpoint of ``step`` into ``model``, and its state of each part
    saved with the model into that part (what is saved with the model is that step's too)."""
    path = Path(output_dir) / "checkpoints" / checkpoint_name(step) / "model"
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"load_best_at_end: the best checkpoint (step {step}) is missing: {path}")
    load_weights(model.bert, path)
    saved = {name: part for name, part in parts.items() if part.saved}
    if saved:
        state = read_state(path.parent)
        for name, part in saved.items():
            part.module.load_state_dict(state[name])
