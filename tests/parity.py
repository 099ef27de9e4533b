"""Parity harness for the loss catalogue: a minilm loss against its reference on identical inputs.

``compare`` runs both on fresh leaf copies of the same inputs, measures the absolute value difference and the largest
absolute gradient difference (over every input and every paired parameter), each divided by max(1, the reference's
magnitude) -- absolute for values and gradients up to 1, relative above (a float32 loss of 200 has an ulp of 1.5e-5)
-- asserts the issue's bounds (value <= 1e-5, gradient <= 1e-4) and records the figures under the loss's name and
dtype. The figures are
the parity column of docs/losses.md: run

    MINILM_PARITY_OUT=parity.json python -m pytest -q tests/parity/test_losses_vs_st.py \
        tests/parity/test_losses_vs_pml.py

and the conftest hook writes them (largest difference over all cases of a loss, per dtype) and prints a table.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

VALUE_BOUND = 1e-5
GRAD_BOUND = 1e-4

# (loss name, dtype) -> {"value": max scaled |dv|, "grad": max scaled |dg|, "cases": n}
FIGURES: dict[tuple[str, str], dict] = {}


def _run(fn: Callable, inputs: Sequence[Tensor], params: Sequence) -> tuple[Tensor, list[Tensor]]:
    """Value and gradients; a parameter given as (tensor, fn) has its gradient passed through fn (layout mapping)."""
    maps = [p[1] if isinstance(p, tuple) else (lambda g: g) for p in params]
    params = [p[0] if isinstance(p, tuple) else p for p in params]
    value, grads = _value_and_grads(fn, inputs, params)
    n = len(grads) - len(params)
    return value, grads[:n] + [f(g) for f, g in zip(maps, grads[n:])]


def _value_and_grads(fn: Callable, inputs: Sequence[Tensor], params: Sequence[Tensor]) -> tuple[Tensor, list[Tensor]]:
    leaves = [x.detach().clone().requires_grad_(x.is_floating_point()) for x in inputs]
    for p in params:
        p.grad = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the references' deprecation and label warnings
        value = fn(leaves)
    wrt = [x for x in leaves if x.requires_grad] + list(params)
    grads = torch.autograd.grad(value, wrt, allow_unused=True) if value.requires_grad else [None] * len(wrt)
    return value.detach(), [torch.zeros_like(w) if g is None else g for w, g in zip(wrt, grads)]


def compare(
    name: str,
    ours: Callable,
    theirs: Callable,
    inputs: Sequence[Tensor],
    our_params: Sequence = (),
    their_params: Sequence = (),
    dtype: torch.dtype | None = None,
) -> tuple[float, float]:
    """ours(leaves) and theirs(leaves) -> 0-d loss; gradients w.r.t. the floating inputs and the paired parameters
    (a reference parameter may be given as (tensor, fn mapping its gradient to our layout)). ``dtype`` names the
    precision in the record when there are no inputs (a model's parameters are the leaves)."""
    v1, g1 = _run(ours, inputs, our_params)
    v2, g2 = _run(theirs, inputs, their_params)
    assert len(g1) == len(g2)
    value_diff = abs(v1.double().item() - v2.double().item()) / max(1.0, abs(v2.double().item()))
    grad_diff = max(
        [
            (a.double() - b.double()).abs().max().item() / max(1.0, b.double().abs().max().item())
            for a, b in zip(g1, g2)
            if a.numel()
        ],
        default=0.0,
    )
    assert torch.isfinite(v1) and all(torch.isfinite(g).all() for g in g1), f"{name}: non-finite value or gradient"
    assert value_diff <= VALUE_BOUND, f"{name}: value {v1.item()} vs reference {v2.item()} (|diff| {value_diff:.2e})"
    assert grad_diff <= GRAD_BOUND, f"{name}: gradient max |diff| {grad_diff:.2e}"
    record(name, str(dtype or inputs[0].dtype).removeprefix("torch."), value_diff, grad_diff)
    return value_diff, grad_diff


def record(name: str, dtype: str, value_diff: float, grad_diff: float) -> None:
    seen = FIGURES.setdefault((name, dtype), {"value": 0.0, "grad": 0.0, "cases": 0})
    seen["value"] = max(seen["value"], value_diff)
    seen["grad"] = max(seen["grad"], grad_diff)
    seen["cases"] += 1


def table() -> str:
    lines = [f"{'loss':34s} {'dtype':8s} {'cases':>5s} {'value diff':>12s} {'grad diff':>12s}"]
    for (name, dtype), f in sorted(FIGURES.items()):
        lines.append(f"{name:34s} {dtype:8s} {f['cases']:5d} {f['value']:12.1e} {f['grad']:12.1e}")
    return "\n".join(lines)
