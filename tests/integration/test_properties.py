"""Property tests (hypothesis): random bytes and random shapes never end in anything but rows or one clean error.

- data readers on random bytes and on random CSV / JSONL tables: a Dataset, or a ValueError naming the file;
- losses on random shapes and values: a finite loss and finite gradients, or a ValueError / TypeError naming the
  argument (non-finite embeddings: NonFiniteError);
- samplers: every row at most once per epoch, the batch size kept, no repeated text (no_duplicates), two labels with
  two rows each (group_by_label), same seed same batches;
- the tokenizer on random Unicode: ids in the vocabulary, at most max_seq_length of them; text that is not valid
  Unicode (a lone surrogate) a ValueError naming its index.
Example counts are kept small so the file runs in seconds; ``--hypothesis-seed`` replays a failure.
"""

import csv
import io
import json
import os
import random

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minilm.data.readers import read_rows, to_roles
from minilm.run.registry import LOSSES, make_loss
from minilm.train.samplers import GroupByLabelBatchSampler, NoDuplicatesBatchSampler, RandomBatchSampler
from minilm.util.checks import NonFiniteError

# Derandomised so CI is repeatable; MINILM_PROPERTY_EXAMPLES=2000 runs a long random search while you work.
EXAMPLES = os.environ.get("MINILM_PROPERTY_EXAMPLES")
FAST = settings(
    max_examples=int(EXAMPLES or 60),
    derandomize=not EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def clean(path, error: Exception) -> None:
    """A data error: a ValueError whose message starts with the file, or names it."""
    assert isinstance(error, ValueError), f"{type(error).__name__}: {error}"
    assert str(path) in str(error) or path.name in str(error), str(error)


def read_or_error(path, **kwargs):
    try:
        ds = read_rows(path, **kwargs)
    except Exception as e:  # anything else than a clean ValueError fails the test in clean()
        clean(path, e)
        return None
    lengths = {len(values) for values in ds.columns.values()}
    assert lengths == {len(ds.lines)} and ds.lines == sorted(ds.lines) and len(ds) >= 1
    return ds


# ------------------------------------------------------------------------------------------- data readers


@FAST
@given(data=st.binary(max_size=400), suffix=st.sampled_from([".csv", ".tsv", ".jsonl"]))
def test_readers_on_random_bytes(tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("bytes") / f"d{suffix}"
    path.write_bytes(data)
    read_or_error(path)


CELL = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@FAST
@given(
    header=st.lists(
        st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=6),
        min_size=1,
        max_size=4,
        unique=True,
    ),
    rows=st.lists(st.lists(CELL, min_size=0, max_size=5), max_size=6),
    delimiter=st.sampled_from([",", "\t"]),
)
def test_random_tables_round_trip_or_fail_by_line(tmp_path_factory, header, rows, delimiter):
    path = tmp_path_factory.mktemp("table") / ("d.csv" if delimiter == "," else "d.tsv")
    buffer = io.StringIO()
    quoting = csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE
    try:
        csv.writer(buffer, delimiter=delimiter, quoting=quoting, escapechar=None, lineterminator="\n").writerows(
            [header, *rows]
        )
    except csv.Error:  # TSV without quoting cannot hold a tab or newline in a cell: not a table of that shape
        return
    path.write_text(buffer.getvalue(), encoding="utf-8")
    ds = read_or_error(path)
    if ds is not None and delimiter == ",":  # quoted CSV holds anything: what was written is what is read
        while rows and not rows[-1]:
            rows.pop()  # blank lines at the end are formatting, not rows
        assert [[ds.columns[h][i] for h in header] for i in range(len(ds))] == rows


JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | CELL,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(CELL, inner, max_size=3),
    max_leaves=6,
)


@FAST
@given(
    objects=st.lists(
        st.dictionaries(st.sampled_from(["anchor", "positive", "label", "x"]), JSON_VALUE, max_size=4) | JSON_VALUE,
        max_size=6,
    ),
    kind=st.sampled_from(["columns", "labels"]),
)
def test_random_jsonl_rows_or_one_error_by_line(tmp_path_factory, objects, kind):
    path = tmp_path_factory.mktemp("jsonl") / "d.jsonl"
    path.write_text("".join(json.dumps(o) + "\n" for o in objects), encoding="utf-8")
    ds = read_or_error(path)
    if ds is None:
        return
    roles = {"anchor": "anchor", "positive": "positive"} if kind == "columns" else {"text": "anchor", "label": "label"}
    try:
        out = to_roles(ds, roles, kind)
    except Exception as e:
        clean(path, e)
        return
    assert all(len(column) == len(ds) for column in out)


@FAST
@given(
    labels=st.lists(st.sampled_from(["1", "1.0", "01", "2", "cat", " 2", "2.50", "2.5", "-1"]), min_size=1, max_size=8)
)
def test_labels_are_ints_or_a_named_error(tmp_path_factory, labels):
    path = tmp_path_factory.mktemp("labels") / "d.csv"
    path.write_text("text,label\n" + "".join(f"t{i},{v}\n" for i, v in enumerate(labels)), encoding="utf-8")
    try:
        _, ids = to_roles(read_rows(path), {"text": "text", "label": "label"}, "labels")
    except ValueError as e:
        assert "is the number written" in str(e) and str(path) in str(e)
        return
    assert len(ids) == len(labels) and all(isinstance(i, int) for i in ids)
    for a, b in zip(labels, labels[1:]):  # equal spellings, equal ids
        if a == b:
            assert ids[labels.index(a)] == ids[labels.index(b)]


# ------------------------------------------------------------------------------------------- losses


@FAST
@given(
    name=st.sampled_from(sorted(LOSSES)),
    rows=st.integers(1, 6),
    width=st.integers(1, 8),
    scale=st.sampled_from([1e-3, 1.0, 1e3]),
    seed=st.integers(0, 2**16),
    poison=st.booleans(),
)
def test_losses_on_random_shapes_and_values(name, rows, width, scale, seed, poison):
    from minilm.losses.inputs import needs_of, split_output
    from minilm.run.registry import resolve_loss

    declared = needs_of(resolve_loss(name))
    gen = torch.Generator().manual_seed(seed)
    embeddings = [(torch.randn(rows, width, generator=gen) * scale).requires_grad_() for _ in range(declared.columns)]
    if poison:
        embeddings[0].data[0, 0] = float("nan")
    targets = {}
    if declared.kind == "labels":
        targets["labels"] = torch.randint(0, 3, (rows,), generator=gen)
    elif declared.kind == "scores":
        targets["scores"] = torch.rand(rows, generator=gen)
    if declared.guide:  # a guide model's embeddings of every column, of its own width
        targets["guide"] = [torch.randn(rows, 3, generator=gen) * scale for _ in embeddings]
    if declared.layers:  # every earlier layer's embeddings, shaped like the last, and the step's generator
        targets["layers"] = {i: [torch.randn(rows, width, generator=gen) * scale for _ in embeddings] for i in range(2)}
        targets["layer_rng"] = random.Random(seed)
    try:
        required = {"dims": [width]} if name == "matryoshka_2d" else {}  # its one setting without a default
        loss, _ = split_output(make_loss(name, required)(*embeddings, **targets))
    except NonFiniteError as e:
        assert poison and "contains NaN or infinite values" in str(e)
        return
    except (ValueError, TypeError) as e:
        assert str(e), f"{name}: an error without a message"
        return
    assert not poison, f"{name} accepted a NaN embedding"
    assert loss.ndim == 0 and torch.isfinite(loss), (name, loss)
    loss.backward()
    for e in embeddings:
        assert e.grad is None or torch.isfinite(e.grad).all(), name


@FAST
@given(
    name=st.sampled_from(sorted(LOSSES)),
    shapes=st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=4),
)
def test_losses_on_mismatched_shapes_name_the_argument(name, shapes):
    embeddings = [torch.randn(*shape) for shape in shapes]
    try:  # module losses (ArcFace...) are built for the first argument's width: a mismatch must be named too
        loss = make_loss(name, context={"embedding_dim": max(1, shapes[0][1]), "num_labels": 3})
        loss(*embeddings)
    except (ValueError, TypeError) as e:
        assert str(e)
        return
    # accepted: then the shapes were a valid call for this loss
    assert len({e.shape for e in embeddings}) == 1 and embeddings[0].shape[0] >= 1


# ------------------------------------------------------------------------------------------- samplers


@FAST
@given(rows=st.integers(1, 40), batch_size=st.integers(1, 12), seed=st.integers(0, 1000), epoch=st.integers(0, 3))
def test_random_sampler_covers_every_row_once(rows, batch_size, seed, epoch):
    sampler = RandomBatchSampler(rows, batch_size, seed=seed)
    batches = sampler.batches(epoch)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(rows)) and all(1 <= len(b) <= batch_size for b in batches)
    assert RandomBatchSampler(rows, batch_size, seed=seed).batches(epoch) == batches


@FAST
@given(
    texts=st.lists(st.tuples(st.sampled_from("abcdefg"), st.sampled_from("abcdefgh")), min_size=1, max_size=30),
    batch_size=st.integers(1, 8),
    seed=st.integers(0, 1000),
)
def test_no_duplicates_sampler_never_repeats_a_text_in_a_batch(texts, batch_size, seed):
    columns = [[a for a, _ in texts], [b for _, b in texts]]
    batches = NoDuplicatesBatchSampler(columns, batch_size, seed=seed).batches(0)
    assert sorted(i for b in batches for i in b) == list(range(len(texts)))
    for batch in batches:
        seen = [t for i in batch for t in {columns[0][i], columns[1][i]}]
        assert len(seen) == len(set(seen)) and 1 <= len(batch) <= batch_size


@FAST
@given(labels=st.lists(st.integers(0, 5), min_size=4, max_size=40), half=st.integers(2, 6), seed=st.integers(0, 99))
def test_group_by_label_batches_hold_two_labels_with_two_rows(labels, half, seed):
    try:
        sampler = GroupByLabelBatchSampler(labels, 2 * half, seed=seed)
    except ValueError as e:
        assert "at least 2 distinct labels" in str(e)
        return
    batches = sampler.batches(0)
    flat = [i for b in batches for i in b]
    assert len(flat) == len(set(flat))
    for batch in batches:
        counts = {}
        for i in batch:
            counts[labels[i]] = counts.get(labels[i], 0) + 1
        assert len(counts) >= 2 and min(counts.values()) >= 2 and len(batch) <= 2 * half


# ------------------------------------------------------------------------------------------- tokenizer


@pytest.fixture(scope="module")
def tokenizer(minilm_dir):
    from minilm.loading.tokenizer import WordPieceTokenizer

    return WordPieceTokenizer.from_dir(minilm_dir, 32)


@FAST
@given(texts=st.lists(st.text(max_size=80), min_size=1, max_size=5))
def test_tokenizer_on_random_unicode(tokenizer, texts):
    features = tokenizer(texts)
    ids, mask = features["input_ids"], features["attention_mask"]
    assert ids.shape == mask.shape and ids.shape[0] == len(texts) and ids.shape[1] <= 32
    assert int(ids.min()) >= 0 and int(ids.max()) < tokenizer.tokenizer.get_vocab_size()
    assert (mask.sum(1) >= 2).all()  # [CLS] and [SEP] at least


@FAST
@given(
    before=st.text(max_size=10),
    after=st.text(max_size=10),
    surrogate=st.integers(0xD800, 0xDFFF),
    index=st.integers(0, 3),
)
def test_text_that_is_not_unicode_is_named_by_index(tokenizer, before, after, surrogate, index):
    texts = ["fine"] * index + [before + chr(surrogate) + after]
    with pytest.raises(ValueError, match=rf"texts\[{index}\] is not valid Unicode text: surrogates not allowed"):
        tokenizer(texts)
