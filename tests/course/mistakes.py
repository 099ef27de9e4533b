"""Deliberate mistakes, at least one per lesson: each replaces one function of a reference solution, and the
lesson's checker must fail it with the hint that names the mistake (``hint`` is a phrase of that hint)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from _minilm import t_interval


@dataclass
class Mistake:
    lesson: int
    function: str
    wrong: Callable
    hint: str

    def __str__(self) -> str:
        return f"lesson{self.lesson}-{self.wrong.__name__}"


def layer_norm_unbiased_variance(x, weight, bias, eps):
    return (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True) + eps) * weight + bias


def layer_norm_eps_outside(x, weight, bias, eps):
    centred = x - x.mean(-1, keepdim=True)
    return centred / (centred.pow(2).mean(-1, keepdim=True).sqrt() + eps) * weight + bias


def attention_probs_unscaled(q, k, mask):
    return (q @ k.transpose(-2, -1) + mask).softmax(dim=-1)


def attention_probs_masked_after_softmax(q, k, mask):
    probs = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(dim=-1)
    return probs * (mask == 0)


def feed_forward_pre_layer_norm(x, p, eps):
    normed = F.layer_norm(x, x.shape[-1:], p["norm.weight"], p["norm.bias"], eps)
    return x + F.linear(F.gelu(F.linear(normed, p["up.weight"], p["up.bias"])), p["down.weight"], p["down.bias"])


def mean_pool_over_padding(hidden, attention_mask):
    return hidden.mean(dim=1)


def triplet_loss_sign_flipped(anchor, positive, negative, distance="euclidean", margin=5.0):
    distances = {
        "euclidean": lambda a, b: (a - b).norm(dim=-1),
        "cosine": lambda a, b: 1 - F.cosine_similarity(a, b),
        "manhattan": lambda a, b: (a - b).abs().sum(-1),
    }[distance]
    return F.relu(distances(anchor, negative) - distances(anchor, positive) + margin).mean()


def euclidean_distance_nan_at_zero(a, b):
    return ((a - b) ** 2).sum(dim=-1).sqrt()


def mnrl_without_scale(anchors, positives, *hard_negatives, scale=20.0):
    logits = F.normalize(anchors, dim=-1) @ F.normalize(torch.cat([positives, *hard_negatives]), dim=-1).T
    return F.cross_entropy(logits, torch.arange(len(anchors)))


@torch.no_grad()
def adamw_update_without_bias_correction(
    param, grad, exp_avg, exp_avg_sq, step, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0
):
    beta1, beta2 = betas
    param = param * (1 - lr * weight_decay)
    exp_avg = beta1 * exp_avg + (1 - beta1) * grad
    exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * grad * grad
    return param - lr * exp_avg / (exp_avg_sq.sqrt() + eps), exp_avg, exp_avg_sq


@torch.no_grad()
def adamw_update_with_l2(param, grad, exp_avg, exp_avg_sq, step, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
    beta1, beta2 = betas
    grad = grad + weight_decay * param
    exp_avg = beta1 * exp_avg + (1 - beta1) * grad
    exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) * grad * grad
    m_hat, v_hat = exp_avg / (1 - beta1**step), exp_avg_sq / (1 - beta2**step)
    return param - lr * m_hat / (v_hat.sqrt() + eps), exp_avg, exp_avg_sq


def cached_training_step_without_rng_replay(model, chunks, loss_fn):
    with torch.no_grad():
        embeddings = [torch.cat([model(**features) for features in column]) for column in chunks]
    leaves = [e.detach().requires_grad_() for e in embeddings]
    loss = loss_fn(*leaves)
    loss.backward()
    for column, leaf in zip(chunks, leaves):
        for features, grad in zip(column, leaf.grad.split([len(f["input_ids"]) for f in column])):
            model(**features).backward(grad)
    return loss.detach()


def paired_difference_by_position(values, baseline, confidence=0.95):
    differences = [v - b for v, b in zip(values.values(), baseline.values())]
    if not differences:
        return None
    i = t_interval(differences, confidence)
    return i.n, i.mean, i.std, i.low, i.high


MISTAKES = [
    Mistake(1, "layer_norm", layer_norm_unbiased_variance, "divide by H, not H - 1"),
    Mistake(1, "layer_norm", layer_norm_eps_outside, "eps is added to the variance, under the square root"),
    Mistake(2, "attention_probs", attention_probs_unscaled, "divided by the square root of the head dimension"),
    Mistake(
        2, "attention_probs", attention_probs_masked_after_softmax, "Add the mask to the scores before the softmax"
    ),
    Mistake(3, "feed_forward", feed_forward_pre_layer_norm, "BERT is post-LayerNorm"),
    Mistake(4, "mean_pool", mean_pool_over_padding, "Average over the real tokens only"),
    Mistake(5, "triplet_loss", triplet_loss_sign_flipped, "The sign matters"),
    Mistake(5, "euclidean_distance", euclidean_distance_nan_at_zero, "gives a NaN gradient there"),
    Mistake(6, "mnrl", mnrl_without_scale, "The logits are scale x cosine"),
    Mistake(7, "adamw_update", adamw_update_without_bias_correction, "bias correction"),
    Mistake(7, "adamw_update", adamw_update_with_l2, "Decoupled weight decay"),
    Mistake(8, "cached_training_step", cached_training_step_without_rng_replay, "the same dropout masks as the first"),
    Mistake(9, "paired_difference", paired_difference_by_position, "Pair by seed, not by position"),
]
