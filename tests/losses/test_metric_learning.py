"""minilm.losses.metric_learning (SupCon, NT-Xent, Circle, Multi-Similarity + its miner) and proxies (ArcFace,
CosFace, ProxyAnchor): float64 loop oracles, gradcheck, bad input. Parity with pytorch-metric-learning is in
tests/parity/test_losses_vs_pml.py.

Tolerances: float64 values vs the oracle rtol 1e-6, atol 1e-7; gradcheck at its float64 defaults.
"""

from __future__ import annotations

import math

import pytest
import torch
from test_losses import o_cos

from minilm import losses as L


def o_lse(xs, add_one=False):
    xs = list(xs) + ([0.0] if add_one else [])
    if not xs:
        return 0.0
    top = max(xs)
    return top + math.log(sum(math.exp(x - top) for x in xs))


def _pairs(labels):
    n = len(labels)
    pos = [[j for j in range(n) if j != i and labels[j] == labels[i]] for i in range(n)]
    neg = [[j for j in range(n) if labels[j] != labels[i]] for i in range(n)]
    return pos, neg


def o_supcon(x, labels, t):
    pos, neg = _pairs(labels)
    if not any(pos) or not any(neg):
        return 0.0
    losses = []
    for i in range(len(x)):
        s = [o_cos(x[i], x[j]) / t for j in range(len(x))]
        z = o_lse([s[j] for j in pos[i] + neg[i]])
        losses.append(-sum(s[p] - z for p in pos[i]) / len(pos[i]) if pos[i] else 0.0)
    kept = [v for v in losses if v > 0]
    return sum(kept) / len(kept) if kept else 0.0


def o_ntxent(x, labels, t):
    pos, neg = _pairs(labels)
    if not any(pos) or not any(neg):
        return 0.0
    total, count = 0.0, 0
    for i in range(len(x)):
        for p in pos[i]:
            sp = o_cos(x[i], x[p]) / t
            total += o_lse([sp] + [o_cos(x[i], x[n]) / t for n in neg[i]]) - sp
            count += 1
    return total / count


def o_circle(x, labels, m, gamma):
    pos, neg = _pairs(labels)
    losses = []
    for i in range(len(x)):
        if not pos[i] or not neg[i]:
            losses.append(0.0)
            continue
        lp = [-gamma * max(1 + m - s, 0) * (s - (1 - m)) for s in (o_cos(x[i], x[j]) for j in pos[i])]
        ln = [gamma * max(s + m, 0) * (s - m) for s in (o_cos(x[i], x[j]) for j in neg[i])]
        z = o_lse(lp) + o_lse(ln)
        losses.append(max(z, 0) + math.log1p(math.exp(-abs(z))))  # softplus
    kept = [v for v in losses if v > 0]
    return sum(kept) / len(kept) if kept else 0.0


def o_ms_mine(x, labels, eps):
    pos, neg = _pairs(labels)
    n = len(x)
    s = [[o_cos(x[i], x[j]) for j in range(n)] for i in range(n)]
    mined_pos, mined_neg = [], []
    for i in range(n):
        hardest_neg = max((s[i][j] for j in neg[i]), default=-math.inf)
        easiest_pos = min((s[i][j] for j in pos[i]), default=math.inf)
        mined_pos.append([j for j in pos[i] if s[i][j] - eps < hardest_neg])
        mined_neg.append([j for j in neg[i] if s[i][j] + eps > easiest_pos])
    return mined_pos, mined_neg


def o_multi_similarity(x, labels, alpha, beta, base, mine, eps):
    pos, neg = o_ms_mine(x, labels, eps) if mine else _pairs(labels)
    if sum(map(len, pos)) <= 1 and sum(map(len, neg)) <= 1:
        return 0.0
    total = 0.0
    for i in range(len(x)):
        total += o_lse([-alpha * (o_cos(x[i], x[j]) - base) for j in pos[i]], add_one=True) / alpha
        total += o_lse([beta * (o_cos(x[i], x[j]) - base) for j in neg[i]], add_one=True) / beta
    return total / len(x)


def o_softmax_ce(logits, target):
    return o_lse(logits) - logits[target]


def o_arcface(x, w, labels, margin, scale):
    total = 0.0
    for u, y in zip(x, labels):
        cos = [o_cos(u, c) for c in w]
        theta = math.acos(max(-1.0, min(1.0, cos[y])))
        target = math.cos(theta + margin) if theta <= math.pi - margin else math.cos(theta) - margin * math.sin(margin)
        logits = [scale * (target if k == y else c) for k, c in enumerate(cos)]
        total += o_softmax_ce(logits, y)
    return total / len(x)


def o_cosface(x, w, labels, margin, scale):
    total = 0.0
    for u, y in zip(x, labels):
        logits = [scale * (o_cos(u, c) - (margin if k == y else 0.0)) for k, c in enumerate(w)]
        total += o_softmax_ce(logits, y)
    return total / len(x)


def o_proxy_anchor(x, proxies, labels, margin, alpha):
    pos_total, neg_total, with_pos = 0.0, 0.0, 0
    for c, proxy in enumerate(proxies):
        s = [o_cos(u, proxy) for u in x]
        members = [s[i] for i in range(len(x)) if labels[i] == c]
        others = [s[i] for i in range(len(x)) if labels[i] != c]
        if members:
            with_pos += 1
            pos_total += o_lse([-alpha * (v - margin) for v in members], add_one=True)
        neg_total += o_lse([alpha * (v + margin) for v in others], add_one=True)
    return pos_total / with_pos + neg_total / len(proxies)


# ---------------------------------------------------------------------------------------------------------------------


def _emb(n, d=6, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _close(ours, expected):
    assert torch.isfinite(ours)
    assert ours.item() == pytest.approx(expected, rel=1e-6, abs=1e-7)


LABELS = {
    "random": [0, 1, 2, 0, 1, 2, 0, 1, 2],
    "no_positive_for_some": [0, 0, 1, 2, 2, 3, 4, 4, 5],
    "one_class": [0] * 9,
    "all_distinct": list(range(9)),
    "batch_of_1": [3],
    "batch_of_2_same": [1, 1],
    "batch_of_2_diff": [1, 2],
}


@pytest.mark.parametrize("labels", list(LABELS))
def test_pair_losses_match_oracle(labels):
    y = torch.tensor(LABELS[labels])
    x = _emb(len(y))
    if len(y) > 3:
        x[2] = 0  # a zero vector
        x[3] = x[0]  # a duplicate row
    xs, ys = x.tolist(), y.tolist()
    _close(L.supcon_loss(x, y, temperature=0.5), o_supcon(xs, ys, 0.5))
    _close(L.ntxent_loss(x, y, temperature=0.5), o_ntxent(xs, ys, 0.5))
    _close(L.circle_loss(x, y, margin=0.4, gamma=8.0), o_circle(xs, ys, 0.4, 8.0))
    for mine in (False, True):
        _close(
            L.multi_similarity_loss(x, y, alpha=2.0, beta=10.0, base=0.5, mine=mine, epsilon=0.1),
            o_multi_similarity(xs, ys, 2.0, 10.0, 0.5, mine, 0.1),
        )


def test_multi_similarity_miner_matches_oracle():
    from minilm.losses.distances import cosine_similarity_matrix
    from minilm.losses.miners import multi_similarity_pairs

    for name, labels in LABELS.items():
        x = _emb(len(labels), seed=4)
        pos, neg = multi_similarity_pairs(cosine_similarity_matrix(x, x), torch.tensor(labels), 0.1)
        o_pos, o_neg = o_ms_mine(x.tolist(), labels, 0.1)
        assert [row.nonzero().flatten().tolist() for row in pos] == o_pos, name
        assert [row.nonzero().flatten().tolist() for row in neg] == o_neg, name


def _proxy_module(cls, num_labels=4, d=6, **kwargs):
    torch.manual_seed(0)
    return cls(embedding_dim=d, num_labels=num_labels, **kwargs).double()


@pytest.mark.parametrize("labels", [[0, 1, 2, 3, 0, 1, 2], [0, 0, 0, 0], [3], [1, 2]])
def test_proxy_losses_match_oracle(labels):
    y = torch.tensor(labels)
    x = _emb(len(y), seed=2)
    arc = _proxy_module(L.ArcFaceLoss, margin=0.5, scale=4.0)
    _close(arc(x, y), o_arcface(x.tolist(), arc.proxies.tolist(), labels, 0.5, 4.0))
    cos = _proxy_module(L.CosFaceLoss, margin=0.35, scale=4.0)
    _close(cos(x, y), o_cosface(x.tolist(), cos.proxies.tolist(), labels, 0.35, 4.0))
    anchor = _proxy_module(L.ProxyAnchorLoss, margin=0.1, alpha=4.0)
    _close(anchor(x, y), o_proxy_anchor(x.tolist(), anchor.proxies.tolist(), labels, 0.1, 4.0))


def test_arcface_beyond_pi_minus_margin_uses_the_linear_fallback():
    """theta > pi - m (a sample almost opposite its class proxy) takes cos(theta) - m sin(m), as in PML/insightface."""
    arc = _proxy_module(L.ArcFaceLoss, num_labels=2, d=2, margin=0.5, scale=2.0)
    with torch.no_grad():
        arc.proxies.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    x = torch.tensor([[-1.0, 0.05], [0.2, 1.0]], dtype=torch.float64)
    y = torch.tensor([0, 1])
    _close(arc(x, y), o_arcface(x.tolist(), arc.proxies.tolist(), [0, 1], 0.5, 2.0))


def _gradcheck(fn, *inputs):
    leaves = [t.clone().requires_grad_() for t in inputs]
    assert torch.autograd.gradcheck(fn, leaves)


GRAD_LABELS = torch.tensor([0, 1, 0, 1, 2, 2, 0])


@pytest.mark.parametrize(
    "loss",
    [
        lambda x: L.supcon_loss(x, GRAD_LABELS, temperature=0.5),
        lambda x: L.supcon_loss(x, GRAD_LABELS, temperature=2.0, similarity="dot"),
        lambda x: L.ntxent_loss(x, GRAD_LABELS, temperature=0.5),
        lambda x: L.ntxent_loss(x, GRAD_LABELS, temperature=2.0, similarity="dot"),
        lambda x: L.multi_similarity_loss(x, GRAD_LABELS, beta=10.0, mine=False),
        lambda x: L.multi_similarity_loss(x, GRAD_LABELS, beta=10.0, epsilon=0.5),
    ],
    ids=["supcon", "supcon_dot", "ntxent", "ntxent_dot", "ms", "ms_mined"],
)
def test_gradcheck_pair_losses(loss):
    _gradcheck(loss, _emb(7))


def t_circle(x, held, labels, m, gamma):
    """Circle loss row by row in torch with its self-paced weights computed from ``held`` (constant inputs)."""
    cos = torch.nn.functional.cosine_similarity
    pos, neg = _pairs(labels.tolist())
    losses = []
    for i in range(len(x)):
        if not pos[i] or not neg[i]:
            continue
        lp = torch.stack(
            [
                -gamma * torch.relu(1 + m - cos(held[i], held[j], dim=0)) * (cos(x[i], x[j], dim=0) - 1 + m)
                for j in pos[i]
            ]
        )
        ln = torch.stack(
            [gamma * torch.relu(cos(held[i], held[j], dim=0) + m) * (cos(x[i], x[j], dim=0) - m) for j in neg[i]]
        )
        losses.append(torch.nn.functional.softplus(lp.logsumexp(0) + ln.logsumexp(0)))
    return torch.stack(losses).mean()


def test_circle_gradient_holds_the_weights_constant():
    """Circle's self-paced weights carry no gradient (by design, as PML), so gradcheck applies to the loss with the
    weights frozen at the evaluation point: gradcheck that torch oracle, then match our autograd gradient to it."""
    x0 = _emb(7)
    _gradcheck(lambda x: t_circle(x, x0, GRAD_LABELS, 0.4, 8.0), x0)
    x = x0.clone().requires_grad_()
    ours, expected = L.circle_loss(x, GRAD_LABELS, gamma=8.0), t_circle(x, x0, GRAD_LABELS, 0.4, 8.0)
    assert ours.item() == pytest.approx(expected.item(), rel=1e-12)
    torch.testing.assert_close(
        torch.autograd.grad(ours, x)[0], torch.autograd.grad(expected, x)[0], rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (L.ArcFaceLoss, {"margin": 0.5, "scale": 4.0}),
        (L.CosFaceLoss, {"margin": 0.35, "scale": 4.0}),
        (L.ProxyAnchorLoss, {"margin": 0.1, "alpha": 4.0}),
    ],
)
def test_gradcheck_proxy_losses(cls, kwargs):
    module = _proxy_module(cls, num_labels=3, **kwargs)
    y = torch.tensor([0, 1, 2, 0, 1])

    def fn(x, proxies):
        return torch.func.functional_call(module, {"proxies": proxies}, (x, y))

    _gradcheck(fn, _emb(5), module.proxies.detach())


def _x(n=4, d=3):
    return torch.randn(n, d)


PAIR_LOSSES = [L.supcon_loss, L.ntxent_loss, L.circle_loss, L.multi_similarity_loss]


def _module(cls):
    return lambda x, y: cls(embedding_dim=3, num_labels=4)(x, y)


ALL_LABEL_LOSSES = PAIR_LOSSES + [_module(L.ArcFaceLoss), _module(L.CosFaceLoss), _module(L.ProxyAnchorLoss)]
IDS = ["supcon", "ntxent", "circle", "multi_similarity", "arcface", "cosface", "proxy_anchor"]


@pytest.mark.parametrize("loss", ALL_LABEL_LOSSES, ids=IDS)
@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda f: f(_x(), torch.tensor([0, 1, 0])), ValueError, "labels"),  # mismatched rows
        (lambda f: f(_x(), torch.tensor([0.0, 1, 0, 1])), TypeError, "labels"),  # label dtype
        (lambda f: f(_x(), torch.zeros(4, 1, dtype=torch.long)), ValueError, "labels"),  # 2-D labels
        (lambda f: f(_x(), [0, 1, 0, 1]), TypeError, "labels"),
        (lambda f: f(torch.rand(4), torch.arange(4)), ValueError, "embeddings"),  # 1-D
        (lambda f: f(_x(0), torch.arange(0)), ValueError, "embeddings"),  # empty batch
        (lambda f: f(torch.full((4, 3), float("nan")), torch.arange(4)), ValueError, "embeddings"),
        (lambda f: f(torch.ones(4, 3, dtype=torch.long), torch.arange(4)), TypeError, "embeddings"),
    ],
    ids=["rows", "label dtype", "labels 2-D", "labels list", "1-D", "empty", "NaN", "int embeddings"],
)
def test_bad_input_raises_naming_argument(loss, call, error, name):
    with pytest.raises(error, match=name):
        call(loss)


@pytest.mark.parametrize(
    "call, error, name",
    [
        (lambda: L.supcon_loss(_x(), torch.arange(4), temperature=0), ValueError, "temperature"),
        (lambda: L.ntxent_loss(_x(), torch.arange(4), similarity="l2"), ValueError, "similarity"),
        (lambda: L.circle_loss(_x(), torch.arange(4), gamma=-1.0), ValueError, "gamma"),
        (lambda: L.multi_similarity_loss(_x(), torch.arange(4), mine="yes"), TypeError, "mine"),
        (lambda: L.multi_similarity_loss(_x(), torch.arange(4), alpha=0), ValueError, "alpha"),
        (lambda: L.ArcFaceLoss(embedding_dim=3, num_labels=4)(_x(), torch.tensor([0, 1, 4, 1])), ValueError, "labels"),
        (lambda: L.CosFaceLoss(embedding_dim=3, num_labels=4)(_x(), torch.tensor([0, -1, 2, 1])), ValueError, "labels"),
        (lambda: L.ProxyAnchorLoss(embedding_dim=3, num_labels=4)(_x(4, 5), torch.arange(4)), ValueError, "embeddings"),
        (lambda: L.ArcFaceLoss(embedding_dim=3, num_labels=0), ValueError, "num_labels"),
        (lambda: L.CosFaceLoss(embedding_dim=True, num_labels=3), TypeError, "embedding_dim"),
        (lambda: L.ArcFaceLoss(embedding_dim=3, num_labels=3, margin=4.0), ValueError, "margin"),
    ],
)
def test_bad_settings_raise_naming_argument(call, error, name):
    with pytest.raises(error, match=name):
        call()
