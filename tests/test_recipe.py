"""Every shipped recipe runs end to end in quick mode; malformed recipes are refused before any model loads."""

import json
from pathlib import Path

import pytest

from minilm import cli
from minilm.training.recipe import RecipeError, load_recipe
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
    from minilm.training.config import TrainConfig

    assert list(SCHEMA["train"]) == [f.name for f in fields(TrainConfig)]
    for f in fields(TrainConfig):
        assert SCHEMA["train"][f.name][1] == (REQUIRED if f.name == "batch_size" else f.default), f.name


@pytest.mark.parametrize("override, message", [
    ("train.seed=-1", r"\[train\] seed must be in \[0, 2\*\*63\), got -1"),
    ("train.seed=18446744073709551616", r"\[train\] seed must be in \[0, 2\*\*63\)"),
    ("eval.batch_size=0", r"\[eval\] batch_size must be >= 1, got 0"),
    ("eval.limit=-1", r"\[eval\] limit must be >= 0 \(0: every row\), got -1"),
    ('model.base="./models/mine"', r"\[model\] base folder ./models/mine not found \(looked at .*/models/mine, "
                                   r"relative to the recipe\)"),
])
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
