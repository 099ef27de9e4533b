"""``minilm train``'s closing table (minilm/cli.py): metric names of any length, named evaluations' included, stay in
their column."""

from minilm import cli


def test_long_metric_names_keep_the_columns(tmp_path, monkeypatch, capsys):
    from minilm.run import build, recipe

    history = [
        {"step": 0, "sts/spearman": 0.5, "retrieval/precision@10": 0.1},
        {"step": 4, "sts/spearman": 0.625, "retrieval/precision@10": 0.25},
    ]
    monkeypatch.setattr(recipe, "load_recipe", lambda *a, **k: type("R", (), {"name": "r", "overrides": ()})())
    monkeypatch.setattr(build, "run_recipe", lambda *a, **k: history)
    assert cli.main(["train", str(tmp_path / "r.toml"), "--output", str(tmp_path / "out")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "metric                  before    after",
        "sts/spearman            0.5000    0.6250",
        "retrieval/precision@10  0.1000    0.2500",
    ]
