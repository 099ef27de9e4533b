"""Finite-only covers everything a run saves (issue 20): a loss module's parameter, an extension's state and the
optimiser's moments that turn non-finite stop the run at that step, naming the tensor; nothing non-finite reaches
final/ (final/loss.safetensors included) or a checkpoint, and the last checkpoint stays the last good one."""

import pytest
import torch
from helpers import save_tiny_base, write_pairs

from minilm.run.build import run_recipe
from minilm.run.recipe import load_recipe
from minilm.train import optim
from minilm.train.checkpoints import checkpoints, read_state
from minilm.train.trainer import TrainingDiverged

LOSSES = '''
import torch
from torch import nn
from minilm.losses import needs
from minilm.train.extensions import Extension


@needs("columns", columns=2)
class Shifted(nn.Module):
    """A loss with a learnt offset; a far too high loss_lr (its weight decay multiplies it by about -lr * decay each
    step) drives it past float32's range at step 2, while the loss and its gradient stay finite."""
    part_of_model = True

    def __init__(self):
        super().__init__()
        self.offset = nn.Parameter(torch.ones(1))

    def forward(self, anchor, positive):
        return (anchor - positive).pow(2).sum(dim=1).mean() + 1e-3 * self.offset.sum()


class LastMean(Extension):
    """An extension whose state (the last batch's mean embedding) turns NaN after step 2."""
    name = "last"

    def __init__(self):
        self.mean, self.steps = torch.zeros(1), 0

    @classmethod
    def build(cls, run):
        return cls()

    def after_step(self, result):
        self.steps += 1
        self.mean = result.embeddings[0].mean(0) * (float("nan") if self.steps >= 2 else 1.0)

    def state_dict(self):
        return {"mean": self.mean}

    def load_state_dict(self, state):
        self.mean = state.get("mean", self.mean)


@needs("columns", columns=2, extensions=(LastMean,))
def with_state(anchor, positive):
    return (anchor - positive).pow(2).sum(dim=1).mean()
'''

RECIPE = """name = "finite"
[model]
base = "{base}"
[data]
train = "pairs.csv"
roles = {{ anchor = "anchor", positive = "positive" }}
[loss]
name = "{loss}"
[train]
batch_size = 4
max_steps = 4
save_steps = 1
keep_checkpoints = 4
{train}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory, minilm_dir):
    folder = tmp_path_factory.mktemp("finite")
    save_tiny_base(folder, minilm_dir)
    write_pairs(folder / "pairs.csv", rows=16)
    (folder / "losses.py").write_text(LOSSES)
    return folder


def train(folder, out, loss, train=""):
    path = folder / f"{out.name}.toml"
    path.write_text(RECIPE.format(base=folder / "base", loss=loss, train=train))
    return run_recipe(load_recipe(path), out, log=lambda _: None)


def all_finite(state) -> bool:
    if isinstance(state, torch.Tensor):
        return not state.is_floating_point() or bool(torch.isfinite(state).all())
    if isinstance(state, dict):
        return all(all_finite(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return all(all_finite(v) for v in state)
    return True


def test_a_loss_parameter_turning_infinite_is_never_saved(folder, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(
        TrainingDiverged,
        match=r"step 2 \(epoch 0, lr .*\) made weight loss.offset non-finite .*"
        r"last good checkpoint: .*step-0000001",
    ):
        train(folder, out, "losses.py:Shifted", "loss_lr = 1e37\nweight_decay = 0.01")
    assert not (out / "final").exists()  # no final/loss.safetensors either
    assert [p.name for p in checkpoints(out)] == ["step-0000001"]
    state = read_state(checkpoints(out)[-1])
    assert bool(torch.isfinite(state["loss"]["offset"]).all()) and all_finite(state)


def test_an_extension_state_turning_nan_is_never_saved(folder, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(TrainingDiverged, match=r"step 2 .* made weight last.mean non-finite"):
        train(folder, out, "losses.py:with_state")
    assert not (out / "final").exists()
    assert [p.name for p in checkpoints(out)] == ["step-0000001"]
    assert all_finite(read_state(checkpoints(out)[-1]))


def test_an_optimiser_moment_turning_infinite_is_never_saved(folder, tmp_path, monkeypatch):
    """Finite gradients keep the moments finite in float32 (the norm overflows first); the check is the guard for
    whatever else might (reduced precision, a fused kernel): simulated by an update that writes inf at step 2."""
    original, calls = optim.AdamW.step, []

    def poisoned(self):
        original(self)
        calls.append(1)
        if len(calls) == 2:
            next(iter(self.state.values()))["exp_avg_sq"].view(-1)[0] = float("inf")

    monkeypatch.setattr(optim.AdamW, "step", poisoned)
    out = tmp_path / "out"
    with pytest.raises(
        TrainingDiverged,
        match=r"step 2 .* made optimiser state optimizer\.bert\.\S+\.exp_avg_sq "
        r"non-finite",
    ):
        train(folder, out, "mnrl")
    assert [p.name for p in checkpoints(out)] == ["step-0000001"] and not (out / "final").exists()
    assert all_finite(read_state(checkpoints(out)[-1]))
