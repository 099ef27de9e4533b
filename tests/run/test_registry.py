"""minilm.run.registry: naming a loss in a recipe (registry name or import path), its declared inputs, and
the settings check that runs before any model loads."""

import pytest
import torch

from minilm import losses as L
from minilm.losses.inputs import KINDS, Needs, needs, needs_of
from minilm.run.registry import LOSSES, check_loss_kwargs, make_loss, resolve_loss


def _x(n=4, d=3):
    return torch.randn(n, d, dtype=torch.float64)


def test_every_registered_loss_declares_its_inputs():
    kinds = {name: needs_of(loss).kind for name, loss in LOSSES.items()}
    assert set(kinds.values()) == set(KINDS)  # every input kind has a registered loss
    assert needs_of(LOSSES["mnrl"]) == Needs("columns", 2, more_columns=True, in_batch_negatives=True)
    assert needs_of(LOSSES["triplet"]) == Needs("columns", 3)
    required = {"matryoshka_2d": {"dims": [8, 4]}}  # a setting without a default (as in sentence-transformers)
    for name in LOSSES:
        check_loss_kwargs(name, required.get(name, {}))  # dry run on dummy inputs of the declared kind, every loss
    with pytest.raises(ValueError, match="matryoshka_2d needs dims, the embedding widths to train"):
        check_loss_kwargs("matryoshka_2d", {})


def test_kwargs_check_names_the_bad_key():
    check_loss_kwargs("triplet", {"distance": "cosine", "margin": 0.3})
    check_loss_kwargs("mnrl", {"scale": 30, "symmetric": True, "matryoshka_dims": [16, 8]})
    for name, kwargs, bad in [
        ("triplet", {"distance": "cosine", "margn": 0.3}, "margn"),
        ("triplet", {"distance": "cosin"}, "distance"),
        ("cosent", {"similarity": "dot"}, "similarity"),
        ("mnrl", {"scale": -1.0}, "scale"),
        ("batch_hard_triplet", {"labels": [1]}, "labels"),  # data, not a setting
        ("batch_all_triplet", {"soft_margin": 1}, "soft_margin"),
        ("mnrl", {"matryoshka_dims": [0]}, "dims"),
        ("mnrl", {"matryoshka_weights": [1.0]}, "matryoshka_dims"),
        ("triplet_loss", {}, "triplet_loss"),
    ]:
        with pytest.raises(ValueError, match=bad):
            check_loss_kwargs(name, kwargs)


def test_a_guide_loss_takes_the_guide_key_and_its_dry_run_gets_guide_embeddings():
    assert needs_of(LOSSES["gist"]).guide and not needs_of(LOSSES["mnrl"]).guide
    check_loss_kwargs(
        "gist", {"guide": "sentence-transformers/all-MiniLM-L6-v2", "margin": 0.1, "matryoshka_dims": [8, 4]}
    )
    for kwargs, bad in [
        ({"guide": 3}, r"guide must name a model \(a folder or a hub id\), got 3"),
        ({"guide": ""}, "guide must name a model"),
        ({"margin_strategy": "relativ"}, "margin_strategy"),
    ]:
        with pytest.raises(ValueError, match=bad):
            check_loss_kwargs("gist", kwargs)
    with pytest.raises(ValueError, match="loss 'mnrl' has no setting 'guide'"):
        check_loss_kwargs("mnrl", {"guide": "some/model"})
    a, p, g = _x(), _x(), [_x(d=5), _x(d=5)]
    loss = make_loss("gist", {"guide": "some/model", "temperature": 0.05})  # the name is the trainer's, not the loss's
    assert loss(a, p, guide=g).item() == pytest.approx(L.gist_embed_loss(a, p, guide=g, temperature=0.05).item())


def test_a_layer_loss_consumes_what_its_inner_loss_does_and_refuses_what_it_cannot_wrap():
    import random

    from minilm.run.registry import loss_needs

    assert needs_of(LOSSES["adaptive_layer"]) == Needs(
        "columns", 2, more_columns=True, in_batch_negatives=True, layers=True
    )  # the default inner loss is MNRL
    assert loss_needs("adaptive_layer", settings={"loss": "batch_hard_triplet"}) == Needs("labels", 1, layers=True)
    assert loss_needs("matryoshka_2d", settings={"loss": "cosent"}) == Needs("scores", 2, layers=True)
    assert loss_needs("adaptive_layer", settings={"loss": "gist"}).guide  # the inner loss's guide is asked for
    check_loss_kwargs("adaptive_layer", {"loss": "gist", "guide": "some/model", "loss_settings": {"margin": 0.1}})
    check_loss_kwargs("adaptive_layer", {"loss": "mnrl", "loss_settings": {"matryoshka_dims": [16, 8]}})
    for name, kwargs, bad in [
        ("adaptive_layer", {"loss": "softmax"}, "inner loss 'softmax' has parameters"),
        ("adaptive_layer", {"loss": "matryoshka_2d"}, "must not itself be a layer loss"),
        ("adaptive_layer", {"loss": 3}, "loss must name the inner loss .* got 3"),
        ("adaptive_layer", {"loss": "mnrl", "loss_settings": 3}, "loss_settings must be a table"),
        ("adaptive_layer", {"loss_settings": {"scale": 1.0}}, "loss_settings is set but loss .the inner loss. is not"),
        ("adaptive_layer", {"loss": "mnrl", "loss_settings": {"scal": 1.0}}, "loss 'mnrl' has no setting 'scal'"),
        ("adaptive_layer", {"matryoshka_dims": [4]}, "matryoshka_dims cannot wrap a layer loss.*use matryoshka_2d"),
        ("matryoshka_2d", {"dims": [4], "gor_mean_weight": 1.0}, "gor_mean_weight cannot wrap a layer loss"),
        ("adaptive_layer", {"n_layers_per_step": 1.5}, "n_layers_per_step must be an int"),
        ("adaptive_layer", {"layer_weighting": "cubic"}, "layer_weighting"),
        ("adaptive_layer", {"loss": "nope"}, "unknown loss name 'nope'"),
    ]:
        with pytest.raises(ValueError, match=bad):
            check_loss_kwargs(name, kwargs)
    final, earlier = [_x(), _x()], {0: [_x(), _x()], 1: [_x(), _x()]}
    loss = make_loss("adaptive_layer", {"loss": "mnrl", "loss_settings": {"scale": 5.0}})
    assert needs_of(loss).layers
    ours = loss(*final, layers=earlier, layer_rng=random.Random(3))
    chosen = L.choose_layers(3, 1, random.Random(3))
    reference = L.adaptive_layer_loss(
        lambda a, p: L.multiple_negatives_ranking_loss(a, p, scale=5.0), final, {i: earlier[i] for i in chosen}
    )
    assert ours.item() == pytest.approx(reference.item(), rel=1e-12)
    for layers, bad in [({0: final, 2: final}, r"every earlier layer 0 .* got \[0, 2\]"), ([final], "got list")]:
        with pytest.raises(ValueError, match=bad):
            loss(*final, layers=layers, layer_rng=random.Random(3))
    with pytest.raises(ValueError, match="layer_rng is None, but n_layers_per_step draws layers"):
        loss(*final, layers=earlier, layer_rng=None)


def test_make_loss_binds_settings():
    a, p, n = _x(), _x(), _x()
    loss = make_loss("triplet", {"distance": "cosine", "margin": 0.3})
    assert loss(a, p, n).item() == pytest.approx(L.triplet_loss(a, p, n, distance="cosine", margin=0.3).item())
    loss = make_loss("mnrl", {"matryoshka_dims": [3, 2]})
    expected = L.matryoshka(L.multiple_negatives_ranking_loss, (3, 2))(a, p)
    assert loss(a, p).item() == pytest.approx(expected.item())
    assert needs_of(loss) == needs_of(L.multiple_negatives_ranking_loss)  # declarations survive the wrappers


USER_LOSS = """
from minilm.losses import needs, multiple_negatives_ranking_loss

@needs("columns", columns=2, in_batch_negatives=True)
def hotter_mnrl(anchors, positives, temperature: float = 0.1):
    return multiple_negatives_ranking_loss(anchors, positives, scale=1.0 / temperature)

def undeclared(anchors, positives):
    return (anchors - positives).pow(2).mean()
"""


def test_a_loss_from_a_file_or_a_module(tmp_path, monkeypatch):
    (tmp_path / "user_losses.py").write_text(USER_LOSS, encoding="utf-8")
    by_file = resolve_loss("user_losses.py:hotter_mnrl", base_dir=tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    by_module = resolve_loss("user_losses:hotter_mnrl")
    assert needs_of(by_file) == needs_of(by_module) == Needs("columns", 2, in_batch_negatives=True)
    a, p = _x(), _x()
    loss = make_loss("user_losses.py:hotter_mnrl", {"temperature": 0.05}, base_dir=tmp_path)
    assert loss(a, p).item() == pytest.approx(L.multiple_negatives_ranking_loss(a, p, scale=20.0).item())


@pytest.mark.parametrize(
    "name, message",
    [
        ("user_losses.py:undeclared", "does not declare its inputs"),
        ("user_losses.py:missing", "has no function 'missing'"),
        ("nowhere.py:f", "nowhere.py not found"),
        ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
        ("mrnl", "unknown loss name 'mrnl'"),
    ],
)
def test_bad_loss_names_are_refused_by_name(tmp_path, name, message):
    (tmp_path / "user_losses.py").write_text(USER_LOSS, encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        resolve_loss(name, base_dir=tmp_path)


def test_declarations_are_checked():
    with pytest.raises(ValueError, match="kind must be one of"):
        needs("pairs")
    with pytest.raises(ValueError, match="exactly 1 text column"):
        Needs("labels", 2)
    with pytest.raises(ValueError, match="at least 2 text columns"):
        Needs("columns", 1)


MODULE_LOSS = """
import torch
from torch import nn
from minilm.losses import multiple_negatives_ranking_loss, needs

@needs("columns", columns=2, in_batch_negatives=True)
class LearnedScale(nn.Module):
    def __init__(self, embedding_dim: int, init_scale: float = 20.0):
        super().__init__()
        self.width = embedding_dim
        self.log_scale = nn.Parameter(torch.tensor(float(init_scale)).log())

    def forward(self, anchors, positives):  # plumbing only: the scale is not trained through here
        scale = self.log_scale.exp()
        return multiple_negatives_ranking_loss(anchors, positives, scale=float(scale.detach())), {"scale": scale}
"""


def test_a_loss_class_is_built_with_its_settings_and_the_run_context(tmp_path):
    (tmp_path / "module_loss.py").write_text(MODULE_LOSS, encoding="utf-8")
    check_loss_kwargs("module_loss.py:LearnedScale", {"init_scale": 10.0}, base_dir=tmp_path)  # dry run works
    with pytest.raises(ValueError, match="no setting 'embedding_dim'"):  # context, not a setting
        check_loss_kwargs("module_loss.py:LearnedScale", {"embedding_dim": 3}, base_dir=tmp_path)
    with pytest.raises(ValueError, match=r"needs \['embedding_dim'\] from the run"):
        make_loss("module_loss.py:LearnedScale", {}, base_dir=tmp_path)
    loss = make_loss(
        "module_loss.py:LearnedScale",
        {"init_scale": 10.0},
        base_dir=tmp_path,
        context={"embedding_dim": 3, "num_labels": 0},
    )
    assert isinstance(loss, torch.nn.Module) and loss.width == 3
    value, stats = loss(_x(), _x())
    assert stats["scale"].item() == pytest.approx(10.0)


def test_split_output_and_matryoshka_pass_statistics_through():
    from minilm.losses.inputs import split_output

    def reporting(a, b):
        return (a - b).pow(2).mean(), {"gap": torch.tensor(0.5), "count": 3}

    assert split_output(torch.tensor(1.0)) == (torch.tensor(1.0), {})
    loss, stats = split_output(L.matryoshka(reporting, (3, 2))(_x(), _x()))
    assert loss.ndim == 0 and stats == {"gap": 0.5, "count": 3.0}
    assert split_output((torch.tensor(1.0), {"bad": float("nan")}))[1] == {"bad": None}
    for bad, message in [
        ((torch.tensor(1.0), 2.0), "or \\(loss, dict"),
        (torch.ones(2), "0-d tensor"),
        ((torch.tensor(1.0), {"s": "x"}), "statistic 's' must be a number"),
    ]:
        with pytest.raises(TypeError, match=message):
            split_output(bad)


# ------------------------------------------------------------------------------------------- a user's loss, end to end

MY_LOSSES = '''
"""A researcher's own file, beside their recipe: minilm is not edited."""
import torch
from minilm.losses import needs
from minilm.losses.distances import cosine_similarity_matrix


@needs("columns", columns=2, more_columns=True, in_batch_negatives=True)
def hinge_ranking(anchors, positives, *negatives, margin: float = 0.2):
    """mean over anchors and other candidates of relu(margin - cos(a, p) + cos(a, c))."""
    sims = cosine_similarity_matrix(anchors, torch.cat([positives, *negatives]))
    positive = sims.diagonal()[:, None]
    others = torch.ones_like(sims, dtype=torch.bool)
    others[range(len(sims)), range(len(sims))] = False
    violations = torch.relu(margin - positive + sims)[others]
    return violations.mean(), {"violated": (violations > 0).float().mean()}
'''

USER_RECIPE = """
name = "mine"
[model]
base = "{base}"
[data]
train = "pairs.csv"
roles = {{ anchor = "anchor", positive = "positive" }}
[loss]
name = "my_losses.py:hinge_ranking"
margin = 0.3
[train]
batch_size = 8
max_steps = 3
"""


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory, minilm_dir):
    from helpers import make_tiny_checkpoint

    directory = tmp_path_factory.mktemp("tiny-base")
    make_tiny_checkpoint(directory, minilm_dir, layers=1, normalize=True)
    return directory


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_loss_in_the_users_own_file_trains_through_minilm_train(tmp_path, tiny_base):
    import json
    import subprocess
    import sys

    (tmp_path / "my_losses.py").write_text(MY_LOSSES, encoding="utf-8")
    rows = [f"question {i} about topic {i % 5},answer {i} about topic {i % 5}" for i in range(24)]
    (tmp_path / "pairs.csv").write_text("anchor,positive\n" + "\n".join(rows) + "\n", encoding="utf-8")
    (tmp_path / "mine.toml").write_text(USER_RECIPE.format(base=tiny_base), encoding="utf-8")
    import os
    from pathlib import Path

    checkout = str(Path(__file__).resolve().parents[2])  # this minilm, whatever else is installed
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [checkout, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-m", "minilm", "train", "mine.toml", "--output", "out"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    log = [json.loads(line) for line in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and all("violated" in r["stats"] for r in log)
    assert (tmp_path / "out" / "final" / "model.safetensors").is_file()


def test_catalogue_settings_are_checked_by_dry_run():
    check_loss_kwargs(
        "mnrl",
        {
            "directions": ["query_to_doc", "doc_to_query"],
            "partition_mode": "per_direction",
            "hardness_mode": "in_batch_negatives",
            "hardness_strength": 2.0,
        },
    )
    check_loss_kwargs("embed_distill", {"projection_dim": 12, "distance": "mse"})  # teacher rows of width 12
    check_loss_kwargs("arcface", {"margin": 0.3, "scale": 30.0})
    for name, kwargs, bad in [
        ("mnrl", {"directions": ["doc_to_query"]}, "query_to_doc"),
        ("mnrl", {"hardness_mode": "soft"}, "hardness_mode"),
        ("arcface", {"num_labels": 3}, "num_labels"),  # context, not a setting
        ("softmax", {"concat_product": "yes"}, "concat_product"),
        ("distill_kl_div", {"teacher_temperature": 0.0}, "teacher_temperature"),
        ("contrastive", {"distance": "dot"}, "distance"),
    ]:
        with pytest.raises(ValueError, match=bad):
            check_loss_kwargs(name, kwargs)


def test_module_losses_are_built_with_the_run_context():
    loss = make_loss("softmax", {"concat_product": True}, context={"embedding_dim": 4, "num_labels": 3})
    assert isinstance(loss, torch.nn.Module) and loss.classifier.in_features == 16 and loss.classifier.out_features == 3
    assert make_loss("proxy_anchor", {}, context={"embedding_dim": 4, "num_labels": 5}).proxies.shape == (5, 4)
    with pytest.raises(ValueError, match=r"needs \['embedding_dim', 'num_labels'\]"):
        make_loss("cosface", {})
