"""Training-step parity: 20 steps of our trainer vs a loop built from sentence-transformers' model and loss with
torch.optim.AdamW, LambdaLR and clip_grad_norm_ — dropout off, the same batches in the same order.

Tolerance: final embeddings (fp32, L2-normalised) agree to 1e-4 max abs after 20 steps.
"""

from pathlib import Path

import numpy as np
import pytest
import torch

from minilm.data.readers import read_rows, to_roles
from minilm.encoder import SentenceEncoder
from minilm.run.registry import make_loss
from minilm.train.samplers import GroupByLabelBatchSampler, RandomBatchSampler
from minilm.train.trainer import TrainConfig, TrainData, Trainer

DATA = Path(__file__).resolve().parents[2] / "recipes" / "data"
STEPS = 20
PROBE = ["a cheap phone with a good camera", "무선 이어폰 추천", "meeting moved to Friday", "蓝牙耳机 降噪"]


def reference_loop(model_dir, st_loss_factory, batches, data: TrainData):
    """sentence-transformers' model and loss, trained with torch's own optimiser, schedule and clipping."""
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    st = SentenceTransformer(str(model_dir), device="cpu")
    st.eval()  # dropout off, as in our run
    loss = st_loss_factory(st)
    decay = [p for n, p in st.named_parameters() if not (n.endswith("bias") or "LayerNorm" in n)]
    no_decay = [p for n, p in st.named_parameters() if n.endswith("bias") or "LayerNorm" in n]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.0}, {"params": no_decay, "weight_decay": 0.0}],
        lr=5e-5,
        betas=(0.9, 0.999),
        eps=1e-8,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: max(0.0, (STEPS - step) / STEPS))
    for rows in batches:
        columns, targets = data.batch(rows)
        features = [st.preprocess(column) for column in columns]
        labels = next(iter(targets.values())) if targets else None
        value = loss(features, labels)
        value.backward()
        torch.nn.utils.clip_grad_norm_(st.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
    return st.encode(PROBE, convert_to_numpy=True)


def our_run(model_dir, loss_fn, data, sampler):
    model = SentenceEncoder.from_pretrained(model_dir)
    config = TrainConfig(batch_size=8, max_steps=STEPS, lr=5e-5, dropout=False, seed=42)
    Trainer(model, loss_fn, data, sampler, config, log=lambda _: None).train()
    return model.encode(PROBE)


def batches_of(sampler, steps):
    out, epoch = [], 0
    while len(out) < steps:
        out += sampler.batches(epoch)
        epoch += 1
    return out[:steps]


@pytest.mark.slow
@pytest.mark.real_weights
@pytest.mark.parametrize("case", ["triplet", "batch_hard", "mnrl"])
def test_twenty_steps_match_sentence_transformers(case, minilm_dir):
    from sentence_transformers.sentence_transformer import losses as st_losses

    if case == "triplet":
        rows = read_rows(DATA / "product_search_zh.csv")
        data = TrainData(
            to_roles(rows, {"anchor": "query", "positive": "product", "negative": "other_product"}, "columns")
        )
        sampler = RandomBatchSampler(len(data), 8, seed=42)
        loss_fn = make_loss("triplet", {"distance": "euclidean", "margin": 5.0})

        def st_loss(st):
            return st_losses.TripletLoss(
                st, distance_metric=st_losses.TripletDistanceMetric.EUCLIDEAN, triplet_margin=5.0
            )
    elif case == "batch_hard":
        texts, labels = to_roles(
            read_rows(DATA / "nutrition_notes_ko.csv"), {"text": "text", "label": "label"}, "labels"
        )
        data = TrainData([texts], labels, "labels")
        sampler = GroupByLabelBatchSampler(labels, 8, seed=42)
        loss_fn = make_loss("batch_hard_triplet", {"margin": 5.0})

        def st_loss(st):
            return st_losses.BatchHardTripletLoss(st, margin=5.0)
    else:
        rows = read_rows(DATA / "notes_to_prose.csv")
        data = TrainData(to_roles(rows, {"anchor": "note", "positive": "sentence"}, "columns"))
        sampler = RandomBatchSampler(len(data), 8, seed=42)
        loss_fn = make_loss("mnrl", {"scale": 20.0, "similarity": "cosine"})

        def st_loss(st):
            return st_losses.MultipleNegativesRankingLoss(st, scale=20.0)

    expected = reference_loop(minilm_dir, st_loss, batches_of(sampler, STEPS), data)
    got = our_run(minilm_dir, loss_fn, data, sampler)
    before = SentenceEncoder.from_pretrained(minilm_dir).encode(PROBE)
    assert np.abs(got - before).max() > 1e-3  # training really moved the weights
    assert np.abs(got - expected).max() <= 1e-4
