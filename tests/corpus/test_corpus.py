"""Corpus-scale encoding (minilm/corpus/encode.py, minilm/corpus/shards.py, minilm/corpus/npyfile.py) on a tiny random
model: lines split on "\\n" only, rows = lines, resumption after an interruption and after SIGKILL gives the same bytes,
shards joined give the same bytes as one process, the encode options and output precisions, and every refusal.

Tolerance: none. Each chunk of lines is encoded alone, so the same lines in the same chunks give bit-identical rows;
files are compared byte for byte, rows with np.array_equal against ``encode`` of the same chunk."""

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import corpus_file

from minilm.cli import main
from minilm.corpus import encode as corpus
from minilm.corpus.encode import CorpusOptions, encode_file, partial_paths, scan_lines
from minilm.corpus.npyfile import npy_header
from minilm.corpus.shards import join_parts, part_path, shard_lines
from minilm.encoding.quantization import quantization_ranges, quantize_embeddings
from minilm.util.progress import Progress

REPO = Path(__file__).resolve().parents[2]


def quiet(message):
    pass


def test_lines_split_on_newline_only_and_rows_equal_lines(model, tmp_path):
    """ "\\r\\n" ends a line like "\\n"; form feed, U+2028, NEL, lone "\\r" and the other str.splitlines separators stay
    inside their line. A leading byte-order mark is dropped; a last line without "\\n" counts."""
    raw = (
        "\ufefffirst\r\nform\x0cfeed\nline\u2028separator\nnext\x85line\nlone\rreturn\ngroup\x1dsep\n\n"
        "no newline at end"
    )
    expected = [
        "first",
        "form\x0cfeed",
        "line\u2028separator",
        "next\x85line",
        "lone\rreturn",
        "group\x1dsep",
        "",
        "no newline at end",
    ]
    assert len(raw.splitlines()) > len(expected)  # what str.splitlines would have made of it
    (tmp_path / "in.txt").write_bytes(raw.encode("utf-8"))
    written = encode_file(model, tmp_path / "in.txt", tmp_path / "out.npy", progress=False)
    out = np.load(tmp_path / "out.npy")
    assert written.rows == out.shape[0] == len(expected)
    assert np.array_equal(out, model.encode(expected))
    assert not list(tmp_path.glob(".*"))  # no partial file or state left behind


def test_npy_header_is_the_one_np_save_writes(tmp_path):
    for shape, dtype in (((3, 5), np.float32), ((0, 48), np.uint8), ((1_000_000, 384), np.int8)):
        buffer = io.BytesIO()
        np.save(buffer, np.zeros((min(shape[0], 3), shape[1]), dtype))
        reference = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            reference, {"descr": np.dtype(dtype).str, "fortran_order": False, "shape": shape}
        )
        assert npy_header(*shape, dtype) == reference.getvalue()
        assert buffer.getvalue().startswith(npy_header(min(shape[0], 3), shape[1], dtype))


def test_a_run_interrupted_between_chunks_resumes_to_the_same_bytes(model, tmp_path, monkeypatch):
    corpus_file(tmp_path / "in.txt", 1000)
    options = CorpusOptions(chunk_lines=128)
    encode_file(model, tmp_path / "in.txt", tmp_path / "whole.npy", options, progress=False)

    real, calls = corpus._encode_chunk, []

    def dies_on_the_fourth_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt("power cut")
        return real(*args, **kwargs)

    monkeypatch.setattr(corpus, "_encode_chunk", dies_on_the_fourth_chunk)
    with pytest.raises(KeyboardInterrupt):
        encode_file(model, tmp_path / "in.txt", tmp_path / "out.npy", options, progress=False)
    partial, state = partial_paths(tmp_path / "out.npy")
    assert not (tmp_path / "out.npy").exists() and partial.is_file()
    assert json.loads(state.read_text())["rows_done"] == 3 * 128
    monkeypatch.setattr(corpus, "_encode_chunk", real)
    messages = []
    written = encode_file(
        model, tmp_path / "in.txt", tmp_path / "out.npy", options, progress=False, log=messages.append
    )
    assert written.resumed_at == 384 and messages == ["resuming out.npy at line 385 of 1,000 (rows 384 of 1,000 done)"]
    assert (tmp_path / "out.npy").read_bytes() == (tmp_path / "whole.npy").read_bytes()
    assert not partial.exists() and not state.exists()


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_killed_encode_resumes_to_the_same_file(model_dir, tmp_path):
    """The command line, SIGKILLed once a few chunks are recorded, then run again with the same arguments."""
    corpus_file(tmp_path / "in.txt", 30000)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [
        sys.executable,
        "-m",
        "minilm",
        "encode",
        "--model",
        str(model_dir),
        "--input",
        str(tmp_path / "in.txt"),
        "--chunk-lines",
        "500",
        "--no-progress",
    ]
    subprocess.run([*args, "--output", str(tmp_path / "whole.npy")], check=True, env=env, capture_output=True)
    _, state = partial_paths(tmp_path / "out.npy")
    run = subprocess.Popen([*args, "--output", str(tmp_path / "out.npy")], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and run.poll() is None:
        if state.is_file() and json.loads(state.read_text() or "{}").get("rows_done", 0) >= 1500:
            break
        time.sleep(0.01)
    run.send_signal(signal.SIGKILL)
    run.wait()
    assert run.returncode == -signal.SIGKILL, "finished before it could be killed"
    assert not (tmp_path / "out.npy").exists()
    done = json.loads(state.read_text())["rows_done"]
    assert 0 < done < 30000
    again = subprocess.run([*args, "--output", str(tmp_path / "out.npy")], env=env, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    assert f"resuming out.npy at line {done + 1:,} of 30,000" in again.stderr
    assert (tmp_path / "out.npy").read_bytes() == (tmp_path / "whole.npy").read_bytes()


def test_resuming_with_other_settings_is_refused_unless_restarted(model, tmp_path, monkeypatch):
    corpus_file(tmp_path / "in.txt", 300)
    monkeypatch.setattr(corpus, "_encode_chunk", _interrupt_after(corpus._encode_chunk, 1))
    with pytest.raises(KeyboardInterrupt):
        encode_file(model, tmp_path / "in.txt", tmp_path / "out.npy", CorpusOptions(chunk_lines=100), progress=False)
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"interrupted run with other settings \(batch_size differ\).*--restart"):
        encode_file(
            model,
            tmp_path / "in.txt",
            tmp_path / "out.npy",
            CorpusOptions(chunk_lines=100, batch_size=8),
            progress=False,
        )
    written = encode_file(
        model,
        tmp_path / "in.txt",
        tmp_path / "out.npy",
        CorpusOptions(chunk_lines=100, batch_size=8),
        restart=True,
        progress=False,
    )
    assert written.resumed_at == 0 and written.rows == 300


def _interrupt_after(real, chunks):
    calls = []

    def encode_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) > chunks:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    return encode_chunk


def test_shards_joined_equal_one_process(model, tmp_path):
    lines = corpus_file(tmp_path / "in.txt", 1234)
    options = CorpusOptions(chunk_lines=100)
    single = encode_file(model, tmp_path / "in.txt", tmp_path / "one.npy", options, progress=False)
    assert single.rows == len(lines)
    written = [
        encode_file(model, tmp_path / "in.txt", tmp_path / "emb.npy", options, shard=(i, 3), progress=False)
        for i in (2, 0, 1)
    ]  # any order, any process
    assert sorted(w.rows for w in written) == [400, 400, 434] and not (tmp_path / "emb.npy").exists()
    assert join_parts(tmp_path / "emb.npy") == (1234, 32, np.dtype(np.float32))
    assert (tmp_path / "emb.npy").read_bytes() == (tmp_path / "one.npy").read_bytes()
    join_parts(tmp_path / "emb.npy", delete_parts=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.npy", "in.txt", "one.npy"]


def test_shard_ranges_are_whole_chunks_and_cover_every_line():
    for total, chunk, n in ((1234, 100, 3), (10, 100, 4), (0, 5, 2), (1000, 1, 7)):
        ranges = [shard_lines(total, chunk, i, n) for i in range(n)]
        assert sum(lines for _, lines in ranges) == total
        assert all(first % chunk == 0 or lines == 0 for first, lines in ranges)
        assert [first for first, _ in ranges] == sorted(first for first, _ in ranges)


@pytest.mark.slow
def test_torchrun_rank_and_world_size_pick_the_shard(model_dir, tmp_path, monkeypatch, capsys):
    corpus_file(tmp_path / "in.txt", 50)
    args = [
        "encode",
        "--model",
        str(model_dir),
        "--input",
        str(tmp_path / "in.txt"),
        "--output",
        str(tmp_path / "e.npy"),
        "--chunk-lines",
        "10",
        "--no-progress",
    ]
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        assert main(args) == 0
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    assert main(["encode-join", "--output", str(tmp_path / "e.npy")]) == 0
    assert main([*args[:6], str(tmp_path / "one.npy"), *args[7:]]) == 0
    assert (tmp_path / "e.npy").read_bytes() == (tmp_path / "one.npy").read_bytes()
    err = capsys.readouterr().err
    assert (
        "read 20 lines from" in err
        and "wrote 20 x 32 float32 embeddings to" in err
        and "e.part-00001-of-00002.npy" in err
    )
    assert "joined 50 x 32 float32 embeddings" in err


def test_join_refuses_missing_or_mismatched_shards(model, tmp_path):
    corpus_file(tmp_path / "in.txt", 100)
    with pytest.raises(ValueError, match="no shard manifests e.part-"):
        join_parts(tmp_path / "e.npy")
    encode_file(
        model, tmp_path / "in.txt", tmp_path / "e.npy", CorpusOptions(chunk_lines=10), shard=(0, 3), progress=False
    )
    encode_file(
        model,
        tmp_path / "in.txt",
        tmp_path / "e.npy",
        CorpusOptions(chunk_lines=10, batch_size=4),
        shard=(2, 3),
        progress=False,
    )
    with pytest.raises(ValueError, match=r"1 of 3 shards are missing \(e.part-00001-of-00003.npy\)"):
        join_parts(tmp_path / "e.npy")
    encode_file(
        model, tmp_path / "in.txt", tmp_path / "e.npy", CorpusOptions(chunk_lines=10), shard=(1, 3), progress=False
    )
    with pytest.raises(ValueError, match=r"shard 2/3 was encoded with other settings than shard 0 \(batch_size"):
        join_parts(tmp_path / "e.npy")
    encode_file(
        model, tmp_path / "in.txt", tmp_path / "e.npy", CorpusOptions(chunk_lines=10), shard=(2, 3), progress=False
    )
    part_path(tmp_path / "e.npy", 1, 3).unlink()
    with pytest.raises(ValueError, match="e.part-00001-of-00003.npy is missing"):
        join_parts(tmp_path / "e.npy")
    assert not (tmp_path / "e.npy").exists()


def test_encode_options_reach_every_row(model, tmp_path):
    lines = corpus_file(tmp_path / "in.txt", 60)
    options = CorpusOptions(prompt="query: ", normalize_embeddings=True, truncate_dim=16, batch_size=7)
    encode_file(model, tmp_path / "in.txt", tmp_path / "o.npy", options, progress=False)
    expected = model.encode(lines, prompt="query: ", normalize_embeddings=True, truncate_dim=16, batch_size=7)
    assert np.array_equal(np.load(tmp_path / "o.npy"), expected)


@pytest.mark.parametrize("precision", ["int8", "uint8", "binary", "ubinary"])
def test_output_precision_with_fixed_ranges(model, tmp_path, precision):
    lines = corpus_file(tmp_path / "in.txt", 250)
    floats = model.encode(lines)
    ranges = quantization_ranges(model.encode(corpus_file(tmp_path / "calibration.txt", 100, seed=1)))
    needs_ranges = precision.endswith("int8")
    options = CorpusOptions(precision=precision, ranges=ranges if needs_ranges else None)
    encode_file(model, tmp_path / "in.txt", tmp_path / "q.npy", options, progress=False)
    codes = np.load(tmp_path / "q.npy")
    expected = quantize_embeddings(floats, precision, ranges=ranges if needs_ranges else None)
    assert codes.dtype == expected.dtype and np.array_equal(codes, expected)
    if needs_ranges:
        with pytest.raises(ValueError, match=f"precision {precision} needs calibration ranges"):
            encode_file(
                model, tmp_path / "in.txt", tmp_path / "q.npy", CorpusOptions(precision=precision), progress=False
            )


def test_command_line_precision_calibration_and_truncation_count(model_dir, model, tmp_path, capsys):
    lines = corpus_file(tmp_path / "in.txt", 40) + [" ".join(["word"] * 40)]
    (tmp_path / "in.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    calibration = model.encode(lines)
    np.save(tmp_path / "cal.npy", calibration)
    args = [
        "encode",
        "--model",
        str(model_dir),
        "--input",
        str(tmp_path / "in.txt"),
        "--no-progress",
        "--max-seq-length",
        "16",
    ]
    assert (
        main(
            [
                *args,
                "--output",
                str(tmp_path / "q.npy"),
                "--precision",
                "uint8",
                "--calibration",
                str(tmp_path / "cal.npy"),
            ]
        )
        == 0
    )
    assert np.load(tmp_path / "q.npy").dtype == np.uint8
    err = capsys.readouterr().err
    assert "read 41 lines from" in err and "wrote 41 x 32 uint8 embeddings to" in err
    assert "1 line was longer than max_seq_length and was truncated" in err
    assert main([*args, "--output", str(tmp_path / "q.npy"), "--precision", "int8"]) == 2
    assert "precision int8 needs calibration ranges (--ranges or --calibration)" in capsys.readouterr().err
    np.save(tmp_path / "bad.npy", np.zeros((3, 32), np.float32))
    assert (
        main([*args, "--output", str(tmp_path / "q.npy"), "--precision", "int8", "--ranges", str(tmp_path / "bad.npy")])
        == 2
    )
    assert "expected a (2, D) array" in capsys.readouterr().err
    assert main([*args, "--output", str(tmp_path / "b.npy"), "--precision", "binary"]) == 0
    assert "wrote 41 x 4 int8 (binary) embeddings to" in capsys.readouterr().err
    assert main([*args, "--output", str(tmp_path / "q.npy"), "--shard", "3/2"]) == 2
    assert "shard must be i/n with 0 <= i < n, got 3/2" in capsys.readouterr().err


def test_non_utf8_input_is_one_line_naming_file_and_line(model_dir, tmp_path, capsys):
    (tmp_path / "in.txt").write_bytes(b"fine\nalso fine\ncaf\xe9 latin-1\n")
    code = main(
        ["encode", "--model", str(model_dir), "--input", str(tmp_path / "in.txt"), "--output", str(tmp_path / "o.npy")]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert f"{tmp_path / 'in.txt'}:3: not UTF-8 text (byte b'\\xe9' at column 4)" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]


def test_refuses_to_overwrite_the_input_or_a_file_that_is_not_npy(model, tmp_path):
    corpus_file(tmp_path / "in.txt", 5)
    with pytest.raises(ValueError, match="is the input file"):
        encode_file(model, tmp_path / "in.txt", tmp_path / "in.txt", progress=False)
    (tmp_path / "notes.npy").write_text("my notes", encoding="utf-8")
    with pytest.raises(ValueError, match="exists and is not a .npy file; not overwriting it"):
        encode_file(model, tmp_path / "in.txt", tmp_path / "notes.npy", progress=False)
    assert (tmp_path / "notes.npy").read_text(encoding="utf-8") == "my notes"
    with pytest.raises(FileNotFoundError, match="input file .*missing.txt does not exist"):
        encode_file(model, tmp_path / "missing.txt", tmp_path / "o.npy", progress=False)


def test_empty_input_and_empty_shards(model, tmp_path):
    (tmp_path / "in.txt").write_bytes(b"")
    encode_file(model, tmp_path / "in.txt", tmp_path / "o.npy", progress=False)
    assert np.load(tmp_path / "o.npy").shape == (0, 32)
    (tmp_path / "in.txt").write_text("one\ntwo\n", encoding="utf-8")
    for i in range(3):  # one chunk, three shards: two of them empty
        encode_file(model, tmp_path / "in.txt", tmp_path / "s.npy", shard=(i, 3), progress=False)
    join_parts(tmp_path / "s.npy")
    assert np.array_equal(np.load(tmp_path / "s.npy"), model.encode(["one", "two"]))


@pytest.mark.slow
@pytest.mark.subprocess
def test_stdin_is_spooled_beside_the_output(model_dir, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "minilm",
            "encode",
            "--model",
            str(model_dir),
            "--input",
            "-",
            "--output",
            str(tmp_path / "o.npy"),
        ],
        input="a cat\r\na dog\n",
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert np.load(tmp_path / "o.npy").shape == (2, 32)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.npy"]
    assert "encode 2/2 lines (100.0%)" in result.stderr and "lines/s" in result.stderr and "ETA" in result.stderr


def test_scan_counts_lines_and_finds_chunk_starts(tmp_path):
    (tmp_path / "in.txt").write_bytes(b"a\nbb\r\nccc\nd")
    count, starts, _ = scan_lines(tmp_path / "in.txt", 2)
    assert count == 4 and starts == [0, 6]


def test_progress_shows_rate_and_eta():
    clock = iter([0.0, 10.0, 10.0, 20.0, 20.0]).__next__
    out = io.StringIO()
    progress = Progress(1000, "lines", start=100, stream=out, interval=5, clock=clock)
    progress.update(300)  # 200 lines in 10 s
    progress.update(1000)
    lines = out.getvalue().splitlines()
    assert lines[0] == "encode 300/1,000 lines (30.0%)  20 lines/s  elapsed 0:10  ETA 0:35"
    assert lines[1] == "encode 1,000/1,000 lines (100.0%)  45 lines/s  elapsed 0:20  ETA 0:00"
