"""Quantised output embeddings with sentence-transformers' meaning of ``precision``: int8 / uint8 / binary / ubinary.

int8 and uint8 cut each dimension's calibration range [min, max] into 255 equal steps and store the step index
(uint8 0..255; int8 the same minus 128). The range comes from, in order: ``ranges`` (a (2, D) array of per-dimension
min and max), ``calibration_embeddings``, or the embeddings themselves, which needs all of them at once; a stream
of embeddings (``minilm encode``) therefore takes ranges computed beforehand. binary and ubinary keep one sign bit
per dimension (> 0), packed 8 to a byte, so D dimensions become ceil(D / 8) columns; binary stores each byte minus
128 as int8. The arithmetic is float32 in numpy, step for step as ``sentence_transformers.quantize_embeddings``, so
the codes are bit-identical to it on the same inputs and calibration (tests/encoding/test_quantization.py).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

PRECISIONS = ("float32", "int8", "uint8", "binary", "ubinary")
LEVELS = 255  # steps between a dimension's min and max


def _as_numpy(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        return (x.float() if x.dtype == torch.bfloat16 else x).numpy()
    return np.asarray(x)


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    return precision


def quantization_ranges(calibration_embeddings) -> np.ndarray:
    """Per-dimension (min, max) of calibration embeddings (M, D): the (2, D) ``ranges`` int8 / uint8 quantise with."""
    calibration = _as_numpy(calibration_embeddings)
    if calibration.ndim != 2 or calibration.shape[0] == 0:
        raise ValueError(f"calibration embeddings must be a non-empty (M, D) array, got shape {calibration.shape}")
    return np.vstack((calibration.min(axis=0), calibration.max(axis=0)))


def quantized_width(dim: int, precision: str) -> int:
    """Columns of the quantised output for ``dim`` float dimensions."""
    return (dim + 7) // 8 if check_precision(precision).endswith("binary") else dim


def quantized_dtype(precision: str) -> np.dtype:
    return np.dtype(
        {"float32": np.float32, "int8": np.int8, "uint8": np.uint8, "binary": np.int8, "ubinary": np.uint8}[
            check_precision(precision)
        ]
    )


def quantize_embeddings(embeddings, precision: str, ranges=None, calibration_embeddings=None):
    """Embeddings (N, D) or (D,), a tensor or array, -> numpy codes of ``precision`` (module docstring).

    A list of (T_i, D) matrices (token embeddings) is quantised with one calibration over all of them and returned
    as a list. Without ``ranges`` or ``calibration_embeddings``, int8 / uint8 calibrate on the embeddings themselves,
    which is refused for a single embedding (its range is empty) and flagged below 100.
    """
    check_precision(precision)
    if isinstance(embeddings, list):
        if not embeddings:
            return []
        matrices = [_as_numpy(e) for e in embeddings]
        if matrices[0].ndim == 2:
            if precision.endswith("int8") and ranges is None:
                calibration = np.concatenate(matrices) if calibration_embeddings is None else calibration_embeddings
                if len(calibration):
                    ranges = _ranges_for(calibration, precision, calibration_embeddings is not None)
            return [quantize_embeddings(m, precision, ranges, calibration_embeddings) for m in matrices]
        embeddings = np.array(matrices)
    x = _as_numpy(embeddings)
    if x.dtype in (np.int8, np.uint8):
        raise ValueError(f"embeddings to quantise must be floats, got {x.dtype}")
    if x.ndim == 2 and x.shape[0] == 0:
        return np.zeros((0, quantized_width(x.shape[1], precision)), dtype=quantized_dtype(precision))
    if precision == "float32":
        return x.astype(np.float32)
    if precision.endswith("int8"):
        if ranges is None:
            ranges = _ranges_for(
                x if calibration_embeddings is None else _as_numpy(calibration_embeddings),
                precision,
                calibration_embeddings is not None,
            )
        ranges = _as_numpy(ranges).astype(np.float32, copy=False)
        if ranges.ndim != 2 or ranges.shape[0] != 2 or ranges.shape[1] != x.shape[-1]:
            raise ValueError(
                f"ranges must have shape (2, {x.shape[-1]}) (min and max per dimension), got {ranges.shape}"
            )
        low = ranges[0]
        step = (ranges[1] - low) / LEVELS
        step = np.where(step == 0, 1, step)  # a constant dimension: every value lands in step 0
        codes = np.clip(np.floor((x - low) / step), 0, LEVELS)
        return codes.astype(np.uint8) if precision == "uint8" else (codes - 128).astype(np.int8)
    bits = np.packbits(x > 0, axis=-1)  # uint8, 8 dimensions a byte, the first in the highest bit
    return bits if precision == "ubinary" else (bits.astype(np.int16) - 128).astype(np.int8)


def _ranges_for(calibration: np.ndarray, precision: str, given: bool) -> np.ndarray:
    calibration = _as_numpy(calibration)
    if not given:
        if calibration.ndim == 1 or calibration.shape[0] == 1:
            raise ValueError(
                f"cannot compute {precision} quantisation ranges from a single embedding; pass ranges or "
                "calibration_embeddings from a representative set"
            )
        if calibration.shape[0] < 100:
            warnings.warn(
                f"{precision} quantisation ranges computed from only {calibration.shape[0]} embeddings; "
                "ranges from more embeddings (or calibration_embeddings) are more stable",
                stacklevel=3,
            )
    return quantization_ranges(calibration)
