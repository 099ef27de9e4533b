"""What many test files share: tiny random models (minilm encoders in memory, checkpoints in the sentence-transformers
layout through transformers, test-only), tiny recipes and their data, the forkserver harness of the kill tests, and
table-backed encoders for evaluator comparisons."""

import contextlib
import json
import multiprocessing
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def write_st_files(
    directory: Path,
    pooling: str = "mean",
    normalize: bool = False,
    max_seq_length: int = 64,
    legacy_pooling: bool = True,
    hidden: int = 64,
) -> None:
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (directory / "modules.json").write_text(json.dumps(modules))
    (directory / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length}))
    (directory / "1_Pooling").mkdir(exist_ok=True)
    if legacy_pooling:
        cfg = {
            "word_embedding_dimension": hidden,
            "pooling_mode_cls_token": pooling == "cls",
            "pooling_mode_mean_tokens": pooling == "mean",
            "pooling_mode_max_tokens": pooling == "max",
            "pooling_mode_mean_sqrt_len_tokens": False,
        }
    else:
        cfg = {"embedding_dimension": hidden, "pooling_mode": pooling}
    (directory / "1_Pooling" / "config.json").write_text(json.dumps(cfg))


def make_tiny_checkpoint(
    directory: Path,
    tokenizer_dir: Path,
    seed: int = 0,
    layers: int = 2,
    hidden: int = 64,
    heads: int = 4,
    intermediate: int = 128,
    pooling: str = "mean",
    normalize: bool = False,
    legacy_pooling: bool = True,
    max_seq_length: int = 64,
):
    """Save a random transformers BertModel plus tokenizer and ST config files; returns the BertModel."""
    import torch
    import transformers

    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=intermediate,
        max_position_embeddings=128,
    )
    bert = transformers.BertModel(config).eval()
    directory.mkdir(parents=True, exist_ok=True)
    bert.save_pretrained(directory)
    for name in TOKENIZER_FILES:
        if (tokenizer_dir / name).is_file():
            shutil.copy(tokenizer_dir / name, directory / name)
    write_st_files(directory, pooling, normalize, max_seq_length, legacy_pooling, hidden)
    return bert


def tiny_encoder(tokenizer, pooling: str = "mean", normalize: bool = True, seed: int = 0, **config):
    """A random minilm SentenceEncoder over ``tokenizer`` in eval mode, built right after torch.manual_seed(seed):
    2 layers, hidden 32, 4 heads, feed-forward 64, 64 positions, unless ``config`` (BertConfig fields) says
    otherwise."""
    import torch

    from minilm.encoder import SentenceEncoder
    from minilm.model import BertConfig, BertModel

    torch.manual_seed(seed)
    settings = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "max_position_embeddings": 64,
        **config,
    }
    return SentenceEncoder(BertModel(BertConfig(**settings)), tokenizer, pooling, normalize).eval()


TINY_RECIPE = """
name = "tiny"
[model]
base = "{base}"
[data]
train = "{data}"
roles = {{ anchor = "anchor", positive = "positive" }}
[loss]
name = "mnrl"
[train]
batch_size = 8
max_steps = {steps}
{train}
"""
TINY_EVAL = """[eval]
task = "triplet"
data = "{data}"
roles = {{ anchor = "anchor", positive = "positive", negative = "negative" }}
"""


def save_tiny_base(folder: Path, minilm_dir: Path, max_length: int = 32) -> Path:
    """A tiny random encoder with the real tokenizer cut at ``max_length``, saved as ``folder``/base: the model a tiny
    recipe trains."""
    from minilm.loading.tokenizer import WordPieceTokenizer

    tiny_encoder(WordPieceTokenizer.from_dir(minilm_dir, max_length), normalize=True).save(folder / "base")
    return folder / "base"


def write_pairs(path: Path, rows: int, topics: int = 5) -> Path:
    """``rows`` made-up (anchor, positive) question / answer rows over ``topics`` topics, as CSV at ``path``."""
    lines = [f"question {i} about topic {i % topics},answer {i} on topic {i % topics}" for i in range(rows)]
    path.write_text("anchor,positive\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_tiny_recipe(
    directory: Path,
    base: Path,
    steps: int = 6,
    rows: int = 40,
    train: str = "save_steps = 2\nkeep_checkpoints = 5",
    evaluate: bool = False,
) -> Path:
    """A recipe training ``base`` with MNRL on ``rows`` made-up pairs for ``steps`` steps; ``train`` is the rest of
    its [train] table (by default: checkpoint every 2 steps); ``evaluate`` adds a 12-triplet evaluation."""
    data = directory / "pairs.csv"
    lines = [f"question number {i} about topic {i % 7},answer {i} explains topic {i % 7} in words" for i in range(rows)]
    data.write_text("anchor,positive\n" + "\n".join(lines) + "\n", encoding="utf-8")
    text = TINY_RECIPE.format(base=base, data=data, steps=steps, train=train)
    if evaluate:
        triplets = directory / "triplets.csv"
        lines = [f"topic {i},answer about topic {i},unrelated note {i + 3}" for i in range(12)]
        triplets.write_text("anchor,positive,negative\n" + "\n".join(lines) + "\n", encoding="utf-8")
        text += TINY_EVAL.format(data=triplets)
    path = directory / "tiny.toml"
    path.write_text(text, encoding="utf-8")
    return path


def killed_after_step(monkeypatch, step: int, run) -> None:
    """Call ``run()`` with the trainer killed (KeyboardInterrupt) just after it logs step ``step``, as a process
    stopped there would be; ``--resume`` must then continue exactly."""
    from minilm.train import trainer

    original = trainer.Trainer.write_log

    def die(self, record):
        original(self, record)
        if record.get("step") == step and "loss" in record:
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(trainer.Trainer, "write_log", die)
    try:
        with pytest.raises(KeyboardInterrupt):
            run()
    finally:
        monkeypatch.setattr(trainer.Trainer, "write_log", original)


def keep_trainer(monkeypatch) -> dict:
    """Patch the trainer so that ``seen["trainer"]`` is the Trainer of the next run, once it has finished."""
    from minilm.train import trainer

    seen, original = {}, trainer.Trainer.finish

    def keep(self):
        seen["trainer"] = self
        original(self)

    monkeypatch.setattr(trainer.Trainer, "finish", keep)
    return seen


def assert_frozen_and_never_saved(trainer, encoder, start_dir: Path, output_dir: Path, name: str) -> None:
    """A frozen model of a run (guide, teacher) still holds the starting weights of ``start_dir``, is in eval mode
    without gradients, is not in the optimiser and left nothing in the newest checkpoint's trainer state."""
    import torch

    from minilm.encoder import SentenceEncoder
    from minilm.train.checkpoints import STATE_NAME, checkpoints

    start = SentenceEncoder.from_pretrained(start_dir).bert.state_dict()
    for key, tensor in encoder.bert.state_dict().items():
        assert torch.equal(tensor, start[key]), key
    assert not encoder.training and not any(p.requires_grad for p in encoder.parameters())
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not optimised & {id(p) for p in encoder.parameters()}
    state = torch.load(checkpoints(output_dir)[-1] / STATE_NAME, weights_only=True)
    assert "loss" not in state and name not in json.dumps(list(state))


def assert_resume_is_exact(monkeypatch, recipe: Path, directory: Path, killed_after: int = 3) -> None:
    """Train ``recipe`` straight, then again killed after step ``killed_after`` and resumed: the final weights of the
    two runs are bit-identical."""
    import torch
    from safetensors.torch import load_file

    from minilm.run.build import run_recipe
    from minilm.run.recipe import load_recipe

    def run(name: str, **kwargs):
        return run_recipe(load_recipe(recipe), directory / name, log=lambda _: None, **kwargs)

    run("straight")
    killed_after_step(monkeypatch, killed_after, lambda: run("resumed"))
    run("resumed", resume=True)
    a, b = (load_file(directory / name / "final" / "model.safetensors") for name in ("straight", "resumed"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# Words of the random corpora the encode tests write (tests/corpus/): short lines, some empty.
WORDS = [
    "the",
    "a",
    "cat",
    "dog",
    "sat",
    "on",
    "mat",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "river",
    "field",
    "tall",
    "grass",
    "near",
]


def corpus_file(path, n, seed=0):
    """Write ``n`` random lines of WORDS (0 to 13 words each, seeded) to ``path``; the lines."""
    rng = np.random.default_rng(seed)
    lines = [" ".join(rng.choice(WORDS, size=rng.integers(0, 14))) for _ in range(n)]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return lines


def quiet_cli(args: list[str]) -> None:
    """A forked child's whole life: one minilm command on one thread, its output discarded; exits with its code."""
    from minilm import cli

    torch.set_num_threads(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    sys.exit(cli.main(args))


def _nothing() -> None:
    pass


def warm_forkserver(*modules: str):
    """A forkserver context whose server has imported torch, minilm's command line and ``modules`` already, so each
    child a fault test starts and kills costs its own work, not an interpreter start. The server is the process's
    one: the first caller's imports are the ones it keeps."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "minilm.cli", "helpers", *modules])
    warm = ctx.Process(target=_nothing)  # starts the server: its imports are not part of any timed run
    warm.start()
    warm.join()
    return ctx


class TableModel:
    """The ``encode`` contract (sentence-transformers', which minilm's follows) answered from a text -> embedding
    table, recording which texts it was asked for: both sides of an evaluator comparison read the same rows."""

    def __init__(self, table: dict):
        self.table, self.asked = table, []

    def encode(self, texts, batch_size=32, convert_to_tensor=False):
        self.asked += list(texts)
        emb = np.stack([self.table[t] for t in texts])
        return torch.from_numpy(emb) if convert_to_tensor else emb


@contextlib.contextmanager
def st_reading(st, table: dict):
    """Make a real SentenceTransformer's encode (and so encode_query / encode_document) look ``table`` up."""

    def encode(inputs, convert_to_tensor=False, **kwargs):
        emb = np.stack([table[s] for s in inputs])
        return torch.from_numpy(emb) if convert_to_tensor else emb

    st.encode = encode
    try:
        yield st
    finally:
        del st.encode
