"""One run per output directory: the run record, the lock, --resume and --overwrite."""

import json
import os
import subprocess
import sys

import pytest
from helpers import killed_after_step, make_tiny_checkpoint, write_tiny_recipe

from minilm.run.build import run_recipe
from minilm.run.output_dir import RECORD_NAME, OutputDirError, claim, run_record
from minilm.run.recipe import load_recipe


@pytest.fixture()
def recipe_path(tmp_path):
    return write_tiny_recipe(tmp_path, tmp_path / "no-model-needed")  # claim() never loads the model


def record(recipe_path, *overrides):
    recipe = load_recipe(recipe_path, list(overrides))
    recipe.overrides = tuple(f"--set {o}" for o in overrides)
    return run_record(recipe)


def fake_run(out, rec):
    """An output directory as a run leaves it: its record, a log and a final model folder."""
    with claim(out, rec):
        pass
    (out / "log.jsonl").write_text('{"step": 1, "loss": 0.5}\n')
    (out / "final").mkdir()


def test_the_record_says_which_run_it_is(recipe_path, tmp_path):
    rec = record(recipe_path, "train.lr=1e-4")
    with claim(tmp_path / "out", rec):
        pass
    saved = json.loads((tmp_path / "out" / RECORD_NAME).read_text())
    assert saved["recipe"]["train"]["lr"] == 1e-4 and saved["seed"] == 42
    assert saved["overrides"] == ["--set train.lr=1e-4"]
    assert len(saved["data_sha256"]["train"]) == 64


def test_a_second_run_into_a_run_directory_is_refused_and_changes_nothing(recipe_path, tmp_path):
    out = tmp_path / "out"
    fake_run(out, record(recipe_path))
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.name != ".lock"}
    with pytest.raises(
        OutputDirError,
        match=rf"output directory {out} already holds run 'tiny'; pass --resume to "
        r"continue it, --overwrite to replace it, or choose another --output",
    ):
        claim(out, record(recipe_path, "train.lr=1e-3"))
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.name != ".lock"} == before


@pytest.mark.parametrize(
    "change, named",
    [
        (["train.lr=1e-3"], r"recipe.train.lr: 5e-05 -> 0.001"),
        (["train.seed=7"], r"recipe.train.seed: 42 -> 7; seed: 42 -> 7"),
        (["loss.scale=10.0"], r"recipe.loss.scale: '\(absent\)' -> 10.0"),
    ],
)
def test_resume_refuses_another_run_naming_what_differs(recipe_path, tmp_path, change, named):
    out = tmp_path / "out"
    fake_run(out, record(recipe_path))
    with pytest.raises(OutputDirError, match=rf"--resume: {out} holds another run \(run.json differs: {named}"):
        claim(out, record(recipe_path, *change), resume=True)


def test_resume_compares_the_data_by_content_not_by_path(recipe_path, tmp_path):
    out = tmp_path / "out"
    fake_run(out, record(recipe_path))
    moved = tmp_path / "elsewhere.csv"
    moved.write_bytes((tmp_path / "pairs.csv").read_bytes())
    claim(out, record(recipe_path, f'data.train="{moved}"'), resume=True).release()  # same rows: the same run
    moved.write_text("anchor,positive\nq,a\n")
    with pytest.raises(OutputDirError, match=r"data_sha256.train: '[0-9a-f]{64}' -> '[0-9a-f]{64}'"):
        claim(out, record(recipe_path, f'data.train="{moved}"'), resume=True)


def test_overwrite_removes_only_what_a_run_writes(recipe_path, tmp_path):
    out = tmp_path / "out"
    fake_run(out, record(recipe_path))
    (out / "checkpoints" / "step-0000002").mkdir(parents=True)
    (out / "my-notes.txt").write_text("keep me")
    with claim(out, record(recipe_path, "train.lr=1e-3"), overwrite=True):
        pass
    assert sorted(p.name for p in out.iterdir()) == [".lock", "my-notes.txt", RECORD_NAME]
    assert json.loads((out / RECORD_NAME).read_text())["recipe"]["train"]["lr"] == 1e-3


def test_a_folder_of_other_files_is_refused_without_overwrite(recipe_path, tmp_path):
    out = tmp_path / "thesis"
    out.mkdir()
    (out / "chapter1.tex").write_text("...")
    with pytest.raises(OutputDirError, match=r"holds files that are not a minilm run \(chapter1.tex\)"):
        claim(out, record(recipe_path))
    assert sorted(p.name for p in out.iterdir()) == ["chapter1.tex"]  # not even a lock file added
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputDirError, match="exists and is not a directory"):
        claim(tmp_path / "file", record(recipe_path))


def test_a_record_without_outputs_is_no_run_yet(recipe_path, tmp_path):
    """A run stopped before it wrote anything (a bad base model, say) does not block the corrected run."""
    out = tmp_path / "out"
    with claim(out, record(recipe_path, 'model.base="typo"')):
        pass
    with claim(out, record(recipe_path)):
        pass
    assert json.loads((out / RECORD_NAME).read_text())["recipe"]["model"]["base"] != "typo"


def test_resume_needs_a_record(recipe_path, tmp_path):
    out = tmp_path / "out"
    (out / "checkpoints").mkdir(parents=True)
    with pytest.raises(OutputDirError, match=r"holds checkpoints but no run record \(run.json\)"):
        claim(out, record(recipe_path), resume=True)
    with pytest.raises(FileNotFoundError, match="no run to resume"):
        claim(tmp_path / "empty", record(recipe_path), resume=True)
    with pytest.raises(OutputDirError, match="give one of them"):
        claim(out, record(recipe_path), resume=True, overwrite=True)


@pytest.mark.subprocess
def test_a_second_concurrent_run_fails_at_once_naming_the_first(recipe_path, tmp_path):
    out = tmp_path / "out"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time, fcntl, os; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); "
                "fcntl.flock(fd, fcntl.LOCK_EX); os.write(fd, f'{os.getpid()}\\n'.encode()); "
                "print('held', flush=True); "
                "time.sleep(60)"
            ),
            str(out / ".lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    out.mkdir()
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputDirError, match=rf"{out} is in use by another minilm run \(pid {holder.pid}\)"):
            claim(out, record(recipe_path))
    finally:
        holder.kill()
        holder.wait()
    # the kernel dropped the dead holder's lock: no stale lock
    with (
        claim(out, record(recipe_path)),
        pytest.raises(OutputDirError, match=rf"in use by another minilm run \(pid {os.getpid()}\)"),
    ):
        claim(out, record(recipe_path), resume=True)


@pytest.mark.subprocess
def test_a_dead_runs_temporaries_are_removed_on_claim(recipe_path, tmp_path):
    out = tmp_path / "out"
    fake_run(out, record(recipe_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    leftover = out / "checkpoints" / f".step-0000004.minilm-tmp-{int(dead.stdout)}-00aa11bb"
    (leftover / "model").mkdir(parents=True)
    claim(out, record(recipe_path), resume=True).release()
    assert not leftover.exists()


# ------------------------------------------------------------------------------------------- whole runs


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory, minilm_dir):
    directory = tmp_path_factory.mktemp("tiny-base")
    make_tiny_checkpoint(directory, minilm_dir, layers=2, normalize=True)
    return directory


@pytest.mark.slow
def test_resume_of_a_run_killed_before_its_first_checkpoint_starts_it_again(tmp_path, tiny_base, monkeypatch):
    from safetensors.torch import load_file

    path = write_tiny_recipe(tmp_path, tiny_base, steps=3)
    run_recipe(load_recipe(path), tmp_path / "straight", log=lambda _: None)
    killed_after_step(monkeypatch, 1, lambda: run_recipe(load_recipe(path), tmp_path / "cut", log=lambda _: None))
    said = []
    run_recipe(load_recipe(path), tmp_path / "cut", resume=True, log=said.append)
    assert any("starts again from step 0" in line for line in said)
    a, b = (load_file(tmp_path / d / "final" / "model.safetensors") for d in ("straight", "cut"))
    assert all((a[k] == b[k]).all() for k in a)
    log = [json.loads(line) for line in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3]
