"""minilm.encoding.quantization.quantize_embeddings against sentence_transformers.quantize_embeddings: bit-identical
codes (np.array_equal and the same dtype, no tolerance) for every precision, with ranges from the embeddings, from given
ranges and from calibration embeddings, on arrays, tensors, token-embedding lists and the edge cases."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from minilm.encoding.quantization import (
    PRECISIONS,
    quantization_ranges,
    quantize_embeddings,
    quantized_dtype,
    quantized_width,
)


def theirs(*args, **kwargs):
    from sentence_transformers.util.quantization import quantize_embeddings as reference

    with warnings.catch_warnings():  # both warn about small calibration sets; the codes are what is compared
        warnings.simplefilter("ignore")
        return reference(*args, **kwargs)


def ours(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_embeddings(*args, **kwargs)


def assert_identical(a, b):
    if isinstance(b, list):
        assert isinstance(a, list) and len(a) == len(b)
        for x, y in zip(a, b):
            assert_identical(x, y)
        return
    assert isinstance(a, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape, (a.dtype, b.dtype, a.shape, b.shape)
    assert np.array_equal(a, b)


def embeddings(n=200, d=37, seed=0, dtype=np.float32):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(dtype)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_every_precision_is_bit_identical_with_every_calibration(precision):
    x = embeddings()
    calibration = embeddings(500, seed=1)
    ranges = np.stack([np.full(37, -1.5), np.full(37, 1.0)]).astype(np.float32)  # values outside are clipped
    for kwargs in (
        {},
        {"ranges": ranges},
        {"calibration_embeddings": calibration},
        {"ranges": ranges, "calibration_embeddings": calibration},
    ):
        expected = theirs(x, precision, **kwargs)
        assert_identical(ours(x, precision, **kwargs), expected)
        assert_identical(ours(torch.from_numpy(x), precision, **kwargs), expected)
    assert ours(x, precision).dtype == quantized_dtype(precision)
    assert ours(x, precision).shape == (200, quantized_width(37, precision))


@pytest.mark.parametrize("precision", ["int8", "uint8"])
def test_float64_input_constant_dimension_and_one_row(precision):
    x = embeddings(dtype=np.float64)
    x[:, 3] = 0.25  # max == min: the step becomes 1
    assert_identical(ours(x, precision), theirs(x, precision))
    ranges = quantization_ranges(embeddings(50, seed=2))
    assert_identical(ours(x[:1], precision, ranges=ranges), theirs(x[:1], precision, ranges=ranges))
    assert_identical(ours(x[0], precision, ranges=ranges), theirs(x[0], precision, ranges=ranges))


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(2, 40), st.integers(1, 20)),
        elements=st.floats(-4, 4, width=32, allow_nan=False),
    ),
    st.sampled_from(PRECISIONS),
)
def test_random_arrays_are_bit_identical(x, precision):
    assert_identical(ours(x, precision), theirs(x, precision))


@pytest.mark.parametrize("precision", PRECISIONS)
def test_token_embedding_lists_share_one_calibration(precision):
    """A list of (T_i, D) matrices, as encode(output_value="token_embeddings") returns them."""
    tokens = [torch.from_numpy(embeddings(n, 16, seed=n)) for n in (3, 9, 1)]
    assert_identical(ours(tokens, precision), theirs(tokens, precision))
    calibration = embeddings(100, 16, seed=7)
    assert_identical(
        ours(tokens, precision, calibration_embeddings=calibration),
        theirs(tokens, precision, calibration_embeddings=calibration),
    )
    assert ours([], precision) == theirs([], precision) == []


@pytest.mark.parametrize("precision", PRECISIONS)
def test_empty_matrix_keeps_its_width_and_dtype(precision):
    assert_identical(ours(np.zeros((0, 37), np.float32), precision), theirs(np.zeros((0, 37), np.float32), precision))


def test_refusals_name_the_problem():
    x = embeddings(1)
    with pytest.raises(ValueError, match="single embedding"):
        quantize_embeddings(x, "int8")
    with pytest.raises(ValueError, match="single embedding"):
        theirs(x, "int8")  # the reference refuses it too
    with pytest.raises(ValueError, match="must be floats"):
        quantize_embeddings(np.zeros((3, 4), np.int8), "binary")
    with pytest.raises(ValueError, match=r"precision must be one of .* got 'int4'"):
        quantize_embeddings(x, "int4")
    with pytest.raises(ValueError, match=r"ranges must have shape \(2, 37\)"):
        quantize_embeddings(embeddings(), "uint8", ranges=np.zeros((2, 36), np.float32))
    with pytest.raises(ValueError, match="calibration embeddings must be a non-empty"):
        quantization_ranges(np.zeros((0, 4), np.float32))
    with pytest.warns(UserWarning, match="only 5 embeddings"):
        quantize_embeddings(embeddings(5), "int8")
