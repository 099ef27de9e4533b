"""The loss catalogue against sentence-transformers 6.2 on identical inputs, through tests/parity.py: every case
asserts value difference <= 1e-5 and largest gradient difference <= 1e-4 (each scaled by max(1, |reference|);
float32 and float64 inputs) and records the measured figures for docs/losses.md.

ST losses are called through compute_loss_from_embeddings / calculate_loss where they have one; losses that only
have a forward over model features run on stub models that return the embeddings they are given.
"""

from __future__ import annotations

import os

import pytest
import torch
from parity import compare
from torch import nn

from minilm import losses as L

pytestmark = (
    pytest.mark.slow
)  # 262 cases, each through sentence-transformers; the loss tests' oracles stay in the fast tier

os.environ.setdefault("HF_HUB_OFFLINE", "1")
st_losses = pytest.importorskip("sentence_transformers.sentence_transformer.losses")
from sentence_transformers.sentence_transformer.losses.contrastive import SiameseDistanceMetric  # noqa: E402
from sentence_transformers.util import cos_sim, dot_score  # noqa: E402

DTYPES = [torch.float32, torch.float64]
ST_SIAMESE = {
    "cosine": SiameseDistanceMetric.COSINE_DISTANCE,
    "euclidean": SiameseDistanceMetric.EUCLIDEAN,
    "manhattan": SiameseDistanceMetric.MANHATTAN,
}
ST_SIMILARITY = {"cosine": cos_sim, "dot": dot_score}


def _emb(n, d=16, dtype=torch.float32, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)).to(dtype)


def _cols(k, n=12, d=16, dtype=torch.float32):
    return [_emb(n, d, dtype, seed=s) for s in range(k)]


class StubModel(nn.Module):
    """Stands in for a SentenceTransformer: the 'features' are the embeddings themselves (under ``key``)."""

    def __init__(self, dim: int, key: str = "embedding"):
        super().__init__()
        self.dim, self.key = dim, key
        self.device = torch.device("cpu")

    def forward(self, features):
        return {"sentence_embedding": features[self.key]}

    def get_embedding_dimension(self) -> int:
        return self.dim


def _st(loss, labels=None):
    return lambda e: loss.compute_loss_from_embeddings(e, labels)


# ---------------------------------------------------------------------------------------------------------------------
# pairs with labels or scores


PAIR_LABELS = {
    "mixed": torch.tensor([1, 0, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1]),
    "all_positive": torch.ones(12, dtype=torch.long),
    "all_negative": torch.zeros(12, dtype=torch.long),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("labels", list(PAIR_LABELS))
@pytest.mark.parametrize("distance", ["cosine", "euclidean", "manhattan"])
def test_contrastive(distance, labels, dtype):
    y = PAIR_LABELS[labels]
    margin = 0.9 if distance == "cosine" else 6.0
    st = st_losses.ContrastiveLoss(None, ST_SIAMESE[distance], margin=margin)
    compare(
        "contrastive",
        lambda e: L.contrastive_loss(*e, y, distance=distance, margin=margin),
        _st(st, y),
        _cols(2, dtype=dtype),
    )
    st = st_losses.OnlineContrastiveLoss(None, ST_SIAMESE[distance], margin=margin)
    compare(
        "online_contrastive",
        lambda e: L.online_contrastive_loss(*e, y, distance=distance, margin=margin),
        _st(st, y),
        _cols(2, dtype=dtype),
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_cosine_similarity(dtype):
    y = torch.rand(12, generator=torch.Generator().manual_seed(3))
    compare(
        "cosine_similarity",
        lambda e: L.cosine_similarity_loss(*e, y),
        _st(st_losses.CosineSimilarityLoss(None), y),
        _cols(2, dtype=dtype),
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("d", [16, 15])
@pytest.mark.parametrize(
    "scores",
    [
        torch.rand(12, generator=torch.Generator().manual_seed(4)),
        torch.tensor([1.0, 1, 0, 0, 1, 0.5, 0.5, 0, 1, 0, 0.5, 1]),
    ],
    ids=["float", "ties"],
)
def test_angle(scores, d, dtype):
    compare(
        "angle",
        lambda e: L.angle_loss(*e, scores, scale=20.0),
        _st(st_losses.AnglELoss(None, 20.0), scores),
        _cols(2, d=d, dtype=dtype),
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_cosent(dtype):
    scores = torch.rand(12, generator=torch.Generator().manual_seed(5))
    compare(
        "cosent", lambda e: L.cosent_loss(*e, scores), _st(st_losses.CoSENTLoss(None), scores), _cols(2, dtype=dtype)
    )


# ---------------------------------------------------------------------------------------------------------------------
# in-batch negatives: MNRL's options, its cached form, MegaBatchMargin


MNRL_OPTIONS = [
    dict(directions=("query_to_doc",), partition_mode="joint"),
    dict(directions=("query_to_doc",), partition_mode="per_direction"),
    dict(directions=("query_to_doc", "query_to_query"), partition_mode="joint"),
    dict(directions=("query_to_doc", "doc_to_query"), partition_mode="joint"),
    dict(directions=("query_to_doc", "doc_to_query"), partition_mode="per_direction"),
    dict(directions=("query_to_doc", "doc_to_doc"), partition_mode="joint"),
    dict(directions=("query_to_doc", "query_to_query", "doc_to_query", "doc_to_doc"), partition_mode="joint"),
    dict(hardness_mode="in_batch_negatives", hardness_strength=5.0),
    dict(hardness_mode="hard_negatives", hardness_strength=5.0),
    dict(hardness_mode="all_negatives", hardness_strength=5.0),
    dict(
        directions=("query_to_doc", "doc_to_query"),
        partition_mode="per_direction",
        hardness_mode="all_negatives",
        hardness_strength=2.0,
    ),
]


def _mnrl_id(options):
    return "-".join(
        f"{v}" if isinstance(v, str) else "+".join(v) if isinstance(v, tuple) else f"{v:g}" for v in options.values()
    )


def _cached_st(**kwargs):
    """ST's cached MNRL, built around a placeholder model (calculate_loss never calls it)."""
    return st_losses.CachedMultipleNegativesRankingLoss(nn.Sequential(nn.Identity()), **kwargs)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n_negatives", [0, 2])
@pytest.mark.parametrize("similarity", ["cosine", "dot"])
@pytest.mark.parametrize("options", MNRL_OPTIONS, ids=_mnrl_id)
def test_mnrl_options(options, similarity, n_negatives, dtype):
    scale = 20.0 if similarity == "cosine" else 0.7
    common = dict(scale=scale, similarity_fct=ST_SIMILARITY[similarity])

    def ours(e):
        return L.multiple_negatives_ranking_loss(*e, scale=scale, similarity=similarity, **options)

    cols = _cols(2 + n_negatives, dtype=dtype)
    compare("mnrl", ours, _st(st_losses.MultipleNegativesRankingLoss(None, **common, **options)), cols)
    # the cached form: ST computes the same loss in row chunks of mini_batch_size (here 5 of 12) on cached
    # embeddings; ours is the same function under the gradient cache, which only changes how embeddings are made
    cached = _cached_st(mini_batch_size=5, **common, **options)
    compare("cached_mnrl", ours, lambda e: cached.calculate_loss([[x] for x in e]), cols)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_symmetric_forms(dtype):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        symmetric = st_losses.MultipleNegativesSymmetricRankingLoss(None)
        cached = st_losses.CachedMultipleNegativesSymmetricRankingLoss(nn.Sequential(nn.Identity()), mini_batch_size=4)
    ours = lambda e: L.multiple_negatives_ranking_loss(*e, symmetric=True)  # noqa: E731
    compare("mnrl_symmetric", ours, _st(symmetric), _cols(2, dtype=dtype))
    compare("cached_mnrl_symmetric", ours, lambda e: cached.calculate_loss([[x] for x in e]), _cols(2, dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n", [1, 2, 12])
def test_mega_batch_margin(n, dtype):
    st = st_losses.MegaBatchMarginLoss(
        nn.Sequential(nn.Identity()), positive_margin=0.8, negative_margin=0.3, mini_batch_size=5
    )
    compare(
        "mega_batch_margin",
        lambda e: L.mega_batch_margin_loss(*e),
        lambda e: st.calculate_loss([[x] for x in e]),
        _cols(2, n=n, dtype=dtype),
    )


# ---------------------------------------------------------------------------------------------------------------------
# distillation from teacher embeddings / scores given as data; the classifier head


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("distance", ["mse", "l2", "cosine"])
@pytest.mark.parametrize("columns, per_column", [(1, False), (2, False), (3, True)])
def test_embed_distill(columns, per_column, distance, dtype):
    students = _cols(columns, dtype=dtype)
    teacher = _emb(12, 16 * (columns if per_column else 1), dtype, seed=9)
    teachers = list(teacher.split(16, dim=1)) if per_column else [teacher] * columns
    st = st_losses.EmbedDistillLoss(StubModel(16), distance_metric=distance)
    compare(
        "embed_distill",
        lambda e: L.embed_distill_loss(*e, teacher_embeddings=teacher, distance=distance),
        lambda e: st.compute_loss_from_embeddings(e, teachers),
        students,
    )
    if distance == "mse":
        compare(
            "mse",
            lambda e: L.mse_distill_loss(*e, teacher_embeddings=teacher),
            lambda e: st_losses.MSELoss(StubModel(16)).compute_loss_from_embeddings(e, teachers),
            students,
        )


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_embed_distill_projection(dtype):
    torch.manual_seed(0)
    st = st_losses.EmbedDistillLoss(StubModel(16), distance_metric="cosine", projection_dim=24).to(dtype)
    ours = L.EmbedDistillLoss(embedding_dim=16, distance="cosine", projection_dim=24).to(dtype)
    ours.load_state_dict(st.state_dict())  # both hold the projection as `projection` (weight, bias)
    teacher = _emb(12, 24, dtype, seed=9)
    compare(
        "embed_distill",
        lambda e: ours(*e, teacher_embeddings=teacher),
        lambda e: st.compute_loss_from_embeddings(e, [teacher] * 2),
        _cols(2, dtype=dtype),
        list(ours.parameters()),
        list(st.projection.parameters()),
    )


ST_PAIRWISE_SIMILARITY = {"dot": "pairwise_dot_score", "cosine": "pairwise_cos_sim"}


def _pairwise(name):
    import sentence_transformers.util as util

    return getattr(util, ST_PAIRWISE_SIMILARITY[name])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("similarity", ["dot", "cosine"])
@pytest.mark.parametrize("k, margins", [(1, False), (1, True), (3, False), (3, True)])
def test_margin_mse(k, margins, similarity, dtype):
    teacher = _emb(12, k if margins else k + 1, dtype, seed=8)
    st = st_losses.MarginMSELoss(None, similarity_fct=_pairwise(similarity))
    compare(
        "margin_mse",
        lambda e: L.margin_mse_loss(*e, teacher_scores=teacher, similarity=similarity),
        _st(st, teacher),
        _cols(2 + k, dtype=dtype),
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("similarity", ["dot", "cosine"])
@pytest.mark.parametrize("temperatures", [(1.0, None, None), (2.0, None, None), (1.0, 0.5, 3.0)])
@pytest.mark.parametrize("k", [1, 3])
def test_distill_kl_div(k, temperatures, similarity, dtype):
    t, ts, tt = temperatures
    teacher = 3 * _emb(12, k + 1, dtype, seed=8)
    st = st_losses.DistillKLDivLoss(
        None, similarity_fct=_pairwise(similarity), temperature=t, student_temperature=ts, teacher_temperature=tt
    )

    def ours(e):
        return L.distill_kl_div_loss(
            *e,
            teacher_scores=teacher,
            similarity=similarity,
            temperature=t,
            student_temperature=ts,
            teacher_temperature=tt,
        )

    compare("distill_kl_div", ours, _st(st, teacher), _cols(2 + k, dtype=dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("parts", [(True, True, False), (True, True, True), (False, True, True)])
def test_softmax(parts, dtype):
    """Mapping: ST's concatenation_sent_rep / _difference / _multiplication are our concat_embeddings / _difference /
    _product; both hold the head as `classifier` (nn.Linear)."""
    torch.manual_seed(0)
    st = st_losses.SoftmaxLoss(
        StubModel(16),
        embedding_dimension=16,
        num_labels=3,
        concatenation_sent_rep=parts[0],
        concatenation_sent_difference=parts[1],
        concatenation_sent_multiplication=parts[2],
    )
    ours = L.SoftmaxLoss(
        embedding_dim=16, num_labels=3, concat_embeddings=parts[0], concat_difference=parts[1], concat_product=parts[2]
    )
    st.to(dtype), ours.to(dtype)
    ours.load_state_dict({k: v for k, v in st.state_dict().items() if k.startswith("classifier.")})
    y = torch.tensor([0, 2, 1, 1, 0, 2, 2, 1, 0, 0, 1, 2])
    compare(
        "softmax",
        lambda e: ours(*e, y),
        lambda e: st([{"embedding": x} for x in e], y),
        _cols(2, dtype=dtype),
        list(ours.classifier.parameters()),
        list(st.classifier.parameters()),
    )


# ---------------------------------------------------------------------------------------------------------------------
# guided (GIST), regularised (GOR), two model copies (Contrastive Tension)


class GuideStub(StubModel):
    """What GISTEmbedLoss checks a model for: a transformers tokenizer, max_seq_length, an indexable first module."""

    def __init__(self, dim: int, key: str, tokenizer):
        super().__init__(dim, key)
        self.tokenizer, self.max_seq_length = tokenizer, 128
        self.first = nn.Identity()

    def __getitem__(self, index):
        return self.first


@pytest.fixture(scope="module")
def hf_tokenizer(minilm_dir):
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(str(minilm_dir))


GIST_OPTIONS = [
    dict(margin_strategy="absolute", margin=0.0, contrast_anchors=True, contrast_positives=True),
    dict(margin_strategy="absolute", margin=0.1, contrast_anchors=False, contrast_positives=True),
    dict(margin_strategy="relative", margin=0.1, contrast_anchors=True, contrast_positives=False),
    dict(margin_strategy="relative", margin=-0.05, contrast_anchors=False, contrast_positives=False),
]


def _guided_columns(k, dtype):
    columns = _cols(k, dtype=dtype)
    # a guide that mostly agrees with the student, so the threshold splits the candidates
    guide = [torch.cat([c[:, :10], _emb(12, 4, dtype, seed=20 + i)], dim=1) for i, c in enumerate(columns)]
    return columns, guide


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n_negatives", [0, 1])
@pytest.mark.parametrize(
    "options",
    GIST_OPTIONS,
    ids=lambda o: f"{o['margin_strategy']}{o['margin']:g}-{int(o['contrast_anchors'])}{int(o['contrast_positives'])}",
)
def test_gist(options, n_negatives, dtype, hf_tokenizer):
    columns, guide = _guided_columns(2 + n_negatives, dtype)
    st = st_losses.GISTEmbedLoss(
        GuideStub(16, "embedding", hf_tokenizer), GuideStub(14, "guide", hf_tokenizer), temperature=0.05, **options
    )
    compare(
        "gist",
        lambda e: L.gist_embed_loss(*e, guide=guide, temperature=0.05, **options),
        lambda e: st([{"embedding": x, "guide": g} for x, g in zip(e, guide)], None),
        columns,
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n_negatives", [0, 1, 2])
@pytest.mark.parametrize("options", GIST_OPTIONS[:3], ids=["absolute", "absolute_margin", "relative"])
def test_cached_gist(options, n_negatives, dtype, hf_tokenizer):
    """ST's cached GIST computes the loss in row chunks (here 5 of 12) on cached embeddings; ours is the same
    function under the gradient cache."""
    columns, guide = _guided_columns(2 + n_negatives, dtype)
    st = st_losses.CachedGISTEmbedLoss(
        GuideStub(16, "embedding", hf_tokenizer),
        GuideStub(14, "guide", hf_tokenizer),
        temperature=0.05,
        mini_batch_size=5,
        **options,
    )
    compare(
        "cached_gist",
        lambda e: L.gist_embed_loss(*e, guide=guide, temperature=0.05, **options),
        lambda e: st.calculate_loss([[x] for x in e], [[g] for g in guide]),
        columns,
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize(
    "settings",
    [
        dict(),
        dict(mean_weight=0.5, second_moment_weight=0.0),
        dict(mean_weight=0.0, second_moment_weight=2.0, aggregation="sum"),
    ],
    ids=["default", "mean_only", "second_sum"],
)
@pytest.mark.parametrize("columns", [1, 3])
def test_global_orthogonal_regularization(columns, settings, dtype):
    st = st_losses.GlobalOrthogonalRegularizationLoss(None, **settings)
    compare(
        "global_orthogonal_regularization",
        lambda e: L.global_orthogonal_regularization(*e, **settings)[0],
        lambda e: sum(st.compute_loss_from_embeddings(e).values()),
        _cols(columns, dtype=dtype),
    )
    if columns == 1:
        return
    mnrl = st_losses.MultipleNegativesRankingLoss(None)  # ST's trainer adds the regulariser's terms to the loss
    compare(
        "global_orthogonal_regularization",
        lambda e: L.with_global_orthogonal_regularization(L.multiple_negatives_ranking_loss, **settings)(*e)[0],
        lambda e: mnrl.compute_loss_from_embeddings(e, None) + sum(st.compute_loss_from_embeddings(e).values()),
        _cols(columns, dtype=dtype),
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_contrastive_tension(dtype):
    st = st_losses.ContrastiveTensionLoss(StubModel(16))
    st.model1, st.model2 = StubModel(16, "a"), StubModel(16, "b")  # the two copies: their embeddings, given
    y = (torch.arange(12) % 4 == 0).long()
    compare(
        "contrastive_tension",
        lambda e: L.contrastive_tension_loss(*e, y),
        lambda e: st([{"a": e[0]}, {"b": e[1]}], y),
        [0.3 * x for x in _cols(2, dtype=dtype)],
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("similarity, scale", [("cosine", 20.0), ("dot", 0.5)])
def test_contrastive_tension_in_batch(similarity, scale, dtype):
    st = st_losses.ContrastiveTensionLossInBatchNegatives(
        StubModel(16), scale=scale, similarity_fct=ST_SIMILARITY[similarity]
    )
    st.model1, st.model2 = StubModel(16, "a"), StubModel(16, "b")
    ours = L.ContrastiveTensionInBatchLoss(scale=scale, similarity=similarity)
    st.to(dtype), ours.to(dtype)
    with torch.no_grad():
        st.logit_scale.copy_(ours.logit_scale)
    compare(
        "contrastive_tension_in_batch",
        lambda e: ours(*e)[0],
        lambda e: st([{"a": e[0], "b": e[1]}], None),
        _cols(2, dtype=dtype),
        [ours.logit_scale],
        [st.logit_scale],
    )


# ---------------------------------------------------------------------------------------------------------------------
# every layer: AdaptiveLayer and Matryoshka2d on a tiny real model's hidden states


TEXTS = [
    [
        "A man is playing a guitar.",
        "The cat sits on the mat.",
        "Stocks fell sharply today.",
        "She is cooking pasta.",
        "A child rides a bike.",
        "Rain is expected tomorrow.",
    ],
    [
        "Someone plays an instrument.",
        "A cat is resting on a rug.",
        "Markets dropped this morning.",
        "A woman prepares dinner.",
        "A kid is cycling.",
        "The forecast says it will rain.",
    ],
]


@pytest.fixture(scope="module")
def tiny_st(minilm_dir, tmp_path_factory):
    from helpers import make_tiny_checkpoint
    from sentence_transformers import SentenceTransformer

    directory = tmp_path_factory.mktemp("tiny_st")
    make_tiny_checkpoint(directory, minilm_dir, layers=3, hidden=32, heads=4, intermediate=64, normalize=True)
    return SentenceTransformer(str(directory), device="cpu").eval()


def _per_layer_embeddings(model, features):
    """Every hidden state of the model pooled and normalised as its last layer is (what the padded model exposes)."""
    transformer = model[0]
    transformer.auto_model.config.output_hidden_states = True
    try:
        hidden = transformer(dict(features))["all_layer_embeddings"]
    finally:
        transformer.auto_model.config.output_hidden_states = False
    out = []
    for h in hidden:
        x = {**features, "token_embeddings": h}
        for module in list(model)[1:]:
            x = module(x)
        out.append(x["sentence_embedding"])
    return out  # [embedding output, layer 1, ..., last layer]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("kind", ["adaptive_layer", "matryoshka_2d"])
@pytest.mark.parametrize(
    "settings",
    [
        dict(),
        dict(
            last_layer_weight=2.0, prior_layers_weight=0.5, kl_div_weight=3.0, kl_temperature=1.0, layer_weighting="log"
        ),
        dict(kl_temperature=0.0, layer_weighting="linear"),
    ],
    ids=["default", "weighted", "no_kl"],
)
def test_adaptive_layer_and_matryoshka_2d(settings, kind, dtype, tiny_st):
    """Gradients are w.r.t. the model's parameters: ST re-runs the model per layer, ours pools one forward's hidden
    states. All layers are trained (ST's n_layers_per_step=-1; the caller chooses them with choose_layers) and, for
    Matryoshka2d, every width (ST's n_dims_per_step=-1)."""
    model = tiny_st.to(dtype)
    features = [model.tokenize(texts) for texts in TEXTS]
    inner = st_losses.MultipleNegativesRankingLoss(model)
    if kind == "adaptive_layer":
        st = st_losses.AdaptiveLayerLoss(model, inner, n_layers_per_step=-1, **settings)
    else:
        st = st_losses.Matryoshka2dLoss(
            model, inner, [32, 16, 8], [1.0, 0.5, 2.0], n_layers_per_step=-1, n_dims_per_step=-1, **settings
        )

    def ours(_):
        per_column = [_per_layer_embeddings(model, f) for f in features]
        final = [layers[-1] for layers in per_column]
        chosen = {i: [layers[i] for layers in per_column] for i in range(len(per_column[0]) - 1)}
        if kind == "adaptive_layer":
            return L.adaptive_layer_loss(L.multiple_negatives_ranking_loss, final, chosen, **settings)
        return L.matryoshka_2d_loss(
            L.multiple_negatives_ranking_loss, final, chosen, dims=(32, 16, 8), weights=(1.0, 0.5, 2.0), **settings
        )

    params = list(model.parameters())
    compare(kind, ours, lambda _: st([dict(f) for f in features], None), [], params, params, dtype=dtype)


# ---------------------------------------------------------------------------------------------------------------------
# the losses minilm had before the catalogue (their full parity suite is tests/parity/test_losses_vs_st.py): measured
# here through the same harness so docs/losses.md has their figures too


BATCH_LABELS = {
    "random": torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 3, 3, 0]),
    "no_positive": torch.tensor([0, 0, 1, 2, 2, 2, 3, 4, 4, 5, 6, 6]),
    "one_class": torch.zeros(12, dtype=torch.long),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_earlier_losses(distance, dtype):
    from sentence_transformers.sentence_transformer.losses.batch_hard_triplet import (
        BatchHardTripletLossDistanceFunction as StMatrix,
    )
    from sentence_transformers.sentence_transformer.losses.triplet import TripletDistanceMetric as StPairwise

    st_matrix = {"euclidean": StMatrix.euclidean_distance, "cosine": StMatrix.cosine_distance}[distance]
    margin = 0.4 if distance == "cosine" else 3.0
    st = st_losses.TripletLoss(
        None, {"euclidean": StPairwise.EUCLIDEAN, "cosine": StPairwise.COSINE}[distance], triplet_margin=margin
    )
    compare("triplet", lambda e: L.triplet_loss(*e, distance=distance, margin=margin), _st(st), _cols(3, dtype=dtype))
    for name, ours, theirs in [
        (
            "batch_hard_triplet",
            lambda e, y: L.batch_hard_triplet_loss(e[0], y, margin, distance),
            st_losses.BatchHardTripletLoss(None, st_matrix, margin),
        ),
        (
            "batch_hard_soft_margin_triplet",
            lambda e, y: L.batch_hard_triplet_loss(e[0], y, margin, distance, True),
            st_losses.BatchHardSoftMarginTripletLoss(None, st_matrix),
        ),
        (
            "batch_semi_hard_triplet",
            lambda e, y: L.batch_semi_hard_triplet_loss(e[0], y, margin, distance),
            st_losses.BatchSemiHardTripletLoss(None, st_matrix, margin),
        ),
        (
            "batch_all_triplet",
            lambda e, y: L.batch_all_triplet_loss(e[0], y, margin, distance),
            st_losses.BatchAllTripletLoss(None, st_matrix, margin),
        ),
    ]:
        for y in BATCH_LABELS.values():
            compare(name, lambda e: ours(e, y), _st(theirs, y), [_emb(12, dtype=dtype, seed=3)])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_matryoshka(dtype):
    stub = StubModel(16)
    dims, weights = (16, 8, 4), (1.0, 0.3, 2.0)
    st = st_losses.MatryoshkaLoss(stub, st_losses.MultipleNegativesRankingLoss(stub), list(dims), list(weights))
    compare(
        "matryoshka",
        lambda e: L.matryoshka(L.multiple_negatives_ranking_loss, dims, weights)(*e),
        lambda e: st([{"embedding": x} for x in e], None),
        _cols(3, dtype=dtype),
    )
