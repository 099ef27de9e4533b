"""AdamW, a linear warmup/decay schedule and global gradient-norm clipping, written out in full.

The arithmetic follows torch.optim.AdamW op for op, so float32 results match it bit for bit: the per-tensor form
(foreach=False), chunked for the CPU's caches, and the multi-tensor form (foreach=True), a handful of kernels per
step for all tensors together, which accelerators want (one launch per op, not one per op and tensor). The two forms
give the same bits. The schedule gives the same multipliers as transformers' get_linear_schedule_with_warmup.
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
    """Split trainable parameters into [decayed, not decayed] groups by name (see `no_decay`); a 0-d parameter (a
    loss's temperature or scale) is never decayed: shrinking it towards 0 is not regularisation but a new objective."""
    if not isinstance(weight_decay, (int, float)) or weight_decay < 0:
        raise ValueError(f"weight_decay must be a non-negative number, got {weight_decay!r}")
    named = model.named_parameters() if isinstance(model, nn.Module) else model.items()
    decay, keep = [], []
    for name, p in named:
        if p.requires_grad:
            (keep if no_decay(name) or p.ndim == 0 else decay).append(p)
    return [{"params": decay, "weight_decay": float(weight_decay)}, {"params": keep, "weight_decay": 0.0}]


FLOAT32_MAX = torch.finfo(torch.float32).max


def check_step_size(lr: float, beta1: float, where: str) -> None:
    """The first step's size, lr / (1 - beta1) (the bias correction is smallest then), must be a finite float32: the
    update hands it to torch as a float32 scalar, which would fail with torch's own overflow error mid-step."""
    if not math.isfinite(lr) or lr / (1 - beta1) > FLOAT32_MAX:
        raise ValueError(
            f"{where}: lr {lr:g} gives a first AdamW step of lr / (1 - beta1) = {lr / (1 - beta1):g}, beyond float32 "
            f"({FLOAT32_MAX:.3g}); a learning rate this high cannot train"
        )


class AdamW:
    """Adam with decoupled weight decay (Loshchilov & Hutter), bias-corrected moments, eps outside the sqrt.

    `params` is an iterable of tensors or of dicts {"params": [...], "weight_decay": wd, "lr": lr}.
    Each group carries its own "lr" (the schedule rewrites it every step) and "weight_decay".
    `foreach`: the multi-tensor form (True), the per-tensor form (False), or None: multi-tensor on an accelerator
    (CUDA, MPS), per-tensor on the CPU, by where the parameters are.
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        foreach: bool | None = None,
    ):
        if foreach not in (None, True, False):
            raise ValueError(f"foreach must be True, False or None (by device), got {foreach!r}")
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
        self.betas, self.eps, self.foreach = betas, eps, foreach
        self.param_groups = []
        for i, g in enumerate(params):
            group = {"lr": lr, "weight_decay": weight_decay, **g, "params": list(g["params"])}
            if not all(isinstance(p, Tensor) for p in group["params"]):
                raise TypeError("params must contain tensors (or dicts whose 'params' are tensors)")
            check_step_size(group["lr"], betas[0], f"parameter group {i}")
            self.param_groups.append(group)
        self.state: dict[Tensor, dict] = {}  # param -> {"step": int, "exp_avg": Tensor, "exp_avg_sq": Tensor}
        self._buffers: dict[tuple, Tensor] = {}  # (dtype, device) -> scratch for the update's denominator

    def _params(self) -> list[Tensor]:
        return [p for g in self.param_groups for p in g["params"]]

    def zero_grad(self) -> None:
        for p in self._params():
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            # like torch: a parameter without a gradient does not advance its step count
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            if uses_foreach(self.foreach, params[0].device):
                for same in by_device_and_dtype(params):
                    self._multi_tensor_update(same, group["lr"], group["weight_decay"])
            else:
                self._per_tensor_update(params, group["lr"], group["weight_decay"])

    def _per_tensor_update(self, params: list[Tensor], lr: float, wd: float) -> None:
        beta1, beta2 = self.betas
        for p in params:
            st = self.state_of(p)
            st["step"] += 1
            t = st["step"]
            bias_correction1 = 1 - beta1**t
            bias_correction2_sqrt = (1 - beta2**t) ** 0.5
            info = torch.finfo(p.dtype)
            tiny = info.tiny
            # sqrt(0) is far slower than sqrt(x > 0) on CPU (MKL; benchmarks/README.md), and the second
            # moment of every word embedding row a batch never saw is exactly 0. Clamping v to the smallest
            # normal number first gives the same bits whenever sqrt(tiny) / bias_correction2_sqrt is below half
            # an ulp of eps (it then vanishes when eps is added, as 0 does); half an ulp of eps exceeds
            # eps * info.eps / 4. For float32 that holds for any eps above ~1e-10. Otherwise: plain sqrt.
            clamp = math.sqrt(tiny) / bias_correction2_sqrt < self.eps * info.eps / 4
            for p_, g, m, v in self._chunks(p, p.grad, st["exp_avg"], st["exp_avg_sq"]):
                # Same op order and scalar arithmetic as torch's _single_tensor_adam, so rounding is identical.
                if wd != 0:
                    p_.mul_(1 - lr * wd)  # decoupled decay: p -= lr * wd * p, before the Adam update
                m.lerp_(g, 1 - beta1)  # m = beta1 m + (1 - beta1) g
                v.mul_(beta2).addcmul_(g, g, value=1 - beta2)  # v = beta2 v + (1 - beta2) g^2
                denom = self._scratch(v)
                denom = torch.clamp_min(v, tiny, out=denom).sqrt_() if clamp else torch.sqrt(v, out=denom)
                denom.div_(bias_correction2_sqrt).add_(self.eps)  # eps outside the sqrt
                p_.addcdiv_(m, denom, value=-(lr / bias_correction1))

    def _multi_tensor_update(self, params: list[Tensor], lr: float, wd: float) -> None:
        """The update of ``params`` (one device and dtype) in multi-tensor kernels: torch's _multi_tensor_adam with
        decoupled decay, op for op and with the same scalars, hence its bits (and the per-tensor form's: the clamp
        there changes no result, see ``_per_tensor_update``)."""
        beta1, beta2 = self.betas
        states = [self.state_of(p) for p in params]
        for st in states:
            st["step"] += 1
        grads = [p.grad for p in params]
        exp_avgs, exp_avg_sqs = [st["exp_avg"] for st in states], [st["exp_avg_sq"] for st in states]
        if wd != 0:
            torch._foreach_mul_(params, 1 - lr * wd)  # decoupled decay, before the Adam update
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)  # m = beta1 m + (1 - beta1) g
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)  # v = beta2 v + (1 - beta2) g^2
        step_sizes = [(lr / (1 - beta1 ** st["step"])) * -1 for st in states]  # per tensor: step counts may differ
        bias_corrections2_sqrt = [(1 - beta2 ** st["step"]) ** 0.5 for st in states]
        denoms = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denoms, bias_corrections2_sqrt)
        torch._foreach_add_(denoms, self.eps)  # eps outside the sqrt
        torch._foreach_addcdiv_(params, exp_avgs, denoms, step_sizes)

    def state_of(self, p: Tensor) -> dict:
        """``p``'s moments and step count, created (zeros, step 0) on its first update."""
        st = self.state.get(p)
        if st is None:
            st = self.state[p] = {"step": 0, "exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p)}
        return st

    # Elements per chunk: five 1 MB float32 streams stay in cache between the seven passes of the update.
    CHUNK = 1 << 18

    def _chunks(self, *tensors: Tensor):
        """Yield matching flat slices of (param, grad, exp_avg, exp_avg_sq), CHUNK elements at a time.

        Updating a whole 46 MB word-embedding table pass by pass streams it through memory seven times and
        allocates a fresh 46 MB temporary (page faults) every step; chunks make each pass hit the cache. Every op
        is elementwise, so the result is bit-identical to whole-tensor updates (the gain: benchmarks/README.md).
        """
        if tensors[0].device.type != "cpu" or not all(t.is_contiguous() for t in tensors):
            yield tensors  # accelerators stream memory fast enough; chunks would only add kernel launches
            return
        flat = [t.view(-1) for t in tensors]
        n = flat[0].numel()
        for start in range(0, n, self.CHUNK):
            yield [f[start : start + self.CHUNK] for f in flat]

    def _scratch(self, like: Tensor) -> Tensor:
        """A reusable buffer shaped like ``like`` (at most one CHUNK, unless ``like`` is a non-contiguous whole)."""
        key = (like.dtype, like.device)
        buf = self._buffers.get(key)
        if buf is None or buf.numel() < like.numel():
            buf = self._buffers[key] = torch.empty(max(like.numel(), self.CHUNK), dtype=like.dtype, device=like.device)
        return buf[: like.numel()].view(like.shape)

    def state_dict(self) -> dict:
        """Hyper-parameters per group and moments per parameter, keyed by position (as torch does)."""
        index = {p: i for i, p in enumerate(self._params())}
        return {
            "betas": self.betas,
            "eps": self.eps,
            "param_groups": [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups],
            "state": {
                index[p]: {"step": s["step"], "exp_avg": s["exp_avg"].clone(), "exp_avg_sq": s["exp_avg_sq"].clone()}
                for p, s in self.state.items()
            },
        }

    def load_state_dict(self, state: dict) -> None:
        params = self._params()
        if len(state["param_groups"]) != len(self.param_groups):
            raise ValueError(
                f"state has {len(state['param_groups'])} param groups, optimiser has {len(self.param_groups)}"
            )
        self.betas, self.eps = tuple(state["betas"]), state["eps"]
        for group, saved in zip(self.param_groups, state["param_groups"]):
            group.update(saved)
        self.state = {}
        for i, s in state["state"].items():
            p = params[int(i)]
            if s["exp_avg"].shape != p.shape:
                raise ValueError(
                    f"state for parameter {i} has shape {tuple(s['exp_avg'].shape)}, parameter has {tuple(p.shape)}"
                )
            self.state[p] = {
                "step": int(s["step"]),
                "exp_avg": s["exp_avg"].to(p).clone(),
                "exp_avg_sq": s["exp_avg_sq"].to(p).clone(),
            }


def uses_foreach(foreach: bool | None, device: torch.device) -> bool:
    """The multi-tensor form when asked for, or by default on an accelerator: on the CPU the per-tensor form's chunks
    keep each pass in cache; on a GPU the per-tensor form's ~10 kernel launches per tensor are what a step waits on."""
    return foreach if foreach is not None else device.type != "cpu"


def by_device_and_dtype(params: list[Tensor]) -> list[list[Tensor]]:
    """``params`` in lists of one device and dtype each (what a multi-tensor kernel takes), in order of first sight."""
    groups: dict[tuple, list[Tensor]] = {}
    for p in params:
        groups.setdefault((p.device, p.dtype), []).append(p)
    return list(groups.values())


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
        return {
            "last_step": self.last_step,
            "base_lrs": list(self.base_lrs),
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
        }

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
