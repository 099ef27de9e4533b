"""Several named evaluations in a recipe (minilm/run/recipe.py): ``[eval.<name>]`` tables, each checked like the one
``[eval]`` table (which keeps working); metrics named ``name/metric`` for metric_for_best and a sweep's metric; every
file fingerprinted in run.json; a retrieval corpus checked before any model loads. Every refusal names the table."""

import json
import re

import pytest

from minilm.run.output_dir import differences, run_record
from minilm.run.recipe import RecipeError, load_recipe, make_quick

HEAD = """name = "r"
[model]
base = "never/loaded"
[data]
train = "pairs.csv"
roles = { anchor = "a", positive = "b" }
[loss]
name = "mnrl"
[train]
batch_size = 2
"""
STS = """[eval.sts]
task = "similarity"
data = "sts.tsv"
format = "sts"
"""
IR = """[eval.ir]
task = "retrieval"
data = "queries.jsonl"
corpus = "corpus.jsonl"
limit = 2
"""


@pytest.fixture()
def folder(tmp_path):
    (tmp_path / "pairs.csv").write_text("a,b\nq1,a1\nq2,a2\nq3,a3\n", encoding="utf-8")
    (tmp_path / "sts.tsv").write_text(
        "g\tf\t2012\t1\t4.0\tx one\ty one\ng\tf\t2012\t2\t1.0\tx two\ty two\n", encoding="utf-8"
    )
    (tmp_path / "corpus.jsonl").write_text(
        '{"id": "d1", "text": "doc"}\n{"id": "d2", "text": "other"}\n', encoding="utf-8"
    )
    (tmp_path / "queries.jsonl").write_text('{"query": "q", "relevant": "d1"}\n', encoding="utf-8")
    (tmp_path / "triplets.csv").write_text("a,p,n\nx,y,z\n", encoding="utf-8")
    return tmp_path


def recipe(folder, text, overrides=()):
    path = folder / "r.toml"
    path.write_text(HEAD + text, encoding="utf-8")
    return load_recipe(path, list(overrides))


def refused(folder, text, overrides=()):
    with pytest.raises(RecipeError) as e:
        recipe(folder, text, overrides)
    return str(e.value)


def test_named_evaluations_are_checked_and_named(folder):
    r = recipe(folder, STS + IR, ['train.metric_for_best="ir/mrr@10"'])
    assert list(r.evaluations) == ["sts", "ir"]
    assert r.evaluations["ir"]["corpus"] == str(folder / "corpus.jsonl") and r.evaluations["ir"]["limit"] == 2
    assert r.metric_names()[:4] == ["sts/pearson", "sts/spearman", "ir/mrr@10", "ir/ndcg@10"]
    assert r.eval_files() == {
        "eval.sts": str(folder / "sts.tsv"),
        "eval.ir": str(folder / "queries.jsonl"),
        "eval.ir.corpus": str(folder / "corpus.jsonl"),
    }
    record = run_record(r)
    assert set(record["data_sha256"]) == {"train", "eval.sts", "eval.ir", "eval.ir.corpus"}
    assert record["recipe"]["eval"]["sts"]["task"] == "similarity"
    assert [e["limit"] for e in make_quick(r).evaluations.values()] == [32, 32]


def test_the_single_table_form_keeps_its_plain_names(folder):
    r = recipe(folder, STS.replace("[eval.sts]", "[eval]"), ['train.metric_for_best="spearman"'])
    assert list(r.evaluations) == [""] and r.metric_names() == ["pearson", "spearman"]
    assert r.eval_files() == {"eval": str(folder / "sts.tsv")}
    assert set(run_record(r)["data_sha256"]) == {"train", "eval"}  # as before: an older run.json still matches


def test_a_record_from_before_the_new_keys_still_matches(folder):
    now = run_record(recipe(folder, STS.replace("[eval.sts]", "[eval]")))
    older = json.loads(json.dumps(now))
    for section, key in (("eval", "corpus"), ("eval", "corpus_roles"), ("data", "drop_last")):
        del older["recipe"][section][key]
    assert differences(older, now) == []
    changed = json.loads(json.dumps(now))
    changed["recipe"]["eval"]["limit"] = 5
    assert differences(changed, now) == ["recipe.eval.limit: 5 -> 0"]


@pytest.mark.parametrize(
    "text, message",
    [
        (STS + "metric = 'spearman'\n", "unknown key [eval.sts] metric; known: task, data"),
        (
            "[eval]\nbatch_size = 8\n" + STS,
            "[eval] has named evaluations ([eval.sts]) and also batch_size outside them: every setting goes inside",
        ),
        (
            "[eval]\ntask = 'similarity'\ndata = 'sts.tsv'\nformat = 'sts'\n[eval.ir]\ntask = 'retrieval'\n",
            "[eval] holds one evaluation's settings (task, data, format) and named evaluations ([eval.ir]): give every "
            "evaluation its own [eval.<name>] table",
        ),
        (
            '[eval."s t s"]\ntask = "similarity"\ndata = "sts.tsv"\nformat = "sts"\n',
            "[eval.s t s]: an evaluation's name is letters, digits, _ and -",
        ),
        ("[eval.sts]\ndata = 'sts.tsv'\n", "missing key [eval.sts] task"),
        (STS.replace("similarity", "ranking"), "[eval.sts] task must be one of"),
        (STS + "limit = -1\n", "[eval.sts] limit must be >= 0 (0: every row), got -1"),
        (STS + "batch_size = 0\n", "[eval.sts] batch_size must be >= 1, got 0"),
        (STS.replace("sts.tsv", "missing.tsv"), "[eval.sts] data file missing.tsv not found"),
        (STS.replace('format = "sts"', 'roles = { a = "x" }'), "[eval.sts] roles ['a'] do not fit task 'similarity'"),
        (STS + "limit = 1.5\n", "[eval.sts] limit must be int, got float 1.5"),
    ],
)
def test_a_bad_named_evaluation_is_refused_naming_its_table(folder, text, message):
    assert message in refused(folder, text)


@pytest.mark.parametrize(
    "text, message",
    [
        (IR.replace("corpus.jsonl", "nowhere.jsonl"), "[eval.ir] corpus file nowhere.jsonl not found"),
        (
            IR.replace("retrieval", "triplet") + "roles = { anchor = 'a', positive = 'p', negative = 'n' }\n",
            "[eval.ir] corpus is a file of documents to retrieve, for task 'retrieval' with files read by their suffix "
            "(.jsonl, .csv, .tsv), not task 'triplet'",
        ),
        (IR + "format = 'sts'\n", "not format 'sts'"),
        (
            IR + "roles = { anchor = 'q' }\n",
            "[eval.ir] roles map query, relevant, id to a column name each; unknown ['anchor']",
        ),
        (
            IR + "corpus_roles = { id = ['a', 'b'] }\n",
            "[eval.ir] corpus_roles map id, text to a column name each; not a name: ['id']",
        ),
        (
            STS + "corpus_roles = { id = 'doc' }\n",
            "[eval.sts] corpus_roles name the columns of a corpus file, but there is no corpus",
        ),
        (IR + "header = false\n", "[eval.ir] header = false needs columns = [...]"),
    ],
)
def test_a_bad_retrieval_corpus_is_refused_before_any_model_loads(folder, text, message):
    assert message in refused(folder, text)


def test_the_single_form_keeps_its_messages(folder):
    assert "[eval] task must be one of" in refused(folder, "[eval]\ntask = 'x'\ndata = 'sts.tsv'\nformat = 'sts'\n")
    assert "missing key [eval] task" in refused(folder, "[eval]\ndata = 'sts.tsv'\n")


@pytest.mark.parametrize(
    "metric, message",
    [
        (
            "spearman",
            "[train] metric_for_best must be a metric of the evaluations: one of ['sts/pearson', "
            "'sts/spearman', 'ir/mrr@10'",
        ),
        ("spearman", "got 'spearman' (a metric of a named evaluation is <name>/<metric>, e.g. 'sts/pearson')"),
        ("ir/spearman", "got 'ir/spearman'"),
        ("nope/mrr@10", "got 'nope/mrr@10'"),
    ],
)
def test_metric_for_best_names_one_evaluations_metric(folder, metric, message):
    assert message in refused(folder, STS + IR, [f'train.metric_for_best="{metric}"'])
    assert "(a metric of a named" not in refused(folder, STS + IR, ['train.metric_for_best="ir/spearman"'])


def test_a_single_evaluations_metric_for_best_says_its_task(folder):
    message = refused(folder, STS.replace("[eval.sts]", "[eval]"), ['train.metric_for_best="sts/spearman"'])
    assert re.search(
        r"metric_for_best must be a metric of the \[eval\] task 'similarity': one of \['pearson', "
        r"'spearman'\], got 'sts/spearman'$",
        message,
    )
