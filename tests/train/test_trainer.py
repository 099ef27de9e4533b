"""The trainer on tiny models: determinism, bit-identical resume, divergence, logs and checkpoints."""

import json

import pytest
import torch
from helpers import killed_after_step, write_tiny_recipe
from safetensors.torch import load_file

from minilm.encoder import SentenceEncoder
from minilm.run.build import run_recipe
from minilm.run.recipe import load_recipe
from minilm.train.checkpoints import checkpoints
from minilm.train.trainer import TrainingDiverged


@pytest.fixture()
def recipe_path(tmp_path, tiny_base):
    return write_tiny_recipe(tmp_path, tiny_base)


def final_weights(output):
    return load_file(output / "final" / "model.safetensors")


def assert_identical(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.slow
def test_same_recipe_twice_gives_identical_weights(recipe_path, tmp_path, tiny_base):
    for name in ("a", "b"):
        run_recipe(load_recipe(recipe_path), tmp_path / name, log=lambda _: None)
    assert_identical(final_weights(tmp_path / "a"), final_weights(tmp_path / "b"))
    base = load_file(tiny_base / "model.safetensors")
    assert not torch.equal(
        final_weights(tmp_path / "a")["encoder.layer.0.output.dense.weight"],
        base["encoder.layer.0.output.dense.weight"],
    )


@pytest.mark.slow
def test_interrupted_run_resumed_gives_identical_weights(recipe_path, tmp_path, monkeypatch):
    run_recipe(load_recipe(recipe_path), tmp_path / "straight", log=lambda _: None)

    killed_after_step(
        monkeypatch, 5, lambda: run_recipe(load_recipe(recipe_path), tmp_path / "resumed", log=lambda _: None)
    )
    assert [p.name for p in checkpoints(tmp_path / "resumed")] == ["step-0000002", "step-0000004"]
    run_recipe(load_recipe(recipe_path), tmp_path / "resumed", resume=True, log=lambda _: None)
    assert_identical(final_weights(tmp_path / "straight"), final_weights(tmp_path / "resumed"))
    log = [json.loads(line) for line in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2, 3, 4, 5, 6]  # the lost step 5 is logged once


@pytest.mark.slow
def test_checkpoints_are_kept_and_loadable(recipe_path, tmp_path):
    run_recipe(load_recipe(recipe_path, ["train.keep_checkpoints=1"]), tmp_path / "out", log=lambda _: None)
    found = checkpoints(tmp_path / "out")
    assert [p.name for p in found] == ["step-0000004"]
    assert SentenceEncoder.from_pretrained(found[0] / "model").encode("x").shape == (64,)
    assert not list((tmp_path / "out" / "checkpoints").glob(".tmp*"))


def test_nan_loss_stops_with_step_and_keeps_last_checkpoint(recipe_path, tmp_path, monkeypatch):
    from minilm.run import build as run

    real = run.build_loss

    def poisoned(*args, **kwargs):
        loss = real(*args, **kwargs)
        calls = {"n": 0}

        def wrapped(*args, **kw):
            calls["n"] += 1
            value = loss(*args, **kw)
            return value * float("nan") if calls["n"] == 4 else value

        return wrapped

    monkeypatch.setattr(run, "build_loss", poisoned)
    with pytest.raises(TrainingDiverged, match=r"at step 4 .*weights were not updated.*step-0000002"):
        run_recipe(load_recipe(recipe_path), tmp_path / "out", log=lambda _: None)
    last = checkpoints(tmp_path / "out")[-1]
    assert last.name == "step-0000002"
    emb = SentenceEncoder.from_pretrained(last / "model").encode(["still fine"])
    assert torch.isfinite(torch.from_numpy(emb)).all()


def test_resume_without_checkpoint_is_an_error(recipe_path, tmp_path):
    with pytest.raises(FileNotFoundError, match="no complete checkpoint"):
        run_recipe(load_recipe(recipe_path), tmp_path / "empty", resume=True)


@pytest.mark.slow
def test_gradient_cache_setting_gives_the_same_run(recipe_path, tmp_path):
    """mini_batch_size switches the gradient cache on; with dropout off the weights match the plain run."""
    plain = ["train.dropout=false", "train.save_steps=0"]
    run_recipe(load_recipe(recipe_path, plain), tmp_path / "plain", log=lambda _: None)
    run_recipe(load_recipe(recipe_path, plain + ["train.mini_batch_size=3"]), tmp_path / "cached", log=lambda _: None)
    a, b = final_weights(tmp_path / "plain"), final_weights(tmp_path / "cached")
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5, rtol=1e-4), key


@pytest.mark.slow
def test_token_budget_setting_gives_the_same_run(recipe_path, tmp_path, monkeypatch):
    """[train] mini_batch_num_tokens switches the gradient cache on with mini-batches cut by real tokens."""
    from minilm.train import grad_cache

    budgets = []
    original = grad_cache.token_budget_spans

    def record(tokens_per_row, budget):
        spans = original(tokens_per_row, budget)
        budgets.append((budget, len(spans)))
        return spans

    monkeypatch.setattr(grad_cache, "token_budget_spans", record)
    plain = ["train.dropout=false", "train.save_steps=0", "train.max_steps=3"]
    run_recipe(load_recipe(recipe_path, plain), tmp_path / "plain", log=lambda _: None)
    assert budgets == []
    run_recipe(
        load_recipe(recipe_path, plain + ["train.mini_batch_num_tokens=40"]), tmp_path / "tokens", log=lambda _: None
    )
    assert len(budgets) == 3 * 2 and all(budget == 40 and spans > 1 for budget, spans in budgets)  # steps x columns
    a, b = final_weights(tmp_path / "plain"), final_weights(tmp_path / "tokens")
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5, rtol=1e-4), key


@pytest.mark.slow
def test_compile_setting_trains_like_eager(recipe_path, tmp_path):
    """train.compile: compiled layers, compiled AdamW step and fused MNRL give the eager run's weights (dropout off;
    float32 rounding of the fused kernels only); MNRL in another form keeps the reference loss."""
    from minilm.kernels.mnrl import fused_mnrl_loss
    from minilm.run.registry import make_loss
    from minilm.train.compiled import compiled_training

    class Model:  # what compiled_training needs of a model
        def compile_kernels(self):
            pass

    assert compiled_training(Model(), make_loss("mnrl", {"scale": 10.0}))[0].func is fused_mnrl_loss
    symmetric, _ = compiled_training(Model(), make_loss("mnrl", {"symmetric": True}))
    assert getattr(symmetric, "func", None) is not fused_mnrl_loss  # not the fused kernel's form
    base = ["train.dropout=false", "train.save_steps=0", "train.max_steps=3"]
    run_recipe(load_recipe(recipe_path, base), tmp_path / "eager", log=lambda _: None)
    run_recipe(load_recipe(recipe_path, base + ["train.compile=true"]), tmp_path / "compiled", log=lambda _: None)
    a, b = final_weights(tmp_path / "eager"), final_weights(tmp_path / "compiled")
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5, rtol=1e-4), key


# ------------------------------------------------------------------------------------------- losses with parameters

HEAD_LOSS = '''
import torch
from torch import nn
from minilm.losses import needs


@needs("labels")
class LinearHead(nn.Module):
    """Cross-entropy of a linear classifier on the sentence embedding (SoftmaxLoss on one text)."""

    part_of_model = True

    def __init__(self, embedding_dim: int, num_labels: int, bias: bool = True):
        super().__init__()
        self.classifier = nn.Linear(embedding_dim, num_labels, bias=bias)

    def forward(self, embeddings, labels):
        logits = self.classifier(embeddings)
        loss = nn.functional.cross_entropy(logits, labels)
        return loss, {"accuracy": (logits.argmax(dim=1) == labels).float().mean()}
'''

HEAD_RECIPE = """
name = "head"
[model]
base = "{base}"
[data]
train = "labelled.csv"
roles = {{ text = "text", label = "label" }}
[loss]
name = "head_loss.py:LinearHead"
[train]
batch_size = 8
max_steps = 4
save_steps = 2
loss_lr = 1e-3
"""


@pytest.fixture()
def head_recipe(tmp_path, tiny_base):
    rows = [f"note {i} about topic {i % 3} and more,{i % 3}" for i in range(30)]
    (tmp_path / "labelled.csv").write_text("text,label\n" + "\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "head_loss.py").write_text(HEAD_LOSS, encoding="utf-8")
    path = tmp_path / "head.toml"
    path.write_text(HEAD_RECIPE.format(base=tiny_base), encoding="utf-8")
    return path


@pytest.mark.slow
def test_a_classifier_head_is_built_from_the_run_trained_and_saved_beside_the_model(head_recipe, tmp_path):
    from minilm.run.build import build_loss, load_train_data

    recipe = load_recipe(head_recipe)
    run_recipe(recipe, tmp_path / "out", log=lambda _: None)
    model = SentenceEncoder.from_pretrained(tmp_path / "out" / "final")
    initial = build_loss(recipe, model, load_train_data(recipe))  # same seed: the head the run started from
    assert initial.classifier.weight.shape == (3, 64)  # num_labels from the data, embedding_dim from the model
    saved = load_file(tmp_path / "out" / "final" / "loss.safetensors")
    assert saved.keys() == {"classifier.weight", "classifier.bias"}
    assert not torch.equal(saved["classifier.weight"], initial.classifier.weight.detach())  # it was trained
    about = json.loads((tmp_path / "out" / "final" / "loss.json").read_text())
    assert about["class"].endswith("LinearHead") and about["tensors"]["classifier.weight"] == [3, 64]
    state = torch.load(checkpoints(tmp_path / "out")[-1] / "trainer_state.pt", weights_only=True)
    assert state["schedule"]["base_lrs"] == [5e-5, 5e-5, 1e-3, 1e-3]  # model groups, then the head's at loss_lr
    assert set(state["loss"]) == {"classifier.weight", "classifier.bias"}
    steps = [json.loads(line) for line in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    assert all(0.0 <= r["stats"]["accuracy"] <= 1.0 for r in steps if "loss" in r)


@pytest.mark.slow
def test_a_head_with_gradient_cache_trains_like_the_plain_step(recipe_path, tmp_path):
    """Under the gradient cache the loss's parameters get their gradients in loss_and_grads (dropout off)."""
    head = tmp_path / "scaled.py"
    head.write_text(SCALED_LOSS, encoding="utf-8")
    plain = ["train.dropout=false", "train.save_steps=0", 'loss={name="scaled.py:Scaled"}', "train.loss_lr=1e-2"]
    run_recipe(load_recipe(recipe_path, plain), tmp_path / "plain", log=lambda _: None)
    run_recipe(load_recipe(recipe_path, plain + ["train.mini_batch_size=3"]), tmp_path / "cached", log=lambda _: None)
    a, b = final_weights(tmp_path / "plain"), final_weights(tmp_path / "cached")
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5, rtol=1e-4), key
    scales = [
        [
            json.loads(line)["stats"]["scale"]
            for line in (tmp_path / name / "log.jsonl").read_text().splitlines()
            if '"loss"' in line
        ]
        for name in ("plain", "cached")
    ]
    assert scales[0][-1] != scales[0][0]  # the scale moved
    assert scales[0] == pytest.approx(scales[1], rel=1e-5)


SCALED_LOSS = '''
import torch
from torch import nn
from minilm.losses import multiple_negatives_ranking_loss, needs
from minilm.losses.distances import cosine_similarity_matrix


@needs("columns", columns=2, in_batch_negatives=True)
class Scaled(nn.Module):
    """In-batch negatives with a learned logit scale."""

    def __init__(self, init_scale: float = 20.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(init_scale))

    def forward(self, anchors, positives):
        logits = self.scale * cosine_similarity_matrix(anchors, positives)
        return (logits.logsumexp(dim=1) - logits.diagonal()).mean(), {"scale": self.scale.detach()}
'''


PARAMETER_LOSSES = {  # a registered loss with parameters -> its data: roles and rows
    "softmax": (
        '{ a = "a", b = "b", label = "label" }',
        "a,b,label",
        lambda i: f"question {i} about topic {i % 5},answer {i} for topic {(i + i % 2) % 5},{i % 2}",
    ),
    "arcface": (
        '{ text = "text", label = "label" }',
        "text,label",
        lambda i: f"note {i} about topic {i % 3} and more,{i % 3}",
    ),
}


def assert_same_state(a, b, where="state"):
    """Nested dicts / lists / tensors / numbers equal, tensors bit for bit (torch.equal)."""
    assert type(a) is type(b), where
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_state(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.mark.slow
@pytest.mark.parametrize("loss", sorted(PARAMETER_LOSSES))
def test_a_loss_with_parameters_killed_and_resumed_is_bit_identical(loss, tmp_path, tiny_base, monkeypatch):
    """Model weights, the loss's parameters (a classifier head, class proxies) and the optimiser's moments after a kill
    at step 3 and a resume from the step-2 checkpoint equal those of the run that was never interrupted."""
    roles, header, row = PARAMETER_LOSSES[loss]
    (tmp_path / "rows.csv").write_text(header + "\n" + "\n".join(row(i) for i in range(24)) + "\n", encoding="utf-8")
    (tmp_path / "r.toml").write_text(
        f"""name = "params"
[model]
base = "{tiny_base}"
[data]
train = "rows.csv"
roles = {roles}
[loss]
name = "{loss}"
[train]
batch_size = 6
max_steps = 4
save_steps = 2
loss_lr = 1e-2
""",
        encoding="utf-8",
    )
    from minilm.train import trainer

    finished = {}
    original_finish = trainer.Trainer.finish

    def keep(self):
        finished[self.output_dir.name] = self
        original_finish(self)

    monkeypatch.setattr(trainer.Trainer, "finish", keep)
    run_recipe(load_recipe(tmp_path / "r.toml"), tmp_path / "straight", log=lambda _: None)
    killed_after_step(
        monkeypatch, 3, lambda: run_recipe(load_recipe(tmp_path / "r.toml"), tmp_path / "resumed", log=lambda _: None)
    )
    assert [p.name for p in checkpoints(tmp_path / "resumed")] == ["step-0000002"]
    run_recipe(load_recipe(tmp_path / "r.toml"), tmp_path / "resumed", resume=True, log=lambda _: None)
    straight, resumed = finished["straight"], finished["resumed"]
    assert straight.step == resumed.step == 4
    assert_same_state(straight.model.state_dict(), resumed.model.state_dict(), "model")
    assert_same_state(straight.parts["loss"].module.state_dict(), resumed.parts["loss"].module.state_dict(), "loss")
    assert_same_state(straight.optimizer.state_dict(), resumed.optimizer.state_dict(), "optimizer")
    assert len(straight.optimizer.state_dict()["state"]) == len(straight.params)  # the loss's moments are in it
    initial = load_recipe(tmp_path / "r.toml")
    from minilm.run.build import build_loss, load_train_data

    start = build_loss(initial, straight.model, load_train_data(initial)).state_dict()
    assert not all(
        torch.equal(start[k], v) for k, v in straight.parts["loss"].module.state_dict().items()
    )  # it trained


@pytest.mark.slow
def test_resuming_with_a_different_kind_of_loss_is_refused(recipe_path, tmp_path):
    run_recipe(
        load_recipe(recipe_path, ["train.max_steps=2", "train.save_steps=1"]), tmp_path / "out", log=lambda _: None
    )
    (tmp_path / "scaled.py").write_text(SCALED_LOSS, encoding="utf-8")
    other = load_recipe(recipe_path, ['loss={name="scaled.py:Scaled"}'])
    # The output directory's run record refuses it first, naming the change; the checkpoint's own loss-state check
    # ("holds no loss state, but this run's loss has parameters") stays behind it for a record that matches.
    with pytest.raises(ValueError, match=r"run.json differs: recipe.loss.name: 'mnrl' -> 'scaled.py:Scaled'"):
        run_recipe(other, tmp_path / "out", resume=True, log=lambda _: None)


@pytest.mark.slow
def test_statistics_are_logged_per_step_when_the_loss_reports(recipe_path, tmp_path):
    run_recipe(
        load_recipe(recipe_path, ["loss.report=true", "train.save_steps=0"]), tmp_path / "on", log=lambda _: None
    )
    run_recipe(load_recipe(recipe_path, ["train.save_steps=0"]), tmp_path / "off", log=lambda _: None)
    on = [json.loads(line) for line in (tmp_path / "on" / "log.jsonl").read_text().splitlines()]
    off = [json.loads(line) for line in (tmp_path / "off" / "log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in on if "loss" in r] == [r["loss"] for r in off if "loss" in r]  # same run
    assert all("stats" not in r for r in off)
    for record in (r for r in on if "loss" in r):
        assert set(record["stats"]) == {"positive_similarity", "hardest_negative_similarity", "accuracy"}
        assert -1.0 <= record["stats"]["positive_similarity"] <= 1.0
    assert final_weights(tmp_path / "on").keys() == final_weights(tmp_path / "off").keys()
    assert_identical(final_weights(tmp_path / "on"), final_weights(tmp_path / "off"))


# ------------------------------------------------------------------------------------------- losses over every layer

LAYER_LOSSES = {  # registered layer loss -> its [loss] table beyond the name
    "adaptive_layer": "n_layers_per_step = 1",
    "matryoshka_2d": "dims = [64, 16]\nn_layers_per_step = 1",
}


def layer_recipe(tmp_path, tiny_base, loss, settings, train="save_steps = 2"):
    path = write_tiny_recipe(tmp_path, tiny_base, steps=4, rows=24, train=train)
    text = path.read_text(encoding="utf-8").replace('name = "mnrl"', f'name = "{loss}"\n{settings}')
    path.write_text(text, encoding="utf-8")
    return path


def test_a_layer_loss_step_equals_adaptive_layer_loss_on_the_models_per_layer_embeddings(minilm_dir):
    """The trainer's path (one unpadded forward over both columns, every layer pooled, the layers drawn from the step's
    generator) against the reference: the padded model's hidden states of each column pooled separately and
    adaptive_layer_loss called directly on the layers choose_layers draws from an equal generator. Loss and every
    parameter gradient agree within 1e-5 (relative to the gradient's largest entry when above 1)."""
    import random

    from helpers import tiny_encoder

    from minilm import losses as L
    from minilm.loading.tokenizer import WordPieceTokenizer
    from minilm.run.registry import make_loss
    from minilm.train.every_layer import embed_every_layer
    from minilm.train.step import step

    model = tiny_encoder(WordPieceTokenizer.from_dir(minilm_dir, 32), num_hidden_layers=3)
    columns = [
        [f"question {i} on topic {i % 3}" for i in range(5)],
        [f"an answer {i} that is longer for topic {i % 3}" + " really" * i for i in range(5)],
    ]
    settings = {"n_layers_per_step": 2, "kl_temperature": 0.5, "layer_weighting": "log"}
    loss_fn = make_loss("adaptive_layer", {**settings, "loss": "mnrl", "loss_settings": {"scale": 10.0}})
    model.unpadded = True
    ours = step(model, columns, loss_fn, {"layer_rng": random.Random("step 7")}, embed=embed_every_layer).loss
    ours_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    model.unpadded = False
    model.zero_grad(set_to_none=True)
    per_column = [model.embed_layers(**model.tokenize(column)) for column in columns]  # 4 hidden states each
    chosen = L.choose_layers(4, 2, random.Random("step 7"))
    assert len(chosen) == 2
    reference = L.adaptive_layer_loss(
        lambda a, p: L.multiple_negatives_ranking_loss(a, p, scale=10.0),
        [c[-1] for c in per_column],
        {i: [c[i] for c in per_column] for i in chosen},
        kl_temperature=0.5,
        layer_weighting="log",
    )
    reference.backward()
    assert abs(ours.item() - reference.item()) <= 1e-5
    assert ours_grads.keys() == {n for n, p in model.named_parameters() if p.grad is not None}
    for name, grad in ours_grads.items():
        reference_grad = dict(model.named_parameters())[name].grad
        scale = max(1.0, reference_grad.abs().max().item())
        assert (grad - reference_grad).abs().max().item() <= 1e-5 * scale, name


@pytest.mark.slow
@pytest.mark.parametrize("loss", sorted(LAYER_LOSSES))
def test_a_layer_loss_trains_from_a_recipe(loss, tmp_path, tiny_base):
    run_recipe(
        load_recipe(layer_recipe(tmp_path, tiny_base, loss, LAYER_LOSSES[loss])), tmp_path / "out", log=lambda _: None
    )
    log = [json.loads(line) for line in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in log if "loss" in r]
    assert len(losses) == 4 and all(isinstance(x, float) and x > 0 for x in losses)
    base = load_file(tiny_base / "model.safetensors")
    # the first layer trains through its own loss term too, not only through the last layer's
    key = "encoder.layer.0.output.dense.weight"
    assert not torch.equal(final_weights(tmp_path / "out")[key], base[key])


@pytest.mark.slow
def test_a_layer_loss_killed_and_resumed_is_bit_identical_and_draws_the_same_layers(tmp_path, tiny_base, monkeypatch):
    """Dropout on, one of the two earlier layers drawn per step: after a kill at step 3 and a resume from the step-2
    checkpoint, the layers drawn at steps 3 and 4, the weights and the optimiser equal the uninterrupted run's."""
    from minilm.losses import layers as layer_losses
    from minilm.train import trainer

    path = layer_recipe(tmp_path, tiny_base, "adaptive_layer", LAYER_LOSSES["adaptive_layer"])
    drawn, finished = {}, {}
    original_choose, original_finish = layer_losses.choose_layers, trainer.Trainer.finish

    def recording_choose(*args, **kwargs):
        chosen = original_choose(*args, **kwargs)
        if run_name[0] is not None:  # not the recipe check's dry run
            drawn.setdefault(run_name[0], []).append(chosen)
        return chosen

    def keep(self):
        finished[self.output_dir.name] = self
        original_finish(self)

    def run(name, output, **kwargs):
        run_name[0] = None
        recipe = load_recipe(path)
        run_name[0] = name
        run_recipe(recipe, tmp_path / output, log=lambda _: None, **kwargs)

    run_name = [None]
    monkeypatch.setattr(layer_losses, "choose_layers", recording_choose)
    monkeypatch.setattr(trainer.Trainer, "finish", keep)
    run("straight", "straight")
    killed_after_step(monkeypatch, 3, lambda: run("killed", "resumed"))
    run("resumed", "resumed", resume=True)
    assert len(drawn["straight"]) == 4 and len(drawn["resumed"]) == 2
    # step 3 is logged at step 4's read-back, so the kill lands in step 4, after its forward drew its layers
    assert drawn["killed"] == drawn["straight"] and drawn["resumed"] == drawn["straight"][2:]
    straight, resumed = finished["straight"], finished["resumed"]
    assert straight.step == resumed.step == 4
    assert_same_state(straight.model.state_dict(), resumed.model.state_dict(), "model")
    assert_same_state(straight.optimizer.state_dict(), resumed.optimizer.state_dict(), "optimizer")


def test_a_layer_loss_refuses_the_gradient_cache_and_torchrun(tmp_path, tiny_base, minilm_dir, monkeypatch):
    from helpers import tiny_encoder

    from minilm.loading.tokenizer import WordPieceTokenizer
    from minilm.run.recipe import RecipeError
    from minilm.run.registry import make_loss
    from minilm.train import distributed
    from minilm.train.samplers import RandomBatchSampler
    from minilm.train.trainer import TrainConfig, TrainData, Trainer

    for key in ("mini_batch_size", "mini_batch_num_tokens"):
        path = layer_recipe(tmp_path, tiny_base, "adaptive_layer", "", train=f"{key} = 4")
        with pytest.raises(
            RecipeError,
            match=rf"\[train\] {key} \(gradient cache\) cannot run loss "
            r"'adaptive_layer': the cache embeds the last layer only",
        ):
            load_recipe(path)
    model = tiny_encoder(WordPieceTokenizer.from_dir(minilm_dir, 32))
    data = TrainData(columns=[["a", "b"], ["c", "d"]])
    loss = make_loss("adaptive_layer", {})
    with pytest.raises(ValueError, match="mini_batch_size .gradient cache. cannot run loss adaptive_layer"):
        Trainer(model, loss, data, RandomBatchSampler(2, 2), TrainConfig(batch_size=2, mini_batch_size=1))
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    with pytest.raises(ValueError, match=r"loss adaptive_layer trains every layer, .* \(not under torchrun\)"):
        Trainer(model, loss, data, RandomBatchSampler(2, 2), TrainConfig(batch_size=2))
