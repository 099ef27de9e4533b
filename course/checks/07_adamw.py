"""Lesson 7's checker: adamw_update against a step of minilm's AdamW, linear_schedule against minilm's
LinearWarmupSchedule."""

import _minilm
import torch
from _checking import Case, Exercise

TITLE = "AdamW and the linear schedule"


def minilm_adamw_update(param, grad, exp_avg, exp_avg_sq, step, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    p = param.detach().clone()
    optimizer = _minilm.AdamW([p], lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    state = optimizer.state_of(p)  # continue from the given moments, as if `step - 1` updates had been made
    state["step"] = step - 1
    state["exp_avg"].copy_(exp_avg)
    state["exp_avg_sq"].copy_(exp_avg_sq)
    p.grad = grad.clone()
    optimizer.step()
    return p, state["exp_avg"], state["exp_avg_sq"]


def adamw_case(
    name,
    hint,
    shape,
    dtype,
    steps,
    first_step=1,
    lr=1e-2,
    betas=(0.9, 0.999),
    eps=1e-8,
    weight_decay=0.0,
    grad_scale=1.0,
    running=False,
    seed=0,
) -> Case:
    """``steps`` updates in a row from ``first_step``; each one's weights, moments and weight change are compared
    (the change on its own, since with a small lr it is tiny next to the weights)."""

    def start():
        g = torch.Generator().manual_seed(seed)
        param = torch.randn(shape, generator=g, dtype=dtype)
        grads = [grad_scale * torch.randn(shape, generator=g, dtype=dtype) for _ in range(steps)]
        if running:  # moments as a few earlier updates would have left them
            m = 0.1 * torch.randn(shape, generator=g, dtype=dtype)
            v = 0.01 * torch.rand(shape, generator=g, dtype=dtype)
        else:
            m, v = torch.zeros(shape, dtype=dtype), torch.zeros(shape, dtype=dtype)
        return param, grads, m, v

    def run(fn):
        param, grads, m, v = start()
        results = {}
        for i, grad in enumerate(grads):
            step = first_step + i
            before = param.clone()
            with torch.no_grad():
                out = fn(param.clone(), grad.clone(), m.clone(), v.clone(), step, lr, betas, eps, weight_decay)
            if not (isinstance(out, tuple) and len(out) == 3):
                return {"result (expected a tuple of 3 tensors)": out}
            param, m, v = out
            label = f"after step {step}: " if steps > 1 else ""
            results[f"{label}change of param"] = param - before if isinstance(param, torch.Tensor) else param
            results[f"{label}param"], results[f"{label}exp_avg"], results[f"{label}exp_avg_sq"] = param, m, v
        return results

    def yours(fn):
        return run(fn)

    def minilm():
        return run(minilm_adamw_update)

    shown = (
        f"param, grad, exp_avg, exp_avg_sq {tuple(shape)} {str(dtype).removeprefix('torch.')}, step={first_step}"
        + (f" to {first_step + steps - 1}" if steps > 1 else "")
        + f", lr={lr}, betas={betas}, eps={eps}, weight_decay={weight_decay}"
    )
    return Case(name, shown, hint, yours, minilm, dtype)


FIRST_HINT = (
    "Adam's moments start at zero, so early on they are too small: divide the first moment by "
    "1 - beta1^t and the second by 1 - beta2^t (bias correction, t = step, from 1). On step 1 that makes "
    "every weight move by almost exactly lr, against the sign of its gradient."
)
RUNNING_HINT = (
    "m <- beta1 m + (1 - beta1) g and v <- beta2 v + (1 - beta2) g^2 (elementwise); then the weight moves "
    "by lr times the bias-corrected m over (the square root of the bias-corrected v, plus eps)."
)
DECAY_HINT = (
    "Decoupled weight decay: the weight itself shrinks by lr x weight_decay x weight, apart from the Adam "
    "step (minilm and torch do it first). Adding weight_decay x weight to the gradient instead is Adam "
    "with L2, a different optimiser: Adam's normalisation would rescale the decay."
)
EPS_HINT = (
    "These gradients are far smaller than eps, so where eps goes decides the step: it is added after the "
    "square root of the bias-corrected second moment, not inside the square root and not before the "
    "bias correction."
)
TRAJECTORY_HINT = (
    "Each update starts from the weights and moments the previous one returned, and t counts up "
    "(here 1 to 5); the bias corrections use this update's t."
)


def adamw_cases():
    return [
        adamw_case("the first step, from zero moments", FIRST_HINT, (4, 8), torch.float32, 1),
        adamw_case(
            "step 10, moments already running, betas (0.8, 0.99)",
            RUNNING_HINT,
            (3, 16),
            torch.float32,
            1,
            first_step=10,
            betas=(0.8, 0.99),
            running=True,
            seed=1,
        ),
        adamw_case(
            "weight decay 0.1",
            DECAY_HINT,
            (5, 4),
            torch.float64,
            1,
            first_step=3,
            weight_decay=0.1,
            running=True,
            seed=2,
        ),
        adamw_case("gradients of 1e-10, far below eps", EPS_HINT, (6,), torch.float64, 1, grad_scale=1e-10, seed=3),
        adamw_case(
            "five updates in a row, lr 5e-5 as in the recipes",
            TRAJECTORY_HINT,
            (4, 4),
            torch.float64,
            5,
            lr=5e-5,
            weight_decay=0.01,
            seed=4,
        ),
    ]


def minilm_multiplier(step, warmup_steps, total_steps):
    optimizer = _minilm.AdamW([torch.zeros(1)], lr=1.0)
    schedule = _minilm.LinearWarmupSchedule(optimizer, total_steps=total_steps, warmup_steps=warmup_steps)
    for _ in range(step):
        schedule.step()
    return optimizer.param_groups[0]["lr"]


def schedule_case(name, hint, warmup_steps, total_steps) -> Case:
    steps = range(total_steps + 3)

    def yours(fn):
        return {f"multiplier at step {s}": fn(s, warmup_steps, total_steps) for s in steps}

    def minilm():
        return {f"multiplier at step {s}": float(minilm_multiplier(s, warmup_steps, total_steps)) for s in steps}

    return Case(
        name,
        f"step = 0 to {total_steps + 2}, warmup_steps={warmup_steps}, total_steps={total_steps}",
        hint,
        yours,
        minilm,
        torch.float64,
    )


DECAY_ONLY_HINT = (
    "Without warmup the multiplier starts at 1 at step 0 and falls in equal steps to 0 at total_steps "
    "(step / total_steps of the way down); after total_steps it stays 0, never negative."
)
WARMUP_HINT = (
    "During warmup the multiplier is step / warmup_steps (0 at step 0, so the first update uses lr 0); from "
    "warmup_steps it falls linearly from 1 to 0 at total_steps: (total_steps - step) / (total_steps - "
    "warmup_steps)."
)
ALL_WARMUP_HINT = (
    "When warmup_steps == total_steps there is nothing left to decay over: the multiplier rises to "
    "total_steps and is 0 from there on. Keep every division away from 0."
)


def schedule_cases():
    return [
        schedule_case("no warmup, 10 steps", DECAY_ONLY_HINT, 0, 10),
        schedule_case("3 warmup steps of 10", WARMUP_HINT, 3, 10),
        schedule_case("warmup over all 5 steps", ALL_WARMUP_HINT, 5, 5),
    ]


EXERCISES = [Exercise("adamw_update", adamw_cases), Exercise("linear_schedule", schedule_cases)]
