"""AdamW's multi-tensor (foreach) form: bit for bit torch.optim.AdamW(foreach=True) and the per-tensor form, on CPU;
chosen by default on an accelerator, not on the CPU."""

import pytest
import torch

from minilm.train.optim import AdamW, by_device_and_dtype, param_groups, uses_foreach

SHAPES = [(5, 7), (7,), (), (300, 16), (3, 4, 2)]


def make_params(seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=gen).requires_grad_() for shape in SHAPES]


def run(make_optimizer, steps: int = 6, seed: int = 0):
    """Params after ``steps`` updates with the same gradients: some rows exactly 0 (the v = 0 case the per-tensor
    form clamps), one parameter without a gradient at step 2 (its step count stays behind), the lr changed midway."""
    params = make_params(seed)
    groups = [{"params": params[:2] + params[3:], "weight_decay": 0.01}, {"params": [params[2]], "weight_decay": 0.0}]
    optimizer = make_optimizer(groups)
    gen = torch.Generator().manual_seed(seed + 1)
    for step in range(steps):
        for i, p in enumerate(params):
            p.grad = None if (step == 2 and i == 1) else torch.randn(p.shape, generator=gen) * 10.0 ** (i - 2)
        params[3].grad[:100] = 0.0  # rows no batch touched: a second moment of exactly 0
        if step == 3:
            for group in optimizer.param_groups:
                group["lr"] = group["lr"] * 0.5
        optimizer.step()
    moments = [(optimizer.state[p]["exp_avg"], optimizer.state[p]["exp_avg_sq"]) for p in params]
    return [p.detach().clone() for p in params], moments


def settings(groups):
    return dict(params=groups, lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)


def test_foreach_equals_torch_foreach_adamw_bit_for_bit():
    ours, our_moments = run(lambda g: AdamW(**settings(g), foreach=True))
    theirs, their_moments = run(lambda g: torch.optim.AdamW(**settings(g), foreach=True))
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
    assert all(torch.equal(a, b) for pair, other in zip(our_moments, their_moments) for a, b in zip(pair, other))


def test_foreach_equals_the_per_tensor_form_bit_for_bit():
    multi, multi_moments = run(lambda g: AdamW(**settings(g), foreach=True))
    single, single_moments = run(lambda g: AdamW(**settings(g), foreach=False))
    assert all(torch.equal(a, b) for a, b in zip(multi, single))
    assert all(torch.equal(a, b) for pair, other in zip(multi_moments, single_moments) for a, b in zip(pair, other))


def test_foreach_on_a_model_with_decay_groups_equals_torch(tiny_base):
    from minilm.encoder import SentenceEncoder

    def trained(factory):
        model = SentenceEncoder.from_pretrained(tiny_base)
        optimizer = factory(param_groups(model, 0.01))
        gen = torch.Generator().manual_seed(3)
        for _ in range(3):
            for p in model.parameters():
                p.grad = torch.randn(p.shape, generator=gen)
            optimizer.step()
        return [p.detach().clone() for p in model.parameters()]

    ours = trained(lambda g: AdamW(g, lr=1e-3, weight_decay=0.01, foreach=True))
    theirs = trained(lambda g: torch.optim.AdamW(g, lr=1e-3, weight_decay=0.01, foreach=True))
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))


def test_the_form_is_chosen_by_device_unless_asked():
    assert uses_foreach(None, torch.device("cuda", 0)) and uses_foreach(None, torch.device("mps"))
    assert not uses_foreach(None, torch.device("cpu"))
    assert uses_foreach(True, torch.device("cpu")) and not uses_foreach(False, torch.device("cuda", 0))


def test_the_default_on_the_cpu_is_the_per_tensor_form(monkeypatch):
    params = make_params()
    optimizer = AdamW(params, lr=1e-3)
    called = []
    monkeypatch.setattr(AdamW, "_multi_tensor_update", lambda *a: called.append("multi"))
    for p in params:
        p.grad = torch.ones_like(p)
    optimizer.step()
    assert called == [] and optimizer.state[params[0]]["step"] == 1


def test_tensors_are_grouped_by_device_and_dtype_in_order():
    a, b, c = torch.zeros(2), torch.zeros(2, dtype=torch.float64), torch.zeros(3)
    assert [[id(t) for t in g] for g in by_device_and_dtype([a, b, c])] == [[id(a), id(c)], [id(b)]]


def test_foreach_must_be_a_bool_or_none():
    with pytest.raises(ValueError, match="foreach must be True, False or None"):
        AdamW(make_params(), foreach="yes")
