"""``[data] drop_last`` (minilm/run/recipe.py -> minilm/run/build.py make_sampler -> minilm/train/samplers.py): a
batch shorter than batch_size is left out; off by default (as before); a killed run resumes bit-identically."""

import json

import pytest
import torch
from helpers import killed_after_step, write_tiny_recipe
from safetensors.torch import load_file

from minilm.run.build import load_train_data, make_sampler, run_recipe
from minilm.run.recipe import RecipeError, load_recipe


def batch_sizes(recipe, epoch=0):
    return [len(b) for b in make_sampler(recipe, load_train_data(recipe)).batches(epoch)]


@pytest.mark.parametrize("sampler", ["random", "no_duplicates"])
def test_the_last_short_batch_is_dropped_only_when_asked(tmp_path, tiny_base, sampler):
    path = write_tiny_recipe(tmp_path, tiny_base, rows=21)
    sampler = [f'data.sampler="{sampler}"']
    assert batch_sizes(load_recipe(path, sampler)) == [8, 8, 5]  # the default keeps it, as before
    assert batch_sizes(load_recipe(path, sampler + ["data.drop_last=false"])) == [8, 8, 5]
    assert batch_sizes(load_recipe(path, sampler + ["data.drop_last=true"])) == [8, 8]


def test_group_by_label_drops_its_short_batch_too(tmp_path, tiny_base):
    rows = ["text,label"] + [f"note {i} on topic {i % 3},{i % 3}" for i in range(16)]
    (tmp_path / "labelled.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    path = write_tiny_recipe(tmp_path, tiny_base)
    overrides = [
        'data.train="labelled.csv"',
        'data.roles={text="text", label="label"}',
        'loss.name="batch_hard_triplet"',
    ]
    kept, dropped = (batch_sizes(load_recipe(path, overrides + [f"data.drop_last={v}"])) for v in ("false", "true"))
    assert kept == [8, 4] and dropped == [8]  # 16 rows of 3 labels: 6 whole pairs in rounds of two labels or more


def test_drop_last_must_be_a_boolean(tmp_path, tiny_base):
    path = write_tiny_recipe(tmp_path, tiny_base)
    with pytest.raises(RecipeError, match=r"\[data\] drop_last must be bool, got str 'yes'"):
        load_recipe(path, ['data.drop_last="yes"'])


def test_no_full_batch_at_all_is_refused_before_the_model_loads(tmp_path, tiny_base, monkeypatch):
    from minilm.encoder import SentenceEncoder

    monkeypatch.setattr(SentenceEncoder, "from_pretrained", lambda *a, **k: pytest.fail("the model was loaded"))
    rows = ["anchor,positive"] + [
        f"one question,answer {i}" if i % 2 else f"other question,reply {i}" for i in range(8)
    ]
    (tmp_path / "dup.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    path = write_tiny_recipe(tmp_path, tiny_base)
    recipe = load_recipe(path, ['data.train="dup.csv"', "data.drop_last=true", 'data.sampler="no_duplicates"'])
    with pytest.raises(RecipeError, match=r"\[data\] sampler builds no batch of 8 from the 8 rows of .*dup.csv"):
        run_recipe(recipe, tmp_path / "out", log=lambda _: None)


@pytest.mark.slow
def test_a_killed_run_with_drop_last_resumes_bit_identically(tmp_path, tiny_base, monkeypatch):
    # 21 rows in batches of 8: two steps an epoch; 5 steps cross two epoch ends, the kill lands mid-epoch
    path = write_tiny_recipe(tmp_path, tiny_base, steps=5, rows=21, train="save_steps = 1")
    overrides = ["data.drop_last=true"]
    run_recipe(load_recipe(path, overrides), tmp_path / "whole", log=lambda _: None)
    killed_after_step(
        monkeypatch, 3, lambda: run_recipe(load_recipe(path, overrides), tmp_path / "cut", log=lambda _: None)
    )
    monkeypatch.undo()
    run_recipe(load_recipe(path, overrides), tmp_path / "cut", resume=True, log=lambda _: None)
    whole = load_file(tmp_path / "whole" / "final" / "model.safetensors")
    cut = load_file(tmp_path / "cut" / "final" / "model.safetensors")
    assert all(torch.equal(whole[k], cut[k]) for k in whole)
    logged = [json.loads(line) for line in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    assert [(r["step"], r["epoch"]) for r in logged if "loss" in r] == [(1, 0), (2, 0), (3, 1), (4, 1), (5, 2)]
