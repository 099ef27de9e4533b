"""Saving in the sentence-transformers layout: round trips through sentence-transformers and through minilm."""

import json

import numpy as np
import pytest

from minilm.encoder import SentenceEncoder

TEXTS = ["A man is playing a flute.", "", "Two dogs run through a field of tall grass near the river."]


@pytest.fixture(scope="module")
def model(minilm_dir):
    return SentenceEncoder.from_pretrained(minilm_dir)


def test_round_trip_through_sentence_transformers_and_minilm(model, tmp_path):
    from sentence_transformers import SentenceTransformer

    model.save(tmp_path / "saved")
    expected = model.encode(TEXTS)
    for name in ("modules.json", "config.json", "model.safetensors", "tokenizer.json", "sentence_bert_config.json",
                 "1_Pooling/config.json"):
        assert (tmp_path / "saved" / name).is_file(), name
    assert (tmp_path / "saved" / "2_Normalize").is_dir()
    theirs = SentenceTransformer(str(tmp_path / "saved"), device="cpu").encode(TEXTS)
    ours = SentenceEncoder.from_pretrained(tmp_path / "saved").encode(TEXTS)
    assert np.abs(theirs - expected).max() <= 1e-5
    assert np.array_equal(ours, expected)
    assert json.loads((tmp_path / "saved" / "sentence_bert_config.json").read_text())["max_seq_length"] == 256


def test_save_without_normalize_omits_the_module(model, tmp_path):
    model.normalize = False
    try:
        model.save(tmp_path / "raw")
    finally:
        model.normalize = True
    modules = json.loads((tmp_path / "raw" / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[-1] for m in modules] == ["Transformer", "Pooling"]
    assert not SentenceEncoder.from_pretrained(tmp_path / "raw").normalize


def test_interrupted_save_leaves_the_previous_model_intact(model, tmp_path, monkeypatch):
    model.save(tmp_path / "m")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))

    def crash(directory):
        (directory / "modules.json").write_text("[]")
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(model, "_write", crash)
    with pytest.raises(KeyboardInterrupt):
        model.save(tmp_path / "m")
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # no temp dir left behind
    assert SentenceEncoder.from_pretrained(tmp_path / "m").encode(TEXTS).shape == (3, 384)
    with pytest.raises(KeyboardInterrupt):
        model.save(tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_save_overwrites_an_existing_model(model, tmp_path):
    model.save(tmp_path / "m")
    model.save(tmp_path / "m")
    assert [p.name for p in tmp_path.iterdir()] == ["m"]
