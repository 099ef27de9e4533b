"""Writing a model card: the whole text (front matter, the marker, the sections) and the rule that a README.md
minilm did not write is never replaced."""

from __future__ import annotations

import hashlib
import re
import shutil
import warnings
from pathlib import Path

from minilm.card import model_part, training_part
from minilm.card.markdown import yaml_lines
from minilm.card.training_part import TrainingCard

CARD_NAME = "README.md"
MARKER = re.compile(r"^<!-- minilm model card sha256:([0-9a-f]{64}) -->\n", re.M)


def is_minilm_card(text: str) -> bool:
    """True if ``text`` is a card minilm wrote and nobody has edited since (its marker's hash still matches)."""
    found = MARKER.search(text)
    if found is None:
        return False
    return _digest(text[: found.start()] + text[found.end() :]) == found.group(1)


def write_card(model, directory: Path, training: TrainingCard | None = None, previous: Path | None = None) -> None:
    """Write ``directory``/README.md for ``model`` (whose other files are already in ``directory``).

    ``previous`` is the README.md the save replaces: kept as it is unless minilm wrote it. A card that fails to render
    does not fail the save (the model matters more than its card): it is left out, with a warning naming the error.
    """
    target = Path(directory) / CARD_NAME
    if (
        previous is not None
        and previous.is_file()
        and not is_minilm_card(previous.read_text(encoding="utf-8", errors="replace"))
    ):
        shutil.copyfile(previous, target)
        return
    try:
        text = render_card(model, Path(directory), training)
    except Exception as e:  # noqa: BLE001 - any failure of the card, reported, never the model's save
        warnings.warn(f"model card not written to {target}: {type(e).__name__}: {e}", RuntimeWarning, stacklevel=3)
        return
    target.write_text(text, encoding="utf-8")


def render_card(model, directory: Path, training: TrainingCard | None = None) -> str:
    """The card's text: front matter, the marker (a hash of all the rest), the sections of sentence-transformers'
    cards."""
    modules = model_part.read_json(directory / "modules.json", list)
    config = model_part.read_json(directory / "config.json")
    examples = model_part.usage_examples(training)
    embeddings = model.encode(examples)
    similarities = model.similarity(embeddings, embeddings)
    base = base_model(model, training)
    title = f"SentenceTransformer based on {base}" if base else "Sentence Transformer model (minilm)"
    sections = [
        f"# {title}",
        model_part.intro(model, base if training else None),  # "finetuned from" only when trained here
        "## Model Details",
        model_part.description(model, config, modules, training, base),
        model_part.sources(),
        "### Full Model Architecture\n\n```\n" + model_part.architecture(directory, config, modules) + "\n```",
        "## Usage",
        model_part.usage(examples, embeddings.shape, similarities),
    ]
    if training is not None:
        if training.evaluation:
            sections.append(training_part.evaluation_section(training))
        sections += [
            "## Training Details",
            training_part.dataset_section(training, model.tokenizer),
            training_part.hyperparameters_section(training),
            training_part.environment_section(training),
            training_part.logs_section(training),
        ]
    sections += [model_part.versions(), model_part.citations(training)]
    body = "\n\n".join(s.strip("\n") for s in sections) + "\n"
    head = "---\n" + "\n".join(yaml_lines(front_matter(training, base))) + "\n---\n"
    digest = _digest(head + body)
    return f"{head}<!-- minilm model card sha256:{digest} -->\n{body}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def base_model(model, training: TrainingCard | None) -> str | None:
    """The model this one started from: the training run's base, or, for a model saved as it was loaded, the name it
    was loaded by (``from_pretrained`` records it)."""
    return training.base_model if training is not None else getattr(model, "base_model", None)


def front_matter(training: TrainingCard | None, base: str | None = None) -> dict:
    tags = ["sentence-transformers", "sentence-similarity", "feature-extraction", "dense", "minilm"]
    out: dict = {}
    if training is not None:
        tags += ["generated_from_trainer", f"dataset_size:{len(next(iter(training.columns.values()), []))}"]
        tags += [f"loss:{name}" for name in training.loss.st_names]
    out["tags"] = tags
    if model_part.is_hub_id(base):
        out["base_model"] = base
    if training is not None:
        out["widget"] = training_part.widget(training)
    out["pipeline_tag"] = "sentence-similarity"
    out["library_name"] = "sentence-transformers"
    if training is not None and training.evaluation:
        metrics = training_part.metrics_of(training.evaluation)
        out["metrics"] = list(metrics)
        # one result per evaluation: the one [eval] table's, or each named one's (its metrics without the name/)
        evaluations = training.evaluations or [("", training.eval_task, training.eval_dataset or "evaluation")]
        out["model-index"] = [
            {
                "name": f"SentenceTransformer based on {training.base_model}",
                "results": [_result(name, task, dataset, metrics) for name, task, dataset in evaluations],
            }
        ]
    return out


def _result(name: str, task: str | None, dataset: str, metrics: dict) -> dict:
    prefix = f"{name}/" if name else ""
    own = {k.removeprefix(prefix): v for k, v in metrics.items() if k.startswith(prefix)}
    return {
        "task": {"type": task, "name": (task or "").title()},
        "dataset": {"name": dataset, "type": training_part.snake(dataset)},
        "metrics": [{"type": k, "value": v, "name": k.replace("_", " ").title()} for k, v in own.items()],
    }
