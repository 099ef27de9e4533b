"""A loss's learned parameters (minilm/train/extensions.py LossParameters, minilm/train/trainer.py): saved in final/
whatever they are (a temperature as much as a classifier head; ``part_of_model`` recorded in loss.json), and logged as
they are after each update (the last logged value is the saved one), through the generic ``Extension.statistics``
hook; the statistics also reach TensorBoard as ``stats/<name>`` (minilm/train/reporting.py)."""

import json
import math
from pathlib import Path

import pytest
import torch
from helpers import write_tiny_recipe
from safetensors.torch import load_file

from minilm.run.build import run_recipe
from minilm.run.recipe import load_recipe

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "losses"
INFONCE = f"{EXAMPLES / 'learnable_temperature.py'}:LearnableTemperatureInfoNCE"

# a loss with a 0-d parameter and no statistics() method: the trainer reports the parameter itself, by name
SHIFTED = """
import torch
from torch import nn
from minilm.losses import multiple_negatives_ranking_loss, needs


@needs("columns", columns=2, in_batch_negatives=True)
class Shifted(nn.Module):
    def __init__(self):
        super().__init__()
        self.shift = nn.Parameter(torch.tensor(0.5))

    def forward(self, anchors, positives):
        return multiple_negatives_ranking_loss(anchors, positives) * self.shift, {"shift_used": self.shift.detach()}
"""


def logged(output: Path) -> list[dict]:
    return [json.loads(line) for line in (output / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def temperature_run(tmp_path_factory, tiny_base):
    tmp_path = tmp_path_factory.mktemp("temperature")
    path = write_tiny_recipe(tmp_path, tiny_base, steps=4, train="")
    overrides = [
        f'loss={{name="{INFONCE}", init_temperature=0.1}}',
        "train.loss_lr=1e-2",
        "train.report_to=['jsonl', 'tensorboard']",
    ]
    run_recipe(load_recipe(path, overrides), tmp_path / "out", log=lambda _: None)
    return tmp_path / "out"


def test_a_learned_temperature_is_saved_in_final_though_not_part_of_the_model(temperature_run):
    saved = load_file(temperature_run / "final" / "loss.safetensors")
    assert set(saved) == {"log_temperature"} and saved["log_temperature"].item() != pytest.approx(math.log(0.1))
    about = json.loads((temperature_run / "final" / "loss.json").read_text())
    assert about["class"].endswith("LearnableTemperatureInfoNCE") and about["part_of_model"] is False


def test_the_logged_temperature_is_the_one_after_each_update_and_the_last_is_the_saved_one(temperature_run):
    steps = [r for r in logged(temperature_run) if "loss" in r]
    temperatures = [r["stats"]["temperature"] for r in steps]
    saved = load_file(temperature_run / "final" / "loss.safetensors")["log_temperature"]
    assert temperatures[-1] == saved.clamp(math.log(0.01), 0.0).exp().item()  # the same float32, exactly
    assert temperatures[0] != pytest.approx(0.1, rel=1e-6)  # after the first update, not the starting value
    assert {"positive_similarity", "hardest_negative_similarity", "accuracy"} <= set(steps[0]["stats"])


def test_statistics_go_to_tensorboard_in_their_own_section(temperature_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(temperature_run / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {
        "stats/temperature",
        "stats/accuracy",
        "stats/positive_similarity",
        "stats/hardest_negative_similarity",
        "train/loss",
        "train/grad_norm",
    } <= tags
    assert not any(tag.startswith("train/stats") for tag in tags)
    steps = [r for r in logged(temperature_run) if "loss" in r]
    for name in ("temperature", "accuracy"):
        found = events.Scalars(f"stats/{name}")
        assert [e.step for e in found] == [r["step"] for r in steps] == [1, 2, 3, 4]
        assert [e.value for e in found] == pytest.approx([r["stats"][name] for r in steps], rel=1e-6)  # float32


@pytest.mark.slow
def test_a_parameter_without_a_statistics_method_is_logged_by_name_after_each_update(tmp_path, tiny_base):
    (tmp_path / "shifted.py").write_text(SHIFTED, encoding="utf-8")
    path = write_tiny_recipe(tmp_path, tiny_base, steps=3, train="loss_lr = 1e-1")
    run_recipe(load_recipe(path, ['loss={name="shifted.py:Shifted"}']), tmp_path / "out", log=lambda _: None)
    steps = [r for r in logged(tmp_path / "out") if "loss" in r]
    saved = load_file(tmp_path / "out" / "final" / "loss.safetensors")["shift"].item()
    assert steps[-1]["stats"]["shift"] == saved  # after the last update: what final/ holds
    assert steps[0]["stats"]["shift_used"] == 0.5 and steps[0]["stats"]["shift"] != 0.5  # before / after update 1
    assert [r["stats"]["shift_used"] for r in steps[1:]] == [r["stats"]["shift"] for r in steps[:-1]]
    assert json.loads((tmp_path / "out" / "final" / "loss.json").read_text())["part_of_model"] is False


def test_an_extension_reports_after_the_update_over_the_losss_own_statistic():
    from minilm.train.extensions import Extension, LossParameters

    assert Extension().statistics() == {}

    class Reporting(torch.nn.Module):
        part_of_model = True

        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(2, 2))  # not 0-d: not reported by itself
            self.log_scale = torch.nn.Parameter(torch.tensor(0.0))

        def statistics(self):
            return {"scale": self.log_scale.exp(), "note": float("nan")}

    assert LossParameters(Reporting()).statistics() == {"scale": 1.0, "note": None}  # NaN: null, as a loss's
    bare = torch.nn.Linear(2, 2)
    assert LossParameters(bare).statistics() == {}  # nothing 0-d, no method: nothing to report
    bad = Reporting()
    bad.statistics = lambda: {"scale": "high"}
    with pytest.raises(TypeError, match="loss statistic 'scale' must be a number, got str"):
        LossParameters(bad).statistics()
