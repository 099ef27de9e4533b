"""Teacher outputs for the distillation recipes, computed with the packaged all-MiniLM-L6-v2 (the only model this
machine has offline). Unlike make_datasets.py this needs minilm and the model, and its numbers are float results,
so it is run by hand and its files are not part of the byte-exact regeneration test:

    python recipes/data/gen_teacher.py

- ``distill_scores.jsonl`` (kind teacher_scores): default_pairs.csv questions with their answer and, as negative,
  the answer of the next question in file order, plus the teacher's cosine of the question with each:
  {"anchor", "positive", "negative", "teacher": [cos(anchor, positive), cos(anchor, negative)]}.
- ``distill_embeddings.jsonl`` (kind teacher_embeddings): the first 48 rows of notes_to_prose.csv with the teacher's
  embedding of the full sentence (5 significant digits), the target for both the note and the sentence:
  {"note", "sentence", "teacher": [384 numbers]}.

With the student starting as the teacher these recipes show the mechanism (teacher numbers as a data column), not a
gain; a stronger teacher's numbers go in the same columns.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> None:
    from minilm.encoder import SentenceEncoder

    model = SentenceEncoder.from_pretrained("sentence-transformers/all-MiniLM-L6-v2").eval()
    with (HERE / "default_pairs.csv").open(encoding="utf-8", newline="") as f:
        pairs = list(csv.DictReader(f))
    anchors = [r["anchor"] for r in pairs]
    positives = [r["positive"] for r in pairs]
    negatives = positives[1:] + positives[:1]
    a, p, n = (model.encode(texts, convert_to="torch") for texts in (anchors, positives, negatives))
    with (HERE / "distill_scores.jsonl").open("w", encoding="utf-8", newline="") as f:
        for i in range(len(pairs)):
            scores = [round(float(a[i] @ p[i]), 5), round(float(a[i] @ n[i]), 5)]
            f.write(
                json.dumps(
                    {"anchor": anchors[i], "positive": positives[i], "negative": negatives[i], "teacher": scores},
                    ensure_ascii=False,
                )
                + "\n"
            )
    with (HERE / "notes_to_prose.csv").open(encoding="utf-8", newline="") as f:
        notes = list(csv.DictReader(f))[:48]
    sentences = model.encode([r["sentence"] for r in notes], convert_to="torch")
    with (HERE / "distill_embeddings.jsonl").open("w", encoding="utf-8", newline="") as f:
        for row, emb in zip(notes, sentences):
            f.write(
                json.dumps(
                    {
                        "note": row["note"],
                        "sentence": row["sentence"],
                        "teacher": [float(f"{x:.5g}") for x in emb.tolist()],
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )


if __name__ == "__main__":
    main()
