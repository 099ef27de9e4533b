"""The command line, run as a user would: a real subprocess, real files, stdin."""

import subprocess
import sys

import numpy as np
import pytest


def run(*args, stdin=None):
    return subprocess.run(
        [sys.executable, "-m", "minilm", *args], input=stdin, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
@pytest.mark.real_weights
@pytest.mark.subprocess
def test_encode_from_stdin_and_file_and_similarity(minilm_dir, tmp_path):
    out = tmp_path / "emb.npy"
    result = run("encode", "--model", str(minilm_dir), "--input", "-", "--output", str(out), stdin="a cat\na dog\n")
    assert result.returncode == 0, result.stderr
    emb = np.load(out)
    assert emb.shape == (2, 384)

    (tmp_path / "in.txt").write_text("a cat\na dog\n", encoding="utf-8")
    result = run("encode", "--model", str(minilm_dir), "--input", str(tmp_path / "in.txt"), "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert np.array_equal(np.load(out), emb)

    result = run("similarity", "--model", str(minilm_dir), "a cat", "a dog")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and "+1.0000" in lines[0]
    assert f"{float(emb[0] @ emb[1]):+.4f}" in lines[0]


@pytest.mark.slow
@pytest.mark.subprocess
def test_bad_model_and_missing_input_are_one_line_errors(tmp_path):
    result = run(
        "encode", "--model", str(tmp_path / "nope"), "--input", "-", "--output", str(tmp_path / "o.npy"), stdin="x\n"
    )
    assert result.returncode == 2
    assert "cannot find model" in result.stderr and "Traceback" not in result.stderr
    result = run("encode", "--input", str(tmp_path / "missing.txt"), "--output", str(tmp_path / "o.npy"))
    assert result.returncode != 0 and "missing.txt does not exist" in result.stderr


@pytest.mark.slow
@pytest.mark.real_weights
@pytest.mark.subprocess
def test_encode_quantized_model_flag(minilm_dir, tmp_path):
    """--quantized-model reaches encode(quantized_model=True): float output close to fp32 (cosine > 0.95; ~0.97
    measured)."""
    (tmp_path / "in.txt").write_text("a cat sits on the mat\nstock markets fell sharply\n", encoding="utf-8")
    outs = {}
    for name, flags in (("float32", []), ("int8", ["--quantized-model"])):
        outs[name] = tmp_path / f"{name}.npy"
        result = run(
            "encode",
            "--model",
            str(minilm_dir),
            "--input",
            str(tmp_path / "in.txt"),
            "--output",
            str(outs[name]),
            *flags,
        )
        assert result.returncode == 0, result.stderr
    a, b = np.load(outs["float32"]), np.load(outs["int8"])
    assert not np.array_equal(a, b) and ((a * b).sum(1) > 0.95).all()


def test_train_compile_flag_sets_the_recipe_key(monkeypatch, tmp_path):
    import minilm.run.build
    from minilm.cli import main

    (tmp_path / "d.csv").write_text("anchor,positive\nq1,a1\nq2,a2\n", encoding="utf-8")
    recipe = tmp_path / "r.toml"
    recipe.write_text(
        'name = "r"\n[model]\nbase = "x"\n[data]\ntrain = "d.csv"\n'
        'roles = { anchor = "anchor", positive = "positive" }\n[loss]\nname = "mnrl"\n'
        "[train]\nbatch_size = 2\n",
        encoding="utf-8",
    )
    seen = []
    monkeypatch.setattr(minilm.run.build, "run_recipe", lambda r, *a, **k: seen.append(r.train["compile"]) or [])
    assert main(["train", str(recipe), "--output", str(tmp_path / "out")]) == 0
    assert main(["train", str(recipe), "--compile", "--output", str(tmp_path / "out")]) == 0
    assert seen == [False, True]


@pytest.mark.real_weights
def test_encode_compile_flag_reaches_from_pretrained(monkeypatch, tmp_path, minilm_dir):
    from minilm.cli import main
    from minilm.encoder import SentenceEncoder

    seen = []
    real = SentenceEncoder.from_pretrained.__func__

    def spy(cls, name, device=None, compile=False):
        seen.append(compile)
        return real(cls, name, device)  # eager: the flag's wiring is what is checked here, not compiling

    monkeypatch.setattr(SentenceEncoder, "from_pretrained", classmethod(spy))
    (tmp_path / "in.txt").write_text("a cat\n", encoding="utf-8")
    for flags in ([], ["--compile"]):
        args = [
            "encode",
            "--model",
            str(minilm_dir),
            "--input",
            str(tmp_path / "in.txt"),
            "--output",
            str(tmp_path / "e.npy"),
            *flags,
        ]
        assert main(args) == 0
    assert seen == [False, True]


def test_eval_roles_without_equals_is_a_one_line_error(tmp_path, capsys):
    from minilm.cli import main

    (tmp_path / "d.csv").write_text("q,a\nx,y\n", encoding="utf-8")
    for bad in ("anchor", "anchor=", "=q"):
        code = main(["eval", "--data", str(tmp_path / "d.csv"), "--task", "retrieval", "--roles", bad, "positive=a"])
        assert code == 2
        assert f"--roles {bad!r}: expected ROLE=COLUMN" in capsys.readouterr().err
