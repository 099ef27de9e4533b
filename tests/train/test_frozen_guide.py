"""A guide model named in a recipe ([loss] guide, minilm/train/frozen.py): loaded once, frozen, out of the
optimiser and the checkpoints, its embeddings handed to GIST (plain and through the gradient cache), from a recipe and
from minilm sweep; refused by name where it cannot work."""

import json

import pytest
import torch
from helpers import assert_frozen_and_never_saved, assert_resume_is_exact, keep_trainer, write_tiny_recipe
from safetensors.torch import load_file

from minilm.encoder import SentenceEncoder
from minilm.losses import gist_embed_loss
from minilm.run.build import run_recipe
from minilm.run.recipe import RecipeError, load_recipe
from minilm.sweep.runner import load_sweep, run_sweep
from minilm.train import trainer as trainer_module
from minilm.train.frozen import FrozenEncoder, GuideModel


@pytest.fixture()
def gist_recipe(tmp_path, tiny_base):
    """The tiny MNRL recipe switched to GIST, the tiny base as its own guide."""
    path = write_tiny_recipe(tmp_path, tiny_base, steps=4)
    text = path.read_text(encoding="utf-8").replace('name = "mnrl"', f'name = "gist"\nguide = "{tiny_base}"')
    path.write_text(text, encoding="utf-8")
    return path


def test_a_guide_is_frozen_and_embeds_without_autograd(tiny_base):
    guide = FrozenEncoder.load(str(tiny_base), batch_size=3)
    assert not guide.encoder.training and not any(p.requires_grad for p in guide.encoder.parameters())
    texts = [f"sentence number {i}" for i in range(7)]
    embedded = guide.embed([texts, texts[::-1]])
    assert [tuple(e.shape) for e in embedded] == [(7, 64), (7, 64)] and not embedded[0].requires_grad
    whole = guide.encoder.embed(texts).detach()  # one padded batch: chunks of 3 rows give the same rows
    assert torch.allclose(embedded[0], whole, atol=1e-6) and torch.allclose(embedded[1], whole.flip(0), atol=1e-6)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda g: g.embed([{"input_ids": torch.zeros(2, 3)}]), r"columns\[0\] must be a list of texts, got dict"),
        (lambda g: g.embed(["one text"]), r"columns\[0\] must be a list of texts, got str"),
        (lambda g: FrozenEncoder(g.encoder, batch_size=0), "guide batch_size must be a positive int, got 0"),
    ],
)
def test_bad_guide_input_is_refused_by_name(tiny_base, call, message):
    with pytest.raises((TypeError, ValueError), match=message):
        call(FrozenEncoder.load(str(tiny_base)))


@pytest.mark.slow
def test_gist_trains_from_a_recipe_with_the_guide_frozen_and_never_saved(gist_recipe, tmp_path, tiny_base, monkeypatch):
    seen = keep_trainer(monkeypatch)
    run_recipe(load_recipe(gist_recipe), tmp_path / "out", log=lambda _: None)
    trainer = seen["trainer"]
    assert_frozen_and_never_saved(
        trainer, trainer.extension(GuideModel).frozen.encoder, tiny_base, tmp_path / "out", "guide"
    )
    card = (tmp_path / "out" / "final" / "README.md").read_text(encoding="utf-8")
    assert f'"guide": "{tiny_base}"' in card  # the card names the guide with the loss's settings
    assert "loss" not in trainer.parts
    start = SentenceEncoder.from_pretrained(tiny_base).bert.state_dict()
    trained = trainer.model.bert.state_dict()
    assert not all(torch.equal(trained[name], start[name]) for name in start)  # while the model did train
    assert not (tmp_path / "out" / "final" / "loss.safetensors").exists()


@pytest.mark.slow
def test_the_loss_gets_the_guides_embeddings_of_the_batch(gist_recipe, tmp_path, monkeypatch):
    calls = []

    def spy(*embeddings, guide, **settings):
        calls.append(([e.shape for e in embeddings], [g.shape for g in guide], [g.requires_grad for g in guide]))
        return gist_embed_loss(*embeddings, guide=guide, **settings)

    spy.needs = gist_embed_loss.needs
    monkeypatch.setitem(__import__("minilm.run.registry", fromlist=["LOSSES"]).LOSSES, "gist", spy)
    run_recipe(load_recipe(gist_recipe, ["train.max_steps=2"]), tmp_path / "out", log=lambda _: None)
    assert calls[0][1] == [torch.Size([4, 3])] * 2  # the recipe check's dry run, on a stand-in guide
    assert calls[1:] == [([torch.Size([8, 64])] * 2, [torch.Size([8, 64])] * 2, [False, False])] * 2


@pytest.mark.slow
def test_cached_gist_passes_the_guide_through_the_gradient_cache(gist_recipe, tmp_path):
    """GIST under [train] mini_batch_size (CachedGISTEmbedLoss) trains as the plain step does (dropout off)."""
    plain = ["train.dropout=false", "train.save_steps=0", "train.max_steps=3"]
    run_recipe(load_recipe(gist_recipe, plain), tmp_path / "plain", log=lambda _: None)
    run_recipe(load_recipe(gist_recipe, plain + ["train.mini_batch_size=3"]), tmp_path / "cached", log=lambda _: None)
    a = load_file(tmp_path / "plain" / "final" / "model.safetensors")
    b = load_file(tmp_path / "cached" / "final" / "model.safetensors")
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5, rtol=1e-4), key
    losses = [
        [
            json.loads(line)["loss"]
            for line in (tmp_path / name / "log.jsonl").read_text().splitlines()
            if '"loss"' in line
        ]
        for name in ("plain", "cached")
    ]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


@pytest.mark.slow
def test_a_gist_run_killed_and_resumed_equals_the_straight_run(gist_recipe, tmp_path, monkeypatch):
    assert_resume_is_exact(monkeypatch, gist_recipe, tmp_path)


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda t, base: t.replace(f'\nguide = "{base}"', ""),
            r"missing key \[loss\] guide: loss 'gist' masks false negatives with a frozen guide model",
        ),
        (
            lambda t, base: t.replace(f'guide = "{base}"', 'guide = "./guides/none"'),
            r"\[loss\] guide folder ./guides/none not found \(looked at .*guides/none, relative to the recipe\)",
        ),
        (
            lambda t, base: t.replace(f'guide = "{base}"', "guide = 3"),
            r"guide must name a model \(a folder or a hub id\)",
        ),
        (lambda t, base: t.replace('name = "gist"', 'name = "mnrl"'), r"loss 'mnrl' has no setting 'guide'"),
    ],
)
def test_a_guide_that_cannot_work_is_refused_before_any_model_loads(gist_recipe, tiny_base, monkeypatch, edit, message):
    monkeypatch.setattr(SentenceEncoder, "from_pretrained", lambda *a, **k: pytest.fail("model loaded"))
    gist_recipe.write_text(edit(gist_recipe.read_text(encoding="utf-8"), tiny_base), encoding="utf-8")
    with pytest.raises(RecipeError, match=message):
        load_recipe(gist_recipe)


def test_a_relative_guide_is_the_recipes_folder(gist_recipe, tiny_base, tmp_path, monkeypatch):
    (tmp_path / "guides").mkdir()
    (tmp_path / "guides" / "g").symlink_to(tiny_base, target_is_directory=True)
    text = gist_recipe.read_text(encoding="utf-8").replace(f'guide = "{tiny_base}"', 'guide = "guides/g"')
    gist_recipe.write_text(text, encoding="utf-8")
    monkeypatch.chdir(tiny_base)
    assert load_recipe(gist_recipe).loss["guide"] == str((tmp_path / "guides" / "g").resolve())


def test_the_trainer_refuses_a_guide_that_does_not_fit_the_loss(gist_recipe, tiny_base):
    from minilm.run.build import build_loss, load_train_data, make_sampler
    from minilm.train.config import TrainConfig

    recipe = load_recipe(gist_recipe)
    model = SentenceEncoder.from_pretrained(tiny_base)
    data = load_train_data(recipe)
    loss, sampler, config = build_loss(recipe, model, data), make_sampler(recipe, data), TrainConfig(batch_size=8)
    with pytest.raises(ValueError, match="takes a guide model's embeddings: give the trainer a guide"):
        trainer_module.Trainer(model, loss, data, sampler, config)
    with pytest.raises(ValueError, match="the guide must be a separate frozen copy, not the model being trained"):
        trainer_module.Trainer(model, loss, data, sampler, config, extensions=[GuideModel(FrozenEncoder(model))])
    mnrl = load_recipe(gist_recipe, ['loss={name="mnrl"}'])
    with pytest.raises(
        ValueError, match="a guide was given, but loss multiple_negatives_ranking_loss does not take one"
    ):
        trainer_module.Trainer(
            model,
            build_loss(mnrl, model, data),
            data,
            sampler,
            config,
            extensions=[GuideModel(FrozenEncoder.load(str(tiny_base)))],
        )


SWEEP = """
recipe = "base.toml"
seeds = [1]
set = ["train.max_steps=2", "train.save_steps=0"]
[[configs]]
loss = { name = "mnrl" }
[[configs]]
loss = { name = "gist", guide = "guide" }
[[configs]]
label = "cached gist"
loss = { name = "gist", guide = "guide" }
train = { mini_batch_size = 4 }
"""


@pytest.mark.slow
def test_gist_runs_from_a_sweep_with_its_guide_relative_to_the_sweep_file(tmp_path, tiny_base):
    path = write_tiny_recipe(tmp_path, tiny_base)
    rows = "\n".join(
        f"query {i} on subject {i % 5},reply {i} on subject {i % 5},aside {i} on subject {(i + 2) % 5}"
        for i in range(12)
    )
    (tmp_path / "eval.csv").write_text("anchor,positive,negative\n" + rows + "\n", encoding="utf-8")
    text = path.read_text(encoding="utf-8") + (
        '[eval]\ntask = "triplet"\ndata = "eval.csv"\n'
        'roles = { anchor = "anchor", positive = "positive", negative = "negative" }\n'
    )
    (tmp_path / "base.toml").write_text(text, encoding="utf-8")
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "guide").symlink_to(tiny_base, target_is_directory=True)
    (tmp_path / "sweeps" / "s.toml").write_text(SWEEP.replace('"base.toml"', '"../base.toml"'), encoding="utf-8")
    sweep = load_sweep(tmp_path / "sweeps" / "s.toml", tmp_path / "out")
    assert [r.recipe.loss.get("guide") for r in sweep.runs] == [None] + [
        str((tmp_path / "sweeps" / "guide").resolve())
    ] * 2
    results = run_sweep(tmp_path / "sweeps" / "s.toml", tmp_path / "out", plots=False, log=lambda _: None)
    assert [(r["label"], r["status"], r["steps"]) for r in results] == [
        ("mnrl", "done", 2),
        ("gist", "done", 2),
        ("cached gist", "done", 2),
    ]
