"""The small recipe datasets under recipes/data: shape, uniqueness and byte-exact regeneration."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "recipes" / "data"

# file -> (columns, min rows, max rows)
CSV_SPECS = {
    "product_search_zh.csv": (["query", "product", "other_product"], 400, 600),
    "nutrition_notes_ko.csv": (["text", "label"], 81, 200),
    "notes_to_prose.csv": (["note", "sentence"], 240, 300),
    "product_categories.csv": (["category", "similar", "unrelated"], 300, 500),
    "product_categories_eval.csv": (["category", "similar", "unrelated"], 80, 150),
    "default_pairs.csv": (["anchor", "positive"], 150, 250),
    "default_eval.csv": (["anchor", "positive", "negative"], 80, 150),
    "default_triplets.csv": (["anchor", "positive", "negative"], 150, 250),
    "default_pair_labels.csv": (["question", "answer", "label"], 150, 250),
}
ALL_FILES = [*CSV_SPECS, "user_item.jsonl"]


def read_csv(name: str) -> tuple[list[str], list[dict[str, str]]]:
    with (DATA / name).open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def read_jsonl(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize("name", list(CSV_SPECS))
def test_csv_columns_rows_and_cells(name: str) -> None:
    columns, lo, hi = CSV_SPECS[name]
    header, rows = read_csv(name)
    assert header == columns
    assert lo <= len(rows) <= hi, len(rows)
    for i, row in enumerate(rows):
        assert None not in row, f"row {i} has extra cells"
        assert all(v is not None and v.strip() == v and v for v in row.values()), f"row {i}: empty/padded cell"


def test_user_item_jsonl() -> None:
    rows = read_jsonl("user_item.jsonl")
    assert 300 <= len(rows) <= 500
    for row in rows:
        assert set(row) == {"user", "item"}
        assert all(isinstance(v, str) and v.strip() for v in row.values())
    assert len({r["user"] for r in rows}) == len(rows)
    assert len({r["item"] for r in rows}) == len(rows)


def test_product_search_zh() -> None:
    _, rows = read_csv("product_search_zh.csv")
    assert len({r["query"] for r in rows}) == len(rows)
    assert len({r["product"] for r in rows}) == len(rows)
    assert all(r["product"] != r["other_product"] for r in rows)
    assert all(any("\u4e00" <= c <= "\u9fff" for c in r["query"]) for r in rows)  # queries are Chinese


def test_nutrition_labels() -> None:
    _, rows = read_csv("nutrition_notes_ko.csv")
    labels = [r["label"] for r in rows]
    assert set(labels) == {"0", "1"}
    assert min(labels.count("0"), labels.count("1")) >= 0.4 * len(rows)
    assert len({r["text"] for r in rows}) == len(rows)
    assert all(any("\uac00" <= c <= "\ud7a3" for c in r["text"]) for r in rows)  # texts are Korean


def test_notes_to_prose_unique() -> None:
    _, rows = read_csv("notes_to_prose.csv")
    notes, sentences = [r["note"] for r in rows], [r["sentence"] for r in rows]
    assert len(set(notes)) == len(notes)
    assert len(set(sentences)) == len(sentences)
    assert not set(notes) & set(sentences)


def test_product_categories_split_disjoint() -> None:
    _, train = read_csv("product_categories.csv")
    _, evals = read_csv("product_categories_eval.csv")
    similar_train, similar_eval = {r["similar"] for r in train}, {r["similar"] for r in evals}
    assert len(similar_train) == len(train) and len(similar_eval) == len(evals)
    assert not similar_train & similar_eval
    assert all(r["similar"] != r["unrelated"] for r in train + evals)


def test_default_pairs_and_eval() -> None:
    _, train = read_csv("default_pairs.csv")
    _, evals = read_csv("default_eval.csv")
    anchors = [r["anchor"] for r in train + evals]
    positives = [r["positive"] for r in train + evals]
    assert len(set(anchors)) == len(anchors)  # unique within each file and disjoint across them
    assert len(set(positives)) == len(positives)
    assert all(r["positive"] != r["negative"] for r in evals)


def test_default_triplets_are_the_pairs_with_a_training_negative() -> None:
    _, pairs = read_csv("default_pairs.csv")
    _, triplets = read_csv("default_triplets.csv")
    _, evals = read_csv("default_eval.csv")
    assert [(r["anchor"], r["positive"]) for r in triplets] == [(r["anchor"], r["positive"]) for r in pairs]
    assert all(r["negative"] != r["positive"] for r in triplets)
    assert not {r["negative"] for r in triplets} & {r["positive"] for r in evals}  # no held-out answer leaks in


def test_default_pair_labels_are_the_triplets_answer_or_negative() -> None:
    _, triplets = read_csv("default_triplets.csv")
    _, labelled = read_csv("default_pair_labels.csv")
    assert [r["question"] for r in labelled] == [r["anchor"] for r in triplets]
    for row, triplet in zip(labelled, triplets):
        assert row["answer"] == (triplet["positive"] if row["label"] == "1" else triplet["negative"])
    counts = [sum(r["label"] == label for r in labelled) for label in ("0", "1")]
    assert sum(counts) == len(labelled) and min(counts) >= len(labelled) // 3  # both classes, roughly balanced


@pytest.mark.subprocess
def test_generator_reproduces_committed_files(tmp_path: Path) -> None:
    script = DATA / "make_datasets.py"
    # A different hash seed and cwd must not matter: the output depends on the script alone.
    env = {"PYTHONHASHSEED": "123", "PYTHONDONTWRITEBYTECODE": "1", "PATH": ""}
    subprocess.run(
        [sys.executable, str(script), "--out", str(tmp_path)], check=True, cwd=tmp_path, env=env, capture_output=True
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(ALL_FILES)
    for name in ALL_FILES:
        assert (tmp_path / name).read_bytes() == (DATA / name).read_bytes(), f"{name} differs from the generator"
