"""The sentence-transformers folder layout, read and written: which modules a folder chains (modules.json), how it
pools (1_Pooling/config.json), how far it tokenises (sentence_bert_config.json, tokenizer_config.json) and its
model-level settings (config_sentence_transformers.json: prompts, default prompt, truncate_dim). ``write_layout``
writes the same files, which ``SentenceEncoder.save`` swaps into place."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from minilm import __version__
from minilm.encoding.similarity import SIMILARITY_FUNCTIONS
from minilm.loading.tokenizer import TOKENIZER_FILES
from minilm.loading.weights import WEIGHTS_NAME, CheckpointError, config_to_dict, save_weights
from minilm.model import POOLING_MODES, BertConfig
from minilm.util import io

ST_TRANSFORMER = "sentence_transformers.models.Transformer"
ST_POOLING = "sentence_transformers.models.Pooling"
ST_NORMALIZE = "sentence_transformers.models.Normalize"
ST_MODEL_TYPE = "SentenceTransformer"
# Legacy boolean pooling keys of 1_Pooling/config.json and the mode each one selects.
LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
# The prompts every SentenceTransformer starts with (empty until a model or the caller sets them); encode_query and
# encode_document pick these names.
DEFAULT_PROMPTS = {"query": "", "document": ""}


def read_json(path: Path, kind: type = dict) -> dict | list:
    return io.read_json(path, kind, CheckpointError)


def read_pooling_mode(path: Path) -> str:
    """The pooling mode in a 1_Pooling/config.json, legacy (``pooling_mode_mean_tokens``...) or new
    (``pooling_mode``)."""
    raw = read_json(path)
    if "pooling_mode" in raw:
        modes = raw["pooling_mode"]
        modes = [modes] if isinstance(modes, str) else modes if isinstance(modes, list) else [modes]
    else:
        modes = [mode for key, mode in LEGACY_POOLING_KEYS.items() if raw.get(key)]
    if len(modes) != 1 or modes[0] not in POOLING_MODES:
        raise CheckpointError(f"{path}: pooling mode {modes} is not supported; expected exactly one of {POOLING_MODES}")
    if raw.get("include_prompt", True) is not True:
        # Pooling that skips the prompt's tokens (INSTRUCTOR-style models) would give other embeddings here.
        raise CheckpointError(
            f"{path}: include_prompt = {raw['include_prompt']!r} is not supported; minilm pools the "
            "prompt's tokens with the text's"
        )
    return modes[0]


def read_modules(directory: Path) -> tuple[str, bool]:
    """(pooling mode, normalise?) from modules.json; a bare transformers checkpoint gets mean pooling, no Normalize."""
    modules_path = directory / "modules.json"
    if not os.path.lexists(modules_path):  # present but not a file (a FIFO, a folder): read, and refused by name
        return "mean", False
    modules = read_json(modules_path, list)
    pooling, normalize = None, False
    for i, module in enumerate(modules):
        if not (
            isinstance(module, dict) and isinstance(module.get("type"), str) and isinstance(module.get("path", ""), str)
        ):
            raise CheckpointError(
                f"{modules_path}: entry {i} must be an object with a string 'type' and 'path', found {module!r:.80}"
            )
        kind = module["type"].rsplit(".", 1)[-1]
        if kind == "Transformer":
            if module.get("path", ""):
                raise CheckpointError(f"{modules_path}: the transformer module must live at the top of the directory")
        elif kind == "Pooling":
            pooling = read_pooling_mode(directory / module.get("path", "") / "config.json")
        elif kind == "Normalize":
            normalize = True
        else:
            raise CheckpointError(f"{modules_path}: module type {module.get('type')!r} is not supported by minilm")
    if pooling is None:
        raise CheckpointError(f"{modules_path} lists no Pooling module")
    return pooling, normalize


def tokenizer_max_length(directory: Path, config: BertConfig) -> int:
    """Without a max_seq_length in sentence_bert_config.json: the tokenizer's model_max_length (where
    sentence-transformers 6 saves it), capped by the position table."""
    settings_path = directory / "tokenizer_config.json"
    settings = read_json(settings_path) if os.path.lexists(settings_path) else {}
    limit = settings.get("model_max_length", config.max_position_embeddings)
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not limit >= 1:
        raise CheckpointError(f"{settings_path}: model_max_length must be a positive number, got {limit!r}")
    return int(min(limit, config.max_position_embeddings))


def read_st_config(path: Path) -> tuple[int | None, bool]:
    """(max_seq_length or None, do_lower_case) from sentence_bert_config.json, each checked and named if wrong."""
    raw = read_json(path) if os.path.lexists(path) else {}
    length, lower = raw.get("max_seq_length"), raw.get("do_lower_case", False)
    if length is not None and (not isinstance(length, int) or isinstance(length, bool) or length < 1):
        raise CheckpointError(f"{path}: max_seq_length must be a positive integer, got {length!r}")
    if not isinstance(lower, bool):
        raise CheckpointError(f"{path}: do_lower_case must be true or false, got {lower!r}")
    return length, lower


@dataclass
class ModelSettings:
    """The model-level settings of config_sentence_transformers.json that change what ``encode`` returns."""

    prompts: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_PROMPTS))
    default_prompt_name: str | None = None
    truncate_dim: int | None = None
    similarity_fn_name: str | None = None  # None: the default, "cosine"


def check_prompts(prompts, where: str) -> dict[str, str]:
    if not isinstance(prompts, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in prompts.items()):
        raise ValueError(f"{where} must map prompt names to prompt texts (str -> str), got {prompts!r:.100}")
    return dict(prompts)


def read_model_settings(
    directory: Path,
    prompts: dict | None = None,
    default_prompt_name: str | None = None,
    truncate_dim: int | None = None,
) -> ModelSettings:
    """The folder's settings, overridden as sentence-transformers' constructor does: the caller's prompts win over
    the saved ones of the same name, and a default prompt name or truncate_dim given by the caller wins."""
    path = directory / "config_sentence_transformers.json"
    saved = read_json(path) if os.path.lexists(path) else {}
    model_type = saved.get("model_type", ST_MODEL_TYPE)
    if model_type != ST_MODEL_TYPE:
        raise CheckpointError(
            f"{path}: model_type {model_type!r} is not supported; minilm loads {ST_MODEL_TYPE} "
            "folders (sentence embeddings) only"
        )
    merged = dict(DEFAULT_PROMPTS)
    merged.update(check_prompts(prompts, "prompts") if prompts is not None else {})
    for name, text in check_prompts(saved.get("prompts") or {}, f"{path}: prompts").items():
        if name not in (prompts or {}):
            merged[name] = text
    if default_prompt_name is None:
        default_prompt_name = saved.get("default_prompt_name")
    if truncate_dim is None:
        truncate_dim = saved.get("truncate_dim")
    similarity_fn_name = saved.get("similarity_fn_name")
    if similarity_fn_name is not None and similarity_fn_name not in SIMILARITY_FUNCTIONS:
        raise CheckpointError(f"{path}: similarity_fn_name {similarity_fn_name!r} is not one of {SIMILARITY_FUNCTIONS}")
    return ModelSettings(merged, default_prompt_name, truncate_dim, similarity_fn_name)


# ------------------------------------------------------------------------------------------- writing

# Everything write_layout writes: a folder holding nothing else is a saved model, which save() may replace.
# README.md is among them because a card minilm did not write is carried over into the new folder (minilm/card/).
SAVED_FILES = {
    "modules.json",
    "config.json",
    WEIGHTS_NAME,
    "sentence_bert_config.json",
    "config_sentence_transformers.json",
    "1_Pooling/config.json",
    "2_Normalize",
    "README.md",
    *TOKENIZER_FILES,
}


def write_layout(model, directory: Path) -> None:
    """Write ``model`` into the empty folder ``directory`` in the sentence-transformers layout (SAVED_FILES)."""

    def write_json(name: str, obj) -> None:
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")

    modules = [
        {"idx": 0, "name": "0", "path": "", "type": ST_TRANSFORMER},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": ST_POOLING},
    ]
    if model.normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": ST_NORMALIZE})
        (directory / "2_Normalize").mkdir()
    write_json("modules.json", modules)
    write_json("config.json", config_to_dict(model.bert.config))
    save_weights(model.bert, directory)
    for name, content in model.tokenizer.files.items():
        (directory / name).write_bytes(content)
    write_json("sentence_bert_config.json", {"max_seq_length": model.max_seq_length, "do_lower_case": False})
    settings = {
        "__version__": {"minilm": __version__, "pytorch": torch.__version__},
        "model_type": ST_MODEL_TYPE,
        "prompts": model.prompts,
        "default_prompt_name": model.default_prompt_name,
        "similarity_fn_name": model.similarity_fn_name,  # what similarity() computes
    }
    if model.truncate_dim is not None:
        settings["truncate_dim"] = model.truncate_dim
    write_json("config_sentence_transformers.json", settings)
    pooling = {"word_embedding_dimension": model.embedding_dim}
    pooling.update({key: mode == model.pooling for key, mode in LEGACY_POOLING_KEYS.items()})
    write_json("1_Pooling/config.json", pooling)
