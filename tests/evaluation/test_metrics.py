"""minilm.evaluation.metrics against sentence-transformers 6.2's evaluators (cosine) and scipy.

Metrics are float64 reductions of float32 cosines; with identical embeddings on both sides they agree
to ~1e-12, and we assert 1e-6 (the issue's bound). To keep the suite fast on 2 cores each text is encoded
once by the real model and both sides read those rows: ST's evaluators run on a real SentenceTransformer
whose `encode` is swapped for a lookup, ours on a tiny adapter with our `encode` contract. One test runs
ST end to end (no lookup) to show the lookup hides nothing.
"""

import os

import numpy as np
import pytest
import scipy.stats
import torch
from helpers import TableModel, st_reading

from minilm.data.readers import read_sts
from minilm.evaluation.metrics import (
    average_ranks,
    evaluate_retrieval,
    evaluate_similarity,
    evaluate_triplets,
    pearson_correlation,
    retrieval_metrics,
    similarity_correlations,
    spearman_correlation,
    triplet_accuracy,
)

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the hub is unreachable; the model is a local directory
ST_EVAL = pytest.importorskip("sentence_transformers.sentence_transformer.evaluation")
TOL = 1e-6  # float64 metrics over float32 cosines
IR_KEYS = [
    "mrr@10",
    "ndcg@10",
    "map@100",
    *(f"{m}@{k}" for m in ("accuracy", "precision", "recall") for k in (1, 3, 5, 10)),
]
ST_IR_KEYS = {k: "cosine_" + k for k in IR_KEYS}


# ----------------------------------------------------------------------------- fixtures and adapters


@pytest.fixture(scope="module")
def st_model(st_real_model):
    return st_real_model


@pytest.fixture(scope="module")
def sts_pairs(sts_dir):
    """100 (score, s1, s2) pairs spread over STS-dev (every 15th row)."""
    s1, s2, scores = read_sts(sts_dir / "sts-dev.csv")
    return list(zip(scores, s1, s2))[::15]


def triplet_data(pairs):
    """anchor=s1, positive=s2 of a high-score pair, negative=s2 of the next pair; plus one exact tie."""
    high = [i for i, (score, _, _) in enumerate(pairs) if score >= 3.0]
    anchors = [pairs[i][1] for i in high]
    positives = [pairs[i][2] for i in high]
    negatives = [pairs[(i + 1) % len(pairs)][2] for i in high]
    anchors.append(pairs[0][1]), positives.append(pairs[1][2]), negatives.append(pairs[1][2])  # tie: fails
    return anchors, positives, negatives


def retrieval_data(pairs):
    """queries = s1, corpus = every s2 (ids not in insertion order), relevant = its own s2.

    Copies of some documents under other ids give exact score ties, broken by corpus id; a few queries also
    count the copy as relevant; one query has no entry in relevant and one an empty set (both dropped).
    """
    queries = {f"q{i:03d}": s1 for i, (_, s1, _) in enumerate(pairs)}
    corpus = {f"d{(37 * i) % 1000:03d}": s2 for i, (_, _, s2) in enumerate(pairs)}
    ids = list(corpus)
    relevant = {f"q{i:03d}": {ids[i]} for i in range(len(pairs))}
    for i in range(0, 40, 4):  # copies sort before (a...) or after (z...) the original id
        copy_id = ("a" if i % 8 else "z") + ids[i]
        corpus[copy_id] = corpus[ids[i]]
        if i % 3 == 0:
            relevant[f"q{i:03d}"].add(copy_id)
    del relevant["q005"]
    relevant["q006"] = set()
    return queries, corpus, relevant


def all_texts(pairs):
    texts = dict.fromkeys(t for _, s1, s2 in pairs for t in (s1, s2))
    return list(texts)


@pytest.fixture(scope="module")
def real_table(st_model, sts_pairs):
    texts = all_texts(sts_pairs)
    return dict(zip(texts, st_model.encode(texts, batch_size=64)))


def st_triplet(st, a, p, n):
    return ST_EVAL.TripletEvaluator(a, p, n, write_csv=False)(st)["cosine_accuracy"]


def st_similarity(st, s1, s2, gold):
    out = ST_EVAL.EmbeddingSimilarityEvaluator(s1, s2, gold, write_csv=False)(st)
    return {"pearson": out["pearson_cosine"], "spearman": out["spearman_cosine"]}


def st_retrieval(st, queries, corpus, relevant):
    out = ST_EVAL.InformationRetrievalEvaluator(queries, corpus, relevant, write_csv=False)(st)
    return {k: out[ST_IR_KEYS[k]] for k in IR_KEYS}


def assert_close(ours: dict, ref: dict, tol: float = TOL):
    assert set(ref) <= set(ours)
    for k in ref:
        assert abs(ours[k] - ref[k]) <= tol, (k, ours[k], ref[k])


# ----------------------------------------------------------------------------- equal to ST on real embeddings


@pytest.mark.slow
def test_triplets_match_st_real_model(st_model, sts_pairs, real_table):
    a, p, n = triplet_data(sts_pairs)
    with st_reading(st_model, real_table) as st:
        ref = st_triplet(st, a, p, n)
    ours = evaluate_triplets(TableModel(real_table), a, p, n)
    assert abs(ours["cosine_accuracy"] - ref) <= TOL
    assert 0.5 < ref < 1.0  # the appended tie fails on both sides


@pytest.mark.slow
def test_similarity_match_st_real_model(st_model, sts_pairs, real_table):
    gold, s1, s2 = map(list, zip(*sts_pairs))
    with st_reading(st_model, real_table) as st:
        ref = st_similarity(st, s1, s2, gold)
    assert_close(evaluate_similarity(TableModel(real_table), s1, s2, gold), ref)


@pytest.mark.slow
def test_retrieval_match_st_real_model(st_model, sts_pairs, real_table):
    queries, corpus, relevant = retrieval_data(sts_pairs)
    with st_reading(st_model, real_table) as st:
        ref = st_retrieval(st, queries, corpus, relevant)
    ours = evaluate_retrieval(TableModel(real_table), queries, corpus, relevant)
    assert_close(ours, ref)
    assert set(ours) == set(IR_KEYS)
    assert 0 < ref["recall@1"] < ref["recall@10"] <= 1


@pytest.mark.slow
@pytest.mark.real_weights
def test_similarity_match_st_end_to_end(st_model, sts_pairs):
    """No lookup: ST encodes inside its own evaluator; ours calls the SentenceTransformer's encode directly (the two
    encode APIs are the same)."""
    gold, s1, s2 = map(list, zip(*sts_pairs[:12]))
    ref = st_similarity(st_model, s1, s2, gold)
    assert_close(evaluate_similarity(st_model, s1, s2, gold), ref)


def assert_all_match_st(ours, st_model, table, triplets, pairs, retrieval):
    """Our three evaluators on `ours` equal ST's evaluators reading embeddings from `table`."""
    with st_reading(st_model, table) as st:
        ref_t = st_triplet(st, *triplets)
        ref_s = st_similarity(st, *pairs)
        ref_r = st_retrieval(st, *retrieval)
    assert abs(evaluate_triplets(ours, *triplets)["cosine_accuracy"] - ref_t) <= TOL
    assert_close(evaluate_similarity(ours, *pairs), ref_s)
    assert_close(evaluate_retrieval(ours, *retrieval), ref_r)


@pytest.mark.slow
@pytest.mark.real_weights
def test_our_encoder_matches_st(minilm_dir, st_model, sts_pairs, real_table):
    """Our evaluators on our model vs ST's evaluators on ST's model."""
    encoder = pytest.importorskip("minilm.encoder")
    model = encoder.SentenceEncoder.from_pretrained(minilm_dir)
    model.eval()
    texts = all_texts(sts_pairs)
    ours_table = dict(zip(texts, model.encode(texts, batch_size=64)))
    ours = TableModel(ours_table)
    a, p, n = triplet_data(sts_pairs)
    gold, s1, s2 = map(list, zip(*sts_pairs))
    queries, corpus, relevant = retrieval_data(sts_pairs)
    assert_all_match_st(ours, st_model, real_table, (a, p, n), (s1, s2, gold), (queries, corpus, relevant))


# ----------------------------------------------------------------------------- equal to ST with many ties


def synthetic_table(texts, seed=0, dim=3):
    """Embeddings with entries in {-1, 0, 1}: many exactly equal cosines."""
    g = torch.Generator().manual_seed(seed)
    emb = torch.randint(-1, 2, (len(texts), dim), generator=g).float()
    emb[emb.abs().sum(1) == 0, 0] = 1.0  # no zero vectors
    return dict(zip(texts, emb.numpy()))


def test_all_evaluators_match_st_with_many_ties(st_model):
    texts = [f"t{i}" for i in range(60)]
    table = synthetic_table(texts)
    model = TableModel(table)
    rng = np.random.default_rng(0)
    a, p, n = (list(rng.choice(texts, 40)) for _ in range(3))
    gold = list(rng.integers(0, 4, 40).astype(float))  # tied gold too
    queries = {f"q{i}": t for i, t in enumerate(texts[:25])}
    corpus = {f"c{int(j)}": t for j, t in zip(rng.permutation(1000)[:45], texts[15:])}
    cids = list(corpus)
    n_rel = rng.integers(0, 4, len(queries))  # 0 -> query dropped
    relevant = {q: {cids[j] for j in rng.choice(len(cids), k, replace=False)} for q, k in zip(queries, n_rel)}
    assert_all_match_st(model, st_model, table, (a, p, n), (a, p, gold), (queries, corpus, relevant))


# ----------------------------------------------------------------------------- metric functions on tiny examples


def test_triplet_ties_fail():
    e = np.eye(3, dtype=np.float32)
    anchor = np.stack([e[0], e[0], e[0], e[0]])
    pos = np.stack([e[0], e[0], e[1], 2 * e[0]])
    neg = np.stack([e[1], e[0], e[1], e[0]])  # wins, tie, tie, tie (scale does not matter)
    assert triplet_accuracy(anchor, pos, neg) == 0.25


def test_average_ranks_match_scipy():
    x = np.array([3.0, 1.0, 3.0, 2.0, 3.0, 1.0, -5.0])
    np.testing.assert_array_equal(average_ranks(x), scipy.stats.rankdata(x, method="average"))


def test_correlations_with_ties_match_scipy():
    x = np.array([0.1, 0.5, 0.5, 0.2, 0.9, 0.5, 0.2, 0.0])
    y = np.array([1.0, 3.0, 2.0, 2.0, 5.0, 3.0, 1.0, 1.0])
    assert abs(spearman_correlation(x, y) - scipy.stats.spearmanr(x, y).statistic) < 1e-12
    assert abs(pearson_correlation(x, y) - scipy.stats.pearsonr(x, y).statistic) < 1e-12
    assert np.isnan(pearson_correlation(x, np.ones_like(x)))


def test_similarity_correlations_on_cosines():
    emb1 = np.array([[1, 0], [1, 0], [1, 0], [1, 0], [0, 1]], dtype=np.float32)
    emb2 = np.array([[1, 0], [0, 1], [1, 1], [1, 0], [-1, 1]], dtype=np.float32)
    gold = [5.0, 0.0, 2.0, 4.0, 2.0]
    cos = np.array([1.0, 0.0, 2**-0.5, 1.0, 2**-0.5])  # tie at 1 and at 1/sqrt(2)
    out = similarity_correlations(emb1, emb2, gold)
    assert abs(out["spearman"] - scipy.stats.spearmanr(gold, cos).statistic) < 1e-6
    assert abs(out["pearson"] - scipy.stats.pearsonr(gold, cos).statistic) < 1e-6


def test_retrieval_metrics_by_hand():
    # corpus rows 0 and 1 tie for query 0; tie_rank puts row 1 first, so the relevant row 0 is ranked 2nd
    corpus = np.array([[1, 0], [1, 0], [0, 1], [-1, 0]], dtype=np.float32)
    queries = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    relevant = [{0}, {2, 3}, set()]  # the last query is dropped
    out = retrieval_metrics(queries, corpus, relevant, tie_rank=[1, 0, 2, 3])
    # q0 ranking: 1, 0, 2, 3 -> first hit at 2.  q1 ranking: 2, then 1, 0 tie (1 first by rank), 3 -> hits at 1, 4
    d = 1 / np.log2(np.arange(2, 6))
    assert out["mrr@10"] == pytest.approx((1 / 2 + 1) / 2, abs=1e-12)
    assert out["recall@1"] == pytest.approx((0 + 1 / 2) / 2, abs=1e-12)
    assert out["recall@5"] == out["recall@10"] == pytest.approx(1.0, abs=1e-12)
    ndcg = (d[1] / d[0] + (d[0] + d[3]) / (d[0] + d[1])) / 2
    assert out["ndcg@10"] == pytest.approx(ndcg, abs=1e-12)
    assert out["map@100"] == pytest.approx((1 / 2 + (1 + 2 / 4) / 2) / 2, abs=1e-12)
    # default tie order is row order: q0's relevant row 0 now wins its tie
    assert retrieval_metrics(queries, corpus, relevant)["mrr@10"] == pytest.approx(1.0, abs=1e-12)


# ----------------------------------------------------------------------------- bad input


def test_bad_input_names_the_argument():
    e = np.ones((3, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="pos_emb"):
        triplet_accuracy(e, e[:2], e)
    with pytest.raises(ValueError, match="anchor_emb"):
        triplet_accuracy(e[:0], e[:0], e[:0])
    with pytest.raises(TypeError, match="neg_emb"):
        triplet_accuracy(e, e, np.ones((3, 4), dtype=np.int64))
    with pytest.raises(ValueError, match="gold"):
        similarity_correlations(e, e, [1.0, 2.0])
    with pytest.raises(ValueError, match="relevant"):
        retrieval_metrics(e, e, [{0}, {5}, set()])
    model = TableModel({"a": e[0], "b": e[1]})
    with pytest.raises(ValueError, match="negatives"):
        evaluate_triplets(model, ["a"], ["b"], ["a", "b"])
    with pytest.raises(ValueError, match="anchors"):
        evaluate_triplets(model, [], [], [])
    with pytest.raises(ValueError, match="scores"):
        evaluate_similarity(model, ["a"], ["b"], [1.0, 2.0])
    with pytest.raises(ValueError, match="not in corpus"):
        evaluate_retrieval(model, {"q": "a"}, {"c": "b"}, {"q": {"x"}})
    with pytest.raises(ValueError, match="relevant"):
        evaluate_retrieval(model, {"q": "a"}, {"c": "b"}, {"q": set()})
    with pytest.raises(ValueError, match="corpus"):
        evaluate_retrieval(model, {"q": "a"}, {}, {"q": {"c"}})


def test_metrics_table_names_what_each_evaluator_returns():
    """recipe.py checks [train] metric_for_best against METRICS before any model loads; it must be the real keys."""
    from minilm.evaluation.metrics import METRICS, TASKS

    rng = np.random.default_rng(0)
    model = TableModel({t: rng.standard_normal(8).astype(np.float32) for t in "abcd"})
    got = {
        "triplet": evaluate_triplets(model, ["a", "b"], ["b", "c"], ["c", "d"]),
        "similarity": evaluate_similarity(model, ["a", "b", "c"], ["b", "c", "d"], [1.0, 2.0, 0.5]),
        "retrieval": evaluate_retrieval(model, {"q": "a"}, {"x": "b", "y": "c"}, {"q": {"x"}}),
    }
    assert set(METRICS) == set(TASKS) == set(got)
    for task, result in got.items():
        assert list(result) == list(METRICS[task]), task
