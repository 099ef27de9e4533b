"""One corpus over several processes: shard i of n encodes a contiguous run of whole chunks of lines into
``NAME.part-0000i-of-0000n.npy`` with a JSON manifest beside it (the settings it was encoded with), and
``join_parts`` checks the manifests (same settings, every shard present, lines contiguous) and concatenates the parts
in input order, block by block, into ``NAME.npy``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from minilm.corpus.npyfile import check_overwritable, npy_header, read_npy_header
from minilm.util.io import read_json, replacing

# Settings that differ between the shards of one corpus; everything else in a shard's settings must agree.
SHARD_KEYS = ("shard", "shards", "first_line", "lines")
COPY_BLOCK = 1 << 22  # bytes per read when joining parts


def part_path(output: Path, shard: int, shards: int) -> Path:
    return output.with_name(f"{output.stem}.part-{shard:05d}-of-{shards:05d}{output.suffix}")


def target_path(output: Path, shard: tuple[int, int]) -> Path:
    """Where shard (i, n) of ``output`` is written: its part file, or ``output`` itself for one process."""
    return part_path(output, *shard) if shard[1] > 1 else output


def manifest_path(part: Path) -> Path:
    return part.with_suffix(".json")


def shard_lines(total_lines: int, chunk_lines: int, shard: int, shards: int) -> tuple[int, int]:
    """(first line, number of lines) of shard ``shard`` of ``shards``: a contiguous run of whole chunks."""
    chunks = -(-total_lines // chunk_lines)
    lo, hi = shard * chunks // shards, (shard + 1) * chunks // shards
    first = min(lo * chunk_lines, total_lines)
    return first, min(hi * chunk_lines, total_lines) - first


def check_shard(shard: int, shards: int) -> None:
    if not (isinstance(shards, int) and isinstance(shard, int) and shards >= 1 and 0 <= shard < shards):
        raise ValueError(f"shard must be i/n with 0 <= i < n, got {shard}/{shards}")


def join_parts(output: str | Path, delete_parts: bool = False) -> tuple[int, int, np.dtype]:
    """Concatenate the parts ``minilm encode --shard i/n --output OUTPUT`` wrote, in input order, into ``output``."""
    output = Path(output)
    manifests = sorted(output.parent.glob(f"{output.stem}.part-*-of-*.json"))
    if not manifests:
        raise ValueError(f"no shard manifests {output.stem}.part-*-of-*.json found in {output.parent or '.'}")
    found = {}
    for path in manifests:
        try:
            settings = read_json(path)["settings"]
            found[(settings["shard"], settings["shards"])] = (path, settings)
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path} is not a shard manifest: {e}") from None
    counts = {shards for _, shards in found}
    if len(counts) != 1:
        raise ValueError(
            f"{output}: parts from runs with different shard counts {sorted(counts)}; remove the stale ones"
        )
    n = counts.pop()
    missing = [i for i in range(n) if (i, n) not in found]
    if missing:
        names = ", ".join(part_path(output, i, n).name for i in missing)
        raise ValueError(
            f"{output}: {len(missing)} of {n} shards are missing ({names}); run `minilm encode --shard "
            f"{missing[0]}/{n} ...` for each"
        )
    shared = [{k: v for k, v in found[(i, n)][1].items() if k not in SHARD_KEYS} for i in range(n)]
    for i in range(1, n):
        if shared[i] != shared[0]:
            changed = sorted(k for k in shared[0] if shared[i].get(k) != shared[0][k])
            raise ValueError(
                f"{output}: shard {i}/{n} was encoded with other settings than shard 0 ({', '.join(changed)} differ)"
            )
    width, dtype, total = shared[0]["width"], np.dtype(shared[0]["dtype"]), shared[0]["total_lines"]
    parts, next_line = [], 0
    for i in range(n):
        settings = found[(i, n)][1]
        part = part_path(output, i, n)
        if settings["first_line"] != next_line:
            raise ValueError(f"{found[(i, n)][0]}: starts at line {settings['first_line']}, expected {next_line}")
        if not part.is_file():
            raise ValueError(f"{part} is missing (its manifest is there); rerun `minilm encode --shard {i}/{n} ...`")
        shape, part_dtype, offset = read_npy_header(part)
        if shape != (settings["lines"], width) or part_dtype != dtype:
            raise ValueError(
                f"{part}: holds {shape} {part_dtype}, its manifest says ({settings['lines']}, {width}) {dtype}"
            )
        parts.append((part, offset, settings["lines"] * width * dtype.itemsize))
        next_line += settings["lines"]
    if next_line != total:
        raise ValueError(f"{output}: the shards cover {next_line} of {total} lines")
    check_overwritable(output)
    with replacing(output) as sink:  # all of it or nothing; what was at output stays until the rename
        sink.write(npy_header(total, width, dtype))
        for part, offset, size in parts:
            with open(part, "rb") as source:
                source.seek(offset)
                copied = _copy(source, sink, size)
            if copied != size:
                raise ValueError(f"{part} is truncated: {copied} of {size} data bytes")
    if delete_parts:
        for i in range(n):
            part_path(output, i, n).unlink()
            manifest_path(part_path(output, i, n)).unlink()
    return total, width, dtype


def _copy(source, sink, size: int) -> int:
    copied = 0
    while copied < size:
        block = source.read(min(COPY_BLOCK, size - copied))
        if not block:
            break
        sink.write(block)
        copied += len(block)
    return copied


def shard_from_env() -> tuple[int, int] | None:
    """(RANK, WORLD_SIZE) when launched by torchrun with more than one process, else None."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ.get("RANK", "0")), world) if world > 1 else None


def parse_shard(text: str) -> tuple[int, int]:
    """ "i/n" -> (i, n)."""
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected i/n, e.g. 0/4") from None
    check_shard(i, n)
    return i, n
