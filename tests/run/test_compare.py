"""minilm compare: the statistics against brute-force oracles, the command on a tiny random model (within tolerance,
beyond it with the int8 model, with a scored pair file), and the message when sentence-transformers is missing.

Tolerance: the statistics are float64 and compared to 1e-12 with loop oracles; the tiny model's two encoders agree
to the command's default tolerance 1e-4 (float32 rounding, ~1e-7)."""

import sys

import numpy as np
import pytest
from helpers import tiny_encoder

from minilm.cli import main
from minilm.loading.tokenizer import WordPieceTokenizer
from minilm.run.compare import compare_embeddings

TEXTS = [
    "a cat sits on the mat",
    "a dog lies on the rug",
    "stock markets fell sharply",
    "the cat sat",
    "a cat sits on the mat",
    "rain is expected tomorrow",
    "markets rallied today",
    "two dogs run in a field",
    "it will snow tonight",
    "the dog sleeps",
    "prices of shares dropped",
    "a kitten on a carpet",
]


@pytest.fixture(scope="module")
def model_dir(minilm_dir, tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "model"
    tiny_encoder(WordPieceTokenizer.from_dir(minilm_dir, 64)).save(path)
    return path


def oracle(ours, theirs, texts, k):
    """The same statistics, one line at a time in float64."""
    a, b = ours.astype(np.float64), theirs.astype(np.float64)
    cos = [float(x @ y / np.linalg.norm(x) / np.linalg.norm(y)) for x, y in zip(a, b)]
    first = []
    for i, t in enumerate(texts):
        if t not in [texts[j] for j in first]:
            first.append(i)

    def neighbours(m, i):
        scores = [
            (float(m[i] @ m[j] / np.linalg.norm(m[i]) / np.linalg.norm(m[j])), j) for j in range(len(m)) if j != i
        ]
        return {j for _, j in sorted(scores, key=lambda s: -s[0])[:k]}

    ua, ub = a[first], b[first]
    shared = [len(neighbours(ua, i) & neighbours(ub, i)) for i in range(len(first))]
    return (
        np.abs(a - b).max(),
        min(cos),
        sum(cos) / len(cos),
        sum(shared) / (k * len(first)),
        sum(s == k for s in shared),
        len(first),
    )


def test_statistics_match_a_loop_oracle():
    rng = np.random.default_rng(0)
    ours = rng.normal(size=(len(TEXTS), 8)).astype(np.float32)
    ours[4] = ours[0]  # the duplicate text has the same embedding
    theirs = ours + rng.normal(scale=0.3, size=ours.shape).astype(np.float32)  # enough to move some neighbours
    theirs[4] = theirs[0]
    result = compare_embeddings(ours, theirs, TEXTS, k=3)
    expected = oracle(ours, theirs, TEXTS, 3)
    got = (
        result.max_abs_difference,
        result.cosine_min,
        result.cosine_mean,
        result.neighbour_agreement,
        result.identical_neighbourhoods,
        result.unique_lines,
    )
    assert np.allclose(got, expected, rtol=0, atol=1e-12), (got, expected)
    assert 0 < result.neighbour_agreement < 1 and result.lines == 12 and result.unique_lines == 11
    same = compare_embeddings(ours, ours.copy(), TEXTS, k=3)
    assert same.max_abs_difference == 0 and same.neighbour_agreement == 1 and same.identical_neighbourhoods == 11
    with pytest.raises(ValueError, match="differ in shape"):
        compare_embeddings(ours, theirs[:, :4], TEXTS)


def test_compare_command_within_and_beyond_tolerance(model_dir, tmp_path, capsys):
    (tmp_path / "in.txt").write_text("\n".join(TEXTS) + "\n", encoding="utf-8")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(
        "a,b,score\n" + "".join(f"{TEXTS[i]},{TEXTS[(i * 5) % 12]},{i % 4}\n" for i in range(12)), encoding="utf-8"
    )
    args = ["compare", "--model", str(model_dir), "--input", str(tmp_path / "in.txt"), "--pairs", str(pairs)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "\nlines                            12 (11 unique)\n" in out
    assert "top-10 neighbour agreement" in out and "Spearman, 12 scored pairs" in out
    assert out.rstrip().endswith("within tolerance")
    assert main([*args, "--quantized-model"]) == 1  # the int8 model is far beyond 1e-4
    assert capsys.readouterr().out.rstrip().endswith("BEYOND TOLERANCE")
    assert main([*args, "--tolerance", "-1"]) == 2
    assert "--tolerance must be >= 0" in capsys.readouterr().err


def test_missing_sentence_transformers_is_a_one_line_message(model_dir, tmp_path, monkeypatch, capsys):
    (tmp_path / "in.txt").write_text("a\nb\n", encoding="utf-8")
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)  # import sentence_transformers -> ImportError
    assert main(["compare", "--model", str(model_dir), "--input", str(tmp_path / "in.txt")]) == 2
    err = capsys.readouterr().err
    assert err == (
        "minilm compare: error: minilm compare needs sentence-transformers, which is not installed: "
        "pip install 'minilm[compare]'\n"
    )


def test_bad_input_is_named(model_dir, tmp_path, capsys):
    assert main(["compare", "--model", str(model_dir), "--input", str(tmp_path / "nope.txt")]) == 2
    assert "input file" in capsys.readouterr().err
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    assert main(["compare", "--model", str(model_dir), "--input", str(tmp_path / "empty.txt")]) == 2
    assert "no sentences to compare" in capsys.readouterr().err
