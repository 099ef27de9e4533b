"""Regenerate every small dataset the minilm recipes ship with.

    python recipes/data/make_datasets.py            # writes next to this script
    python recipes/data/make_datasets.py --out DIR  # writes into DIR (the tests compare the two)

Pure standard library and deterministic: each dataset draws from its own RNG seeded from 42 and its name,
files are UTF-8 with "\\n" line endings, so a rerun is byte-identical. See README.md for what each file is.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # the generator modules live next to this script

from gen_default_pairs import make_default, make_default_pair_labels, make_default_triplets  # noqa: E402
from gen_notes_to_prose import make_notes_to_prose  # noqa: E402
from gen_nutrition_ko import make_nutrition_notes_ko  # noqa: E402
from gen_product_categories import make_product_categories  # noqa: E402
from gen_product_search_zh import make_product_search_zh  # noqa: E402
from gen_user_item import make_user_item  # noqa: E402


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)


def write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def build(out: Path) -> list[Path]:
    """Write all datasets into `out`; return the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    cats_train, cats_eval = make_product_categories()
    default_train, default_eval = make_default()
    csvs = {
        "product_search_zh.csv": (("query", "product", "other_product"), make_product_search_zh()),
        "nutrition_notes_ko.csv": (("text", "label"), make_nutrition_notes_ko()),
        "notes_to_prose.csv": (("note", "sentence"), make_notes_to_prose()),
        "product_categories.csv": (("category", "similar", "unrelated"), cats_train),
        "product_categories_eval.csv": (("category", "similar", "unrelated"), cats_eval),
        "default_pairs.csv": (("anchor", "positive"), default_train),
        "default_eval.csv": (("anchor", "positive", "negative"), default_eval),
        "default_triplets.csv": (("anchor", "positive", "negative"), make_default_triplets()),
        "default_pair_labels.csv": (("question", "answer", "label"), make_default_pair_labels()),
    }
    written = []
    for name, (header, rows) in csvs.items():
        write_csv(out / name, header, rows)
        written.append(out / name)
    write_jsonl(out / "user_item.jsonl", make_user_item())
    written.append(out / "user_item.jsonl")
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="output directory (default: next to this script)")
    args = parser.parse_args(argv)
    for path in build(args.out):
        print(path)


if __name__ == "__main__":
    main()
