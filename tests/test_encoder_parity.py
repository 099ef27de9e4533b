"""One script, run against sentence-transformers and against minilm with only the import and the constructor changed,
gives equal results for every encode option: the real all-MiniLM-L6-v2 weights, 40 STS-dev sentences plus edge cases
(empty, blank, non-ASCII; an over-long one is encoded on its own, since sentence-transformers pads its whole batch to
the longest).

Tolerances (what "equal" means for each kind of result; container type, dtype and shape must match exactly):
- float32 sentence and token embeddings: max abs difference <= 1e-5 (fp32 rounding of two implementations; measured
  up to 3.3e-7 for sentence embeddings and 1.7e-6 for token embeddings).
- int8 / uint8 codes: the two float inputs differ by ~1e-7, and so do the calibration ranges taken from them, so a
  value within that of a step boundary may land one step over: codes differ by at most 1, in at most 1 % of entries
  (measured 0.05-0.07 %).
- binary / ubinary: a sign that flips within ~1e-7 of zero changes one bit: at most 0.1 % of bytes differ (measured
  none).
And minilm's codes are bit-identical to sentence-transformers' quantize_embeddings of minilm's own float output.
"""

import warnings

import numpy as np
import pytest
import torch

from minilm.data.readers import read_sts

PROMPTS = {"query": "query: ", "classify": "Classify the topic: "}


def sentences(sts_dir) -> list[str]:
    s1, s2, _ = read_sts(sts_dir / "sts-dev.csv")
    return s1[:20] + s2[:20] + ["", "   ", "Ünïcödé façade — naïve café 東京"]


LONG = " ".join(f"word{i} supercalifragilistic" for i in range(150))  # ~900 tokens


def script(model, texts: list[str]) -> dict:
    """What a user of sentence-transformers' encode would write; every result keyed by what it exercised."""
    out = {
        "default": model.encode(texts),
        "batch_size=7": model.encode(texts, batch_size=7),
        "single string": model.encode(texts[3]),
        "normalize_embeddings": model.encode(texts, normalize_embeddings=True),
        "convert_to_tensor": model.encode(texts, convert_to_tensor=True),
        "convert_to_numpy=False": model.encode(texts, convert_to_numpy=False),
        "both convert flags": model.encode(texts, convert_to_numpy=True, convert_to_tensor=True),
        "show_progress_bar": model.encode(texts, show_progress_bar=True),
        "prompt": model.encode(texts, prompt="Represent this sentence: "),
        "prompt_name": model.encode(texts, prompt_name="classify"),
        "encode_query": model.encode_query(texts),
        "encode_document": model.encode_document(texts),
        "truncate_dim": model.encode(texts, truncate_dim=128),
        "truncate_dim + normalize": model.encode(texts, truncate_dim=64, normalize_embeddings=True),
        "token_embeddings": model.encode(texts, output_value="token_embeddings"),
        "token_embeddings, one": model.encode(texts[0], output_value="token_embeddings"),
        "over-long, cut at 256": model.encode([LONG, texts[0]]),
        "embedding dimension": model.get_embedding_dimension(),
        "max_seq_length": model.max_seq_length,
    }
    with model.truncate_embeddings(32):
        out["truncate_embeddings block"] = model.encode(texts)
        out["embedding dimension, truncated"] = model.get_embedding_dimension()
    with warnings.catch_warnings():  # both warn that 43 embeddings make a small calibration set
        warnings.simplefilter("ignore")
        for precision in ("int8", "uint8", "binary", "ubinary"):
            out[precision] = model.encode(texts, precision=precision)
            out[precision + ", tensor"] = model.encode(texts, precision=precision, convert_to_tensor=True)
            out[precision + ", list"] = model.encode(texts, precision=precision, convert_to_numpy=False)
            out[precision + ", truncated + normalised"] = model.encode(
                texts, precision=precision, truncate_dim=100, normalize_embeddings=True
            )
        out["token_embeddings, int8"] = model.encode(texts[:5], output_value="token_embeddings", precision="int8")
    model.max_seq_length = 16
    out["max_seq_length=16"] = model.encode(texts + [LONG])
    out["max_seq_length=16, tokens"] = model.encode(LONG, output_value="token_embeddings")
    model.max_seq_length = 256
    return out


def script_with_model_settings(model, texts: list[str]) -> dict:
    """A model built with a default prompt and a truncate_dim (config_sentence_transformers.json's settings)."""
    return {
        "default prompt + truncate_dim": model.encode(texts),
        "override prompt": model.encode(texts, prompt=""),
        "encode_query": model.encode_query(texts),
        "dimension": model.get_embedding_dimension(),
    }


def assert_equal_results(ours, theirs, case: str) -> None:
    assert type(ours) is type(theirs), (case, type(ours), type(theirs))
    if isinstance(theirs, (int, float)):
        assert ours == theirs, case
        return
    if isinstance(theirs, list):  # same element types and shapes, then the values compared as one array
        assert len(ours) == len(theirs), case
        for a, b in zip(ours, theirs):
            assert type(a) is type(b) and a.dtype == b.dtype and tuple(a.shape) == tuple(b.shape), case
        ours, theirs = (np.concatenate([as_numpy(x).reshape(-1) for x in xs]) for xs in (ours, theirs))
    assert ours.dtype == theirs.dtype and tuple(ours.shape) == tuple(theirs.shape), (case, ours.dtype, theirs.dtype)
    a, b = as_numpy(ours), as_numpy(theirs)
    if a.dtype == np.float32:
        assert np.abs(a - b).max() <= 1e-5, (case, np.abs(a - b).max())
    elif "binary" in case:
        assert (a != b).mean() <= 0.001, (case, (a != b).mean())
    else:  # int8 / uint8 codes
        diff = np.abs(a.astype(np.int16) - b.astype(np.int16))
        assert diff.max() <= 1 and (diff > 0).mean() <= 0.01, (case, diff.max(), (diff > 0).mean())
    MEASURED[case] = float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max()), float((a != b).mean())


MEASURED = {}  # case -> (max abs difference, fraction of entries that differ), printed with -s


def as_numpy(x):
    return x.numpy() if isinstance(x, torch.Tensor) else x


@pytest.mark.slow
@pytest.mark.real_weights
def test_the_same_script_gives_equal_results(minilm_dir, sts_dir):
    texts = sentences(sts_dir)
    from sentence_transformers import SentenceTransformer  # the only lines that differ between the two runs:

    theirs = script(SentenceTransformer(str(minilm_dir), device="cpu", prompts=PROMPTS), texts)

    from minilm.encoder import SentenceEncoder

    ours = script(SentenceEncoder.from_pretrained(minilm_dir, prompts=PROMPTS), texts)

    assert ours.keys() == theirs.keys()
    for case in theirs:
        assert_equal_results(ours[case], theirs[case], case)
    print("\n".join(f"{case}: max |diff| {d:.3g}, entries differing {f:.4%}" for case, (d, f) in MEASURED.items()))


@pytest.mark.slow
@pytest.mark.real_weights
def test_the_same_script_with_model_level_prompt_and_truncate_dim(minilm_dir, sts_dir):
    from sentence_transformers import SentenceTransformer

    from minilm.encoder import SentenceEncoder

    texts = sentences(sts_dir)
    settings = dict(prompts=PROMPTS, default_prompt_name="classify", truncate_dim=48)
    theirs = script_with_model_settings(SentenceTransformer(str(minilm_dir), device="cpu", **settings), texts)
    ours = script_with_model_settings(SentenceEncoder.from_pretrained(minilm_dir, **settings), texts)
    for case in theirs:
        assert_equal_results(ours[case], theirs[case], case)


@pytest.fixture(scope="module")
def float_embeddings(minilm_dir, sts_dir):
    """(model, texts, their float32 embeddings at truncate_dim 100): loaded and encoded once for the four precisions."""
    from minilm.encoder import SentenceEncoder

    model = SentenceEncoder.from_pretrained(minilm_dir)
    texts = sentences(sts_dir)
    return model, texts, model.encode(texts, truncate_dim=100)


@pytest.mark.real_weights
@pytest.mark.parametrize("precision", ["int8", "uint8", "binary", "ubinary"])
def test_precision_is_bit_identical_to_quantize_embeddings(float_embeddings, precision):
    from sentence_transformers.util.quantization import quantize_embeddings

    model, texts, floats = float_embeddings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        codes = model.encode(texts, precision=precision, truncate_dim=100)
        expected = quantize_embeddings(floats.copy(), precision=precision)
    assert codes.dtype == expected.dtype and np.array_equal(codes, expected)
