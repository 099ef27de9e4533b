"""Checkpoint <-> model: the config file, and the weights through one explicit key table.

Every checkpoint key is either mapped by the table (and used exactly once, with its shape checked) or listed as
ignorable; anything else is reported by name. Only safetensors is read: a pickle checkpoint can run arbitrary code
when loaded, so a directory that has only ``pytorch_model.bin`` is refused.
"""

from __future__ import annotations

import math
import os
from dataclasses import fields
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from minilm.loading.header import HeaderError, check_header
from minilm.model import BertConfig, BertModel
from minilm.util.io import open_regular, read_json

WEIGHTS_NAME = "model.safetensors"
PICKLE_NAMES = ("pytorch_model.bin", "pytorch_model.bin.index.json")

# Checkpoint keys that carry nothing the encoder uses: the position-id buffer (recomputed) and the unused pooler.
IGNORED = ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias")
# Of those, what a save writes back as it was read (CARRIED_ATTR on the BertModel): transformers' BertModel has a
# pooler, and a folder without one makes it report the pooler "newly initialized" when sentence-transformers loads it.
CARRIED = ("pooler.dense.weight", "pooler.dense.bias")
CARRIED_ATTR = "carried_tensors"
# Sane bounds on config.json's sizes, checked before anything is built from them: far beyond any BERT (the largest
# have 48 layers, hidden 4096 and a 250k vocabulary), far below what would exhaust memory being allocated.
MAX_SIZES = {
    "vocab_size": 1 << 22,
    "hidden_size": 1 << 14,
    "num_hidden_layers": 512,
    "num_attention_heads": 1 << 10,
    "intermediate_size": 1 << 16,
    "max_position_embeddings": 1 << 17,
    "type_vocab_size": 1 << 10,
}


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file and the offending keys."""


def read_config(path: str | Path) -> BertConfig:
    """Read a transformers ``config.json``; keys we do not model are ignored, unsupported settings refused, a bad
    value named with its key (``check_config_json``) before BertConfig sees it."""
    raw = check_config_json(Path(path))
    model_type = raw.get("model_type", "bert")
    if model_type != "bert":
        raise ValueError(f"{path}: model_type {model_type!r} is not supported; minilm loads BERT checkpoints only")
    position_type = raw.get("position_embedding_type", "absolute")
    if position_type != "absolute":
        raise ValueError(f"{path}: position_embedding_type {position_type!r} is not supported (only 'absolute')")
    known = {f.name for f in fields(BertConfig)}
    config = BertConfig(**{k: v for k, v in raw.items() if k in known})
    config.validate(str(path))
    return config


def config_to_dict(config: BertConfig) -> dict:
    """The transformers ``config.json`` form, so sentence-transformers and BertModel can read what we save."""
    out = {"architectures": ["BertModel"], "model_type": "bert", "position_embedding_type": "absolute"}
    out.update({f.name: getattr(config, f.name) for f in fields(config)})
    return out


# config.json values minilm checks before building a BertConfig: key -> (type, allowed?, what is allowed).
CONFIG_VALUES = {
    **{key: (int, lambda v: v >= 1, ">= 1") for key in MAX_SIZES},
    "pad_token_id": (int, lambda v: v >= 0, ">= 0"),
    "layer_norm_eps": (float, lambda v: 0 < v < 1, "in (0, 1)"),
    "hidden_dropout_prob": (float, lambda v: 0 <= v < 1, "in [0, 1)"),
    "attention_probs_dropout_prob": (float, lambda v: 0 <= v < 1, "in [0, 1)"),
    "hidden_act": (str, lambda v: True, "a string"),
    "model_type": (str, lambda v: True, "a string"),
}


def check_config_json(path: Path) -> dict:
    """config.json as a dict, refused naming the file and key when it is not a JSON object or a value has the wrong
    type or range (a string where a number belongs, zero heads...): before any BertConfig is built from it."""
    raw = read_json(path, dict, CheckpointError)
    for key, (kind, allowed, described) in CONFIG_VALUES.items():
        if key not in raw or (key == "pad_token_id" and raw[key] is None):
            continue
        value = raw[key]
        numeric = kind in (int, float) and not isinstance(value, bool)
        if kind is float:
            ok = numeric and isinstance(value, (int, float)) and math.isfinite(value)
        else:
            ok = isinstance(value, kind) and (numeric or kind is str)
        if not ok:
            name = {int: "an integer", float: "a finite number", str: "a string"}[kind]
            raise CheckpointError(f"{path}: {key} must be {name}, got {type(value).__name__} {value!r}")
        if not allowed(value):
            raise CheckpointError(f"{path}: {key} must be {described}, got {value!r}")
        if key in MAX_SIZES and value > MAX_SIZES[key]:
            raise CheckpointError(
                f"{path}: {key} is {value:,}, beyond the {MAX_SIZES[key]:,} minilm builds (far beyond any BERT); "
                "refusing to allocate a model of that size"
            )
    return raw


def key_table(config: BertConfig) -> dict[str, str]:
    """Hugging Face BERT name -> our parameter name, for every parameter of ``BertModel(config)``."""
    table = {
        "embeddings.word_embeddings.weight": "embeddings.word.weight",
        "embeddings.position_embeddings.weight": "embeddings.position.weight",
        "embeddings.token_type_embeddings.weight": "embeddings.token_type.weight",
        "embeddings.LayerNorm.weight": "embeddings.norm.weight",
        "embeddings.LayerNorm.bias": "embeddings.norm.bias",
    }
    per_layer = {
        "attention.self.query": "attention.query",
        "attention.self.key": "attention.key",
        "attention.self.value": "attention.value",
        "attention.output.dense": "attention.out",
        "attention.output.LayerNorm": "attention.norm",
        "intermediate.dense": "ffn.up",
        "output.dense": "ffn.down",
        "output.LayerNorm": "ffn.norm",
    }
    for i in range(config.num_hidden_layers):
        for theirs, ours in per_layer.items():
            for leaf in ("weight", "bias"):
                table[f"encoder.layer.{i}.{theirs}.{leaf}"] = f"layers.{i}.{ours}.{leaf}"
    return table


def weights_path(directory: Path) -> Path:
    """The folder's model.safetensors, or an error naming why there is none (a pickle-only checkpoint is refused)."""
    path = directory / WEIGHTS_NAME
    if not os.path.lexists(path):
        pickles = [name for name in PICKLE_NAMES if (directory / name).is_file()]
        if pickles:
            raise CheckpointError(
                f"{directory} has only a pickle checkpoint ({', '.join(pickles)}); minilm reads safetensors only, "
                f"because unpickling can execute arbitrary code. Convert it once with a trusted tool to {WEIGHTS_NAME}."
            )
        raise CheckpointError(f"{directory} has no {WEIGHTS_NAME}")
    return path


def check_weights_header(directory: Path, config: BertConfig) -> None:
    """The folder's model.safetensors fits ``config`` (layer count, shapes, floating dtypes), from its header alone:
    call it before ``BertModel(config)`` allocates anything."""
    try:
        check_header(weights_path(directory), directory / "config.json", config, key_table(config), IGNORED)
    except HeaderError as e:
        raise CheckpointError(str(e)) from None


def read_safetensors(directory: Path) -> dict[str, torch.Tensor]:
    path = weights_path(directory)
    os.close(open_regular(path)[0])  # a FIFO or a device is refused by name, never read
    try:
        return load_file(path)
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file (truncated or corrupted?): {e}") from None


def load_weights(model: BertModel, directory: str | Path) -> None:
    """Copy the checkpoint in ``directory`` into ``model``; every key accounted for, every shape checked."""
    directory = Path(directory)
    check_weights_header(directory, model.config)
    load_state(model, read_safetensors(directory), directory / WEIGHTS_NAME)


def load_state(model: BertModel, state: dict[str, torch.Tensor], path: Path) -> None:
    """Copy the tensors ``state`` read from ``path`` into ``model``; every key accounted for, every shape and dtype
    checked. The checkpoint's pooler (CARRIED) is kept on the model, for a save to write back."""
    table = key_table(model.config)
    ours = dict(model.named_parameters())
    assert set(table.values()) == set(ours), "key table out of step with BertModel"

    found: dict[str, torch.Tensor] = {}
    carried: dict[str, torch.Tensor] = {}
    unexpected, duplicated = [], []
    for key, tensor in state.items():
        name = key.removeprefix("bert.")
        if name in CARRIED:
            carried[name] = tensor
        if name in IGNORED:
            continue
        if name not in table:
            unexpected.append(key)
        elif name in found:
            duplicated.append(key)
        else:
            found[name] = tensor
    missing = [name for name in table if name not in found]
    wrong_shape = [
        f"{name}: checkpoint {tuple(found[name].shape)}, model {tuple(ours[table[name]].shape)}"
        for name in table
        if name in found and found[name].shape != ours[table[name]].shape
    ]
    not_floating = [f"{name} ({t.dtype})" for name, t in {**found, **carried}.items() if not t.is_floating_point()]
    problems = []
    if missing:
        problems.append("missing keys: " + ", ".join(missing))
    if unexpected:
        problems.append("unexpected keys: " + ", ".join(unexpected))
    if duplicated:
        problems.append("keys present both with and without the 'bert.' prefix: " + ", ".join(duplicated))
    if wrong_shape:
        problems.append("wrong shapes: " + "; ".join(wrong_shape))
    if not_floating:
        problems.append("weights that are not floating point: " + ", ".join(not_floating))
    if problems:
        raise CheckpointError(f"{path} does not fit the config:\n  " + "\n  ".join(problems))

    bad = nonfinite({**found, **carried})
    if bad:
        raise CheckpointError(f"{path}: {bad}; the checkpoint is damaged or came from a diverged run")
    with torch.no_grad():
        for name, tensor in found.items():
            ours[table[name]].copy_(tensor)
    setattr(model, CARRIED_ATTR, {name: t.detach().clone().float() for name, t in carried.items()})


def save_weights(model: BertModel, directory: str | Path) -> None:
    """Write the model under Hugging Face names, so transformers and sentence-transformers can read it. Weights that
    are not all finite are refused: a NaN model is never written."""
    ours = dict(model.named_parameters())
    state = {theirs: ours[name].detach().contiguous().cpu() for theirs, name in key_table(model.config).items()}
    state.update(carried_tensors(model))
    bad = nonfinite({ours_name: state[theirs] for theirs, ours_name in key_table(model.config).items()})
    if bad:
        raise ValueError(f"refusing to save to {directory}: {bad}")
    # Serialised here and written by us: safetensors' own save_file creates its file 0600, whatever the umask.
    (Path(directory) / WEIGHTS_NAME).write_bytes(save(state, metadata={"format": "pt"}))


def carried_tensors(model: BertModel) -> dict[str, torch.Tensor]:
    """The checkpoint tensors minilm does not use but writes back (the pooler), if the model was loaded with them and
    they still fit it."""
    H = model.config.hidden_size
    carried = getattr(model, CARRIED_ATTR, None) or {}
    fits = {"pooler.dense.weight": (H, H), "pooler.dense.bias": (H,)}
    return {name: t.contiguous().cpu() for name, t in carried.items() if tuple(t.shape) == fits.get(name)}


def nonfinite(tensors: dict[str, torch.Tensor]) -> str:
    """'' if every floating tensor is finite, else which one is not (the first, and how many values)."""
    bad = [(name, t) for name, t in tensors.items() if t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if not bad:
        return ""
    name, t = bad[0]
    count = int((~torch.isfinite(t)).sum())
    more = f" (and {len(bad) - 1} more tensors)" if len(bad) > 1 else ""
    return f"tensor {name} holds {count} NaN or infinite values{more}"
