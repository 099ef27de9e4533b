"""Loading a checkpoint: the key table, prefixes, config and pooling files, and every refusal with a message that
names the problem."""

import json

import pytest
import torch
from helpers import make_tiny_checkpoint
from safetensors.torch import load_file, save_file

from minilm.encoder import SentenceEncoder
from minilm.loading.weights import CheckpointError


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
    assert torch.allclose(
        torch.from_numpy(SentenceEncoder.from_pretrained(tiny).encode(["hello there"])), torch.from_numpy(reference)
    )


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
    with pytest.raises(
        CheckpointError, match=r"encoder\.layer\.0\.intermediate\.dense\.weight: checkpoint \(100, 64\)"
    ):
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


@pytest.mark.parametrize(
    "config", [{"pooling_mode": "weightedmean"}, {"pooling_mode_lasttoken": True}, {"pooling_mode": ["cls", "mean"]}]
)
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


def edit_json(path, change):
    raw = json.loads(path.read_text())
    change(raw)
    path.write_text(json.dumps(raw))


BAD_FILES = [  # (file, new content or edit of its JSON, what the error must say)
    ("config.json", b"{ this is not json", r"config.json:1: not valid JSON"),
    ("config.json", b"[1, 2, 3]", r"config.json: expected a JSON object \{...\}, found list"),
    ("config.json", b'{"hidden_size": "\xff"}', r"config.json:1: not UTF-8 text"),
    ("config.json", lambda c: c.update(hidden_size="64"), r"config.json: hidden_size must be an integer, got str '64'"),
    ("config.json", lambda c: c.update(num_attention_heads=0), r"config.json: num_attention_heads must be >= 1, got 0"),
    ("config.json", lambda c: c.update(num_hidden_layers=2.5), "num_hidden_layers must be an integer, got float 2.5"),
    ("config.json", lambda c: c.update(vocab_size=True), "vocab_size must be an integer, got bool True"),
    ("config.json", lambda c: c.update(hidden_dropout_prob=1.5), r"hidden_dropout_prob must be in \[0, 1\), got 1.5"),
    ("config.json", lambda c: c.update(layer_norm_eps=-1e-12), r"layer_norm_eps must be in \(0, 1\)"),
    (
        "config.json",
        lambda c: c.update(num_attention_heads=5),
        "hidden_size 64 is not divisible by num_attention_heads 5",
    ),
    ("modules.json", b'{"idx": 0}', r"modules.json: expected a JSON list \[...\], found dict"),
    ("modules.json", b'["Transformer", "Pooling"]', r"modules.json: entry 0 must be an object with a string 'type'"),
    ("modules.json", b'[{"path": ""}]', r"modules.json: entry 0 must be an object with a string 'type'"),
    ("modules.json", b"[{]", r"modules.json:1: not valid JSON"),
    ("1_Pooling/config.json", b'"mean"', r"1_Pooling/config.json: expected a JSON object"),
    ("1_Pooling/config.json", b'{"pooling_mode": 3}', r"pooling mode \[3\] is not supported"),
    ("sentence_bert_config.json", b'{"max_seq_length": -5}', "max_seq_length must be a positive integer, got -5"),
    ("sentence_bert_config.json", b'{"max_seq_length": "64"}', "max_seq_length must be a positive integer, got '64'"),
    ("sentence_bert_config.json", b'{"do_lower_case": "no"}', "do_lower_case must be true or false, got 'no'"),
    ("tokenizer.json", b'{"version": "1.0", "model": 12}', r"tokenizer.json: not a readable tokenizer"),
]


@pytest.mark.parametrize("name, content, message", BAD_FILES, ids=[f"{n}:{m[:30]}" for n, _, m in BAD_FILES])
def test_every_malformed_model_file_is_refused_naming_file_and_key(tiny, name, content, message):
    if callable(content):
        edit_json(tiny / name, content)
    else:
        (tiny / name).write_bytes(content)
    with pytest.raises(ValueError, match=message) as e:
        SentenceEncoder.from_pretrained(tiny)
    assert str(tiny / name) in str(e.value) or name == "config.json" and str(tiny) in str(e.value)


def test_tokenizer_config_with_a_string_max_length_is_named(tiny):
    (tiny / "sentence_bert_config.json").unlink()
    edit_json(tiny / "tokenizer_config.json", lambda c: c.update(model_max_length="512"))
    with pytest.raises(CheckpointError, match=r"tokenizer_config.json: model_max_length must be a positive number"):
        SentenceEncoder.from_pretrained(tiny)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nonfinite_weights_are_refused_naming_the_tensor(tiny, value):
    def poison(state):
        state["encoder.layer.1.attention.self.key.weight"][0, 0] = value

    rewrite_weights(tiny, poison)
    with pytest.raises(
        CheckpointError,
        match=r"model.safetensors: tensor encoder.layer.1.attention.self.key.weight "
        r"holds 1 NaN or infinite values",
    ):
        SentenceEncoder.from_pretrained(tiny)
