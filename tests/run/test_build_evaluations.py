"""A run with two named evaluations (minilm/run/build.py recipe_evaluator through the trainer, best.py, the card,
TensorBoard, minilm plot): an STS table and retrieval against a corpus with distractors, both run before, during and
after training and logged as name/metric; metric_for_best and early stopping follow one of them; a sweep's metric
names one of them too (minilm/sweep/spec.py), checked before any model loads."""

import json

import pytest
from helpers import write_tiny_recipe

from minilm.run.build import recipe_evaluator, run_recipe
from minilm.run.plots import plot_run
from minilm.run.recipe import load_recipe
from minilm.sweep.spec import SweepError, load_sweep

EVALS = """
[eval.sts]
task = "similarity"
data = "sts.tsv"
format = "sts"

[eval.ir]
task = "retrieval"
data = "queries.jsonl"
corpus = "corpus.jsonl"
"""


def with_two_evaluations(tmp_path, tiny_base, train="eval_steps = 2"):
    path = write_tiny_recipe(tmp_path, tiny_base, steps=4, train=train)
    sts = [
        f"g\tf\t2012\t{i}\t{i % 6}\tquestion number {i} about topic {i % 7}\tanswer {i} on topic {i % 5}"
        for i in range(12)
    ]
    (tmp_path / "sts.tsv").write_text("\n".join(sts) + "\n", encoding="utf-8")
    documents = [{"id": f"a{i}", "text": f"answer {i} explains topic {i % 7} in words"} for i in range(10)]
    documents += [{"id": f"x{i}", "text": f"an unrelated note {i} on cooking"} for i in range(20)]  # distractors
    (tmp_path / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in documents), encoding="utf-8")
    queries = [{"query": f"question number {i} about topic {i % 7}", "relevant": f"a{i}"} for i in range(10)]
    (tmp_path / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries), encoding="utf-8")
    path.write_text(path.read_text(encoding="utf-8") + EVALS, encoding="utf-8")
    return path


@pytest.mark.slow
def test_every_evaluation_is_run_logged_and_carded(tmp_path, tiny_base):
    path = with_two_evaluations(tmp_path, tiny_base)
    overrides = ['train.metric_for_best="ir/mrr@10"', "train.report_to=['jsonl', 'tensorboard']"]
    history = run_recipe(load_recipe(path, overrides), tmp_path / "out", log=lambda _: None)
    recipe = load_recipe(path)
    keys = recipe.metric_names()
    assert [h["step"] for h in history] == [0, 2, 4]
    assert all(list(h)[1:] == keys for h in history)  # every metric of both, named
    logged = [
        json.loads(line)["eval"]
        for line in (tmp_path / "out" / "log.jsonl").read_text().splitlines()
        if '"eval"' in line
    ]
    assert [list(e) for e in logged] == [keys] * 3

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "out" / "tensorboard"))
    events.Reload()
    assert {"eval/sts/spearman", "eval/ir/mrr@10", "eval/ir/precision@1"} <= set(events.Tags()["scalars"])

    card = (tmp_path / "out" / "final" / "README.md").read_text(encoding="utf-8")
    assert "#### sts (Similarity)" in card and "#### ir (Retrieval)" in card
    assert "| **ir/mrr@10**   | **" in card  # metric_for_best in bold
    assert "* Dataset: `queries`" in card and "sts/spearman" in card.split("### Training Logs")[1]
    front = card.split("---")[1]
    assert "name: Similarity" in front and "name: Retrieval" in front and "type: spearman" in front

    written = [p.name for p in plot_run(tmp_path / "out")]
    assert {"eval_sts_spearman.png", "eval_ir_mrr_at_10.png"} <= set(written)


@pytest.mark.slow
def test_early_stopping_follows_the_named_metric(tmp_path, tiny_base):
    # lr 1e-12 moves no float32 weight (far below their ulp): every evaluation equals the last, none is better
    path = with_two_evaluations(tmp_path, tiny_base, train="eval_steps = 1")
    overrides = ['train.metric_for_best="sts/pearson"', "train.early_stopping_patience=1", "train.lr=1e-12"]
    said = []
    history = run_recipe(load_recipe(path, overrides), tmp_path / "out", log=said.append)
    assert any("early stopping at step 2: sts/pearson has not improved for 1 evaluations" in s for s in said), said
    assert [h["step"] for h in history] == [0, 1, 2]


def test_a_sweep_metric_names_one_evaluation(tmp_path, tiny_base, monkeypatch):
    from minilm.encoder import SentenceEncoder

    monkeypatch.setattr(SentenceEncoder, "from_pretrained", lambda *a, **k: pytest.fail("a model was loaded"))
    path = with_two_evaluations(tmp_path, tiny_base)
    sweep = tmp_path / "sweep.toml"
    body = f'recipe = "{path.name}"\nseeds = [1]\n{{metric}}\n[[configs]]\nloss = {{{{ name = "mnrl" }}}}\n'
    sweep.write_text(body.format(metric='metric = "ir/ndcg@10"'), encoding="utf-8")
    assert load_sweep(sweep, tmp_path / "out").metric == "ir/ndcg@10"
    sweep.write_text(body.format(metric='metric = "ndcg@10"'), encoding="utf-8")
    with pytest.raises(
        SweepError,
        match=r"metric 'ndcg@10' is not one the evaluation gives: \['sts/pearson', .*\] "
        r"\(a named evaluation's metric is <name>/<metric>\)",
    ):
        load_sweep(sweep, tmp_path / "out")


def test_a_bad_evaluation_file_names_its_table(tmp_path, tiny_base):
    path = with_two_evaluations(tmp_path, tiny_base)
    (tmp_path / "queries.jsonl").write_text('{"query": "q", "relevant": "nowhere"}\n', encoding="utf-8")
    with pytest.raises(
        ValueError,
        match=r"r?tiny\.toml: \[eval\.ir\] .*queries\.jsonl:1: relevant id 'nowhere' is "
        r"not a document id of the corpus",
    ):
        recipe_evaluator(load_recipe(path))
