""" "Change only the import" (issue 20; minilm/encoder.py, minilm/encoding/similarity.py): similarity,
similarity_pairwise, similarity_fn_name, get_sentence_embedding_dimension, truncate_sentence_embeddings and
save_pretrained exist with sentence-transformers' meanings, each compared with sentence-transformers on the same
model. Quantised (integer) embeddings give a clear error instead of sentence-transformers' torch error or wrapped-around
int8 products.

Tolerance: similarities are computed with the same torch operations on the same float32 inputs: equal to 1e-6."""

import warnings

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from minilm.encoder import SentenceEncoder

TEXTS = ["A man is eating food.", "A man is riding a horse.", "The cat sleeps.", "Stocks fell sharply today."]
FUNCTIONS = ["cosine", "dot", "euclidean", "manhattan"]


@pytest.fixture(scope="module")
def embeddings(real_model):
    return real_model.encode(TEXTS)


def close(ours, theirs) -> bool:
    return isinstance(ours, torch.Tensor) and ours.shape == theirs.shape and bool((ours - theirs).abs().max() <= 1e-6)


@pytest.mark.parametrize("fn", FUNCTIONS)
def test_similarity_and_pairwise_equal_sentence_transformers(real_model, st_real_model, embeddings, fn):
    real_model.similarity_fn_name = st_real_model.similarity_fn_name = fn
    try:
        a, b = embeddings[:2], embeddings[1:]
        tensor = torch.from_numpy(embeddings)
        for x, y in [
            (embeddings, embeddings),
            (a, b),
            (tensor, tensor),
            (list(tensor), list(tensor)),
            (embeddings[0], embeddings),
            (list(embeddings), embeddings),
        ]:
            assert close(real_model.similarity(x, y), st_real_model.similarity(x, y)), fn
        assert close(
            real_model.similarity_pairwise(b, b[::-1].copy()), st_real_model.similarity_pairwise(b, b[::-1].copy())
        )
        assert close(real_model.similarity_pairwise(tensor, tensor), st_real_model.similarity_pairwise(tensor, tensor))
    finally:
        real_model.similarity_fn_name = st_real_model.similarity_fn_name = "cosine"


def test_similarity_fn_name_defaults_validates_and_round_trips(real_model, st_real_model, minilm_dir, tmp_path):
    assert real_model.similarity_fn_name == st_real_model.similarity_fn_name == "cosine"
    with pytest.raises(
        ValueError,
        match=r"similarity_fn_name must be one of \('cosine', 'dot', 'euclidean', "
        r"'manhattan'\), got 'maxsim'",
    ):
        real_model.similarity_fn_name = "maxsim"
    from sentence_transformers import SimilarityFunction

    model = SentenceEncoder.from_pretrained(minilm_dir)
    model.similarity_fn_name = SimilarityFunction.DOT_PRODUCT  # ST's enum, by value
    model.save(tmp_path / "ours")
    theirs = SentenceTransformer(str(tmp_path / "ours"), device="cpu")
    assert theirs.similarity_fn_name == "dot"
    assert "- **Similarity Function:** Dot Product" in (tmp_path / "ours" / "README.md").read_text(encoding="utf-8")
    theirs.similarity_fn_name = "manhattan"
    theirs.save(str(tmp_path / "theirs"))
    assert SentenceEncoder.from_pretrained(tmp_path / "theirs").similarity_fn_name == "manhattan"


@pytest.mark.parametrize("precision", ["int8", "uint8", "binary", "ubinary"])
def test_quantised_embeddings_are_a_clear_error_not_a_torch_error(real_model, st_real_model, precision):
    codes = real_model.encode(TEXTS, precision=precision)
    assert codes.dtype in (np.int8, np.uint8)
    for method in ("similarity", "similarity_pairwise"):
        with pytest.raises(
            ValueError,
            match=r"similarity: embeddings1 holds u?int8 embeddings \(quantised with "
            r"precision int8 / uint8 / binary\?\); .*precision='float32'",
        ):
            getattr(real_model, method)(codes, codes)
        with pytest.raises(RuntimeError):  # what sentence-transformers does for cosine
            getattr(st_real_model, method)(codes, codes)
    floats = codes.astype(np.float32)  # what the message says to do works, and equals sentence-transformers
    assert close(real_model.similarity(floats, floats), st_real_model.similarity(floats, floats))


def test_the_command_line_similarity_prints_the_matrix(minilm_dir, capsys):
    from minilm.cli import main

    assert main(["similarity", "--model", str(minilm_dir), "a cat", "a dog"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].split()[-2:] == ["+1.0000", out[1].split()[-2]]


def test_embedding_dimension_and_truncation_under_their_former_names(real_model, st_real_model):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # sentence-transformers 6 deprecates the old names
        assert real_model.get_sentence_embedding_dimension() == st_real_model.get_sentence_embedding_dimension() == 384
        with real_model.truncate_sentence_embeddings(16), st_real_model.truncate_sentence_embeddings(16):
            assert real_model.get_sentence_embedding_dimension() == st_real_model.get_sentence_embedding_dimension()
            assert real_model.encode(TEXTS).shape == st_real_model.encode(TEXTS).shape == (4, 16)
    assert real_model.encode(TEXTS).shape == (4, 384) and real_model.truncate_dim is None


def test_save_pretrained_writes_what_sentence_transformers_loads(real_model, tmp_path):
    real_model.save_pretrained(str(tmp_path / "m"))
    theirs = SentenceTransformer(str(tmp_path / "m"), device="cpu")
    assert np.abs(theirs.encode(TEXTS) - real_model.encode(TEXTS)).max() <= 1e-5
    assert (tmp_path / "m" / "README.md").is_file()
    real_model.save_pretrained(tmp_path / "plain", create_model_card=False)
    assert not (tmp_path / "plain" / "README.md").exists() and (tmp_path / "plain" / "model.safetensors").is_file()
    with pytest.raises(ValueError, match="safe_serialization=False .* is not supported"):
        real_model.save_pretrained(tmp_path / "pickle", safe_serialization=False)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="holds files minilm did not write"):  # save's refusals hold
        real_model.save_pretrained(tmp_path / "mine")
