"""Every shipped recipe runs end to end in quick mode; malformed recipes are refused before any model loads."""

import json
from pathlib import Path

import pytest

from minilm import cli
from minilm.run.recipe import RecipeError, load_recipe, make_quick
from minilm.train.checkpoints import checkpoints

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
OFFLINE_BASE = {"product_categories.toml"}  # its base (multi-qa-MiniLM-L6-cos-v1) lives on the hub only


@pytest.mark.slow
@pytest.mark.real_weights
@pytest.mark.parametrize("name", sorted(p.name for p in RECIPES.glob("*.toml")))
def test_recipe_runs_quick(name, tmp_path, minilm_dir, capsys):
    args = ["train", str(RECIPES / name), "--quick", "--output", str(tmp_path / "out")]
    if name in OFFLINE_BASE:
        args += ["--set", f"model.base={json.dumps(str(minilm_dir))}"]
    assert cli.main(args) == 0, capsys.readouterr().err
    log = [json.loads(line) for line in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2]
    assert (tmp_path / "out" / "final" / "model.safetensors").is_file()
    if load_recipe(RECIPES / name).eval is not None:
        assert "before" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, sets",
    [
        ("gist_guide.toml", ["loss.guide={tiny}"]),
        ("classifier_head.toml", []),
        ("distill_teacher_model.toml", ["loss.teacher={tiny}"]),
        ("adaptive_layer.toml", []),
        ("matryoshka_2d.toml", ["loss.dims=[64, 32, 16]"]),  # the tiny model is 64 wide
        ("contrastive_tension.toml", []),
    ],
)
def test_input_kind_recipes_run_quick_on_a_tiny_model(name, sets, tmp_path, tiny_base, capsys):
    """The recipes of the guide-model, pair_labels, teacher-model, every-layer and model-copy inputs, on the tiny
    model (fast enough for every CI run); ``sets``: what else must point at the tiny model (a frozen model, its
    widths)."""
    tiny = json.dumps(str(tiny_base))
    args = ["train", str(RECIPES / name), "--quick", "--output", str(tmp_path / "out"), "--set", f"model.base={tiny}"]
    for setting in sets:
        args += ["--set", setting.format(tiny=tiny)]
    assert cli.main(args) == 0, capsys.readouterr().err
    log = [json.loads(line) for line in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "loss" in r] == [1, 2]
    assert (tmp_path / "out" / "final" / "model.safetensors").is_file()
    recorded = json.loads((tmp_path / "out" / "run.json").read_text())
    assert json.dumps(str(tiny_base))[1:-1] in json.dumps(recorded)


def test_hub_only_base_fails_offline_naming_the_model(tmp_path, capsys):
    code = cli.main(["train", str(RECIPES / "product_categories.toml"), "--quick", "--output", str(tmp_path)])
    assert code == 2
    assert "sentence-transformers/multi-qa-MiniLM-L6-cos-v1" in capsys.readouterr().err


def write(tmp_path, text):
    (tmp_path / "d.csv").write_text("anchor,positive\nq1,a1\nq2,a2\n", encoding="utf-8")
    path = tmp_path / "r.toml"
    path.write_text(text, encoding="utf-8")
    return path


GOOD = """name = "r"
[model]
base = "nowhere/at-all"
[data]
train = "d.csv"
roles = { anchor = "anchor", positive = "positive" }
[loss]
name = "mnrl"
[train]
batch_size = 2
"""


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace('name = "mnrl"', 'name = "contrastive_magic"'), "unknown loss name 'contrastive_magic'"),
        (lambda t: t.replace("batch_size = 2", "epochs = 1"), r"missing key \[train\] batch_size"),
        (lambda t: t.replace("batch_size = 2", 'batch_size = "two"'), r"\[train\] batch_size must be int, got str"),
        (
            lambda t: t.replace("batch_size = 2", "batch_size = 2\nlearning_rate = 1e-4"),
            r"unknown key \[train\] learning_rate",
        ),
        (lambda t: t.replace('name = "mnrl"', 'name = "mnrl"\nscale = -1.0'), "scale"),
        (lambda t: t.replace('name = "mnrl"', 'name = "mnrl"\nmargin = 1.0'), "has no setting 'margin'"),
        (lambda t: t.replace("[model]", "[modle]"), r"unknown section \[modle\]"),
        (lambda t: t.replace('train = "d.csv"', 'train = "missing.csv"'), r"\[data\] train file missing.csv not found"),
        (lambda t: t.replace("batch_size = 2", "batch_size = 2\nmini_batch_size = -1"), "mini_batch_size must be >= 0"),
        (
            lambda t: t.replace("batch_size = 2", "batch_size = 2\ncompile = 1"),
            r"\[train\] compile must be bool, got int",
        ),
        (
            lambda t: t.replace("batch_size = 2", "batch_size = 2\nmini_batch_num_tokens = -5"),
            r"\[train\] mini_batch_num_tokens must be >= 0, got -5",
        ),
        (
            lambda t: t.replace("batch_size = 2", "batch_size = 2\nmini_batch_num_tokens = 1.5"),
            r"\[train\] mini_batch_num_tokens must be int, got float",
        ),
        (
            lambda t: t.replace("batch_size = 2", "batch_size = 2\nmini_batch_num_tokens = 64\nmini_batch_size = 4"),
            r"\[train\] give mini_batch_size \(rows per mini-batch\) or mini_batch_num_tokens \(real tokens per "
            r"mini-batch\), not both",
        ),
        (
            lambda t: t.replace('name = "mnrl"', 'name = "cosent"').replace(
                "batch_size = 2", "batch_size = 2\nmini_batch_num_tokens = 64"
            ),
            r"\[train\] mini_batch_num_tokens \(gradient cache\) needs an in-batch loss, not cosent",
        ),
    ],
)
def test_malformed_recipe_is_refused_before_any_model_loads(tmp_path, monkeypatch, edit, message):
    from minilm.encoder import SentenceEncoder

    monkeypatch.setattr(SentenceEncoder, "from_pretrained", lambda *a, **k: pytest.fail("model loaded"))
    with pytest.raises(RecipeError, match=message):
        load_recipe(write(tmp_path, edit(GOOD)))


def test_bad_data_row_names_file_and_line(tmp_path, monkeypatch, capsys):
    from minilm.encoder import SentenceEncoder

    monkeypatch.setattr(SentenceEncoder, "from_pretrained", lambda *a, **k: pytest.fail("model loaded"))
    path = write(tmp_path, GOOD)
    (tmp_path / "d.csv").write_text("anchor,positive\nq1,a1\nq2,\nq3,a3\n", encoding="utf-8")
    assert cli.main(["train", str(path), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "d.csv:3" in err and "empty cell" in err


def test_set_overrides_and_data_flag(tmp_path):
    path = write(tmp_path, GOOD)
    other = tmp_path / "other.csv"
    other.write_text("anchor,positive\nx,y\n", encoding="utf-8")
    recipe = load_recipe(path, ["train.batch_size=4", "loss.scale=10", 'model.base="m"'], data=str(other))
    assert recipe.train["batch_size"] == 4 and recipe.loss["scale"] == 10 and recipe.model["base"] == "m"
    assert recipe.data["train"] == str(other.resolve())
    assert checkpoints(tmp_path) == []


def test_train_schema_is_train_config():
    """The recipe [train] table is derived from TrainConfig: same keys, same defaults (batch_size required)."""
    from dataclasses import fields

    from minilm.run.recipe import REQUIRED, SCHEMA
    from minilm.train.config import TrainConfig, default_of

    assert list(SCHEMA["train"]) == [f.name for f in fields(TrainConfig)]
    for f in fields(TrainConfig):
        assert SCHEMA["train"][f.name][1] == (REQUIRED if f.name == "batch_size" else default_of(f)), f.name


# ------------------------------------------------------------------------------------------- the loss vs the recipe

UNDECLARED = """
def pull_together(anchors, positives):
    return (anchors - positives).pow(2).sum(dim=1).mean()
"""
NEEDS_CLASSES = """
from torch import nn
from minilm.losses import needs

@needs("columns", columns=2)
class Head(nn.Module):
    def __init__(self, embedding_dim: int, num_labels: int):
        super().__init__()
"""


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda t: t.replace('name = "mnrl"', 'name = "triplet"'),
            r"roles give 2 text columns, but loss 'triplet' needs 3 text columns \(anchor, positive, negative\)",
        ),
        (
            lambda t: t.replace('name = "mnrl"', 'name = "batch_hard_triplet"'),
            r"do not fit loss 'batch_hard_triplet', which needs one text column and a label \(roles text, label\)",
        ),
        (
            lambda t: t.replace('name = "mnrl"', 'name = "no_such_module_xyz:my_loss"'),
            "cannot import module 'no_such_module_xyz'",
        ),
        (
            lambda t: t.replace('name = "mnrl"', 'name = "mine.py:pull_together"'),
            r"loss 'mine.py:pull_together': loss pull_together does not declare its inputs: decorate it with",
        ),
        (lambda t: t.replace('name = "mnrl"', 'name = "mine.py:Head"'), r"needs \['num_labels'\] from the run"),
        (
            lambda t: t.replace("batch_size = 2", "batch_size = 2\nloss_lr = 1e-3"),
            r"\[train\] loss_lr is set, but loss 'mnrl' is a function without parameters",
        ),
        (lambda t: t.replace("batch_size = 2", "batch_size = 2\nloss_lr = -1.0"), r"\[train\] loss_lr must be >= 0"),
    ],
)
def test_the_loss_and_the_recipe_must_fit_before_any_model_loads(tmp_path, monkeypatch, edit, message):
    from minilm.encoder import SentenceEncoder

    monkeypatch.setattr(SentenceEncoder, "from_pretrained", lambda *a, **k: pytest.fail("model loaded"))
    (tmp_path / "mine.py").write_text(UNDECLARED + NEEDS_CLASSES, encoding="utf-8")
    with pytest.raises(RecipeError, match=message):
        load_recipe(write(tmp_path, edit(GOOD)))


def test_a_triplet_recipe_on_pair_data_fails_before_the_model_loads(tmp_path, monkeypatch, capsys):
    """Roles name a negative column the file does not have: the data is read, and refused, before any model."""
    from minilm.encoder import SentenceEncoder

    monkeypatch.setattr(SentenceEncoder, "from_pretrained", lambda *a, **k: pytest.fail("model loaded"))
    text = GOOD.replace('name = "mnrl"', 'name = "triplet"').replace(
        'positive = "positive" }', 'positive = "positive", negative = "negative" }'
    )
    assert cli.main(["train", str(write(tmp_path, text)), "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "column 'negative' not in" in err and "d.csv" in err


def test_switching_the_loss_with_set_says_which_settings_to_drop(tmp_path):
    path = write(tmp_path, GOOD.replace('name = "mnrl"', 'name = "mnrl"\nscale = 20.0\nsimilarity = "cosine"'))
    with pytest.raises(RecipeError) as refused:
        load_recipe(path, ["loss.name=triplet"])
    message = str(refused.value)
    assert "--set loss.name=triplet replaced the recipe's loss" in message
    assert "settings scale, similarity belong to the old loss" in message
    assert "loss 'triplet' takes distance, margin, report" in message
    assert """--set 'loss={name="triplet"}'""" in message
    (tmp_path / "t.csv").write_text("anchor,positive,negative\nq1,a1,n1\nq2,a2,n2\n", encoding="utf-8")
    switched = load_recipe(
        path,
        [
            'loss={name="triplet", margin=0.3}',
            'data.train="t.csv"',
            'data.roles={anchor="anchor", positive="positive", negative="negative"}',
        ],
    )
    assert switched.loss == {"name": "triplet", "margin": 0.3}
    with pytest.raises(RecipeError, match=r"\[loss\] loss 'mnrl' has no setting 'margin'"):
        load_recipe(path, ["loss.margin=0.3"])  # no rename: the plain message


TWO_TEXTS = """
from minilm.losses import mse_distill_loss, needs


@needs("teacher_embeddings", columns=2)
def distill_pair(sentence, translation, teacher_embeddings):
    return mse_distill_loss(sentence, translation, teacher_embeddings=teacher_embeddings)
"""


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace(', teacher = "t"', ""), r"missing \['teacher'\]"),
        (
            lambda t: t.replace('name = "margin_mse"', 'name = "distill_kl_div"\nteacher_temperature = 0.0'),
            "teacher_temperature",
        ),
        (lambda t: t.replace('name = "margin_mse"', 'name = "mse"'), r"unknown \['anchor', 'positive', 'negative'\]"),
        (
            lambda t: t.replace(', negative = "n"', ""),
            r"\[data\] roles give 2 text columns, but loss 'margin_mse' needs 3 or more text columns "
            r"\(anchor, positive, negative...\) and the teacher's score of each candidate .*; "
            r"the text columns named are \['anchor', 'positive'\]",
        ),
        (
            lambda t: t.replace('name = "margin_mse"', 'name = "two_texts.py:distill_pair"').replace(
                'anchor = "anchor", positive = "positive", negative = "n", teacher = "t"',
                'text = ["anchor"], teacher = "t"',
            ),
            r"\[data\] roles give 1 text columns, but loss 'two_texts.py:distill_pair' needs 2 text column\(s\) "
            r"and the teacher's embedding of each row \(roles text, teacher\); the text columns named are \['anchor'\]",
        ),
    ],
)
def test_teacher_recipes_are_checked_before_any_model_loads(tmp_path, monkeypatch, edit, message):
    from minilm.encoder import SentenceEncoder

    monkeypatch.setattr(SentenceEncoder, "from_pretrained", lambda *a, **k: pytest.fail("model loaded"))
    (tmp_path / "two_texts.py").write_text(TWO_TEXTS, encoding="utf-8")
    text = GOOD.replace(
        'roles = { anchor = "anchor", positive = "positive" }',
        'roles = { anchor = "anchor", positive = "positive", negative = "n", teacher = "t" }',
    )
    text = text.replace('name = "mnrl"', 'name = "margin_mse"')
    load_recipe(write(tmp_path, text))  # the teacher_scores kind is accepted as it is
    with pytest.raises(RecipeError, match=message):
        load_recipe(write(tmp_path, edit(text)))


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.seed=-1", r"\[train\] seed must be in \[0, 2\*\*63\), got -1"),
        ("train.seed=18446744073709551616", r"\[train\] seed must be in \[0, 2\*\*63\)"),
        ("eval.batch_size=0", r"\[eval\] batch_size must be >= 1, got 0"),
        ("eval.limit=-1", r"\[eval\] limit must be >= 0 \(0: every row\), got -1"),
        (
            "train.lr=3e38",
            r"\[train\] lr: lr 3e\+38 gives a first AdamW step of lr / \(1 - beta1\) = 3e\+39, beyond float32",
        ),
        (
            'model.base="./models/mine"',
            r"\[model\] base folder ./models/mine not found \(looked at .*/models/mine, "
            r"relative to the recipe\)",
        ),
    ],
)
def test_out_of_range_values_are_refused_by_key(tmp_path, override, message):
    text = GOOD + '[eval]\ntask = "retrieval"\ndata = "d.csv"\nroles = { anchor = "anchor", positive = "positive" }\n'
    with pytest.raises(RecipeError, match=message):
        load_recipe(write(tmp_path, text), [override])


def test_a_relative_model_base_is_the_recipes_not_the_working_directorys(tmp_path, monkeypatch):
    recipe_dir, elsewhere = tmp_path / "recipes", tmp_path / "elsewhere"
    (recipe_dir / "models" / "mine").mkdir(parents=True)
    (elsewhere / "models" / "mine").mkdir(parents=True)
    path = write(recipe_dir, GOOD.replace('base = "nowhere/at-all"', 'base = "models/mine"'))
    monkeypatch.chdir(elsewhere)
    assert load_recipe(path).model["base"] == str(recipe_dir / "models" / "mine")
    assert load_recipe(path, ['model.base="nowhere/at-all"']).model["base"] == "nowhere/at-all"  # a hub id
    assert load_recipe(path, [f'model.base="{elsewhere}"']).model["base"] == str(elsewhere)


EVAL = (
    GOOD
    + """[eval]
task = "triplet"
data = "t.csv"
roles = { anchor = "anchor", positive = "positive", negative = "negative" }
"""
)


@pytest.mark.parametrize(
    "train, message",
    [
        (
            "metric_for_best = 'spearman'",
            r"\[train\] metric_for_best must be a metric of the \[eval\] task 'triplet': "
            r"one of \['cosine_accuracy'\], got 'spearman'",
        ),
        ("load_best_at_end = true\neval_steps = 1", r"\[train\] load_best_at_end needs metric_for_best"),
        (
            "metric_for_best = 'cosine_accuracy'\nearly_stopping_patience = 2",
            r"\[train\] early_stopping_patience needs eval_steps > 0",
        ),
        ("metric_for_best = 'cosine_accuracy'\nearly_stopping_patience = -1", r"early_stopping_patience must be >= 0"),
        ("greater_is_better = 1", r"\[train\] greater_is_better must be bool, got int"),
        (
            "report_to = ['jsonl', 'wandb']",
            r"\[train\] report_to: unknown \['wandb'\]; known: \['jsonl', 'tensorboard'\]",
        ),
        ("report_to = ['tensorboard']", r"\[train\] report_to must include \"jsonl\""),
        ("report_to = 'jsonl'", r"\[train\] report_to must be list, got str"),
    ],
)
def test_best_model_settings_are_checked_before_any_model_loads(tmp_path, monkeypatch, train, message):
    from minilm.encoder import SentenceEncoder

    monkeypatch.setattr(SentenceEncoder, "from_pretrained", lambda *a, **k: pytest.fail("model loaded"))
    (tmp_path / "t.csv").write_text("anchor,positive,negative\nq,a,n\n", encoding="utf-8")
    with pytest.raises(RecipeError, match=message):
        load_recipe(write(tmp_path, EVAL.replace("batch_size = 2", "batch_size = 2\n" + train)))


def test_metric_for_best_needs_an_eval_section_and_quick_runs_switch_it_off(tmp_path):
    with pytest.raises(RecipeError, match=r"metric_for_best = 'cosine_accuracy' needs an \[eval\] section"):
        load_recipe(
            write(tmp_path, GOOD.replace("batch_size = 2", "batch_size = 2\nmetric_for_best = 'cosine_accuracy'"))
        )
    (tmp_path / "t.csv").write_text("anchor,positive,negative\nq,a,n\n", encoding="utf-8")
    best = "metric_for_best = 'cosine_accuracy'\neval_steps = 5\nload_best_at_end = true\nearly_stopping_patience = 3"
    recipe = make_quick(load_recipe(write(tmp_path, EVAL.replace("batch_size = 2", "batch_size = 2\n" + best))))
    assert (recipe.train["eval_steps"], recipe.train["load_best_at_end"], recipe.train["early_stopping_patience"]) == (
        0,
        False,
        0,
    )
