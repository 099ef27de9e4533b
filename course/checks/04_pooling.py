"""Lesson 4's checker: pooling against minilm's pool and SentenceEncoder, cosines against minilm's
cosine_similarity_matrix."""

import _minilm
import torch
import torch.nn.functional as F
from _checking import Case, Exercise, function_case

TITLE = "pooling and normalisation"


def lengths_mask(lengths, T):
    return (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]).long()


def minilm_mean_pool(hidden, attention_mask):
    return _minilm.pool(hidden, attention_mask, "mean")


def minilm_sentence_embedding(hidden, attention_mask):
    # SentenceEncoder's padded path: minilm's pool, then the L2 normalisation of the checkpoint's Normalize module
    return F.normalize(_minilm.pool(hidden, attention_mask, "mean"), p=2, dim=-1)


def minilm_cosine_similarity_matrix(a, b):
    return _minilm.cosine_similarity_matrix(a, b)


def hidden_inputs(B, T, H, lengths, dtype, offset=0.0):
    def make(g):
        hidden = torch.randn(B, T, H, generator=g, dtype=dtype) + offset
        # padded positions hold large garbage, as a real model's padded outputs mean nothing
        hidden = torch.where(lengths_mask(lengths, T)[..., None].bool(), hidden, 10 * hidden.abs() + 5)
        return {"hidden": hidden, "attention_mask": lengths_mask(lengths, T)}

    return make


MEAN_HINT = "A sentence's vector is the average of its token vectors: the mean over the token dimension (dim 1)."
PADDING_HINT = (
    "Average over the real tokens only: weight each position by its mask value (0 or 1) and divide by "
    "the number of real tokens, not by T."
)
EMPTY_HINT = (
    "A sentence with no real token must give zeros, not NaN: 0 / 0 is NaN, so keep the divisor at least "
    "1e-9 (sentence-transformers' clamp)."
)
NORMALISE_HINT = (
    "Mean-pool over the real tokens, then divide each sentence's vector by its Euclidean length "
    "(at least 1e-12), so that every output row has length 1."
)


def pool_cases():
    return [
        function_case(
            "no padding", MEAN_HINT, hidden_inputs(2, 5, 8, [5, 5], torch.float32), minilm_mean_pool, ("hidden",)
        ),
        function_case(
            "padding: sentences of 7, 4 and 1 tokens",
            PADDING_HINT,
            hidden_inputs(3, 7, 16, [7, 4, 1], torch.float32),
            minilm_mean_pool,
            ("hidden",),
            seed=1,
        ),
        function_case(
            "padding, float64",
            PADDING_HINT,
            hidden_inputs(2, 6, 12, [6, 2], torch.float64),
            minilm_mean_pool,
            ("hidden",),
            seed=2,
            dtype=torch.float64,
        ),
        function_case(
            "a sentence with no real token",
            EMPTY_HINT,
            hidden_inputs(2, 4, 8, [4, 0], torch.float32),
            minilm_mean_pool,
            ("hidden",),
            seed=3,
        ),
    ]


def encoder_case() -> Case:
    """The tiny random encoder's hidden states: your sentence_embedding must give what minilm's SentenceEncoder
    returns for the same sentences."""
    texts = ["A man is eating food.", "Someone is eating a piece of bread.", "Hi!"]

    def features():
        model = _minilm.tiny_encoder(seed=4)
        tokens = model.tokenize(texts)
        return model, tokens["input_ids"], tokens["attention_mask"]

    def yours(fn):
        model, ids, mask = features()
        with torch.no_grad():
            hidden = model.bert(ids, mask)  # (B, T, H)
        return {"result": fn(hidden, mask)}

    def minilm():
        model, ids, mask = features()
        with torch.no_grad():
            return {"result": model(ids, mask)}

    return Case(
        "a tiny random encoder on three real sentences, against SentenceEncoder",
        "3 sentences, H = 32",
        NORMALISE_HINT,
        yours,
        minilm,
    )


def embedding_cases():
    grads = ("hidden",)
    return [
        function_case(
            "padding",
            NORMALISE_HINT,
            hidden_inputs(3, 6, 16, [6, 3, 1], torch.float32),
            minilm_sentence_embedding,
            grads,
        ),
        function_case(
            "padding, float64",
            NORMALISE_HINT,
            hidden_inputs(2, 5, 384, [5, 2], torch.float64),
            minilm_sentence_embedding,
            grads,
            seed=1,
            dtype=torch.float64,
        ),
        encoder_case(),
    ]


def pair_inputs(B, C, D, dtype, zero_row=False, offset=0.0):
    def make(g):
        a = torch.randn(B, D, generator=g, dtype=dtype) * 3 + offset
        b = torch.randn(C, D, generator=g, dtype=dtype) + offset
        if zero_row:
            a[1] = 0
        return {"a": a, "b": b}

    return make


COSINE_HINT = (
    "Scale every row of a and of b to length 1 first; then all the cosines at once are one matrix "
    "product, a (B, D) times a (D, C)."
)
ZERO_HINT = (
    "A zero vector has no direction: minilm divides by max(length, 1e-12), which leaves it at zero, so its "
    "cosines are 0. Dividing by the raw length gives NaN."
)


def cosine_cases():
    grads = ("a", "b")
    return [
        function_case(
            "3 against 4 vectors of different lengths",
            COSINE_HINT,
            pair_inputs(3, 4, 8, torch.float32),
            minilm_cosine_similarity_matrix,
            grads,
        ),
        function_case(
            "384 dimensions, float64",
            COSINE_HINT,
            pair_inputs(5, 5, 384, torch.float64, offset=0.5),
            minilm_cosine_similarity_matrix,
            grads,
            seed=1,
            dtype=torch.float64,
        ),
        function_case(
            "a zero vector among them",
            ZERO_HINT,
            pair_inputs(3, 2, 8, torch.float32, zero_row=True),
            minilm_cosine_similarity_matrix,
            grads,
            seed=2,
        ),
    ]


EXERCISES = [
    Exercise("mean_pool", pool_cases),
    Exercise("sentence_embedding", embedding_cases),
    Exercise("cosine_similarity_matrix", cosine_cases),
]
