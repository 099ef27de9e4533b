"""A checkpoint checked before anything is allocated: the safetensors header (8-byte length, then JSON naming each
tensor's dtype, shape and byte range) read without loading a tensor, and compared with the sizes config.json gives.

A hostile or mismatched folder (a million layers, a vocabulary of 10^12, weights stored as integers, a header that
claims more bytes than the file has) is refused naming config.json's key or the tensor, in the memory of the header
alone: the model is built only once its every shape is known to be the file's.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from minilm.model import BertConfig
from minilm.util.io import open_regular

HEADER_LIMIT = 100 << 20  # safetensors' own limit on the JSON header
FLOATING = {"F16", "BF16", "F32", "F64"}  # what a weight may be stored as: anything else would be cast silently


class HeaderError(ValueError):
    """A safetensors header that does not describe its file, or does not fit the config; the message names both."""


def read_header(path: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """name -> (dtype, shape) of every tensor in the safetensors file ``path``, from its header alone; each byte
    range is checked to lie in the file and to hold exactly its shape's bytes."""
    fd, size = open_regular(path, limit=None)
    with os.fdopen(fd, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise HeaderError(f"{path} is not a safetensors file: {size} bytes, shorter than its header length")
        (length,) = struct.unpack("<Q", prefix)
        if length > min(HEADER_LIMIT, size - 8):
            raise HeaderError(f"{path} is not a readable safetensors file: its header claims {length:,} bytes")
        raw = f.read(length)
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise HeaderError(f"{path} is not a readable safetensors file: its header is not JSON") from None
    if not isinstance(header, dict):
        raise HeaderError(f"{path} is not a readable safetensors file: its header is not a JSON object")
    data_bytes = size - 8 - length
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = entry["dtype"], tuple(entry["shape"]), entry["data_offsets"]
            ok = all(isinstance(v, int) and v >= 0 for v in (*shape, start, end)) and isinstance(dtype, str)
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise HeaderError(f"{path}: the header entry of tensor {name} is malformed: {entry!r:.100}")
        count = 1
        for n in shape:
            count *= n
        if not start <= end <= data_bytes or (dtype in ITEM_BYTES and end - start != count * ITEM_BYTES[dtype]):
            raise HeaderError(
                f"{path}: tensor {name} claims bytes {start}-{end} for shape {list(shape)} {dtype}, but the file "
                f"holds {data_bytes:,} data bytes (truncated or corrupted?)"
            )
        tensors[name] = (dtype, shape)
    return tensors


ITEM_BYTES = {"F16": 2, "BF16": 2, "F32": 4, "F64": 8, "I8": 1, "U8": 1, "I16": 2, "I32": 4, "I64": 8, "BOOL": 1}


def expected_shapes(config: BertConfig, table: dict[str, str]) -> dict[str, tuple[tuple[int, ...], tuple[str, ...]]]:
    """Checkpoint name -> (the shape the config gives it, the config keys that shape comes from), for every name of
    ``table`` (the weights' key table), computed from the config alone."""
    H, inner = config.hidden_size, config.intermediate_size
    sizes = {
        "word_embeddings.weight": ((config.vocab_size, H), ("vocab_size", "hidden_size")),
        "position_embeddings.weight": ((config.max_position_embeddings, H), ("max_position_embeddings", "hidden_size")),
        "token_type_embeddings.weight": ((config.type_vocab_size, H), ("type_vocab_size", "hidden_size")),
        "intermediate.dense.weight": ((inner, H), ("intermediate_size", "hidden_size")),
        "intermediate.dense.bias": ((inner,), ("intermediate_size",)),
        "output.dense.weight": ((H, inner), ("hidden_size", "intermediate_size")),
    }
    out = {}
    for name in table:
        match = next(
            (key for key in sizes if name.endswith(key) and not name.endswith("attention.output.dense.weight")), None
        )
        if match:
            out[name] = sizes[match]
        elif name.endswith(".weight") and "LayerNorm" not in name:  # the attention projections: (H, H)
            out[name] = ((H, H), ("hidden_size",))
        else:  # biases and LayerNorm: (H,)
            out[name] = ((H,), ("hidden_size",))
    return out


def check_header(
    weights: Path, config_path: Path, config: BertConfig, table: dict[str, str], ignored: tuple[str, ...] = ()
) -> None:
    """Refuse, before the model is built, a checkpoint whose tensors are not the ones ``config`` describes: the layer
    count, every shape (naming config.json's keys), every dtype floating (naming the tensor), every key of ``table``
    present and none beyond it (but ``ignored``): a config cannot make the model allocate what the file lacks."""
    tensors = {name.removeprefix("bert."): value for name, value in read_header(weights).items()}
    for name, (dtype, _) in tensors.items():
        if dtype not in FLOATING and name != "embeddings.position_ids":  # the position-id buffer is integer
            raise HeaderError(
                f"{weights}: tensor {name} is stored as {dtype}; weights must be floating point "
                f"({', '.join(sorted(FLOATING))}), and minilm does not cast them silently"
            )
    layers = {int(n.split(".")[2]) for n in tensors if n.startswith("encoder.layer.") and n.split(".")[2].isdigit()}
    if config.num_hidden_layers > max(layers, default=-1) + 1:  # layers the file cannot hold: never built
        held = f"layers 0-{max(layers)} at most" if layers else "no encoder layers"
        raise HeaderError(f"{config_path}: num_hidden_layers is {config.num_hidden_layers}, but {weights} holds {held}")
    for name, (shape, keys) in expected_shapes(config, table).items():
        if name in tensors and tensors[name][1] != shape:
            said = ", ".join(f"{key} {getattr(config, key)}" for key in keys)
            raise HeaderError(
                f"{config_path}: {said} do not fit {weights}: {name}: checkpoint {tensors[name][1]}, the config "
                f"makes it {shape}"
            )
    missing = [name for name in table if name not in tensors]
    unexpected = [name for name in tensors if name not in table and name not in ignored]
    problems = [
        f"{what}: {', '.join(names)}"
        for what, names in (("missing keys", missing), ("unexpected keys", unexpected))
        if names
    ]
    if problems:
        raise HeaderError(f"{weights} does not fit the config {config_path}:\n  " + "\n  ".join(problems))
