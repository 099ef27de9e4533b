"""Gradient cache: loss and parameter gradients equal the plain loss on the whole batch.

Tolerances (float32): loss rtol 1e-6; each parameter gradient ||cached - plain|| <= 1e-5 ||plain|| + 1e-8 (the
absolute floor covers gradients that are 0 in exact arithmetic, e.g. attention key biases, which carry only ~1e-9 of
rounding noise). Mini-batches are padded to their own length, so agreement is to rounding, not bit-for-bit.
"""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_encoder

from minilm import losses as L
from minilm.train.grad_cache import cached_loss_backward, split_column
from minilm.train.step import embed_columns, loss_backward

WORDS = ["cats", "dogs", "rain", "sun", "cars", "trains", "food", "music"]
ANCHORS = [f"what about {w}?" for w in WORDS]
POSITIVES = [f"a short note on {w}" + " indeed" * (i % 4) for i, w in enumerate(WORDS)]  # ragged lengths
NEGATIVES = [f"nothing on {w} here" for w in reversed(WORDS)]


@pytest.fixture(scope="module")
def real_model(real_model):
    return real_model


@pytest.fixture(scope="module")
def tiny_model(real_model):
    """Random 2-layer encoder with the real tokenizer: fast enough to run several steps with dropout on."""
    return tiny_encoder(
        real_model.tokenizer,
        num_attention_heads=2,
        max_position_embeddings=512,
        hidden_dropout_prob=0.2,
        attention_probs_dropout_prob=0.2,
    )


def _step(model, fn):
    model.zero_grad(set_to_none=True)
    loss = fn()
    return loss, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _assert_same(a, b, atol=1e-8):
    (loss_a, grads_a), (loss_b, grads_b) = a, b
    assert loss_a.item() == pytest.approx(loss_b.item(), rel=1e-6)
    assert grads_a.keys() == grads_b.keys() and grads_a
    for name in grads_a:
        err = (grads_a[name] - grads_b[name]).norm().item()
        assert err <= 1e-5 * grads_b[name].norm().item() + atol, name


@pytest.mark.slow
def test_cached_mnrl_equals_plain_on_real_model(real_model):
    real_model.eval()  # dropout off: both paths see the same function
    columns = [ANCHORS, POSITIVES]
    plain = _step(real_model, lambda: loss_backward(real_model, columns, L.multiple_negatives_ranking_loss))
    cached = _step(real_model, lambda: loss_backward(real_model, columns, L.multiple_negatives_ranking_loss, 4))
    _assert_same(cached, plain)
    assert not cached[0].requires_grad


@pytest.mark.slow
def test_cached_with_dropout_is_reproducible_on_real_model(real_model):
    real_model.train()
    try:
        runs = []
        for _ in range(2):
            torch.manual_seed(123)
            runs.append(
                _step(
                    real_model,
                    lambda: cached_loss_backward(
                        real_model, [ANCHORS, POSITIVES], L.multiple_negatives_ranking_loss, 4
                    ),
                )
            )
    finally:
        real_model.eval()
    (loss_a, grads_a), (loss_b, grads_b) = runs
    assert loss_a.item() == loss_b.item()
    assert all(torch.equal(grads_a[n], grads_b[n]) for n in grads_a)


@pytest.mark.slow
def test_dropout_masks_are_replayed(tiny_model):
    """Under dropout, cached == embedding the same mini-batches with grad in the same order: the replayed forward
    drew the same masks as the no-grad one (without the RNG replay this differs by O(1))."""
    tiny_model.train()
    columns = [ANCHORS, POSITIVES, NEGATIVES]

    def chunked_plain():
        embeddings = [torch.cat([tiny_model(**f) for f in split_column(tiny_model, c, 3)]) for c in columns]
        loss = L.multiple_negatives_ranking_loss(*embeddings, scale=10.0)
        loss.backward()
        return loss.detach()

    torch.manual_seed(5)
    reference = _step(tiny_model, chunked_plain)
    torch.manual_seed(5)
    cached = _step(
        tiny_model, lambda: cached_loss_backward(tiny_model, columns, L.multiple_negatives_ranking_loss, 3, scale=10.0)
    )
    _assert_same(cached, reference)
    after_cached = torch.rand(1)
    torch.manual_seed(5)
    _step(tiny_model, chunked_plain)
    assert torch.equal(after_cached, torch.rand(1))  # the outer RNG stream advances exactly as in a plain step


def test_feature_dicts_labels_and_matryoshka(tiny_model):
    """Pre-tokenised columns, a loss taking labels through loss_kwargs, and a wrapped loss all go through."""
    tiny_model.eval()
    texts = ANCHORS + POSITIVES
    labels = torch.arange(len(texts)) % 5
    loss_fn = L.matryoshka(L.batch_hard_triplet_loss, dims=(32, 16))
    features = tiny_model.tokenize(texts)
    plain = _step(tiny_model, lambda: loss_backward(tiny_model, [features], loss_fn, labels=labels, margin=0.2))
    for column in (features, texts):
        cached = _step(tiny_model, lambda: loss_backward(tiny_model, [column], loss_fn, 5, labels=labels, margin=0.2))
        _assert_same(cached, plain)


@pytest.mark.slow
def test_grads_accumulate_like_backward(tiny_model):
    tiny_model.eval()
    columns = [ANCHORS, POSITIVES]
    scores = torch.tensor([0.1, 0.9, 0.4, 0.4, 0.0, 1.0, 0.7, 0.3])
    loss, once = _step(tiny_model, lambda: cached_loss_backward(tiny_model, columns, L.cosent_loss, 3, scores=scores))
    twice = _step(
        tiny_model,
        lambda: [cached_loss_backward(tiny_model, columns, L.cosent_loss, 3, scores=scores) for _ in range(2)][0],
    )
    _assert_same(twice, (loss, {name: 2 * g for name, g in once.items()}))


def test_joint_forward_equals_one_forward_per_column(tiny_model):
    """The plain path embeds all columns in one batch; texts, ragged feature dicts and a mix of both must give
    each column's own embeddings and the per-column loss's gradients (eval mode, float32 rounding only)."""
    tiny_model.eval()
    columns = [ANCHORS, POSITIVES, NEGATIVES]

    def one_forward_per_column():
        loss = L.multiple_negatives_ranking_loss(*[tiny_model.embed(c) for c in columns])
        loss.backward()
        return loss.detach()

    per_column = _step(tiny_model, one_forward_per_column)
    joint = _step(tiny_model, lambda: loss_backward(tiny_model, columns, L.multiple_negatives_ranking_loss))
    _assert_same(joint, per_column)
    expected = [tiny_model.embed(c).detach() for c in columns]
    features = [tiny_model.tokenize(c) for c in columns]
    assert len({f["input_ids"].shape[1] for f in features}) > 1  # ragged widths get padded to the widest
    for mixed in (features, [features[0], POSITIVES, features[2]]):
        for got, want in zip(embed_columns(tiny_model, mixed), expected):
            assert (got.detach() - want).abs().max() <= 1e-6


def test_joint_forward_refuses_mismatched_feature_keys_and_shapes(tiny_model):
    a = tiny_model.tokenize(ANCHORS)
    b = {k: v for k, v in tiny_model.tokenize(POSITIVES).items() if k != "token_type_ids"}
    with pytest.raises(ValueError, match=r"columns\[1\] has feature keys"):
        embed_columns(tiny_model, [a, b])
    flat = {k: v.flatten() if k == "attention_mask" else v for k, v in tiny_model.tokenize(POSITIVES).items()}
    with pytest.raises(ValueError, match=r"columns\[1\]\['attention_mask'\] must be \(batch, tokens\)"):
        embed_columns(tiny_model, [a, flat])


@pytest.mark.parametrize(
    "columns, mini_batch_size, error, match",
    [
        ([ANCHORS, POSITIVES], 0, ValueError, "mini_batch_size"),
        ([ANCHORS, POSITIVES], 2.5, ValueError, "mini_batch_size"),
        ([ANCHORS, POSITIVES[:5]], 2, ValueError, "equal length"),
        ([], 2, TypeError, "columns"),
        ("abc", 2, TypeError, "columns"),
        ([ANCHORS, "text"], 2, TypeError, r"columns\[1\]"),
    ],
)
def test_bad_input(tiny_model, columns, mini_batch_size, error, match):
    with pytest.raises(error, match=match):
        cached_loss_backward(tiny_model, columns, L.multiple_negatives_ranking_loss, mini_batch_size)


def test_token_budget_spans_match_sentence_transformers():
    """Spans by real-token budget are sentence-transformers' _minibatch_ranges for mini_batch_num_tokens."""
    gradcache = pytest.importorskip("sentence_transformers.base.losses.gradcache")
    from minilm.train.grad_cache import token_budget_spans

    gen = torch.Generator().manual_seed(0)
    for lengths, budget in [([5, 3, 9, 2, 2, 7, 1], 8), ([4] * 6, 4), ([30, 2, 2], 10), ([1], 1)]:
        mask = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
        for i, n in enumerate(lengths):
            mask[i, :n] = 1
        expected = gradcache._minibatch_ranges({"attention_mask": mask}, 32, budget)
        assert token_budget_spans(lengths, budget) == expected, (lengths, budget)
    lengths = torch.randint(1, 20, (50,), generator=gen).tolist()
    mask = (torch.arange(20)[None, :] < torch.tensor(lengths)[:, None]).long()
    assert token_budget_spans(lengths, 37) == gradcache._minibatch_ranges({"attention_mask": mask}, 32, 37)
    with pytest.raises(ValueError, match="mini_batch_num_tokens"):
        token_budget_spans([1, 2], 0)


@pytest.mark.slow
def test_cached_with_a_token_budget_equals_plain(real_model):
    """The cached forms' mini_batch_num_tokens: mini-batches of at most 40 real tokens, same loss and gradients.
    Absolute floor 1e-7 here: the attention key biases' gradient is 0 in exact arithmetic (softmax ignores a
    per-row shift) and ~4e-8 of rounding noise in both paths, which differ in how the columns are batched."""
    real_model.eval()
    columns = [ANCHORS, POSITIVES, NEGATIVES]
    chunks = split_column(real_model, POSITIVES, 32, mini_batch_num_tokens=40)
    assert len(chunks) == 2 and all(int(c["attention_mask"].sum()) <= 40 for c in chunks)  # 8 rows, 62 tokens
    plain = _step(real_model, lambda: loss_backward(real_model, columns, L.multiple_negatives_ranking_loss))
    cached = _step(
        real_model,
        lambda: cached_loss_backward(
            real_model, columns, L.multiple_negatives_ranking_loss, 32, mini_batch_num_tokens=40
        ),
    )
    _assert_same(cached, plain, atol=1e-7)
    with pytest.raises(ValueError, match="mini_batch_num_tokens"):
        cached_loss_backward(real_model, columns, L.multiple_negatives_ranking_loss, 32, mini_batch_num_tokens=0)
