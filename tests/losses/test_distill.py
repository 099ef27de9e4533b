"""minilm.losses.distill (MSE / embedding distillation, Margin-MSE, KL distillation) and classifier.SoftmaxLoss:
float64 loop oracles, gradcheck, bad input. Parity with sentence-transformers is in
tests/parity/test_losses_vs_st_catalogue.py.

Tolerances: float64 values vs the oracle rtol 1e-6, atol 1e-7; gradcheck at its float64 defaults.
"""

from __future__ import annotations

import math

import pytest
import torch
from test_losses import o_cos, o_distance
from test_metric_learning import o_lse

from minilm import losses as L


def o_dot(u, v):
    return sum(x * y for x, y in zip(u, v))


def o_embed_distill(students, teacher, distance):
    width = len(students[0][0])
    total = 0.0
    for c, column in enumerate(students):
        rows = [t if len(t) == width else t[c * width : (c + 1) * width] for t in teacher]
        if distance == "mse":
            total += sum((x - y) ** 2 for s, t in zip(column, rows) for x, y in zip(s, t)) / (len(column) * width)
        else:
            total += sum(
                o_distance(s, t, "euclidean" if distance == "l2" else "cosine") for s, t in zip(column, rows)
            ) / len(column)
    return total / len(students)


def o_margin_mse(q, p, negs, teacher, similarity):
    sim = o_cos if similarity == "cosine" else o_dot
    total, count = 0.0, 0
    for i in range(len(q)):
        t = teacher[i]
        margins = [t[0] - x for x in t[1:]] if len(t) == len(negs) + 1 else t
        for j, n in enumerate(negs):
            total += (sim(q[i], p[i]) - sim(q[i], n[i]) - margins[j]) ** 2
            count += 1
    return total / count


def o_kl(q, candidates, teacher, similarity, t_student, t_teacher):
    sim = o_cos if similarity == "cosine" else o_dot
    total = 0.0
    for i in range(len(q)):
        s = [sim(q[i], c[i]) / t_student for c in candidates]
        t = [x / t_teacher for x in teacher[i]]
        log_q = [x - o_lse(s) for x in s]
        log_p = [x - o_lse(t) for x in t]
        total += sum(math.exp(lp) * (lp - lq) for lp, lq in zip(log_p, log_q))
    return total / len(q) * t_student**2


def o_softmax(u, v, labels, weight, bias, parts):
    total = 0.0
    for a, b, y in zip(u, v, labels):
        features = (
            (a + b if parts[0] else [])
            + ([abs(x - z) for x, z in zip(a, b)] if parts[1] else [])
            + ([x * z for x, z in zip(a, b)] if parts[2] else [])
        )
        logits = [sum(w * f for w, f in zip(row, features)) + c for row, c in zip(weight, bias)]
        total += o_lse(logits) - logits[y]
    return total / len(u)


def _emb(n, d=6, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _close(ours, expected):
    assert torch.isfinite(ours)
    assert ours.item() == pytest.approx(expected, rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("distance", ["mse", "l2", "cosine"])
@pytest.mark.parametrize("columns, per_column", [(1, False), (2, False), (2, True)])
@pytest.mark.parametrize("n", [1, 5])
def test_embed_distill_matches_oracle(n, columns, per_column, distance):
    students = [_emb(n, seed=s) for s in range(columns)]
    students[0][0] = 0  # zero student vector
    teacher = _emb(n, 6 * (columns if per_column else 1), seed=9)
    ours = L.embed_distill_loss(*students, teacher_embeddings=teacher, distance=distance)
    _close(ours, o_embed_distill([s.tolist() for s in students], teacher.tolist(), distance))
    if distance == "mse":
        _close(L.mse_distill_loss(*students, teacher_embeddings=teacher), ours.item())


def test_embed_distill_projection_matches_oracle():
    torch.manual_seed(0)
    module = L.EmbedDistillLoss(embedding_dim=6, distance="mse", projection_dim=4).double()
    students, teacher = [_emb(5), _emb(5, seed=1)], _emb(5, 4, seed=2)
    w, b = module.projection.weight.tolist(), module.projection.bias.tolist()
    projected = [
        [[sum(wi * x for wi, x in zip(row, s)) + c for row, c in zip(w, b)] for s in col.tolist()] for col in students
    ]
    _close(module(*students, teacher_embeddings=teacher), o_embed_distill(projected, teacher.tolist(), "mse"))
    assert module.teacher_dim == 4 and L.EmbedDistillLoss(embedding_dim=6).teacher_dim == 6


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
@pytest.mark.parametrize("k, margins", [(1, False), (1, True), (3, False), (3, True)])
@pytest.mark.parametrize("n", [1, 5])
def test_margin_mse_matches_oracle(n, k, margins, similarity):
    q, p, *negs = [_emb(n, seed=s) for s in range(2 + k)]
    teacher = _emb(n, k if margins else k + 1, seed=8)
    _close(
        L.margin_mse_loss(q, p, *negs, teacher_scores=teacher, similarity=similarity),
        o_margin_mse(q.tolist(), p.tolist(), [x.tolist() for x in negs], teacher.tolist(), similarity),
    )


@pytest.mark.parametrize("similarity", ["dot", "cosine"])
@pytest.mark.parametrize("temperatures", [(1.0, None, None), (2.0, None, None), (1.0, 0.5, 3.0)])
@pytest.mark.parametrize("k", [1, 3])
def test_distill_kl_div_matches_oracle(k, temperatures, similarity):
    q, *candidates = [_emb(5, seed=s) for s in range(2 + k)]
    teacher = 3 * _emb(5, k + 1, seed=8)
    t, ts, tt = temperatures
    ours = L.distill_kl_div_loss(
        q,
        *candidates,
        teacher_scores=teacher,
        similarity=similarity,
        temperature=t,
        student_temperature=ts,
        teacher_temperature=tt,
    )
    _close(ours, o_kl(q.tolist(), [c.tolist() for c in candidates], teacher.tolist(), similarity, ts or t, tt or t))


@pytest.mark.parametrize("parts", [(True, True, False), (True, True, True), (False, False, True), (True, False, False)])
def test_softmax_loss_matches_oracle(parts):
    torch.manual_seed(0)
    module = L.SoftmaxLoss(
        embedding_dim=6, num_labels=3, concat_embeddings=parts[0], concat_difference=parts[1], concat_product=parts[2]
    ).double()
    u, v, y = _emb(5), _emb(5, seed=1), torch.tensor([0, 2, 1, 1, 0])
    expected = o_softmax(
        u.tolist(), v.tolist(), y.tolist(), module.classifier.weight.tolist(), module.classifier.bias.tolist(), parts
    )
    _close(module(u, v, y), expected)


def _gradcheck(fn, *inputs):
    leaves = [t.clone().requires_grad_() for t in inputs]
    assert torch.autograd.gradcheck(fn, leaves)


@pytest.mark.parametrize("distance", ["mse", "l2", "cosine"])
def test_gradcheck_embed_distill(distance):
    teacher = _emb(4, 12, seed=5)
    _gradcheck(
        lambda a, b: L.embed_distill_loss(a, b, teacher_embeddings=teacher, distance=distance), _emb(4), _emb(4, seed=1)
    )


def test_gradcheck_margin_mse_kl_softmax_projection():
    scores = _emb(4, 3, seed=6)
    _gradcheck(
        lambda q, p, n1, n2: L.margin_mse_loss(q, p, n1, n2, teacher_scores=scores),
        *[_emb(4, seed=s) for s in range(4)],
    )
    _gradcheck(
        lambda q, p, n1, n2: L.distill_kl_div_loss(q, p, n1, n2, teacher_scores=scores, temperature=2.0),
        *[_emb(4, seed=s) for s in range(4)],
    )
    torch.manual_seed(0)
    head = L.SoftmaxLoss(embedding_dim=6, num_labels=3, concat_product=True).double()
    y = torch.tensor([0, 2, 1, 1])

    def softmax(u, v, weight):
        return torch.func.functional_call(
            head, {"classifier.weight": weight, "classifier.bias": head.classifier.bias}, (u, v, y)
        )

    _gradcheck(softmax, _emb(4), _emb(4, seed=1), head.classifier.weight.detach())
    proj = L.EmbedDistillLoss(embedding_dim=6, projection_dim=3).double()
    teacher = _emb(4, 3, seed=2)

    def projected(x, weight):
        return torch.func.functional_call(
            proj,
            {"projection.weight": weight, "projection.bias": proj.projection.bias},
            (x,),
            {"teacher_embeddings": teacher},
        )

    _gradcheck(projected, _emb(4), proj.projection.weight.detach())


def _x(n=4, d=3):
    return torch.randn(n, d)


BAD_CALLS = {
    "teacher rows": (lambda: L.mse_distill_loss(_x(), teacher_embeddings=_x(3)), ValueError, "teacher_embeddings"),
    "teacher width": (
        lambda: L.mse_distill_loss(_x(), _x(), teacher_embeddings=_x(4, 5)),
        ValueError,
        "teacher_embeddings",
    ),
    "teacher 1-D": (
        lambda: L.embed_distill_loss(_x(), teacher_embeddings=torch.rand(4)),
        ValueError,
        "teacher_embeddings",
    ),
    "teacher int": (
        lambda: L.embed_distill_loss(_x(), teacher_embeddings=torch.ones(4, 3, dtype=torch.long)),
        TypeError,
        "teacher_embeddings",
    ),
    "teacher NaN": (
        lambda: L.embed_distill_loss(_x(), teacher_embeddings=torch.full((4, 3), float("nan"))),
        ValueError,
        "teacher_embeddings",
    ),
    "student NaN": (
        lambda: L.mse_distill_loss(_x(), torch.full((4, 3), float("nan")), teacher_embeddings=_x()),
        ValueError,
        r"embeddings\[1\]",
    ),
    "student inf, cosine": (
        lambda: L.embed_distill_loss(_x().fill_(float("inf")), teacher_embeddings=_x()),
        ValueError,
        r"embeddings\[0\]",
    ),
    "teacher inf, l2": (
        lambda: L.embed_distill_loss(_x(), teacher_embeddings=_x().fill_(float("-inf")), distance="l2"),
        ValueError,
        "teacher_embeddings",
    ),
    "margin negative NaN": (
        lambda: L.margin_mse_loss(_x(), _x(), _x(), torch.full((4, 3), float("nan")), teacher_scores=_x(4, 3)),
        ValueError,
        r"negatives\[1\]",
    ),
    "margin teacher NaN": (
        lambda: L.margin_mse_loss(_x(), _x(), _x(), teacher_scores=torch.full((4, 2), float("nan"))),
        ValueError,
        "teacher_scores",
    ),
    "kl query inf": (
        lambda: L.distill_kl_div_loss(_x().fill_(float("inf")), _x(), _x(), teacher_scores=_x(4, 2)),
        ValueError,
        "queries",
    ),
    "teacher missing": (lambda: L.embed_distill_loss(_x()), TypeError, "teacher_embeddings"),
    "no student": (lambda: L.embed_distill_loss(teacher_embeddings=_x()), TypeError, "embeddings"),
    "student rows": (
        lambda: L.embed_distill_loss(_x(), _x(5), teacher_embeddings=_x()),
        ValueError,
        r"embeddings\[1\]",
    ),
    "student empty": (lambda: L.embed_distill_loss(_x(0), teacher_embeddings=_x(0)), ValueError, r"embeddings\[0\]"),
    "distance": (lambda: L.embed_distill_loss(_x(), teacher_embeddings=_x(), distance="l1"), ValueError, "distance"),
    "projection width": (
        lambda: L.EmbedDistillLoss(embedding_dim=5, projection_dim=3)(_x(), teacher_embeddings=_x()),
        ValueError,
        "embedding_dim",
    ),
    "projection dim": (lambda: L.EmbedDistillLoss(embedding_dim=3, projection_dim=0), ValueError, "projection_dim"),
    "margin no negative": (lambda: L.margin_mse_loss(_x(), _x(), teacher_scores=_x(4, 1)), ValueError, "negative"),
    "margin teacher width": (
        lambda: L.margin_mse_loss(_x(), _x(), _x(), teacher_scores=_x(4, 3)),
        ValueError,
        "teacher_scores",
    ),
    "margin rows": (
        lambda: L.margin_mse_loss(_x(), _x(), _x(3), teacher_scores=_x(4, 2)),
        ValueError,
        r"negatives\[0\]",
    ),
    "margin teacher rows": (
        lambda: L.margin_mse_loss(_x(), _x(), _x(), teacher_scores=_x(3, 2)),
        ValueError,
        "teacher_scores",
    ),
    "margin similarity": (
        lambda: L.margin_mse_loss(_x(), _x(), _x(), teacher_scores=_x(4, 2), similarity="l2"),
        ValueError,
        "similarity",
    ),
    "kl no negative": (lambda: L.distill_kl_div_loss(_x(), _x(), teacher_scores=_x(4, 1)), ValueError, "negative"),
    "kl teacher width": (
        lambda: L.distill_kl_div_loss(_x(), _x(), _x(), teacher_scores=_x(4, 1)),
        ValueError,
        "teacher_scores",
    ),
    "kl empty": (lambda: L.distill_kl_div_loss(_x(0), _x(0), _x(0), teacher_scores=_x(0, 2)), ValueError, "queries"),
    "kl temperature": (
        lambda: L.distill_kl_div_loss(_x(), _x(), _x(), teacher_scores=_x(4, 2), temperature=0),
        ValueError,
        "temperature",
    ),
    "kl student temperature": (
        lambda: L.distill_kl_div_loss(_x(), _x(), _x(), teacher_scores=_x(4, 2), student_temperature=-1.0),
        ValueError,
        "student_temperature",
    ),
    "softmax labels dtype": (lambda: L.SoftmaxLoss(3, 2)(_x(), _x(), torch.rand(4)), TypeError, "labels"),
    "softmax labels range": (lambda: L.SoftmaxLoss(3, 2)(_x(), _x(), torch.tensor([0, 1, 2, 0])), ValueError, "labels"),
    "softmax labels rows": (lambda: L.SoftmaxLoss(3, 2)(_x(), _x(), torch.tensor([0, 1, 1])), ValueError, "labels"),
    "softmax rows": (lambda: L.SoftmaxLoss(3, 2)(_x(), _x(5), torch.tensor([0, 1, 1, 0])), ValueError, "embeddings_b"),
    "softmax width": (lambda: L.SoftmaxLoss(4, 2)(_x(), _x(), torch.tensor([0, 1, 1, 0])), ValueError, "embedding_dim"),
    "softmax empty": (
        lambda: L.SoftmaxLoss(3, 2)(_x(0), _x(0), torch.zeros(0, dtype=torch.long)),
        ValueError,
        "embeddings_a",
    ),
    "softmax no features": (
        lambda: L.SoftmaxLoss(3, 2, concat_embeddings=False, concat_difference=False),
        ValueError,
        "concat",
    ),
    "softmax flag": (lambda: L.SoftmaxLoss(3, 2, concat_product=1), TypeError, "concat_product"),
    "softmax num_labels": (lambda: L.SoftmaxLoss(3, 0), ValueError, "num_labels"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_bad_input_raises_naming_argument(case):
    call, error, name = BAD_CALLS[case]
    with pytest.raises(error, match=name):
        call()


def test_matryoshka_truncates_the_embeddings_not_the_teacher_rows():
    q, p, n = [_emb(5, 8, seed=s) for s in range(3)]
    scores = _emb(5, 2, seed=7)
    wrapped = L.matryoshka(L.margin_mse_loss, dims=(8, 4))

    def shrink(x, d):
        return torch.nn.functional.normalize(x[:, :d], dim=-1)

    expected = sum(L.margin_mse_loss(shrink(q, d), shrink(p, d), shrink(n, d), teacher_scores=scores) for d in (8, 4))
    _close(wrapped(q, p, n, teacher_scores=scores), expected.item())
