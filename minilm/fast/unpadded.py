"""Unpadded execution: a ``BertModel`` run on the real tokens of a padded batch only.

A padded (B, T) batch holds N <= B * T real tokens. Every per-token op (embeddings, the linears, the feed-forward,
the LayerNorms) runs here on those N tokens, (N, H), and it is the model's own forward that runs them:
``forward_unpadded`` calls ``bert`` with an ``UnpaddedBatch`` in place of the padding mask (a ``model.Layout``), so
hooks and edits on ``model.py``'s modules apply here too. Only attention needs the tokens of one sequence side by
side; it asks the layout (``UnpaddedBatch.attend``), which goes back to padded grids. Not to one (B, T) grid:
sequences are taken longest first and cut into groups of similar length (``group_lengths``), each padded only to its
own longest, since a random training batch spends most of a (B, T, T) attention grid on padding.
benchmarks/README.md compares this layout with one grid, a block-diagonal mask and nested tensors. Pooling indexes by
original sequence, so the caller's order is kept and the results equal ``model.pool(bert(...), ...)`` at the real
tokens.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from minilm.model import POOLING_MODES, BertModel, SelfAttention, additive_mask

# A new attention group starts when a sequence is at most this fraction of the group's longest (its share of the
# grid then falls below ~half) and the group already holds GROUP_MIN sequences (each group costs a few extra ops).
GROUP_SHRINK = 0.75
GROUP_MIN = 8


# Unpadding costs a gather and a scatter around every layer's attention; it pays once the batch's grid is more than
# this share padding (measured on CPU, benchmarks/README.md). Below it, one padded grid is cheaper.
UNPAD_ABOVE = 0.1


def unpadding_pays(attention_mask: torch.Tensor) -> bool:
    """Whether a (B, T) batch should run unpadded: more than UNPAD_ABOVE of its grid is padding. Sentences of one
    length, a single sentence among them, have none and take the padded path. A pure function of the mask."""
    total = attention_mask.numel()
    return total == 0 or int(attention_mask.sum()) < (1 - UNPAD_ABOVE) * total


def group_lengths(sorted_lengths: list[int]) -> list[int]:
    """Sizes of consecutive attention groups for sequence lengths sorted longest first."""
    sizes, width = [], 0
    for length in sorted_lengths:
        if not sizes or (sizes[-1] >= GROUP_MIN and length <= GROUP_SHRINK * width):
            sizes.append(0)
            width = length
        sizes[-1] += 1
    return sizes


@dataclass
class Group:
    """Consecutive unpadded sequences padded together for attention: unpadded rows [start, end) on an (n, T) grid."""

    start: int
    end: int
    n: int  # sequences in the group
    T: int  # the group's longest sequence: its grid width
    index: torch.Tensor  # (end - start,) flat position of each of those rows in the (n * T) grid
    mask: torch.Tensor  # (n, 1, 1, T) additive attention mask of the grid

    def pad(self, rows: torch.Tensor) -> torch.Tensor:
        """This group's unpadded rows (end - start, C) -> its grid (n, T, C), zeros at the padding (differentiable)."""
        return rows.new_zeros(self.n * self.T, rows.shape[-1]).index_copy(0, self.index, rows).view(self.n, self.T, -1)

    def take(self, grid: torch.Tensor) -> torch.Tensor:
        """(n, T, C) -> (end - start, C): the group's real positions, in unpadded order."""
        return grid.flatten(0, 1).index_select(0, self.index)


@dataclass
class UnpaddedBatch:
    """Where the real tokens of a padded (B, T) batch sit once unpadded into (N, ...), longest sequence first."""

    index: torch.Tensor  # (N,) flat position of each unpadded row in the (B * T) padded grid
    mask: torch.Tensor  # (B, T) the attention mask they came from, 1 for real tokens
    seq: torch.Tensor  # (N,) which (original) sequence each unpadded row belongs to
    first: torch.Tensor  # (B,) unpadded row of each sequence's first real token
    groups: list[Group]  # attention groups, covering the unpadded rows in order

    @classmethod
    def from_mask(cls, attention_mask: torch.Tensor, dtype: torch.dtype = torch.float32) -> UnpaddedBatch:
        """Unpad by the 0/1 mask (B, T); ``dtype`` is that of the hidden states (for the additive masks)."""
        keep = attention_mask.bool()  # (B, T)
        B, T = keep.shape
        device = keep.device
        lengths = keep.sum(1)  # (B,)
        order = torch.sort(lengths, descending=True, stable=True).indices  # (B,) longest first
        sorted_lengths = lengths[order]  # (B,)
        grid = order[:, None] * T + torch.arange(T, device=device)  # (B, T) flat positions, rows in unpadded order
        index = grid[keep[order]]  # (N,)
        lengths_list = sorted_lengths.tolist()  # a host sync (as is the boolean index above); output_size below
        # spares each repeat_interleave one of its own
        N = sum(lengths_list)
        seq = torch.repeat_interleave(order, sorted_lengths, output_size=N)  # (N,)
        starts = sorted_lengths.cumsum(0) - sorted_lengths  # (B,) unpadded row where each sorted sequence starts
        first = torch.empty_like(starts).scatter_(0, order, starts)  # an empty row points past its neighbours
        column = torch.arange(N, device=device) - torch.repeat_interleave(starts, sorted_lengths, output_size=N)
        groups, start, s0 = [], 0, 0
        for n in group_lengths(lengths_list):
            width, rows = lengths_list[s0], sum(lengths_list[s0 : s0 + n])
            if rows:  # a group of empty sequences has nothing to attend
                local = torch.repeat_interleave(
                    torch.arange(n, device=device), sorted_lengths[s0 : s0 + n], output_size=rows
                )
                mask = torch.arange(width, device=device) < sorted_lengths[s0 : s0 + n, None]  # (n, width)
                group_index = local * width + column[start : start + rows]
                groups.append(Group(start, start + rows, n, width, group_index, additive_mask(mask, dtype)))
            start, s0 = start + rows, s0 + n
        return cls(index, attention_mask, seq, first, groups)

    @property
    def lengths(self) -> torch.Tensor:
        return self.mask.bool().sum(1)  # (B,)

    def take(self, t: torch.Tensor) -> torch.Tensor:
        """(B, T, ...) -> (N, ...): the real positions, in unpadded order."""
        return t.flatten(0, 1).index_select(0, self.index)

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """(N, H) -> (B, T, H) in the caller's order, zeros at the padding (differentiable)."""
        B, T = self.mask.shape
        return x.new_zeros(B * T, x.shape[-1]).index_copy(0, self.index, x).view(B, T, -1)

    def attend(
        self,
        attention: SelfAttention,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, None]:
        """The ``model.Layout`` hook: ``attention.attend`` for unpadded q, k, v (N, H) -> (N, H), each group of
        sequences on its own padded grid."""
        if output_attentions:
            raise ValueError("output_attentions needs the padded path: the unpadded one has no (B, nh, T, T) grid")
        # One split per tensor, not a slice per group: a slice's backward writes into a fresh (N, H) of zeros.
        sizes = [g.end - g.start for g in self.groups]
        parts = [
            g.take(attention.attend(g.pad(qg), g.pad(kg), g.pad(vg), g.mask)[0])
            for g, qg, kg, vg in zip(self.groups, q.split(sizes), k.split(sizes), v.split(sizes))
        ]
        return (parts[0] if len(parts) == 1 else torch.cat(parts) if parts else torch.zeros_like(q)), None  # (N, H)


def forward_unpadded(
    bert: BertModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    token_type_ids: torch.Tensor | None = None,
    output_hidden_states: bool = False,
) -> tuple[torch.Tensor | tuple[torch.Tensor, ...], UnpaddedBatch]:
    """``bert``'s last hidden state for the real tokens only, (N, H), longest sequence first, plus where they sit in
    (B, T): ``bert(input_ids, attention_mask, token_type_ids)`` at the real positions. With ``output_hidden_states``,
    every hidden state instead, L + 1 of (N, H) with the embedding output first (the layer losses pool them all).

    It is ``bert``'s own forward that runs, on the unpadded ids with the ``UnpaddedBatch`` as its layout.
    """
    batch = UnpaddedBatch.from_mask(attention_mask, bert.embeddings.word.weight.dtype)
    positions = batch.index % input_ids.shape[1]  # (N,) each token's column in (B, T): its position, as padded
    types = None if token_type_ids is None else batch.take(token_type_ids)
    out = bert(batch.take(input_ids), batch, types, output_hidden_states, position_ids=positions)  # (N, H)
    return (out.hidden_states if output_hidden_states else out), batch


def pool_unpadded(x: torch.Tensor, batch: UnpaddedBatch, mode: str) -> torch.Tensor:
    """``model.pool`` on unpadded token vectors (N, H) -> (B, H), without rebuilding the padded grid."""
    B, H = batch.mask.shape[0], x.shape[-1]
    if mode == "cls":
        # The first real token; with right padding (the tokenizer's) that is column 0, as ``pool`` takes.
        return x.index_select(0, batch.first.clamp(max=max(x.shape[0] - 1, 0)))
    if mode == "mean":
        total = x.new_zeros(B, H).index_add(0, batch.seq, x)  # (B, H)
        return total / batch.lengths.unsqueeze(1).to(x.dtype).clamp(min=1e-9)
    if mode == "max":
        # include_self=False: each row's max over its own tokens only (an empty row keeps the 0 it starts with).
        index = batch.seq.unsqueeze(1).expand(-1, H)  # (N, H)
        return x.new_zeros(B, H).scatter_reduce(0, index, x, reduce="amax", include_self=False)
    raise ValueError(f"unknown pooling mode {mode!r}; expected one of {POOLING_MODES}")
