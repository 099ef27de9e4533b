""".npy files written in place: the header ``np.save`` would write, read back without loading the data, and the
overwrite check the corpus encoder and the shard join share."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from minilm.util.io import Lock, lock, write_failed

NPY_MAGIC = b"\x93NUMPY"


def npy_header(rows: int, width: int, dtype: np.dtype) -> bytes:
    """The header ``np.save`` writes for a C-ordered (rows, width) array of ``dtype``."""
    buffer = io.BytesIO()
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": (rows, width)}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


def read_npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, data offset) of a .npy file, reading the header only."""
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}[version]
            shape, fortran, dtype = read(f)
        except (ValueError, KeyError) as e:
            raise ValueError(f"{path} is not a readable .npy file: {e}") from None
        if fortran:
            raise ValueError(f"{path}: a Fortran-ordered array cannot be joined")
        return shape, dtype, f.tell()


def check_overwritable(target: Path, input_path: Path | None = None) -> None:
    """Refuse to replace the input, or an existing file that is not a .npy (so not an earlier output)."""
    if input_path is not None and target.exists() and target.resolve() == input_path.resolve():
        raise ValueError(f"--output {target} is the input file")
    if target.is_dir():
        raise ValueError(f"--output {target} is a directory")
    if target.exists():
        with open(target, "rb") as f:
            if f.read(len(NPY_MAGIC)) != NPY_MAGIC:
                raise ValueError(f"--output {target} exists and is not a .npy file; not overwriting it")


def same_file(a: Path, b: Path) -> bool:
    """True if ``a`` and ``b`` name one file: the same path once symlinks are resolved, or one inode (a hard link)."""
    try:
        if os.path.exists(a) and os.path.exists(b):
            return os.path.samefile(a, b)
        return os.path.realpath(a) == os.path.realpath(b)
    except OSError:
        return False


def check_not_an_input(outputs: list[Path], inputs: dict[str, Path]) -> None:
    """Refuse an output that is one of the command's inputs (``inputs``: option -> path), symlinks and hard links
    seen through: writing it would replace what the command reads."""
    for output in outputs:
        for option, source in inputs.items():
            if source is not None and same_file(Path(output), Path(source)):
                raise ValueError(f"--output {output} is the {option} file {source}; choose another --output")


def lock_output(path: Path) -> Lock:
    """One writer per output: an flock on ``.NAME.lock`` beside ``path`` (removed on release), refused at once,
    naming the holder's pid, while another minilm process writes ``path``."""

    def busy(holder: str) -> ValueError:
        return ValueError(
            f"--output {path} is being written by another minilm process (pid {holder}); wait for it to end, or "
            "choose another --output"
        )

    try:
        return lock(path.with_name(f".{path.name}.lock"), busy, remove=True)
    except OSError as e:  # a read-only folder: named by the output asked for, not the lock file
        raise write_failed(path, e) from None
