"""A teacher model named in a recipe ([loss] teacher, minilm/train/frozen.py): loaded once, frozen, out of the
optimiser, the checkpoints and the saved model; its embeddings of the batch's texts are the targets of mse and
embed_distill; refused by name, before any model loads, where it cannot work."""

import pytest
import torch
from helpers import (
    assert_frozen_and_never_saved,
    assert_resume_is_exact,
    keep_trainer,
    make_tiny_checkpoint,
    write_tiny_recipe,
)
from safetensors.torch import load_file

from minilm.encoder import SentenceEncoder
from minilm.losses import mse_distill_loss
from minilm.run import registry
from minilm.run.build import build_loss, load_train_data, make_sampler, run_recipe
from minilm.run.recipe import RecipeError, load_recipe
from minilm.train import trainer as trainer_module
from minilm.train.config import TrainConfig
from minilm.train.frozen import FrozenEncoder, GuideModel, TeacherModel


@pytest.fixture(scope="module")
def narrow_teacher(tmp_path_factory, minilm_dir):
    """A tiny checkpoint 32 wide (the tiny base is 64 wide)."""
    directory = tmp_path_factory.mktemp("narrow-teacher")
    make_tiny_checkpoint(directory, minilm_dir, hidden=32, heads=4, intermediate=64, normalize=True, seed=3)
    return directory


@pytest.fixture()
def teacher_recipe(tmp_path, tiny_base):
    """The tiny recipe switched to MSE distillation of both text columns, the tiny base as its own teacher."""
    path = write_tiny_recipe(tmp_path, tiny_base, steps=4)
    text = path.read_text(encoding="utf-8").replace('name = "mnrl"', f'name = "mse"\nteacher = "{tiny_base}"')
    text = text.replace(
        'roles = { anchor = "anchor", positive = "positive" }', 'roles = { text = ["anchor", "positive"] }'
    )
    path.write_text(text, encoding="utf-8")
    return path


def test_a_recipe_with_a_teacher_model_reads_only_the_text_columns(teacher_recipe):
    recipe = load_recipe(teacher_recipe)
    data = load_train_data(recipe)
    assert len(data.columns) == 2 and data.targets is None and data.target_name is None


@pytest.mark.slow
def test_mse_trains_on_the_teachers_embeddings_with_the_teacher_frozen_and_never_saved(
    teacher_recipe, tmp_path, tiny_base, monkeypatch
):
    seen = keep_trainer(monkeypatch)
    run_recipe(load_recipe(teacher_recipe), tmp_path / "out", log=lambda _: None)
    trainer = seen["trainer"]
    assert_frozen_and_never_saved(
        trainer, trainer.extension(TeacherModel).frozen.encoder, tiny_base, tmp_path / "out", "teacher"
    )
    card = (tmp_path / "out" / "final" / "README.md").read_text(encoding="utf-8")
    assert f'"teacher": "{tiny_base}"' in card  # the card names the teacher with the loss's settings
    assert "loss" not in trainer.parts and trainer.extension(GuideModel) is None
    start = SentenceEncoder.from_pretrained(tiny_base).bert.state_dict()
    trained = trainer.model.bert.state_dict()
    assert not all(torch.equal(trained[name], start[name]) for name in start)  # while the model did train
    final = load_file(tmp_path / "out" / "final" / "model.safetensors")
    # the saved model is the student alone (with the base checkpoint's pooler, written back for sentence-transformers)
    assert len([key for key in final if not key.startswith("pooler.")]) == len(start)
    assert not (tmp_path / "out" / "final" / "loss.safetensors").exists()


@pytest.mark.slow
def test_the_loss_gets_the_teachers_embeddings_of_every_column(teacher_recipe, tmp_path, tiny_base, monkeypatch):
    calls = []

    def spy(*embeddings, teacher_embeddings):
        calls.append(
            (
                [e.shape for e in embeddings],
                teacher_embeddings.shape,
                teacher_embeddings.requires_grad,
                teacher_embeddings.detach().clone(),
            )
        )
        return mse_distill_loss(*embeddings, teacher_embeddings=teacher_embeddings)

    spy.needs = mse_distill_loss.needs
    monkeypatch.setitem(registry.LOSSES, "mse", spy)
    seen = keep_trainer(monkeypatch)
    run_recipe(load_recipe(teacher_recipe, ["train.max_steps=2"]), tmp_path / "out", log=lambda _: None)
    assert calls[0][1] == torch.Size([4, 8])  # the recipe check's dry run, on stand-in teacher rows
    assert [c[:3] for c in calls[1:]] == [([torch.Size([8, 64])] * 2, torch.Size([8, 128]), False)] * 2
    trainer = seen["trainer"]
    columns, _ = trainer.data.batch(trainer.sampler.batches(0)[0])
    frozen = SentenceEncoder.from_pretrained(tiny_base).eval()
    expected = torch.cat([frozen.embed(column).detach() for column in columns], dim=1)  # side by side, per column
    assert torch.allclose(calls[1][3], expected, atol=1e-6)


@pytest.mark.slow
def test_a_teacher_run_killed_and_resumed_equals_the_straight_run(teacher_recipe, tmp_path, monkeypatch):
    assert_resume_is_exact(monkeypatch, teacher_recipe, tmp_path)


@pytest.mark.slow
def test_embed_distill_learns_a_projection_to_a_teacher_of_another_width(
    teacher_recipe, narrow_teacher, tmp_path, monkeypatch
):
    seen = keep_trainer(monkeypatch)
    recipe = load_recipe(
        teacher_recipe,
        [f'loss={{name="embed_distill", teacher="{narrow_teacher}", projection_dim=32}}', "train.max_steps=2"],
    )
    run_recipe(recipe, tmp_path / "out", log=lambda _: None)
    trainer = seen["trainer"]
    assert trainer.extension(TeacherModel).frozen.embedding_dim == 32 and trainer.model.embedding_dim == 64
    assert trainer.parts["loss"].module.projection.weight.shape == (32, 64)
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert {
        id(p) for p in trainer.parts["loss"].module.parameters()
    } <= optimised  # the projection trains, the teacher not
    assert not optimised & {id(p) for p in trainer.extension(TeacherModel).frozen.encoder.parameters()}


@pytest.mark.parametrize(
    "override, message",
    [
        (
            'data.roles={text=["anchor"], teacher="positive"}',
            r"\[loss\] teacher names a teacher model \(.*\) and \[data\] roles name a teacher column "
            r"\(teacher = 'positive'\): the teacher's embeddings come from one or the other; drop one",
        ),
        (
            'loss={name="mnrl", teacher="x"}',
            r"\[loss\] loss 'mnrl': teacher names a teacher model, whose embeddings only a loss of kind "
            r"'teacher_embeddings' takes \(embed_distill, mse\); loss 'mnrl' is of kind 'columns', "
            r"and it takes no teacher",
        ),
        (
            'loss={name="margin_mse", teacher="x"}',
            r"loss 'margin_mse' is of kind 'teacher_scores', and it takes the teacher's score of each candidate "
            r"\(a cross-encoder's\), which a sentence encoder does not give: put the scores in a data column",
        ),
        (
            'loss={name="mse", teacher=3}',
            r"\[loss\] loss 'mse': teacher must name a model \(a folder or a hub id\), got 3",
        ),
        (
            'loss={name="mse", teacher="./teachers/none"}',
            r"\[loss\] teacher folder ./teachers/none not found \(looked at .*teachers/none, relative to the recipe\)",
        ),
        (
            'data.roles={anchor="anchor", positive="positive"}',
            r"\[data\] roles \['anchor', 'positive'\] do not fit loss 'mse'.*missing \['text'\], "
            r"unknown \['anchor', 'positive'\]",
        ),
    ],
)
def test_a_teacher_that_cannot_work_is_refused_before_any_model_loads(teacher_recipe, monkeypatch, override, message):
    monkeypatch.setattr(SentenceEncoder, "from_pretrained", lambda *a, **k: pytest.fail("model loaded"))
    with pytest.raises(RecipeError, match=message):
        load_recipe(teacher_recipe, [override])


@pytest.mark.parametrize(
    "settings, message",
    [
        (
            "",
            r"\[loss\] teacher .*narrow-teacher.* embeds in 32 dimensions, but loss 'mse' compares it with "
            r"64-dimensional embeddings \(the student, \[model\] base\); a teacher of another width needs a "
            r"learned projection: "
            r'name = "embed_distill" with projection_dim = 32',
        ),
        (
            ", projection_dim=48",
            r"embeds in 32 dimensions, but loss 'embed_distill' compares it with 48-dimensional "
            r"embeddings \(its projection_dim\); set projection_dim = 32",
        ),
    ],
)
def test_a_teacher_of_the_wrong_width_is_refused_naming_both_widths_before_any_model_loads(
    teacher_recipe, narrow_teacher, tmp_path, monkeypatch, settings, message
):
    monkeypatch.setattr(SentenceEncoder, "from_pretrained", lambda *a, **k: pytest.fail("model loaded"))
    name = "embed_distill" if settings else "mse"
    recipe = load_recipe(teacher_recipe, [f'loss={{name="{name}", teacher="{narrow_teacher}"{settings}}}'])
    with pytest.raises(RecipeError, match=message):
        run_recipe(recipe, tmp_path / "out", log=lambda _: None)


def test_the_trainer_refuses_a_teacher_that_does_not_fit(teacher_recipe, tiny_base, narrow_teacher):
    recipe = load_recipe(teacher_recipe)
    model = SentenceEncoder.from_pretrained(tiny_base)
    data = load_train_data(recipe)
    loss, sampler, config = build_loss(recipe, model, data), make_sampler(recipe, data), TrainConfig(batch_size=8)
    with pytest.raises(ValueError, match="the teacher must be a separate frozen copy, not the model being trained"):
        trainer_module.Trainer(
            model, loss, data, sampler, config, extensions=[TeacherModel(FrozenEncoder(model, role="teacher"))]
        )
    with pytest.raises(
        ValueError,
        match=r"the teacher model embeds in 32 dimensions, but loss mse_distill_loss "
        r"compares it with 64-dimensional embeddings \(the student's is 64\)",
    ):
        trainer_module.Trainer(
            model, loss, data, sampler, config, extensions=[TeacherModel(FrozenEncoder.load(str(narrow_teacher)))]
        )
    teacher = FrozenEncoder.load(str(tiny_base), role="teacher")
    with_column = trainer_module.TrainData(
        columns=data.columns[:1], targets=[[0.0] * 64] * len(data), target_name="teacher_embeddings"
    )
    with pytest.raises(
        ValueError,
        match=r"a teacher model was given and the data holds a teacher column "
        r"\(teacher_embeddings\): the teacher's embeddings come from one or the other",
    ):
        trainer_module.Trainer(model, loss, with_column, sampler, config, extensions=[TeacherModel(teacher)])
    mnrl = load_recipe(teacher_recipe, ['loss={name="mnrl"}', 'data.roles={anchor="anchor", positive="positive"}'])
    with pytest.raises(
        ValueError, match="a teacher was given, but loss multiple_negatives_ranking_loss does not take one"
    ):
        trainer_module.Trainer(
            model, build_loss(mnrl, model, data), data, sampler, config, extensions=[TeacherModel(teacher)]
        )
    with pytest.raises(TypeError, match="the teacher embeds texts: columns\\[0\\] must be a list of texts, got str"):
        teacher.embed(["one text"])
