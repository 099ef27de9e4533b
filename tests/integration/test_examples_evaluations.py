"""The worked example of docs/research.md's "Several evaluations in one run": examples/evaluations/sts_retrieval.py
makes a retrieval evaluation with distractors from an STS file, and examples/evaluations/two_evaluations.toml names
it beside STS-B dev."""

import importlib.util
import json
from pathlib import Path

import pytest

from minilm.data.retrieval import read_retrieval
from minilm.run.recipe import load_recipe

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "evaluations"


def example():
    spec = importlib.util.spec_from_file_location("sts_retrieval", EXAMPLES / "sts_retrieval.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


STS = "".join(
    f"g\tf\t2012\t{i}\t{score}\t{a}\t{b}\n"
    for i, (score, a, b) in enumerate(
        [
            (4.5, "a cat sits", "a cat is sitting"),
            (1.0, "rain today", "a cat is sitting"),
            (4.0, "a cat sits", "the cat sat"),
            (2.0, "stocks fell", "markets rose"),
        ]
    )
)


def test_queries_are_high_scoring_pairs_and_the_corpus_every_second_sentence(tmp_path):
    (tmp_path / "sts.csv").write_text(STS, encoding="utf-8")
    assert example().build(tmp_path / "sts.csv", tmp_path / "out") == (2, 3)
    queries = [json.loads(line) for line in (tmp_path / "out" / "queries.jsonl").read_text().splitlines()]
    assert queries == [
        {"id": "q00001", "query": "a cat sits", "relevant": "d00000"},
        {"id": "q00003", "query": "a cat sits", "relevant": "d00001"},
    ]  # one text, two queries
    found = read_retrieval(tmp_path / "out" / "queries.jsonl", tmp_path / "out" / "corpus.jsonl", roles={"id": "id"})
    assert found.corpus == {"d00000": "a cat is sitting", "d00001": "the cat sat", "d00002": "markets rose"}
    assert found.relevant == [{"d00000"}, {"d00001"}]


def test_a_file_without_a_high_scoring_pair_is_refused(tmp_path):
    (tmp_path / "sts.csv").write_text(STS, encoding="utf-8")
    with pytest.raises(ValueError, match="no pair scores at least 4.8: no query to evaluate"):
        example().main([str(tmp_path / "sts.csv"), "--output", str(tmp_path / "out"), "--min-score", "4.8"])
    assert not (tmp_path / "out" / "queries.jsonl").exists()


def test_the_example_recipe_names_both_evaluations(tmp_path, sts_dir, minilm_dir):
    example().build(sts_dir / "sts-dev.csv", tmp_path)
    recipe = load_recipe(
        EXAMPLES / "two_evaluations.toml",
        [
            f'model.base="{minilm_dir}"',
            f'eval.retrieval.data="{tmp_path / "queries.jsonl"}"',
            f'eval.retrieval.corpus="{tmp_path / "corpus.jsonl"}"',
        ],
    )
    assert list(recipe.evaluations) == ["sts", "retrieval"]
    assert recipe.train["metric_for_best"] in recipe.metric_names()
