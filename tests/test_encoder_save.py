"""Saving in the sentence-transformers layout: round trips through sentence-transformers and through minilm."""

import json

import numpy as np
import pytest

from minilm import encoder
from minilm.encoder import SentenceEncoder

TEXTS = ["A man is playing a flute.", "", "Two dogs run through a field of tall grass near the river."]


@pytest.fixture(scope="module")
def model(real_model):
    return real_model


@pytest.mark.slow
def test_round_trip_through_sentence_transformers_and_minilm(model, tmp_path):
    from sentence_transformers import SentenceTransformer

    model.save(tmp_path / "saved")
    expected = model.encode(TEXTS)
    for name in (
        "modules.json",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "sentence_bert_config.json",
        "1_Pooling/config.json",
    ):
        assert (tmp_path / "saved" / name).is_file(), name
    assert (tmp_path / "saved" / "2_Normalize").is_dir()
    theirs = SentenceTransformer(str(tmp_path / "saved"), device="cpu").encode(TEXTS)
    ours = SentenceEncoder.from_pretrained(tmp_path / "saved").encode(TEXTS)
    assert np.abs(theirs - expected).max() <= 1e-5
    assert np.array_equal(ours, expected)
    assert json.loads((tmp_path / "saved" / "sentence_bert_config.json").read_text())["max_seq_length"] == 256


@pytest.mark.slow
def test_save_without_normalize_omits_the_module(model, tmp_path):
    model.normalize = False
    try:
        model.save(tmp_path / "raw")
    finally:
        model.normalize = True
    modules = json.loads((tmp_path / "raw" / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling"]
    assert not SentenceEncoder.from_pretrained(tmp_path / "raw").normalize


@pytest.mark.slow
def test_interrupted_save_leaves_the_previous_model_intact(model, tmp_path, monkeypatch):
    model.save(tmp_path / "m")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    def crash(model, directory):
        (directory / "modules.json").write_text("[]")
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(encoder, "write_layout", crash)
    with pytest.raises(KeyboardInterrupt):
        model.save(tmp_path / "m")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # no temp dir left behind
    assert SentenceEncoder.from_pretrained(tmp_path / "m").encode(TEXTS).shape == (3, 384)
    with pytest.raises(KeyboardInterrupt):
        model.save(tmp_path / "new")
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_save_overwrites_an_existing_model(model, tmp_path):
    model.save(tmp_path / "m")
    model.save(tmp_path / "m")
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


@pytest.fixture(scope="module")
def tiny(minilm_dir):
    from helpers import tiny_encoder

    from minilm.loading.tokenizer import WordPieceTokenizer

    return tiny_encoder(WordPieceTokenizer.from_dir(minilm_dir, 64))


def test_save_refuses_a_file_and_a_folder_of_other_files(tiny, tmp_path):
    (tmp_path / "notes.txt").write_text("my notes")
    with pytest.raises(FileExistsError, match="notes.txt exists and is not a folder"):
        tiny.save(tmp_path / "notes.txt")
    (tmp_path / "work" / "data").mkdir(parents=True)
    (tmp_path / "work" / "thesis.tex").write_text("chapter 1")
    with pytest.raises(FileExistsError, match=r"work holds files minilm did not write \(data/, thesis.tex\)"):
        tiny.save(tmp_path / "work")
    assert (tmp_path / "notes.txt").read_text() == "my notes"
    assert (tmp_path / "work" / "thesis.tex").read_text() == "chapter 1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "work"]  # no stray temporary folder


def test_save_into_an_empty_folder_and_over_a_saved_model(tiny, tmp_path):
    (tmp_path / "empty").mkdir()
    tiny.save(tmp_path / "empty")
    tiny.save(tmp_path / "empty")
    assert SentenceEncoder.from_pretrained(tmp_path / "empty").encode("x").shape == (32,)


def test_save_with_overwrite_replaces_whatever_was_there(tiny, tmp_path):
    (tmp_path / "f").write_text("a file")
    tiny.save(tmp_path / "f", overwrite=True)
    assert SentenceEncoder.from_pretrained(tmp_path / "f").encode("x").shape == (32,)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f"]


def test_save_into_the_working_directory_is_refused(tiny, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for where in (".", tmp_path):
        with pytest.raises(FileExistsError, match="working directory"):
            tiny.save(where)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("umask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_saved_model_permissions_follow_the_umask(tiny, tmp_path, umask, file_mode, dir_mode):
    import os

    old = os.umask(umask)
    try:
        tiny.save(tmp_path / "m")
    finally:
        os.umask(old)
    assert (tmp_path / "m").stat().st_mode & 0o777 == dir_mode
    assert (tmp_path / "m" / "1_Pooling").stat().st_mode & 0o777 == dir_mode
    for name in ("model.safetensors", "config.json", "1_Pooling/config.json"):
        assert (tmp_path / "m" / name).stat().st_mode & 0o777 == file_mode, name


def test_a_model_with_nonfinite_weights_is_never_saved(tiny, tmp_path):
    import torch

    tiny.save(tmp_path / "m")
    before = (tmp_path / "m" / "model.safetensors").read_bytes()
    weight = tiny.bert.layers[1].ffn.up.weight
    saved = weight.detach().clone()
    with torch.no_grad():
        weight[3, 5] = float("nan")
    try:
        with pytest.raises(ValueError, match=r"refusing to save .*tensor layers.1.ffn.up.weight holds 1 NaN"):
            tiny.save(tmp_path / "m")
    finally:
        with torch.no_grad():
            weight.copy_(saved)
    assert (tmp_path / "m" / "model.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]
