"""The model card speaks sentence-transformers (issue 20; minilm/card/): the hyperparameters under its names (as in
the two reference cards in /work/shared/reference/model-cards/, written by sentence-transformers' trainer), measured
non-default against its defaults, and the base model named even for a plain save of a loaded model."""

import re
from dataclasses import asdict
from pathlib import Path

import pytest

from minilm.card import LossCard, TrainingCard
from minilm.card.training_part import st_hyperparameters
from minilm.encoder import SentenceEncoder
from minilm.train.config import TrainConfig, non_defaults

REFERENCE = Path("/work/shared/reference/model-cards")
# The optimiser and schedule settings every sentence-transformers card lists, which a minilm run has too.
SHARED = [
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "learning_rate",
    "weight_decay",
    "adam_beta1",
    "adam_beta2",
    "adam_epsilon",
    "max_grad_norm",
    "num_train_epochs",
    "max_steps",
    "lr_scheduler_type",
    "warmup_ratio",
    "warmup_steps",
    "seed",
    "optim",
    "load_best_model_at_end",
    "batch_sampler",
    "torch_compile",
]


def listed(text: str) -> dict[str, str]:
    every = text.split("#### All Hyperparameters")[1].split("</details>")[0]
    return dict(re.findall(r"^- `(\w+)`: (.*)$", every, re.M))


def run_card(**train) -> TrainingCard:
    config = TrainConfig(**{"batch_size": 16, **train})
    loss = LossCard("mnrl", "minilm.losses.in_batch.mnrl", {}, ["MultipleNegativesRankingLoss"], {})
    return TrainingCard(
        base_model="sentence-transformers/all-MiniLM-L6-v2",
        dataset_name="pairs.csv",
        columns={"anchor": ["a", "b"], "positive": ["c", "d"]},
        loss=loss,
        hyperparameters={**asdict(config), "sampler": "no_duplicates"},
        non_default=non_defaults(config),
    )


@pytest.mark.skipif(not REFERENCE.is_dir(), reason="reference cards not present")
def test_hyperparameter_names_are_the_reference_cards(real_model, tmp_path):
    references = [listed(path.read_text(encoding="utf-8")) for path in sorted(REFERENCE.glob("*.md"))]
    assert len(references) == 2
    real_model.save(tmp_path / "m", card=run_card(lr=2e-5, epochs=4, warmup_ratio=0.1))
    ours = listed((tmp_path / "m" / "README.md").read_text(encoding="utf-8"))
    for name in SHARED:
        assert all(name in reference for reference in references), name
        assert name in ours, name
    assert ours["learning_rate"] == "2e-05" and ours["num_train_epochs"] == "4" and ours["warmup_ratio"] == "0.1"
    assert ours["adam_beta1"] == references[0]["adam_beta1"] == "0.9"
    assert ours["adam_beta2"] == references[0]["adam_beta2"] and ours["adam_epsilon"] == references[0]["adam_epsilon"]
    assert ours["lr_scheduler_type"] == references[0]["lr_scheduler_type"] == "linear"
    assert ours["max_steps"] == references[0]["max_steps"] == "-1"  # minilm's "no limit" is 0; theirs is -1
    assert "lr" not in ours and "batch_size" not in ours and "epochs" not in ours
    assert ours["dropout"] == "True"  # minilm's own settings stay, under their [train] names


def test_non_default_is_measured_against_sentence_transformers_defaults():
    every = st_hyperparameters(asdict(TrainConfig(batch_size=8)))
    assert every["per_device_train_batch_size"] == 8 and every["eval_strategy"] == "no"
    assert every["greater_is_better"] is None and every["report_to"] == "none"
    assert (
        st_hyperparameters(asdict(TrainConfig(batch_size=8, eval_steps=5, metric_for_best="spearman")))[
            "greater_is_better"
        ]
        is True
    )


def test_a_plain_save_names_the_model_it_was_loaded_from(tmp_path):
    """Loaded by hub id (answered here by the packaged copy, the hub being offline), saved untrained: the card's
    title, description and front matter name the hub id."""
    model = SentenceEncoder.from_pretrained("sentence-transformers/all-MiniLM-L6-v2")
    model.save(tmp_path / "m")
    text = (tmp_path / "m" / "README.md").read_text(encoding="utf-8")
    assert "\nbase_model: sentence-transformers/all-MiniLM-L6-v2\n" in text.split("---")[1]
    assert "# SentenceTransformer based on sentence-transformers/all-MiniLM-L6-v2" in text
    assert (
        "- **Base model:** [sentence-transformers/all-MiniLM-L6-v2]"
        "(https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2)"
    ) in text
    assert "finetuned from" not in text  # it was not trained here
