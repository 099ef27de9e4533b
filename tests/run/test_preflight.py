"""Runs that could not train are refused before any model loads, naming the loss, the key and the file."""

import pytest

from minilm.run.build import run_recipe
from minilm.run.recipe import RecipeError, load_recipe

RECIPE = """name = "r"
[model]
base = "never/loaded"
[data]
train = "d.csv"
roles = {roles}
[loss]
name = "{loss}"
[train]
batch_size = {batch_size}
"""
PAIRS = {"anchor": "anchor", "positive": "positive"}
LABELS = {"text": "text", "label": "label"}


def refused(tmp_path, monkeypatch, rows, loss="mnrl", batch_size=4, roles=PAIRS, overrides=()):
    from minilm.encoder import SentenceEncoder

    monkeypatch.setattr(SentenceEncoder, "from_pretrained", lambda *a, **k: pytest.fail("the model was loaded"))
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    roles_toml = "{ " + ", ".join(f'{k} = "{v}"' for k, v in roles.items()) + " }"
    path = tmp_path / "r.toml"
    path.write_text(RECIPE.format(roles=roles_toml, loss=loss, batch_size=batch_size), encoding="utf-8")
    with pytest.raises(RecipeError) as e:
        run_recipe(load_recipe(path, list(overrides)), tmp_path / "out", log=lambda _: None)
    assert not (tmp_path / "out").exists()  # nothing written either
    return str(e.value)


PAIR_ROWS = ["anchor,positive"] + [f"q{i},a{i}" for i in range(6)]


def test_in_batch_negatives_with_one_row_per_batch(tmp_path, monkeypatch):
    message = refused(tmp_path, monkeypatch, PAIR_ROWS, batch_size=1)
    assert (
        "loss mnrl takes its negatives from the other rows of a batch, so it needs at least 2 rows per batch; "
        "[train] batch_size is 1" in message
    )


def test_a_one_row_file(tmp_path, monkeypatch):
    message = refused(tmp_path, monkeypatch, ["anchor,positive", "q,a"], batch_size=4)
    assert f"[train] batch_size 4 is more than the 1 rows of {tmp_path / 'd.csv'}" in message


def test_more_rows_per_batch_than_the_data_has(tmp_path, monkeypatch):
    message = refused(tmp_path, monkeypatch, PAIR_ROWS, batch_size=32)
    assert "[train] batch_size 32 is more than the 6 rows of" in message


def test_rows_that_all_share_a_text_cannot_make_in_batch_negatives(tmp_path, monkeypatch):
    rows = ["anchor,positive"] + [f"the same question,answer {i}" for i in range(6)]
    message = refused(tmp_path, monkeypatch, rows, batch_size=4)
    assert "rows of" in message and "all share a text" in message


@pytest.mark.parametrize("sampler", ["auto", "random"])
def test_a_labelled_loss_without_any_repeated_label(tmp_path, monkeypatch, sampler):
    rows = ["text,label"] + [f"sentence {i},{i}" for i in range(8)]
    message = refused(
        tmp_path, monkeypatch, rows, loss="batch_hard_triplet", roles=LABELS, overrides=[f'data.sampler="{sampler}"']
    )
    assert (
        "loss batch_hard_triplet needs batches holding two rows of one label (a positive pair), but each of the "
        "8 labels in"
        in message
        and "occurs on one row only" in message
    )


def test_a_labelled_loss_with_one_row_per_batch(tmp_path, monkeypatch):
    rows = ["text,label"] + [f"sentence {i},{i % 2}" for i in range(8)]
    message = refused(
        tmp_path,
        monkeypatch,
        rows,
        loss="batch_hard_triplet",
        roles=LABELS,
        batch_size=1,
        overrides=['data.sampler="random"'],
    )
    assert "but [train] batch_size is 1" in message


def test_a_sampler_that_cannot_batch_the_data_names_it(tmp_path, monkeypatch):
    rows = ["text,label"] + [f"sentence {i},{i % 2}" for i in range(8)]
    message = refused(tmp_path, monkeypatch, rows, loss="batch_hard_triplet", roles=LABELS, batch_size=5)
    assert "[data] sampler cannot batch" in message and "batch_size must be even and >= 4" in message


TEACHER = {"anchor": "q", "positive": "p", "negative": "n", "teacher": "t"}


@pytest.mark.parametrize(
    "loss, teacher, numbers",
    [
        ("margin_mse", "1.0;2.0;3.0", 3),  # two candidates (positive, negative): 2 scores or 1 margin, not 3
        ("distill_kl_div", "0.5", 1),  # a softmax over the candidates needs a score for each of the 2
    ],
)
def test_teacher_scores_that_do_not_fit_the_candidates(tmp_path, monkeypatch, loss, teacher, numbers):
    rows = ["q,p,n,t"] + [f"q{i},p{i},n{i},{teacher.split(';')[0]}" for i in range(6)]
    if numbers > 1:  # several numbers per row: a JSONL list
        import json

        (tmp_path / "d.jsonl").write_text(
            "".join(
                json.dumps({"q": f"q{i}", "p": f"p{i}", "n": f"n{i}", "t": [float(x) for x in teacher.split(";")]})
                + "\n"
                for i in range(6)
            ),
            encoding="utf-8",
        )
        overrides = ['data.train="d.jsonl"']
    else:
        overrides = []
    message = refused(tmp_path, monkeypatch, rows, loss=loss, roles=TEACHER, overrides=overrides)
    assert f"[data] roles: teacher 't' gives {numbers} number" in message
    assert (
        f"which loss '{loss}' does not take with the 3 text columns ['q', 'p', 'n']: teacher_scores must have"
        in message
    )
