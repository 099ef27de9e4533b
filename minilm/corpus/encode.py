"""Encoding a corpus: a text file of any size, one input per line, into an (N, D) .npy file in bounded memory,
resumable, and spread over processes.

- Lines are split on "\\n" (a "\\r" before it is dropped) and on nothing else: form feeds, U+2028, NEL and lone "\\r"
  stay inside their line, so rows written = lines read. A UTF-8 byte-order mark at the very start is dropped. Input
  that is not UTF-8 is refused before any encoding, naming the file and line. A model whose embeddings are NaN or
  infinite is an error naming the line, not numbers written.
- Memory: the input is read ``chunk_lines`` lines at a time. A first pass counts the lines (and checks the UTF-8), so
  the .npy header can state the final row count; then each chunk's rows are written at their place in the file with
  plain writes (no memory map: mapped pages would count as the process's memory). Peak memory is one chunk's texts,
  tokens and embeddings, whatever the corpus size (benchmarks/README.md).
- Atomicity and resumption: rows go to ``.NAME.partial`` beside the output, and after every chunk (data flushed to
  disk first) the sidecar ``.NAME.partial.json`` records how many rows are done and the settings that produced them.
  A run that finds a sidecar with the same settings (input content, model weights, options, shard) continues
  after the last recorded chunk; the finished file is renamed into place. A run that fails before its first chunk
  is recorded (a full disk, a broken model) removes its partial files; what was at the output path is never touched
  until the rename. Chunks are fixed line ranges, and each is
  encoded alone (its own length-sorted batches), so a resumed run writes the same bytes as an uninterrupted one.
- Shards: ``shard=(i, n)`` encodes the i-th of n contiguous runs of whole chunks into ``NAME.part-0000i-of-0000n.npy``
  with a manifest beside it; ``join_parts`` checks the manifests (same settings, every shard, contiguous lines) and
  concatenates the parts in input order. Since the chunks are the same, the joined file is byte for byte the one a
  single process writes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import hashlib
import json
import os
import shutil
import sys
from contextlib import suppress
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from minilm.corpus.npyfile import check_not_an_input, check_overwritable, lock_output, npy_header
from minilm.corpus.shards import check_shard, manifest_path, shard_lines, target_path
from minilm.encoding.options import check_truncate_dim, resolve_prompt
from minilm.encoding.quantization import (
    check_precision,
    quantization_ranges,
    quantize_embeddings,
    quantized_dtype,
    quantized_width,
)
from minilm.loading.hub import sha256_of
from minilm.util.io import read_json, temp_path, write_failed, write_json
from minilm.util.progress import Progress

CHUNK_LINES = 4096


@dataclass
class CorpusOptions:
    """How each line is encoded: ``SentenceEncoder.encode``'s options that a file of embeddings needs."""

    batch_size: int = 32
    prompt: str | None = None
    prompt_name: str | None = None
    normalize_embeddings: bool = False
    truncate_dim: int | None = None
    precision: str = "float32"
    ranges: np.ndarray | None = None  # (2, D) int8 / uint8 calibration ranges (see minilm.encoding.quantization)
    quantized_model: bool = False
    chunk_lines: int = CHUNK_LINES


@dataclass
class Written:
    path: Path
    rows: int
    width: int
    dtype: str
    precision: str
    truncated: int  # lines longer than max_seq_length tokens, cut
    resumed_at: int  # row this run started from (0: from the start)


def partial_paths(target: Path) -> tuple[Path, Path]:
    """The file being written and its sidecar state, beside ``target``."""
    partial = target.with_name(f".{target.name}.partial")
    return partial, partial.with_name(partial.name + ".json")


# ----------------------------------------------------------------------------------------------- reading lines


def _decode(raw: bytes, path: Path | str, line: int) -> str:
    if raw.endswith(b"\r\n"):
        raw = raw[:-2]
    elif raw.endswith(b"\n"):
        raw = raw[:-1]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"{path}:{line}: not UTF-8 text (byte {raw[e.start : e.start + 1]!r} at column "
            f"{e.start + 1}); save the file as UTF-8"
        ) from None
    return text[1:] if line == 1 and text.startswith("\ufeff") else text


def scan_lines(path: Path, chunk_lines: int, name: str | None = None) -> tuple[int, list[int], str]:
    """(number of lines, byte offset where every chunk of ``chunk_lines`` lines starts, sha256 of the file); every
    line checked to be UTF-8 (errors name ``name``, default the path). Iterating a binary file splits on b"\\n" only."""
    count, position, starts, digest = 0, 0, [], hashlib.sha256()
    with open(path, "rb") as f:
        for raw in f:
            if count % chunk_lines == 0:
                starts.append(position)
            count += 1
            _decode(raw, name or path, count)
            digest.update(raw)
            position += len(raw)
    return count, starts, digest.hexdigest()


def read_text_lines(path: Path) -> list[str]:
    """Every line of a (small) file, split and decoded as ``encode_file`` does."""
    with open(path, "rb") as f:
        return [_decode(raw, path, line) for line, raw in enumerate(f, 1)]


def read_lines(f, first_line: int, n: int, path: Path) -> list[str]:
    """The next ``n`` lines of ``f`` (positioned at line ``first_line``, 0-based), line endings removed."""
    texts = []
    for i in range(n):
        raw = f.readline()
        if not raw:
            raise ValueError(f"{path} ended at line {first_line + i}; it changed while being encoded")
        texts.append(_decode(raw, path, first_line + i + 1))
    return texts


# ----------------------------------------------------------------------------------------------- encoding


def model_fingerprint(model) -> str:
    """sha256 of everything about the model that changes an embedding: weights, tokenizer, pooling, max_seq_length."""
    digest = hashlib.sha256()
    for name, tensor in model.bert.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    for name, content in sorted(model.tokenizer.files.items()):
        digest.update(name.encode() + content)
    digest.update(json.dumps([model.pooling, model.normalize, model.max_seq_length]).encode())
    return digest.hexdigest()


def encode_file(
    model,
    input_path: str | Path,
    output: str | Path,
    options: CorpusOptions | None = None,
    shard: tuple[int, int] = (0, 1),
    restart: bool = False,
    progress: bool = True,
    log=lambda message: print(message, file=sys.stderr),
    inputs: dict[str, Path] | None = None,
) -> Written:
    """Encode every line of ``input_path`` ("-" reads stdin) into ``output`` (.npy), or into its part ``shard``
    (i, n) when n > 1. Resumes an interrupted run with the same settings unless ``restart``. ``inputs`` names the
    command's other input files (option -> path, e.g. the calibration file), which the output may not be."""
    options = options or CorpusOptions()
    output = Path(output)
    i, n = shard
    check_shard(i, n)
    target = target_path(output, shard)
    read = {"input": Path(input_path)} if str(input_path) != "-" else {}
    check_not_an_input(written_paths(target, n), {**read, **(inputs or {})})
    target.parent.mkdir(parents=True, exist_ok=True)
    with lock_output(target):  # before anything beside the output is touched: a second writer changes nothing
        spool, name = None, str(input_path)
        if name == "-":  # stdin cannot be read twice: spooled to disk beside the output, never resumed
            if n > 1:
                raise ValueError("--input - (stdin) cannot be sharded; give a file")
            spool, name = temp_path(target), "<stdin>"
            try:
                with open(spool, "wb") as f:
                    shutil.copyfileobj(sys.stdin.buffer, f)
            except OSError as e:
                spool.unlink(missing_ok=True)
                raise write_failed(target, e) from None
            input_path, restart = spool, True
        try:
            return _encode_file(model, Path(input_path), name, target, options, i, n, restart, progress, log)
        finally:
            if spool is not None:
                spool.unlink(missing_ok=True)


def written_paths(target: Path, shards: int) -> list[Path]:
    """Every path an encode into ``target`` writes: the output, its partial file and state, a shard's manifest."""
    partial, state = partial_paths(target)
    return [target, partial, state, *([manifest_path(target)] if shards > 1 else [])]


def _settings(
    model,
    input_sha256: str,
    options: CorpusOptions,
    i: int,
    n: int,
    first: int,
    lines: int,
    total: int,
    width: int,
    dtype: np.dtype,
) -> dict:
    """What the rows depend on: a resumed run and the shards of one corpus must agree on all of it (but the shard)."""
    ranges = (
        None
        if options.ranges is None
        else hashlib.sha256(np.ascontiguousarray(options.ranges, dtype=np.float32).tobytes()).hexdigest()
    )
    return {
        "input_sha256": input_sha256,
        "total_lines": total,
        "model": model_fingerprint(model),
        "prompt": options.prompt,
        "batch_size": options.batch_size,
        "normalize_embeddings": options.normalize_embeddings,
        "truncate_dim": options.truncate_dim,
        "precision": options.precision,
        "ranges_sha256": ranges,
        "quantized_model": options.quantized_model,
        "chunk_lines": options.chunk_lines,
        "dtype": np.dtype(dtype).str,
        "width": width,
        "shard": i,
        "shards": n,
        "first_line": first,
        "lines": lines,
    }


def _check_options(model, options: CorpusOptions) -> tuple[CorpusOptions, int, np.dtype]:
    """(options with the model's truncate_dim and the prompt text filled in, output width, dtype), checked before
    anything is read. The prompt is resolved here once ("" for none, which encode takes as no prompt at all)."""
    check_precision(options.precision)
    truncate_dim = model.truncate_dim if options.truncate_dim is None else check_truncate_dim(options.truncate_dim)
    prompt = resolve_prompt(model.prompts, model.default_prompt_name, options.prompt, options.prompt_name) or ""
    options = replace(options, truncate_dim=truncate_dim, prompt=prompt, prompt_name=None)
    if isinstance(options.chunk_lines, bool) or not isinstance(options.chunk_lines, int) or options.chunk_lines < 1:
        raise ValueError(f"chunk_lines must be a positive integer, got {options.chunk_lines!r}")
    dim = model.embedding_dim if truncate_dim is None else min(model.embedding_dim, truncate_dim)
    if options.precision in ("int8", "uint8"):
        if options.ranges is None:
            raise ValueError(
                f"precision {options.precision} needs calibration ranges (--ranges or --calibration): "
                "ranges from the corpus itself would need every embedding in memory at once"
            )
        ranges = np.asarray(options.ranges)
        if ranges.shape != (2, dim):
            raise ValueError(f"ranges must have shape (2, {dim}) for {dim}-dimensional embeddings, got {ranges.shape}")
    return options, quantized_width(dim, options.precision), quantized_dtype(options.precision)


def _encode_file(
    model,
    path: Path,
    name: str,
    target: Path,
    options: CorpusOptions,
    i: int,
    n: int,
    restart: bool,
    show_progress: bool,
    log,
) -> Written:
    check_input_file(path)
    check_overwritable(target, path)
    options, width, dtype = _check_options(model, options)
    total, chunk_starts, input_sha256 = scan_lines(path, options.chunk_lines, name)
    first, lines = shard_lines(total, options.chunk_lines, i, n)
    settings = _settings(model, input_sha256, options, i, n, first, lines, total, width, dtype)
    partial, state_path = partial_paths(target)
    header = npy_header(lines, width, dtype)
    row_bytes = width * np.dtype(dtype).itemsize

    done, truncated = _resume_point(partial, state_path, settings, len(header) + lines * row_bytes, restart, log)
    resumed_at = done
    try:
        if done == 0:
            with open(partial, "wb") as f:  # header now, rows filled in chunk by chunk (a sparse file until then)
                f.write(header)
                f.truncate(len(header) + lines * row_bytes)
            write_json(state_path, {"settings": settings, "rows_done": 0, "truncated": 0})
        elif done < lines:
            log(f"resuming {target.name} at line {first + done + 1:,} of {total:,} (rows {done:,} of {lines:,} done)")
        label = f"encode shard {i}/{n}" if n > 1 else "encode"
        progress = Progress(lines, "lines", label, start=done) if show_progress else None
        with open(path, "rb") as source, open(partial, "r+b") as sink:
            while done < lines:
                line = first + done
                count = min(options.chunk_lines, lines - done)
                source.seek(chunk_starts[line // options.chunk_lines])
                texts = read_lines(source, line, count, name)
                cut: list[int] = []
                rows = _encode_chunk(model, texts, options, cut, first_line=line + 1)
                sink.seek(len(header) + done * row_bytes)
                sink.write(rows.tobytes())
                sink.flush()
                os.fsync(sink.fileno())  # the rows are on disk before the state says so
                done, truncated = done + count, truncated + len(cut)
                release_freed_memory()
                write_json(state_path, {"settings": settings, "rows_done": done, "truncated": truncated})
                if progress:
                    progress.update(done)
        if progress:
            progress.close()
        if n > 1:
            # The part's hash and name: encode-join refuses a part swapped with another, or overwritten in place.
            manifest = {"input": str(path.resolve()), "part": target.name, "part_sha256": sha256_of(partial)}
            write_json(manifest_path(target), {**manifest, "settings": settings})
        os.replace(partial, target)
    except Exception as e:
        if done == 0:  # nothing worth resuming: leave no trace
            for leftover in (partial, state_path):
                with suppress(OSError):
                    leftover.unlink()
        else:
            log(f"{done:,} of {lines:,} rows are kept in {partial}; the same command resumes there")
        if isinstance(e, OSError):
            raise write_failed(target, e) from None
        raise
    state_path.unlink()
    return Written(target, lines, width, np.dtype(dtype).name, options.precision, truncated, resumed_at)


def check_input_file(path: Path, option: str = "input file") -> None:
    """The input must be a regular file: it is read twice (count, then encode), which a FIFO or a device cannot be."""
    if path.is_dir():
        raise IsADirectoryError(f"{option} {path} is a directory; give a text file, one input per line")
    if not path.exists():
        raise FileNotFoundError(f"{option} {path} does not exist")
    if not path.is_file():
        raise ValueError(f"{option} {path} is not a regular file; give a text file (or '-' for stdin)")


def _resume_point(partial: Path, state_path: Path, settings: dict, size: int, restart: bool, log) -> tuple[int, int]:
    """(rows already done, lines truncated so far) of an interrupted run with these settings, else (0, 0)."""
    if not state_path.is_file():
        return 0, 0
    try:
        state = read_json(state_path)
        saved, done, truncated = state["settings"], int(state["rows_done"]), int(state["truncated"])
    except (ValueError, KeyError, TypeError):
        log(f"{state_path} is unreadable; starting over")
        return 0, 0
    if restart:
        return 0, 0
    if saved != settings:
        changed = sorted(key for key in set(saved) | set(settings) if saved.get(key) != settings.get(key))
        raise ValueError(
            f"{partial} is an interrupted run with other settings ({', '.join(changed)} differ); rerun "
            "with the same settings to resume it, or pass --restart to start over"
        )
    if not partial.is_file() or partial.stat().st_size != size:
        log(f"{partial} is missing or the wrong size; starting over")
        return 0, 0
    return done, truncated


def _encode_chunk(model, texts: list[str], options: CorpusOptions, cut: list[int], first_line: int = 1) -> np.ndarray:
    emb = model.encode(
        texts,
        prompt=options.prompt,
        batch_size=options.batch_size,
        show_progress_bar=False,
        normalize_embeddings=options.normalize_embeddings,
        truncate_dim=options.truncate_dim,
        quantized_model=options.quantized_model,
        truncated=cut,
    )
    check_finite_rows(emb, "line", first_line)
    if options.precision != "float32":
        emb = quantize_embeddings(emb, options.precision, ranges=options.ranges)
    return np.ascontiguousarray(emb)


def check_finite_rows(embeddings: np.ndarray, what: str, first: int = 1, model: str = "the model") -> None:
    """A model whose embeddings are NaN or infinite (its weights overflow) is an error, not numbers to write."""
    bad = np.flatnonzero(~np.isfinite(embeddings).all(axis=-1))
    if len(bad):
        raise ValueError(
            f"{model} gives non-finite embeddings for {what} {bad[0] + first}"
            f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}; its weights are broken"
        )


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim, or None on other C libraries."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def release_freed_memory() -> None:
    """Hand memory freed by the last chunk back to the system. glibc keeps freed blocks in its per-thread arenas,
    which fragment as chunk after chunk allocates and frees texts, tokens and activations of varying sizes; the
    resident size then creeps up over the first few dozen chunks (benchmarks/README.md)."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def ranges_from_file(path: str | Path, kind: str) -> np.ndarray:
    """(2, D) ranges from a .npy of ranges (``kind`` "ranges") or of calibration embeddings ("calibration")."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"--{kind} {path}: not a readable .npy file ({e})") from None
    if kind == "calibration":
        return quantization_ranges(array)
    if array.ndim != 2 or array.shape[0] != 2:
        raise ValueError(f"--ranges {path}: expected a (2, D) array of per-dimension min and max, got {array.shape}")
    return array


def describe(written: Written, source: str) -> str:
    """The one-line summary ``minilm encode`` prints: rows written = lines read, always."""
    kind = written.dtype if written.precision == written.dtype else f"{written.dtype} ({written.precision})"
    source = "stdin" if source == "-" else source
    text = (
        f"read {written.rows:,} lines from {source}, wrote {written.rows:,} x {written.width} {kind} embeddings "
        f"to {written.path}"
    )
    if written.truncated:
        text += (
            f"; {written.truncated:,} lines were longer than max_seq_length and were truncated"
            if written.truncated > 1
            else "; 1 line was longer than max_seq_length and was truncated"
        )
    return text
