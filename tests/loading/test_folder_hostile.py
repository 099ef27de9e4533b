"""Hostile model folders (issue 20; minilm/loading/folder.py, header.py, weights.py, tokenizer.py): config sizes
against sane bounds and against the safetensors header, before anything is allocated; weights that are not floating
point; token ids beyond the vocabulary; files that are not regular files (a FIFO, /dev/zero) refused, never read.
Each error is one line naming the file and the key or tensor; the peak memory of a refused hostile config is
measured in a fresh process."""

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import tiny_encoder
from safetensors.torch import load_file, save_file

from minilm.cli import main
from minilm.encoder import SentenceEncoder
from minilm.loading.tokenizer import WordPieceTokenizer
from minilm.loading.weights import CheckpointError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def saved(minilm_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "model"
    tiny_encoder(WordPieceTokenizer.from_dir(minilm_dir, 64)).save(path)
    return path


@pytest.fixture()
def tiny(saved, tmp_path):
    """A fresh copy of a tiny saved model, to spoil."""
    subprocess.run(["cp", "-r", str(saved), str(tmp_path / "m")], check=True)
    return tmp_path / "m"


def edit_config(directory, **values):
    raw = json.loads((directory / "config.json").read_text())
    raw.update(values)
    (directory / "config.json").write_text(json.dumps(raw))


def refused(directory, capsys) -> str:
    """The one line `minilm similarity` prints for the folder, which must be refused with exit status 2."""
    assert main(["similarity", "--model", str(directory), "a cat"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    "values, message",
    [
        ({"num_hidden_layers": 10**6}, "config.json: num_hidden_layers is 1,000,000, beyond the 512 minilm builds"),
        ({"hidden_size": 2**40, "num_attention_heads": 4}, "config.json: hidden_size is 1,099,511,627,776, beyond"),
        ({"vocab_size": 10**12}, "config.json: vocab_size is 1,000,000,000,000, beyond"),
        ({"intermediate_size": 10**9}, "config.json: intermediate_size is 1,000,000,000, beyond"),
        # within the bounds, but not the file's: refused from the header before the model is built
        ({"num_hidden_layers": 400}, "config.json: num_hidden_layers is 400, but .*model.safetensors holds layers 0-1"),
        (
            {"hidden_size": 16384, "num_attention_heads": 4},
            r"config.json: vocab_size 30522, hidden_size 16384 do not fit .*model.safetensors: "
            r"embeddings.word_embeddings.weight: checkpoint \(30522, 32\), the config makes it \(30522, 16384\)",
        ),
        (
            {"vocab_size": 4_000_000},
            r"config.json: vocab_size 4000000, hidden_size 32 do not fit .*embeddings.word_embeddings.weight",
        ),
        (
            {"max_position_embeddings": 100_000},
            r"config.json: max_position_embeddings 100000, hidden_size 32 do not fit",
        ),
    ],
)
def test_sizes_beyond_bounds_or_the_weights_are_refused_naming_config_and_key(tiny, capsys, values, message):
    edit_config(tiny, **values)
    with pytest.raises(CheckpointError, match=message):
        SentenceEncoder.from_pretrained(tiny)
    assert "config.json" in refused(tiny, capsys)


@pytest.mark.slow  # a fresh process (~2.5 s of CPU); the refusals themselves are tested in process above
@pytest.mark.subprocess
def test_peak_memory_of_a_refused_hostile_config_is_bounded(tiny, tmp_path):
    """In a fresh process: the rise of the peak resident size over importing minilm, while refusing configs that
    would allocate terabytes (past the bounds) or gigabytes (within the bounds, not the file's), in MB."""
    hostile = []
    for name, values in [
        ("layers", {"num_hidden_layers": 10**6}),
        ("within", {"vocab_size": 4_000_000, "hidden_size": 16384}),
    ]:
        subprocess.run(["cp", "-r", str(tiny), str(tmp_path / name)], check=True)
        edit_config(tmp_path / name, **values)
        hostile.append(str(tmp_path / name))
    script = (
        "import resource, sys\n"
        "from minilm.encoder import SentenceEncoder\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        SentenceEncoder.from_pretrained(path)\n"
        "    except ValueError as e:\n"
        "        print('refused:', str(e)[-60:])\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(f'peak RSS {before / 1024:.1f} MB after import, {after / 1024:.1f} MB after refusing')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, *hostile],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    print(result.stdout)
    assert result.stdout.count("refused:") == 2
    before, after = (float(word) for word in result.stdout.split() if word.replace(".", "").isdigit())
    assert after - before < 64, result.stdout  # was 4.6 GB after 52 s for the million layers


def test_weights_that_are_not_floating_point_are_refused_naming_the_tensor(tiny, capsys):
    state = load_file(tiny / "model.safetensors")
    state["encoder.layer.1.attention.self.query.weight"] = state["encoder.layer.1.attention.self.query.weight"].long()
    save_file(state, tiny / "model.safetensors")
    with pytest.raises(
        CheckpointError,
        match=r"model.safetensors: tensor encoder.layer.1.attention.self.query.weight "
        r"is stored as I64; weights must be floating point",
    ):
        SentenceEncoder.from_pretrained(tiny)
    refused(tiny, capsys)


def test_a_token_id_beyond_the_vocabulary_is_refused_naming_it(tiny, capsys):
    raw = json.loads((tiny / "tokenizer.json").read_text())
    raw["model"]["vocab"]["[BEYOND]"] = 30522  # vocab_size is 30522: ids 0..30521 index the embeddings
    (tiny / "tokenizer.json").write_text(json.dumps(raw))
    with pytest.raises(
        CheckpointError,
        match=r"tokenizer.json: token '\[BEYOND\]' has id 30522, beyond the "
        r"vocabulary of 30522 embeddings \(vocab_size in .*config.json\)",
    ):
        SentenceEncoder.from_pretrained(tiny)
    refused(tiny, capsys)


NOT_REGULAR_NAMES = [
    "1_Pooling/config.json",
    "modules.json",
    "tokenizer.json",
    "config.json",
    "sentence_bert_config.json",
    "model.safetensors",
]
NOT_REGULAR_KINDS = ["/dev/zero", "fifo", "folder"]
# `python -m minilm similarity` on each folder, each in its own forked child of one process that imported minilm once
# (importing torch and minilm was ~2.5 s of each of the 18 cases when each started its own interpreter); a child that
# does not end within the timeout is killed and reported as hung, so a regression fails instead of hanging the suite.
RUN_EACH_FORKED = """
import json, os, runpy, signal, sys, time
import minilm.cli  # noqa: F401  (imported once, before the forks)
timeout, folders = float(sys.argv[1]), sys.argv[2:]
for folder in folders:
    err = folder + ".stderr"
    pid = os.fork()
    if pid == 0:
        fd = os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 2)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        sys.argv = ["minilm", "similarity", "--model", folder, "a cat"]
        try:
            runpy.run_module("minilm", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            import traceback
            traceback.print_exc()
            code = 1
        sys.stderr.flush()
        os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            code = None
            break
        time.sleep(0.01)
    with open(err, encoding="utf-8", errors="replace") as f:
        print(json.dumps([folder, code, f.read()]), flush=True)
"""


@pytest.fixture(scope="module")
def not_regular_results(saved, tmp_path_factory):
    """{(kind, name): (the spoiled path, exit status or None if it hung, stderr)} for every case below."""
    root = tmp_path_factory.mktemp("not-regular")
    cases = {}
    for i, (kind, name) in enumerate((k, n) for k in NOT_REGULAR_KINDS for n in NOT_REGULAR_NAMES):
        folder = root / f"case{i}"
        subprocess.run(["cp", "-r", str(saved), str(folder)], check=True)
        path = folder / name
        path.unlink()
        if kind == "/dev/zero":
            path.symlink_to("/dev/zero")
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            path.mkdir()
        cases[str(folder)] = (kind, name, path)
    result = subprocess.run(
        [sys.executable, "-c", RUN_EACH_FORKED, "120", *cases],
        capture_output=True,
        text=True,
        timeout=120 * len(cases) + 60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    results = {}
    for line in result.stdout.splitlines():
        folder, code, err = json.loads(line)
        kind, name, path = cases[folder]
        results[kind, name] = (path, code, err)
    assert len(results) == len(cases), result.stdout
    return results


@pytest.mark.parametrize("name", NOT_REGULAR_NAMES)
@pytest.mark.parametrize("kind", NOT_REGULAR_KINDS)
def test_a_model_file_that_is_not_a_regular_file_is_refused_not_read(not_regular_results, name, kind):
    """/dev/zero never ends and a FIFO blocks its reader: both hung the load. Run in a process with a timeout, so a
    regression fails instead of hanging the suite."""
    path, returncode, stderr = not_regular_results[kind, name]
    assert returncode is not None, f"{path}: the load hung (killed after 120 s)"
    assert returncode == 2 and stderr.count("\n") == 1, stderr
    assert str(path) in stderr
    expected = "is a directory" if kind == "folder" else "is not a regular file"
    assert expected in stderr, stderr


def test_a_safetensors_header_that_lies_about_the_file_is_refused(tiny):
    data = (tiny / "model.safetensors").read_bytes()
    (tiny / "model.safetensors").write_bytes(struct.pack("<Q", 10**15) + data[8:])
    with pytest.raises(
        CheckpointError,
        match=r"model.safetensors is not a readable safetensors file: its header "
        r"claims 1,000,000,000,000,000 bytes",
    ):
        SentenceEncoder.from_pretrained(tiny)
    (tiny / "model.safetensors").write_bytes(data[:-1000])  # the last tensor's bytes cut off
    with pytest.raises(CheckpointError, match=r"claims bytes .* but the file holds .* data bytes \(truncated"):
        SentenceEncoder.from_pretrained(tiny)


def test_a_checked_folder_still_loads_the_same_model(saved, minilm_dir):
    """The checks change nothing for a good folder: the model equals the one saved, bit for bit."""
    model = tiny_encoder(WordPieceTokenizer.from_dir(minilm_dir, 64))
    loaded = SentenceEncoder.from_pretrained(saved)
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name


def test_layers_the_file_lacks_are_refused_before_the_model_is_built(tiny, monkeypatch):
    """One stray tensor of layer 399 makes 400 layers look held: every key the config needs must be in the header,
    checked before BertModel allocates 400 layers."""
    state = load_file(tiny / "model.safetensors")
    state["encoder.layer.399.output.dense.bias"] = torch.zeros(32)
    save_file(state, tiny / "model.safetensors")
    edit_config(tiny, num_hidden_layers=400)
    import minilm.encoder

    def never(*args, **kwargs):
        raise AssertionError("the model was built before the checkpoint was checked")

    monkeypatch.setattr(minilm.encoder, "BertModel", never)
    with pytest.raises(
        CheckpointError,
        match=r"model.safetensors does not fit the config .*config.json:\n  missing "
        r"keys: encoder.layer.2.attention.self.query.weight",
    ):
        SentenceEncoder.from_pretrained(tiny)
