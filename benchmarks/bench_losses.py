"""Time each minilm loss (forward + backward on the embeddings) against sentence-transformers' loss, same inputs.

    python benchmarks/bench_losses.py [--quick] [--dim 384]

Prints a table (best-of-n ms per call, calls of ours and ST interleaved; ratio = ours / ST, < 1 means we are
faster) and writes benchmarks/results/bench_losses.json. Labels for the batch triplet losses: 4 examples per class.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

import sentence_transformers  # noqa: E402
from sentence_transformers.sentence_transformer import losses as st  # noqa: E402
from sentence_transformers.sentence_transformer.losses.batch_hard_triplet import (  # noqa: E402
    BatchHardTripletLossDistanceFunction as StMatrix,
)
from sentence_transformers.sentence_transformer.losses.triplet import TripletDistanceMetric  # noqa: E402

from minilm import losses as L  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


class StubModel(nn.Module):
    """ST's MatryoshkaLoss wraps a model's forward; this one returns the embeddings it is given."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, features):
        return {"sentence_embedding": features["embedding"]}

    def get_embedding_dimension(self) -> int:
        return self.dim


def cases(dim: int):
    """name -> (number of embedding columns, target kind, our callable, ST callable); both take (columns, target)."""
    stub = StubModel(dim)
    dims = [d for d in (384, 256, 128, 64, 32) if d <= dim]
    mnrl_st = st.MultipleNegativesRankingLoss(stub)
    matryoshka_st = st.MatryoshkaLoss(stub, mnrl_st, dims)
    matryoshka_ours = L.matryoshka(L.multiple_negatives_ranking_loss, dims)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        symmetric_st = st.MultipleNegativesSymmetricRankingLoss(None)

    def from_embeddings(loss):
        return lambda cols, y: loss.compute_loss_from_embeddings(cols, y)

    return {
        "triplet": (3, None, lambda c, y: L.triplet_loss(*c),
                    from_embeddings(st.TripletLoss(None, TripletDistanceMetric.EUCLIDEAN))),
        "batch_hard_triplet": (1, "labels", lambda c, y: L.batch_hard_triplet_loss(c[0], y),
                               from_embeddings(st.BatchHardTripletLoss(None))),
        "batch_hard_soft_margin": (1, "labels", lambda c, y: L.batch_hard_triplet_loss(c[0], y, soft_margin=True),
                                   from_embeddings(st.BatchHardSoftMarginTripletLoss(None))),
        "batch_hard_cosine": (1, "labels", lambda c, y: L.batch_hard_triplet_loss(c[0], y, 0.5, "cosine"),
                              from_embeddings(st.BatchHardTripletLoss(None, StMatrix.cosine_distance, 0.5))),
        "batch_semi_hard_triplet": (1, "labels", lambda c, y: L.batch_semi_hard_triplet_loss(c[0], y),
                                    from_embeddings(st.BatchSemiHardTripletLoss(None))),
        "batch_all_triplet": (1, "labels", lambda c, y: L.batch_all_triplet_loss(c[0], y),
                              from_embeddings(st.BatchAllTripletLoss(None))),
        "mnrl": (2, None, lambda c, y: L.multiple_negatives_ranking_loss(*c), from_embeddings(mnrl_st)),
        "mnrl_hard_negative": (3, None, lambda c, y: L.multiple_negatives_ranking_loss(*c), from_embeddings(mnrl_st)),
        "mnrl_symmetric": (2, None, lambda c, y: L.multiple_negatives_ranking_loss(*c, symmetric=True),
                           from_embeddings(symmetric_st)),
        "cosent": (2, "scores", lambda c, y: L.cosent_loss(*c, y), from_embeddings(st.CoSENTLoss(None))),
        "matryoshka_mnrl": (2, None, lambda c, y: matryoshka_ours(*c),
                            lambda c, y: matryoshka_st([{"embedding": x} for x in c], y)),
    }


def time_pair(ours, theirs, columns, target, budget: float = 1.0, max_reps: int = 30) -> tuple[float, float]:
    """Best-of-n seconds of forward + backward for each; calls alternate so load changes hit both alike."""

    def once(fn) -> float:
        leaves = [c.detach().requires_grad_() for c in columns]
        start = time.perf_counter()
        fn(leaves, target).backward()
        return time.perf_counter() - start

    once(ours), once(theirs)  # warm-up
    t_ours, t_st = [], []
    while len(t_ours) < 3 or (sum(t_ours) + sum(t_st) < budget and len(t_ours) < max_reps):
        t_ours.append(once(ours))
        t_st.append(once(theirs))
    return min(t_ours), min(t_st)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="batches 32 and 256 only")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--only", nargs="*", help="loss names to run (default: all)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = (32, 256) if args.quick else (32, 256, 4096)
    torch.manual_seed(0)
    rows = []
    print(f"{'loss':26s} {'batch':>6s} {'ours ms':>10s} {'ST ms':>10s} {'ours/ST':>8s} {'|diff|':>9s}")
    for name, (n_cols, kind, ours, theirs) in cases(args.dim).items():
        if args.only and name not in args.only:
            continue
        for batch in batches:
            columns = [torch.randn(batch, args.dim) for _ in range(n_cols)]
            target = {"labels": torch.arange(batch) // 4, "scores": torch.rand(batch), None: None}[kind]
            diff = abs(ours(columns, target).item() - theirs(columns, target).item())
            t_ours, t_st = time_pair(ours, theirs, columns, target)
            rows.append({"loss": name, "batch": batch, "ours_ms": 1e3 * t_ours, "st_ms": 1e3 * t_st,
                         "ratio": t_ours / t_st, "value_abs_diff": diff})
            print(f"{name:26s} {batch:6d} {1e3 * t_ours:10.3f} {1e3 * t_st:10.3f} {t_ours / t_st:8.2f} {diff:9.1e}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "bench_losses.json"
    meta = {"torch": torch.__version__, "sentence_transformers": sentence_transformers.__version__,
            "threads": torch.get_num_threads(), "machine": platform.machine(), "dim": args.dim,
            "dtype": "float32", "quick": args.quick}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
