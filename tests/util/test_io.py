"""minilm.util.io: writes that never destroy what was there, and reads that name the file and line."""

import errno
import json
import os
import subprocess
import sys
import time

import pytest

from minilm.util import io


def listing(directory):
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def test_write_replaces_the_file_whole(tmp_path):
    target = tmp_path / "out.txt"
    io.write_text(target, "old\n")
    io.write_text(target, "new\n")
    assert target.read_text() == "new\n"
    assert listing(tmp_path) == ["out.txt"]


def test_an_error_while_writing_leaves_the_old_file(tmp_path):
    target = tmp_path / "out.bin"
    io.write_bytes(target, b"old")
    with pytest.raises(KeyboardInterrupt), io.replacing(target) as f:
        f.write(b"half of the new")
        raise KeyboardInterrupt
    assert target.read_bytes() == b"old"
    assert listing(tmp_path) == ["out.bin"]


def test_a_full_disk_is_reported_naming_the_file_and_the_old_file_survives(tmp_path, monkeypatch):
    target = tmp_path / "emb.npy"
    io.write_bytes(target, b"good")

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(io.os, "fsync", full)
    with pytest.raises(io.WriteError, match=rf"cannot write {target}: No space left on device; .* unchanged"):
        io.write_bytes(target, b"new but not on disk")
    assert target.read_bytes() == b"good"
    assert listing(tmp_path) == ["emb.npy"]


def test_writing_a_file_over_a_folder_is_refused(tmp_path):
    (tmp_path / "taken").mkdir()
    with pytest.raises(io.WriteError, match="cannot write .*taken"):
        io.write_bytes(tmp_path / "taken", b"x")
    assert listing(tmp_path) == ["taken"]


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_permissions_follow_the_umask(tmp_path, umask, file_mode, dir_mode):
    old = os.umask(umask)
    try:
        io.write_bytes(tmp_path / "f", b"x")
        with io.building(tmp_path / "d") as tmp:
            (tmp / "inside").write_bytes(b"y")
    finally:
        os.umask(old)
    assert (tmp_path / "f").stat().st_mode & 0o777 == file_mode
    assert (tmp_path / "d").stat().st_mode & 0o777 == dir_mode
    assert (tmp_path / "d" / "inside").stat().st_mode & 0o777 == file_mode


def test_a_folder_is_swapped_in_whole_and_a_failure_leaves_the_old_one(tmp_path):
    target = tmp_path / "model"
    with io.building(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError), io.building(target) as tmp:
        (tmp / "a").write_text("2")
        raise RuntimeError("failed half-way")
    assert listing(tmp_path) == ["model", "model/a"] and (target / "a").read_text() == "1"
    with io.building(target) as tmp:
        (tmp / "b").write_text("3")
    assert listing(tmp_path) == ["model", "model/b"]


def test_a_kill_after_the_swap_leaves_the_new_folder_in_place(tmp_path, monkeypatch):
    """The swap is one rename: killed right after it, before the old content is removed, the target is complete."""
    target = tmp_path / "model"
    with io.building(target) as tmp:
        (tmp / "a").write_text("old")

    def killed(path):
        raise KeyboardInterrupt

    monkeypatch.setattr(io, "remove_tree", killed)
    with pytest.raises(KeyboardInterrupt), io.building(target) as tmp:
        (tmp / "a").write_text("new")
    assert (target / "a").read_text() == "new"
    assert io.exchange is not None and io._SWAP is not None  # this machine swaps in one step (Linux renameat2)


def test_without_an_atomic_swap_two_renames_still_put_the_new_folder_in_place(tmp_path, monkeypatch):
    monkeypatch.setattr(io, "_SWAP", None)
    target = tmp_path / "model"
    for content in ("old", "new"):
        with io.building(target) as tmp:
            (tmp / "a").write_text(content)
    assert (target / "a").read_text() == "new" and listing(tmp_path) == ["model", "model/a"]


def test_removal_goes_through_a_temporary_name(tmp_path, monkeypatch):
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "x").write_text("x")
    seen = []
    real = io.shutil.rmtree
    monkeypatch.setattr(io.shutil, "rmtree", lambda p, **k: seen.append(p.name) or real(p, **k))
    io.remove_tree(tmp_path / "old")
    assert listing(tmp_path) == [] and seen[0].startswith(".old.minilm-tmp-")


def test_stale_temporaries_are_those_of_dead_processes(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    (tmp_path / f".final.minilm-tmp-{dead_pid}-0a0b0c0d").mkdir()
    (tmp_path / f".log.minilm-tmp-{os.getpid()}-01020304").write_text("mine, alive")
    (tmp_path / ".not-ours").write_text("user file")
    assert [p.name for p in io.stale_temporaries(tmp_path)] == [f".final.minilm-tmp-{dead_pid}-0a0b0c0d"]


def test_replacing_a_folder_refuses_files_and_foreign_folders(tmp_path, monkeypatch):
    allowed = {"config.json", "1_Pooling/config.json", "2_Normalize"}
    (tmp_path / "file").write_text("user data")
    with pytest.raises(FileExistsError, match="file exists and is not a folder"):
        io.check_replaceable(tmp_path / "file", allowed, False, "a model")
    (tmp_path / "mine" / "1_Pooling").mkdir(parents=True)
    (tmp_path / "mine" / "1_Pooling" / "config.json").write_text("{}")
    (tmp_path / "mine" / "2_Normalize").mkdir()
    io.check_replaceable(tmp_path / "mine", allowed, False, "a model")  # only what minilm writes: fine
    (tmp_path / "mine" / "1_Pooling" / "notes.txt").write_text("mine")
    (tmp_path / "mine" / "thesis").mkdir()
    with pytest.raises(FileExistsError, match=r"files minilm did not write \(1_Pooling/notes.txt, thesis/\)"):
        io.check_replaceable(tmp_path / "mine", allowed, False, "a model")
    io.check_replaceable(tmp_path / "mine", allowed, True, "a model")  # overwrite: the caller said so
    monkeypatch.chdir(tmp_path / "mine")
    for where in (".", "..", str(tmp_path / "mine")):
        with pytest.raises(FileExistsError, match="working directory"):
            io.check_replaceable(where, allowed, True, "a model")


@pytest.mark.parametrize(
    "text, lines",
    [
        ("a\nb\n", ["a", "b"]),
        ("a\r\nb", ["a", "b"]),
        ("", []),
        ("\n", [""]),
        ("a\n\n", ["a", ""]),
        (
            "form\ffeed\u2028line sep\x85nel\x1crecord\rcarriage\n",
            ["form\ffeed\u2028line sep\x85nel\x1crecord\rcarriage"],
        ),
    ],
)
def test_lines_split_on_newline_only(text, lines):
    assert io.split_lines(text) == lines


def test_non_utf8_names_file_line_and_column(tmp_path):
    path = tmp_path / "in.txt"
    path.write_bytes(b"fine\nstill fine\nbad \xff here\n")
    with pytest.raises(ValueError, match=rf"{path}:3: not UTF-8 text \(byte b'\\xff' at column 5\)"):
        io.read_text(path)
    path.write_bytes(b"\xef\xbb\xbfwith a BOM")
    assert io.read_text(path) == "with a BOM"


@pytest.mark.parametrize(
    "content, kind, message",
    [
        (b'{"a": 1,\n "b": }', dict, r":2: not valid JSON \(Expecting value at column 7\)"),
        (b"[1, 2]", dict, r"expected a JSON object \{...\}, found list"),
        (b'{"a": 1}', list, r"expected a JSON list \[...\], found dict"),
        (b'{"a": "\xff"}', dict, ":1: not UTF-8 text"),
        (b"", dict, "not valid JSON"),
    ],
)
def test_read_json_names_the_file(tmp_path, content, kind, message):
    path = tmp_path / "x.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        io.read_json(path, kind)


def test_json_lines_drop_a_torn_last_line_and_refuse_a_bad_middle_one(tmp_path):
    path = tmp_path / "log.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3, "lo')
    assert io.read_json_lines(path) == ([{"step": 1}, {"step": 2}], True)
    path.write_text('{"step": 1}\n{"step": 2}\n')
    assert io.read_json_lines(path) == ([{"step": 1}, {"step": 2}], False)
    path.write_text('{"step": 1}\nNaN\n{"step": 3}\n')
    with pytest.raises(ValueError, match=rf"{path}:2: not a JSON object"):
        io.read_json_lines(path)


def test_json_line_writes_nonfinite_numbers_as_null_with_the_reason():
    line = io.json_line({"step": 3, "loss": float("nan"), "eval": {"spearman": float("-inf"), "pearson": 0.5}})

    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    record = json.loads(line, parse_constant=refuse)
    assert record == {
        "step": 3,
        "loss": None,
        "eval": {"spearman": None, "pearson": 0.5},
        "nonfinite": {"loss": "nan", "eval.spearman": "-inf"},
    }


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_zombie_writers_temporaries_are_stale(tmp_path):
    """A killed sweep's workers are reparented to init; where init reaps late (some containers), they linger as
    zombies, which os.kill(pid, 0) still finds. They write nothing more, so their temporaries are leftovers: a rerun
    removes them (was: the sweep fault test's "temporaries left" at some kill points)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 30
    while io._zombie(child.pid) is False and time.monotonic() < deadline:  # exited, not yet reaped by us
        time.sleep(0.01)
    try:
        (tmp_path / f".checkpoints.minilm-tmp-{child.pid}-0a0b0c0d").mkdir()
        assert [p.name for p in io.stale_temporaries(tmp_path)] == [f".checkpoints.minilm-tmp-{child.pid}-0a0b0c0d"]
    finally:
        child.wait()
