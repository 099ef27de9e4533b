"""Retrieval against a separate corpus (minilm/data/retrieval.py, minilm/evaluation/evaluators.py): a corpus file with
distractors and exact ties, queries with one or several relevant ids, equal on every metric to sentence-transformers
6.2's InformationRetrievalEvaluator; every bad file is an error naming file and line; ``limit`` draws the queries and
keeps the whole corpus."""

import csv
import json
import re

import numpy as np
import pytest
from helpers import TableModel, st_reading

from minilm.data.readers import read_sts
from minilm.data.retrieval import check_roles, read_corpus, read_retrieval
from minilm.evaluation.evaluators import make_evaluator
from minilm.evaluation.metrics import METRICS

ST_EVAL = pytest.importorskip("sentence_transformers.sentence_transformer.evaluation")


@pytest.fixture(scope="module")
def collection(sts_dir):
    """40 queries (STS-dev first sentences of pairs scoring >= 3; two of them share a text), each relevant to its pair's
    second sentence; the
    corpus also holds 120 distractors (sentences of other pairs), 6 documents copied under another id (exact score
    ties, broken by id: some copies sort first, some after) and some queries count a second document as relevant."""
    s1, s2, scores = read_sts(sts_dir / "sts-dev.csv")
    pairs = [(a, b) for a, b, s in zip(s1, s2, scores) if s >= 3.0][:40]
    distractors = [t for a, b, s in zip(s1, s2, scores) if s < 2.0 for t in (a, b)][:120]
    corpus = {f"d{(37 * i) % 1000:03d}": b for i, (_, b) in enumerate(pairs)}
    ids = list(corpus)
    corpus.update({f"x{i:03d}": t for i, t in enumerate(distractors)})
    relevant = {f"q{i:02d}": [ids[i]] for i in range(len(pairs))}
    for i in range(0, 24, 4):
        copy_id = ("a" if i % 8 else "z") + ids[i]
        corpus[copy_id] = corpus[ids[i]]
        if i % 3 == 0:
            relevant[f"q{i:02d}"].append(copy_id)
    relevant["q05"].append("x007")  # a distractor that counts too
    queries = {f"q{i:02d}": a for i, (a, _) in enumerate(pairs)}
    return queries, corpus, relevant


@pytest.fixture(scope="module")
def table(st_real_model, collection):
    queries, corpus, _ = collection
    texts = list(dict.fromkeys([*queries.values(), *corpus.values()]))
    return dict(zip(texts, st_real_model.encode(texts, batch_size=64)))


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_csv(path, header, rows, delimiter=","):
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_files(tmp_path, layout, queries, corpus, relevant, with_ids):
    if layout == "jsonl":
        corpus_file = write_jsonl(tmp_path / "corpus.jsonl", [{"id": k, "text": v} for k, v in corpus.items()])
        rows = [{"query": queries[q], "relevant": ids if len(ids) > 1 else ids[0]} for q, ids in relevant.items()]
        if with_ids:
            rows = [{"qid": q, **row} for q, row in zip(relevant, rows)]
        return write_jsonl(tmp_path / "queries.jsonl", rows), corpus_file
    # CSV, TSV: one row per relevant id, the rows of one query merged
    sep = "," if layout == "csv" else "\t"
    corpus_file = write_csv(tmp_path / f"corpus.{layout}", ["id", "text"], corpus.items(), sep)
    rows = [((q,) if with_ids else ()) + (queries[q], i) for q, ids in relevant.items() for i in ids]
    header = (["qid"] if with_ids else []) + ["query", "relevant"]
    return write_csv(tmp_path / f"queries.{layout}", header, rows, sep), corpus_file


@pytest.mark.parametrize(
    "layout, with_ids", [("jsonl", True), ("csv", True), ("tsv", True), ("jsonl", False), ("csv", False)]
)
def test_retrieval_with_distractors_equals_information_retrieval_evaluator(
    tmp_path, st_real_model, collection, table, layout, with_ids
):
    queries, corpus, relevant = collection
    if not with_ids:  # queries are told apart by their text: one of two queries of the same text is left out
        seen = set()
        keep = [q for q, text in queries.items() if not (text in seen or seen.add(text))]
        assert len(keep) == len(queries) - 1  # the collection has one repeated query text
        queries, relevant = {q: queries[q] for q in keep}, {q: relevant[q] for q in keep}
    queries_file, corpus_file = write_files(tmp_path, layout, queries, corpus, relevant, with_ids)
    roles = {"id": "qid"} if with_ids else None
    evaluate = make_evaluator("retrieval", str(queries_file), roles=roles, corpus=str(corpus_file))
    model = TableModel(table)
    ours = evaluate(model)
    assert sorted(set(model.asked)) == sorted(set(queries.values()) | set(corpus.values()))  # every distractor
    with st_reading(st_real_model, table) as st:
        reference = ST_EVAL.InformationRetrievalEvaluator(
            queries, corpus, {q: set(ids) for q, ids in relevant.items()}, write_csv=False
        )(st)
    assert list(ours) == list(METRICS["retrieval"])
    for key, value in ours.items():
        assert value == pytest.approx(reference[f"cosine_{key}"], abs=1e-12), key
    assert 0 < ours["recall@1"] < ours["recall@10"] < 1 and ours["precision@10"] < ours["precision@1"]  # not saturated


def test_rows_of_one_query_are_merged_and_integer_ids_are_text(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"id": 7, "text": "seven"}, {"id": "b", "text": "bee"}])
    queries = write_csv(tmp_path / "q.csv", ["q", "r"], [("what", "7"), ("other", "b"), ("what", "b")])
    found = read_retrieval(queries, corpus, roles={"query": "q", "relevant": "r"})
    assert found.corpus == {"7": "seven", "b": "bee"}
    assert found.queries == ["what", "other"] and found.relevant == [{"7", "b"}, {"b"}]


def test_limit_draws_queries_and_keeps_the_whole_corpus(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"id": f"d{i}", "text": f"doc {i}"} for i in range(30)])
    queries = write_jsonl(tmp_path / "q.jsonl", [{"query": f"query {i}", "relevant": f"d{i}"} for i in range(30)])
    table = {
        t: np.random.default_rng(i).standard_normal(8).astype(np.float32)
        for i, t in enumerate([f"doc {i}" for i in range(30)] + [f"query {i}" for i in range(30)])
    }
    asked = []
    for _ in range(2):
        model = TableModel(table)
        make_evaluator("retrieval", str(queries), corpus=str(corpus), limit=5)(model)
        asked.append(model.asked)
    drawn = [t for t in asked[0] if t.startswith("query")]
    assert len(drawn) == 5 and drawn != [f"query {i}" for i in range(5)]  # a sample, not the first rows
    assert asked[0] == asked[1]  # the same sample every time
    assert sum(t.startswith("doc") for t in asked[0]) == 30  # every document, distractors included


@pytest.mark.parametrize(
    "corpus_rows, message",
    [
        ([{"id": "a", "text": "x"}, {"id": "a", "text": "y"}], r"c\.jsonl:2: document id 'a' is already on line 1"),
        (
            [{"id": "a", "text": "x"}, {"id": 1.5, "text": "y"}],
            r"c\.jsonl:2: column 'id': a document id must be a non-empty text or an integer, found 1\.5",
        ),
        ([{"id": "a", "text": "x"}, {"id": "b", "text": 3}], r"c\.jsonl:2: column 'text': expected text, found 3"),
        (
            [{"doc": "a", "text": "x"}],
            r"c\.jsonl: no column 'id' for the document ids \(the file has \['doc', 'text'\]\)",
        ),
        ([{"id": "a", "text": ""}], r"c\.jsonl:1: empty cell in column 'text'"),
    ],
)
def test_a_bad_corpus_names_file_and_line(tmp_path, corpus_rows, message):
    corpus = write_jsonl(tmp_path / "c.jsonl", corpus_rows)
    with pytest.raises(ValueError, match=message):
        read_corpus(corpus)


@pytest.mark.parametrize(
    "query_rows, message",
    [
        (
            [{"query": "q", "relevant": "a"}, {"query": "r", "relevant": ["a", "zz", "yy"]}],
            r"q\.jsonl:2: relevant id 'yy' \(and 1 more\) is not a document id of the corpus .*c\.jsonl",
        ),
        ([{"query": "q", "relevant": []}], r"q\.jsonl:1: empty cell in column 'relevant'"),
        (
            [{"query": "q", "relevant": ["a", " "]}],
            r"q\.jsonl:1: column 'relevant': a relevant id must be a non-empty text or an integer, found ' '",
        ),
        ([{"query": "q", "relevant": 1.5}], r"q\.jsonl:1: column 'relevant': a relevant id must be a non-empty"),
        ([{"query": 5, "relevant": "a"}], r"q\.jsonl:1: column 'query': expected text, found 5"),
        (
            [{"query": "q", "wanted": "a"}],
            r"q\.jsonl: no column 'relevant' for the relevant ids \(the file has \['query', 'wanted'\]\)",
        ),
    ],
)
def test_bad_queries_name_file_and_line(tmp_path, query_rows, message):
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "text": "x"}])
    queries = write_jsonl(tmp_path / "q.jsonl", query_rows)
    with pytest.raises(ValueError, match=message):
        make_evaluator("retrieval", str(queries), corpus=str(corpus))


def test_roles_and_tasks_a_corpus_does_not_fit():
    with pytest.raises(ValueError, match=r"corpus roles are \['id', 'text'\], got unknown \['body'\]"):
        check_roles({"body": "b"}, ("id", "text"), "corpus")
    with pytest.raises(ValueError, match=r"queries roles must each name one column, got relevant = \['a', 'b'\]"):
        check_roles({"relevant": ["a", "b"]}, ("query", "relevant"), "queries")
    with pytest.raises(ValueError, match=re.escape("a corpus file (c.jsonl) is for the retrieval task, not 'triplet'")):
        make_evaluator("triplet", "q.jsonl", corpus="c.jsonl")


@pytest.mark.parametrize(
    "query_rows, message",
    [
        (
            [{"query": "q", "relevant": "a", "qid": "q1"}, {"query": "other", "relevant": "a", "qid": "q1"}],
            r"q\.jsonl:2: query id 'q1' has another text than on line 1: 'other' against 'q'",
        ),
        ([{"query": "q", "relevant": "a", "qid": 2.5}], r"q\.jsonl:1: column 'qid': a query id must be a non-empty"),
        ([{"query": "q", "relevant": "a"}], r"q\.jsonl: no column 'qid' for the query ids"),
    ],
)
def test_bad_query_ids_name_file_and_line(tmp_path, query_rows, message):
    corpus = write_jsonl(tmp_path / "c.jsonl", [{"id": "a", "text": "x"}])
    queries = write_jsonl(tmp_path / "q.jsonl", query_rows)
    with pytest.raises(ValueError, match=message):
        make_evaluator("retrieval", str(queries), roles={"id": "qid"}, corpus=str(corpus))
