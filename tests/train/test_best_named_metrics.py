"""metric_for_best with named evaluations (minilm/train/best.py): the key is name/metric; a plain name against a
named result is refused with what the result has and how its keys are made."""

import pytest

from minilm.train.best import BestTracker


def test_a_named_metric_is_tracked_like_a_plain_one():
    best = BestTracker("ir/mrr@10", patience=1)
    assert best.update(1, {"sts/spearman": 0.1, "ir/mrr@10": 0.5})
    assert not best.update(2, {"sts/spearman": 0.9, "ir/mrr@10": 0.5})  # the other evaluation's gain does not count
    assert best.best_step == 1 and best.should_stop


def test_a_plain_name_against_named_evaluations_says_how_keys_are_made():
    with pytest.raises(
        ValueError,
        match=r"metric_for_best 'mrr@10' is not in the evaluation result \(it has "
        r"\['ir/mrr@10', 'sts/spearman'\]\): with named evaluations a metric is "
        r"<name>/<metric>",
    ):
        BestTracker("mrr@10").update(1, {"sts/spearman": 0.1, "ir/mrr@10": 0.5})
    with pytest.raises(ValueError, match=r"\(it has \['spearman'\]\)$"):
        BestTracker("pearson").update(1, {"spearman": 0.1})
