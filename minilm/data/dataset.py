"""The training data a run holds: text columns and per-row targets, batched by row indices from a sampler."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TrainData:
    """Text columns plus, for labelled or scored losses, one target per row, passed to the loss by name."""

    columns: list[list[str]]  # [anchors, positives, *negatives] | [texts] | [texts_a, texts_b]
    targets: list | None = None  # int labels or float scores, one per row
    target_name: str | None = None  # "labels" or "scores": the loss's keyword for the targets

    def __len__(self) -> int:
        return len(self.columns[0])

    def batch(self, rows: list[int]) -> tuple[list[list[str]], dict]:
        columns = [[column[i] for i in rows] for column in self.columns]
        if self.targets is None:
            return columns, {}
        dtype = torch.long if self.target_name == "labels" else torch.float32
        return columns, {self.target_name: torch.tensor([self.targets[i] for i in rows], dtype=dtype)}


class TextPairs(TrainData):
    """One text column, batched as pairs of row indices (``samplers.TensionPairSampler``, Contrastive Tension): the
    first text of each pair is one column, the second the other; the score is 1 for an identical pair (i, i), 0 for a
    random one."""

    def __init__(self, texts: list[str]):
        super().__init__(columns=[list(texts)])

    def batch(self, pairs: list[tuple[int, int]]) -> tuple[list[list[str]], dict]:
        texts = self.columns[0]
        columns = [[texts[i] for i, _ in pairs], [texts[j] for _, j in pairs]]
        return columns, {"scores": torch.tensor([float(i == j) for i, j in pairs])}
