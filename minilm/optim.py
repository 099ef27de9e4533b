"""AdamW, a linear warmup/decay schedule and global gradient-norm clipping, written out in full.

The arithmetic follows torch.optim.AdamW (foreach=False) op for op, so float32 results match it bit for bit;
the schedule gives the same multipliers as transformers' get_linear_schedule_with_warmup.
"""

import math
from collections.abc import Iterable, Mapping

import torch
from torch import Tensor, nn


def no_decay(name: str) -> bool:
    """True for parameters exempt from weight decay: biases and normalisation weights.

    Rule: the name ends with "bias", or contains "norm" in any case (LayerNorm, layer_norm, ln_norm...).
    Shrinking these towards zero only hurts: a bias or a LayerNorm gain is not a "weight" that overfits.
    """
    return name.endswith("bias") or "norm" in name.lower()


def param_groups(model: nn.Module | Mapping[str, Tensor], weight_decay: float) -> list[dict]:
    """Split trainable parameters into [decayed, not decayed] groups by name (see `no_decay`)."""
    if not isinstance(weight_decay, (int, float)) or weight_decay < 0:
        raise ValueError(f"weight_decay must be a non-negative number, got {weight_decay!r}")
    named = model.named_parameters() if isinstance(model, nn.Module) else model.items()
    decay, keep = [], []
    for name, p in named:
        if p.requires_grad:
            (keep if no_decay(name) else decay).append(p)
    return [{"params": decay, "weight_decay": float(weight_decay)}, {"params": keep, "weight_decay": 0.0}]


class AdamW:
    """Adam with decoupled weight decay (Loshchilov & Hutter), bias-corrected moments, eps outside the sqrt.

    `params` is an iterable of tensors or of dicts {"params": [...], "weight_decay": wd, "lr": lr}.
    Each group carries its own "lr" (the schedule rewrites it every step) and "weight_decay".
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01):
        if lr < 0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"betas must each be in [0, 1), got {betas}")
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
        params = list(params)
        if not params:
            raise ValueError("params is empty")
        if isinstance(params[0], Tensor):
            params = [{"params": params}]
        self.betas, self.eps = betas, eps
        self.param_groups = []
        for g in params:
            group = {"lr": lr, "weight_decay": weight_decay, **g, "params": list(g["params"])}
            if not all(isinstance(p, Tensor) for p in group["params"]):
                raise TypeError("params must contain tensors (or dicts whose 'params' are tensors)")
            self.param_groups.append(group)
        self.state: dict[Tensor, dict] = {}  # param -> {"step": int, "exp_avg": Tensor, "exp_avg_sq": Tensor}

    def _params(self) -> list[Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    def zero_grad(self) -> None:
        for p in self._params():
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = self.betas
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue  # like torch: a parameter without a gradient does not advance its step count
                st = self.state.get(p)
                if st is None:
                    st = self.state[p] = {"step": 0, "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
                m, v, g = st["exp_avg"], st["exp_avg_sq"], p.grad
                st["step"] += 1
                t = st["step"]
                # Same op order and scalar arithmetic as torch's _single_tensor_adam, so rounding is identical.
                if wd != 0:
                    p.mul_(1 - lr * wd)  # decoupled decay: p -= lr * wd * p, before the Adam update
                m.lerp_(g, 1 - beta1)  # m = beta1 m + (1 - beta1) g
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)  # v = beta2 v + (1 - beta2) g^2
                bias_correction1 = 1 - beta1**t
                bias_correction2_sqrt = (1 - beta2**t) ** 0.5
                denom = (v.sqrt() / bias_correction2_sqrt).add_(self.eps)  # eps outside the sqrt
                p.addcdiv_(m, denom, value=-(lr / bias_correction1))

    def state_dict(self) -> dict:
        """Hyper-parameters per group and moments per parameter, keyed by position (as torch does)."""
        index = {p: i for i, p in enumerate(self._params())}
        return {
            "betas": self.betas,
            "eps": self.eps,
            "param_groups": [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups],
            "state": {index[p]: {"step": s["step"], "exp_avg": s["exp_avg"].clone(),
                                 "exp_avg_sq": s["exp_avg_sq"].clone()} for p, s in self.state.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        params = self._params()
        if len(state["param_groups"]) != len(self.param_groups):
            raise ValueError(f"state has {len(state['param_groups'])} param groups, "
                             f"optimiser has {len(self.param_groups)}")
        self.betas, self.eps = tuple(state["betas"]), state["eps"]
        for group, saved in zip(self.param_groups, state["param_groups"]):
            group.update(saved)
        self.state = {}
        for i, s in state["state"].items():
            p = params[int(i)]
            if s["exp_avg"].shape != p.shape:
                raise ValueError(f"state for parameter {i} has shape {tuple(s['exp_avg'].shape)}, "
                                 f"parameter has {tuple(p.shape)}")
            self.state[p] = {"step": int(s["step"]), "exp_avg": s["exp_avg"].to(p).clone(),
                             "exp_avg_sq": s["exp_avg_sq"].to(p).clone()}


def linear_warmup_multiplier(step: int, warmup_steps: int, total_steps: int) -> float:
    """lr multiplier: step / warmup rising from 0, then linear decay to 0 at `total_steps`."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


class LinearWarmupSchedule:
    """Sets each group's lr to base_lr * multiplier(step); call `step()` after every optimiser step.

    Give `warmup_steps` (int) or `warmup_ratio` (fraction of `total_steps`, rounded up as transformers does).
    As with torch's LambdaLR, the very first optimiser step runs at multiplier(0), i.e. lr 0 when warming up.
    """

    def __init__(self, optimizer: AdamW, total_steps: int, warmup_steps: int = 0, warmup_ratio: float | None = None):
        if not isinstance(total_steps, int) or total_steps < 1:
            raise ValueError(f"total_steps must be a positive int, got {total_steps!r}")
        if warmup_ratio is not None:
            if warmup_steps:
                raise ValueError("give warmup_steps or warmup_ratio, not both")
            if not 0 <= warmup_ratio <= 1:
                raise ValueError(f"warmup_ratio must be in [0, 1], got {warmup_ratio}")
            warmup_steps = math.ceil(total_steps * warmup_ratio)
        if not isinstance(warmup_steps, int) or warmup_steps < 0:
            raise ValueError(f"warmup_steps must be a non-negative int, got {warmup_steps!r}")
        self.optimizer, self.total_steps, self.warmup_steps = optimizer, total_steps, warmup_steps
        self.base_lrs = [g["lr"] for g in optimizer.param_groups]
        self.last_step = 0
        self._apply()

    def multiplier(self) -> float:
        return linear_warmup_multiplier(self.last_step, self.warmup_steps, self.total_steps)

    def _apply(self) -> None:
        m = self.multiplier()
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = base * m

    def step(self) -> None:
        self.last_step += 1
        self._apply()

    def state_dict(self) -> dict:
        return {"last_step": self.last_step, "base_lrs": list(self.base_lrs),
                "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}

    def load_state_dict(self, state: dict) -> None:
        self.last_step, self.base_lrs = state["last_step"], list(state["base_lrs"])
        self.warmup_steps, self.total_steps = state["warmup_steps"], state["total_steps"]
        self._apply()


@torch.no_grad()
def clip_grad_norm(params: Iterable[Tensor], max_norm: float = 1.0) -> Tensor:
    """Scale all gradients together so their global L2 norm is at most `max_norm`; return the norm before."""
    if max_norm <= 0:
        raise ValueError(f"max_norm must be > 0, got {max_norm}")
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.tensor(0.0)
    total_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))  # ()
    # The 1e-6 keeps the coefficient finite for zero gradients; clamping means we only ever shrink.
    clip_coef = torch.clamp(max_norm / (total_norm + 1e-6), max=1.0)
    for g in grads:
        g.mul_(clip_coef)
    return total_norm
