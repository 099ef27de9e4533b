"""SentenceEncoder: BERT + pooling + optional L2 normalisation, loaded from and saved to the sentence-transformers
layout."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from minilm.card import CARD_NAME, TrainingCard, write_card
from minilm.encoding.options import (
    UNSET,
    as_text_list,
    check_output_value,
    check_truncate_dim,
    deprecated_names,
    finish_sentences,
    finish_tokens,
    resolve_prompt,
)
from minilm.encoding.quantization import check_precision
from minilm.encoding.similarity import check_similarity_fn_name, similarity_pairwise
from minilm.encoding.similarity import similarity as similarity_matrix
from minilm.fast import make_fast
from minilm.fast.int8 import Int8Cache
from minilm.fast.slices import forward_slices
from minilm.fast.unpadded import forward_unpadded, pool_unpadded, unpadding_pays
from minilm.fast.workers import batch_workers, default_workers
from minilm.loading.folder import read_model_folder
from minilm.loading.hub import resolve_model_dir
from minilm.loading.layout import DEFAULT_PROMPTS, SAVED_FILES, check_prompts, write_layout
from minilm.loading.tokenizer import WordPieceTokenizer
from minilm.loading.weights import WEIGHTS_NAME, CheckpointError, load_state
from minilm.model import POOLING_MODES, BertModel, pool
from minilm.util.devices import check_cpu_only, resolve_device, resolve_dtype, unpadded_by_default
from minilm.util.io import building, check_replaceable
from minilm.util.progress import Progress


class SentenceEncoder(nn.Module):
    """BERT + pooling + optional L2 normalisation. ``bert`` is switched to the fast path in place (minilm.fast)."""

    def __init__(
        self,
        bert: BertModel,
        tokenizer: WordPieceTokenizer,
        pooling: str = "mean",
        normalize: bool = True,
        *,
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
        truncate_dim: int | None = None,
    ):
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
        # Per-token work on the real tokens only (minilm.fast.unpadded) for batches with enough padding to skip;
        # False runs the padded reference for every batch. Measured faster on CPU for encoding and for training
        # batches (benchmarks/README.md). None: as the device decides.
        self.unpadded = None
        self._int8 = Int8Cache()  # the quantised copy of bert for encode(quantized_model=True), built on first use
        self._compiled = False  # compile_kernels() was called
        # sentence-transformers' model-level settings (config_sentence_transformers.json), as its constructor takes them
        self.prompts = {**DEFAULT_PROMPTS, **(check_prompts(prompts, "prompts") if prompts is not None else {})}
        if default_prompt_name is not None and default_prompt_name not in self.prompts:
            raise ValueError(
                f"default_prompt_name {default_prompt_name!r} is not one of the prompts {sorted(self.prompts)}"
            )
        self.default_prompt_name = default_prompt_name
        self.truncate_dim = truncate_dim

    # ------------------------------------------------------------------------------------------- loading

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path = "sentence-transformers/all-MiniLM-L6-v2",
        device=None,
        compile: bool = False,
        *,
        prompts: dict[str, str] | None = None,
        default_prompt_name: str | None = None,
        truncate_dim: int | None = None,
        dtype: torch.dtype | str | None = None,
    ):
        """Load a sentence-transformers (or bare BERT) directory or hub id; ``compile=True`` calls compile_kernels().

        ``device``: None or "auto" chooses as sentence-transformers does (CUDA, then MPS, then the CPU); "cpu",
        "cuda", "cuda:N", "mps" or a torch.device name one (one not on this machine is refused before anything
        loads). ``dtype`` (torch.float16, torch.bfloat16 or their names) converts the weights after loading, as
        ``model.half()`` / ``model.bfloat16()`` do; ``encode`` still returns float32 (sentence-transformers 6.2
        returns the weights' dtype: float16 arrays and tensors, bfloat16 tensors).
        ``prompts``, ``default_prompt_name`` and ``truncate_dim`` are sentence-transformers' constructor arguments,
        with its meaning: they override what the folder's config_sentence_transformers.json says (a saved prompt of
        another name is kept).
        """
        device = resolve_device(device, "device")
        dtype = resolve_dtype(dtype, "dtype")
        directory = resolve_model_dir(name_or_path)
        # Every file read and checked (sizes against the weights' header, bounds, dtypes, token ids) from one save of
        # the folder, before the model is allocated (minilm/loading/folder.py).
        folder = read_model_folder(directory, prompts, default_prompt_name, truncate_dim)
        settings, tokenizer = folder.settings, folder.tokenizer
        bert = BertModel(folder.config)
        load_state(bert, folder.state, directory / WEIGHTS_NAME)
        del folder.state
        try:
            model = cls(
                bert,
                tokenizer,
                folder.pooling,
                folder.normalize,
                prompts=settings.prompts,
                default_prompt_name=settings.default_prompt_name,
                truncate_dim=settings.truncate_dim,
            )
        except ValueError as e:
            raise CheckpointError(f"{directory}: {e}") from None
        model.similarity_fn_name = settings.similarity_fn_name
        model.base_model = str(name_or_path)  # what a card of this model, saved as it is, names as its base
        model.eval()  # inference by default, like sentence-transformers; the trainer switches dropout on
        model = model.to(device=device, dtype=dtype)
        if compile:
            model.compile_kernels()
        return model

    def compile_kernels(self) -> SentenceEncoder:
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
        """Width of the pooled embedding the model computes (and trains), before any truncate_dim."""
        return self.bert.config.hidden_size

    def get_embedding_dimension(self) -> int:
        """Width of what ``encode`` returns: the embedding width, or ``truncate_dim`` if that is smaller."""
        return self.embedding_dim if self.truncate_dim is None else min(self.embedding_dim, self.truncate_dim)

    @property
    def max_seq_length(self) -> int:
        """Tokens per input, [CLS] and [SEP] included. Longer inputs are cut to it silently, as sentence-transformers
        does; ``encode(..., truncated=[])`` collects which were. Settable; saved by ``save``."""
        return self.tokenizer.max_seq_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        limit = self.bert.config.max_position_embeddings
        if not isinstance(value, bool) and isinstance(value, int) and value > limit:
            raise ValueError(f"max_seq_length {value} exceeds max_position_embeddings {limit}")
        self.tokenizer.max_seq_length = value

    @property
    def truncate_dim(self) -> int | None:
        """Keep only the first ``truncate_dim`` dimensions of what ``encode`` returns (Matryoshka models); None keeps
        all. The call's ``truncate_dim`` wins over this one; saved by ``save``."""
        return self._truncate_dim

    @truncate_dim.setter
    def truncate_dim(self, value: int | None) -> None:
        self._truncate_dim = check_truncate_dim(value)

    @contextmanager
    def truncate_embeddings(self, truncate_dim: int | None) -> Iterator[None]:
        """Within the block, ``encode`` returns embeddings truncated to ``truncate_dim`` (as sentence-transformers')."""
        saved = self.truncate_dim
        self.truncate_dim = truncate_dim
        try:
            yield
        finally:
            self._truncate_dim = saved

    @property
    def device(self) -> torch.device:
        return self.bert.embeddings.word.weight.device

    @property
    def unpadded(self) -> bool:
        """Whether the forward runs on the real tokens only (minilm.fast.unpadded) rather than the padded grid. Unless
        set, as it pays on the model's device: the CPU yes, a GPU no (``minilm.util.devices.unpadded_by_default``)."""
        return unpadded_by_default(self.device) if self._unpadded is None else self._unpadded

    @unpadded.setter
    def unpadded(self, value: bool | None) -> None:
        self._unpadded = value

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

    def _unpads(self, attention_mask: torch.Tensor) -> bool:
        """Whether this batch runs on its real tokens only: ``unpadded`` allows it and the batch has enough padding
        for that to pay (``minilm.fast.unpadded.unpadding_pays``); else the padded reference runs."""
        return self.unpadded and unpadding_pays(attention_mask)

    def _embed_with(self, bert: nn.Module, input_ids, attention_mask, token_type_ids=None, normalize=None):
        if self._unpads(attention_mask):
            hidden, batch = forward_unpadded(bert, input_ids, attention_mask, token_type_ids)  # (N, H)
            emb = pool_unpadded(hidden, batch, self.pooling)  # (B, H)
        else:
            hidden = bert(input_ids, attention_mask, token_type_ids)  # (B, T, H)
            emb = pool(hidden, attention_mask, self.pooling)  # (B, H)
        if self.normalize if normalize is None else normalize:
            emb = F.normalize(emb, p=2, dim=-1)
        return emb

    def embed_layers(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """Every hidden state pooled (and normalised) as the last layer is: L + 1 of (B, H), the embedding output
        first; the last equals ``forward``. What the layer losses (AdaptiveLayer, Matryoshka2d) train through."""
        if self._unpads(attention_mask):
            states, batch = forward_unpadded(
                self.bert, input_ids, attention_mask, token_type_ids, output_hidden_states=True
            )
            pooled = [pool_unpadded(h, batch, self.pooling) for h in states]
        else:
            states = self.bert(input_ids, attention_mask, token_type_ids, output_hidden_states=True).hidden_states
            pooled = [pool(h, attention_mask, self.pooling) for h in states]
        return [F.normalize(e, p=2, dim=-1) for e in pooled] if self.normalize else pooled

    def embed(self, texts: list[str]) -> torch.Tensor:
        """Tokenise and embed with autograd, on the model's device: what the losses train through."""
        features = {k: v.to(self.device) for k, v in self.tokenize(texts).items()}
        return self(**features)

    # ------------------------------------------------------------------------------------------- inference

    def encode(
        self,
        inputs: str | list[str] | None = None,
        prompt_name: str | None = None,
        prompt: str | None = None,
        batch_size: int = 32,
        show_progress_bar: bool | None = None,
        output_value: str = "sentence_embedding",
        precision: str = "float32",
        convert_to_numpy: bool = True,
        convert_to_tensor: bool = False,
        device=None,
        normalize_embeddings: bool = False,
        truncate_dim: int | None = None,
        *,
        quantized_model: bool = False,
        workers: int | None = None,
        truncated: list[int] | None = None,
        sentences=UNSET,
        normalize=UNSET,
        convert_to=UNSET,
    ):
        """Embed ``inputs`` without autograd, in the caller's order: sentence-transformers' ``encode``, same arguments
        (in the same positions), same meanings, same return types.

        - ``prompt`` is put in front of every input; ``prompt_name`` picks one of ``self.prompts``; with neither,
          ``default_prompt_name``'s prompt applies. Prompt and input are truncated together to ``max_seq_length``.
        - The pooled embedding (L2-normalised if the checkpoint has a Normalize module) is cut to ``truncate_dim``
          (default: the model's), then L2-normalised if ``normalize_embeddings``, then quantised to ``precision``
          (int8 / uint8 / binary / ubinary as ``minilm.encoding.quantization.quantize_embeddings``, calibrated on these
          embeddings; float32 leaves them).
        - Returned: an (N, D) numpy array; with ``convert_to_tensor`` one tensor; with ``convert_to_numpy=False`` a
          list of N row tensors; a single string gives one row. ``output_value="token_embeddings"`` gives a list of
          (tokens, H) tensors, one per input, [CLS] and [SEP] included (no truncate_dim, no normalisation).
          An empty list gives an (0, D) array or tensor (sentence-transformers gives an empty 1-D array).
        - ``show_progress_bar`` defaults to on for more than 8 batches on a terminal (a line on stderr).
        - Inputs longer than ``max_seq_length`` tokens are cut silently, as in sentence-transformers; pass a list as
          ``truncated`` and the positions of the inputs that were cut are appended to it.

        minilm's own options: ``quantized_model=True`` runs a dynamically int8-quantised copy of the model (CPU;
        minilm.fast.int8) and still returns float embeddings; it is not ``precision``, which quantises the output.
        ``workers``: batches in flight at once on CPU, each on its share of torch's threads (default: 2 when torch has
        2+ threads and the model is not compiled, else 1; see minilm.fast.workers); the embeddings are the same, and
        the caller's autocast applies in every worker. While encode runs, torch's intra-op thread count is lowered to
        the per-worker share (restored afterwards), which other threads of the process also see: pass workers=1 to
        opt out. Both are CPU techniques: on another device they are off by default, and ``quantized_model=True`` or
        ``workers`` above 1 is refused by name. ``sentences``, ``normalize`` and ``convert_to`` are minilm's former
        names, deprecated.
        """
        inputs, normalize_embeddings, convert_to_numpy, convert_to_tensor, skip_normalize = deprecated_names(
            inputs, sentences, normalize, convert_to, normalize_embeddings, convert_to_numpy, convert_to_tensor
        )
        tokens = check_output_value(output_value) == "token_embeddings"
        check_precision(precision)
        truncate_dim = self.truncate_dim if truncate_dim is None else check_truncate_dim(truncate_dim)
        if isinstance(device, (list, tuple)):
            raise ValueError(
                "device: a list of devices (multi-process encoding) is not supported; encode a file over "
                "several processes with `minilm encode --shard i/n`"
            )
        single = isinstance(inputs, str)
        texts = as_text_list(inputs)
        prompt = resolve_prompt(self.prompts, self.default_prompt_name, prompt, prompt_name)
        if prompt:
            texts = [prompt + text for text in texts]
        if device is not None and torch.device(device) != self.device:
            self.to(device)
        if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
            raise ValueError(f"workers must be a positive integer, got {workers!r}")
        # The CPU techniques, asked for on another device: refused by name (their defaults are off there already).
        if quantized_model:
            check_cpu_only("quantized_model=True", self.device)
        if workers is not None and workers > 1:
            check_cpu_only(f"workers={workers}", self.device)

        ids = self.tokenizer.encode_ids(texts, truncated)
        bert = self._int8.get(self.bert) if quantized_model else self.bert
        normalize = False if skip_normalize else None

        def run(bert, **features):
            if tokens:
                return self._tokens_of(bert, **features)
            return self._embed_with(bert, **features, normalize=normalize)

        rows = self._run_batches(run, bert, ids, batch_size, show_progress_bar, workers)
        if tokens:
            return finish_tokens([row.to(self.device) for row in rows], precision, single)
        emb = torch.stack(rows) if rows else torch.zeros(0, self.embedding_dim)  # (N, H) float32, CPU
        return finish_sentences(
            emb.to(self.device),
            truncate_dim,
            normalize_embeddings,
            precision,
            convert_to_numpy,
            convert_to_tensor,
            single,
        )

    def encode_query(self, inputs=None, prompt_name: str | None = None, prompt: str | None = None, *args, **kwargs):
        """``encode`` with the "query" prompt unless a prompt or prompt name is given (sentence-transformers')."""
        if prompt_name is None and prompt is None and "query" in self.prompts:
            prompt_name = "query"
        return self.encode(inputs, prompt_name, prompt, *args, **kwargs)

    def encode_document(self, inputs=None, prompt_name: str | None = None, prompt: str | None = None, *args, **kwargs):
        """``encode`` with the first of the "document", "passage", "corpus" prompts the model has, unless a prompt or
        prompt name is given (sentence-transformers')."""
        if prompt_name is None and prompt is None:
            prompt_name = next((name for name in ("document", "passage", "corpus") if name in self.prompts), None)
        return self.encode(inputs, prompt_name, prompt, *args, **kwargs)

    def _tokens_of(self, bert: nn.Module, input_ids, attention_mask, token_type_ids=None) -> list[torch.Tensor]:
        """Last hidden state of each sequence at its real tokens: B tensors (length_i, H)."""
        if self._unpads(attention_mask):
            hidden, batch = forward_unpadded(bert, input_ids, attention_mask, token_type_ids)  # (N, H)
            grid = batch.pad(hidden)  # (B, T, H)
        else:
            grid = bert(input_ids, attention_mask, token_type_ids)  # (B, T, H)
        return [grid[i, :n] for i, n in enumerate(attention_mask.sum(1).tolist())]

    def _run_batches(
        self, run, bert: nn.Module, ids: list[list[int]], batch_size: int, show_progress_bar, workers: int | None
    ) -> list:
        """``run(bert, **features)`` over length-sorted batches of ``ids``; one result per input, in input order,
        float32 on CPU (a row tensor, or whatever ``run`` returns per sequence)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))  # longest first: little padding per batch
        batches = [order[start : start + batch_size] for start in range(0, len(ids), batch_size)]
        if show_progress_bar is None:
            show_progress_bar = len(batches) > 8 and sys.stderr.isatty()
        progress = Progress(len(ids), "texts") if show_progress_bar else None
        # On the CPU a batch too large for the cache runs as several forwards, each its own work item for the
        # workers, so even one batch of long texts keeps both cores busy (minilm.fast.slices).
        batches = [rows[part] for rows in batches for part in forward_slices([len(ids[i]) for i in rows], self.device)]
        if workers is None:
            workers = default_workers(self.device, self._compiled)
        kind = self.device.type
        autocast = torch.is_autocast_enabled(kind)  # like inference mode, autocast is per thread: carried over
        autocast_dtype = torch.get_autocast_dtype(kind) if autocast else None

        def one_batch(rows: list[int]) -> tuple[list[int], object]:
            with torch.inference_mode(), torch.autocast(kind, dtype=autocast_dtype, enabled=autocast):
                features = {k: v.to(self.device) for k, v in self.tokenizer.pad([ids[i] for i in rows]).items()}
                out = run(bert, **features)  # (B, H) tensor or B tensors
                return rows, out.float().cpu() if isinstance(out, torch.Tensor) else [x.float().cpu() for x in out]

        out: list = [None] * len(ids)
        was_training = self.training
        self.eval()
        try:
            with batch_workers(min(workers, len(batches))) as mapped:
                done = 0
                for rows, results in mapped(one_batch, batches):
                    for i, x in zip(rows, results):
                        out[i] = x
                    done += len(rows)
                    if progress:
                        progress.update(done)
        finally:
            self.train(was_training)
            if progress:
                progress.close()
        return out

    # ------------------------------------------------------------------------------------------- similarity
    # sentence-transformers' API, same names and meanings (minilm/encoding/similarity.py)

    @property
    def similarity_fn_name(self) -> str:
        """The function ``similarity`` applies: "cosine" (the default), "dot", "euclidean" or "manhattan" (negative
        distances). Read from and saved to config_sentence_transformers.json, as sentence-transformers does."""
        return getattr(self, "_similarity_fn_name", None) or "cosine"

    @similarity_fn_name.setter
    def similarity_fn_name(self, value) -> None:
        self._similarity_fn_name = None if value is None else check_similarity_fn_name(value)

    def similarity(self, embeddings1, embeddings2) -> torch.Tensor:
        """(N, M) similarity matrix of two embedding sets (tensors, arrays or lists of either; one embedding counts
        as one row) under ``similarity_fn_name``: a float tensor, as sentence-transformers returns."""
        return similarity_matrix(embeddings1, embeddings2, self.similarity_fn_name)

    def similarity_pairwise(self, embeddings1, embeddings2) -> torch.Tensor:
        """(N,) similarities of ``embeddings1[i]`` with ``embeddings2[i]`` under ``similarity_fn_name``."""
        return similarity_pairwise(embeddings1, embeddings2, self.similarity_fn_name)

    def get_sentence_embedding_dimension(self) -> int:
        """sentence-transformers' former name of ``get_embedding_dimension`` (what ``encode`` returns' width)."""
        return self.get_embedding_dimension()

    @contextmanager
    def truncate_sentence_embeddings(self, truncate_dim: int | None) -> Iterator[None]:
        """sentence-transformers' former name of ``truncate_embeddings``: a context manager."""
        with self.truncate_embeddings(truncate_dim):
            yield

    # ------------------------------------------------------------------------------------------- saving

    def save(
        self, path: str | Path, overwrite: bool = False, card: TrainingCard | None = None, model_card: bool = True
    ) -> None:
        """Write the sentence-transformers layout, built beside ``path`` and swapped into place in one step: a failure
        or a kill leaves what was there or the new model, never neither. Permissions follow the umask.

        ``path`` may be missing, an empty folder or a model saved before; a file, or a folder holding anything minilm
        does not write, is refused unless ``overwrite=True`` (the working directory always is).

        README.md is minilm's model card (minilm/card/): the trainer passes ``card`` to describe the training; an
        untrained model gets the model's part only. A README.md already at ``path`` that minilm did not write is kept.
        """
        path = Path(path)
        check_replaceable(path, SAVED_FILES, overwrite, "a model")
        with building(path) as tmp:
            write_layout(self, tmp)
            if model_card:
                write_card(self, tmp, card, previous=path / CARD_NAME)

    def save_pretrained(
        self,
        path: str | Path,
        model_name: str | None = None,
        create_model_card: bool = True,
        train_datasets: list[str] | None = None,
        safe_serialization: bool = True,
        *,
        overwrite: bool = False,
    ) -> None:
        """sentence-transformers' ``save_pretrained``: ``save`` (same refusals; ``overwrite`` as there), without the
        README.md card if ``create_model_card`` is False. ``model_name`` and ``train_datasets`` only name things in
        sentence-transformers' card; minilm's card takes them from the training run. Weights are safetensors only."""
        if not safe_serialization:
            raise ValueError(
                "save_pretrained: safe_serialization=False (a pickle) is not supported; minilm writes "
                "model.safetensors only"
            )
        del model_name, train_datasets
        self.save(path, overwrite=overwrite, model_card=create_model_card)
