"""sentence-transformers' encode options on a tiny random model: prompts, truncate_dim, max_seq_length, token
embeddings, return types, precision, the former minilm names, and the settings' round trip through save (read back by
minilm and by sentence-transformers, and the other way). Parity on the real weights is tests/test_encoder_parity.py.

Tolerance: float32 embeddings of the same model on the same tokens agree to 1e-6 max abs (batch composition only)."""

import json

import numpy as np
import pytest
import torch
from helpers import tiny_encoder

from minilm.encoder import SentenceEncoder
from minilm.encoding.quantization import quantize_embeddings
from minilm.loading.tokenizer import WordPieceTokenizer
from minilm.loading.weights import CheckpointError

TEXTS = ["a short one", "", "A much longer sentence, with punctuation; and some rarer words.", "the end"]


def tiny(tokenizer, **settings):
    """tiny_encoder's random model with sentence-transformers' model settings (prompts, default_prompt_name...)."""
    return SentenceEncoder(tiny_encoder(tokenizer).bert, tokenizer, **settings).eval()


@pytest.fixture()
def model(minilm_dir):
    """A fresh tiny model per test (it owns its tokenizer: max_seq_length is set on the tokenizer)."""
    return tiny(WordPieceTokenizer.from_dir(minilm_dir, 64), prompts={"query": "query: ", "p": "passage: "})


def close(a, b, tol=1e-6):
    return np.abs(np.asarray(a) - np.asarray(b)).max() <= tol


def test_prompt_prompt_name_and_default_prompt_name(model):
    plain = model.encode(["query: " + t for t in TEXTS])
    assert close(model.encode(TEXTS, prompt="query: "), plain)
    assert close(model.encode(TEXTS, prompt_name="query"), plain)
    assert close(model.encode_query(TEXTS), plain)
    assert close(model.encode_document(TEXTS), model.encode(TEXTS))  # "document" is there, and empty
    model.default_prompt_name = "p"
    assert close(model.encode(TEXTS), model.encode(["passage: " + t for t in TEXTS], prompt=""))
    assert close(model.encode(TEXTS, prompt=""), model.encode(TEXTS, prompt_name="document"))  # "" overrides it
    with pytest.warns(UserWarning, match="prompt_name is ignored"):
        both = model.encode(TEXTS, prompt="query: ", prompt_name="p")
    assert close(both, plain)
    with pytest.raises(ValueError, match=r"prompt_name 'nope' is not one of the model's prompts \['document', 'p'"):
        model.encode(TEXTS, prompt_name="nope")
    with pytest.raises(ValueError, match="default_prompt_name 'x' is not one of the prompts"):
        tiny(model.tokenizer, default_prompt_name="x")
    with pytest.raises(ValueError, match="prompts must map prompt names to prompt texts"):
        tiny(model.tokenizer, prompts={"q": 3})


def test_truncate_dim_per_call_on_the_model_and_in_a_block(model):
    full = model.encode(TEXTS)
    assert model.get_embedding_dimension() == 32
    assert np.array_equal(model.encode(TEXTS, truncate_dim=8), full[:, :8])
    normalised = model.encode(TEXTS, truncate_dim=8, normalize_embeddings=True)  # cut first, then normalised
    assert close(normalised, full[:, :8] / np.linalg.norm(full[:, :8], axis=1, keepdims=True))
    with model.truncate_embeddings(4):
        assert model.encode(TEXTS).shape == (4, 4) and model.get_embedding_dimension() == 4
        assert model.encode(TEXTS, truncate_dim=6).shape == (4, 6)  # the call wins
    assert model.truncate_dim is None
    model.truncate_dim = 100  # wider than the model: everything, as sentence-transformers slices
    assert model.encode(TEXTS).shape == (4, 32) and model.get_embedding_dimension() == 32
    for bad in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="truncate_dim must be a positive integer or None"):
            model.encode(TEXTS, truncate_dim=bad)


def test_max_seq_length_is_settable_and_truncation_is_reported(model):
    long = " ".join(["word"] * 100)
    cut = []
    model.encode([long, "short"], truncated=cut)
    assert cut == [0]
    model.max_seq_length = 8
    assert model.tokenize([long])["input_ids"].shape == (1, 8)
    cut = []
    assert close(model.encode([long], truncated=cut), model.encode([" ".join(["word"] * 6)]))
    assert cut == [0]
    with pytest.raises(ValueError, match="max_seq_length 65 exceeds max_position_embeddings 64"):
        model.max_seq_length = 65
    with pytest.raises(ValueError, match="max_seq_length must be an integer >= 2"):
        model.max_seq_length = 1


def test_token_embeddings_pool_to_the_sentence_embedding(model):
    model.normalize = False
    tokens = model.encode(TEXTS, output_value="token_embeddings")
    assert isinstance(tokens, list) and [t.shape[0] for t in tokens] == [
        len(ids) for ids in model.tokenizer.encode_ids(TEXTS)
    ]
    pooled = model.encode(TEXTS)
    assert close(torch.stack([t.mean(0) for t in tokens]), pooled, 1e-5)  # mean pooling over the real tokens
    one = model.encode(TEXTS[2], output_value="token_embeddings")
    assert isinstance(one, torch.Tensor) and torch.allclose(one, tokens[2], atol=1e-6)
    model.unpadded = False  # the padded reference path gives the same token vectors
    assert all(
        torch.allclose(a, b, atol=1e-5) for a, b in zip(model.encode(TEXTS, output_value="token_embeddings"), tokens)
    )
    with pytest.warns(UserWarning, match="only 29 embeddings"):  # 29 token vectors calibrate the int8 range
        codes = model.encode(TEXTS, output_value="token_embeddings", precision="int8")
    assert [c.dtype for c in codes] == [np.int8] * 4


def test_return_types_follow_the_convert_flags(model):
    array = model.encode(TEXTS)
    assert isinstance(array, np.ndarray) and array.dtype == np.float32 and array.shape == (4, 32)
    tensor = model.encode(TEXTS, convert_to_tensor=True)
    assert isinstance(tensor, torch.Tensor) and torch.equal(tensor, torch.from_numpy(array))
    assert isinstance(model.encode(TEXTS, convert_to_numpy=True, convert_to_tensor=True), torch.Tensor)
    rows = model.encode(TEXTS, convert_to_numpy=False)
    assert isinstance(rows, list) and len(rows) == 4 and all(r.shape == (32,) for r in rows)
    assert model.encode(TEXTS[0]).shape == (32,)
    assert model.encode(("a", "b")).shape == model.encode(np.array(["a", "b"])).shape == (2, 32)
    assert model.encode([]).shape == (0, 32)  # sentence-transformers returns an empty 1-D array here
    assert model.encode([], precision="ubinary").shape == (0, 4)
    assert model.encode([], convert_to_numpy=False) == []


@pytest.mark.parametrize("precision", ["int8", "uint8", "binary", "ubinary"])
def test_precision_is_quantize_embeddings_of_the_float_output(model, precision):
    floats = model.encode(TEXTS, truncate_dim=20, normalize_embeddings=True)
    with pytest.warns(UserWarning) if precision.endswith("int8") else _nothing():
        codes = model.encode(TEXTS, truncate_dim=20, normalize_embeddings=True, precision=precision)
    with pytest.warns(UserWarning) if precision.endswith("int8") else _nothing():
        expected = quantize_embeddings(floats, precision)
    assert codes.dtype == expected.dtype and np.array_equal(codes, expected)
    tensor = model.encode(TEXTS, precision="ubinary", convert_to_tensor=True)
    assert tensor.dtype == torch.uint8 and tensor.shape == (4, 4)


def _nothing():
    import contextlib

    return contextlib.nullcontext()


def test_former_minilm_names_still_work_and_warn(model):
    with pytest.warns(FutureWarning, match="convert_to_tensor"):
        assert isinstance(model.encode(TEXTS, convert_to="torch"), torch.Tensor)
    with pytest.warns(FutureWarning, match="normalize_embeddings"):
        raw = model.encode(TEXTS, normalize=False)  # skips the checkpoint's Normalize module, as it did
    model.normalize = False
    assert np.array_equal(raw, model.encode(TEXTS))
    with pytest.warns(FutureWarning, match="inputs="):
        assert model.encode(sentences=TEXTS).shape == (4, 32)


def test_bad_arguments_name_themselves(model):
    with pytest.raises(ValueError, match="output_value must be one of"):
        model.encode(TEXTS, output_value=None)
    with pytest.raises(ValueError, match="a list of devices"):
        model.encode(TEXTS, device=["cpu", "cpu"])
    with pytest.raises(TypeError, match="inputs must be a string or a list of strings, got int"):
        model.encode(3)
    with pytest.raises(TypeError, match=r"inputs \(a string or a list of strings\) is required"):
        model.encode()
    with pytest.raises(TypeError, match="prompt must be a string"):
        model.encode(TEXTS, prompt=3)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        model.encode(TEXTS, batch_size=0)
    with pytest.raises(ValueError, match="single embedding"):
        model.encode("one", precision="int8")  # as sentence-transformers: no range from one embedding


def test_settings_round_trip_through_minilm_and_sentence_transformers(model, tmp_path):
    from sentence_transformers import SentenceTransformer

    model.default_prompt_name = "p"
    model.truncate_dim = 16
    model.max_seq_length = 24
    model.save(tmp_path / "m")
    saved = json.loads((tmp_path / "m" / "config_sentence_transformers.json").read_text())
    assert saved["prompts"] == {"query": "query: ", "document": "", "p": "passage: "}
    assert saved["default_prompt_name"] == "p" and saved["truncate_dim"] == 16
    expected = model.encode(TEXTS)

    again = SentenceEncoder.from_pretrained(tmp_path / "m")
    assert (again.prompts, again.default_prompt_name, again.truncate_dim, again.max_seq_length) == (
        model.prompts,
        "p",
        16,
        24,
    )
    assert np.array_equal(again.encode(TEXTS), expected)

    st = SentenceTransformer(str(tmp_path / "m"), device="cpu")
    assert (st.prompts, st.default_prompt_name, st.truncate_dim, st.max_seq_length) == (model.prompts, "p", 16, 24)
    assert close(st.encode(TEXTS), expected, 1e-5)

    # and back: a folder sentence-transformers 6.2 wrote (max_seq_length in tokenizer_config.json, new module names)
    st.prompts["query"] = "q: "
    st.max_seq_length = 12
    st.save(str(tmp_path / "st"))
    back = SentenceEncoder.from_pretrained(tmp_path / "st")
    assert (back.prompts["query"], back.default_prompt_name, back.truncate_dim, back.max_seq_length) == (
        "q: ",
        "p",
        16,
        12,
    )
    assert close(back.encode(TEXTS), st.encode(TEXTS), 1e-5)

    # the constructor's arguments win over the saved ones, as in sentence-transformers
    override = SentenceEncoder.from_pretrained(
        tmp_path / "m", prompts={"query": "Q "}, default_prompt_name="query", truncate_dim=8
    )
    assert (override.prompts["query"], override.prompts["p"], override.default_prompt_name, override.truncate_dim) == (
        "Q ",
        "passage: ",
        "query",
        8,
    )


def test_folders_minilm_cannot_encode_like_sentence_transformers_are_refused(model, tmp_path):
    model.save(tmp_path / "m")
    settings = tmp_path / "m" / "config_sentence_transformers.json"
    settings.write_text(json.dumps({"model_type": "SparseEncoder"}))
    with pytest.raises(CheckpointError, match="model_type 'SparseEncoder' is not supported"):
        SentenceEncoder.from_pretrained(tmp_path / "m")
    settings.write_text(json.dumps({"prompts": {"q": 1}}))
    with pytest.raises(ValueError, match="prompts must map prompt names"):
        SentenceEncoder.from_pretrained(tmp_path / "m")
    settings.write_text(json.dumps({"default_prompt_name": "missing"}))
    with pytest.raises(CheckpointError, match="default_prompt_name 'missing' is not one of the prompts"):
        SentenceEncoder.from_pretrained(tmp_path / "m")
    settings.unlink()
    pooling = tmp_path / "m" / "1_Pooling" / "config.json"
    pooling.write_text(json.dumps({"embedding_dimension": 32, "pooling_mode": "mean", "include_prompt": False}))
    with pytest.raises(CheckpointError, match="include_prompt = False is not supported"):
        SentenceEncoder.from_pretrained(tmp_path / "m")
    pooling.write_text(json.dumps({"embedding_dimension": 32, "pooling_mode": "mean"}))
    (tmp_path / "m" / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 1}))
    with pytest.raises(CheckpointError, match="max_seq_length must be an integer >= 2"):
        SentenceEncoder.from_pretrained(tmp_path / "m")
