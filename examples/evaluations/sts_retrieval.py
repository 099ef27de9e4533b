"""A retrieval evaluation with distractors, made from an STS-benchmark file: queries.jsonl and corpus.jsonl.

The corpus is the second sentence of every pair in the file (one document per distinct text); each query is the first
sentence of a pair scoring at least ``min_score`` (4.0: near-paraphrases), and its one relevant document is its pair's
second sentence. Every other document is a distractor: STS-B dev gives 264 queries and 1,467 documents, against the
pairs form of the retrieval task, whose corpus is the queries' own positives (all relevant to someone) and saturates.
Queries keep the file's line as their id (two pairs may share a first sentence: two queries, as sentence-transformers
keys them), so a recipe names the id column: ``roles = { id = "id" }``.

    python examples/evaluations/sts_retrieval.py ../shared/data/stsbenchmark/sts-dev.csv --output runs/sts_retrieval
    minilm train examples/evaluations/two_evaluations.toml --output runs/two_evaluations

Neither file is kept in the repository: they are made from the STS file wherever it lives (docs/research.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from minilm.data.readers import read_sts
from minilm.util.io import write_text


def build(sts_path: str | Path, output: str | Path, min_score: float = 4.0) -> tuple[int, int]:
    """Write ``output``/queries.jsonl and ``output``/corpus.jsonl; (queries, documents) written."""
    first, second, scores = read_sts(sts_path)
    ids: dict[str, str] = {}  # document text -> id, in file order
    for text in second:
        ids.setdefault(text, f"d{len(ids):05d}")
    queries = [
        {"id": f"q{line:05d}", "query": a, "relevant": ids[b]}
        for line, (a, b, score) in enumerate(zip(first, second, scores), 1)
        if score >= min_score
    ]
    if not queries:
        raise ValueError(f"{sts_path}: no pair scores at least {min_score}: no query to evaluate")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    write_text(output / "queries.jsonl", "".join(json.dumps(q) + "\n" for q in queries))
    write_text(output / "corpus.jsonl", "".join(json.dumps({"id": i, "text": t}) + "\n" for t, i in ids.items()))
    return len(queries), len(ids)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sts", help="an STS-benchmark file (sts-dev.csv, sts-test.csv or a companion file)")
    parser.add_argument("--output", required=True, help="folder for queries.jsonl and corpus.jsonl")
    parser.add_argument("--min-score", type=float, default=4.0, help="a pair scoring at least this is a query")
    args = parser.parse_args(argv)
    queries, documents = build(args.sts, args.output, args.min_score)
    print(f"{queries} queries, {documents} documents in {args.output}")


if __name__ == "__main__":
    main()
