"""One corpus over several processes: shard i of n encodes a contiguous run of whole chunks of lines into
``NAME.part-0000i-of-0000n.npy`` with a JSON manifest beside it (the settings it was encoded with), and
``join_parts`` checks the manifests (same settings, every shard present, lines contiguous) and concatenates the parts
in input order, block by block, into ``NAME.npy``."""

from __future__ import annotations

import hashlib
import os
import re
from contextlib import ExitStack
from pathlib import Path

import numpy as np

from minilm.corpus.npyfile import check_not_an_input, check_overwritable, lock_output, npy_header, read_npy_header
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


def find_manifests(output: Path) -> list[tuple[Path, int, int]]:
    """(manifest, shard, shards) of every ``NAME.part-i-of-n.json`` beside ``output``: names matched literally (an
    output named ``emb[1].npy`` is not a glob pattern)."""
    directory = output.parent
    pattern = re.compile(re.escape(output.stem) + r"\.part-(\d+)-of-(\d+)\.json")
    found = []
    for name in sorted(os.listdir(directory if str(directory) else ".")):
        match = pattern.fullmatch(name)
        if match:
            found.append((directory / name, int(match.group(1)), int(match.group(2))))
    return found


def join_parts(output: str | Path, delete_parts: bool = False) -> tuple[int, int, np.dtype]:
    """Concatenate the parts ``minilm encode --shard i/n --output OUTPUT`` wrote, in input order, into ``output``.
    Each part must be where its manifest says (its own name, shard and lines) and hash to what its manifest
    recorded; the output appears whole or not at all."""
    output = Path(output)
    manifests = find_manifests(output)
    if not manifests:
        raise ValueError(f"no shard manifests {output.stem}.part-*-of-*.json found in {output.parent or '.'}")
    found = {}
    for path, shard, shards in manifests:
        try:
            manifest = read_json(path)
            settings = manifest["settings"]
            place = (settings["shard"], settings["shards"])
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{path} is not a shard manifest: {e}") from None
        if place != (shard, shards):
            raise ValueError(
                f"{path} describes shard {place[0]}/{place[1]}, not the shard {shard}/{shards} its name says; "
                "the manifests were renamed or swapped: rerun the shards"
            )
        if manifest.get("part") != part_path(output, shard, shards).name or "part_sha256" not in manifest:
            raise ValueError(
                f"{path} does not name its part {part_path(output, shard, shards).name} with a hash (a manifest of "
                f"another output, or of an older minilm); rerun `minilm encode --shard {shard}/{shards} ...`"
            )
        found[place] = (path, settings, manifest["part_sha256"])
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
        manifest, settings, digest = found[(i, n)]
        part = part_path(output, i, n)
        if settings["first_line"] != next_line:
            raise ValueError(f"{manifest}: starts at line {settings['first_line']}, expected {next_line}")
        if not part.is_file():
            raise ValueError(f"{part} is missing (its manifest is there); rerun `minilm encode --shard {i}/{n} ...`")
        shape, part_dtype, offset = read_npy_header(part)
        if shape != (settings["lines"], width) or part_dtype != dtype:
            raise ValueError(
                f"{part}: holds {shape} {part_dtype}, its manifest says ({settings['lines']}, {width}) {dtype}"
            )
        size = settings["lines"] * width * dtype.itemsize
        if part.stat().st_size != offset + size:
            actual = part.stat().st_size
            raise ValueError(f"{part} is truncated or appended to: {actual} bytes, expected {offset + size}")
        parts.append((part, offset, size, digest))
        next_line += settings["lines"]
    if next_line != total:
        raise ValueError(f"{output}: the shards cover {next_line} of {total} lines")
    check_not_an_input([output], {f"part {i}": p for i, (p, *_) in enumerate(parts)})
    check_not_an_input([output], {f"manifest {i}": found[(i, n)][0] for i in range(n)})
    check_overwritable(output)
    with ExitStack() as held:
        held.enter_context(lock_output(output))
        for part, *_ in parts:  # a part its shard is rewriting right now is not joined
            held.enter_context(lock_output(part))
        with replacing(output) as sink:  # all of it or nothing; what was at output stays until the rename
            sink.write(npy_header(total, width, dtype))
            for part, offset, size, digest in parts:
                _copy_checked(part, offset, size, digest, sink)
        if delete_parts:
            for i in range(n):
                part_path(output, i, n).unlink()
                manifest_path(part_path(output, i, n)).unlink()
    return total, width, dtype


def _copy_checked(part: Path, offset: int, size: int, digest: str, sink) -> None:
    """Copy the ``size`` data bytes of ``part`` after its header into ``sink``, hashing the whole file on the way:
    a part whose bytes are not the ones its shard wrote (swapped with another, overwritten) is refused by name."""
    hashed = hashlib.sha256()
    with open(part, "rb") as source:
        hashed.update(source.read(offset))
        copied = _copy(source, sink, size, hashed)
    if copied != size:
        raise ValueError(f"{part} is truncated: {copied} of {size} data bytes")
    if hashed.hexdigest() != digest:
        raise ValueError(
            f"{part} is not the part its manifest describes (sha256 differs): swapped with another part or "
            f"overwritten since it was encoded; rerun its shard"
        )


def _copy(source, sink, size: int, hashed) -> int:
    copied = 0
    while copied < size:
        block = source.read(min(COPY_BLOCK, size - copied))
        if not block:
            break
        hashed.update(block)
        sink.write(block)
        copied += len(block)
    return copied


def shard_from_env() -> tuple[int, int] | None:
    """(RANK, WORLD_SIZE) when launched by torchrun with more than one process, else None."""
    world, rank = env_int("WORLD_SIZE", 1), env_int("RANK", 0)
    return (rank, world) if world > 1 else None


def env_int(name: str, default: int) -> int:
    """An integer environment variable (torchrun's), or an error naming the variable and its value."""
    text = os.environ.get(name)
    try:
        return default if text is None else int(text)
    except ValueError:
        raise ValueError(f"environment variable {name}={text!r} is not an integer (torchrun sets it)") from None


def parse_shard(text: str) -> tuple[int, int]:
    """ "i/n" -> (i, n)."""
    try:
        i, n = (int(part) for part in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard {text!r}: expected i/n, e.g. 0/4") from None
    check_shard(i, n)
    return i, n
