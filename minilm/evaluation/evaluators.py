"""The evaluators a recipe's ``[eval]`` table or ``minilm eval`` names: a file read into the rows a task needs, and a
function model -> metrics over them (the metrics themselves: ``metrics.py``). Several named evaluations are run as
one (``evaluate_all``), each metric under ``name/metric``.

``limit`` = N evaluates on N rows drawn at random from the file (the same N rows every time: the draw is seeded with
``LIMIT_SEED``, not the run's seed, so every run and every seed of a sweep is scored on the same rows), kept in file
order; never the first N rows, which in a sorted file (STS-B's test split is sorted by genre) are not a sample. With a
retrieval corpus, the queries are drawn and the whole corpus is kept (its distractors are the point).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from minilm.data.readers import read_roles
from minilm.data.retrieval import read_retrieval
from minilm.evaluation.metrics import TASKS, evaluate_retrieval, evaluate_similarity, evaluate_triplets

LIMIT_SEED = 0  # the seed of the rows ``limit`` draws: a constant, so that every run is scored on the same rows


def metric_key(name: str, metric: str) -> str:
    """How a metric of evaluation ``name`` is logged: ``name/metric``; the one unnamed evaluation keeps plain names."""
    return f"{name}/{metric}" if name else metric


def sample_rows(count: int, limit: int) -> list[int]:
    """``limit`` row indices of ``count`` drawn without replacement (seeded with ``LIMIT_SEED``), ascending; all rows
    when ``limit`` is 0 or not below ``count``."""
    if not limit or limit >= count:
        return list(range(count))
    return sorted(np.random.default_rng(LIMIT_SEED).choice(count, size=limit, replace=False).tolist())


def make_evaluator(
    task: str,
    path: str,
    fmt: str = "auto",
    roles: dict | None = None,
    batch_size: int = 32,
    limit: int = 0,
    header: bool = True,
    columns: list | None = None,
    corpus: str | None = None,
    corpus_roles: dict | None = None,
) -> Callable:
    """A function model -> metrics dict for ``task`` on the file at ``path``; for retrieval with a ``corpus`` file,
    ``path`` holds the queries and their relevant ids (``minilm.data.retrieval``)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    if corpus is not None:
        if task != "retrieval":
            raise ValueError(f"a corpus file ({corpus}) is for the retrieval task, not {task!r}")
        return corpus_evaluator(path, corpus, roles, corpus_roles, batch_size, limit, header, columns)
    roles = roles or default_roles(task)
    got = read_roles(path, fmt, roles, TASKS[task].kind, header=header, columns=columns)
    rows = sample_rows(len(got[0]), limit)
    got = [[column[i] for i in rows] for column in got]
    if task == "similarity" and len(set(got[2])) < 2:  # a correlation with a constant is undefined (NaN)
        raise ValueError(f"{path}: every gold score is {got[2][0]}; a similarity evaluation needs scores that differ")
    if task == "triplet":
        if len(got) != 3:
            raise ValueError(f"{path}: triplet evaluation needs anchor, positive and negative columns")
        return counted(lambda model: evaluate_triplets(model, *got, batch_size=batch_size), len(got[0]))
    if task == "similarity":
        return counted(lambda model: evaluate_similarity(model, *got, batch_size=batch_size), len(got[0]))
    anchors, positives = got[0], got[1]
    corpus_ids = {text: i for i, text in enumerate(dict.fromkeys(positives))}  # identical documents are one document
    queries = dict(enumerate(anchors))
    relevant = {i: {corpus_ids[positives[i]]} for i in range(len(anchors))}
    documents = {i: text for text, i in corpus_ids.items()}
    return counted(
        lambda model: evaluate_retrieval(model, queries, documents, relevant, batch_size=batch_size), len(got[0])
    )


def corpus_evaluator(
    path: str,
    corpus: str,
    roles: dict | None,
    corpus_roles: dict | None,
    batch_size: int,
    limit: int,
    header: bool,
    columns: list | None,
) -> Callable:
    """Retrieval of the corpus file's documents (distractors included) for the queries file's queries."""
    found = read_retrieval(path, corpus, roles, corpus_roles, header, columns)
    picked = sample_rows(len(found.queries), limit)
    queries = {q: found.queries[q] for q in picked}
    relevant = {q: found.relevant[q] for q in picked}
    return counted(
        lambda model: evaluate_retrieval(model, queries, found.corpus, relevant, batch_size=batch_size), len(picked)
    )


def counted(evaluate: Callable, rows: int) -> Callable:
    """``evaluate`` carrying how many rows (or queries) it scores (``rows``), which ``minilm eval`` reports."""
    evaluate.rows = rows
    return evaluate


def evaluate_all(evaluators: dict[str, Callable]) -> Callable:
    """Several named evaluations as one evaluator: each run in turn, its metrics as ``name/metric``."""

    def evaluate(model) -> dict[str, float]:
        return {metric_key(name, k): v for name, one in evaluators.items() for k, v in one(model).items()}

    return evaluate


def default_roles(task: str) -> dict:
    """Column names assumed when ``minilm eval`` is given none: the role names themselves."""
    if task == "similarity":
        return {"a": "a", "b": "b", "score": "score"}
    if task == "retrieval":
        return {"anchor": "anchor", "positive": "positive"}
    return {"anchor": "anchor", "positive": "positive", "negative": "negative"}
