"""margin_mse with a 1-D (B,) teacher for one negative (minilm/losses/distill.py), as sentence-transformers 6.2 takes
it; refused, as there, with several negatives."""

import pytest
import torch
from parity import compare

from minilm import losses as L

st_losses = pytest.importorskip("sentence_transformers.sentence_transformer.losses")


def _emb(n, d=16, dtype=torch.float32, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("similarity", ["dot", "cosine"])
def test_a_one_dimensional_teacher_is_one_margin_per_row(similarity, dtype):
    from sentence_transformers.util import pairwise_cos_sim, pairwise_dot_score

    teacher = _emb(12, 1, dtype, seed=8).squeeze(1)  # (B,)
    st = st_losses.MarginMSELoss(None, similarity_fct=pairwise_dot_score if similarity == "dot" else pairwise_cos_sim)
    compare(
        "margin_mse",
        lambda e: L.margin_mse_loss(*e, teacher_scores=teacher, similarity=similarity),
        lambda e: st.compute_loss_from_embeddings(e, teacher),
        [_emb(12, dtype=dtype, seed=s) for s in range(3)],
    )
    q, p, n = (_emb(12, seed=s) for s in range(3))
    assert L.margin_mse_loss(q, p, n, teacher_scores=teacher.float()) == L.margin_mse_loss(
        q, p, n, teacher_scores=teacher.float()[:, None]
    )


def test_a_one_dimensional_teacher_with_several_negatives_is_refused():
    q, p, n1, n2 = (_emb(4, seed=s) for s in range(4))
    with pytest.raises(ValueError, match=r"teacher_scores must have shape \(4, K\).*got shape \(4,\)"):
        L.margin_mse_loss(q, p, n1, n2, teacher_scores=torch.zeros(4))
    with pytest.raises(ValueError, match=r"teacher_scores must have shape \(4, K\).*got shape \(3,\)"):
        L.margin_mse_loss(q, p, n1, teacher_scores=torch.zeros(3))
