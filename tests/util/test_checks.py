"""minilm.util.checks: the shared input checks name the argument they refuse and pass good input through unchanged
(half precisions promoted to float32, bools to ints)."""

import math

import numpy as np
import pytest
import torch

from minilm.util.checks import (
    as_float_matrix,
    check_embeddings,
    check_flag,
    check_nonempty_texts,
    check_number,
    check_same_shape,
    check_targets,
    check_texts,
    lookup,
)


def test_check_embeddings_returns_them_in_order_and_promotes_half_precision():
    a, b = torch.randn(3, 4, dtype=torch.float16), torch.randn(3, 4)
    out = check_embeddings(anchor=a, positive=b)
    assert out[0].dtype == torch.float32 and out[1] is b
    big = torch.full((2, 2), 3e38)  # its sum overflows, yet every element is finite
    assert check_embeddings(x=big)[0] is big


@pytest.mark.parametrize(
    "value, error, message",
    [
        ([[1.0]], TypeError, "anchor must be a torch.Tensor"),
        (torch.ones(2, 3, dtype=torch.long), TypeError, "anchor must be a floating-point tensor"),
        (torch.ones(3), ValueError, r"anchor must have shape \(batch, dim\)"),
        (torch.ones(0, 3), ValueError, "batch >= 1"),
        (torch.tensor([[1.0, math.nan]]), ValueError, "anchor contains NaN"),
    ],
)
def test_check_embeddings_names_the_argument(value, error, message):
    with pytest.raises(error, match=message):
        check_embeddings(anchor=value)


def test_check_embeddings_names_both_sides_of_a_mismatch():
    with pytest.raises(ValueError, match=r"positive has shape \(2, 3\) but anchor has shape \(3, 3\)"):
        check_embeddings(anchor=torch.ones(3, 3), positive=torch.ones(2, 3))


def test_check_targets():
    assert check_targets(torch.tensor([True, False]), 2, "labels", "labels").dtype == torch.int32
    for value, kind, error, message in [
        (torch.tensor([0.5, 1.0]), "labels", TypeError, "labels must be an integer or bool tensor"),
        (torch.tensor([1, 2, 3]), "labels", ValueError, r"labels must have shape \(2,\)"),
        (torch.tensor([0.5, math.inf]), "scores", ValueError, "scores contains NaN or infinite"),
        ([1, 2], "scores", TypeError, "scores must be a torch.Tensor"),
    ]:
        with pytest.raises(error, match=message):
            check_targets(value, 2, kind, kind)


def test_numbers_flags_and_lookups():
    assert check_number(3, "margin") == 3.0
    with pytest.raises(TypeError, match="margin must be a real number, got bool"):
        check_number(True, "margin")
    with pytest.raises(ValueError, match="scale must be a finite positive number"):
        check_number(0.0, "scale", positive=True)
    with pytest.raises(TypeError, match="symmetric must be True or False"):
        check_flag(1, "symmetric")
    assert lookup({"a": len}, "a", "distance") is len
    with pytest.raises(ValueError, match=r"distance must be one of \['a'\], got 'b'"):
        lookup({"a": len}, "b", "distance")


def test_texts():
    check_texts(["a", "b"])
    with pytest.raises(TypeError, match="texts must be a list of strings, got str"):
        check_texts("a")
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        check_texts(["a", 3])
    with pytest.raises(ValueError, match="positives has 1 items but anchors has 2"):
        check_nonempty_texts(["a"], "positives", 2, "anchors")
    with pytest.raises(ValueError, match="anchors is empty"):
        check_nonempty_texts([], "anchors")


def test_matrices_for_metrics():
    t = as_float_matrix(np.ones((2, 3), dtype=np.float16), "emb")
    assert t.dtype == torch.float32 and t.shape == (2, 3)
    with pytest.raises(ValueError, match=r"emb must be 2-D \(N, D\)"):
        as_float_matrix(np.ones(3), "emb")
    with pytest.raises(ValueError, match=r"emb2 has shape \(1, 3\) but emb1 has shape \(2, 3\)"):
        check_same_shape(t, "emb1", torch.ones(1, 3), "emb2")
