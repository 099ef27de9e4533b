"""Retrieval evaluation files: a corpus of documents with ids, and queries naming the ids relevant to each.

**Corpus**: a .jsonl, .csv or .tsv file (CSV/TSV with a header row), one document a row: an id column and a text column,
by default named ``id`` and ``text`` (``corpus_roles`` renames them). Each id appears once. Ids are text: a JSONL
integer is read as its decimal text, so ``7`` and ``"7"`` are one id; documents with equal scores rank by ascending id
as text, as sentence-transformers' evaluator does with string ids.

**Queries**: a .jsonl, .csv or .tsv file, one row a query: its text and the ids of its relevant documents, by default in
columns ``query`` and ``relevant`` (``roles`` renames them), and optionally a query id (role ``id``, named in
``roles``: ``{ id = "qid" }``). In JSONL ``relevant`` is one id or a list of ids; in CSV/TSV a cell holds one id, and a
query with several relevant documents takes one row for each: rows of the same query are one query, their ids united
(as a qrels file lists them). The same query is the same query id when the file has one, else the same text (so two
queries of one text are two queries only with ids, as in sentence-transformers' evaluator, which keys queries by id).
Every relevant id must be a document of the corpus; anything else is an error naming file and line, never a query
dropped in silence.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from minilm.data.readers import Dataset, read_rows

QUERY_ROLES = ("query", "relevant", "id")  # id: optional
CORPUS_ROLES = ("id", "text")
DEFAULT_ROLES = {"query": "query", "relevant": "relevant"}
DEFAULT_CORPUS_ROLES = {"id": "id", "text": "text"}


@dataclass
class RetrievalFiles:
    """What the two files hold: queries in order of first appearance, each with its relevant ids; the corpus."""

    queries: list[str]
    relevant: list[set[str]]  # per query, ids of the corpus
    corpus: dict[str, str]  # id -> text, in file order


def check_roles(roles: dict, known: tuple[str, ...], what: str) -> dict:
    """``roles`` with every known role named (defaults filled in); an unknown role or a non-text name is refused."""
    unknown = [role for role in roles if role not in known]
    if unknown:
        raise ValueError(f"{what} roles are {list(known)}, got unknown {unknown}")
    bad = [role for role, column in roles.items() if not isinstance(column, str) or not column]
    if bad:
        raise ValueError(f"{what} roles must each name one column, got {', '.join(f'{r} = {roles[r]!r}' for r in bad)}")
    defaults = DEFAULT_ROLES if known == QUERY_ROLES else DEFAULT_CORPUS_ROLES
    return {**defaults, **roles}


def _column(ds: Dataset, name: str, role: str) -> list:
    if name not in ds.columns:
        raise ValueError(f"{ds.path}: no column {name!r} for the {role} (the file has {list(ds.columns)})")
    return ds.columns[name]


def _id(ds: Dataset, row: int, value, what: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{ds.where(row)}: {what} must be a non-empty text or an integer, found {value!r}")
    return value


def read_corpus(path: str | Path, roles: dict | None = None) -> dict[str, str]:
    """The corpus file as id -> text, in file order."""
    roles = check_roles(roles or {}, CORPUS_ROLES, "corpus")
    ds = read_rows(path, has_header=True)
    ids, texts = _column(ds, roles["id"], "document ids"), _column(ds, roles["text"], "document texts")
    corpus: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for row, (raw_id, text) in enumerate(zip(ids, texts)):
        doc = _id(ds, row, raw_id, f"column {roles['id']!r}: a document id")
        if not isinstance(text, str):
            raise ValueError(f"{ds.where(row)}: column {roles['text']!r}: expected text, found {text!r}")
        if doc in corpus:
            raise ValueError(f"{ds.where(row)}: document id {doc!r} is already on line {first_line[doc]}")
        corpus[doc], first_line[doc] = text, ds.lines[row]
    return corpus


def read_queries(
    path: str | Path, roles: dict | None = None, header: bool = True, columns: list | None = None
) -> tuple[list[str], list[set[str]], list[int]]:
    """(query texts, relevant ids of each, the line each first appears on); rows of one query are merged."""
    roles = check_roles(roles or {}, QUERY_ROLES, "queries")
    ds = read_rows(path, columns=columns or None, has_header=header)
    texts, cells = _column(ds, roles["query"], "query texts"), _column(ds, roles["relevant"], "relevant ids")
    query_ids = _column(ds, roles["id"], "query ids") if "id" in roles else None
    index: dict[str, int] = {}  # the query's id (its text without ids) -> its place
    queries, relevant, lines = [], [], []
    for row, (text, cell) in enumerate(zip(texts, cells)):
        if not isinstance(text, str):
            raise ValueError(f"{ds.where(row)}: column {roles['query']!r}: expected text, found {text!r}")
        ids = {_id(ds, row, v, f"column {roles['relevant']!r}: a relevant id") for v in _as_list(cell)}
        key = text if query_ids is None else _id(ds, row, query_ids[row], f"column {roles['id']!r}: a query id")
        if key not in index:
            index[key] = len(queries)
            queries.append(text)
            relevant.append(set())
            lines.append(ds.lines[row])
        elif queries[index[key]] != text:
            raise ValueError(
                f"{ds.where(row)}: query id {key!r} has another text than on line {lines[index[key]]}: "
                f"{text!r} against {queries[index[key]]!r}"
            )
        relevant[index[key]] |= ids
    return queries, relevant, lines


def _as_list(cell) -> list:
    return cell if isinstance(cell, list) else [cell]


def read_retrieval(
    queries_path: str | Path,
    corpus_path: str | Path,
    roles: dict | None = None,
    corpus_roles: dict | None = None,
    header: bool = True,
    columns: list | None = None,
) -> RetrievalFiles:
    """Both files, checked against each other: every relevant id is a document of the corpus."""
    corpus = read_corpus(corpus_path, corpus_roles)
    queries, relevant, lines = read_queries(queries_path, roles, header, columns)
    for ids, line in zip(relevant, lines):
        missing = sorted(ids - corpus.keys())
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise ValueError(
                f"{queries_path}:{line}: relevant id {missing[0]!r}{more} is not a document id of the corpus "
                f"{corpus_path}"
            )
    return RetrievalFiles(queries, relevant, corpus)
