"""Batch samplers: their guarantees, determinism per (seed, epoch), and bit-identical mid-epoch resume."""

import random
from collections import Counter
from itertools import islice

import pytest
import torch

from minilm.train.samplers import (
    GroupByLabelBatchSampler,
    NoDuplicatesBatchSampler,
    RandomBatchSampler,
    TensionPairSampler,
)


def _dup_columns(n: int = 200, seed: int = 0) -> list[list[str]]:
    """Anchor/positive/negative columns with many repeated texts, also across columns."""
    rng = random.Random(seed)
    a = [f"q{rng.randrange(40)}" for _ in range(n)]
    p = [f"p{rng.randrange(60)}" for _ in range(n)]
    return [a, p, [rng.choice(a + p) for _ in range(n)]]


def _labels(n: int = 150, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [min(int(rng.expovariate(0.3)), 12) for _ in range(n)]  # skewed: one dominant label, some singletons


def _samplers() -> dict:
    return {
        "random": lambda: RandomBatchSampler(103, 8, seed=3),
        "nodup": lambda: NoDuplicatesBatchSampler(_dup_columns(), 16, seed=3),
        "label": lambda: GroupByLabelBatchSampler(_labels(), 8, seed=3),
        "tension": lambda: TensionPairSampler(101, 6, pos_neg_ratio=4, seed=3),
    }


def test_random_batches_cover_rows_once():
    s = RandomBatchSampler(103, 8, seed=0)
    batches = list(s)
    assert len(batches) == len(s) == 13 and [len(b) for b in batches[:-1]] == [8] * 12 and len(batches[-1]) == 7
    assert sorted(i for b in batches for i in b) == list(range(103))
    s.set_epoch(1)
    assert list(s) != batches  # a new permutation per epoch
    dropped = RandomBatchSampler(103, 8, seed=0, drop_last=True)
    assert len(dropped) == 12 and list(dropped) == batches[:12]


def test_random_uses_torch_generator_seeded_with_seed_plus_epoch():
    s = RandomBatchSampler(20, 5, seed=10)
    s.set_epoch(2)
    order = torch.randperm(20, generator=torch.Generator().manual_seed(12)).tolist()
    assert list(s) == [order[i : i + 5] for i in range(0, 20, 5)]


def test_no_duplicates_never_repeats_a_text():
    cols = _dup_columns()
    for drop_last in (False, True):
        s = NoDuplicatesBatchSampler(cols, 16, seed=1, drop_last=drop_last)
        batches = list(s)
        assert len(batches) == len(s)
        for b in batches:
            texts = [c[i] for i in b for c in cols]
            row_texts = sum(len({c[i] for c in cols}) for i in b)  # a row may repeat a text within itself
            assert len(set(texts)) == row_texts
        rows = [i for b in batches for i in b]
        assert len(rows) == len(set(rows))
        if drop_last:
            assert all(len(b) == 16 for b in batches)
        else:
            assert sorted(rows) == list(range(200))  # deferred, never skipped


def test_no_duplicates_matches_sentence_transformers_first_pass():
    # ST's sampler reads rows through dataset[i]; a minimal stand-in avoids needing the `datasets` package.
    from sentence_transformers.base.sampler import NoDuplicatesBatchSampler as STNoDuplicates

    class Rows:
        def __init__(self, cols: dict):
            self.cols, self.column_names = cols, list(cols)

        def __len__(self) -> int:
            return len(self.cols["anchor"])

        def __getitem__(self, i: int) -> dict:
            return {k: v[i] for k, v in self.cols.items()}

    cols = _dup_columns()
    for epoch in (0, 3):
        ref = STNoDuplicates(
            Rows(dict(zip(["anchor", "positive", "negative"], cols))),
            batch_size=16,
            drop_last=False,
            generator=torch.Generator(),
            seed=7,
        )
        ref.set_epoch(epoch)
        ours = NoDuplicatesBatchSampler(cols, 16, seed=7)
        ours.set_epoch(epoch)
        assert list(ours) == list(ref)


def test_group_by_label_pairs_every_label():
    labels = _labels()
    counts = Counter(labels)
    for drop_last in (False, True):
        s = GroupByLabelBatchSampler(labels, 8, seed=0, drop_last=drop_last)
        batches = list(s)
        assert batches and len(batches) == len(s)
        for b in batches:
            per_label = Counter(labels[i] for i in b)
            assert min(per_label.values()) >= 2 and len(per_label) >= 2
            assert len(b) == 8 or (not drop_last and b is batches[-1] and len(b) >= 4 and len(b) % 2 == 0)
        rows = [i for b in batches for i in b]
        assert len(rows) == len(set(rows))
        assert all(counts[labels[i]] >= 2 for i in rows)  # singleton labels can never be paired
    # any hashable labels: the same grouping gives the same batches
    assert list(GroupByLabelBatchSampler([f"L{x}" for x in labels], 8)) == list(GroupByLabelBatchSampler(labels, 8))


@pytest.mark.parametrize("kind", list(_samplers()))
def test_same_seed_same_order_and_epochs_differ(kind):
    make = _samplers()[kind]
    first, second = make(), make()
    assert list(first) == list(second)
    assert list(first) == list(second)  # a finished epoch restarts from its beginning
    second.set_epoch(1)
    assert list(second) != list(first)


@pytest.mark.parametrize("kind", list(_samplers()))
def test_resume_mid_epoch_is_identical(kind):
    make = _samplers()[kind]
    run = make()
    run.set_epoch(2)
    it = iter(run)
    head = list(islice(it, 3))
    state = dict(run.state_dict())
    tail = list(it)
    resumed = make()
    resumed.load_state_dict(state)
    assert resumed.epoch == 2
    assert list(resumed) == tail and len(head) == 3
    resumed.set_epoch(3)
    reference = make()
    reference.set_epoch(3)
    assert list(resumed) == list(reference)


def test_tension_pairs_are_one_identical_pair_then_random_ones_each_row_used_once():
    """As sentence-transformers' ContrastiveTensionDataLoader: rows shuffled and consumed in order, pair p identical
    when p % pos_neg_ratio == 0; here batch_size 6 is no multiple of the ratio 4, so pairs 0 and 4 are identical."""
    sampler = TensionPairSampler(101, 6, pos_neg_ratio=4, seed=3)
    batches = sampler.batches(0)
    assert sampler.rows_per_batch() == 2 * 6 - 2 and len(batches) == 101 // 10
    for batch in batches:
        assert len(batch) == 6
        assert [i == j for i, j in batch] == [True, False, False, False, True, False]
    rows = [i for batch in batches for pair in batch for i in dict.fromkeys(pair)]
    assert len(rows) == len(set(rows)) == 10 * len(batches)  # no row twice in an epoch; the short tail left out
    assert len(TensionPairSampler(9, 6, pos_neg_ratio=4).batches(0)) == 0  # fewer rows than a batch needs


def test_bad_arguments():
    with pytest.raises(ValueError, match="batch_size"):
        RandomBatchSampler(10, 0)
    with pytest.raises(ValueError, match="num_rows"):
        RandomBatchSampler(0, 4)
    with pytest.raises(TypeError, match="seed"):
        RandomBatchSampler(10, 4, seed=1.5)
    with pytest.raises(ValueError, match="columns"):
        NoDuplicatesBatchSampler([["a", "b"], ["c"]], 2)
    with pytest.raises(ValueError, match="batch_size must be even"):
        GroupByLabelBatchSampler([0, 0, 1, 1], 6 - 1)
    with pytest.raises(ValueError, match="at least 2 distinct labels"):
        GroupByLabelBatchSampler([0, 0, 0, 1], 4)
    with pytest.raises(ValueError, match="epoch"):
        RandomBatchSampler(10, 4).set_epoch(-1)
    for ratio in (1, 2.0, True):
        with pytest.raises(ValueError, match="pos_neg_ratio must be an int >= 2"):
            TensionPairSampler(10, 4, pos_neg_ratio=ratio)
    with pytest.raises(ValueError, match="num_rows"):
        TensionPairSampler(0, 4)
    with pytest.raises(ValueError, match="batch_size"):
        TensionPairSampler(10, 0)
