"""Lesson 2's checker: the mask, the probabilities and multi-head attention against minilm's SelfAttention.attend."""

import _minilm
import torch
from _checking import Exercise, function_case

TITLE = "self-attention"


def attention_module(n_head: int, hidden: int, dtype: torch.dtype):
    config = _minilm.BertConfig(vocab_size=1, hidden_size=hidden, num_attention_heads=n_head)
    return _minilm.SelfAttention(config).to(dtype).eval()


def side_by_side(t):
    """(B, nh, T, hd) -> (B, T, H): the layout SelfAttention.attend takes."""
    B, nh, T, hd = t.shape
    return t.transpose(1, 2).reshape(B, T, nh * hd)


def minilm_additive_mask(attention_mask, dtype):
    return _minilm.additive_mask(attention_mask, dtype)


def minilm_attention_probs(q, k, mask):
    attention = attention_module(q.shape[1], q.shape[1] * q.shape[3], q.dtype)
    _, probs = attention.attend(side_by_side(q), side_by_side(k), side_by_side(k), mask, output_attentions=True)
    return probs


def minilm_multi_head_attention(q, k, v, mask, n_head):
    return attention_module(n_head, q.shape[-1], q.dtype).attend(q, k, v, mask)[0]


def lengths_mask(lengths, T):
    return (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]).long()  # (B, T)


def mask_inputs(lengths, T, dtype):
    def make(g):
        return {"attention_mask": lengths_mask(lengths, T), "dtype": dtype}

    return make


MASK_HINT = (
    "0 where the mask is 1; where it is 0, the most negative finite value of the dtype (what "
    "torch.finfo reports as min), not -inf and not a fixed -10000; shaped (B, 1, 1, T)."
)


def mask_cases():
    return [
        function_case(
            "two sentences, one padded",
            MASK_HINT,
            mask_inputs([5, 3], 5, torch.float32),
            minilm_additive_mask,
            dtype=None,
        ),
        function_case(
            "three sentences, float64",
            MASK_HINT,
            mask_inputs([7, 1, 4], 7, torch.float64),
            minilm_additive_mask,
            dtype=None,
        ),
        function_case(
            "a sentence that is all padding",
            MASK_HINT,
            mask_inputs([0, 2], 4, torch.float32),
            minilm_additive_mask,
            dtype=None,
        ),
    ]


def heads_inputs(B, nh, T, hd, lengths, dtype):
    def make(g):
        return {
            "q": torch.randn(B, nh, T, hd, generator=g, dtype=dtype),
            "k": torch.randn(B, nh, T, hd, generator=g, dtype=dtype),
            "mask": _minilm.additive_mask(lengths_mask(lengths, T), dtype),
        }

    return make


SCALE_HINT = (
    "A score is the dot product of a query with a key divided by the square root of the head dimension "
    "(the last dimension of q), so that the spread of the scores does not grow with the head width; the "
    "softmax runs over the keys, the last dimension."
)
PADDING_HINT = (
    "Add the mask to the scores before the softmax: padded keys then get probability 0 and every row "
    "still sums to 1. A mask applied after the softmax leaves rows that no longer sum to 1."
)
ALL_PADDING_HINT = (
    "Where every key of a sentence is padding, minilm's rows are uniform and finite (the mask is the "
    "most negative finite number, so adding it to every score changes no difference between them): "
    "make sure yours gives no NaN."
)


def probs_cases():
    grads = ("q", "k")
    return [
        function_case(
            "one head, no padding",
            SCALE_HINT,
            heads_inputs(1, 1, 5, 8, [5], torch.float32),
            minilm_attention_probs,
            grads,
        ),
        function_case(
            "12 heads of 32 dimensions, as in all-MiniLM-L6-v2",
            SCALE_HINT,
            heads_inputs(2, 12, 6, 32, [6, 6], torch.float32),
            minilm_attention_probs,
            grads,
            seed=1,
        ),
        function_case(
            "padding: sentences of 7, 4 and 2 tokens",
            PADDING_HINT,
            heads_inputs(3, 2, 7, 16, [7, 4, 2], torch.float32),
            minilm_attention_probs,
            grads,
            seed=2,
        ),
        function_case(
            "a sentence that is all padding",
            ALL_PADDING_HINT,
            heads_inputs(2, 2, 5, 8, [5, 0], torch.float64),
            minilm_attention_probs,
            grads,
            seed=3,
            dtype=torch.float64,
        ),
        function_case(
            "padding, float64",
            PADDING_HINT,
            heads_inputs(2, 3, 6, 8, [6, 3], torch.float64),
            minilm_attention_probs,
            grads,
            seed=4,
            dtype=torch.float64,
        ),
    ]


def mha_inputs(B, T, H, n_head, lengths, dtype):
    def make(g):
        return {
            "q": torch.randn(B, T, H, generator=g, dtype=dtype),
            "k": torch.randn(B, T, H, generator=g, dtype=dtype),
            "v": torch.randn(B, T, H, generator=g, dtype=dtype),
            "mask": _minilm.additive_mask(lengths_mask(lengths, T), dtype),
            "n_head": n_head,
        }

    return make


ONE_HEAD_HINT = (
    "Query i's output is the average of the value vectors weighted by row i of the probabilities: "
    "(B, T, T) probabilities times (B, T, hd) values."
)
HEADS_HINT = (
    "Head h owns dimensions h*hd to (h+1)*hd - 1 of q, k and v. View (B, T, H) as (B, T, nh, hd) and move "
    "the head axis in front of T; after attending, undo exactly that, so the heads end up side by side in "
    "their original order."
)


def mha_cases():
    grads = ("q", "k", "v")
    return [
        function_case(
            "one head", ONE_HEAD_HINT, mha_inputs(1, 5, 8, 1, [5], torch.float32), minilm_multi_head_attention, grads
        ),
        function_case(
            "4 heads",
            HEADS_HINT,
            mha_inputs(2, 6, 32, 4, [6, 6], torch.float32),
            minilm_multi_head_attention,
            grads,
            seed=1,
        ),
        function_case(
            "12 heads and padding",
            PADDING_HINT,
            mha_inputs(3, 7, 48, 12, [7, 5, 2], torch.float32),
            minilm_multi_head_attention,
            grads,
            seed=2,
        ),
        function_case(
            "3 heads and padding, float64",
            HEADS_HINT,
            mha_inputs(2, 5, 24, 3, [5, 3], torch.float64),
            minilm_multi_head_attention,
            grads,
            seed=3,
            dtype=torch.float64,
        ),
    ]


EXERCISES = [
    Exercise("additive_mask", mask_cases),
    Exercise("attention_probs", probs_cases),
    Exercise("multi_head_attention", mha_cases),
]
