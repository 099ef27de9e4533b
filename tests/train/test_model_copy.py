"""Contrastive Tension from a recipe (minilm/train/model_copy.py): the model trained against a trained copy of its
starting weights; the copy optimised, clipped and checkpointed with it, never saved as the model; batches of identical
and random pairs from one text column; refused by name where it cannot work."""

import json

import pytest
import torch
from helpers import killed_after_step
from safetensors.torch import load_file

from minilm.data.dataset import TextPairs
from minilm.encoder import SentenceEncoder
from minilm.losses import ContrastiveTensionInBatchLoss, contrastive_tension_loss, needs
from minilm.losses.inputs import Needs
from minilm.run.build import load_train_data, make_sampler, run_recipe
from minilm.run.recipe import RecipeError, load_recipe
from minilm.train import distributed
from minilm.train import trainer as trainer_module
from minilm.train.checkpoints import STATE_NAME, checkpoints
from minilm.train.config import TrainConfig
from minilm.train.samplers import TensionPairSampler
from minilm.train.step import embed_columns
from minilm.train.trainer import TrainData, Trainer

RECIPE = """
name = "tension"
[model]
base = "{base}"
[data]
train = "{data}"
roles = {{ text = "sentence" }}
[loss]
name = "contrastive_tension"
pos_neg_ratio = 4
[train]
batch_size = 8
max_steps = 6
save_steps = 2
keep_checkpoints = 5
lr = 1e-3
seed = 3
"""


@pytest.fixture()
def tension_recipe(tmp_path, tiny_base):
    data = tmp_path / "sentences.csv"
    lines = [f"sentence {i} is about topic {i % 7} and colour {i % 5}" for i in range(60)]
    data.write_text("sentence\n" + "\n".join(lines) + "\n", encoding="utf-8")
    path = tmp_path / "tension.toml"
    path.write_text(RECIPE.format(base=tiny_base, data=data), encoding="utf-8")
    return path


def keep_trainer(monkeypatch) -> dict:
    seen = {}
    original = trainer_module.Trainer.finish

    def keep(self):
        seen["trainer"] = self
        original(self)

    monkeypatch.setattr(trainer_module.Trainer, "finish", keep)
    return seen


def quiet(_):
    pass


def test_the_pairs_come_from_one_text_column_labelled_by_whether_they_are_identical(tension_recipe):
    recipe = load_recipe(tension_recipe)
    data = load_train_data(recipe)
    assert isinstance(data, TextPairs) and len(data.columns) == 1 and len(data) == 60
    sampler = make_sampler(recipe, data)
    assert isinstance(sampler, TensionPairSampler) and sampler.pos_neg_ratio == 4
    pairs = sampler.batches(0)[0]
    (first, second), targets = data.batch(pairs)
    assert len(first) == len(second) == 8
    assert targets["scores"].tolist() == [1.0, 0, 0, 0, 1.0, 0, 0, 0]
    assert [a == b for a, b in zip(first, second)] == [True, False, False, False] * 2


@pytest.mark.slow
def test_the_model_and_its_copy_both_train_and_only_the_model_is_saved(
    tension_recipe, tmp_path, tiny_base, monkeypatch
):
    seen = keep_trainer(monkeypatch)
    run_recipe(load_recipe(tension_recipe), tmp_path / "out", log=quiet)
    trainer = seen["trainer"]
    model, twin = trainer.model, trainer.parts["model_copy"].module
    start = SentenceEncoder.from_pretrained(tiny_base).bert.state_dict()
    moved = {"model": model.bert.state_dict(), "copy": twin.bert.state_dict()}
    for name, state in moved.items():
        assert not all(torch.equal(state[k], start[k]) for k in start), f"the {name} did not train"
    assert not all(torch.equal(moved["model"][k], moved["copy"][k]) for k in start)  # two models, trained apart
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert {id(p) for p in twin.parameters()} <= optimised and {id(p) for p in model.parameters()} <= optimised
    assert not {id(p) for p in twin.parameters()} & {id(p) for p in model.parameters()}
    final = load_file(tmp_path / "out" / "final" / "model.safetensors")  # the model, not the copy
    saved = SentenceEncoder.from_pretrained(tmp_path / "out" / "final").bert.state_dict()
    unused = [key for key in final if key.startswith("pooler.")]  # the base checkpoint's pooler, written back
    assert len(final) - len(unused) == len(start) and all(torch.equal(saved[k], moved["model"][k]) for k in start)
    checkpoint = checkpoints(tmp_path / "out")[-1]
    state = torch.load(checkpoint / STATE_NAME, weights_only=True)
    assert set(state["model_copy"]) == set(twin.state_dict())
    in_checkpoint = SentenceEncoder.from_pretrained(checkpoint / "model").bert.state_dict()
    assert not all(torch.equal(in_checkpoint[k], state["model_copy"][f"bert.{k}"]) for k in start)


@pytest.mark.slow
def test_one_step_is_the_loss_of_the_copys_and_the_models_embeddings(tension_recipe, tmp_path, tiny_base, monkeypatch):
    """The reference path: the first step's logged loss is contrastive_tension_loss of the copy's embeddings of the
    first texts and the model's of the second, both still the starting weights (dropout off)."""
    recipe = load_recipe(tension_recipe, ["train.max_steps=1", "train.dropout=false"])
    data = load_train_data(recipe)
    columns, targets = data.batch(make_sampler(recipe, data).batches(0)[0])
    start = SentenceEncoder.from_pretrained(tiny_base)
    with torch.no_grad():
        (a,), (b,) = embed_columns(start, columns[:1]), embed_columns(start, columns[1:])
        expected = contrastive_tension_loss(a, b, targets["scores"])
    run_recipe(recipe, tmp_path / "out", log=quiet)
    log = [json.loads(line) for line in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    assert [r["loss"] for r in log if "loss" in r] == [pytest.approx(float(expected), rel=1e-6)]


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["contrastive_tension", "contrastive_tension_in_batch"])
def test_a_run_killed_and_resumed_equals_the_straight_run(loss, tension_recipe, tmp_path, monkeypatch):
    sets = [f'loss={{name="{loss}"}}'] if loss != "contrastive_tension" else []
    seen = keep_trainer(monkeypatch)
    run_recipe(load_recipe(tension_recipe, sets), tmp_path / "straight", log=quiet)
    straight = seen.pop("trainer")
    killed_after_step(
        monkeypatch, 3, lambda: run_recipe(load_recipe(tension_recipe, sets), tmp_path / "resumed", log=quiet)
    )
    run_recipe(load_recipe(tension_recipe, sets), tmp_path / "resumed", resume=True, log=quiet)
    resumed = seen["trainer"]
    a = load_file(tmp_path / "straight" / "final" / "model.safetensors")
    b = load_file(tmp_path / "resumed" / "final" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    copy_a, copy_b = straight.parts["model_copy"].module.state_dict(), resumed.parts["model_copy"].module.state_dict()
    assert all(torch.equal(copy_a[k], copy_b[k]) for k in copy_a)  # the copy resumed, not re-copied
    logs = [
        [
            json.loads(line)["loss"]
            for line in (tmp_path / run / "log.jsonl").read_text().splitlines()
            if "loss" in json.loads(line)
        ]
        for run in ("straight", "resumed")
    ]
    assert logs[0] == logs[1] and len(logs[0]) == 6


@pytest.mark.slow
def test_the_in_batch_form_embeds_the_same_texts_through_the_copy_and_the_model(tension_recipe, tmp_path, monkeypatch):
    recipe = load_recipe(
        tension_recipe, ['loss={name="contrastive_tension_in_batch", scale=10.0}', "train.max_steps=2"]
    )
    data = load_train_data(recipe)
    assert isinstance(data, TrainData) and data.columns[0] == data.columns[1]
    assert type(make_sampler(recipe, data)).__name__ == "NoDuplicatesBatchSampler"
    seen = keep_trainer(monkeypatch)
    run_recipe(recipe, tmp_path / "out", log=quiet)
    trainer = seen["trainer"]
    assert isinstance(trainer.parts["loss"].module, ContrastiveTensionInBatchLoss) and "model_copy" in trainer.parts
    log = [json.loads(line) for line in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    assert [r["stats"]["scale"] > 0 for r in log if "loss" in r] == [True, True]


def test_matryoshka_truncates_both_copies_embeddings(tension_recipe, tmp_path):
    recipe = load_recipe(tension_recipe, ["loss.matryoshka_dims=[64, 16]", "train.max_steps=2"])
    run_recipe(recipe, tmp_path / "out", log=quiet)
    assert (tmp_path / "out" / "final" / "model.safetensors").is_file()


# ------------------------------------------------------------------------------------------- what it refuses


@pytest.mark.parametrize(
    "sets, message",
    [
        (
            ["train.mini_batch_size=4"],
            r"\[train\] mini_batch_size \(gradient cache\) cannot run loss 'contrastive_tension'",
        ),
        (["train.mini_batch_num_tokens=64"], r"mini_batch_num_tokens \(gradient cache\) cannot run loss"),
        (
            ['loss={name="contrastive_tension_in_batch"}', "train.mini_batch_size=4"],
            r"mini_batch_size \(gradient cache\) cannot run loss 'contrastive_tension_in_batch'",
        ),
        (["train.compile=true"], r"compile = true compiles the model's layers in place, not its trained copy's"),
        (['data.sampler="random"'], r"\[data\] sampler 'random': loss 'contrastive_tension' builds its own batches"),
        (
            ['data.roles={text=["sentence", "sentence"]}'],
            r"reads one text column, which the model and its trained copy",
        ),
        (['data.roles={a="sentence", b="sentence", score="sentence"}'], r"reads one text column"),
        (['data.format="sts"'], r"an STS file gives pairs, but loss 'contrastive_tension' reads one text column"),
        (["loss.pos_neg_ratio=1"], r"pos_neg_ratio must be an int >= 2"),
        (['loss.pos_neg_ratio="8"'], r"pos_neg_ratio must be an int >= 2"),
        (
            ['loss={name="contrastive_tension_in_batch", pos_neg_ratio=4}'],
            r"loss 'contrastive_tension_in_batch' has no setting 'pos_neg_ratio'",
        ),
        (
            ['loss={name="adaptive_layer", loss="contrastive_tension"}'],
            r"must not compare the model with a trained copy of it",
        ),
        (["train.batch_size=40"], r"sampler builds no batch of 40 from the 60 rows"),
    ],
)
def test_what_cannot_work_is_refused_by_name_before_any_model_loads(
    sets, message, tension_recipe, tmp_path, monkeypatch
):
    monkeypatch.setattr(SentenceEncoder, "from_pretrained", lambda *a, **k: pytest.fail("model loaded"))
    with pytest.raises(RecipeError, match=message):
        run_recipe(load_recipe(tension_recipe, sets), tmp_path / "out", log=quiet)


def tiny_trainer(tiny_base, loss=contrastive_tension_loss, **config):
    model = SentenceEncoder.from_pretrained(tiny_base)
    data = TrainData(columns=[[f"text {i}" for i in range(8)]] * 2, targets=[1.0, 0.0] * 4, target_name="scores")
    settings = {"batch_size": 4, "max_steps": 1, **config}
    return Trainer(model, loss, data, make_pairs_sampler(), TrainConfig(**settings), log=quiet)


def make_pairs_sampler():
    from minilm.train.samplers import RandomBatchSampler

    return RandomBatchSampler(8, 4)


@pytest.mark.parametrize(
    "config, message",
    [
        ({"mini_batch_size": 2}, r"mini_batch_size \(gradient cache\) cannot run loss contrastive_tension_loss"),
        ({"mini_batch_num_tokens": 64}, r"mini_batch_num_tokens \(gradient cache\) cannot run loss"),
        ({"compile": True}, r"compile = true compiles the model's layers in place, not its trained copy's"),
    ],
)
def test_the_trainer_refuses_what_cannot_train_the_copy(config, message, tiny_base):
    with pytest.raises(ValueError, match=message):
        tiny_trainer(tiny_base, **config)


def test_the_trainer_refuses_torchrun(tiny_base, monkeypatch):
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    with pytest.raises(
        ValueError,
        match=r"loss contrastive_tension_loss trains a copy of the model, which would run "
        r"outside DDP: it trains in one process only \(not under torchrun\)",
    ):
        tiny_trainer(tiny_base)


def test_a_checkpoint_without_the_copy_is_refused_and_one_with_it_needs_a_loss_that_trains_one(tiny_base):
    tension = tiny_trainer(tiny_base)
    plain = tiny_trainer(tiny_base, loss=lambda a, b, scores: (a - b).pow(2).sum())
    assert "model_copy" not in plain.parts and "model_copy" in tension.parts
    with pytest.raises(
        ValueError,
        match=r"the checkpoint holds the state of no part besides the model, but this "
        r"run's loss brings \['model_copy'\]: was it written with another loss\?",
    ):
        tension.load_state_dict(plain.state_dict())
    with pytest.raises(
        ValueError,
        match=r"the checkpoint holds the state of \['model_copy'\] besides the model, but "
        r"this run's loss brings none: was it written with another loss\?",
    ):
        plain.load_state_dict(tension.state_dict())


def test_the_copy_step_takes_two_columns(tiny_base):
    from minilm.train.model_copy import ModelCopy
    from minilm.train.step import step

    model = SentenceEncoder.from_pretrained(tiny_base)
    with pytest.raises(ValueError, match="a loss comparing the model with its copy takes 2 columns, got 3"):
        step(model, [["a"], ["b"], ["c"]], contrastive_tension_loss, embed=ModelCopy(model).embed)


@pytest.mark.parametrize(
    "declare, message",
    [
        (lambda: needs("labels", model_copy=True), r"model_copy takes two text columns, one per copy"),
        (lambda: needs("columns", columns=3, model_copy=True), r"model_copy takes two text columns"),
        (
            lambda: Needs("scores", 2, layers=True, model_copy=True),
            "model_copy cannot be declared with layers or guide",
        ),
        (
            lambda: Needs("columns", 2, guide=True, model_copy=True),
            "model_copy cannot be declared with layers or guide",
        ),
    ],
)
def test_a_model_copy_is_declared_for_two_text_columns_only(declare, message):
    with pytest.raises(ValueError, match=message):
        declare()


SWEEP = """
recipe = "tension.toml"
seeds = [1]
set = ["train.max_steps=2", "train.save_steps=0"]
[[configs]]
loss = {{ name = "contrastive_tension" }}
grid = {{ pos_neg_ratio = [2, 4] }}
{more}
"""
EVAL = """[eval]
task = "retrieval"
data = "{data}"
roles = {{ anchor = "sentence", positive = "sentence" }}
"""


@pytest.mark.slow
def test_a_sweep_varies_pos_neg_ratio_and_refuses_mixing_it_with_other_losses(tension_recipe, tmp_path):
    from minilm.sweep.runner import SweepError, load_sweep, run_sweep

    data = tmp_path / "sentences.csv"
    with open(tension_recipe, "a", encoding="utf-8") as f:
        f.write(EVAL.format(data=data))
    (tmp_path / "s.toml").write_text(SWEEP.format(more=""), encoding="utf-8")
    results = run_sweep(tmp_path / "s.toml", tmp_path / "out", plots=False, log=quiet)
    assert [(r["label"], r["status"], r["steps"]) for r in results] == [
        ("contrastive_tension pos_neg_ratio=2", "done", 2),
        ("contrastive_tension pos_neg_ratio=4", "done", 2),
    ]
    mixed = SWEEP.format(more='[[configs]]\nloss = { name = "contrastive_tension_in_batch" }')
    (tmp_path / "mixed.toml").write_text(mixed, encoding="utf-8")
    with pytest.raises(
        SweepError,
        match=r"train against a copy of the model from one text column, which the sweep's "
        r"other configurations cannot share",
    ):
        load_sweep(tmp_path / "mixed.toml", tmp_path / "out2")


def test_a_non_finite_copy_weight_stops_the_run_naming_it(tiny_base):
    trainer = tiny_trainer(tiny_base)
    with torch.no_grad():
        next(trainer.parts["model_copy"].module.parameters()).fill_(float("inf"))
    with pytest.raises(trainer_module.TrainingDiverged, match=r"made weight model_copy\.\S+ non-finite"):
        trainer.check_weights(1e-3)


def test_the_model_card_cites_contrastive_tension_with_its_pos_neg_ratio():
    from minilm.losses.bibtex import CARLSSON
    from minilm.run.citations import describe_loss

    card = describe_loss("contrastive_tension", {"pos_neg_ratio": 4})
    assert card.settings == {"pos_neg_ratio": 4} and card.st_names == ["ContrastiveTensionLoss"]
    assert list(card.citations.values()) == [CARLSSON]
    in_batch = describe_loss("contrastive_tension_in_batch", {})
    assert in_batch.settings == {"scale": 20.0, "similarity": "cosine"}
    assert in_batch.st_names == ["ContrastiveTensionLossInBatchNegatives"]
