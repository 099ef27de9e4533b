"""Every shipped recipe runs end to end in quick mode; malformed recipes are refused before any model loads."""

import json
from pathlib import Path

import pytest

from minilm import cli
from minilm.training.recipe import RecipeError, load_recipe, make_quick
from minilm.training.trainer import checkpoints

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
OFFLINE_BASE = {"product_categories.toml"}  # its base (multi-qa-MiniLM-L6-cos-v1) lives on the hub only


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


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.replace('name = "mnrl"', 'name = "contrastive_magic"'), "unknown loss name 'contrastive_magic'"),
    (lambda t: t.replace("batch_size = 2", "epochs = 1"), r"missing key \[train\] batch_size"),
    (lambda t: t.replace("batch_size = 2", 'batch_size = "two"'), r"\[train\] batch_size must be int, got str"),
    (lambda t: t.replace("batch_size = 2", "batch_size = 2\nlearning_rate = 1e-4"), r"unknown key \[train\] learning_rate"),
    (lambda t: t.replace('name = "mnrl"', 'name = "mnrl"\nscale = -1.0'), "scale"),
    (lambda t: t.replace('name = "mnrl"', 'name = "mnrl"\nmargin = 1.0'), "has no setting 'margin'"),
    (lambda t: t.replace("[model]", "[modle]"), r"unknown section \[modle\]"),
    (lambda t: t.replace('train = "d.csv"', 'train = "missing.csv"'), r"\[data\] train file missing.csv not found"),
    (lambda t: t.replace("batch_size = 2", "batch_size = 2\nmini_batch_size = -1"), "mini_batch_size must be >= 0"),
    (lambda t: t.replace("batch_size = 2", "batch_size = 2\ncompile = 1"), r"\[train\] compile must be bool, got int"),
])
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

    from minilm.training.recipe import REQUIRED, SCHEMA
    from minilm.training.config import TrainConfig, default_of

    assert list(SCHEMA["train"]) == [f.name for f in fields(TrainConfig)]
    for f in fields(TrainConfig):
        assert SCHEMA["train"][f.name][1] == (REQUIRED if f.name == "batch_size" else default_of(f)), f.name


EVAL = GOOD + """[eval]
task = "triplet"
data = "t.csv"
roles = { anchor = "anchor", positive = "positive", negative = "negative" }
"""


@pytest.mark.parametrize("train, message", [
    ("metric_for_best = 'spearman'", r"\[train\] metric_for_best must be a metric of the \[eval\] task 'triplet': "
                                     r"one of \['cosine_accuracy'\], got 'spearman'"),
    ("load_best_at_end = true\neval_steps = 1", r"\[train\] load_best_at_end needs metric_for_best"),
    ("metric_for_best = 'cosine_accuracy'\nearly_stopping_patience = 2",
     r"\[train\] early_stopping_patience needs eval_steps > 0"),
    ("metric_for_best = 'cosine_accuracy'\nearly_stopping_patience = -1", r"early_stopping_patience must be >= 0"),
    ("greater_is_better = 1", r"\[train\] greater_is_better must be bool, got int"),
    ("report_to = ['jsonl', 'wandb']", r"\[train\] report_to: unknown \['wandb'\]; known: \['jsonl', 'tensorboard'\]"),
    ("report_to = ['tensorboard']", r"\[train\] report_to must include \"jsonl\""),
    ("report_to = 'jsonl'", r"\[train\] report_to must be list, got str"),
])
def test_best_model_settings_are_checked_before_any_model_loads(tmp_path, monkeypatch, train, message):
    from minilm.encoder import SentenceEncoder

    monkeypatch.setattr(SentenceEncoder, "from_pretrained", lambda *a, **k: pytest.fail("model loaded"))
    (tmp_path / "t.csv").write_text("anchor,positive,negative\nq,a,n\n", encoding="utf-8")
    with pytest.raises(RecipeError, match=message):
        load_recipe(write(tmp_path, EVAL.replace("batch_size = 2", "batch_size = 2\n" + train)))


def test_metric_for_best_needs_an_eval_section_and_quick_runs_switch_it_off(tmp_path):
    with pytest.raises(RecipeError, match=r"metric_for_best = 'cosine_accuracy' needs an \[eval\] section"):
        load_recipe(write(tmp_path, GOOD.replace("batch_size = 2", "batch_size = 2\nmetric_for_best = "
                                                                   "'cosine_accuracy'")))
    (tmp_path / "t.csv").write_text("anchor,positive,negative\nq,a,n\n", encoding="utf-8")
    best = "metric_for_best = 'cosine_accuracy'\neval_steps = 5\nload_best_at_end = true\nearly_stopping_patience = 3"
    recipe = make_quick(load_recipe(write(tmp_path, EVAL.replace("batch_size = 2", "batch_size = 2\n" + best))))
    assert (recipe.train["eval_steps"], recipe.train["load_best_at_end"], recipe.train["early_stopping_patience"]) \
        == (0, False, 0)
