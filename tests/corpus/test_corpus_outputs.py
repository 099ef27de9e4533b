"""Encode outputs (issue 20; minilm/corpus/): an output is never one of the command's inputs, one writer per output,
shard manifests carry their part's hash and place and encode-join checks both, output names are literal (never
globs), a read-only folder is named by the output, and a sharded encode SIGKILLed, resumed and joined equals one
process byte for byte.

Tolerance: none; files are compared byte for byte."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import corpus_file

from minilm.cli import main
from minilm.corpus.encode import CorpusOptions, encode_file, partial_paths
from minilm.corpus.npyfile import lock_output
from minilm.corpus.shards import join_parts, manifest_path, part_path
from minilm.util import io

REPO = Path(__file__).resolve().parents[2]
READ_ONLY = Path("/sys/kernel")  # refuses even root's writes: a read-only folder for a test run as root


def encode_args(model_dir, *args):
    return ["encode", "--model", str(model_dir), "--no-progress", *map(str, args)]


def test_the_output_is_never_an_input_of_the_command(model_dir, model, tmp_path, capsys):
    """The calibration and ranges files are .npy, so the old check (an existing .npy is an earlier output) let them be
    replaced; symlinks and hard links to an input are seen through."""
    lines = corpus_file(tmp_path / "in.txt", 20)
    np.save(tmp_path / "cal.npy", model.encode(lines))
    np.save(tmp_path / "ranges.npy", np.stack([np.full(32, -1.0), np.full(32, 1.0)]).astype(np.float32))
    (tmp_path / "link.npy").symlink_to(tmp_path / "cal.npy")
    os.link(tmp_path / "ranges.npy", tmp_path / "hard.npy")
    (tmp_path / "in-link.txt").symlink_to(tmp_path / "in.txt")
    saved = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    cases = [
        (
            ["--precision", "int8", "--calibration", tmp_path / "cal.npy", "--output", tmp_path / "cal.npy"],
            f"--output {tmp_path / 'cal.npy'} is the --calibration file",
        ),
        (
            ["--precision", "int8", "--calibration", tmp_path / "cal.npy", "--output", tmp_path / "link.npy"],
            f"--output {tmp_path / 'link.npy'} is the --calibration file",
        ),
        (
            ["--precision", "uint8", "--ranges", tmp_path / "ranges.npy", "--output", tmp_path / "hard.npy"],
            f"--output {tmp_path / 'hard.npy'} is the --ranges file",
        ),
        (["--output", tmp_path / "in-link.txt"], f"--output {tmp_path / 'in-link.txt'} is the input file"),
    ]
    for extra, message in cases:
        assert main(encode_args(model_dir, "--input", tmp_path / "in.txt", *extra)) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == saved
    # the library call refuses too (the command line checks before the model loads, encode_file again)
    with pytest.raises(ValueError, match=r"is the --calibration file"):
        encode_file(
            model,
            tmp_path / "in.txt",
            tmp_path / "link.npy",
            progress=False,
            inputs={"--calibration": tmp_path / "cal.npy"},
        )
    # a shard's manifest is written too: an input there is refused as well
    (tmp_path / "e.part-00000-of-00002.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ValueError, match=r"e.part-00000-of-00002.json is the input file"):
        encode_file(model, tmp_path / "e.part-00000-of-00002.json", tmp_path / "e.npy", shard=(0, 2), progress=False)


def test_one_writer_per_output(model, tmp_path):
    """A second encode into an output a live encode holds is refused at once, naming the holder, and touches
    nothing: the first's partial rows and state are as they were. The lock file goes when the writer ends."""
    corpus_file(tmp_path / "in.txt", 50)
    partial, state = partial_paths(tmp_path / "out.npy")
    partial.write_bytes(b"rows of the live run")
    state.write_text('{"live": true}', encoding="utf-8")
    busy = rf"--output {tmp_path / 'out.npy'} is being written by another minilm process \(pid {os.getpid()}\)"
    with lock_output(tmp_path / "out.npy"), pytest.raises(ValueError, match=busy):  # as the live encode holds it
        encode_file(model, tmp_path / "in.txt", tmp_path / "out.npy", restart=True, progress=False)
    assert partial.read_bytes() == b"rows of the live run" and state.read_text(encoding="utf-8") == '{"live": true}'
    assert not (tmp_path / "out.npy").exists()
    partial.unlink()
    state.unlink()
    encode_file(model, tmp_path / "in.txt", tmp_path / "out.npy", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.npy"]  # no lock file left behind


@pytest.mark.slow  # three processes (~6 s of CPU); test_one_writer_per_output checks the same lock in process
@pytest.mark.subprocess
def test_a_second_process_is_refused_while_the_first_writes(model_dir, tmp_path):
    """Across processes: while another process holds the output (as a live encode does), the command exits 2 naming
    its pid and writes nothing; once the holder is gone (here it ends; a SIGKILL does the same), the command runs."""
    corpus_file(tmp_path / "in.txt", 30)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from pathlib import Path; from minilm.corpus.npyfile import lock_output; "
            "held = lock_output(Path(sys.argv[1])); print('held', flush=True); sys.stdin.read()",
            tmp_path / "out.npy",
        ],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "held\n"
    args = [
        sys.executable,
        "-m",
        "minilm",
        *encode_args(model_dir, "--input", tmp_path / "in.txt", "--output", tmp_path / "out.npy"),
    ]
    second = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 2, second.stderr
    assert f"is being written by another minilm process (pid {holder.pid})" in second.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.npy.lock", "in.txt"]
    holder.kill()
    holder.wait()
    assert subprocess.run(args, env=env, capture_output=True, text=True, timeout=300).returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.npy"]


@pytest.fixture(scope="module")
def three_parts_encoded(model, tmp_path_factory):
    """One encode and three shards of the same 90 lines, encoded once for the module (four encodes per test were
    ~2 s of each join test)."""
    directory = tmp_path_factory.mktemp("three-parts")
    corpus_file(directory / "in.txt", 90)
    options = CorpusOptions(chunk_lines=10)
    encode_file(model, directory / "in.txt", directory / "one.npy", options, progress=False)
    for i in range(3):
        encode_file(model, directory / "in.txt", directory / "e.npy", options, shard=(i, 3), progress=False)
    return directory


@pytest.fixture()
def three_parts(three_parts_encoded, tmp_path):
    """A fresh copy of the encoded parts, manifests, input and one-process output in tmp_path, to spoil."""
    for path in three_parts_encoded.iterdir():
        shutil.copy2(path, tmp_path / path.name)
    return [part_path(tmp_path / "e.npy", i, 3) for i in range(3)]


def swap(a: Path, b: Path) -> None:
    tmp = a.with_name("swap.tmp")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)


def test_join_refuses_parts_swapped_with_each_other(three_parts, tmp_path):
    swap(three_parts[0], three_parts[1])  # same shapes, wrong places: the old join wrote rows out of order, exit 0
    with pytest.raises(
        ValueError,
        match=rf"{three_parts[0]} is not the part its manifest describes \(sha256 "
        r"differs\): swapped with another part",
    ):
        join_parts(tmp_path / "e.npy")
    assert not (tmp_path / "e.npy").exists()
    swap(manifest_path(three_parts[0]), manifest_path(three_parts[1]))  # the manifests moved along with their parts
    with pytest.raises(
        ValueError,
        match=rf"{manifest_path(three_parts[0])} describes shard 1/3, not the shard 0/3 "
        r"its name says",
    ):
        join_parts(tmp_path / "e.npy")
    assert not (tmp_path / "e.npy").exists()


def test_join_refuses_a_part_overwritten_at_the_same_size(three_parts, tmp_path):
    data = bytearray(three_parts[2].read_bytes())
    data[-8:] = np.full(2, np.nan, np.float32).tobytes()  # a NaN where a row was: same size, same header
    three_parts[2].write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{three_parts[2]} is not the part its manifest describes"):
        join_parts(tmp_path / "e.npy")
    with open(three_parts[1], "ab") as f:
        f.write(b"\0" * 4)
    with pytest.raises(ValueError, match=rf"{three_parts[1]} is truncated or appended to"):
        join_parts(tmp_path / "e.npy")
    assert not (tmp_path / "e.npy").exists()


def test_join_refuses_a_manifest_without_a_hash(three_parts, tmp_path):
    manifest = json.loads(manifest_path(three_parts[1]).read_text(encoding="utf-8"))
    del manifest["part_sha256"]
    manifest_path(three_parts[1]).write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(ValueError, match=r"e.part-00001-of-00003.json does not name its part .* with a hash"):
        join_parts(tmp_path / "e.npy")


def test_join_waits_for_no_part_and_no_output_being_written(three_parts, tmp_path):
    for held in (three_parts[1], tmp_path / "e.npy"):
        with lock_output(held), pytest.raises(ValueError, match=rf"--output {held} is being written by another"):
            join_parts(tmp_path / "e.npy")
    join_parts(tmp_path / "e.npy")
    assert (tmp_path / "e.npy").read_bytes() == (tmp_path / "one.npy").read_bytes()


def test_output_names_are_literal_never_globs(model, model_dir, tmp_path, capsys):
    """'emb[1].npy' is a name: its parts are found as written, and a file the pattern [1] would match is not."""
    lines = corpus_file(tmp_path / "in.txt", 30)
    for i in range(2):
        assert (
            main(
                encode_args(
                    model_dir,
                    "--input",
                    tmp_path / "in.txt",
                    "--output",
                    tmp_path / "emb[1].npy",
                    "--chunk-lines",
                    "10",
                    "--shard",
                    f"{i}/2",
                )
            )
            == 0
        )
    (tmp_path / "emb1.part-00000-of-00005.json").write_text("{}", encoding="utf-8")  # what the glob [1] matched
    assert main(["encode-join", "--output", str(tmp_path / "emb[1].npy")]) == 0
    assert "joined 30 x 32 float32 embeddings" in capsys.readouterr().err
    joined = np.load(tmp_path / "emb[1].npy")
    assert joined.shape == (30, 32) and np.array_equal(joined[:10], model.encode(lines[:10]))
    assert main(["encode-join", "--output", str(tmp_path / "emb*.npy")]) == 2
    assert "no shard manifests emb*.part-*-of-*.json found" in capsys.readouterr().err


def test_input_that_is_a_directory_or_not_a_file_is_named(model_dir, tmp_path, capsys):
    (tmp_path / "texts").mkdir()
    assert main(encode_args(model_dir, "--input", tmp_path / "texts", "--output", tmp_path / "o.npy")) == 2
    assert f"input file {tmp_path / 'texts'} is a directory; give a text file" in capsys.readouterr().err
    os.mkfifo(tmp_path / "fifo")
    assert main(encode_args(model_dir, "--input", tmp_path / "fifo", "--output", tmp_path / "o.npy")) == 2
    assert f"input file {tmp_path / 'fifo'} is not a regular file" in capsys.readouterr().err
    assert main(encode_args(model_dir, "--input", tmp_path / "gone.txt", "--output", tmp_path / "o.npy")) == 2
    assert f"input file {tmp_path / 'gone.txt'} does not exist" in capsys.readouterr().err


@pytest.mark.skipif(
    not READ_ONLY.is_dir() or os.access(READ_ONLY, os.W_OK) and os.getuid() != 0,
    reason="needs a folder this user cannot write",
)
def test_a_read_only_folder_is_named_by_the_output_not_a_temporary(model, model_dir, tmp_path, capsys):
    if os.path.exists(READ_ONLY / "o.npy") or _writable(READ_ONLY):
        pytest.skip(f"{READ_ONLY} is writable here")
    corpus_file(tmp_path / "in.txt", 5)
    target = READ_ONLY / "o.npy"
    for run in (
        lambda: encode_file(model, tmp_path / "in.txt", target, progress=False),
        lambda: io.write_json(READ_ONLY / "run.json", {}),
        lambda: model.save(READ_ONLY / "model"),
    ):
        with pytest.raises(OSError) as caught:
            run()
        assert io.TEMP_MARK not in str(caught.value) and ".lock" not in str(caught.value), caught.value
        assert str(READ_ONLY) in str(caught.value)


@pytest.mark.skipif(
    not READ_ONLY.is_dir() or os.access(READ_ONLY, os.W_OK) and os.getuid() != 0,
    reason="needs a folder this user cannot write",
)
@pytest.mark.slow  # a process of its own (~2 s of CPU); the test above checks the library calls in process
@pytest.mark.subprocess
def test_a_read_only_folder_is_named_by_the_encode_command(model_dir):
    if os.path.exists(READ_ONLY / "o.npy") or _writable(READ_ONLY):
        pytest.skip(f"{READ_ONLY} is writable here")
    target = READ_ONLY / "o.npy"
    result = subprocess.run(
        [sys.executable, "-m", "minilm", *encode_args(model_dir, "--input", "-", "--output", target)],
        input="a\n",
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
    )
    assert result.returncode == 2 and f"cannot write {target}: Permission denied" in result.stderr, result.stderr
    assert io.TEMP_MARK not in result.stderr


def _writable(directory: Path) -> bool:
    try:
        fd = os.open(directory / ".probe", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except OSError:
        return False
    os.close(fd)
    os.unlink(directory / ".probe")
    return True


@pytest.mark.slow
def test_a_sharded_encode_killed_and_joined_equals_one_process(model_dir, tmp_path):
    """Two shards, each SIGKILLed at a random point of its run, rerun with the same arguments, then joined: the
    file equals one uninterrupted process's byte for byte. The seed is printed; MINILM_FAULT_SEED replays it."""
    seed = int(os.environ.get("MINILM_FAULT_SEED", time.time_ns() % 2**32))
    print(f"sharded encode fault test: seed {seed}")
    rng = random.Random(seed)
    corpus_file(tmp_path / "in.txt", 12000)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    base = [
        sys.executable,
        "-m",
        "minilm",
        *encode_args(model_dir, "--input", tmp_path / "in.txt", "--chunk-lines", "400"),
    ]
    subprocess.run([*base, "--output", tmp_path / "one.npy"], check=True, env=env, capture_output=True)
    kills = []
    for i in range(2):
        part = part_path(tmp_path / "e.npy", i, 2)
        _, state = partial_paths(part)
        args = [*base, "--output", tmp_path / "e.npy", "--shard", f"{i}/2"]
        run = subprocess.Popen(args, env=env, stderr=subprocess.DEVNULL)
        while not state.is_file() and run.poll() is None:  # the model has loaded and the shard started
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 1.5))
        run.send_signal(signal.SIGKILL)
        run.wait()
        done = json.loads(state.read_text() or "{}").get("rows_done") if state.is_file() else "finished"
        kills.append((i, run.returncode, done))
        again = subprocess.run(args, env=env, capture_output=True, text=True)
        assert again.returncode == 0, again.stderr
    print(f"killed at (shard, status, rows recorded): {kills}")
    assert main(["encode-join", "--output", str(tmp_path / "e.npy")]) == 0
    assert (tmp_path / "e.npy").read_bytes() == (tmp_path / "one.npy").read_bytes()


def test_join_never_writes_over_one_of_its_parts(three_parts, tmp_path):
    """An output that is a symlink to a part (or to its manifest) would be replaced by the join reading it."""
    (tmp_path / "e.npy").symlink_to(three_parts[1])
    with pytest.raises(ValueError, match=rf"--output {tmp_path / 'e.npy'} is the part 1 file {three_parts[1]}"):
        join_parts(tmp_path / "e.npy")
    assert (tmp_path / "e.npy").is_symlink() and three_parts[1].is_file()
