"""``minilm sweep SWEEP.toml``: one base recipe, a grid of loss configurations (and learning rates) x N seeds.

A sweep file names a base recipe (its data, model, evaluation and training settings) and the configurations to
compare; the first is the baseline::

    recipe = "../../recipes/default_triplets.toml"   # relative to this file
    seeds = [1, 2, 3]                                # or seeds = 3 for 0, 1, 2
    metric = "cosine_accuracy"                       # default: the evaluation's first metric
    set = ["train.max_steps=20"]                     # --set items applied to the base recipe for every run

    [[configs]]
    loss = { name = "mnrl", report = true }

    [[configs]]
    loss = { name = "triplet", distance = "cosine", report = true }
    grid = { margin = [0.1, 0.3] }                   # one configuration per value (a product over several keys)
    lr = [2e-5, 5e-5]                                # a learning rate, or a list of them (another grid axis)
    train = { loss_lr = 1e-2 }                       # other [train] keys of this configuration

Runs are **paired**: for one seed every configuration gets the same sampler (the base recipe's, or the one the
losses' declarations call for), hence the same batches in the same order, and the same dropout seed, so differences
between configurations are paired differences (``sweep_stats.py``). A configuration may not set what decides the
batches (seed, batch_size, epochs, max_steps).

**Cheap**: the base model is read once and copied per run, texts are tokenised once (one tokenizer cache shared by
every run), the training data and the evaluator are built once, and the evaluation before training, the same for
every run, is computed once. **Resumable**: each run lives in ``OUTPUT/runs/<config>/seed-<s>/`` (the trainer's
log.jsonl and checkpoints, ``run.json`` saying what it is, ``result.json`` once finished); a rerun skips finished
runs and resumes unfinished ones from their newest checkpoint, unless the loss code or data a run was recorded with
changed (refused, naming the files; ``--restart-changed`` starts those runs over). ``jobs`` > 1 runs that many at a
time in forked worker processes, each with its share of the CPU threads, which die with the sweep. The output folder
is the sweep's alone, and one sweep's at a time (``output_dir.claim_directory``). Every file the sweep writes is
written beside its target and renamed into place. Reading and checking the file: ``spec.py``; the tables and plots:
``report.py``.
"""

from __future__ import annotations

import copy
import ctypes
import json
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from minilm.run.output_dir import claim_directory, code_changes
from minilm.run.recipe_checks import check_device_settings
from minilm.sweep.report import PLOTS, TABLES
from minilm.sweep.spec import FINGERPRINTS, RESULT, RUN_RECORD, RunSpec, Sweep, SweepError, load_sweep
from minilm.train.distributed import process_device
from minilm.util.checks import check_texts
from minilm.util.io import read_json, remove_tree, write_json
from minilm.util.usercode import UserCodeError

__all__ = ["run_sweep", "load_sweep", "SweepError", "train_run", "CachedTokenizer"]

PR_SET_PDEATHSIG = 1  # linux/prctl.h
RUN_OUTPUTS = (RUN_RECORD, "log.jsonl", "checkpoints", "final", RESULT)  # what a run of a sweep writes in its folder
SWEEP_OUTPUTS = ("runs", *TABLES, *PLOTS)  # what a sweep writes in its output folder; anything else is the user's


class CachedTokenizer:
    """Wraps a WordPieceTokenizer so that each distinct text is tokenised once; the output is the same (the same ids,
    padded by the same ``pad``). A sweep's runs share one: every run's batches and evaluations reuse its ids."""

    def __init__(self, inner):
        self.inner, self.ids, self.cut = inner, {}, set()  # cut: the texts longer than max_seq_length

    def encode_ids(self, texts: list[str], truncated: list[int] | None = None) -> list[list[int]]:
        check_texts(texts)
        missing = [t for t in dict.fromkeys(texts) if t not in self.ids]
        if missing:
            positions: list[int] = []
            self.ids.update(zip(missing, self.inner.encode_ids(missing, positions)))
            self.cut.update(missing[i] for i in positions)
        if truncated is not None:
            truncated.extend(i for i, t in enumerate(texts) if t in self.cut)
        return [self.ids[t] for t in texts]

    def __call__(self, texts: list[str]):
        return self.inner.pad(self.encode_ids(texts))

    def __getattr__(self, name: str):  # pad, max_seq_length, files, pad_id: the wrapped tokenizer's
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


@dataclass
class Shared:
    """What every run of a sweep shares: read, tokenised and evaluated once."""

    model: object  # the base SentenceEncoder (a CachedTokenizer inside); each run trains a copy
    data: object  # TrainData
    evaluate: Callable
    before: dict  # the evaluation of the base model
    log: Callable[[str], None]
    frozen: dict = field(default_factory=dict)  # models the losses' extensions load (frozen: every run may share)

    def copy_model(self):
        return copy.deepcopy(self.model, memo={id(self.model.tokenizer): self.model.tokenizer})

    def load_model(self, name: str):
        """A frozen model a run's loss names (a guide, a teacher), loaded once for the whole sweep."""
        from minilm.encoder import SentenceEncoder

        if name not in self.frozen:
            self.frozen[name] = SentenceEncoder.from_pretrained(name, device=self.model.device)
        return self.frozen[name]


def run_sweep(
    path: str | Path,
    output: str | Path | None = None,
    jobs: int = 1,
    plots: bool = True,
    log: Callable[[str], None] = print,
    restart_changed: bool = False,
    device: str | None = None,
) -> list[dict]:
    """Run every pending run of the sweep, then write sweep.csv, sweep.md and the plots; returns the results.

    The output directory is the sweep's alone (a folder holding other files is refused) and one sweep's at a time (a
    lock, held until the sweep and its workers end). A run recorded with other loss code or data than the sweep's
    now is refused, naming the file, unless ``restart_changed`` (``--restart-changed``) starts it over. ``device``
    (``--device``) replaces every run's ``[train] device``; where a run trains is not what it is, so its record
    (run.json) leaves it out."""
    from minilm.sweep.report import write_plots, write_tables

    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"--jobs must be a positive int, got {jobs!r}")
    sweep = load_sweep(path, output)
    if device is not None:
        process_device(device, "--device")
        for run in sweep.runs:
            run.recipe.train["device"] = device
            check_device_settings(run.recipe.train, f"{run.label!r}: ")
    check_jobs_on_device(jobs, process_device(sweep.runs[0].recipe.train["device"], "[train] device"))
    output = Path(output) if output is not None else Path("runs") / sweep.name
    # its tables and plots are the sweep's only beside its runs/ folder: a lone sweep.md is someone else's
    ours = SWEEP_OUTPUTS if (output / "runs").is_dir() else ("runs",)
    with claim_directory(output, ours, "a minilm sweep"):
        finished = _check_runs(sweep, restart_changed, log)
        pending = [run for run in sweep.runs if run not in finished]
        pending.sort(key=lambda run: (sweep.seeds.index(run.seed), run.index))  # seed by seed: pairs complete early
        log(
            f"sweep {sweep.name}: {len(sweep.configs)} configurations x {len(sweep.seeds)} seeds; "
            f"{len(sweep.runs) - len(pending)} finished, {len(pending)} to run"
        )
        if pending:
            start = time.perf_counter()
            shared = _prepare(sweep, log)
            _check_metric(sweep, shared.before)
            log(f"base model, data and evaluation before training ready in {time.perf_counter() - start:.1f} s")
            for result in _execute(pending, shared, jobs):
                log(f"[{result['label']} seed {result['seed']}] {result['status']} in {result['seconds']:.1f} s")
                write_tables(sweep, output)
        else:
            _metric_of_finished(sweep)
        write_tables(sweep, output)
        if plots:
            write_plots(sweep, output, log)
        return [_read_json(run.directory / RESULT) for run in sweep.runs if (run.directory / RESULT).is_file()]


def check_jobs_on_device(jobs: int, device: torch.device) -> None:
    """Several jobs are forked processes: a CUDA context does not survive a fork, so a GPU sweep runs one at a time."""
    if jobs > 1 and device.type != "cpu":
        raise ValueError(
            f"--jobs {jobs} forks worker processes, which CUDA does not survive; the runs are on {device}: use "
            f"--jobs 1 (one run at a time has the whole GPU)"
        )


def _read_json(path: Path) -> dict:
    return read_json(path, dict, SweepError)


def _check_runs(sweep: Sweep, restart_changed: bool, log) -> list[RunSpec]:
    """The runs already finished. Each run folder must hold a run of this very configuration (one of another is
    refused, not reused) with the same inputs: one recorded with other loss code or data is refused naming the
    files, or, with ``restart_changed``, cleared to run again. A finished run's leftover checkpoints go."""
    changed = []
    for run in sweep.runs:
        record = run.directory / RUN_RECORD
        if not record.is_file():
            continue
        recorded, now = _read_json(record), json.loads(json.dumps(run.record()))
        if recorded == now:
            continue
        if {k: v for k, v in recorded.items() if k not in FINGERPRINTS} != {
            k: v for k, v in now.items() if k not in FINGERPRINTS
        }:
            raise SweepError(
                f"{run.directory} holds a run of another configuration (its {RUN_RECORD} differs from "
                f"{run.label!r} seed {run.seed} of this sweep): use another --output, or remove it"
            )
        changed.append((run, _input_changes(recorded, now, run)))
    if changed and not restart_changed:
        shown = "; ".join(f"{run.label!r} seed {run.seed}: {', '.join(what)}" for run, what in changed[:3])
        more = f"; and {len(changed) - 3} more runs" if len(changed) > 3 else ""
        raise SweepError(
            f"{sweep.path}: the inputs of {len(changed)} recorded run(s) changed since they ran, so their results "
            f"would mix two versions ({shown}{more}); restore the files, or rerun with --restart-changed to start "
            f"those runs over (their results are discarded)"
        )
    for run, what in changed:
        log(f"[{run.label} seed {run.seed}] starting over: {', '.join(what)}")
        for name in RUN_OUTPUTS:
            if os.path.lexists(run.directory / name):
                remove_tree(run.directory / name)
    finished = [run for run in sweep.runs if (run.directory / RESULT).is_file()]
    for run in finished:  # a kill between its result and the removal of its checkpoints
        if (run.directory / "checkpoints").exists():
            remove_tree(run.directory / "checkpoints")
    return finished


def _input_changes(recorded: dict, now: dict, run: RunSpec) -> list[str]:
    """What changed in a run's inputs, by file: its loss code (as the loss names it) and its data (by role: train,
    and each evaluation's files as ``Recipe.eval_files`` names them)."""
    said = code_changes(recorded, now)
    before, after = recorded.get("data_sha256") or {}, now.get("data_sha256") or {}
    files = {"train": run.recipe.data["train"], **run.recipe.eval_files()}
    for role in sorted(set(before) | set(after)):
        if before.get(role) != after.get(role):
            file = files.get(role, "(no longer in the recipe)")
            said.append(f"{role} data {file}: changed" if role in before else f"{role} data {file}: not in the record")
    return said or ["fingerprints not in the record (recorded by an older minilm)"]


def _prepare(sweep: Sweep, log) -> Shared:
    from minilm.encoder import SentenceEncoder
    from minilm.run.build import load_train_data, recipe_evaluator

    first = sweep.runs[0].recipe  # data and evaluation are the base recipe's, the same for every run
    data = load_train_data(first)
    evaluate = recipe_evaluator(first)
    device = process_device(first.train["device"], "[train] device")
    model = SentenceEncoder.from_pretrained(first.model["base"], device=device)
    model.tokenizer = CachedTokenizer(model.tokenizer)
    model.tokenizer.encode_ids([text for column in data.columns for text in column])  # once, before any fork
    before = evaluate(model)
    log("eval of the base model: " + "  ".join(f"{k} {v:.4f}" for k, v in before.items()))
    return Shared(model, data, evaluate, before, log)


def _check_metric(sweep: Sweep, before: dict) -> None:
    if sweep.metric is None:
        sweep.metric = next(iter(before))
    elif sweep.metric not in before:
        raise SweepError(f"{sweep.path}: metric {sweep.metric!r} is not one the evaluation gives: {sorted(before)}")


def _metric_of_finished(sweep: Sweep) -> None:
    """With every run finished nothing is evaluated: the metric (the evaluation's first when the file names none)
    comes from the finished runs' evaluation before training, which is the evaluation's own order."""
    for run in sweep.runs:
        history = _read_json(run.directory / RESULT).get("history") or []
        if history:
            _check_metric(sweep, {k: v for k, v in history[0].items() if k != "step"})
            return


_WORK: tuple[list[RunSpec], Shared] | None = None  # what forked workers inherit


def _execute(pending: list[RunSpec], shared: Shared, jobs: int):
    """Yield each run's result as it finishes: in this process, or in ``jobs`` forked workers."""
    global _WORK
    if jobs == 1 or len(pending) == 1:
        for run in pending:
            yield train_run(run, shared)
        return
    _WORK = (pending, shared)  # the workers inherit the model, the data and the tokenizer cache through fork
    threads = max(1, torch.get_num_threads() // jobs)
    try:
        with multiprocessing.get_context("fork").Pool(
            jobs, initializer=_start_worker, initargs=(threads, os.getpid())
        ) as pool:
            yield from pool.imap_unordered(_train_in_worker, range(len(pending)))
    finally:
        _WORK = None


def _start_worker(threads: int, parent: int) -> None:
    """A worker's start: its share of the threads, and its end with the sweep's: a worker left training after its
    parent was killed would write into run folders a rerun resumes (Linux: the kernel sends it SIGKILL when the
    parent dies, ``PR_SET_PDEATHSIG``; elsewhere a thread watches the parent's pid)."""
    torch.set_num_threads(threads)
    if not _die_with_parent():
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="minilm-parent-watch").start()
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def _die_with_parent() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _train_in_worker(i: int) -> dict:
    pending, shared = _WORK
    return train_run(pending[i], shared)


def train_run(run: RunSpec, shared: Shared) -> dict:
    """Train one run (resuming from its newest checkpoint if it has one), record its result, free its checkpoints."""
    from minilm.loading.weights import load_weights
    from minilm.run.build import build_trainer, make_sampler
    from minilm.train.checkpoints import checkpoints
    from minilm.train.trainer import TrainingDiverged

    start = time.perf_counter()
    directory = run.directory
    directory.mkdir(parents=True, exist_ok=True)
    write_json(directory / RUN_RECORD, run.record())
    found = checkpoints(directory)
    model = shared.copy_model()
    if found:
        load_weights(model.bert, found[-1] / "model")
        evaluate = shared.evaluate
    else:  # a fresh start: what an earlier attempt left before its first checkpoint goes
        for stale in RUN_OUTPUTS[1:]:
            if os.path.lexists(directory / stale):
                remove_tree(directory / stale)
        evaluate = _first_call_gives(shared.before, shared.evaluate)  # the base model's, evaluated once
    prefix = f"[{run.label} seed {run.seed}] "
    try:
        trainer = build_trainer(
            run.recipe,
            model,
            shared.data,
            make_sampler(run.recipe, shared.data),
            evaluate,
            directory,
            lambda line: shared.log(prefix + line),
            load_model=shared.load_model,
            card=False,
        )
        trainer.save_final = run.keep == "final"
        if found:
            trainer.resume_from(found[-1])
            shared.log(f"{prefix}resumed from {found[-1].name}")
        status, error = "done", None
        try:
            trainer.train()
        except TrainingDiverged as e:
            status, error = "diverged", str(e)
    except UserCodeError as e:  # the sweep ends with it, naming the run
        raise UserCodeError(f"{prefix}{e}") from None
    result = {
        **run.record(),
        "status": status,
        "error": error,
        "steps": trainer.step,
        "history": trainer.history,
        "seconds": trainer.seconds_before + time.perf_counter() - start,  # the attempts before a resume too
    }
    del result["recipe"]
    write_json(directory / RESULT, result)
    if (directory / "checkpoints").exists():
        remove_tree(directory / "checkpoints")  # only a resume needed them; renamed away first, then removed
    return result


def _first_call_gives(result: dict, evaluate: Callable) -> Callable:
    """An evaluator whose first call (step 0: the untouched base model) returns ``result`` without evaluating."""
    calls = []

    def evaluate_once(model) -> dict:
        calls.append(1)
        return dict(result) if len(calls) == 1 else evaluate(model)

    return evaluate_once
