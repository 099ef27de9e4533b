"""User code is the user's (issue 20): whatever a loss from the user's file does wrong in a training step (raises,
calls sys.exit, returns a detached loss, changes its inputs in place, reports a statistic that is not one number)
ends `minilm train` with exit status 2 and one line naming file.py:function, the step and the error; never exit 0,
never "internal error". The trainer wraps the step once; no branch names a loss."""

import re

import pytest
from helpers import save_tiny_base, write_pairs

from minilm import cli

MODES = """
import sys

import torch
from minilm.losses import needs


def _divide(x):
    return x / 0 if isinstance(x, int) else x


@needs("columns", columns=2)
def step_loss(anchor, positive, mode: str = "ok"):
    training = torch.is_grad_enabled() and anchor.requires_grad  # the check before any model loads passes
    loss = (anchor - positive).pow(2).sum(dim=1).mean()
    if training and mode == "raise":
        _divide(1)
    if training and mode == "exit":
        sys.exit(0)
    if training and mode == "detached":
        return loss.detach()
    if training and mode == "inplace":
        anchor.mul_(2)
    if training and mode == "mutate":
        with torch.no_grad():  # unseen by autograd until the backward, which would fail outside the loss
            anchor.mul_(2)
    if training and mode == "stat":
        return loss, {"row_norms": anchor.norm(dim=1)}
    return loss
"""

RECIPE = """name = "user-code"
[model]
base = "{base}"
[data]
train = "pairs.csv"
roles = {{ anchor = "anchor", positive = "positive" }}
[loss]
name = "modes.py:step_loss"
[train]
batch_size = 4
max_steps = 3
"""


@pytest.fixture(scope="module")
def recipe(tmp_path_factory, minilm_dir):
    folder = tmp_path_factory.mktemp("user-code")
    save_tiny_base(folder, minilm_dir)
    write_pairs(folder / "pairs.csv", rows=16)
    (folder / "modes.py").write_text(MODES)
    (folder / "r.toml").write_text(RECIPE.format(base=folder / "base"))
    return folder / "r.toml"


@pytest.mark.parametrize(
    "mode, said",
    [
        ("raise", r"ZeroDivisionError: division by zero \(at modes.py line 9, in _divide\)"),
        ("exit", r"it called sys.exit\(0\) \(at modes.py line 19, in step_loss\)"),
        ("detached", r"it returned a loss that does not require grad: it is detached from the embeddings"),
        (
            "inplace",
            r"RuntimeError: Output 0 of SplitWithSizes is a view and is being modified inplace.* \(at modes.py "
            r"line 23, in step_loss\)",
        ),
        ("mutate", r"it changed the embeddings in place \(an in-place operation such as x.mul_\(2\)"),
        (
            "stat",
            r"loss statistic 'row_norms' must be one number \(a float or a 0-d tensor\), got a tensor of shape "
            r"\(4,\)",
        ),
    ],
)
def test_a_users_loss_failing_in_a_step_ends_the_run_naming_it(recipe, tmp_path, capfd, mode, said):
    code = cli.main(["train", str(recipe), "--output", str(tmp_path / "out"), "--set", f'loss.mode="{mode}"'])
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert len(err) == 1 and "internal error" not in err[0], err
    assert err[0].startswith("minilm train: error: loss modes.py:step_loss failed at step 1 (epoch 0): "), err[0]
    assert re.search(said, err[0]), err[0]
    assert not (tmp_path / "out" / "final").exists()


@pytest.mark.slow
def test_the_same_loss_trains_when_it_behaves(recipe, tmp_path):
    assert cli.main(["train", str(recipe), "--output", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "final" / "model.safetensors").is_file()


def test_a_bad_world_size_is_named(recipe, tmp_path, capfd, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "abc")
    assert cli.main(["train", str(recipe), "--output", str(tmp_path / "out")]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("minilm train: error: "), err  # named with the recipe's [train] device
    assert err[0].endswith(
        "environment variable WORLD_SIZE='abc' is not a non-negative integer "
        "(torchrun sets it; unset it to train in one process)"
    ), err


@pytest.mark.parametrize(
    "mode, said",
    [
        ("mutate", r"it changed the embeddings in place"),
        ("exit", r"it called sys.exit\(0\) \(at modes.py line 19, in step_loss\)"),
    ],
)
def test_under_the_gradient_cache_too(recipe, tmp_path, capfd, mode, said):
    code = cli.main(
        [
            "train",
            str(recipe),
            "--output",
            str(tmp_path / "out"),
            "--set",
            f'loss.mode="{mode}"',
            "--set",
            "train.mini_batch_size=2",
        ]
    )
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and re.search(said, err[0]), err
    assert err[0].startswith("minilm train: error: loss modes.py:step_loss failed at step 1 (epoch 0): "), err[0]
