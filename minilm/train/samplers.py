"""Batch samplers: which rows go together in a batch, deterministic given (seed, epoch), resumable mid-epoch.

Each sampler builds the whole epoch's batch list from a torch.Generator seeded with seed + epoch, then yields
it from the current position. Resuming therefore only needs (epoch, position): the list is rebuilt
identically and the batches already consumed are skipped. Call `set_epoch(e)` at the start of every epoch.
"""

from collections import deque
from collections.abc import Hashable, Iterator, Sequence

import torch

__all__ = ["RandomBatchSampler", "NoDuplicatesBatchSampler", "GroupByLabelBatchSampler", "TensionPairSampler"]


def _check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")


def _randperm(n: int, generator: torch.Generator) -> list[int]:
    return torch.randperm(n, generator=generator).tolist()


class _Resumable:
    """Epoch/position bookkeeping shared by all samplers; subclasses implement `_build(generator)`."""

    def __init__(self, seed: int):
        if not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.seed, self.epoch, self.position = seed, 0, 0
        self._cache: tuple[int, list] | None = None

    def _build(self, generator: torch.Generator) -> list:
        raise NotImplementedError

    def batches(self, epoch: int | None = None) -> list:
        """All batches of an epoch (default: the current one), in order."""
        epoch = self.epoch if epoch is None else epoch
        if self._cache is None or self._cache[0] != epoch:
            self._cache = (epoch, self._build(torch.Generator().manual_seed(self.seed + epoch)))
        return self._cache[1]

    def set_epoch(self, epoch: int) -> None:
        if not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
        self.epoch, self.position = epoch, 0

    def __len__(self) -> int:
        return len(self.batches())

    def __iter__(self) -> Iterator:
        batches = self.batches()
        while self.position < len(batches):
            self.position += 1  # counted when handed out, so a checkpoint taken while it trains resumes after it
            yield batches[self.position - 1]
        self.position = 0  # a finished epoch can be iterated again from the start

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.epoch, self.position = state["seed"], state["epoch"], state["position"]


def _chunk(order: list[int], batch_size: int, drop_last: bool) -> list[list[int]]:
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    return batches


class RandomBatchSampler(_Resumable):
    """A fresh random permutation of all rows per epoch, cut into batches."""

    def __init__(self, num_rows: int, batch_size: int, seed: int = 0, drop_last: bool = False):
        _check_batch_size(batch_size)
        if not isinstance(num_rows, int) or num_rows < 1:
            raise ValueError(f"num_rows must be a positive int, got {num_rows!r}")
        super().__init__(seed)
        self.num_rows, self.batch_size, self.drop_last = num_rows, batch_size, drop_last

    def _build(self, generator: torch.Generator) -> list[list[int]]:
        return _chunk(_randperm(self.num_rows, generator), self.batch_size, self.drop_last)


class NoDuplicatesBatchSampler(_Resumable):
    """Random batches in which no text appears twice, across all columns (in-batch negatives must be negatives).

    `columns` are the text columns, e.g. [anchors, positives, negatives]. Rows are taken in a random order; a
    row sharing a text with the batch being filled is deferred, keeping its place ahead of unseen rows, so it
    starts a later batch. Near the end, batches may come out short (dropped if `drop_last`), so the
    number of batches can exceed ceil(rows / batch_size); `len()` is exact for the current epoch.
    """

    def __init__(self, columns: Sequence[Sequence[str]], batch_size: int, seed: int = 0, drop_last: bool = False):
        _check_batch_size(batch_size)
        if not columns or len({len(c) for c in columns}) != 1 or len(columns[0]) == 0:
            raise ValueError("columns must be non-empty text columns of equal, non-zero length")
        super().__init__(seed)
        self.row_texts = [frozenset(row) for row in zip(*columns)]  # texts of each row
        self.batch_size, self.drop_last = batch_size, drop_last

    def _build(self, generator: torch.Generator) -> list[list[int]]:
        pending = deque(_randperm(len(self.row_texts), generator))  # rows not yet in a batch, in order
        batches = []
        while pending:
            batch, seen, deferred = [], set(), []
            while pending and len(batch) < self.batch_size:
                row = pending.popleft()
                if seen.isdisjoint(self.row_texts[row]):
                    batch.append(row)
                    seen.update(self.row_texts[row])
                else:
                    deferred.append(row)
            pending.extendleft(reversed(deferred))  # deferred rows keep their place ahead of unseen ones
            if len(batch) == self.batch_size or not self.drop_last:
                batches.append(batch)
        return batches


class GroupByLabelBatchSampler(_Resumable):
    """Batches made of same-label pairs, so each label in a batch has at least two rows (batch-hard mining).

    Per epoch: each label's rows are shuffled and cut into pairs (an odd row out is left out). Then in rounds,
    the labels that still have pairs give one pair each, in a random order; the stream stops when fewer than
    two labels are left, so the tail of a dominant label is not used. Adjacent pairs never share a label,
    so every batch holds at least two labels, each with at least two rows.
    The stream is cut into batches of `batch_size` (even, >= 4); a last partial batch is kept unless
    `drop_last`, if it has at least two pairs. Labels with a single row are never used.
    """

    def __init__(self, labels: Sequence[Hashable], batch_size: int, seed: int = 0, drop_last: bool = False):
        _check_batch_size(batch_size)
        if batch_size < 4 or batch_size % 2:
            raise ValueError(f"batch_size must be even and >= 4 (whole pairs of at least two labels), got {batch_size}")
        super().__init__(seed)
        groups: dict[Hashable, list[int]] = {}
        for row, label in enumerate(labels):
            groups.setdefault(label, []).append(row)
        self.groups = [rows for rows in groups.values() if len(rows) >= 2]  # first-appearance order
        if len(self.groups) < 2:
            raise ValueError(
                f"labels must have at least 2 distinct labels with >= 2 rows each, found {len(self.groups)}"
            )
        self.batch_size, self.drop_last = batch_size, drop_last

    def _build(self, generator: torch.Generator) -> list[list[int]]:
        pairs = []  # per label: list of (row, row)
        for rows in self.groups:
            shuffled = [rows[i] for i in _randperm(len(rows), generator)]
            pairs.append([shuffled[i : i + 2] for i in range(0, len(rows) - 1, 2)])
        stream, round_, last = [], 0, None
        while sum(len(p) > round_ for p in pairs) >= 2:
            live = [k for k, p in enumerate(pairs) if len(p) > round_]
            live = [live[i] for i in _randperm(len(live), generator)]
            if live[0] == last:  # two adjacent pairs never share a label, so any 4 rows hold 2 labels
                live[0], live[1] = live[1], live[0]
            for k in live:
                stream += pairs[k][round_]
            round_, last = round_ + 1, live[-1]
        batches = _chunk(stream, self.batch_size, drop_last=self.drop_last)
        if batches and len(batches[-1]) < 4:
            batches.pop()  # a lone pair would be a batch with a single label
        return batches


class TensionPairSampler(_Resumable):
    """Contrastive Tension's batches from one text column: ``batch_size`` pairs of row indices (i, j) each.

    Per epoch the rows are shuffled and consumed in order, as sentence-transformers' ContrastiveTensionDataLoader
    does: pair p of a batch is an identical pair (i, i) when p % pos_neg_ratio == 0, else a pair of the next two rows
    (a random pair). So each batch holds one identical pair, then ``pos_neg_ratio - 1`` random ones, and so on; the
    label of a pair is whether i == j (``model_copy.TextPairs``). Rows too few for a whole batch at the end of
    the epoch are left out, so every batch has the same mix.
    """

    def __init__(self, num_rows: int, batch_size: int, pos_neg_ratio: int = 8, seed: int = 0):
        _check_batch_size(batch_size)
        if not isinstance(num_rows, int) or num_rows < 1:
            raise ValueError(f"num_rows must be a positive int, got {num_rows!r}")
        if isinstance(pos_neg_ratio, bool) or not isinstance(pos_neg_ratio, int) or pos_neg_ratio < 2:
            raise ValueError(
                f"pos_neg_ratio must be an int >= 2 (one identical pair per pos_neg_ratio pairs; 1 would "
                f"leave no random pair to tell apart), got {pos_neg_ratio!r}"
            )
        super().__init__(seed)
        self.num_rows, self.batch_size, self.pos_neg_ratio = num_rows, batch_size, pos_neg_ratio

    def rows_per_batch(self) -> int:
        identical = -(-self.batch_size // self.pos_neg_ratio)  # pairs 0, r, 2r, ...
        return 2 * self.batch_size - identical

    def _build(self, generator: torch.Generator) -> list[list[tuple[int, int]]]:
        order = iter(_randperm(self.num_rows, generator))
        batches = []
        for _ in range(self.num_rows // self.rows_per_batch()):
            batch = []
            for p in range(self.batch_size):
                first = next(order)
                batch.append((first, first if p % self.pos_neg_ratio == 0 else next(order)))
            batches.append(batch)
        return batches
