"""Real all-MiniLM-L6-v2 weights against sentence-transformers and transformers on the same directory (fp32, CPU).

Tolerance: fp32 embeddings and hidden states agree to 1e-5 max abs, attention probabilities to 2e-6 (they are
computed from hidden states that already differ by ~1e-6; measured 7e-7); Spearman to 1e-4 (rank statistic of those
embeddings).
"""

import numpy as np
import pytest
import torch

from minilm.data.readers import read_sts


@pytest.fixture(scope="module")
def ours(real_model):
    return real_model


@pytest.fixture(scope="module")
def theirs(st_real_model):
    return st_real_model


@pytest.mark.slow
def test_sts_dev_embeddings_and_spearman_match_sentence_transformers(ours, theirs, sts_dir):
    from scipy.stats import spearmanr

    s1, s2, gold = read_sts(sts_dir / "sts-dev.csv")
    sentences = s1 + s2
    assert len(sentences) == 3000
    a = ours.encode(sentences, batch_size=32)
    b = theirs.encode(sentences, batch_size=32, convert_to_numpy=True)
    assert a.shape == b.shape == (3000, 384)
    assert np.abs(a - b).max() <= 1e-5

    def spearman(emb):
        cos = (emb[:1500] * emb[1500:]).sum(-1)  # both sides are L2-normalised by the checkpoint
        return spearmanr(cos, gold).statistic

    assert abs(spearman(a) - spearman(b)) <= 1e-4
    assert spearman(a) > 0.8  # the published all-MiniLM-L6-v2 STS-dev figure is about 0.87


def test_long_sentence_truncated_like_sentence_transformers(ours, theirs):
    long = " ".join(f"word{i} supercalifragilistic" for i in range(300))
    ids = ours.tokenize([long])["input_ids"]
    ref = theirs.tokenize([long])["input_ids"]
    assert ids.shape == (1, 256)
    assert torch.equal(ids, ref)
    assert np.abs(ours.encode(long) - theirs.encode(long)).max() <= 1e-5


def test_batch_size_does_not_change_embeddings_and_order_is_restored(ours, sts_dir):
    s1, _, _ = read_sts(sts_dir / "sts-dev.csv")
    sentences = s1[:64]
    one = ours.encode(sentences, batch_size=1)
    for batch_size in (7, 64):
        assert np.abs(ours.encode(sentences, batch_size=batch_size) - one).max() <= 1e-6
    shuffled = sentences[::-1]
    assert np.abs(ours.encode(shuffled, batch_size=7) - one[::-1]).max() <= 1e-6


def test_single_string_empty_list_and_empty_string(ours, theirs):
    vec = ours.encode("A man is playing a guitar.")
    assert vec.shape == (384,)
    empty = ours.encode([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    e = ours.encode([""])
    assert np.abs(e - theirs.encode([""])).max() <= 1e-5


def test_non_string_element_names_its_index(ours):
    with pytest.raises(TypeError, match=r"inputs\[2\]"):
        ours.encode(["a", "b", 3])
    with pytest.raises(TypeError, match="list of strings"):
        ours.tokenize("not a list")


def test_forward_has_autograd_and_equals_encode(ours):
    texts = ["first sentence", "a second, longer sentence here"]
    emb = ours.embed(texts)
    assert emb.requires_grad and emb.shape == (2, 384)
    assert torch.allclose(emb.detach(), ours.encode(texts, convert_to_tensor=True), atol=1e-6)
    emb.sum().backward()
    assert ours.bert.embeddings.word.weight.grad is not None
    ours.zero_grad(set_to_none=True)


def test_normalize_switched_off_and_similarity(ours, theirs):
    texts = ["a cat sits", "a dog runs", "markets fell"]
    ours.normalize = False  # the checkpoint's Normalize module off
    try:
        raw = ours.encode(texts)
    finally:
        ours.normalize = True
    with torch.no_grad():  # their Transformer + Pooling modules only, skipping Normalize
        ref = theirs[1](theirs[0](theirs.preprocess(texts)))["sentence_embedding"].numpy()
    assert np.abs(raw - ref).max() <= 1e-5
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    sim = ours.similarity(raw, raw)
    assert isinstance(sim, torch.Tensor) and sim.shape == (3, 3)  # a tensor, as sentence-transformers returns
    assert (sim - theirs.similarity(raw, raw)).abs().max() <= 1e-6


def test_bert_outputs_match_transformers_bert_model(ours, minilm_dir):
    """BertModel with output_hidden_states / output_attentions against transformers.BertModel on the same weights:
    every hidden state 1e-5, every attention probability 2e-6 (max abs, real query positions, fp32)."""
    import transformers

    reference = transformers.BertModel.from_pretrained(str(minilm_dir), attn_implementation="eager").eval()
    features = ours.tokenize(
        ["A man is playing a guitar.", "Two dogs run through a snowy field near a fence.", "Markets fell."]
    )
    keep = features["attention_mask"].bool()  # (B, T)
    with torch.no_grad():
        mine = ours.bert(**features, output_hidden_states=True, output_attentions=True)
        theirs = reference(**features, output_hidden_states=True, output_attentions=True)
    assert len(mine.hidden_states) == 7 and len(mine.attentions) == 6
    for a, b in zip(mine.hidden_states, theirs.hidden_states, strict=True):
        assert (a[keep] - b[keep]).abs().max() <= 1e-5
    for a, b in zip(mine.attentions, theirs.attentions, strict=True):
        assert a.shape == b.shape == (3, 12, keep.shape[1], keep.shape[1])
        assert (a - b).transpose(1, 2)[keep].abs().max() <= 2e-6  # (B, T, nh, T) at the real queries
