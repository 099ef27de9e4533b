"""Model cards (minilm/card/, minilm/run/citations.py): what save writes, what it never overwrites, and the
parts computed against sentence-transformers (token statistics, citations, the similarities in the usage example)."""

import ast
import re

import numpy as np
import pytest
import yaml

from minilm.card import LossCard, TrainingCard, column_stats, is_minilm_card
from minilm.card.markdown import yaml_lines
from minilm.encoder import SentenceEncoder
from minilm.losses.bibtex import KUSUPATI
from minilm.losses.catalogue import GOR, MNRL_SYMMETRIC, REFERENCES
from minilm.run.citations import describe_loss
from minilm.run.registry import LOSSES

TEXTS = ["A man is playing a flute.", "Two dogs run through a field of tall grass near the river.", "x"]


@pytest.fixture(scope="module")
def model(real_model):
    return real_model


@pytest.fixture(scope="module")
def st_model(st_real_model):
    return st_real_model


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def sections(text: str) -> list[str]:
    return re.findall(r"^#{1,4} (.+)$", text, re.M)


@pytest.mark.slow
def test_untrained_save_writes_a_minimal_card_that_sentence_transformers_loads(model, tmp_path):
    """The card's similarity matrix is printed to 4 decimals: it must be sentence-transformers' to 1e-4."""
    from huggingface_hub import ModelCard
    from sentence_transformers import SentenceTransformer

    model.save(tmp_path / "m")
    text = (tmp_path / "m" / "README.md").read_text(encoding="utf-8")
    assert is_minilm_card(text)
    meta = front_matter(text)
    assert meta["library_name"] == "sentence-transformers" and "sentence-transformers" in meta["tags"]
    assert "generated_from_trainer" not in meta["tags"] and "base_model" not in meta
    assert ModelCard.load(tmp_path / "m" / "README.md").data.library_name == "sentence-transformers"
    # a plain save names what the model was loaded from as its base (a local path: not in the front matter)
    assert sections(text)[:7] == [
        f"SentenceTransformer based on {model.base_model}",
        "Model Details",
        "Model Description",
        "Model Sources",
        "Full Model Architecture",
        "Usage",
        "Direct Usage (minilm)",
    ]
    assert "Training Details" not in sections(text) and "Framework Versions" in sections(text)
    assert "- **Maximum Sequence Length:** 256 tokens" in text and "- **Output Dimensionality:** 384 dimensions" in text
    assert "(2): Normalize()" in text and "'pooling_mode_mean_tokens': True" in text

    theirs = SentenceTransformer(str(tmp_path / "m"), device="cpu")  # the folder, card and all, unchanged
    assert np.abs(theirs.encode(TEXTS) - model.encode(TEXTS)).max() <= 1e-5
    snippet = text.split("### Direct Usage (Sentence Transformers)")[1]
    sentences = ast.literal_eval(re.search(r"^sentences = (\[.*?^\])", snippet, re.M | re.S).group(1))
    matrix = re.findall(r"[-\d.]+", text.split("print(similarities)")[1].split("```")[0].replace("# tensor", ""))
    expected = theirs.similarity(theirs.encode(sentences), theirs.encode(sentences)).numpy()
    assert np.abs(np.array(matrix, dtype=float).reshape(3, 3) - expected).max() <= 1e-4

    theirs.save(str(tmp_path / "st"))  # sentence-transformers keeps a loaded, untrained model's card as it is
    assert (tmp_path / "st" / "README.md").read_text(encoding="utf-8") == text


@pytest.mark.slow
def test_a_readme_minilm_did_not_write_is_never_overwritten(model, tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "README.md").write_text("# my notes\n", encoding="utf-8")
    model.save(folder)
    assert (folder / "README.md").read_text(encoding="utf-8") == "# my notes\n"

    other = tmp_path / "edited"
    model.save(other)
    edited = (other / "README.md").read_text(encoding="utf-8").replace("## Usage", "## Usage\n\nMy addition.")
    (other / "README.md").write_text(edited, encoding="utf-8")
    assert not is_minilm_card(edited)  # the marker's hash no longer matches
    model.save(other)
    assert (other / "README.md").read_text(encoding="utf-8") == edited


@pytest.mark.slow
def test_minilm_replaces_its_own_unedited_card(model, tmp_path):
    model.save(tmp_path / "m", card=tiny_training_card())
    assert "## Training Details" in (tmp_path / "m" / "README.md").read_text(encoding="utf-8")
    model.save(tmp_path / "m")  # over its own, unedited card: the card of what is saved now
    text = (tmp_path / "m" / "README.md").read_text(encoding="utf-8")
    assert is_minilm_card(text) and "## Training Details" not in text


@pytest.mark.slow
def test_a_card_that_fails_to_render_does_not_fail_the_save(model, tmp_path, monkeypatch):
    from minilm.card import write

    def broken(*args, **kwargs):
        raise KeyError("boom")

    monkeypatch.setattr(write, "render_card", broken)
    with pytest.warns(RuntimeWarning, match=r"model card not written .*KeyError"):
        model.save(tmp_path / "m")
    assert not (tmp_path / "m" / "README.md").exists()
    assert SentenceEncoder.from_pretrained(tmp_path / "m").encode("still saved").shape == (384,)


def test_front_matter_yaml_reads_back_unchanged():
    tricky = [
        "a: b",
        "a:b",
        "Trousers",
        "Rice Cooker",
        "#Sweaters",
        "<b>x</b>",
        "yes",
        "No",
        "null",
        "123",
        "1e5",
        "-x",
        "it's",
        "'q'",
        '"dq"',
        "a #b",
        "tab\tx",
        "new\nline",
        "ünï",
        "中文",
        "x:",
        "x ",
        " x",
        "[a]",
        "{a}",
        "a, b",
        "@x",
        "~",
        "loss:MultipleNegativesRankingLoss",
        "?x",
        "!x",
        "%x",
        "&x",
        "*x",
        "|x",
        ">x",
    ]
    value = {
        "tags": tricky,
        "widget": [{"source_sentence": t, "sentences": tricky[:3]} for t in tricky],
        "metrics": [],
        "model-index": [{"results": [{"metrics": [{"type": "a", "value": 0.5}]}]}],
        "n": 3,
    }
    assert yaml.safe_load("\n".join(yaml_lines(value))) == value


def test_token_statistics_match_sentence_transformers(model, st_model, sts_dir):
    """Token counts with [CLS]/[SEP], after truncation at max_seq_length, as sentence-transformers' card computes
    them (attention_mask sums of model.preprocess); exact."""
    from minilm.data.readers import read_sts

    texts = read_sts(sts_dir / "sts-dev.csv")[0][:200] + ["word " * 400]  # one longer than max_seq_length
    lengths = st_model.preprocess(texts)["attention_mask"].sum(dim=1).tolist()
    assert max(lengths) == 256
    stats = column_stats(texts, model.tokenizer)
    assert stats == {
        "dtype": "string",
        "data": {
            "min": f"{min(lengths)} tokens",
            "mean": f"{round(sum(lengths) / len(lengths), 2)} tokens",
            "max": f"{max(lengths)} tokens",
        },
    }
    assert column_stats([0, 1, 1, 1], model.tokenizer) == {"dtype": "int", "data": {0: "~25.00%", 1: "~75.00%"}}
    assert column_stats([0.0, 0.5, 1.0], model.tokenizer) == {
        "dtype": "float",
        "data": {"min": 0.0, "mean": 0.5, "max": 1.0},
    }


def test_every_shipped_loss_is_cited_as_sentence_transformers_cites_it():
    import types

    from sentence_transformers.sentence_transformer import losses as st_losses

    assert set(REFERENCES) == set(LOSSES)
    for name, ref in REFERENCES.items():
        if ref.st_name is None:  # a metric-learning staple sentence-transformers lacks: the paper's own BibTeX
            assert ref.citation.startswith("@") and ref.citation.rstrip().endswith("}"), name
            continue
        cls = getattr(st_losses, ref.st_name)
        if not hasattr(cls, "citation"):  # sentence-transformers cites nothing for it: neither does the card
            assert ref.citation is None, name
            continue
        theirs = cls.citation.fget(types.SimpleNamespace(directions=("query_to_doc",), partition_mode="joint"))
        assert ref.citation.strip() == theirs.strip(), name
    assert GOR.citation.strip() == st_losses.GlobalOrthogonalRegularizationLoss.citation.fget(None).strip()
    symmetric = types.SimpleNamespace(directions=("query_to_doc", "doc_to_query"), partition_mode="per_direction")
    assert MNRL_SYMMETRIC.citation.strip() == st_losses.MultipleNegativesRankingLoss.citation.fget(symmetric).strip()
    assert KUSUPATI.strip() == st_losses.MatryoshkaLoss.citation.fget(None).strip()


def test_describe_loss_fills_in_defaults_and_cites_what_it_can(tmp_path):
    card = describe_loss("triplet", {"margin": 0.3})
    assert card.settings["margin"] == 0.3 and "distance" in card.settings
    assert card.st_names == ["TripletLoss"] and list(card.citations) == ["TripletLoss"]
    assert (
        describe_loss("mnrl", {"symmetric": True}).citations["MultipleNegativesRankingLoss"] == MNRL_SYMMETRIC.citation
    )
    wrapped = describe_loss("mnrl", {"matryoshka_dims": [384, 64]})
    assert wrapped.st_names == ["MatryoshkaLoss", "MultipleNegativesRankingLoss"]
    assert wrapped.settings["matryoshka_dims"] == [384, 64] and wrapped.settings["loss_settings"]["scale"] == 20.0
    assert list(wrapped.citations) == ["MatryoshkaLoss", "MultipleNegativesRankingLoss"]

    (tmp_path / "mine.py").write_text(
        "from minilm.losses import needs, multiple_negatives_ranking_loss as mnrl\n"
        "@needs('columns', columns=2, in_batch_negatives=True)\n"
        "def cited(a, b, scale=5.0):\n    return mnrl(a, b, scale=scale)\n"
        "cited.citation = '@misc{me2025, title={Mine}}'\n"
        "@needs('columns', columns=2, in_batch_negatives=True)\n"
        "def uncited(a, b):\n    return mnrl(a, b)\n",
        encoding="utf-8",
    )
    mine = describe_loss("mine.py:cited", {}, tmp_path)
    assert mine.st_names == [] and mine.citations == {"cited": "@misc{me2025, title={Mine}}"}
    assert mine.settings == {"scale": 5.0} and mine.function == "mine.py:cited"  # issue 19: file.py:function
    assert describe_loss("mine.py:uncited", {}, tmp_path).citations == {}


def tiny_training_card(**changes) -> TrainingCard:
    loss = LossCard("mine.py:uncited", "mine.uncited", {}, [], {})
    card = TrainingCard(
        base_model="/local/base",
        dataset_name="pairs.csv",
        columns={"q": ["what is a | pipe", "b", "c", "d"], "label": [0, 1, 0, 1]},
        loss=loss,
        hyperparameters={"batch_size": 2, "lr": 5e-5},
        non_default={"batch_size": 2},
    )
    for key, value in changes.items():
        setattr(card, key, value)
    return card


@pytest.mark.slow
def test_training_sections_from_what_the_trainer_passes(model, tmp_path):
    log = [{"step": 0, "eval": {"cosine_accuracy": 0.5}}]
    log += [{"step": s, "epoch": 0, "loss": 1.0 / s, "lr": 1e-5, "grad_norm": 1.0} for s in range(1, 5)]
    log += [{"step": 2, "eval": {"cosine_accuracy": 0.75}}, {"step": 4, "eval": {"cosine_accuracy": 0.625}}]
    card = tiny_training_card(
        log=log,
        steps_per_epoch=2,
        evaluation={"step": 2, "cosine_accuracy": 0.75},
        eval_task="triplet",
        eval_dataset="my eval",
        metric_for_best="cosine_accuracy",
        best_step=2,
    )
    model.save(tmp_path / "m", card=card)
    text = (tmp_path / "m" / "README.md").read_text(encoding="utf-8")
    meta = front_matter(text)
    assert "dataset_size:4" in meta["tags"] and "base_model" not in meta  # a local path is no hub id
    assert meta["model-index"][0]["results"][0]["metrics"][0] == {
        "type": "cosine_accuracy",
        "value": 0.75,
        "name": "Cosine Accuracy",
    }
    expected = [
        "Evaluation",
        "Metrics",
        "Triplet",
        "Training Details",
        "Training Dataset",
        "pairs.csv",
        "Training Hyperparameters",
        "Non-Default Hyperparameters",
        "All Hyperparameters",
        "Training Logs",
        "Framework Versions",
        "Citation",
        "BibTeX",
        "Sentence Transformers",
    ]
    heads = sections(text)
    assert [heads.index(h) for h in expected] == sorted(heads.index(h) for h in expected)
    assert "| **cosine_accuracy** | **0.7500** |" in text
    assert "* Size: 4 training samples" in text and "<code>q</code> and <code>label</code>" in text
    assert "<code>what is a \\| pipe</code>" in text  # a pipe inside a cell does not split the table
    assert "<li>0: ~50.00%</li><li>1: ~50.00%</li>" in text
    rows = [
        [cell.strip() for cell in line.split("|")[1:-1]]
        for line in text.split("### Training Logs")[1].splitlines()
        if line.startswith("| ")
    ]
    assert rows[0] == ["Epoch", "Step", "Training Loss", "my_eval_cosine_accuracy"]
    assert rows[1:] == [
        ["0.0", "0", "-", "0.5000"],
        ["0.5", "1", "1.0000", "-"],
        ["**1.0**", "**2**", "**0.5000**", "**0.7500**"],
        ["1.5", "3", "0.3333", "-"],
        ["2.0", "4", "0.2500", "0.6250"],
    ]
    assert "* The bold row denotes the best `cosine_accuracy`: the model saved here." in text
    assert "- `per_device_train_batch_size`: 2" in text.split("#### All Hyperparameters")[0]
    assert "#### MultipleNegativesRankingLoss" not in text  # the loss declares no citation: none is made up
    assert is_minilm_card(text)


@pytest.mark.slow
def test_minilm_train_writes_the_card_of_the_run_and_sentence_transformers_loads_it(tmp_path, tiny_base):
    """Filled from the run: data statistics from the training file with the model's tokenizer (checked against
    sentence-transformers' preprocess, exact), the recipe's loss and settings, the log and the final evaluation."""
    from helpers import write_tiny_recipe
    from sentence_transformers import SentenceTransformer

    from minilm.data.readers import read_rows
    from minilm.run.build import run_recipe
    from minilm.run.recipe import load_recipe
    from minilm.train.checkpoints import checkpoints

    path = write_tiny_recipe(tmp_path, tiny_base, evaluate=True, train="save_steps = 3\neval_steps = 3\nlr = 1e-4")
    history = run_recipe(load_recipe(path), tmp_path / "out", log=lambda _: None)
    text = (tmp_path / "out" / "final" / "README.md").read_text(encoding="utf-8")
    assert is_minilm_card(text)
    meta = front_matter(text)
    assert {"generated_from_trainer", "dataset_size:40", "loss:MultipleNegativesRankingLoss"} <= set(meta["tags"])
    assert meta["model-index"][0]["results"][0]["metrics"][0]["value"] == history[-1]["cosine_accuracy"]
    for heading in [
        "Model Details",
        "Full Model Architecture",
        "Usage",
        "Evaluation",
        "Training Details",
        "pairs.csv",
        "Training Hyperparameters",
        "Non-Default Hyperparameters",
        "Training Logs",
        "Framework Versions",
        "MultipleNegativesRankingLoss",
    ]:
        assert heading in sections(text), heading

    st = SentenceTransformer(str(tmp_path / "out" / "final"), device="cpu")
    rows = read_rows(tmp_path / "pairs.csv").columns
    for column in ("anchor", "positive"):
        lengths = st.preprocess(rows[column])["attention_mask"].sum(dim=1).tolist()
        assert (
            f"<ul><li>min: {min(lengths)} tokens</li><li>mean: {round(sum(lengths) / len(lengths), 2)} tokens"
            f"</li><li>max: {max(lengths)} tokens</li></ul>"
        ) in text, column
    assert f"<code>{rows['anchor'][0]}</code>" in text
    assert '"scale": 20.0,\n      "similarity": "cosine",' in text
    non_default = text.split("#### Non-Default Hyperparameters")[1].split("####")[0].split()
    # sentence-transformers' names, non-default against its defaults (batch size 8 is its default)
    assert (
        " ".join(non_default) == "- `eval_strategy`: steps - `eval_steps`: 3 - `learning_rate`: 0.0001 - "
        "`num_train_epochs`: 1 - `max_steps`: 6 - `save_steps`: 3 - `save_total_limit`: 2 - `batch_sampler`: "
        "no_duplicates"
    )
    assert "- `batch_sampler`: no_duplicates" in text.split("#### All Hyperparameters")[1]
    log_rows = [
        line for line in text.split("### Training Logs")[1].split("###")[0].splitlines() if line.startswith("| ")
    ][1:]
    assert [row.split("|")[2].strip() for row in log_rows] == ["0", "1", "2", "3", "4", "5", "6"]
    assert log_rows[3].split("|")[4].strip() == f"{history[1]['cosine_accuracy']:.4f}"
    assert "(minilm's task `triplet`, which reproduces it) at step 6" in text

    checkpoint_card = (checkpoints(tmp_path / "out")[0] / "model" / "README.md").read_text(encoding="utf-8")
    assert "at step 3" in checkpoint_card and "| 6    |" not in checkpoint_card  # its own step, its own log
    assert not is_minilm_card(checkpoint_card.replace("Training Logs", "Logs"))
