"""One run per output directory: a record of the run it holds (run.json) and a lock while a run uses it.

The record says which run the directory belongs to: the recipe as checked (after ``--set`` / ``--data`` / ``--quick``),
the sha256 of its data files and of the user's loss code (the loss file and the modules beside it that it imports:
``registry.loss_files``), the seed and the overrides given, and what it ran on (device, precision, torch and CUDA
versions; not compared on resume, nor is ``[train] device``: a run may continue on another machine). A second run into
a directory that holds a run is refused by name, unless it resumes (then the record must match, or what differs is
named) or overwrites (which removes only what a run writes: run.json, log.jsonl, final/, checkpoints/, plots/). The
lock is an ``flock`` on ``.lock``: a second concurrent run fails at once, and the kernel releases the lock when a run
ends however it ends, so a killed run leaves no stale lock. Temporaries a killed run left behind (their writer's pid is
gone) are removed on claim.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from minilm.loading.hub import sha256_of
from minilm.run.recipe import SCHEMA
from minilm.run.registry import code_fingerprint
from minilm.train.distributed import process_device
from minilm.train.trainer import LOG_NAME
from minilm.util.devices import environment
from minilm.util.io import TEMP_MARK, lock, read_json, remove_tree, stale_temporaries, write_json

RECORD_NAME = "run.json"
LOCK_NAME = ".lock"
PLOTS_NAME = "plots"  # minilm plot's default folder: the run's own, so a rerun or --resume never calls it foreign
# everything a run (or minilm plot) writes there, and all --overwrite removes
RUN_OUTPUTS = (RECORD_NAME, LOG_NAME, "final", "checkpoints", PLOTS_NAME)
_ABSENT = "(absent)"
FINGERPRINT = "code_sha256"  # the record's key for the sha256 of each file of the user's loss code


class OutputDirError(ValueError):
    """An output directory a run may not use as asked; the message names it and says what to do."""


def run_record(recipe) -> dict:
    """Which run this is: the checked recipe, the fingerprint of its data and of the user's loss code, its seed and
    the overrides given; and what it runs on (``environment``: its device, precision, torch and CUDA versions)."""
    t = recipe.train
    return {
        "recipe": recipe.as_dict(),
        "data_sha256": data_fingerprint(recipe),
        "code_sha256": code_fingerprint(recipe.loss, recipe.path.parent),
        "seed": t["seed"],
        "overrides": list(getattr(recipe, "overrides", ())),
        "environment": environment(process_device(t.get("device", "auto")), t.get("precision", "fp32")),
    }


def data_fingerprint(recipe) -> dict:
    """The sha256 of the recipe's data files, by role: train, and each evaluation's files ("eval", "eval.<name>",
    "eval.<name>.corpus", ...)."""
    data = {"train": sha256_of(Path(recipe.data["train"]))}
    data.update({key: sha256_of(Path(path)) for key, path in recipe.eval_files().items()})
    return data


def differences(recorded: dict, now: dict) -> list[str]:
    """What differs between two run records, as "key: recorded value -> value now"; data files are compared by
    content (their sha256), not by path, and the overrides by their effect on the recipe. A file of the user's loss
    code reads "loss code FILE: changed" (or "now imported" / "no longer imported"). Where the run ran (its
    environment, its device setting) is not compared."""

    def comparable(record: dict) -> dict:
        flat = _flatten({k: v for k, v in record.items() if k not in ("overrides", FINGERPRINT, "environment")})
        return {k: v for k, v in flat.items() if not _is_data_path(k) and k != "recipe.train.device"}

    a, b = comparable(recorded), comparable(now)
    return [
        f"{key}: {a.get(key, _ABSENT)!r} -> {b.get(key, _ABSENT)!r}"
        for key in sorted(set(a) | set(b))
        if a.get(key, _ABSENT) != b.get(key, _ABSENT) and not (key not in a and _is_new_default(key, b[key]))
    ] + code_changes(recorded, now)  # last: another loss named in the recipe is said first


def code_changes(recorded: dict, now: dict) -> list[str]:
    """The files of the user's loss code that differ between two records, each named: "loss code FILE: changed"."""
    before, after = recorded.get(FINGERPRINT, {}), now.get(FINGERPRINT, {})
    if not isinstance(before, dict):
        before = {}
    changed = []
    for file in sorted(set(before) | set(after)):
        if file not in before:
            changed.append(f"loss code {file}: not in the record (imported now, or recorded by an older minilm)")
        elif file not in after:
            changed.append(f"loss code {file}: no longer imported")
        elif before[file] != after[file]:
            changed.append(f"loss code {file}: changed (sha256 {before[file][:12]}... -> {after[file][:12]}...)")
    return changed


def _is_data_path(key: str) -> bool:
    """A data file's path in a flattened record (compared by its sha256 instead): [data] train, each evaluation's
    data and corpus ("recipe.eval.data", "recipe.eval.<name>.corpus", ...)."""
    return key == "recipe.data.train" or (
        key.startswith("recipe.eval.") and key.rsplit(".", 1)[1] in ("data", "corpus")
    )


def _is_new_default(key: str, value) -> bool:
    """A recipe key a run recorded before the key existed, now at its default: the run it records is the same."""
    parts = key.split(".")
    if parts[0] != "recipe" or len(parts) < 3 or parts[1] not in SCHEMA:
        return False
    entry = SCHEMA[parts[1]].get(parts[-1])
    return entry is not None and value == entry[1]


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


def claim_directory(directory: Path, outputs: tuple[str, ...], what: str) -> Claim:
    """Lock ``directory`` for one process (and the workers it forks) that writes only ``outputs`` there (a sweep):
    a folder holding anything else is refused before anything is added to it, a second process while the first
    holds the lock fails at once naming its pid, and a dead writer's temporaries are removed."""
    directory = Path(directory)
    if os.path.lexists(directory) and not directory.is_dir():
        raise OutputDirError(f"output directory {directory} exists and is not a directory")
    if directory.is_dir():
        others = sorted(p.name for p in directory.iterdir() if p.name not in outputs and p.name != LOCK_NAME)
        others = [name for name in others if not (name.startswith(".") and TEMP_MARK in name)]  # minilm's own
        if others:
            listed = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
            raise OutputDirError(
                f"output directory {directory} holds files that are not {what}'s ({listed}); choose another --output"
            )
    directory.mkdir(parents=True, exist_ok=True)
    held = Claim(directory, _lock(directory))
    try:
        for leftover in stale_temporaries(directory):
            remove_tree(leftover)
    except BaseException:
        held.release()
        raise
    return held


def _lock(directory: Path) -> int | None:
    def busy(holder: str) -> OutputDirError:
        return OutputDirError(
            f"output directory {directory} is in use by another minilm run (pid {holder}); wait "
            f"for it to end, or choose another --output"
        )

    return lock(directory / LOCK_NAME, busy).fd  # the .lock file stays: Claim closes the fd


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
                f"with the same recipe, data, loss code and --set values, or use --overwrite (starts the run over) "
                f"or another --output"
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
