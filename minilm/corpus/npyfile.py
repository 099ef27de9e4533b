""".npy files written in place: the header ``np.save`` would write, read back without loading the data, and the
overwrite check the corpus encoder and the shard join share."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

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
