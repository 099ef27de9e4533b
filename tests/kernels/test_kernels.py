"""Compiled kernels (minilm.kernels) against the eager reference paths, on tiny shapes (compiling is slow on 2 cores).

Tolerances (fp32): layer outputs 1e-5 max abs and gradients 1e-5 relative to the largest entry; MNRL loss and
gradients 1e-5 (compiled reductions reorder sums); AdamW parameters 1e-6 relative after several steps.
"""

import pytest
import torch
from helpers import tiny_encoder

from minilm.fast.unpadded import UnpaddedBatch
from minilm.kernels.adamw import FusedAdamW
from minilm.kernels.layer import compile_layers, is_compiled
from minilm.kernels.mnrl import fused_mnrl_loss
from minilm.loading.tokenizer import WordPieceTokenizer
from minilm.losses import multiple_negatives_ranking_loss
from minilm.train.optim import AdamW, LinearWarmupSchedule


def frames_compiled() -> int:
    from torch._dynamo.utils import counters

    return sum(counters["frames"].values())


def small_encoder(minilm_dir):
    return tiny_encoder(
        WordPieceTokenizer.from_dir(minilm_dir, 64), hidden_size=16, num_attention_heads=2, intermediate_size=32
    )


@pytest.mark.slow
def test_compiled_layers_match_eager_forward_and_backward_without_recompiling(minilm_dir):
    eager, compiled = small_encoder(minilm_dir), small_encoder(minilm_dir)
    compile_layers(compiled.bert)
    assert all(is_compiled(layer) for layer in compiled.bert.layers)
    assert compiled.state_dict().keys() == eager.state_dict().keys()  # checkpoints unaffected
    # Sizes 0 and 1 are specialised by dynamo (an encode tail batch of 1 compiles once more); avoid them here.
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota", "kappa"]
    many = [" ".join(words[: 1 + (3 * i) % 10]) for i in range(20)]
    assert len(UnpaddedBatch.from_mask(eager.tokenize(many)["attention_mask"]).groups) > 1  # several attention groups
    batches = [
        ["a short one", "a somewhat longer sentence here"],
        ["x", "y z", "one more batch of a new length entirely, longer than before"],
        many,
    ]
    for i, texts in enumerate(batches):
        features = eager.tokenize(texts)
        outs = []
        for model in (eager, compiled):
            model.zero_grad(set_to_none=True)
            emb = model(**features)
            emb.pow(2).mul(torch.arange(emb.shape[-1])).sum().backward()
            outs.append((emb.detach(), {n: p.grad for n, p in model.named_parameters()}))
        assert (outs[0][0] - outs[1][0]).abs().max() <= 1e-5
        for name, g in outs[0][1].items():
            scale = max(1.0, g.abs().max().item())
            assert (g - outs[1][1][name]).abs().max() <= 1e-5 * scale, name
        if i == 0:
            after_warmup = frames_compiled()
    assert frames_compiled() == after_warmup  # new batch sizes, lengths and group counts reuse the dynamic graphs


@pytest.mark.slow
def test_compiled_layers_train_with_dropout_like_eager(minilm_dir):
    """Training mode: the mask draws run eagerly between compiled graphs, in the same order, so a seeded compiled
    forward + backward equals the eager one (dropout on, p = 0.5 so a missing mask could not hide)."""
    texts = ["one sentence", "and another, a bit longer"] * 5
    results = []
    for compiled in (False, True):
        model = small_encoder(minilm_dir).train()
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):  # the attention probabilities' dropout among them
                module.p = 0.5
        if compiled:
            compile_layers(model.bert)
        torch.manual_seed(7)
        emb = model.embed(texts)
        emb.pow(2).sum().backward()
        results.append((emb.detach(), model.bert.layers[0].ffn.up.weight.grad.clone()))
    (emb_eager, grad_eager), (emb_compiled, grad_compiled) = results
    assert (emb_eager - emb_compiled).abs().max() <= 1e-5
    assert (grad_eager - grad_compiled).abs().max() <= 1e-5 * max(1.0, grad_eager.abs().max().item())


@pytest.mark.slow
def test_compiled_pieces_also_serve_the_padded_forward(minilm_dir):
    """The compiled pieces are the model's own attend / output / feed-forward, so the padded reference path runs
    them too: hidden states equal eager at the real tokens."""
    eager, compiled = small_encoder(minilm_dir), small_encoder(minilm_dir)
    compile_layers(compiled.bert)
    features = eager.tokenize(["a short one", "a somewhat longer sentence here", "x y"])
    keep = features["attention_mask"].bool()
    with torch.no_grad():
        a, b = (model.bert(**features) for model in (eager, compiled))  # (B, T, H)
    assert (a[keep] - b[keep]).abs().max() <= 1e-5


@pytest.mark.slow  # torch.compile of the layers (~3.5 s of CPU, compile workers); the fused kernels stay fast
def test_deepcopy_of_a_compiled_model_runs_its_own_weights(minilm_dir):
    import copy

    model = small_encoder(minilm_dir)
    compile_layers(model.bert)
    twin = copy.deepcopy(model)
    assert twin.bert.layers[0].ffn.forward.__self__ is twin.bert.layers[0].ffn
    features = model.tokenize(["a sentence", "another one here"])
    with torch.no_grad():
        before = model(**features)
        for p in twin.parameters():
            p.add_(0.1)
        assert (twin(**features) - before).abs().max() > 1e-3  # the copy computes with its own (changed) weights
        assert torch.equal(model(**features), before)  # and the original is untouched


def test_fused_mnrl_matches_reference_value_and_gradients():
    torch.manual_seed(0)
    for i, (batch, negatives, scale) in enumerate(((5, 1, 20.0), (5, 1, 5.0))):
        a, p = torch.randn(batch, 8, requires_grad=True), torch.randn(batch, 8, requires_grad=True)
        hard = [torch.randn(batch, 8, requires_grad=True) for _ in range(negatives)]
        results = []
        for loss_fn in (multiple_negatives_ranking_loss, fused_mnrl_loss):
            loss = loss_fn(a, p, *hard, scale=scale)
            grads = torch.autograd.grad(loss, [a, p, *hard])
            results.append((loss.detach(), grads))
        assert abs(results[0][0] - results[1][0]) <= 1e-5
        for g_ref, g_fused in zip(results[0][1], results[1][1]):
            assert (g_ref - g_fused).abs().max() <= 1e-5
        if i == 0:
            after_warmup = frames_compiled()
    assert frames_compiled() == after_warmup  # a new scale is a tensor input, not a recompile
    with pytest.raises(ValueError, match="scale"):
        fused_mnrl_loss(a, p, scale=0.0)
    with pytest.raises(ValueError, match="positives"):
        fused_mnrl_loss(a, p[:2])


def test_fused_adamw_matches_reference_and_lr_changes_do_not_recompile():
    torch.manual_seed(0)
    shapes = [(4, 3), (3,), (5,)]
    init = [torch.randn(s) for s in shapes]
    params = {kind: [x.clone().requires_grad_() for x in init] for kind in ("ref", "fused")}
    groups = lambda ps: [{"params": ps[:1], "weight_decay": 0.1}, {"params": ps[1:], "weight_decay": 0.0}]  # noqa: E731
    opts = {"ref": AdamW(groups(params["ref"]), lr=1e-2), "fused": FusedAdamW(groups(params["fused"]), lr=1e-2)}
    schedules = {k: LinearWarmupSchedule(o, total_steps=6, warmup_steps=2) for k, o in opts.items()}
    for step in range(5):
        grads = [torch.randn(s) for s in shapes]
        for kind in ("ref", "fused"):
            for p, g in zip(params[kind], grads):
                p.grad = g.clone()
            opts[kind].step()
            schedules[kind].step()
        if step == 1:
            after_warmup = frames_compiled()
    assert frames_compiled() == after_warmup  # lr changed every step, nothing recompiled
    for p_ref, p_fused in zip(params["ref"], params["fused"]):
        assert (p_ref - p_fused).abs().max() <= 1e-6 * max(1.0, p_ref.abs().max().item())
    s_ref, s_fused = opts["ref"].state_dict(), opts["fused"].state_dict()
    assert [s["step"] for s in s_ref["state"].values()] == [s["step"] for s in s_fused["state"].values()]
