"""Every bad input a command-line user can give ends in one line on stderr naming the file, key, line or argument,
with exit status 2, and nothing the user had is lost. Most cases run ``cli.main`` in process; a few run real
processes, to show that no traceback reaches the terminal and that a full disk is survived."""

import json
import os
import resource
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import make_tiny_checkpoint, tiny_encoder, write_tiny_recipe
from safetensors.torch import load_file, save_file

from minilm import cli


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, minilm_dir):
    """A tiny random model saved by minilm (hidden 32): loads in a fraction of a second."""
    from minilm.loading.tokenizer import WordPieceTokenizer

    directory = tmp_path_factory.mktemp("tiny") / "model"
    tiny_encoder(WordPieceTokenizer.from_dir(minilm_dir, 64)).save(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory, minilm_dir):
    directory = tmp_path_factory.mktemp("tiny-base")
    make_tiny_checkpoint(directory, minilm_dir, layers=2, normalize=True)
    return directory


def copy_model(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def fails(capsys, args, *fragments, status=2):
    """Run ``minilm ARGS``: it must exit with ``status`` and print exactly one line holding every fragment."""
    code = cli.main([str(a) for a in args])
    err = capsys.readouterr().err
    lines = err.strip().split("\n")
    assert code == status, err
    assert len(lines) == 1 and lines[0].startswith(f"minilm {args[0]}: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


# ------------------------------------------------------------------------------------------- encode / similarity


def test_encode_missing_input(capsys, tmp_path, tiny_model):
    fails(
        capsys,
        ["encode", "--model", tiny_model, "--input", tmp_path / "nope.txt", "--output", tmp_path / "o.npy"],
        "input file",
        "nope.txt does not exist",
    )


def test_encode_non_utf8_input_names_file_and_line(capsys, tmp_path, tiny_model):
    (tmp_path / "in.txt").write_bytes(b"fine\nlatin-1 caf\xe9\n")
    fails(
        capsys,
        ["encode", "--model", tiny_model, "--input", tmp_path / "in.txt", "--output", tmp_path / "o.npy"],
        f"{tmp_path / 'in.txt'}:2: not UTF-8 text",
    )


def test_encode_non_utf8_stdin(capsys, tmp_path, tiny_model, monkeypatch):
    import io

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\xff\xfe oops\n")))
    fails(
        capsys,
        ["encode", "--model", tiny_model, "--input", "-", "--output", tmp_path / "o.npy"],
        "<stdin>:1: not UTF-8 text",
    )


def test_encode_output_that_is_a_directory(capsys, tmp_path, tiny_model):
    (tmp_path / "in.txt").write_text("a\n")
    fails(
        capsys,
        ["encode", "--model", tiny_model, "--input", tmp_path / "in.txt", "--output", tmp_path],
        f"--output {tmp_path} is a directory",
    )


def test_encode_missing_model(capsys, tmp_path):
    (tmp_path / "in.txt").write_text("a\n")
    fails(
        capsys,
        ["encode", "--model", tmp_path / "no-model", "--input", tmp_path / "in.txt", "--output", tmp_path / "o.npy"],
        "cannot find model",
    )


def test_encode_bad_batch_size_is_an_argument_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as e:
        cli.main(["encode", "--input", "x", "--output", "y", "--batch-size", "0"])
    err = capsys.readouterr().err.strip().split("\n")
    assert e.value.code == 2 and len(err) == 1
    assert "argument --batch-size: must be a positive integer, got '0'" in err[0]


def test_encode_rows_match_lines_and_the_output_is_the_path_given(capsys, tmp_path, tiny_model):
    lines = ["form\ffeed", "line\u2028separator", "next\x85line", "", "carriage\rreturn", "last"]
    (tmp_path / "in.txt").write_bytes("\r\n".join(lines).encode())
    out = tmp_path / "emb"  # no .npy suffix: written exactly there
    assert (
        cli.main(["encode", "--model", str(tiny_model), "--input", str(tmp_path / "in.txt"), "--output", str(out)]) == 0
    )
    assert "read 6 lines from" in capsys.readouterr().err
    emb = np.load(out, allow_pickle=False)
    assert emb.shape == (6, 32) and not (tmp_path / "emb.npy").exists()
    from minilm.encoder import SentenceEncoder

    assert np.allclose(emb, SentenceEncoder.from_pretrained(tiny_model).encode(lines), atol=1e-6)


def test_model_with_nonfinite_weights_is_named(capsys, tmp_path, tiny_model):
    broken = copy_model(tiny_model, tmp_path / "broken")
    state = load_file(broken / "model.safetensors")
    state["encoder.layer.0.attention.output.dense.weight"][1, 1] = float("nan")
    save_file(state, broken / "model.safetensors")
    fails(
        capsys,
        ["similarity", "--model", broken, "a", "b"],
        "tensor encoder.layer.0.attention.output.dense.weight holds 1 NaN or infinite values",
    )


def test_model_whose_embeddings_overflow_is_an_error_not_nan(capsys, tmp_path, tiny_model):
    broken = copy_model(tiny_model, tmp_path / "huge")
    state = load_file(broken / "model.safetensors")
    state["embeddings.LayerNorm.weight"] *= 3e38  # finite, but the first layer overflows
    save_file(state, broken / "model.safetensors")
    fails(
        capsys,
        ["similarity", "--model", broken, "a cat", "a dog"],
        f"model {broken} gives non-finite embeddings for sentence 1 and 1 more",
    )
    (tmp_path / "in.txt").write_text("x\n")
    np.save(tmp_path / "old.npy", np.ones((1, 32), dtype=np.float32))  # an earlier output
    previous = (tmp_path / "old.npy").read_bytes()
    fails(
        capsys,
        ["encode", "--model", broken, "--input", tmp_path / "in.txt", "--output", tmp_path / "old.npy"],
        "non-finite embeddings for line 1",
    )
    assert (tmp_path / "old.npy").read_bytes() == previous
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["in.txt", "old.npy"]  # no partial left


def test_malformed_model_config_is_named(capsys, tmp_path, tiny_model):
    broken = copy_model(tiny_model, tmp_path / "cfg")
    (broken / "config.json").write_text('{"hidden_size": 32,')
    fails(capsys, ["similarity", "--model", broken, "a"], f"{broken / 'config.json'}:1: not valid JSON")


# ------------------------------------------------------------------------------------------- train


@pytest.fixture()
def recipe(tmp_path, tiny_base):
    return write_tiny_recipe(tmp_path, tiny_base, steps=2)


def test_train_missing_recipe(capsys, tmp_path):
    fails(capsys, ["train", tmp_path / "nope.toml"], "recipe", "nope.toml does not exist")


def test_train_recipe_that_is_not_toml(capsys, tmp_path):
    (tmp_path / "r.toml").write_text("name = \n")
    fails(capsys, ["train", tmp_path / "r.toml"], "r.toml: not valid TOML")


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("train.lr=nan", "[train] lr must be a finite number, got nan"),
        ("train.max_grad_norm=inf", "[train] max_grad_norm must be a finite number, got inf"),
        ("train.batch_size=1", "loss mnrl takes its negatives from the other rows of a batch"),
        ("train.batch_size=100", "[train] batch_size 100 is more than the 40 rows of"),
        ('model.base="./no/such/model"', "[model] base folder ./no/such/model not found"),
    ],
)
def test_train_bad_recipe_values(capsys, recipe, tmp_path, override, fragment):
    fails(capsys, ["train", recipe, "--set", override, "--output", tmp_path / "out"], fragment)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"anchor,positive\nq,caf\xe9\n", "pairs.csv:2: not UTF-8 text"),
        (b"anchor,positive\n", "pairs.csv: has a header row but no data rows"),
        (b"anchor,positive\nq1,a1\nq2\n", "pairs.csv:3: expected 2 columns, found 1"),
    ],
)
def test_train_bad_data(capsys, recipe, tmp_path, content, fragment):
    (tmp_path / "pairs.csv").write_bytes(content)
    fails(capsys, ["train", recipe, "--output", tmp_path / "out"], fragment)


def test_train_labels_written_two_ways(capsys, recipe, tmp_path):
    (tmp_path / "labels.csv").write_text("text,label\na,1\nb,2\nc,1.0\nd,2\n")
    fails(
        capsys,
        [
            "train",
            recipe,
            "--output",
            tmp_path / "out",
            "--set",
            'loss.name="batch_hard_triplet"',
            "--set",
            'data.roles={text="text", label="label"}',
            "--set",
            "train.batch_size=4",
            "--data",
            tmp_path / "labels.csv",
        ],
        "labels.csv:4: column 'label': label '1.0' is the number written '1' on line 2",
    )


def test_train_twice_into_one_output_and_resume_mismatch(capsys, recipe, tmp_path):
    out = tmp_path / "out"
    assert cli.main(["train", str(recipe), "--output", str(out)]) == 0
    capsys.readouterr()
    log_before = (out / "log.jsonl").read_bytes()
    fails(
        capsys,
        ["train", recipe, "--output", out],
        f"output directory {out} already holds run 'tiny'",
        "--resume",
        "--overwrite",
    )
    fails(
        capsys,
        ["train", recipe, "--output", out, "--resume", "--set", "train.lr=1e-3"],
        "holds another run (run.json differs: recipe.train.lr: 5e-05 -> 0.001",
    )
    fails(capsys, ["train", recipe, "--output", out, "--resume", "--overwrite"], "give one of them")
    assert (out / "log.jsonl").read_bytes() == log_before
    assert cli.main(["train", str(recipe), "--output", str(out), "--overwrite", "--set", "train.lr=1e-3"]) == 0
    assert json.loads((out / "run.json").read_text())["overrides"] == ["--set train.lr=1e-3"]


def test_train_into_a_folder_of_other_files(capsys, recipe, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    fails(capsys, ["train", recipe, "--output", tmp_path / "mine"], "holds files that are not a minilm run (notes.txt)")


def test_train_that_diverges(capsys, recipe, tmp_path):
    fails(
        capsys,
        ["train", recipe, "--output", tmp_path / "out", "--set", "train.lr=1e10"],
        "the weights after step 1 overflow",
    )
    assert not (tmp_path / "out" / "final").exists()


def test_resume_with_nothing_to_resume(capsys, recipe, tmp_path):
    fails(capsys, ["train", recipe, "--output", tmp_path / "empty", "--resume"], "there is no run to resume")


# ------------------------------------------------------------------------------------------- eval


def test_eval_constant_gold_scores(capsys, tmp_path):
    (tmp_path / "sim.csv").write_text("a,b,score\nx,y,0.5\nz,w,0.5\n")
    fails(
        capsys,
        ["eval", "--data", tmp_path / "sim.csv", "--task", "similarity"],
        f"{tmp_path / 'sim.csv'}: every gold score is 0.5",
    )


def test_eval_undefined_metric(capsys, tmp_path, tiny_model, monkeypatch):
    import minilm.evaluation.evaluators

    monkeypatch.setattr(
        minilm.evaluation.evaluators,
        "make_evaluator",  # where `minilm eval` takes it from
        lambda *a, **k: lambda m: {"spearman": float("nan")},
    )
    fails(
        capsys,
        ["eval", "--model", tiny_model, "--data", tmp_path / "any.csv", "--task", "similarity"],
        "spearman on",
        "is undefined (nan)",
    )


def test_eval_missing_and_non_utf8_data(capsys, tmp_path):
    fails(capsys, ["eval", "--data", tmp_path / "nope.csv", "--task", "triplet"], "nope.csv' is not a file")
    (tmp_path / "t.csv").write_bytes(b"anchor,positive,negative\na,b,\xff\n")
    fails(capsys, ["eval", "--data", tmp_path / "t.csv", "--task", "triplet"], "t.csv:2: not UTF-8 text")


# ------------------------------------------------------------------------------------------- the last resort


def test_an_unforeseen_error_is_one_line_too(capsys, monkeypatch):
    def bug(args):
        raise RuntimeError("something\nunexpected")

    monkeypatch.setattr(cli, "cmd_similarity", bug)
    monkeypatch.delenv("MINILM_DEBUG", raising=False)
    fails(
        capsys,
        ["similarity", "a"],
        "internal error, please report it: RuntimeError: something; unexpected",
        "MINILM_DEBUG=1",
        status=1,
    )
    monkeypatch.setenv("MINILM_DEBUG", "1")
    with pytest.raises(RuntimeError):
        cli.main(["similarity", "a"])


def test_an_interrupt_is_one_line(capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_similarity", interrupted)
    fails(capsys, ["similarity", "a"], "interrupted", status=130)


# ------------------------------------------------------------------------------------------- real processes


def run(*args, stdin=None, file_size_limit=None):
    def limit():  # a disk that fills up: writes past the limit fail with EFBIG (SIGXFSZ ignored, as a shell may)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    return subprocess.run(
        [sys.executable, "-m", "minilm", *map(str, args)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=limit if file_size_limit else None,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )


@pytest.mark.slow  # a process of its own (~3 s of CPU); the in-process error tests check the one-line messages
@pytest.mark.subprocess
def test_no_traceback_reaches_the_terminal(tmp_path, tiny_model):
    (tmp_path / "in.txt").write_bytes(b"\xff")
    done = run("encode", "--model", tiny_model, "--input", tmp_path / "in.txt", "--output", tmp_path / "o.npy")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert "in.txt:1: not UTF-8 text" in done.stderr


@pytest.mark.slow  # a process of its own with a file size limit (~3 s of CPU)
@pytest.mark.subprocess
def test_a_full_disk_leaves_the_previous_output(tmp_path, tiny_model):
    (tmp_path / "in.txt").write_text("".join(f"sentence {i}\n" for i in range(400)))  # 400 x 32 float32 = 51 kB
    np.save(tmp_path / "emb.npy", np.ones((2, 32), dtype=np.float32))
    before = (tmp_path / "emb.npy").read_bytes()
    done = run(
        "encode",
        "--model",
        tiny_model,
        "--input",
        tmp_path / "in.txt",
        "--output",
        tmp_path / "emb.npy",
        file_size_limit=20_000,
    )
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert f"cannot write {tmp_path / 'emb.npy'}: " in done.stderr  # the file size limit: "File too large"
    assert f"what was at {tmp_path / 'emb.npy'} is unchanged" in done.stderr
    assert (tmp_path / "emb.npy").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.npy", "in.txt"]


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_full_disk_during_training_leaves_no_half_checkpoint(tmp_path, tiny_base):
    recipe = write_tiny_recipe(tmp_path, tiny_base, steps=4)
    out = tmp_path / "out"
    # the tiny model's weights fit (about 8 MB); the first trainer state, with AdamW's two moments, does not
    done = run("train", recipe, "--output", out, file_size_limit=10_000_000)
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().split("\n")[-1]
    assert "Traceback" not in done.stderr and last.startswith("minilm train: error: cannot write ")
    assert "checkpoints/step-0000002: File too large" in last and "training stopped after step 2" in last
    assert not (out / "checkpoints" / "step-0000002").exists() and not (out / "final").exists()
    assert [p.name for p in out.rglob(".*") if p.name != ".lock"] == []
    assert torch.tensor(1.0).isfinite()  # (torch imported for the fixtures' sake)


HELD = """
import sys, time
from pathlib import Path
from minilm import cli
from minilm.train import trainer

started, go = Path(sys.argv[1]), Path(sys.argv[2])
real = trainer.Trainer.train

def held(self):  # the output directory is claimed: say so, then wait for the test's go-ahead
    started.touch()
    while not go.exists():
        time.sleep(0.05)
    return real(self)

trainer.Trainer.train = held
sys.exit(cli.main(sys.argv[3:]))
"""


@pytest.mark.slow
@pytest.mark.subprocess
def test_two_trainings_on_one_output_the_second_fails_at_once(tmp_path, tiny_base):
    import time

    recipe = write_tiny_recipe(tmp_path, tiny_base)
    out, started, go = tmp_path / "out", tmp_path / "started", tmp_path / "go"
    first = subprocess.Popen(
        [sys.executable, "-c", HELD, str(started), str(go), "train", str(recipe), "--output", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    try:
        deadline = time.monotonic() + 240
        while not started.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        second = run("train", recipe, "--output", out)
    finally:
        go.touch()
    first_err = first.communicate(timeout=600)[1]
    assert second.returncode == 2 and second.stderr.count("\n") == 1, second.stderr
    assert f"output directory {out} is in use by another minilm run (pid {first.pid})" in second.stderr
    assert first.returncode == 0, first_err
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3, 4, 5, 6]  # one run's steps, once each
