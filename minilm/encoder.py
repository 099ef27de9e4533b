"""SentenceEncoder: BERT + pooling + optional L2 normalisation, loaded from and saved to the sentence-transformers layout."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .card import CARD_NAME, TrainingCard, write_card
from .losses.distances import cosine_similarity_matrix
from .hub import resolve_model_dir
from .fast import make_fast
from .fast.int8 import Int8Cache
from .fast.unpadded import forward_unpadded, pool_unpadded
from .fast.workers import batch_workers, default_workers
from .model import POOLING_MODES, BertConfig, BertModel, pool
from .tokenizer import WordPieceTokenizer, check_texts
from .weights import CheckpointError, config_to_dict, load_weights, read_config, save_weights

PRECISIONS = ("float32", "int8")
ST_TRANSFORMER = "sentence_transformers.models.Transformer"
ST_POOLING = "sentence_transformers.models.Pooling"
ST_NORMALIZE = "sentence_transformers.models.Normalize"
# Legacy boolean pooling keys of 1_Pooling/config.json and the mode each one selects.
LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}


def read_json(path: Path) -> dict | list:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None


def read_pooling_mode(path: Path) -> str:
    """The pooling mode in a 1_Pooling/config.json, legacy (``pooling_mode_mean_tokens``...) or new (``pooling_mode``)."""
    raw = read_json(path)
    if "pooling_mode" in raw:
        modes = raw["pooling_mode"]
        modes = [modes] if isinstance(modes, str) else list(modes)
    else:
        modes = [mode for key, mode in LEGACY_POOLING_KEYS.items() if raw.get(key)]
    if len(modes) != 1 or modes[0] not in POOLING_MODES:
        raise CheckpointError(f"{path}: pooling mode {modes} is not supported; expected exactly one of {POOLING_MODES}")
    return modes[0]


def read_modules(directory: Path) -> tuple[str, bool]:
    """(pooling mode, normalise?) from modules.json; a bare transformers checkpoint gets mean pooling, no Normalize."""
    modules_path = directory / "modules.json"
    if not modules_path.is_file():
        return "mean", False
    modules = read_json(modules_path)
    pooling, normalize = None, False
    for module in modules:
        kind = module.get("type", "").rsplit(".", 1)[-1]
        if kind == "Transformer":
            if module.get("path", ""):
                raise CheckpointError(f"{modules_path}: the transformer module must live at the top of the directory")
        elif kind == "Pooling":
            pooling = read_pooling_mode(directory / module["path"] / "config.json")
        elif kind == "Normalize":
            normalize = True
        else:
            raise CheckpointError(f"{modules_path}: module type {module.get('type')!r} is not supported by minilm")
    if pooling is None:
        raise CheckpointError(f"{modules_path} lists no Pooling module")
    return pooling, normalize


class SentenceEncoder(nn.Module):
    """BERT + pooling + optional L2 normalisation. ``bert`` is switched to the fast path in place (minilm.fast)."""

    def __init__(self, bert: BertModel, tokenizer: WordPieceTokenizer, pooling: str = "mean", normalize: bool = True):
        super().__init__()
        if pooling not in POOLING_MODES:
            raise ValueError(f"pooling must be one of {POOLING_MODES}, got {pooling!r}")
        if tokenizer.max_seq_length > bert.config.max_position_embeddings:
            raise ValueError(
                f"max_seq_length {tokenizer.max_seq_length} exceeds max_position_embeddings "
                f"{bert.config.max_position_embeddings}"
            )
        self.bert = make_fast(bert)
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.normalize = normalize
        # Per-token work on the real tokens only (minilm.fast.unpadded); False runs the padded reference. Measured
        # faster on CPU for encoding and for training batches (benchmarks/README.md).
        self.unpadded = True
        self._int8 = Int8Cache()  # the quantised copy of bert for encode(precision="int8"), built on first use
        self._compiled = False  # compile_kernels() was called

    # ------------------------------------------------------------------------------------------- loading

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path = "sentence-transformers/all-MiniLM-L6-v2", device=None, compile: bool = False
    ):
        """Load a sentence-transformers (or bare BERT) directory or hub id; ``compile=True`` calls compile_kernels()."""
        directory = resolve_model_dir(name_or_path)
        if not (directory / "config.json").is_file():
            raise CheckpointError(f"{directory} has no config.json; it is not a BERT checkpoint")
        config = read_config(directory / "config.json")
        pooling, normalize = read_modules(directory)
        st_config_path = directory / "sentence_bert_config.json"
        st_config = read_json(st_config_path) if st_config_path.is_file() else {}
        max_seq_length = st_config.get("max_seq_length") or _tokenizer_max_length(directory, config)
        tokenizer = WordPieceTokenizer.from_dir(directory, max_seq_length, st_config.get("do_lower_case", False))
        bert = BertModel(config)
        load_weights(bert, directory)
        model = cls(bert, tokenizer, pooling, normalize)
        model.eval()  # inference by default, like sentence-transformers; the trainer switches dropout on
        model = model.to(device) if device is not None else model
        if compile:
            model.compile_kernels()
        return model

    def compile_kernels(self) -> "SentenceEncoder":
        """Run every encoder layer through torch.compile (fused bias+GELU, residual+LayerNorm, softmax).

        Dynamic shapes: batches and lengths reuse the compiled graphs (a one-sequence attention group compiles once
        more). Off by default: on the CPU measured, compiling was slow and the compiled model no faster than eager,
        for encoding or training (benchmarks/README.md).
        """
        from minilm.kernels.layer import compile_layers

        compile_layers(self.bert)
        self._compiled = True
        return self

    # ------------------------------------------------------------------------------------------- forward

    @property
    def embedding_dim(self) -> int:
        return self.bert.config.hidden_size

    @property
    def max_seq_length(self) -> int:
        return self.tokenizer.max_seq_length

    @property
    def device(self) -> torch.device:
        return self.bert.embeddings.word.weight.device

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """Token ids, attention mask and token types for ``texts``, each (B, T) padded to the longest."""
        return self.tokenizer(texts)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        normalize: bool | None = None,
    ) -> torch.Tensor:
        """Pooled sentence embeddings (B, H), L2-normalised if ``normalize`` (default: as the checkpoint says)."""
        return self._embed_with(self.bert, input_ids, attention_mask, token_type_ids, normalize)

    def _embed_with(self, bert: nn.Module, input_ids, attention_mask, token_type_ids=None, normalize=None):
        if self.unpadded:
            hidden, batch = forward_unpadded(bert, input_ids, attention_mask, token_type_ids)  # (N, H)
            emb = pool_unpadded(hidden, batch, self.pooling)  # (B, H)
        else:
            hidden = bert(input_ids, attention_mask, token_type_ids)  # (B, T, H)
            emb = pool(hidden, attention_mask, self.pooling)  # (B, H)
        if self.normalize if normalize is None else normalize:
            emb = F.normalize(emb, p=2, dim=-1)
        return emb

    def embed(self, texts: list[str]) -> torch.Tensor:
        """Tokenise and embed with autograd, on the model's device: what the losses train through."""
        features = {k: v.to(self.device) for k, v in self.tokenize(texts).items()}
        return self(**features)

    # ------------------------------------------------------------------------------------------- inference

    def encode(
        self,
        sentences: str | list[str],
        batch_size: int = 32,
        normalize: bool | None = None,
        convert_to: str = "numpy",
        show_progress_bar: bool | None = None,
        device=None,
        precision: str = "float32",
        workers: int | None = None,
    ) -> np.ndarray | torch.Tensor:
        """Embed ``sentences`` (N,) -> (N, H); a single string gives (H,). Runs without autograd, caller's order kept.

        precision="int8": dynamic int8 quantisation of the linear layers except the first two layers' feed-forward
        down projections, which stay fp32 (see minilm.fast.int8); a cached copy, the model itself is unchanged.

        workers: batches in flight at once on CPU, each on its share of torch's threads (default: 2 when torch has
        2+ threads and the model is not compiled, else 1; see minilm.fast.workers). The embeddings are the same and
        the caller's autocast setting applies in every worker. While encode runs, torch's intra-op thread count is
        lowered to the per-worker share (restored afterwards), which other threads of the process also see: pass
        workers=1 to opt out.
        """
        if convert_to not in ("numpy", "torch"):
            raise ValueError(f"convert_to must be 'numpy' or 'torch', got {convert_to!r}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        single = isinstance(sentences, str)
        texts = [sentences] if single else sentences
        if device is not None and torch.device(device) != self.device:
            self.to(device)
        bert = self.bert if precision == "float32" else self._int8.get(self.bert)
        ids = self.tokenizer.encode_ids(texts)
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # longest first: little padding per batch
        out = torch.empty((len(ids), self.embedding_dim), dtype=torch.float32)
        if show_progress_bar is None:
            show_progress_bar = len(ids) > 8 * batch_size and sys.stderr.isatty()
        batches = [order[start: start + batch_size] for start in range(0, len(ids), batch_size)]
        if workers is None:
            workers = default_workers(self.device, self._compiled)
        kind = self.device.type
        autocast = torch.is_autocast_enabled(kind)  # like inference mode, autocast is per thread: carried over
        autocast_dtype = torch.get_autocast_dtype(kind) if autocast else None

        def embed_batch(rows: list[int]) -> tuple[list[int], torch.Tensor]:
            with torch.inference_mode(), torch.autocast(kind, dtype=autocast_dtype, enabled=autocast):
                features = {k: v.to(self.device) for k, v in self.tokenizer.pad([ids[i] for i in rows]).items()}
                return rows, self._embed_with(bert, **features, normalize=normalize).float().cpu()

        was_training = self.training
        self.eval()
        try:
            with batch_workers(min(workers, len(batches))) as run:
                done = 0
                for rows, emb in run(embed_batch, batches):
                    out[rows] = emb
                    done += len(rows)
                    if show_progress_bar:
                        print(f"\rencode {done}/{len(ids)}", end="", file=sys.stderr)
        finally:
            self.train(was_training)
            if show_progress_bar:
                print(file=sys.stderr)
        if single:
            out = out[0]
        return out.numpy() if convert_to == "numpy" else out

    @staticmethod
    def similarity(a, b):
        """Cosine similarity matrix (N, M) of two embedding sets (N, H) and (M, H); numpy in gives numpy out."""
        as_numpy = isinstance(a, np.ndarray)
        a, b = torch.as_tensor(a), torch.as_tensor(b)
        a, b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
        if a.shape[-1] != b.shape[-1]:
            raise ValueError(f"similarity: embedding widths differ, a has {a.shape[-1]} and b has {b.shape[-1]}")
        sim = cosine_similarity_matrix(a, b)  # (N, M)
        return sim.numpy() if as_numpy else sim

    # ------------------------------------------------------------------------------------------- saving

    def save(self, path: str | Path, card: TrainingCard | None = None) -> None:
        """Write the sentence-transformers layout atomically: built in a temporary directory, then renamed into place.

        README.md is minilm's model card (minilm/card.py): the trainer passes ``card`` to describe the training; an
        untrained model gets the model's part only. A README.md already at ``path`` that minilm did not write is kept.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
        try:
            self._write(tmp)
            write_card(self, tmp, card, previous=path / CARD_NAME)
            if path.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
                os.replace(path, old / path.name)
                os.replace(tmp, path)
                shutil.rmtree(old)
            else:
                os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def _write(self, directory: Path) -> None:
        def write_json(name: str, obj) -> None:
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            (directory / name).write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")

        modules = [
            {"idx": 0, "name": "0", "path": "", "type": ST_TRANSFORMER},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": ST_POOLING},
        ]
        if self.normalize:
            modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": ST_NORMALIZE})
            (directory / "2_Normalize").mkdir()
        write_json("modules.json", modules)
        write_json("config.json", config_to_dict(self.bert.config))
        save_weights(self.bert, directory)
        for name, content in self.tokenizer.files.items():
            (directory / name).write_bytes(content)
        write_json("sentence_bert_config.json", {"max_seq_length": self.max_seq_length, "do_lower_case": False})
        pooling = {"word_embedding_dimension": self.embedding_dim}
        pooling.update({key: mode == self.pooling for key, mode in LEGACY_POOLING_KEYS.items()})
        write_json("1_Pooling/config.json", pooling)


def _tokenizer_max_length(directory: Path, config: BertConfig) -> int:
    """Without sentence_bert_config.json: the tokenizer's model_max_length, capped by the position table."""
    settings_path = directory / "tokenizer_config.json"
    settings = read_json(settings_path) if settings_path.is_file() else {}
    limit = settings.get("model_max_length", config.max_position_embeddings)
    return int(min(limit, config.max_position_embeddings))
