"""Loading a checkpoint: the key table, prefixes, config and pooling files, and every refusal with a message that
names the problem."""

import json
import pytest
import torch
from helpers import make_tiny_checkpoint
from safetensors.torch import load_file, save_file

from minilm.encoder import SentenceEncoder
from minilm.weights import CheckpointError


@pytest.fixture()
def tiny(tmp_path, minilm_dir):
    make_tiny_checkpoint(tmp_path / "m", minilm_dir, layers=2)
    return tmp_path / "m"


def rewrite_weights(directory, edit):
    state = load_file(directory / "model.safetensors")
    edit(state)
    save_file(state, directory / "model.safetensors")


def test_bert_prefix_missing_position_ids_and_pooler_are_accepted(tiny):
    reference = SentenceEncoder.from_pretrained(tiny).encode(["hello there"])
    assert "pooler.dense.weight" in load_file(tiny / "model.safetensors")  # transformers saved a pooler: ignored

    def prefix(state):
        for key in list(state):
            tensor = state.pop(key)
            if key != "embeddings.position_ids":
                state[f"bert.{key}"] = tensor

    rewrite_weights(tiny, prefix)
    assert torch.allclose(torch.from_numpy(SentenceEncoder.from_pretrained(tiny).encode(["hello there"])),
                          torch.from_numpy(reference))


def test_missing_and_unexpected_keys_are_listed_by_name(tiny):
    def edit(state):
        del state["encoder.layer.1.output.dense.bias"]
        state["encoder.layer.7.output.dense.bias"] = torch.zeros(64)

    rewrite_weights(tiny, edit)
    with pytest.raises(CheckpointError) as e:
        SentenceEncoder.from_pretrained(tiny)
    assert "missing keys: encoder.layer.1.output.dense.bias" in str(e.value)
    assert "unexpected keys: encoder.layer.7.output.dense.bias" in str(e.value)


def test_wrong_shape_is_named(tiny):
    rewrite_weights(tiny, lambda s: s.__setitem__("encoder.layer.0.intermediate.dense.weight", torch.zeros(100, 64)))
    with pytest.raises(CheckpointError, match=r"encoder\.layer\.0\.intermediate\.dense\.weight: checkpoint \(100, 64\)"):
        SentenceEncoder.from_pretrained(tiny)


def test_directory_without_weights(tiny):
    (tiny / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="has no model.safetensors"):
        SentenceEncoder.from_pretrained(tiny)


def test_pickle_only_checkpoint_is_refused_with_reason(tiny):
    (tiny / "model.safetensors").rename(tiny / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pickle checkpoint.*arbitrary code"):
        SentenceEncoder.from_pretrained(tiny)


def test_truncated_safetensors(tiny):
    data = (tiny / "model.safetensors").read_bytes()
    (tiny / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        SentenceEncoder.from_pretrained(tiny)


def test_garbage_safetensors_header(tiny):
    (tiny / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(CheckpointError, match="model.safetensors is not a readable safetensors file"):
        SentenceEncoder.from_pretrained(tiny)


@pytest.mark.parametrize("config", [{"pooling_mode": "weightedmean"}, {"pooling_mode_lasttoken": True},
                                    {"pooling_mode": ["cls", "mean"]}])
def test_unknown_pooling_mode(tiny, config):
    (tiny / "1_Pooling" / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="pooling mode"):
        SentenceEncoder.from_pretrained(tiny)


def test_unsupported_architecture_is_named(tiny):
    config = json.loads((tiny / "config.json").read_text())
    config["model_type"] = "roberta"
    (tiny / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="model_type 'roberta' is not supported"):
        SentenceEncoder.from_pretrained(tiny)


def test_max_seq_length_beyond_positions_is_refused(tiny):
    (tiny / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 1000}))
    with pytest.raises(ValueError, match="max_seq_length 1000 exceeds max_position_embeddings 128"):
        SentenceEncoder.from_pretrained(tiny)


def test_tokenizer_from_vocab_txt_only(tiny):
    reference = SentenceEncoder.from_pretrained(tiny).tokenize(["Hello, World! naïve café"])
    (tiny / "tokenizer.json").unlink()
    again = SentenceEncoder.from_pretrained(tiny).tokenize(["Hello, World! naïve café"])
    assert torch.equal(reference["input_ids"], again["input_ids"])
