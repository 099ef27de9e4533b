"""What every checker shares: run your function and minilm's on the same seeded inputs, compare, explain.

A lesson's ``checks.py`` lists its exercises, each a function name and a few cases. A case builds its inputs from a
seed, so your function and minilm's see identical tensors; it compares every result, and for differentiable
functions the gradients too (of a fixed random weighting of the outputs, so that every output element counts).
A failed case names itself, the shapes and dtype it used, where the results differ and a hint; it never shows
minilm's numbers or code, since those would be the answer.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor


@dataclass(frozen=True)
class Tolerance:
    rtol: float
    atol: float

    def __str__(self) -> str:
        return f"{self.atol:.0e} + {self.rtol:.0e} x |minilm|"


# Elementwise: |yours - minilm| <= atol + rtol * |minilm|. float32 leaves room for a different but correct order of
# operations (a sum over 384 numbers in another order moves the last digits); float64 leaves almost none, so a
# formula that is only nearly right shows up there. Gradients pass through more operations, hence their slack.
VALUE_TOLERANCES = {torch.float32: Tolerance(rtol=1e-4, atol=1e-5), torch.float64: Tolerance(rtol=1e-9, atol=1e-12)}
GRADIENT_TOLERANCES = {torch.float32: Tolerance(rtol=1e-3, atol=1e-5), torch.float64: Tolerance(rtol=1e-7, atol=1e-10)}


def tolerance_text() -> str:
    """The tolerances as the report and the lesson texts state them."""
    return "; ".join(
        f"{str(dtype).removeprefix('torch.')}: |yours - minilm| <= {VALUE_TOLERANCES[dtype]} "
        f"(gradients {GRADIENT_TOLERANCES[dtype]})"
        for dtype in VALUE_TOLERANCES
    )


@dataclass
class Case:
    """One check of one function.

    ``yours(fn)`` runs the learner's function and ``minilm()`` minilm's implementation; both return results under
    the same names. ``inputs`` describes the shapes and dtype for the report.
    """

    name: str
    inputs: str
    hint: str
    yours: Callable[[Callable], dict]
    minilm: Callable[[], dict]
    dtype: torch.dtype | None = torch.float32  # None: the results are not floating point
    gradient_tolerance: Tolerance | None = None  # None: the dtype's default
    value_tolerance: Tolerance | None = None
    autograd_note: bool = True  # the gradients are of your function's outputs: say where autograd usually breaks


@dataclass
class Exercise:
    function: str
    cases: Callable[[], list[Case]]  # built on demand: some need the tokenizer


# ------------------------------------------------------------------------------------------------ building cases


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def describe(value) -> str:
    """Shapes and sizes, never contents: an input shown in a report is for finding the case, not for reading."""
    if isinstance(value, Tensor):
        return f"{tuple(value.shape)} {str(value.dtype).removeprefix('torch.')}"
    if isinstance(value, Mapping):
        shown = [f"{k!r}: {describe(v)}" for k, v in list(value.items())[:2]]
        more = f", ... ({len(value)} entries)" if len(value) > 2 else ""
        return "{" + ", ".join(shown) + more + "}"
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, Tensor) for v in value):
        return f"{len(value)} tensors of {describe(value[0])}"
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, Mapping) for v in value):
        return f"{len(value)} dicts like {describe(value[0])}"
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (list, tuple)) for v in value):
        return f"{len(value)} lists of lengths {', '.join(str(len(v)) for v in value)}"
    if isinstance(value, (list, tuple)) and len(value) > 6:
        return f"{type(value).__name__} of {len(value)}"
    return repr(value)


def describe_inputs(kwargs: Mapping) -> str:
    """``q (2, 4) float32, n_head=2``; positional arguments (under the key ``"*"``) by the names they are given."""
    shown = {**kwargs.get(POSITIONAL, {}), **{k: v for k, v in kwargs.items() if k != POSITIONAL}}
    return ", ".join(
        f"{name} {describe(value)}" if isinstance(value, (Tensor, Mapping)) else f"{name}={describe(value)}"
        for name, value in shown.items()
    )


# Inputs passed by position (a function with *args) sit in the kwargs under this key, as a dict name -> value in
# argument order; a gradient path names one as ("*", name).
POSITIONAL = "*"


def call(fn: Callable, kwargs: dict):
    kwargs = dict(kwargs)
    return fn(*kwargs.pop(POSITIONAL, {}).values(), **kwargs)


def lookup_path(kwargs: Mapping, path: str | tuple):
    """``"q"`` is kwargs["q"]; ``("p", "up.weight")`` is kwargs["p"]["up.weight"]."""
    value = kwargs
    for key in (path,) if isinstance(path, str) else path:
        value = value[key]
    return value


def path_name(path: str | tuple) -> str:
    if isinstance(path, str):
        return path
    if path[0] == POSITIONAL:
        return path[1]
    return path[0] + "".join(f"[{k!r}]" for k in path[1:])


def outputs_of(result, name: str = "result") -> dict:
    """A function's result flattened into named leaves: ``result``, ``result[0]``, ``result['input_ids']``."""
    if isinstance(result, Mapping):
        return {k: v for key, item in result.items() for k, v in outputs_of(item, f"{name}[{key!r}]").items()}
    if isinstance(result, (tuple, list)) and any(isinstance(v, Tensor) for v in result):
        return {k: v for i, item in enumerate(result) for k, v in outputs_of(item, f"{name}[{i}]").items()}
    return {name: result}


def measure(fn: Callable, kwargs: dict, grads: Sequence = (), seed: int = 0) -> dict:
    """Call ``fn(**kwargs)``; return its outputs and, for ``grads`` (input paths), d(weighted sum of outputs)/d input.

    The weights are drawn from ``seed``, so both sides get the same ones, and are random rather than ones so that a
    mistake which keeps the sum of the outputs (a permutation, a missing normalisation of a softmax...) still shows.
    """
    leaves = []
    for path in grads:
        leaf = lookup_path(kwargs, path)
        leaf.requires_grad_(True)
        leaves.append(leaf)
    outputs = outputs_of(call(fn, kwargs))
    results = dict(outputs)
    if not grads:
        return results
    differentiable = [v for v in outputs.values() if isinstance(v, Tensor) and v.is_floating_point()]
    if not any(v.requires_grad for v in differentiable):
        raise NoGradient()
    g = generator(seed + 7919)
    total = sum((v * torch.randn(v.shape, generator=g, dtype=v.dtype)).sum() for v in differentiable if v.requires_grad)
    found = torch.autograd.grad(total, leaves, allow_unused=True)
    for path, grad in zip(grads, found):
        results[f"gradient of {path_name(path)}"] = Unused() if grad is None else grad
    return results


class NoGradient(Exception):
    """None of the function's outputs carries a gradient."""


class Unused:
    """The output does not depend on this input at all (torch.autograd.grad returned None)."""

    def __repr__(self) -> str:
        return "no gradient (the result does not depend on it)"


def call_with(module: torch.nn.Module, parameters: Mapping[str, Tensor], *args, **kwargs):
    """Run a minilm module with the given tensors in place of its parameters, keeping their gradients."""
    return torch.func.functional_call(module, dict(parameters), args, kwargs)


def function_case(
    name: str,
    hint: str,
    inputs: Callable[[torch.Generator], dict],
    reference: Callable,
    grads: Sequence = (),
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    **tolerances,
) -> Case:
    """A case for a function of tensors: ``inputs(generator)`` builds fresh keyword arguments, ``reference`` is
    minilm's implementation with the exercise's signature."""
    shown = describe_inputs(inputs(generator(seed)))

    def yours(fn):
        return measure(fn, inputs(generator(seed)), grads, seed)

    def minilm():
        return measure(reference, inputs(generator(seed)), grads, seed)

    return Case(name, shown, hint, yours, minilm, dtype, **tolerances)


# ------------------------------------------------------------------------------------------------ comparing


def compare(name: str, yours, expected, value_tol: Tolerance, grad_tol: Tolerance) -> str | None:
    """None when ``yours`` matches ``expected``, else what differs (never minilm's values themselves)."""
    tol = grad_tol if name.startswith("gradient") else value_tol
    if isinstance(expected, Unused) or isinstance(yours, Unused):
        if isinstance(expected, Unused) and isinstance(yours, Unused):
            return None
        if isinstance(yours, Unused):
            return f"{name}: your result does not depend on this input at all, but minilm's does"
        return f"{name}: your result depends on this input, but minilm's does not"
    if isinstance(expected, Tensor):
        return compare_tensors(name, yours, expected, tol)
    if isinstance(expected, bool) or expected is None or isinstance(expected, (int, str)):
        if type(yours) is type(expected) and yours == expected:
            return None
        if isinstance(expected, int) and not isinstance(expected, bool) and isinstance(yours, int):
            return f"{name}: yours is {yours!r}, minilm's differs"
        return f"{name}: yours is {yours!r}, minilm's is {'None' if expected is None else type(expected).__name__}"
    if isinstance(expected, float):
        if isinstance(yours, Tensor) and yours.numel() == 1:
            yours = yours.item()
        if isinstance(yours, bool) or not isinstance(yours, (int, float)):
            return f"{name}: yours is {describe(yours)}, expected a number"
        if math.isclose(yours, expected, rel_tol=tol.rtol, abs_tol=tol.atol):
            return None
        return f"{name}: yours is {yours!r}, off by {abs(yours - expected):.3g} (allowed {tol})"
    if isinstance(expected, (list, tuple)):
        if not isinstance(yours, (list, tuple)) or len(yours) != len(expected):
            return f"{name}: yours is {describe(yours)}, expected a sequence of {len(expected)}"
        for i, (y, e) in enumerate(zip(yours, expected)):
            problem = compare(f"{name}[{i}]", y, e, value_tol, grad_tol)
            if problem:
                return problem
        return None
    raise TypeError(f"cannot compare a {type(expected).__name__}")


def compare_tensors(name: str, yours, expected: Tensor, tol: Tolerance) -> str | None:
    if not isinstance(yours, Tensor):
        return f"{name}: yours is {describe(yours)}, expected a tensor"
    if yours.shape != expected.shape:
        return f"{name}: shape {tuple(yours.shape)}, but minilm's is {tuple(expected.shape)}"
    if yours.dtype != expected.dtype:
        advice = " (keep the inputs' dtype)" if expected.is_floating_point() else ""
        return (
            f"{name}: dtype {str(yours.dtype).removeprefix('torch.')}, but minilm's is "
            f"{str(expected.dtype).removeprefix('torch.')}{advice}"
        )
    yours, expected = yours.detach(), expected.detach()
    if not expected.is_floating_point():
        wrong = yours != expected
        if not wrong.any():
            return None
        return f"{name}: differs at {int(wrong.sum())} of {wrong.numel()} entries, the first at {index_of(wrong)}"
    bad_finite = ~torch.isfinite(yours) & torch.isfinite(expected)
    if bad_finite.any():
        kind = "NaN" if torch.isnan(yours[bad_finite]).any() else "inf"
        return (
            f"{name}: {kind} at {int(bad_finite.sum())} of {yours.numel()} entries, the first at {index_of(bad_finite)}"
        )
    same_special = ~torch.isfinite(expected) & (yours == expected)  # matching infinities
    allowed = tol.atol + tol.rtol * expected.abs()
    error = torch.where(same_special, 0, (yours - expected).abs())
    wrong = ~(error <= allowed)
    if not wrong.any():
        return None
    if yours.ndim == 0:
        return f"{name}: yours differs from minilm's by {error.item():.3g} (allowed {tol})"
    worst = torch.where(wrong, error - allowed, -1).argmax()
    where = list(torch.unravel_index(worst, yours.shape))
    message = (
        f"{name}: max |yours - minilm| = {error.max().item():.3g} at {[int(i) for i in where]} "
        f"(allowed {tol}); differs at {int(wrong.sum())} of {wrong.numel()} entries"
    )
    symptom = symptom_of(yours, expected)
    return message + (f"\n      symptom: {symptom}" if symptom else "")


def index_of(mask: Tensor) -> list[int]:
    return [int(i) for i in mask.nonzero()[0]] if mask.ndim else []


def symptom_of(yours: Tensor, expected: Tensor) -> str | None:
    """A pattern in the difference that points at a kind of mistake: a constant factor, a flipped sign, a constant
    offset, swapped last dimensions. Said in words, with no value of minilm's."""
    y, e = yours.double(), expected.double()
    finite = torch.isfinite(e) & torch.isfinite(y)
    if int(finite.sum()) < 2:
        return None
    if y.ndim >= 2 and y.shape[-1] == y.shape[-2] and torch.allclose(y, e.transpose(-1, -2), rtol=1e-4, atol=1e-6):
        return "yours equals minilm's with the last two dimensions swapped"
    scale = e[finite].abs().max().item()
    big = finite & (e.abs() > 1e-3 * scale)
    if int(big.sum()) >= 2 and scale > 1e-6:  # below that, minilm's values are rounding noise around 0
        factor = (y[big] / e[big]).median().item()
        if (
            abs(factor - 1) > 1e-3
            and abs(factor) > 1e-3
            and torch.allclose(y[big], factor * e[big], rtol=1e-3, atol=1e-6 * scale)
        ):
            if abs(factor + 1) < 1e-3:
                return "yours is minilm's with the sign flipped"
            return f"yours is {factor:.4g} times minilm's everywhere: a constant factor is missing or extra"
    offset = (y[finite] - e[finite]).median().item()
    if abs(offset) > 1e-6 and torch.allclose(y[finite], e[finite] + offset, rtol=1e-4, atol=1e-6):
        return f"yours is minilm's plus a constant {offset:.4g} everywhere"
    return None


# ------------------------------------------------------------------------------------------------ running


@dataclass
class Outcome:
    function: str
    status: str  # "ok", "failed", "not written", "missing"
    cases: int = 0
    lines: list[str] = field(default_factory=list)


def where_raised(error: BaseException, learner_file: Path | None) -> str:
    """The learner's own line that raised, if the error came through their file, else the innermost frame."""
    frames = traceback.extract_tb(error.__traceback__)
    mine = [f for f in frames if learner_file is not None and Path(f.filename).resolve() == learner_file.resolve()]
    frame = (mine or frames or [None])[-1]
    if frame is None:
        return ""
    return f" ({Path(frame.filename).name} line {frame.lineno}: {(frame.line or '').strip()})"


def run_exercise(exercise: Exercise, module, learner_file: Path | None = None) -> Outcome:
    fn = getattr(module, exercise.function, None)
    if not callable(fn):
        return Outcome(exercise.function, "missing", lines=[f"your file has no function named {exercise.function}"])
    cases = exercise.cases()
    for number, case in enumerate(cases, 1):
        shown_dtype = f" [{str(case.dtype).removeprefix('torch.')}]" if case.dtype is not None else ""
        header = f"case {number} of {len(cases)}: {case.name}{shown_dtype}"
        try:
            yours = case.yours(fn)
        except NotImplementedError:
            return Outcome(
                exercise.function,
                "not written",
                lines=["not written yet: it still raises NotImplementedError (or calls a function that does)"],
            )
        except NoGradient:
            return Outcome(
                exercise.function,
                "failed",
                number,
                [
                    header,
                    f"    inputs: {case.inputs}",
                    "    your result carries no gradient: was it computed under torch.no_grad(), detached, or turned "
                    "into Python numbers (.item(), .tolist(), numpy) on the way?",
                    f"    hint: {case.hint}",
                ],
            )
        except Exception as error:  # the learner's code may raise anything; say what and where
            return Outcome(
                exercise.function,
                "failed",
                number,
                [
                    header,
                    f"    inputs: {case.inputs}",
                    f"    your function raised {type(error).__name__}: {error}{where_raised(error, learner_file)}",
                    f"    hint: {case.hint}",
                ],
            )
        expected = case.minilm()
        dtype = case.dtype or torch.float32
        value_tol = case.value_tolerance or VALUE_TOLERANCES[dtype]
        grad_tol = case.gradient_tolerance or GRADIENT_TOLERANCES[dtype]
        problems = []
        for name, want in expected.items():
            if name not in yours:
                problems.append(f"{name}: missing from your result")
                continue
            problem = compare(name, yours[name], want, value_tol, grad_tol)
            if problem:
                problems.append(problem)
        extra = sorted(set(yours) - set(expected))
        if extra:
            problems.append(f"your result has more parts than minilm's: {', '.join(extra)}")
        if problems:
            value_problems = [p for p in problems if not p.startswith("gradient")]
            lines = [header, f"    inputs: {case.inputs}"]
            if value_problems:  # wrong values make wrong gradients: one thing at a time
                lines += shortened(value_problems)
                if len(value_problems) < len(problems):
                    lines.append("    (the gradients differ too; they are worth a look once the values match)")
            else:
                lines += shortened(problems)
                if case.autograd_note and any(": NaN at" in p for p in problems):
                    lines.append(
                        "    your values are right but a gradient is NaN: some operation of yours has an "
                        "infinite derivative at these inputs"
                    )
                elif case.autograd_note:
                    lines.append(
                        "    your values are right but the gradients are not: look for .detach(), .data, "
                        "in-place edits of tensors autograd needs, or a step done outside autograd"
                    )
            lines.append(f"    hint: {case.hint}")
            return Outcome(exercise.function, "failed", number, lines)
    return Outcome(exercise.function, "ok", len(cases))


def shortened(problems: list[str], keep: int = 3) -> list[str]:
    """The first few differences; a whole model's gradients can differ at once and the first ones say enough."""
    lines = [f"    {p}" for p in problems[:keep]]
    if len(problems) > keep:
        lines.append(f"    ... and {len(problems) - keep} more results differ")
    return lines


def render(title: str, source: str, outcomes: list[Outcome]) -> str:
    width = max(len(o.function) for o in outcomes) + 4
    lines = [f"{title}: checking {source} against minilm", ""]
    for o in outcomes:
        dots = "." * (width - len(o.function))
        if o.status == "ok":
            lines.append(f"{o.function} {dots} ok ({o.cases} cases)")
        elif o.status == "failed":
            lines.append(f"{o.function} {dots} FAILED at {o.lines[0]}")
            lines += [f"  {line}" for line in o.lines[1:]]
        else:
            lines.append(f"{o.function} {dots} {o.lines[0]}")
    passed = sum(o.status == "ok" for o in outcomes)
    lines += ["", f"{passed} of {len(outcomes)} functions pass.", f"Tolerances, elementwise: {tolerance_text()}."]
    return "\n".join(lines) + "\n"
