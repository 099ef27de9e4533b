"""MegaBatchMargin when two negatives tie for the hardest (minilm/losses/in_batch.py): the whole gradient goes to the
one ``max`` picks, as in sentence-transformers 6.2, not half to each (the sums are equal, the rows updated are not)."""

import pytest
import torch
import torch.nn.functional as F
from parity import compare
from torch import nn

from minilm import losses as L
from minilm.losses.distances import cosine_similarity_matrix

st_losses = pytest.importorskip("sentence_transformers.sentence_transformer.losses")


def tied_batch(dtype):
    """Anchor 0's negatives 1 and 2 are the same vector (an exact tie for its hardest); negative 3 is far from it."""
    g = torch.Generator().manual_seed(3)
    anchors = torch.randn(4, 8, generator=g).to(dtype)
    positives = torch.randn(4, 8, generator=g).to(dtype)
    positives[2] = positives[1]
    positives[3] = -anchors[0]
    return anchors, positives


def split_between_ties(anchors, positives, positive_margin=0.8, negative_margin=-1.0):
    """The loss with amax, which shares the gradient among tied maxima: what minilm computed before."""
    cos = cosine_similarity_matrix(anchors, positives)
    hardest = cos.masked_fill(torch.eye(cos.shape[0], dtype=torch.bool), -torch.inf).amax(dim=1)
    return (F.relu(positive_margin - cos.diagonal()) + F.relu(hardest - negative_margin)).mean()


def gradient(loss, anchors, positives):
    p = positives.clone().requires_grad_(True)
    loss(anchors, p).backward()
    return p.grad


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_a_tie_for_the_hardest_negative_sends_the_gradient_to_one_row_as_sentence_transformers(dtype):
    anchors, positives = tied_batch(dtype)
    cos = cosine_similarity_matrix(anchors, positives)
    assert cos[0, 1] == cos[0, 2] and cos[0, 1] > cos[0, 3]  # the tie this test is about
    st = st_losses.MegaBatchMarginLoss(
        nn.Sequential(nn.Identity()), positive_margin=0.8, negative_margin=-1.0, mini_batch_size=4
    )
    ours = lambda e: L.mega_batch_margin_loss(*e, negative_margin=-1.0)  # noqa: E731
    compare("mega_batch_margin", ours, lambda e: st.calculate_loss([[x] for x in e]), [anchors, positives])

    # and the test can tell: sharing the gradient moves rows 1 and 2 differently, with the same sum
    got = gradient(lambda a, p: L.mega_batch_margin_loss(a, p, negative_margin=-1.0), anchors, positives)
    shared = gradient(split_between_ties, anchors, positives)
    assert not torch.allclose(got[1], shared[1]) and not torch.allclose(got[2], shared[2])
    torch.testing.assert_close(got[1] + got[2], shared[1] + shared[2])
    torch.testing.assert_close(got[[0, 3]], shared[[0, 3]])
