"""A BERT encoder written bottom-up: embeddings -> attention -> feed-forward -> layer -> encoder -> pooling.

Module and parameter names follow the Hugging Face BERT checkpoint only where it costs nothing; the mapping from
checkpoint keys to ours lives in one table in ``weights.py``, which also reads and writes the config file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .dropout import Dropout, dropout


@dataclass
class BertConfig:
    vocab_size: int = 30522  # WordPiece vocabulary (uncased BERT)
    hidden_size: int = 384  # H: width of every token vector
    num_hidden_layers: int = 6  # L: encoder layers
    num_attention_heads: int = 12  # heads per layer; head dim = H / heads = 32
    intermediate_size: int = 1536  # feed-forward inner width (4H)
    max_position_embeddings: int = 512  # longest sequence the position table covers
    type_vocab_size: int = 2  # segment ids (sentence A / B)
    layer_norm_eps: float = 1e-12  # BERT's LayerNorm epsilon, tiny on purpose
    hidden_dropout_prob: float = 0.1  # dropout after embeddings, attention output and feed-forward
    attention_probs_dropout_prob: float = 0.1  # dropout on the attention probabilities
    hidden_act: str = "gelu"  # exact erf GELU; "gelu_new"/"gelu_pytorch_tanh" select the tanh form
    pad_token_id: int = 0  # id of [PAD]; only used to build padding masks from ids

    def validate(self, where: str = "config") -> None:
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"{where}: hidden_size {self.hidden_size} is not divisible by num_attention_heads "
                f"{self.num_attention_heads}"
            )
        if self.hidden_act not in _ACTIVATIONS:
            raise ValueError(f"{where}: hidden_act {self.hidden_act!r} is not one of {sorted(_ACTIVATIONS)}")


_ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "relu": F.relu,
}


class Embeddings(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.word = nn.Embedding(config.vocab_size, config.hidden_size)
        self.position = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Padded (B, T) ids -> (B, T, H); or packed (N,) ids with their ``positions`` (N,) -> (N, H)."""
        T = input_ids.shape[-1] if positions is None else int(positions.max()) + 1 if positions.numel() else 0
        if T > self.position.num_embeddings:
            raise ValueError(
                f"input_ids has {T} positions but the model has only {self.position.num_embeddings} position embeddings"
            )
        if positions is None:
            positions = torch.arange(T, device=input_ids.device)  # (T,)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        x = self.word(input_ids) + self.token_type(token_type_ids) + self.position(positions)  # (B, T, H) or (N, H)
        return self.dropout(self.norm(x))


def _matmul_attention(q, k, v, mask, dropout_p: float, drop) -> torch.Tensor:
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]) + mask  # (B, nh, T, T)
    probs = drop(scores.softmax(dim=-1), dropout_p)
    return probs @ v  # (B, nh, T, hd)


def reference_attention(q, k, v, mask, dropout_p: float = 0.0) -> torch.Tensor:
    """Plain matmul-softmax attention with torch's dropout, the reference the fast path is tested against.

    q, k, v: (B, nh, T, hd); mask: additive (B, 1, 1, T), 0 for real tokens and a large negative for padding.
    """
    return _matmul_attention(q, k, v, mask, dropout_p, F.dropout)


def sdpa_attention(q, k, v, mask, dropout_p: float = 0.0) -> torch.Tensor:
    """The fused flash kernel when there is no dropout. With dropout on CPU, torch's SDPA falls back to the same
    matmul-softmax math anyway, drawing one Bernoulli per probability; the cheap masks of dropout.py make that
    attention's forward + backward cheaper (benchmarks/README.md)."""
    if dropout_p > 0.0 and q.device.type == "cpu":
        return _matmul_attention(q, k, v, mask, dropout_p, dropout)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)


@dataclass
class Group:
    """Consecutive packed sequences padded together for attention: packed rows [start, end) on an (n, T) grid."""

    start: int
    end: int
    n: int  # sequences in the group
    T: int  # the group's longest sequence: its grid width
    index: torch.Tensor  # (end - start,) flat position of each of those rows in the (n * T) grid
    mask: torch.Tensor  # (n, 1, 1, T) additive attention mask of the grid

    def pad(self, rows: torch.Tensor) -> torch.Tensor:
        """This group's packed rows (end - start, C) -> its grid (n, T, C), zeros at the padding (differentiable)."""
        return rows.new_zeros(self.n * self.T, rows.shape[-1]).index_copy(0, self.index, rows).view(self.n, self.T, -1)

    def take(self, grid: torch.Tensor) -> torch.Tensor:
        """(n, T, C) -> (end - start, C): the group's real positions, in packed order."""
        return grid.flatten(0, 1).index_select(0, self.index)


@dataclass
class Packed:
    """Where the real tokens of a padded (B, T) batch sit once packed into (N, H), longest sequence first.

    Unpadded ("varlen") execution runs embeddings, every linear, the feed-forward and the LayerNorms on the N real
    tokens only; attention alone goes back to padded grids, which measured faster than a block-diagonal mask (also
    quadratic in N) or nested jagged tensors (benchmarks/README.md). Attention pads, but not to one (B, T) grid:
    sequences are packed longest first and cut into ``groups`` of similar length, each padded only to its own longest (see
    ``group_lengths``). A random training batch spends most of its (B, T, T) attention grid on padding; grouping
    shrinks it severalfold. Pooling indexes by original sequence, so the caller's order is kept.
    """

    index: torch.Tensor  # (N,) flat position of each packed row in the (B * T) padded grid
    mask: torch.Tensor  # (B, T) the attention mask they came from, 1 for real tokens
    seq: torch.Tensor  # (N,) which (original) sequence each packed row belongs to
    first: torch.Tensor  # (B,) packed row of each sequence's first real token
    groups: list[Group]  # attention groups, covering the packed rows in order

    @classmethod
    def from_mask(cls, attention_mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> "Packed":
        """Pack by the 0/1 mask (B, T); ``dtype`` is that of the hidden states (for the additive masks)."""
        keep = attention_mask.bool()  # (B, T)
        B, T = keep.shape
        device = keep.device
        lengths = keep.sum(1)  # (B,)
        order = torch.sort(lengths, descending=True, stable=True).indices  # (B,) longest first
        sorted_lengths = lengths[order]  # (B,)
        grid = order[:, None] * T + torch.arange(T, device=device)  # (B, T) flat positions, rows in packed order
        index = grid[keep[order]]  # (N,)
        lengths_list = sorted_lengths.tolist()  # a host sync (as is the boolean index above); output_size below
        # spares each repeat_interleave one of its own
        N = sum(lengths_list)
        seq = torch.repeat_interleave(order, sorted_lengths, output_size=N)  # (N,)
        starts = sorted_lengths.cumsum(0) - sorted_lengths  # (B,) packed row where each sorted sequence starts
        first = torch.empty_like(starts).scatter_(0, order, starts)  # an empty row points past its neighbours
        column = torch.arange(N, device=device) - torch.repeat_interleave(starts, sorted_lengths, output_size=N)
        groups, start, s0 = [], 0, 0
        for n in group_lengths(lengths_list):
            width, rows = lengths_list[s0], sum(lengths_list[s0: s0 + n])
            if rows:  # a group of empty sequences has nothing to attend
                local = torch.repeat_interleave(torch.arange(n, device=device), sorted_lengths[s0: s0 + n],
                                                output_size=rows)
                mask = torch.arange(width, device=device) < sorted_lengths[s0: s0 + n, None]  # (n, width)
                group_index = local * width + column[start: start + rows]
                groups.append(Group(start, start + rows, n, width, group_index, additive_mask(mask, dtype)))
            start, s0 = start + rows, s0 + n
        return cls(index, attention_mask, seq, first, groups)

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.bool().sum(1)  # (B,)

    def take(self, t: torch.Tensor) -> torch.Tensor:
        """(B, T, ...) -> (N, ...): the real positions, in packed order."""
        return t.flatten(0, 1).index_select(0, self.index)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """(N, H) -> (B, T, H) in the caller's order, zeros at the padding (differentiable)."""
        B, T = self.mask.shape
        return x.new_zeros(B * T, x.shape[-1]).index_copy(0, self.index, x).view(B, T, -1)


# A new attention group starts when a sequence is at most this fraction of the group's longest (its share of the
# grid then falls below ~half) and the group already holds GROUP_MIN sequences (each group costs a few extra ops).
GROUP_SHRINK = 0.75
GROUP_MIN = 8


def group_lengths(sorted_lengths: list[int]) -> list[int]:
    """Sizes of consecutive attention groups for sequence lengths sorted longest first."""
    sizes, width = [], 0
    for length in sorted_lengths:
        if not sizes or (sizes[-1] >= GROUP_MIN and length <= GROUP_SHRINK * width):
            sizes.append(0)
            width = length
        sizes[-1] += 1
    return sizes


class SelfAttention(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.n_head = config.num_attention_heads
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.hidden_size, config.hidden_size)
        self.value = nn.Linear(config.hidden_size, config.hidden_size)
        self.out = nn.Linear(config.hidden_size, config.hidden_size)
        self.attn_dropout = config.attention_probs_dropout_prob
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attend = sdpa_attention  # swap for reference_attention to check the fused path

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, packed: Packed | None = None) -> torch.Tensor:
        """x: (B, T, H) padded with its additive ``mask``, or (N, H) packed real tokens with ``packed``."""
        q, k, v = self.query(x), self.key(x), self.value(x)  # (B, T, H) or (N, H)
        if packed is None:
            y = self._attend(q, k, v, mask)  # (B, T, H)
        else:
            # One split per tensor, not a slice per group: a slice's backward writes into a fresh (N, H) of zeros.
            sizes = [g.end - g.start for g in packed.groups]
            parts = [g.take(self._attend(g.pad(qg), g.pad(kg), g.pad(vg), g.mask))
                     for g, qg, kg, vg in zip(packed.groups, q.split(sizes), k.split(sizes), v.split(sizes))]
            y = parts[0] if len(parts) == 1 else torch.cat(parts) if parts else torch.zeros_like(q)  # (N, H)
        return self._output(x, y)

    def _output(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.dropout(self.out(y)))  # post-LayerNorm residual, as in BERT

    def _attend(self, q, k, v, mask) -> torch.Tensor:
        """(B, T, H) each -> (B, T, H): multi-head attention on one padded grid."""
        B, T, H = q.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(B, T, self.n_head, H // self.n_head).transpose(1, 2)  # (B, nh, T, hd)

        p = self.attn_dropout if self.training else 0.0
        y = self.attend(heads(q), heads(k), heads(v), mask, p)  # (B, nh, T, hd)
        return y.transpose(1, 2).reshape(B, T, H)


class FeedForward(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.up = nn.Linear(config.hidden_size, config.intermediate_size)
        self.down = nn.Linear(config.intermediate_size, config.hidden_size)
        self.act = _ACTIVATIONS[config.hidden_act]
        self.dropout = Dropout(config.hidden_dropout_prob)
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.dropout(self.down(self.act(self.up(x)))))  # (B, T, H) or (N, H): per token


class Layer(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.attention = SelfAttention(config)
        self.ffn = FeedForward(config)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, packed: Packed | None = None) -> torch.Tensor:
        return self.ffn(self.attention(x, mask, packed))


class BertModel(nn.Module):
    """Token embeddings through the encoder stack; returns the last hidden states (B, T, H)."""

    def __init__(self, config: BertConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(Layer(config) for _ in range(config.num_hidden_layers))

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, H)
        mask = additive_mask(attention_mask, x.dtype)  # (B, 1, 1, T)
        for layer in self.layers:
            x = layer(x, mask)
        return x

    def forward_packed(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, Packed]:
        """The same hidden states for the real tokens only: (N, H) packed (longest sequence first), plus where they
        sit in (B, T). Every per-token op skips the padding; equal to ``forward(...)`` at the real positions.
        """
        packed = Packed.from_mask(attention_mask, self.embeddings.word.weight.dtype)
        positions = packed.index % input_ids.shape[1]  # (N,) each token's column in (B, T): its position, as padded
        types = None if token_type_ids is None else packed.take(token_type_ids)
        x = self.embeddings(packed.take(input_ids), types, positions)  # (N, H)
        for layer in self.layers:
            x = layer(x, None, packed)
        return x, packed

    def set_attention(self, attend) -> None:
        """Choose the attention implementation for every layer (``sdpa_attention`` or ``reference_attention``)."""
        for layer in self.layers:
            layer.attention.attend = attend


def additive_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, T) 0/1 -> (B, 1, 1, T) additive, broadcast over heads and query positions.

    Padded keys get the dtype's most negative value, as transformers does, so a fully padded row still yields finite
    (uniform) probabilities.
    """
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


# ----------------------------------------------------------------------------------------------- pooling

POOLING_MODES = ("mean", "cls", "max")


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: str) -> torch.Tensor:
    """Reduce token vectors (B, T, H) to one vector per sequence (B, H), ignoring padding."""
    if mode == "cls":
        return hidden[:, 0]
    keep = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    if mode == "mean":
        # The 1e-9 clamp matches sentence-transformers and keeps an all-padding row at zero instead of NaN.
        return (hidden * keep).sum(1) / keep.sum(1).clamp(min=1e-9)
    if mode == "max":
        # Padding is pushed to the most negative finite value so it never wins; every real sequence has [CLS].
        return hidden.masked_fill(keep == 0, torch.finfo(hidden.dtype).min).max(dim=1).values
    raise ValueError(f"unknown pooling mode {mode!r}; expected one of {POOLING_MODES}")


def pool_packed(x: torch.Tensor, packed: Packed, mode: str) -> torch.Tensor:
    """``pool`` on packed token vectors (N, H) -> (B, H), without rebuilding the padded grid."""
    B, H = packed.mask.shape[0], x.shape[-1]
    if mode == "cls":
        # The first real token; with right padding (the tokenizer's) that is column 0, as ``pool`` takes.
        return x.index_select(0, packed.first.clamp(max=max(x.shape[0] - 1, 0)))
    if mode == "mean":
        total = x.new_zeros(B, H).index_add(0, packed.seq, x)  # (B, H)
        return total / packed.lengths.unsqueeze(1).to(x.dtype).clamp(min=1e-9)
    if mode == "max":
        # include_self=False: each row's max over its own tokens only (an empty row keeps the 0 it starts with).
        index = packed.seq.unsqueeze(1).expand(-1, H)  # (N, H)
        return x.new_zeros(B, H).scatter_reduce(0, index, x, reduce="amax", include_self=False)
    raise ValueError(f"unknown pooling mode {mode!r}; expected one of {POOLING_MODES}")
