"""``[eval] limit = N`` (minilm/evaluation/evaluators.py): N rows drawn at random with the constant LIMIT_SEED, the
same N every time and in file order, never the first N (a sorted file's first rows are not a sample)."""

import numpy as np
import pytest
import torch

from minilm.evaluation.evaluators import LIMIT_SEED, make_evaluator, sample_rows


class RecordingModel:
    def __init__(self):
        self.asked = []

    def encode(self, texts, batch_size=32, convert_to_tensor=False):
        self.asked += list(texts)
        emb = np.stack([np.random.default_rng(len(t)).standard_normal(4).astype(np.float32) for t in texts])
        return torch.from_numpy(emb) if convert_to_tensor else emb


def test_the_draw_is_seeded_sorted_and_all_rows_without_a_limit():
    rows = sample_rows(100, 10)
    assert rows == sample_rows(100, 10) == sorted(rows) and len(set(rows)) == 10
    assert rows != list(range(10)) and max(rows) > 50  # from the whole file
    chosen = np.random.default_rng(LIMIT_SEED).choice(100, size=10, replace=False)
    assert rows == sorted(chosen.tolist())  # the stated constant seed, whatever the run's seed
    assert sample_rows(7, 0) == sample_rows(7, 7) == sample_rows(7, 50) == list(range(7))


@pytest.mark.parametrize(
    "task, header, row",
    [
        ("similarity", "a,b,score", "first {i},second {i},{score}"),
        ("triplet", "anchor,positive,negative", "first {i},second {i},third {i}"),
        ("retrieval", "anchor,positive", "first {i},second {i}"),
    ],
)
def test_a_sorted_file_is_sampled_across_not_cut(tmp_path, task, header, row):
    lines = [row.format(i=i, score=i / 40) for i in range(40)]  # sorted by score, as STS-B's test split by genre
    path = tmp_path / "sorted.csv"
    path.write_text(header + "\n" + "\n".join(lines) + "\n", encoding="utf-8")
    model = RecordingModel()
    make_evaluator(task, str(path), limit=8)(model)
    firsts = [int(t.split()[1]) for t in model.asked if t.startswith("first")]
    assert firsts == sample_rows(40, 8)  # the drawn rows, in file order
    assert firsts != list(range(8))


def test_a_draw_of_constant_scores_is_refused_as_the_whole_file_would_be(tmp_path):
    path = tmp_path / "flat.csv"
    path.write_text("a,b,score\n" + "".join(f"x{i},y{i},{1.0 if i else 2.0}\n" for i in range(40)), encoding="utf-8")
    assert 0 not in sample_rows(40, 5)
    with pytest.raises(ValueError, match="every gold score is 1.0"):
        make_evaluator("similarity", str(path), limit=5)
