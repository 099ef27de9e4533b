"""A compiled AdamW step: the whole update of a parameter group becomes one compiled graph.

Same API and state as ``minilm.train.optim.AdamW`` (it is a subclass: param_groups, state, state_dict, zero_grad and the
LinearWarmupSchedule all work unchanged). Every hyper-parameter enters the graph as a 0-d tensor, so the schedule
rewriting ``group["lr"]`` each step does not recompile; only a new set of parameters (shapes) does.
"""

from __future__ import annotations

import torch
from torch import Tensor

from minilm.train.optim import AdamW


def _adamw_update(
    params: list[Tensor],
    grads: list[Tensor],
    exp_avgs: list[Tensor],
    exp_avg_sqs: list[Tensor],
    decay: Tensor,  # 1 - lr * weight_decay
    beta1: Tensor,
    beta2: Tensor,
    eps: Tensor,
    step_size: Tensor,  # lr / (1 - beta1^t)
    bias_correction2_sqrt: Tensor,  # sqrt(1 - beta2^t)
) -> None:
    # The reference's op order (minilm.train.optim.AdamW.step), written out so inductor can fuse it per tensor.
    for p, g, m, v in zip(params, grads, exp_avgs, exp_avg_sqs):
        p.mul_(decay)
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).add_(g * g * (1 - beta2))
        p.sub_(step_size * m / (v.sqrt() / bias_correction2_sqrt + eps))


_compiled_update = torch.compile(_adamw_update, dynamic=False)


class FusedAdamW(AdamW):
    """minilm.train.optim.AdamW whose step runs as one compiled kernel per (group, step count)."""

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = self.betas
        for group in self.param_groups:
            lr, wd = group["lr"], group["weight_decay"]
            buckets: dict[int, list[Tensor]] = {}  # step count -> params; one bucket unless params joined late
            for p in group["params"]:
                if p.grad is None:
                    continue  # as the reference: no gradient, no step
                st = self.state_of(p)
                st["step"] += 1
                buckets.setdefault(st["step"], []).append(p)
            for t, params in buckets.items():
                like = params[0]

                def scalar(x: float, like: Tensor = like) -> Tensor:
                    return torch.tensor(x, dtype=like.dtype, device=like.device)

                _compiled_update(
                    params,
                    [p.grad for p in params],
                    [self.state[p]["exp_avg"] for p in params],
                    [self.state[p]["exp_avg_sq"] for p in params],
                    scalar(1 - lr * wd),
                    scalar(beta1),
                    scalar(beta2),
                    scalar(self.eps),
                    scalar(lr / (1 - beta1**t)),
                    scalar((1 - beta2**t) ** 0.5),
                )
