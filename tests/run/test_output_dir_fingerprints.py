"""Results tied to the code that made them (issue 19): run.json holds the sha256 of the user's loss file and of the
modules beside it that it imports; `--resume` after either changed is refused naming the file, and `--overwrite`
starts the run over with the code as it is now."""

import json

import pytest
from helpers import killed_after_step, save_tiny_base, write_pairs

from minilm import cli
from minilm.run.build import run_recipe
from minilm.run.output_dir import OutputDirError
from minilm.run.recipe import load_recipe

LOSS = """
from minilm.losses import needs
from weights import WEIGHT


@needs("columns", columns=2)
def weighted(anchor, positive):
    return WEIGHT * (anchor - positive).pow(2).sum(dim=1).mean()
"""

RECIPE = """name = "fingerprints"
[model]
base = "{base}"
[data]
train = "pairs.csv"
roles = {{ anchor = "anchor", positive = "positive" }}
[loss]
name = "losses/weighted.py:weighted"
[train]
batch_size = 4
max_steps = 4
save_steps = 2
"""


@pytest.fixture()
def recipe(tmp_path, minilm_dir):
    save_tiny_base(tmp_path, minilm_dir)
    write_pairs(tmp_path / "pairs.csv", rows=16)
    (tmp_path / "losses").mkdir()
    (tmp_path / "losses" / "weighted.py").write_text(LOSS)
    (tmp_path / "losses" / "weights.py").write_text("WEIGHT = 1.0\n")
    (tmp_path / "r.toml").write_text(RECIPE.format(base=tmp_path / "base"))
    return tmp_path / "r.toml"


def killed_run(monkeypatch, recipe, out):
    killed_after_step(monkeypatch, 3, lambda: run_recipe(load_recipe(recipe), out, log=lambda _: None))


@pytest.mark.slow
@pytest.mark.parametrize("edited", ["weighted.py", "weights.py"])
def test_resume_after_the_loss_code_changed_is_refused_naming_the_file(recipe, tmp_path, monkeypatch, edited):
    out = tmp_path / "out"
    killed_run(monkeypatch, recipe, out)
    record = json.loads((out / "run.json").read_text())
    assert sorted(record["code_sha256"]) == ["losses/weighted.py", "losses/weights.py"]
    path = tmp_path / "losses" / edited
    original = path.read_text()
    path.write_text(original.replace("1.0", "2.0") if edited == "weights.py" else original + "\n# tuned\n")
    with pytest.raises(
        OutputDirError,
        match=rf"--resume: {out} holds another run \(run.json differs: loss code "
        rf"losses/{edited}: changed \(sha256 [0-9a-f]{{12}}\.\.\. -> "
        rf"[0-9a-f]{{12}}\.\.\.\)\); .* --overwrite \(starts the run over\)",
    ):
        run_recipe(load_recipe(recipe), out, resume=True, log=lambda _: None)
    path.write_text(original)  # the code the run was recorded with: the resume goes on
    run_recipe(load_recipe(recipe), out, resume=True, log=lambda _: None)
    assert (out / "final" / "model.safetensors").is_file()


@pytest.mark.slow
def test_the_command_line_says_it_in_one_line_and_overwrite_starts_over(recipe, tmp_path, monkeypatch, capfd):
    out = tmp_path / "out"
    killed_run(monkeypatch, recipe, out)
    (tmp_path / "losses" / "weights.py").write_text("WEIGHT = 3.0\n")
    capfd.readouterr()  # the killed run's progress lines
    assert cli.main(["train", str(recipe), "--output", str(out), "--resume"]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "loss code losses/weights.py: changed" in err[0], err
    assert cli.main(["train", str(recipe), "--output", str(out), "--overwrite"]) == 0
    record = json.loads((out / "run.json").read_text())
    assert record["code_sha256"]["losses/weights.py"] != "" and (out / "final").is_dir()
