"""Every message names the thing (issue 20; minilm/cli.py): `minilm eval` says which model scored how many rows, and
that the model is the default when no --model is given; `compare --tolerance nan` is refused; an --input that is a
directory is said to be one; a WORLD_SIZE that is not a number is named."""

import pytest
from helpers import tiny_encoder

from minilm.cli import main
from minilm.loading.tokenizer import WordPieceTokenizer


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, minilm_dir):
    directory = tmp_path_factory.mktemp("tiny") / "model"
    tiny_encoder(WordPieceTokenizer.from_dir(minilm_dir, 64)).save(directory)
    return directory


def one_error(capsys, args) -> str:
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture()
def scored(tmp_path):
    path = tmp_path / "sim.csv"
    path.write_text("a,b,score\na cat,a dog,0.9\nthe sea,a mat,0.1\nrain,snow,0.5\n", encoding="utf-8")
    return path


def test_eval_says_which_model_scored_how_many_rows(tiny_model, scored, capsys):
    assert main(["eval", "--model", str(tiny_model), "--data", str(scored), "--task", "similarity"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"model {tiny_model}: similarity on 3 rows of {scored}"
    assert out[1].startswith("pearson") or out[1].split()[0] in {"pearson", "spearman"}


def test_eval_without_model_says_it_used_the_default(scored, capsys):
    assert main(["eval", "--data", str(scored), "--task", "similarity"]) == 0
    first = capsys.readouterr().out.splitlines()[0]
    assert first == (
        f"model sentence-transformers/all-MiniLM-L6-v2 (the default: no --model given): similarity on "
        f"3 rows of {scored}"
    )


@pytest.mark.parametrize("tolerance", ["nan", "inf", "-1"])
def test_compare_refuses_a_tolerance_that_is_not_a_finite_non_negative_number(tmp_path, capsys, tolerance):
    (tmp_path / "in.txt").write_text("a\n", encoding="utf-8")
    err = one_error(capsys, ["compare", "--input", tmp_path / "in.txt", "--tolerance", tolerance])
    assert f"--tolerance must be >= 0 and finite, got {float(tolerance)}" in err


def test_an_input_directory_is_said_to_be_a_directory(tiny_model, tmp_path, capsys):
    (tmp_path / "texts").mkdir()
    err = one_error(capsys, ["compare", "--model", tiny_model, "--input", tmp_path / "texts"])
    assert f"input file {tmp_path / 'texts'} is a directory" in err and "does not exist" not in err
    err = one_error(
        capsys, ["encode", "--model", tiny_model, "--input", tmp_path / "texts", "--output", tmp_path / "o.npy"]
    )
    assert f"input file {tmp_path / 'texts'} is a directory" in err


def test_a_world_size_that_is_not_a_number_is_named(tiny_model, tmp_path, capsys, monkeypatch):
    (tmp_path / "in.txt").write_text("a\n", encoding="utf-8")
    monkeypatch.setenv("WORLD_SIZE", "abc")
    err = one_error(
        capsys, ["encode", "--model", tiny_model, "--input", tmp_path / "in.txt", "--output", tmp_path / "o.npy"]
    )
    assert "environment variable WORLD_SIZE='abc' is not an integer" in err
