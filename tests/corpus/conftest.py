"""The encode tests' tiny random model (with the real checkpoint's tokenizer), in memory and saved, once per module."""

import pytest
from helpers import tiny_encoder

from minilm.loading.tokenizer import WordPieceTokenizer


@pytest.fixture(scope="module")
def model(minilm_dir):
    return tiny_encoder(WordPieceTokenizer.from_dir(minilm_dir, 64))


@pytest.fixture(scope="module")
def model_dir(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "model"
    model.save(path)
    return path
