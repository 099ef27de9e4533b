"""The evaluators a recipe's ``[eval]`` table or ``minilm eval`` names: a file read into the rows a task needs, and a
function model -> metrics over them (the metrics themselves: ``metrics.py``)."""

from __future__ import annotations

from collections.abc import Callable

from minilm.data.readers import read_roles
from minilm.evaluation.metrics import TASKS, evaluate_retrieval, evaluate_similarity, evaluate_triplets


def make_evaluator(
    task: str,
    path: str,
    fmt: str = "auto",
    roles: dict | None = None,
    batch_size: int = 32,
    limit: int = 0,
    header: bool = True,
    columns: list | None = None,
) -> Callable:
    """A function model -> metrics dict for ``task`` on the file at ``path``."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {sorted(TASKS)}, got {task!r}")
    roles = roles or default_roles(task)
    got = read_roles(path, fmt, roles, TASKS[task].kind, header=header, columns=columns)
    if limit:
        got = [column[:limit] for column in got]
    if task == "similarity" and len(set(got[2])) < 2:  # a correlation with a constant is undefined (NaN)
        raise ValueError(f"{path}: every gold score is {got[2][0]}; a similarity evaluation needs scores that differ")
    if task == "triplet":
        if len(got) != 3:
            raise ValueError(f"{path}: triplet evaluation needs anchor, positive and negative columns")
        return counted(lambda model: evaluate_triplets(model, *got, batch_size=batch_size), got)
    if task == "similarity":
        return counted(lambda model: evaluate_similarity(model, *got, batch_size=batch_size), got)
    anchors, positives = got[0], got[1]
    corpus_ids = {text: i for i, text in enumerate(dict.fromkeys(positives))}  # identical documents are one document
    queries = dict(enumerate(anchors))
    relevant = {i: {corpus_ids[positives[i]]} for i in range(len(anchors))}
    corpus = {i: text for text, i in corpus_ids.items()}
    return counted(lambda model: evaluate_retrieval(model, queries, corpus, relevant, batch_size=batch_size), got)


def counted(evaluate: Callable, got: list) -> Callable:
    """``evaluate`` carrying how many rows it scores (``rows``), which ``minilm eval`` reports."""
    evaluate.rows = len(got[0])
    return evaluate


def default_roles(task: str) -> dict:
    """Column names assumed when ``minilm eval`` is given none: the role names themselves."""
    if task == "similarity":
        return {"a": "a", "b": "b", "score": "score"}
    if task == "retrieval":
        return {"anchor": "anchor", "positive": "positive"}
    return {"anchor": "anchor", "positive": "positive", "negative": "negative"}
