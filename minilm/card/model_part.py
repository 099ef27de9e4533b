"""The model part of a model card, which every saved model gets: details and architecture (read from the files just
saved), usage with minilm and with sentence-transformers (with the similarities this model gives the examples),
framework versions and citations."""

from __future__ import annotations

import importlib.metadata
import platform
import re
from pathlib import Path

import torch

import minilm
from minilm.card.training_part import TrainingCard
from minilm.losses.bibtex import SBERT_CITATION
from minilm.util import io

MODEL_ID = "sentence_transformers_model_id"  # sentence-transformers' placeholder: its push_to_hub fills in the repo id
# How sentence-transformers' cards name each similarity_fn_name.
SIMILARITY_NAMES = {
    "cosine": "Cosine Similarity",
    "dot": "Dot Product",
    "euclidean": "Euclidean Distance",
    "manhattan": "Manhattan Distance",
}
EXAMPLES = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]


def intro(model, base: str | None) -> str:
    origin = f" finetuned from {model_link(base)}" if base else ""
    return (
        f"This is a [sentence-transformers](https://www.SBERT.net) model{origin}, written by minilm (a "
        f"from-scratch PyTorch implementation of the sentence-transformers encoder that loads and saves its "
        f"layout). It maps sentences & paragraphs to a {model.embedding_dim}-dimensional "
        f"dense vector space and can be used for semantic textual similarity, semantic search, paraphrase mining, "
        f"text classification, clustering, and more."
    )


def description(model, config: dict, modules: list, training: TrainingCard | None, base: str | None = None) -> str:
    lines = ["### Model Description", "- **Model Type:** Sentence Transformer"]
    lines.append(
        f"- **Base model:** {model_link(base)}"
        if base
        else "<!-- - **Base model:** [Unknown](https://huggingface.co/unknown) -->"
    )
    lines += [
        f"- **Maximum Sequence Length:** {model.max_seq_length} tokens",
        f"- **Output Dimensionality:** {model.embedding_dim} dimensions",
        f"- **Similarity Function:** {SIMILARITY_NAMES.get(model.similarity_fn_name, model.similarity_fn_name)}",
    ]
    lines.append(
        f"- **Training Dataset:** {training.dataset_name}" if training else "<!-- - **Training Dataset:** Unknown -->"
    )
    lines += ["<!-- - **Language:** Unknown -->", "<!-- - **License:** Unknown -->"]
    if config:
        c = config.get
        lines.append(
            f"- **Transformer:** {(c('architectures') or ['BertModel'])[0]}, {c('num_hidden_layers')} layers, "
            f"hidden size {c('hidden_size')}, {c('num_attention_heads')} attention heads, feed-forward "
            f"{c('intermediate_size')}, vocabulary {c('vocab_size')}, "
            f"{c('max_position_embeddings')} positions"
        )
    normalize = any(m.get("type", "").endswith("Normalize") for m in modules)
    lines.append(f"- **Pooling:** {model.pooling}{', then L2 normalisation' if normalize else ''}")
    return "\n".join(lines)


def sources() -> str:
    return """### Model Sources

- **Documentation:** [Sentence Transformers Documentation](https://sbert.net)
- **Repository:** [Sentence Transformers on GitHub](https://github.com/huggingface/sentence-transformers)
- **Hugging Face:** [Sentence Transformers on Hugging Face](https://huggingface.co/models?library=sentence-transformers)"""


def architecture(directory: Path, config: dict, modules: list) -> str:
    """The modules as sentence-transformers prints a loaded model, from the module files just saved."""
    lines = ["SentenceTransformer("]
    for module in modules:
        kind = module.get("type", "").rsplit(".", 1)[-1]
        path = directory / module.get("path", "")
        if kind == "Transformer":
            settings = read_json(directory / "sentence_bert_config.json")
            architecture = (config.get("architectures") or ["BertModel"])[0]
            settings = {**settings, "architecture": architecture}
        else:
            settings = read_json(path / "config.json") if module.get("path") else {}
        args = repr(settings) if settings else ""
        lines.append(f"  ({module.get('idx', len(lines) - 1)}): {kind}({args})")
    return "\n".join(lines + [")"])


def usage_examples(training: TrainingCard | None) -> list[str]:
    """Three sentences: the first training row's texts and another row's, else three stock sentences."""
    if training is None:
        return list(EXAMPLES)
    texts = training.text_columns()
    picked = [column[0] for column in texts]
    picked += [column[1] for column in texts if len(column) > 1]
    picked = list(dict.fromkeys(picked))[:3]
    return picked + EXAMPLES[: 3 - len(picked)]


def usage(examples: list[str], shape: tuple, similarities) -> str:
    sentences = "\n".join(f"    {repr(s)}," for s in examples)
    rows, dim = shape
    matrix = "\n".join(f"# {line}" for line in str(torch.as_tensor(similarities)).splitlines())
    return f"""### Direct Usage (minilm)

```python
from minilm.encoder import SentenceEncoder

model = SentenceEncoder.from_pretrained("{MODEL_ID}")  # a hub id or this folder
sentences = [
{sentences}
]
embeddings = model.encode(sentences)
print(embeddings.shape)
# ({rows}, {dim})

# Get the similarity scores for the embeddings
similarities = model.similarity(embeddings, embeddings)
```

### Direct Usage (Sentence Transformers)

First install the Sentence Transformers library:

```bash
pip install -U sentence-transformers
```

Then you can load this model and run inference.
```python
from sentence_transformers import SentenceTransformer

# Download from the 🤗 Hub
model = SentenceTransformer("{MODEL_ID}")
# Run inference
sentences = [
{sentences}
]
embeddings = model.encode(sentences)
print(embeddings.shape)
# [{rows}, {dim}]

# Get the similarity scores for the embeddings
similarities = model.similarity(embeddings, embeddings)
print(similarities)
{matrix}
```"""


def versions() -> str:
    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return "\n".join(
        [
            "### Framework Versions",
            f"- Python: {platform.python_version()}",
            f"- minilm: {minilm.__version__}",
            f"- PyTorch: {torch.__version__}",
            f"- Tokenizers: {version('tokenizers')}",
            f"- safetensors: {version('safetensors')}",
            f"- NumPy: {version('numpy')}",
            f"- huggingface_hub: {version('huggingface-hub')}",
        ]
    )


def citations(training: TrainingCard | None) -> str:
    cited = {"Sentence Transformers": SBERT_CITATION, **(training.loss.citations if training else {})}
    parts = ["## Citation", "", "### BibTeX"]
    for name, bibtex in cited.items():
        parts += ["", f"#### {name}", "```bibtex", bibtex.strip(), "```"]
    return "\n".join(parts)


def is_hub_id(name: str | None) -> bool:
    """A hub id (``owner/name``), not a local path."""
    return bool(name) and re.fullmatch(r"[\w.-]+/[\w.-]+", name) is not None and not Path(name).exists()


def model_link(name: str | None) -> str:
    if not name:
        return "unknown"
    return f"[{name}](https://huggingface.co/{name})" if is_hub_id(name) else f"`{name}`"


def read_json(path: Path, kind: type = dict) -> dict | list:
    """A saved module file (an empty one of ``kind`` where the module has none, as 2_Normalize)."""
    return io.read_json(path, kind) if path.is_file() else kind()
