"""A saved model carries what its base checkpoint had (issue 20; minilm/loading/weights.py CARRIED): the pooler
tensors minilm does not use are written back bit for bit, so sentence-transformers loads a minilm save without
transformers' "MISSING ... newly initialized" load report. The report is captured from a fresh process (stdout and
stderr both: transformers prints it through its logger)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from minilm.encoder import SentenceEncoder

REPO = Path(__file__).resolve().parents[2]
LOAD_IN_ST = (
    "import sys\n"
    "from sentence_transformers import SentenceTransformer\n"
    "model = SentenceTransformer(sys.argv[1], device='cpu')\n"
    "print('embedding', model.encode(['a cat']).shape)\n"
)


def load_in_sentence_transformers(directory: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", LOAD_IN_ST, str(directory)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout + result.stderr


# two fresh processes importing sentence-transformers (~20 s of CPU): the fast tier keeps the in-process pooler test
@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.real_weights
def test_a_saved_model_loads_in_sentence_transformers_without_a_missing_report(minilm_dir, tmp_path):
    model = SentenceEncoder.from_pretrained(minilm_dir)
    model.save(tmp_path / "saved")
    base, saved = load_file(minilm_dir / "model.safetensors"), load_file(tmp_path / "saved" / "model.safetensors")
    for name in ("pooler.dense.weight", "pooler.dense.bias"):
        assert torch.equal(saved[name], base[name]), name
    output = load_in_sentence_transformers(tmp_path / "saved")
    print(output)
    assert "embedding (1, 384)" in output
    assert "MISSING" not in output and "newly initialized" not in output and "LOAD REPORT" not in output

    # the capture sees the report when there is one: the same folder without the pooler, as minilm saved it before
    state = {k: v for k, v in saved.items() if not k.startswith("pooler.")}
    save_file(state, tmp_path / "saved" / "model.safetensors", metadata={"format": "pt"})
    output = load_in_sentence_transformers(tmp_path / "saved")
    assert "pooler.dense.weight" in output and "MISSING" in output


def test_the_pooler_survives_a_save_load_save_and_a_trained_copy_keeps_it(minilm_dir, tmp_path):
    model = SentenceEncoder.from_pretrained(minilm_dir)
    model.save(tmp_path / "one")
    again = SentenceEncoder.from_pretrained(tmp_path / "one")
    with torch.no_grad():
        again.bert.layers[0].ffn.up.weight.add_(0.01)  # as training changes the used weights, not the pooler
    again.save(tmp_path / "two")
    base, two = load_file(minilm_dir / "model.safetensors"), load_file(tmp_path / "two" / "model.safetensors")
    assert torch.equal(two["pooler.dense.weight"], base["pooler.dense.weight"])
    assert not torch.equal(
        two["encoder.layer.0.intermediate.dense.weight"], base["encoder.layer.0.intermediate.dense.weight"]
    )
