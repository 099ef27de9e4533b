"""A user's loss file as minilm loads it (issues 19 and 20): modules beside it are importable while it loads, two
folders with a module of the same name stay apart, its code (and what it imports beside it) is fingerprinted, the card
names it file.py:function, and whatever it raises at import, in __init__ or in its check is one named error."""

import sys
import textwrap

import pytest

from minilm.run.citations import describe_loss
from minilm.run.registry import LossSpec, code_fingerprint, loss_files, resolve_loss
from minilm.util.usercode import MODULE_PREFIX, UserCodeError

PAIR_LOSS = """
from minilm.losses import needs
{imports}

@needs("columns", columns=2)
def {name}(anchor, positive, scale: float = 1.0):
    {body}
"""


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def pair_loss(folder, file="mine.py", name="pair", imports="", body="return (anchor - positive).pow(2).mean()"):
    return write(folder / file, PAIR_LOSS.format(imports=imports, name=name, body=body))


def test_a_loss_file_imports_a_module_beside_it_and_two_folders_keep_their_own(tmp_path, monkeypatch):
    import types

    elsewhere = types.ModuleType("helpers")  # a top-level helpers imported before from elsewhere (tests/helpers.py)
    monkeypatch.setitem(sys.modules, "helpers", elsewhere)
    for folder, factor in (("a", 2.0), ("b", 3.0)):
        write(tmp_path / folder / "helpers.py", f"FACTOR = {factor}\n")
        pair_loss(
            tmp_path / folder,
            imports="import helpers",
            body="return helpers.FACTOR * anchor.sum() * 0 + helpers.FACTOR",
        )
    import torch

    x = torch.zeros(2, 3)
    a = resolve_loss("a/mine.py:pair", tmp_path)
    b = resolve_loss("b/mine.py:pair", tmp_path)
    assert a(x, x).item() == 2.0 and b(x, x).item() == 3.0  # each its own helpers, not a's cached one
    assert sys.modules["helpers"] is elsewhere  # put back once the files had loaded
    assert str(tmp_path / "a") not in sys.path and str(tmp_path / "b") not in sys.path  # importable while loading
    assert a.__module__.startswith(MODULE_PREFIX) and a.__module__ != b.__module__
    assert resolve_loss("a/mine.py:pair", tmp_path) is a  # loaded once per process


def test_the_fingerprint_covers_the_file_and_what_it_imports_beside_it(tmp_path):
    write(tmp_path / "losses" / "helpers.py", "from tools import scale\n")
    write(tmp_path / "losses" / "tools" / "__init__.py", "")
    write(tmp_path / "losses" / "tools" / "scale.py", "FACTOR = 2\n")
    write(tmp_path / "losses" / "unused.py", "X = 1\n")
    pair_loss(tmp_path / "losses", imports="import helpers\nimport math")
    files = loss_files("losses/mine.py:pair", tmp_path)
    assert sorted(files) == [
        "losses/helpers.py",
        "losses/mine.py",
        "losses/tools/__init__.py",
        "losses/tools/scale.py",
    ]  # not unused.py, not math
    before = code_fingerprint({"name": "losses/mine.py:pair"}, tmp_path)
    assert sorted(before) == sorted(files) and all(len(h) == 64 for h in before.values())
    write(tmp_path / "losses" / "tools" / "scale.py", "FACTOR = 3\n")
    after = code_fingerprint({"name": "losses/mine.py:pair"}, tmp_path)
    assert [f for f in before if before[f] != after[f]] == ["losses/tools/scale.py"]
    assert code_fingerprint({"name": "mnrl"}) == {}  # minilm's own losses: nothing of the user's


def test_the_card_names_a_users_loss_as_file_and_function(tmp_path):
    pair_loss(tmp_path, file="my_loss.py", name="squared")
    card = describe_loss("my_loss.py:squared", {}, tmp_path)
    assert card.function == "my_loss.py:squared"
    assert describe_loss("mnrl", {}).function == "minilm.losses.in_batch.multiple_negatives_ranking_loss"


@pytest.mark.parametrize(
    "body, said",
    [
        ("import sys\nsys.exit(0)", r"it called sys.exit\(0\) \(at broken.py line 3, in <module>\)"),
        ("x = 1 / 0", r"ZeroDivisionError: division by zero \(at broken.py line 2, in <module>\)"),
        ("import no_such_module_here", r"ModuleNotFoundError: No module named 'no_such_module_here'"),
    ],
)
def test_an_error_or_exit_at_import_is_the_users_named(tmp_path, body, said):
    write(tmp_path / "broken.py", "\n" + body + "\n")
    with pytest.raises(UserCodeError, match=rf"^loss broken.py:f: importing {tmp_path / 'broken.py'} failed: {said}"):
        resolve_loss("broken.py:f", tmp_path)


CLASS_LOSS = """
import torch
from torch import nn
from minilm.losses import needs


@needs("columns", columns=2)
class Scaled(nn.Module):
    def __init__(self, embedding_dim: int, scale: float = 1.0):
        super().__init__()
        {init}
        self.scale = nn.Parameter(torch.tensor(scale))

    def forward(self, anchor, positive):
        {forward}
        return self.scale * (anchor - positive).pow(2).mean()
"""


@pytest.mark.parametrize(
    "init, forward, said",
    [
        (
            "raise RuntimeError('no GPU here')",
            "pass",
            r"loss scaled.py:Scaled failed when built \(its __init__\): RuntimeError: no GPU here "
            r"\(at scaled.py line 11, in __init__\)",
        ),
        ("import sys; sys.exit(3)", "pass", r"failed when built \(its __init__\): it called sys.exit\(3\)"),
        (
            "pass",
            "raise KeyError('anchor')",
            r"loss scaled.py:Scaled failed on a tiny random batch \(the check before any model loads\): "
            r"KeyError: 'anchor' \(at scaled.py line 15, in forward\)",
        ),
    ],
)
def test_an_error_in_init_or_in_the_check_is_the_users_named(tmp_path, init, forward, said):
    write(tmp_path / "scaled.py", CLASS_LOSS.replace("{init}", init).replace("{forward}", forward))
    with pytest.raises(UserCodeError, match=said):
        LossSpec.resolve("scaled.py:Scaled", {}, tmp_path).check()


def test_a_setting_refused_by_the_users_init_is_still_a_valueerror_and_named(tmp_path):
    """A loss refusing a setting (ValueError in __init__) is named as the user's and stays a ValueError: a recipe
    names its own file around it, as for minilm's losses."""
    write(
        tmp_path / "scaled.py",
        CLASS_LOSS.replace("{init}", "raise ValueError('scale must be > 0')").replace("{forward}", "pass"),
    )
    with pytest.raises(
        ValueError,
        match=r"^loss scaled.py:Scaled failed when built \(its __init__\): ValueError: "
        r"scale must be > 0 \(at scaled.py line 11, in __init__\)$",
    ) as caught:
        LossSpec.resolve("scaled.py:Scaled", {}, tmp_path).check()
    assert isinstance(caught.value, UserCodeError)
