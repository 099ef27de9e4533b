"""Lesson 3's checker: the blocks against minilm's FeedForward, SelfAttention and Layer, the stack against Layer
after Layer as BertModel runs them."""

import math

import _minilm
import torch
from _checking import Exercise, call_with, function_case

TITLE = "a layer and the encoder"


def config(hidden, n_head, intermediate, eps):
    return _minilm.BertConfig(
        vocab_size=1, hidden_size=hidden, num_attention_heads=n_head, intermediate_size=intermediate, layer_norm_eps=eps
    )


def random_parameters(module, g, dtype):
    """Seeded parameters for every tensor of ``module``: norm gains near 1, small biases, weights ~ 1/sqrt(fan in)."""
    parameters = {}
    for name, tensor in module.state_dict().items():
        noise = torch.randn(tensor.shape, generator=g, dtype=dtype)
        if name.endswith("norm.weight"):
            parameters[name] = 1 + 0.1 * noise
        elif name.endswith("bias"):
            parameters[name] = 0.1 * noise
        else:
            parameters[name] = noise / math.sqrt(tensor.shape[-1])
    return parameters


def lengths_mask(lengths, T):
    return (torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]).long()


def block_inputs(kind, B, T, H, n_head, lengths, dtype, intermediate=None, eps=1e-12):
    intermediate = intermediate or 4 * H

    def make(g):
        module = kind(config(H, n_head, intermediate, eps))
        inputs = {"x": torch.randn(B, T, H, generator=g, dtype=dtype)}
        if kind is not _minilm.FeedForward:
            inputs["mask"] = _minilm.additive_mask(lengths_mask(lengths, T), dtype)
        inputs["p"] = random_parameters(module, g, dtype)
        if kind is not _minilm.FeedForward:
            inputs["n_head"] = n_head
        inputs["eps"] = eps
        return inputs

    return make


def minilm_feed_forward(x, p, eps):
    H, intermediate = x.shape[-1], p["up.weight"].shape[0]
    module = _minilm.FeedForward(config(H, 1, intermediate, eps)).to(x.dtype).eval()
    return call_with(module, p, x)


def minilm_attention_block(x, mask, p, n_head, eps):
    module = _minilm.SelfAttention(config(x.shape[-1], n_head, 4 * x.shape[-1], eps)).to(x.dtype).eval()
    return call_with(module, p, x, mask)[0]


def minilm_encoder_layer(x, mask, p, n_head, eps):
    module = _minilm.Layer(config(x.shape[-1], n_head, p["ffn.up.weight"].shape[0], eps)).to(x.dtype).eval()
    return call_with(module, p, x, mask)[0]


def minilm_encoder(x, attention_mask, layers, n_head, eps):
    mask = _minilm.additive_mask(attention_mask, x.dtype)
    for p in layers:  # BertModel.forward's loop over its layers
        x = minilm_encoder_layer(x, mask, p, n_head, eps)
    return x


FFN_HINT = (
    "Up projection, GELU (the exact erf form, torch's default; not the tanh approximation), down projection; "
    "then add the block's input and LayerNorm the sum. BERT is post-LayerNorm: the normalisation comes after "
    "the residual addition, not before the sublayer as in GPT-2."
)
ATTENTION_HINT = (
    "Project x with the query, key and value layers (x @ weight.T + bias), attend with n_head heads, "
    "project the heads' output with the out layer; then add x and LayerNorm the sum (post-LayerNorm)."
)
PADDING_HINT = "The additive mask goes to the attention scores before their softmax, in every head."
LAYER_HINT = (
    "The attention block with the 'attention.' parameters, then the feed-forward block with the 'ffn.' "
    "ones, each with its own residual and LayerNorm; the second block takes the first one's output."
)
ENCODER_HINT = (
    "Turn the 0/1 mask into the additive mask once (in x's dtype), then run the layers in order, each on "
    "the previous layer's output; return the last output."
)


def ffn_cases():
    grads = ("x", ("p", "up.weight"), ("p", "down.bias"), ("p", "norm.weight"))
    return [
        function_case(
            "a small block",
            FFN_HINT,
            block_inputs(_minilm.FeedForward, 2, 4, 16, 1, None, torch.float32),
            minilm_feed_forward,
            grads,
        ),
        function_case(
            "float64, 9 tokens",
            FFN_HINT,
            block_inputs(_minilm.FeedForward, 1, 9, 32, 1, None, torch.float64, intermediate=128),
            minilm_feed_forward,
            grads,
            seed=1,
            dtype=torch.float64,
        ),
        function_case(
            "all-MiniLM-L6-v2's sizes, H = 384, I = 1536",
            FFN_HINT,
            block_inputs(_minilm.FeedForward, 2, 3, 384, 1, None, torch.float32),
            minilm_feed_forward,
            grads,
            seed=2,
        ),
    ]


def attention_cases():
    grads = ("x", ("p", "query.weight"), ("p", "value.bias"), ("p", "out.weight"))
    kind = _minilm.SelfAttention
    return [
        function_case(
            "two heads, no padding",
            ATTENTION_HINT,
            block_inputs(kind, 2, 5, 16, 2, [5, 5], torch.float32),
            minilm_attention_block,
            grads,
        ),
        function_case(
            "four heads and padding",
            PADDING_HINT,
            block_inputs(kind, 3, 6, 32, 4, [6, 4, 1], torch.float32),
            minilm_attention_block,
            grads,
            seed=1,
        ),
        function_case(
            "three heads and padding, float64",
            ATTENTION_HINT,
            block_inputs(kind, 2, 5, 24, 3, [5, 2], torch.float64),
            minilm_attention_block,
            grads,
            seed=2,
            dtype=torch.float64,
        ),
    ]


def layer_cases():
    grads = ("x", ("p", "attention.key.weight"), ("p", "ffn.up.bias"))
    return [
        function_case(
            "two heads and padding",
            LAYER_HINT,
            block_inputs(_minilm.Layer, 2, 5, 16, 2, [5, 3], torch.float32),
            minilm_encoder_layer,
            grads,
        ),
        function_case(
            "four heads, float64",
            LAYER_HINT,
            block_inputs(_minilm.Layer, 2, 6, 32, 4, [6, 2], torch.float64),
            minilm_encoder_layer,
            grads,
            seed=1,
            dtype=torch.float64,
        ),
    ]


def encoder_inputs(n_layers, B, T, H, n_head, lengths, dtype):
    def make(g):
        module = _minilm.Layer(config(H, n_head, 4 * H, 1e-12))
        return {
            "x": torch.randn(B, T, H, generator=g, dtype=dtype),
            "attention_mask": lengths_mask(lengths, T),
            "layers": [random_parameters(module, g, dtype) for _ in range(n_layers)],
            "n_head": n_head,
            "eps": 1e-12,
        }

    return make


def encoder_cases():
    grads = ("x", ("layers", 0, "attention.query.weight"), ("layers", -1, "ffn.down.weight"))
    return [
        function_case(
            "two layers, padding",
            ENCODER_HINT,
            encoder_inputs(2, 2, 6, 16, 2, [6, 3], torch.float32),
            minilm_encoder,
            grads,
        ),
        function_case(
            "three layers, float64",
            ENCODER_HINT,
            encoder_inputs(3, 3, 5, 24, 3, [5, 5, 1], torch.float64),
            minilm_encoder,
            grads,
            seed=1,
            dtype=torch.float64,
        ),
    ]


EXERCISES = [
    Exercise("feed_forward", ffn_cases),
    Exercise("attention_block", attention_cases),
    Exercise("encoder_layer", layer_cases),
    Exercise("encoder", encoder_cases),
]
