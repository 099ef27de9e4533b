"""AdamW, linear warmup schedule and clipping against torch.optim.AdamW / transformers / clip_grad_norm_ (float32).

Tolerance: parameters after 200 AdamW steps agree to 1e-6 relative (per tensor, L2); in practice they are
bit-identical because minilm.train.optim repeats torch's single-tensor op order. Schedules and clipping are exact.
"""

import copy
import io
import math
from types import SimpleNamespace

import pytest
import torch

from minilm.train.optim import (
    AdamW,
    LinearWarmupSchedule,
    clip_grad_norm,
    linear_warmup_multiplier,
    no_decay,
    param_groups,
)

REL_TOL_F32 = 1e-6


@pytest.fixture(scope="module")
def encoder(minilm_dir):
    from minilm.encoder import SentenceEncoder

    return SentenceEncoder.from_pretrained(minilm_dir)


def _leaf_copies(named: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {n: t.detach().clone().requires_grad_() for n, t in named.items()}


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


@pytest.mark.real_weights
def test_param_groups_rule_on_real_names(encoder):
    groups = param_groups(encoder, 0.01)
    names = {id(p): n for n, p in encoder.named_parameters()}
    decayed = [names[id(p)] for p in groups[0]["params"]]
    kept = [names[id(p)] for p in groups[1]["params"]]
    assert groups[0]["weight_decay"] == 0.01 and groups[1]["weight_decay"] == 0.0
    assert len(decayed) + len(kept) == len(names)
    assert all(n.endswith("weight") and "norm" not in n for n in decayed)
    assert all(n.endswith("bias") or "norm" in n for n in kept)
    assert "bert.embeddings.word.weight" in decayed and "bert.embeddings.norm.weight" in kept
    assert no_decay("encoder.layer.0.output.LayerNorm.weight") and no_decay("x.dense.bias")
    assert not no_decay("encoder.layer.0.output.dense.weight")
    with pytest.raises(ValueError, match="weight_decay"):
        param_groups(encoder, -1.0)


@pytest.mark.slow
@pytest.mark.real_weights
def test_adamw_matches_torch_200_steps_on_the_real_model(encoder):
    # Every parameter of the real model, full size, with its real name (so the no-decay split is the real one).
    # Gradients are seeded random tensors per step (identical for both): a forward/backward per step would cost far
    # more and exercise nothing extra in the optimiser; the real-loss check is the next test. Each step's gradient is
    # a window of one random pool at a different offset, scaled: drawing 22.7 M fresh normals per step cost more than
    # both optimisers' steps together. About 40 s on an idle core.
    named = {n: p.detach() for n, p in encoder.named_parameters()}
    ours_p, ref_p = _leaf_copies(named), _leaf_copies(named)
    ours = AdamW(param_groups(ours_p, 0.01), lr=1e-3, eps=1e-8)
    ref = torch.optim.AdamW(param_groups(ref_p, 0.01), lr=1e-3, eps=1e-8, foreach=False)
    ours_s = LinearWarmupSchedule(ours, total_steps=200, warmup_ratio=0.1)
    ref_s = torch.optim.lr_scheduler.LambdaLR(ref, lambda s: linear_warmup_multiplier(s, 20, 200))
    gen = torch.Generator().manual_seed(0)
    first = next(iter(named))
    sizes = [t.numel() for t in named.values()]
    total, spare = sum(sizes), 4099  # a prime: the 200 offsets below are distinct
    pool = torch.randn(total + spare, generator=gen)
    ours_flat, ref_flat = torch.empty(total), torch.empty(total)  # each side's gradients, reused every step
    for step in range(200):
        scale = 10.0 ** (-3 * torch.rand((), generator=gen).item())  # gradients from 1e-3 to 1 in size
        offset = (step * 7919) % spare  # every parameter sees a different gradient at every step
        torch.mul(pool[offset : offset + total], scale, out=ref_flat)
        ours_flat.copy_(ref_flat)
        for (n, t), mine, theirs in zip(named.items(), ours_flat.split(sizes), ref_flat.split(sizes)):
            missing = n == first and step % 7 == 3  # must skip the parameter (and its step count) in both
            ours_p[n].grad = None if missing else mine.view(t.shape)
            ref_p[n].grad = None if missing else theirs.view(t.shape)
        ours.step()
        ref.step()
        ours_s.step()
        ref_s.step()
    worst = max(_rel_err(ours_p[n], ref_p[n]) for n in named)
    assert worst <= REL_TOL_F32, worst
    moved = max(_rel_err(ours_p[n], named[n]) for n in named)
    assert moved > 1e-3  # the updates were not negligible
    assert ours.state[ours_p[first]]["step"] == ref.state[ref_p[first]]["step"].item() < 200


@pytest.mark.slow
@pytest.mark.real_weights
def test_adamw_matches_torch_full_model_real_loss(encoder):
    # Full-size real parameters with the gradient of a real (cheap) loss on short sentences; one step, as each
    # full-size step costs seconds on 2 busy cores (the 200-step test above covers the running moments).
    feats = encoder.tokenize(["a cat sits", "a dog runs", "rain falls"])
    encoder.zero_grad()
    emb = encoder(**feats)  # (3, 384)
    (emb @ emb.T).triu(1).sum().backward()
    named = {n: p.detach() for n, p in encoder.named_parameters()}
    grads = {n: p.grad for n, p in encoder.named_parameters()}
    encoder.zero_grad(set_to_none=True)
    ours_p, ref_p = _leaf_copies(named), _leaf_copies(named)
    ours = AdamW(param_groups(ours_p, 0.01), lr=2e-5)
    ref = torch.optim.AdamW(param_groups(ref_p, 0.01), lr=2e-5, foreach=False)
    for n in named:  # one gradient tensor shared by both: neither optimiser writes to gradients
        ours_p[n].grad = ref_p[n].grad = grads[n]
    ours.step()
    ref.step()
    assert max(_rel_err(ours_p[n], ref_p[n]) for n in named) <= REL_TOL_F32


@pytest.mark.parametrize(
    "total,warmup,ratio", [(100, 10, None), (57, 0, None), (100, 0, 0.1), (333, 0, 0.07), (10, 25, None)]
)
def test_schedule_matches_transformers(total, warmup, ratio):
    from transformers import TrainingArguments, get_linear_schedule_with_warmup

    if ratio is not None:  # the Trainer's own rounding of a warmup ratio (needs only `warmup_steps` from self)
        warmup_ref = TrainingArguments.get_warmup_steps(SimpleNamespace(warmup_steps=ratio), total)
    else:
        warmup_ref = warmup
    p = torch.zeros(2, requires_grad=True)
    ref_opt = torch.optim.SGD([p], lr=3e-5)
    ref = get_linear_schedule_with_warmup(ref_opt, warmup_ref, total)
    opt = AdamW([torch.zeros(2, requires_grad=True)], lr=3e-5)
    sched = LinearWarmupSchedule(opt, total, warmup_steps=warmup, warmup_ratio=ratio)
    assert sched.warmup_steps == warmup_ref
    for _ in range(total + 3):  # a few past the end: lr stays 0
        assert opt.param_groups[0]["lr"] == ref_opt.param_groups[0]["lr"]
        ref_opt.step()
        ref.step()
        sched.step()


def test_schedule_bad_arguments():
    opt = AdamW([torch.zeros(1, requires_grad=True)])
    with pytest.raises(ValueError, match="total_steps"):
        LinearWarmupSchedule(opt, 0)
    with pytest.raises(ValueError, match="warmup_ratio"):
        LinearWarmupSchedule(opt, 10, warmup_ratio=1.5)
    with pytest.raises(ValueError, match="not both"):
        LinearWarmupSchedule(opt, 10, warmup_steps=2, warmup_ratio=0.1)
    with pytest.raises(ValueError, match="warmup_steps"):
        LinearWarmupSchedule(opt, 10, warmup_steps=-1)


def test_adamw_bad_arguments():
    p = [torch.zeros(1, requires_grad=True)]
    for kwargs, name in [
        ({"lr": -1.0}, "lr"),
        ({"betas": (1.0, 0.9)}, "betas"),
        ({"eps": -1.0}, "eps"),
        ({"weight_decay": -0.1}, "weight_decay"),
    ]:
        with pytest.raises(ValueError, match=name):
            AdamW(p, **kwargs)
    with pytest.raises(ValueError, match="params"):
        AdamW([])
    with pytest.raises(TypeError, match="params"):
        AdamW([{"params": [1.0]}])


@pytest.mark.parametrize("max_norm,scale", [(1.0, 1.0), (1.0, 1e-3), (0.5, 10.0)])
def test_clip_grad_norm_matches_torch(max_norm, scale):
    gen = torch.Generator().manual_seed(1)
    shapes = [(384, 384), (384,), (1536, 384), (7,)]
    ours = [torch.zeros(s, requires_grad=True) for s in shapes]
    ref = [torch.zeros(s, requires_grad=True) for s in shapes]
    for a, b in zip(ours, ref):
        a.grad = torch.randn(a.shape, generator=gen) * scale
        b.grad = a.grad.clone()
    ours.append(torch.zeros(3, requires_grad=True))  # no gradient: ignored by both
    total = clip_grad_norm(ours, max_norm)
    total_ref = torch.nn.utils.clip_grad_norm_(ref, max_norm)
    assert torch.equal(total, total_ref)
    for a, b in zip(ours, ref):
        assert torch.equal(a.grad, b.grad)
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm(ours, 0.0)


def _run(params, opt, sched, steps: range, seed: int = 5):
    for step in steps:
        gen = torch.Generator().manual_seed(seed + step)
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen)
        clip_grad_norm(params, 1.0)
        opt.step()
        sched.step()


def test_state_dict_resume_is_bit_identical():
    gen = torch.Generator().manual_seed(2)
    named = {
        "w.weight": torch.randn(16, 8, generator=gen),
        "w.bias": torch.randn(16, generator=gen),
        "norm.weight": torch.randn(8, generator=gen),
    }
    a = _leaf_copies(named)
    opt_a = AdamW(param_groups(a, 0.01), lr=1e-2)
    sched_a = LinearWarmupSchedule(opt_a, 20, warmup_steps=4)
    _run(list(a.values()), opt_a, sched_a, range(10))
    buf = io.BytesIO()
    torch.save({"opt": opt_a.state_dict(), "sched": sched_a.state_dict(), "params": copy.deepcopy(a)}, buf)
    _run(list(a.values()), opt_a, sched_a, range(10, 20))

    buf.seek(0)
    saved = torch.load(buf, weights_only=True)  # as checkpoints are loaded
    b = _leaf_copies(saved["params"])
    opt_b = AdamW(param_groups(b, 0.5), lr=123.0)  # wrong hyper-parameters on purpose: the state restores them
    sched_b = LinearWarmupSchedule(opt_b, 99)
    opt_b.load_state_dict(saved["opt"])
    sched_b.load_state_dict(saved["sched"])
    assert opt_b.param_groups[0]["lr"] == 1e-2 * linear_warmup_multiplier(10, 4, 20)
    _run(list(b.values()), opt_b, sched_b, range(10, 20))
    for n in named:
        assert torch.equal(a[n], b[n]), n
    assert opt_b.param_groups[0]["lr"] == 0.0  # the schedule ended at 0


def test_chunked_update_is_bit_identical_at_chunk_edges_and_for_strided_params(monkeypatch):
    """The CPU update runs in CHUNK-element slices; ragged last chunks, tiny params and non-contiguous params
    (which take the whole-tensor path) must all equal torch.optim.AdamW exactly, with weight decay on."""
    monkeypatch.setattr(AdamW, "CHUNK", 64)  # small chunks so a few-hundred-element tensor spans several
    gen = torch.Generator().manual_seed(3)
    shapes = [(7, 37), (64,), (3,), (130, 2)]
    ours = [torch.randn(s, generator=gen) for s in shapes] + [torch.randn(9, 20, generator=gen).t()]  # strided
    theirs = [p.clone() for p in ours]
    assert not ours[-1].is_contiguous()
    opt = AdamW(ours, lr=1e-2, weight_decay=0.1)
    ref = torch.optim.AdamW(theirs, lr=1e-2, weight_decay=0.1, foreach=False)
    for _ in range(5):
        for a, b in zip(ours, theirs):
            a.grad = torch.randn(a.shape, generator=gen)
            b.grad = a.grad.clone()
        opt.step()
        ref.step()
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b), a.shape


@pytest.mark.parametrize("eps", [1e-8, 1e-12, 0.0])
def test_zero_and_subnormal_second_moments_stay_bit_identical(eps):
    """Rows that never get a gradient keep v == 0 (like unseen word embeddings) and tiny gradients make v
    subnormal; the clamped fast sqrt must give torch's bits there, and fall back to plain sqrt for tiny eps."""
    gen = torch.Generator().manual_seed(5)
    ours = [torch.randn(40, 8, generator=gen)]
    theirs = [ours[0].clone()]
    opt = AdamW(ours, lr=1e-3, weight_decay=0.0, eps=eps)
    ref = torch.optim.AdamW(theirs, lr=1e-3, weight_decay=0.0, eps=eps, foreach=False)
    for _ in range(4):
        g = torch.randn(40, 8, generator=gen)
        g[:20] = 0.0  # never seen
        g[20:30] *= 1e-22  # g^2 ~ 1e-44: subnormal second moment
        ours[0].grad, theirs[0].grad = g, g.clone()
        opt.step()
        ref.step()
    # eps 0 makes never-seen rows 0 / 0 = NaN in torch too: the same NaNs are part of "bit-identical" there
    torch.testing.assert_close(ours[0], theirs[0], rtol=0, atol=0, equal_nan=True)


def test_a_learning_rate_whose_first_step_overflows_float32_is_refused_by_name():
    """lr / (1 - beta1) is the first step's size; beyond float32 torch would fail mid-step with its own overflow
    error (lr 3e38 with beta1 0.9 gives 3e39). Refused when the optimiser is built, naming the group and the lr."""
    p = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match=r"parameter group 0: lr 3e\+38 gives a first AdamW step .* beyond float32"):
        AdamW([p], lr=3e38)
    with pytest.raises(ValueError, match=r"parameter group 1: lr inf"):
        AdamW([{"params": [p]}, {"params": [torch.zeros(1, requires_grad=True)], "lr": math.inf}], lr=1e-3)
    AdamW([p], lr=3e37)  # 3e38 after the bias correction: still a float32


def test_the_trainer_settings_name_the_learning_rate_that_cannot_train():
    from minilm.train.config import TrainConfig, check_learning_rates

    with pytest.raises(ValueError, match=r"^loss_lr: lr 1e\+39"):
        check_learning_rates(TrainConfig(loss_lr=1e39))
    check_learning_rates(TrainConfig())
