"""Loading a model folder while another process saves into it (issue 20; minilm/loading/folder.py): every load is
one whole model, one of the two being saved, never one's settings with the other's weights.

A saver process saves model A and model B into one folder by turns, as fast as it can; this process loads the folder
at least 20 times meanwhile. A and B have the same sizes (so a mix would load without any error) and differ in every
setting and every weight."""

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import tiny_encoder

from minilm.encoder import SentenceEncoder
from minilm.loading import folder
from minilm.loading.tokenizer import WordPieceTokenizer

REPO = Path(__file__).resolve().parents[2]
LOADS = 25

SAVER = """
import sys
from minilm.encoder import SentenceEncoder
a, b = (SentenceEncoder.from_pretrained(path) for path in sys.argv[1:3])
target = sys.argv[3]
a.save(target, overwrite=True)
print("saved", flush=True)
saves = 0
while True:
    for model in (b, a):
        model.save(target)
        saves += 1
        with open(sys.argv[4], "w") as f:
            f.write(str(saves))
"""


def signature(model) -> tuple:
    """Every setting a save writes, and a hash of every weight."""
    digest = hashlib.sha256()
    for tensor in model.bert.state_dict().values():
        digest.update(tensor.numpy().tobytes())
    return model.max_seq_length, model.prompts["query"], model.pooling, model.normalize, digest.hexdigest()


@pytest.fixture(scope="module")
def two_models(minilm_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("two")
    a = tiny_encoder(WordPieceTokenizer.from_dir(minilm_dir, 32), pooling="mean", normalize=True, seed=0)
    b = tiny_encoder(WordPieceTokenizer.from_dir(minilm_dir, 48), pooling="cls", normalize=False, seed=1)
    a.prompts["query"], b.prompts["query"] = "a: ", "b: "
    a.save(root / "a")
    b.save(root / "b")
    return root, {signature(SentenceEncoder.from_pretrained(root / name)): name for name in ("a", "b")}


@pytest.mark.slow
def test_every_load_while_another_process_saves_is_one_whole_model(two_models, tmp_path, monkeypatch):
    root, known = two_models
    assert len(known) == 2
    reads = []
    real_read = folder._read
    monkeypatch.setattr(folder, "_read", lambda *args: reads.append(1) or real_read(*args))
    saver = subprocess.Popen(
        [sys.executable, "-c", SAVER, root / "a", root / "b", tmp_path / "m", tmp_path / "saves"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert saver.stdout.readline() == "saved\n"
        seen, saves, deadline = [], 0, time.monotonic() + 600
        while (len(seen) < LOADS or saves < 10) and time.monotonic() < deadline:  # on a loaded machine, load on
            seen.append(known.get(signature(SentenceEncoder.from_pretrained(tmp_path / "m")), "a mix"))
            saves = int((tmp_path / "saves").read_text() or 0) if (tmp_path / "saves").is_file() else 0
    finally:
        saver.kill()
        saver.wait()
    print(
        f"{len(seen)} loads during {saves} saves: {seen.count('a')} A, {seen.count('b')} B, "
        f"{seen.count('a mix')} mixed; {len(reads) - len(seen)} reads retried because a save swapped the folder"
    )
    assert "a mix" not in seen
    assert saves >= 10, "the saver was too slow to overlap the loads"
