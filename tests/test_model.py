"""Architecture generality on tiny random BERTs saved by transformers, plus the attention paths.

Tolerances (fp32): hidden states and pooled outputs 1e-5 max abs; attention probabilities 1e-6 max abs; SDPA vs
reference 1e-5 forward, 1e-5 relative to the largest gradient entry backward.
"""

import numpy as np
import pytest
import torch
from helpers import make_tiny_checkpoint

from minilm.encoder import SentenceEncoder
from minilm.model import BertOutput

TEXTS = [
    "a short one",
    "",
    "A much longer sentence, with punctuation; and some rarer words like photosynthesis.",
    "数字 and 한국어 mixed in",
    "the end",
]

CONFIGS = {
    "mean-2layer": dict(layers=2, pooling="mean"),
    "cls": dict(layers=2, pooling="cls", normalize=True),
    "max": dict(layers=2, pooling="max", legacy_pooling=False),
    "mean-3layer": dict(layers=3, hidden=48, heads=3, intermediate=96, pooling="mean"),
}


@pytest.fixture(scope="module", params=sorted(CONFIGS))
def tiny(request, tmp_path_factory, minilm_dir):
    directory = tmp_path_factory.mktemp(request.param)
    bert = make_tiny_checkpoint(directory, minilm_dir, **CONFIGS[request.param])
    return directory, bert


def test_last_hidden_states_match_transformers_on_padded_batches(tiny):
    directory, reference = tiny
    ours = SentenceEncoder.from_pretrained(directory)
    features = ours.tokenize(TEXTS)
    assert (features["attention_mask"] == 0).any()  # the batch really is padded
    with torch.no_grad():
        mine = ours.bert(features["input_ids"], features["attention_mask"])
        theirs = reference(**features).last_hidden_state
    keep = features["attention_mask"].bool()  # padded positions are undefined in both
    assert (mine[keep] - theirs[keep]).abs().max() <= 1e-5


@pytest.mark.parametrize("sdpa", [True, False])
def test_hidden_states_and_attentions_match_transformers(tiny, sdpa):
    """output_hidden_states / output_attentions: L + 1 hidden states (embeddings first) and L probability maps, as
    transformers' BertModel returns them (its eager attention, the one that can return probabilities)."""
    directory, reference = tiny
    reference.set_attn_implementation("eager")
    ours = SentenceEncoder.from_pretrained(directory)
    for layer in ours.bert.layers:
        layer.attention.sdpa = sdpa  # asking for attentions takes the matmul path either way
    features = ours.tokenize(TEXTS)
    keep = features["attention_mask"].bool()  # (B, T)
    with torch.no_grad():
        mine = ours.bert(**features, output_hidden_states=True, output_attentions=True)
        theirs = reference(**features, output_hidden_states=True, output_attentions=True)
        only_hidden = ours.bert(**features, output_hidden_states=True)
    L = ours.bert.config.num_hidden_layers
    assert isinstance(mine, BertOutput) and len(mine.hidden_states) == L + 1 and len(mine.attentions) == L
    assert torch.equal(mine.last_hidden_state, mine.hidden_states[-1])
    for a, b in zip(mine.hidden_states, theirs.hidden_states, strict=True):
        assert (a[keep] - b[keep]).abs().max() <= 1e-5
    real_queries = keep[:, None, :, None]  # (B, 1, T, 1): rows of padded queries are undefined in both
    for a, b in zip(mine.attentions, theirs.attentions, strict=True):
        assert a.shape == b.shape == (len(TEXTS), ours.bert.config.num_attention_heads, keep.shape[1], keep.shape[1])
        assert (a - b).masked_fill(~real_queries, 0).abs().max() <= 1e-6
    assert only_hidden.attentions is None and len(only_hidden.hidden_states) == L + 1


def test_pooled_outputs_match_sentence_transformers(tiny):
    from sentence_transformers import SentenceTransformer

    directory, _ = tiny
    ours = SentenceEncoder.from_pretrained(directory)
    theirs = SentenceTransformer(str(directory), device="cpu")
    assert np.abs(ours.encode(TEXTS, batch_size=2) - theirs.encode(TEXTS, batch_size=2)).max() <= 1e-5


def test_sdpa_and_reference_attention_agree_forward_and_backward(minilm_dir, tmp_path):
    make_tiny_checkpoint(tmp_path, minilm_dir, layers=2)
    model = SentenceEncoder.from_pretrained(tmp_path)
    features = model.tokenize(TEXTS)
    outputs, grads = [], []
    for sdpa in (True, False):
        for layer in model.bert.layers:
            layer.attention.sdpa = sdpa
        model.zero_grad(set_to_none=True)
        emb = model(**features)
        (emb * torch.linspace(-1, 1, emb.shape[-1])).sum().backward()
        outputs.append(emb.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert (outputs[0] - outputs[1]).abs().max() <= 1e-5
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 0
    for name in grads[0]:
        # relative: the embedding-table gradients are sums over every token of the batch
        scale = max(1.0, grads[1][name].abs().max().item())
        assert (grads[0][name] - grads[1][name]).abs().max() <= 1e-5 * scale, name


@pytest.mark.parametrize("sdpa", [True, False])
def test_a_batch_without_padding_runs_unmasked_and_still_matches_transformers(tiny, sdpa):
    """No padding, no mask (attend gets None): the same hidden states as transformers, through SDPA or the matmul."""
    directory, reference = tiny
    ours = SentenceEncoder.from_pretrained(directory)
    for layer in ours.bert.layers:
        layer.attention.sdpa = sdpa
    features = ours.tokenize(["one two three", "four five six"])
    assert features["attention_mask"].all()
    masks = []
    ours.bert.layers[0].attention.register_forward_pre_hook(lambda module, args: masks.append(args[1]))
    with torch.no_grad():
        mine = ours.bert(features["input_ids"], features["attention_mask"])
        theirs = reference(**features).last_hidden_state
    assert masks == [None]
    assert (mine - theirs).abs().max() <= 1e-5
