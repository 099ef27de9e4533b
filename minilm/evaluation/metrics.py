"""The metrics: triplet accuracy, embedding-similarity correlation and information retrieval.

Each evaluator reproduces sentence-transformers 6.2 (TripletEvaluator, EmbeddingSimilarityEvaluator,
InformationRetrievalEvaluator) with cosine similarity. The metrics are pure functions of embeddings, so they
can be tested without a model; the `evaluate_*` functions only encode the texts and call them.

Definitions that matter for exact agreement:
- triplet: correct iff cos(a, p) > cos(a, n); a tie counts as a failure.
- similarity: Pearson and Spearman (Pearson of average ranks, so ties share a rank) of cosine vs gold.
- retrieval: documents ranked by cosine, ties broken by ascending corpus id; queries without relevant
  documents are dropped; NDCG uses binary gains with 1/log2(rank + 1) discounts; MAP@k divides by
  min(k, number of relevant documents); Recall@k divides by the number of relevant documents, Precision@k by k
  (even when the corpus has fewer documents); Accuracy@k is the fraction of queries with a relevant document in
  the top k. The cut-offs are InformationRetrievalEvaluator's defaults: accuracy, precision and recall at 1, 3, 5,
  10; MRR and NDCG at 10; MAP at 100.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
import torch

from minilm.losses.distances import cosine_similarity, cosine_similarity_matrix
from minilm.losses.inputs import Needs
from minilm.util.checks import as_float_matrix, check_nonempty_texts, check_same_shape

# What rows each evaluation task reads, in the losses' terms, so recipes check [eval] roles the same way.
TASKS: dict[str, Needs] = {
    "triplet": Needs("columns", 3),  # (anchor, positive, negative)
    "similarity": Needs("scores", 2),  # (a, b, gold score)
    "retrieval": Needs("columns", 2),  # (query, relevant document)
}
# The keys of each task's result, so a recipe's [train] metric_for_best is checked before any model loads.
METRICS: dict[str, tuple[str, ...]] = {
    "triplet": ("cosine_accuracy",),
    "similarity": ("pearson", "spearman"),
    "retrieval": (
        "mrr@10",
        "ndcg@10",
        "map@100",
        *(f"{metric}@{k}" for metric in ("accuracy", "precision", "recall") for k in (1, 3, 5, 10)),
    ),
}

Array = np.ndarray | torch.Tensor


# ----------------------------------------------------------------------------- triplets


def triplet_accuracy(anchor_emb: Array, pos_emb: Array, neg_emb: Array) -> float:
    """Fraction of triplets with cos(anchor, positive) strictly greater than cos(anchor, negative)."""
    a = as_float_matrix(anchor_emb, "anchor_emb")  # (N, D)
    p = as_float_matrix(pos_emb, "pos_emb")
    n = as_float_matrix(neg_emb, "neg_emb")
    check_same_shape(a, "anchor_emb", p, "pos_emb")
    check_same_shape(a, "anchor_emb", n, "neg_emb")
    correct = cosine_similarity(a, p) > cosine_similarity(a, n)  # (N,) ties fail
    return correct.sum().item() / correct.numel()


# ----------------------------------------------------------------------------- correlations


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of a 1-D array; equal values share the mean of the ranks they span."""
    x = np.asarray(x)
    order = np.argsort(x, kind="stable")
    xs = x[order]
    starts_run = np.concatenate([[True], xs[1:] != xs[:-1]])  # (N,) first element of each tie run
    run = np.cumsum(starts_run) - 1  # (N,) run index of each sorted element
    first = np.flatnonzero(starts_run)  # 0-based first position of each run
    end = np.append(first[1:], len(x))  # 0-based position just after each run
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = ((first + 1) + end)[run] / 2.0  # mean of 1-based positions first+1 .. end
    return ranks


def pearson_correlation(x: Array | Sequence[float], y: Array | Sequence[float]) -> float:
    """Pearson's r in float64; nan if either input is constant (as scipy)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"x and y must be 1-D of equal length, got shapes {x.shape} and {y.shape}")
    if len(x) < 2:
        raise ValueError(f"x and y need at least 2 values, got {len(x)}")
    xc, yc = x - x.mean(), y - y.mean()
    nx, ny = np.linalg.norm(xc), np.linalg.norm(yc)
    if nx == 0 or ny == 0:
        return float("nan")
    return float(np.clip(np.dot(xc / nx, yc / ny), -1.0, 1.0))


def spearman_correlation(x: Array | Sequence[float], y: Array | Sequence[float]) -> float:
    """Spearman's rho: Pearson of average ranks (ties handled like scipy.stats.spearmanr)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(f"x and y must be 1-D of equal length, got shapes {x.shape} and {y.shape}")
    return pearson_correlation(average_ranks(x), average_ranks(y))


def similarity_correlations(emb1: Array, emb2: Array, gold: Array | Sequence[float]) -> dict[str, float]:
    """Pearson and Spearman between cos(emb1[i], emb2[i]) and the gold scores."""
    e1 = as_float_matrix(emb1, "emb1")  # (N, D)
    e2 = as_float_matrix(emb2, "emb2")
    check_same_shape(e1, "emb1", e2, "emb2")
    gold = np.asarray(gold, dtype=np.float64)
    if gold.shape != (e1.shape[0],):
        raise ValueError(f"gold must have shape ({e1.shape[0]},) to match emb1, got {gold.shape}")
    cos = cosine_similarity(e1, e2).cpu().numpy()  # (N,) float32, as ST scores
    return {"pearson": pearson_correlation(gold, cos), "spearman": spearman_correlation(gold, cos)}


# ----------------------------------------------------------------------------- retrieval


def _top_k_lexicographic(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Column indices of the k best per row, by score descending then column ascending. (Q, N) -> (Q, k)."""
    kth = scores.topk(k, dim=1).values[:, -1:]  # (Q, 1) k-th largest score
    above = scores > kth  # (Q, N) always inside the top k
    at = scores == kth  # (Q, N) compete for the remaining slots; lowest columns win
    slots = k - above.sum(dim=1, keepdim=True)  # (Q, 1)
    keep = above | (at & (at.cumsum(dim=1) <= slots))  # (Q, N) exactly k per row
    cols = keep.nonzero()[:, 1].view(scores.shape[0], k)  # (Q, k) ascending column order
    # stable sort keeps ascending columns among equal scores, i.e. the tie-break
    order = scores.gather(1, cols).sort(dim=1, descending=True, stable=True).indices
    return cols.gather(1, order)


def retrieval_metrics(
    query_emb: Array,
    corpus_emb: Array,
    relevant: Sequence[set[int]],
    tie_rank: Sequence[int] | None = None,
    mrr_at_k: int = 10,
    ndcg_at_k: int = 10,
    recall_at_k: Sequence[int] = (1, 3, 5, 10),
    map_at_k: int = 100,
    accuracy_at_k: Sequence[int] = (1, 3, 5, 10),
    precision_at_k: Sequence[int] = (1, 3, 5, 10),
) -> dict[str, float]:
    """MRR@k, NDCG@k, MAP@k, Accuracy@k, Precision@k and Recall@k of cosine retrieval (in that order).

    relevant[q] holds corpus row indices relevant to query row q; queries with an empty set are dropped.
    tie_rank[j] orders corpus rows with equal scores (lower first); default is row order. ST breaks ties by
    ascending corpus id, which `evaluate_retrieval` turns into this rank.
    """
    q_emb = as_float_matrix(query_emb, "query_emb")  # (Q, D)
    c_emb = as_float_matrix(corpus_emb, "corpus_emb")  # (N, D)
    if q_emb.shape[1] != c_emb.shape[1]:
        raise ValueError(f"query_emb has dim {q_emb.shape[1]} but corpus_emb has dim {c_emb.shape[1]}")
    if isinstance(relevant, (Mapping, set, str)) or len(relevant) != q_emb.shape[0]:
        raise ValueError(f"relevant must be a sequence of {q_emb.shape[0]} sets, one per query_emb row")
    n_corpus = c_emb.shape[0]
    for q, rel in enumerate(relevant):
        bad = [j for j in rel if not (isinstance(j, (int, np.integer)) and 0 <= j < n_corpus)]
        if bad:
            raise ValueError(f"relevant[{q}] has indices outside corpus_emb rows 0..{n_corpus - 1}: {bad[:5]}")
    ks = [mrr_at_k, ndcg_at_k, map_at_k, *accuracy_at_k, *precision_at_k, *recall_at_k]
    if any(not isinstance(k, int) or k < 1 for k in ks):
        raise ValueError(f"every @k must be a positive int, got {ks}")

    kept = [q for q, rel in enumerate(relevant) if len(rel) > 0]
    if not kept:
        raise ValueError("relevant: no query has a relevant document")
    q_emb = q_emb[kept]
    rel_sets = [relevant[q] for q in kept]

    # put corpus rows in tie-break order so that "lowest column wins" is the tie-break
    if tie_rank is None:
        perm = torch.arange(n_corpus)
    else:
        tie_rank = torch.as_tensor(tie_rank)
        if tie_rank.shape != (n_corpus,):
            raise ValueError(f"tie_rank must have shape ({n_corpus},), got {tuple(tie_rank.shape)}")
        perm = torch.argsort(tie_rank, stable=True)
    scores = cosine_similarity_matrix(q_emb, c_emb)[:, perm]  # (Q, N)
    k = min(max(ks), n_corpus)
    top = perm[_top_k_lexicographic(scores, k)]  # (Q, k) corpus rows, best first

    is_rel = torch.zeros(len(kept), n_corpus, dtype=torch.bool)  # (Q, N)
    rows = [i for i, rel in enumerate(rel_sets) for _ in rel]
    cols = [int(j) for rel in rel_sets for j in rel]
    is_rel[rows, cols] = True
    hits = is_rel.gather(1, top).double()  # (Q, k) 1.0 where the ranked document is relevant
    n_rel = torch.tensor([len(rel) for rel in rel_sets], dtype=torch.float64)  # (Q,)

    metrics = {}
    # MRR: reciprocal rank of the first relevant hit within the top k, 0 if none
    h = hits[:, :mrr_at_k]
    first = h.argmax(dim=1).double()  # argmax returns the first maximum
    metrics[f"mrr@{mrr_at_k}"] = torch.where(h.any(dim=1), 1.0 / (first + 1.0), 0.0).mean().item()
    # NDCG with binary gains; the ideal ranking puts all relevant documents first
    discount = 1.0 / torch.log2(torch.arange(ndcg_at_k, dtype=torch.float64) + 2.0)  # (k,)
    dcg = (hits[:, :ndcg_at_k] * discount[: hits.shape[1]]).sum(dim=1)
    ideal = discount.cumsum(0)[n_rel.clamp(max=ndcg_at_k).long() - 1]
    metrics[f"ndcg@{ndcg_at_k}"] = (dcg / ideal).mean().item()
    # MAP: mean over relevant hits of precision at that rank, normalised by min(k, |relevant|)
    h = hits[:, :map_at_k]
    precision = h.cumsum(dim=1) / torch.arange(1, h.shape[1] + 1, dtype=torch.float64)
    metrics[f"map@{map_at_k}"] = ((precision * h).sum(dim=1) / n_rel.clamp(max=map_at_k)).mean().item()
    for r in accuracy_at_k:
        metrics[f"accuracy@{r}"] = hits[:, :r].any(dim=1).double().mean().item()
    for r in precision_at_k:  # divided by r, not by the documents there are: as sentence-transformers
        metrics[f"precision@{r}"] = (hits[:, :r].sum(dim=1) / r).mean().item()
    for r in recall_at_k:
        metrics[f"recall@{r}"] = (hits[:, :r].sum(dim=1) / n_rel).mean().item()
    return metrics


# ----------------------------------------------------------------------------- evaluators on a model


def evaluate_triplets(
    model, anchors: Sequence[str], positives: Sequence[str], negatives: Sequence[str], batch_size: int = 32
) -> dict[str, float]:
    """{"cosine_accuracy": ...} of `model` on (anchor, positive, negative) texts."""
    check_nonempty_texts(anchors, "anchors")
    check_nonempty_texts(positives, "positives", len(anchors), "anchors")
    check_nonempty_texts(negatives, "negatives", len(anchors), "anchors")
    texts = (anchors, positives, negatives)
    a, p, n = (model.encode(list(t), batch_size=batch_size) for t in texts)
    return {"cosine_accuracy": triplet_accuracy(a, p, n)}


def evaluate_similarity(
    model, sentences1: Sequence[str], sentences2: Sequence[str], scores: Sequence[float], batch_size: int = 32
) -> dict[str, float]:
    """{"pearson", "spearman"} between the model's cosine of each pair and the gold scores."""
    check_nonempty_texts(sentences1, "sentences1")
    check_nonempty_texts(sentences2, "sentences2", len(sentences1), "sentences1")
    if len(scores) != len(sentences1):
        raise ValueError(f"scores has {len(scores)} items but sentences1 has {len(sentences1)}")
    e1 = model.encode(list(sentences1), batch_size=batch_size)
    e2 = model.encode(list(sentences2), batch_size=batch_size)
    return similarity_correlations(e1, e2, scores)


def evaluate_retrieval(
    model,
    queries: Mapping[Hashable, str],
    corpus: Mapping[Hashable, str],
    relevant: Mapping[Hashable, set],
    batch_size: int = 32,
) -> dict[str, float]:
    """MRR@10, NDCG@10, MAP@100 and Accuracy, Precision, Recall @1/3/5/10 of retrieving `corpus` documents for
    `queries` (``retrieval_metrics``).

    relevant maps a query id to the set of relevant corpus ids; queries absent from it or with an empty set
    are dropped, as are ids in it that are not queries. Equal scores rank by ascending corpus id.
    """
    for name, d in (("queries", queries), ("corpus", corpus), ("relevant", relevant)):
        if not isinstance(d, Mapping):
            raise TypeError(f"{name} must be a dict, got {type(d).__name__}")
        if not d:
            raise ValueError(f"{name} is empty")
    corpus_ids = list(corpus)
    row_of = {cid: j for j, cid in enumerate(corpus_ids)}
    for qid, rel in relevant.items():
        missing = [cid for cid in rel if cid not in row_of]
        if missing:
            raise ValueError(f"relevant[{qid!r}] names ids not in corpus: {missing[:5]}")
    query_ids = [qid for qid in queries if len(relevant.get(qid, ())) > 0]
    if not query_ids:
        raise ValueError("relevant: no query in queries has a relevant document in corpus")

    order = sorted(range(len(corpus_ids)), key=corpus_ids.__getitem__)  # rows by ascending corpus id
    tie_rank = np.empty(len(order), dtype=np.int64)
    tie_rank[order] = np.arange(len(order))
    q_emb = model.encode([queries[q] for q in query_ids], batch_size=batch_size, convert_to_tensor=True)
    c_emb = model.encode([corpus[c] for c in corpus_ids], batch_size=batch_size, convert_to_tensor=True)
    rel_rows = [{row_of[cid] for cid in relevant[q]} for q in query_ids]
    return retrieval_metrics(q_emb, c_emb, rel_rows, tie_rank=tie_rank)
