"""Lesson 1's checker: pad_batch against minilm's tokenizer, layer_norm and embed against minilm's Embeddings."""

import _minilm
import torch
from _checking import Case, Exercise, call_with, describe, function_case

TITLE = "tokens to embeddings"

SENTENCES = ["A man is eating food.", "Someone is eating a piece of bread.", "Hi!"]


def minilm_pad_batch(token_ids):
    padded = _minilm.tokenizer().pad(token_ids)
    return padded["input_ids"], padded["attention_mask"]


def pad_case(name: str, token_ids: list[list[int]], hint: str) -> Case:
    def named(result):
        """Name the two tensors apart, so that the report says which one is wrong."""
        if isinstance(result, tuple) and len(result) == 2:
            return {"input_ids": result[0], "attention_mask": result[1]}
        return {"your result (expected a pair)": result}

    def yours(fn):
        return named(fn([list(ids) for ids in token_ids]))

    def minilm():
        return named(minilm_pad_batch([list(ids) for ids in token_ids]))

    return Case(name, f"token_ids: {describe(token_ids)}", hint, yours, minilm, dtype=None)


PAD_HINT = (
    "T is the length of the longest list. Shorter rows continue with the [PAD] id 0 up to T; the mask is 1 on "
    "every real token ([CLS] and [SEP] included) and 0 on padding. Return two int64 tensors."
)


def pad_cases():
    g = torch.Generator().manual_seed(1)
    lengths = [int(n) for n in torch.randint(2, 12, (6,), generator=g)]
    random_ids = [[101, *torch.randint(1000, 30000, (n - 2,), generator=g).tolist(), 102] for n in lengths]
    return [
        pad_case("three real sentences", _minilm.tokenizer().encode_ids(SENTENCES), PAD_HINT),
        pad_case("one sentence: nothing to pad", _minilm.tokenizer().encode_ids(SENTENCES[:1]), PAD_HINT),
        pad_case("six random lengths", random_ids, PAD_HINT),
    ]


def minilm_layer_norm(x, weight, bias, eps):
    config = _minilm.BertConfig(vocab_size=1, hidden_size=x.shape[-1], layer_norm_eps=eps)
    norm = _minilm.Embeddings(config).norm.to(x.dtype)
    return call_with(norm, {"weight": weight, "bias": bias}, x)


def layer_norm_inputs(shape, dtype, eps=1e-12, spread=1.0):
    def make(g):
        H = shape[-1]
        # rows with an offset, so that forgetting to subtract the mean shows
        x = torch.randn(shape, generator=g, dtype=dtype) * spread + 3.0
        return {
            "x": x,
            "weight": 1 + 0.5 * torch.randn(H, generator=g, dtype=dtype),
            "bias": 0.1 * torch.randn(H, generator=g, dtype=dtype),
            "eps": eps,
        }

    return make


LN_HINT = (
    "Normalise each vector over its last dimension: subtract its mean, divide by the square root of its "
    "variance plus eps, then multiply by weight and add bias. The variance is the biased one, the mean of "
    "the squared deviations (divide by H, not H - 1)."
)
EPS_HINT = (
    "These vectors barely vary, so eps dominates: eps is added to the variance, under the square root, "
    "not to the standard deviation."
)


def layer_norm_cases():
    grads = ("x", "weight", "bias")
    return [
        function_case(
            "a small batch of token vectors",
            LN_HINT,
            layer_norm_inputs((2, 3, 8), torch.float32),
            minilm_layer_norm,
            grads,
        ),
        function_case(
            "H = 384 as in all-MiniLM-L6-v2",
            LN_HINT,
            layer_norm_inputs((2, 5, 384), torch.float32),
            minilm_layer_norm,
            grads,
            seed=1,
        ),
        function_case(
            "a 2-d input, in float64",
            LN_HINT,
            layer_norm_inputs((4, 16), torch.float64),
            minilm_layer_norm,
            grads,
            seed=2,
            dtype=torch.float64,
        ),
        function_case(
            "nearly constant vectors, eps = 1e-3",
            EPS_HINT,
            layer_norm_inputs((3, 32), torch.float64, eps=1e-3, spread=1e-3),
            minilm_layer_norm,
            grads,
            seed=3,
            dtype=torch.float64,
        ),
    ]


def minilm_embed(input_ids, token_type_ids, word, position, token_type, norm_weight, norm_bias, eps):
    config = _minilm.BertConfig(
        vocab_size=word.shape[0],
        hidden_size=word.shape[1],
        max_position_embeddings=position.shape[0],
        type_vocab_size=token_type.shape[0],
        layer_norm_eps=eps,
    )
    embeddings = _minilm.Embeddings(config).to(word.dtype).eval()
    parameters = {
        "word.weight": word,
        "position.weight": position,
        "token_type.weight": token_type,
        "norm.weight": norm_weight,
        "norm.bias": norm_bias,
    }
    return call_with(embeddings, parameters, input_ids, token_type_ids)


def embed_inputs(B, T, V, H, P, dtype, segments=False):
    def make(g):
        token_type_ids = torch.zeros(B, T, dtype=torch.long)
        if segments:
            token_type_ids[:, T // 2 :] = 1
        return {
            "input_ids": torch.randint(0, V, (B, T), generator=g),
            "token_type_ids": token_type_ids,
            "word": torch.randn(V, H, generator=g, dtype=dtype),
            "position": torch.randn(P, H, generator=g, dtype=dtype),
            "token_type": torch.randn(2, H, generator=g, dtype=dtype),
            "norm_weight": 1 + 0.5 * torch.randn(H, generator=g, dtype=dtype),
            "norm_bias": 0.1 * torch.randn(H, generator=g, dtype=dtype),
            "eps": 1e-12,
        }

    return make


EMBED_HINT = (
    "A token's vector is the sum of three rows: word[its id], position[its index in the sentence, 0 to "
    "T - 1] and token_type[its segment id]; then LayerNorm over H."
)
SEGMENT_HINT = (
    "Here the second half of each row is segment 1: the segment vector must be looked up from "
    "token_type_ids, not assumed to be segment 0."
)
POSITION_HINT = (
    "The position table has more rows than the sentence has tokens: use rows 0 to T - 1, the same for "
    "every sentence of the batch."
)


def embed_cases():
    grads = ("word", "position", "token_type", "norm_weight", "norm_bias")
    return [
        function_case("one segment", EMBED_HINT, embed_inputs(2, 5, 50, 16, 5, torch.float32), minilm_embed, grads),
        function_case(
            "two segments",
            SEGMENT_HINT,
            embed_inputs(3, 6, 50, 16, 6, torch.float32, segments=True),
            minilm_embed,
            grads,
            seed=1,
        ),
        function_case(
            "a position table longer than the batch, in float64",
            POSITION_HINT,
            embed_inputs(2, 7, 40, 8, 20, torch.float64, segments=True),
            minilm_embed,
            grads,
            seed=2,
            dtype=torch.float64,
        ),
    ]


EXERCISES = [Exercise("pad_batch", pad_cases), Exercise("layer_norm", layer_norm_cases), Exercise("embed", embed_cases)]
