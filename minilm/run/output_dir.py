"""One run per output directory: a record of the run it holds (run.json) and a lock while a run uses it.

The record says which run the directory belongs to: the recipe as checked (after ``--set`` / ``--data`` / ``--quick``),
the sha256 of its data files, the seed and the overrides given, and what it ran on (device, precision, torch and
CUDA versions; not compared on resume, nor is ``[train] device``: a run may continue on another machine). A second
run into a directory that holds a run is refused by name, unless it resumes (then the record must match, or what
differs is named) or overwrites (which removes only what a run writes: run.json, log.jsonl, final/, checkpoints/).
The lock is an ``flock`` on ``.lock``: a second concurrent run fails at once, and the kernel releases the lock when a
run ends however it ends, so a killed run leaves no stale lock. Temporaries a killed run left behind (their writer's
pid is gone) are removed on claim.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from minilm.loading.hub import sha256_of
from minilm.train.distributed import process_device
from minilm.train.trainer import LOG_NAME
from minilm.util.devices import environment
from minilm.util.io import read_json, remove_tree, stale_temporaries, write_json

try:
    import fcntl
except ImportError:  # Windows: no flock; runs are then not protected against a concurrent second run
    fcntl = None

RECORD_NAME = "run.json"
LOCK_NAME = ".lock"
RUN_OUTPUTS = (RECORD_NAME, LOG_NAME, "final", "checkpoints")  # everything a run writes, and all --overwrite removes
_ABSENT = "(absent)"
NOT_COMPARED = ("recipe.data.train", "recipe.eval.data", "recipe.train.device")  # paths differ, content is compared


class OutputDirError(ValueError):
    """An output directory a run may not use as asked; the message names it and says what to do."""


def run_record(recipe) -> dict:
    """Which run this is: the checked recipe, the fingerprint of its data, its seed and the overrides given; and
    what it runs on (``environment``: its device, precision, torch and CUDA versions)."""
    data = {"train": sha256_of(Path(recipe.data["train"]))}
    if recipe.eval is not None:
        data["eval"] = sha256_of(Path(recipe.eval["data"]))
    t = recipe.train
    return {
        "recipe": recipe.as_dict(),
        "data_sha256": data,
        "seed": t["seed"],
        "overrides": list(getattr(recipe, "overrides", ())),
        "environment": environment(process_device(t.get("device", "auto")), t.get("precision", "fp32")),
    }


def differences(recorded: dict, now: dict) -> list[str]:
    """What differs between two run records, as "key: recorded value -> value now"; data files are compared by
    content (their sha256), not by path, and the overrides by their effect on the recipe; where the run ran (its
    environment, its device setting) is not compared."""

    def comparable(record: dict) -> dict:
        flat = _flatten({k: v for k, v in record.items() if k not in ("overrides", "environment")})
        return {k: v for k, v in flat.items() if k not in NOT_COMPARED}

    a, b = comparable(recorded), comparable(now)
    return [
        f"{key}: {a.get(key, _ABSENT)!r} -> {b.get(key, _ABSENT)!r}"
        for key in sorted(set(a) | set(b))
        if a.get(key, _ABSENT) != b.get(key, _ABSENT)
    ]


def _flatten(value, prefix: str = "") -> dict:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value}


class Claim:
    """This process's hold on an output directory, until ``release()`` (or the end of a ``with`` block)."""

    def __init__(self, directory: Path, fd: int | None):
        self.directory, self.fd = directory, fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock; the .lock file itself stays (removing it would race)
            self.fd = None

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()


def claim(directory: Path, record: dict, resume: bool = False, overwrite: bool = False) -> Claim:
    """Lock ``directory`` for the run ``record`` describes and make sure it is this run's: empty or new (the record is
    written), holding this very run (``resume``), or to be replaced (``overwrite``). Anything else is refused."""
    directory = Path(directory)
    if resume and overwrite:
        raise OutputDirError(
            "--resume continues the run in the output directory and --overwrite replaces it: give one of them"
        )
    if os.path.lexists(directory) and not directory.is_dir():
        raise OutputDirError(f"output directory {directory} exists and is not a directory")
    if directory.is_dir() and not (resume or overwrite):
        _refuse_foreign(directory)  # before the lock file is created: nothing is added to a folder of other files
    directory.mkdir(parents=True, exist_ok=True)
    held = Claim(directory, _lock(directory))
    try:
        for leftover in stale_temporaries(directory):
            remove_tree(leftover)
        _check(directory, record, resume, overwrite)
    except BaseException:
        held.release()
        raise
    return held


def _lock(directory: Path) -> int | None:
    if fcntl is None:
        return None
    path = directory / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        raise OutputDirError(
            f"output directory {directory} is in use by another minilm run (pid {holder}); wait "
            f"for it to end, or choose another --output"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _check(directory: Path, record: dict, resume: bool, overwrite: bool) -> None:
    record_path = directory / RECORD_NAME
    recorded = read_json(record_path, dict, OutputDirError) if record_path.is_file() else None
    produced = [name for name in RUN_OUTPUTS[1:] if os.path.lexists(directory / name)]
    if resume:
        if recorded is None:
            if produced:
                raise OutputDirError(
                    f"--resume: {directory} holds {', '.join(produced)} but no run record "
                    f"({RECORD_NAME}), so it cannot be checked to be this run; use --overwrite "
                    f"to start again there, or another --output"
                )
            raise FileNotFoundError(
                f"--resume: no complete checkpoint under {directory / 'checkpoints'} and no run "
                f"record: there is no run to resume in {directory}"
            )
        changed = differences(recorded, _as_json(record))
        if changed:
            shown = "; ".join(changed[:4]) + (f"; and {len(changed) - 4} more" if len(changed) > 4 else "")
            raise OutputDirError(
                f"--resume: {directory} holds another run ({RECORD_NAME} differs: {shown}); resume "
                f"with the same recipe, data and --set values, or use --overwrite or another --output"
            )
        return
    if overwrite:
        for name in RUN_OUTPUTS:
            if os.path.lexists(directory / name):
                remove_tree(directory / name)
    elif produced:
        name = recorded.get("recipe", {}).get("name", "?") if recorded else None
        held = f"run {name!r}" if recorded else f"{', '.join(produced)} of an unrecorded run"
        raise OutputDirError(
            f"output directory {directory} already holds {held}; pass --resume to continue it, "
            f"--overwrite to replace it, or choose another --output"
        )
    else:
        _refuse_foreign(directory)
    write_json(record_path, _as_json(record))


def _refuse_foreign(directory: Path) -> None:
    others = sorted(p.name for p in directory.iterdir() if p.name not in RUN_OUTPUTS and p.name != LOCK_NAME)
    if others:
        listed = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
        raise OutputDirError(
            f"output directory {directory} holds files that are not a minilm run ({listed}); "
            f"choose another --output, or --overwrite to write the run beside them"
        )


def _as_json(record: dict) -> dict:
    """``record`` as it reads back from run.json (tuples become lists, other values strings)."""
    return json.loads(json.dumps(record, default=str))
