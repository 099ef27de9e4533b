"""A model folder read whole, checked before anything is allocated, and from one save only.

Checked first (``read_model_folder``): config.json's values and sizes (bounds in weights.MAX_SIZES), the safetensors
header against them (layer count, shapes, floating dtypes), the tokenizer's ids against the vocabulary, every file a
regular file of bounded size; only then are the tensors read, and the model is built by the caller.

One save only: ``SentenceEncoder.save`` builds a new folder beside the old one and swaps the two in one rename, so a
folder at a path never changes in place, it is replaced. A reader that opens config.json before a swap and
model.safetensors after it would mix two models, so the folder's identity (device, inode, change time) is taken
before and after the read: if it changed (or the read failed while it changed) the whole read starts again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch

from minilm.loading.layout import ModelSettings, read_model_settings, read_modules, read_st_config, tokenizer_max_length
from minilm.loading.tokenizer import WordPieceTokenizer
from minilm.loading.weights import CheckpointError, check_weights_header, read_config, read_safetensors
from minilm.model import BertConfig

ATTEMPTS = 50  # reads of a folder replaced during each of them before giving up: a saver would have to save nonstop
T = TypeVar("T")


@dataclass
class ModelFolder:
    """Everything ``from_pretrained`` builds a model from, read from one save of the folder."""

    directory: Path
    config: BertConfig
    pooling: str
    normalize: bool
    settings: ModelSettings
    tokenizer: WordPieceTokenizer
    state: dict[str, torch.Tensor]  # the checkpoint's tensors, as stored (weights.load_state copies them in)


def read_model_folder(
    directory: Path,
    prompts: dict | None = None,
    default_prompt_name: str | None = None,
    truncate_dim: int | None = None,
) -> ModelFolder:
    """Read and check the model folder ``directory`` (see the module docstring); errors name the file and key."""
    directory = Path(directory)
    return consistently(directory, lambda: _read(directory, prompts, default_prompt_name, truncate_dim))


def _read(directory: Path, prompts, default_prompt_name, truncate_dim) -> ModelFolder:
    config_path = directory / "config.json"
    if not os.path.lexists(config_path):
        raise CheckpointError(f"{directory} has no config.json; it is not a BERT checkpoint")
    config = read_config(config_path)  # values and bounds
    check_weights_header(directory, config)  # shapes and dtypes, from the header alone
    pooling, normalize = read_modules(directory)
    settings = read_model_settings(directory, prompts, default_prompt_name, truncate_dim)
    max_seq_length, lower = read_st_config(directory / "sentence_bert_config.json")
    max_seq_length = max_seq_length or tokenizer_max_length(directory, config)
    try:
        tokenizer = WordPieceTokenizer.from_dir(directory, max_seq_length, lower)
        tokenizer.check_ids(config.vocab_size, directory, config_path)
    except ValueError as e:
        raise CheckpointError(f"{directory}: {e}") from None
    state = read_safetensors(directory)
    return ModelFolder(directory, config, pooling, normalize, settings, tokenizer, state)


def generation(directory: Path) -> tuple | None:
    """Which folder is at ``directory`` now: a swap puts another inode there (with its own change time, should the
    file system reuse the number); None while nothing is there (between the two renames of a non-atomic swap)."""
    try:
        info = os.stat(directory)
    except FileNotFoundError:
        return None
    return info.st_dev, info.st_ino, info.st_ctime_ns


def consistently(directory: Path, read: Callable[[], T], attempts: int = ATTEMPTS) -> T:
    """``read()``, repeated until the folder at ``directory`` was the same one before and after it. An error raised
    while the folder was being replaced is a torn read, retried; one raised from a folder that stayed put is real."""
    for attempt in range(attempts):
        before = generation(directory)
        try:
            result = read()
        except (OSError, ValueError):
            if generation(directory) == before:
                raise
        else:
            if before is not None and generation(directory) == before:
                return result
        time.sleep(min(0.001 * 2**attempt, 0.1))  # let the saver finish its swap and removal
    raise CheckpointError(
        f"{directory} was replaced during each of {attempts} attempts to read it; another process keeps saving "
        "into it: load it once that save is done"
    )
