"""Lesson 7, solved: minilm/train/optim.py's AdamW.step for one tensor, and its schedule's multiplier."""

import _minilm
import torch


@torch.no_grad()
def adamw_update(param, grad, exp_avg, exp_avg_sq, step, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    beta1, beta2 = betas
    param, exp_avg, exp_avg_sq = param.clone(), exp_avg.clone(), exp_avg_sq.clone()
    if weight_decay != 0:
        param.mul_(1 - lr * weight_decay)
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    denom = (exp_avg_sq.sqrt() / (1 - beta2**step) ** 0.5).add_(eps)
    param.addcdiv_(exp_avg, denom, value=-(lr / (1 - beta1**step)))
    return param, exp_avg, exp_avg_sq


def linear_schedule(step, warmup_steps, total_steps):
    optimizer = _minilm.AdamW([torch.zeros(1)], lr=1.0)
    schedule = _minilm.LinearWarmupSchedule(optimizer, total_steps=total_steps, warmup_steps=warmup_steps)
    for _ in range(step):
        schedule.step()
    return optimizer.param_groups[0]["lr"]
