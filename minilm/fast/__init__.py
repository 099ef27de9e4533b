"""The speed machinery, kept beside the textbook model (``minilm/model.py``) and applied to it from outside.

- ``unpadded.py``: run a ``BertModel``'s own submodules on the real tokens only (``forward_unpadded``,
  ``pool_unpadded``); attention pads per group of similar-length sequences.
- ``dropout.py``: cheap CPU dropout masks, swapped in for the model's ``nn.Dropout`` modules.
- ``int8.py``: a dynamically int8-quantised copy of the model for ``encode(precision="int8")``.
- ``workers.py``: encode batches two at a time on CPU, one core each.
- compiled layers are in ``kernels/layer.py`` (``minilm.kernels.layer``), off by default.

``SentenceEncoder`` turns all of it on except the compiled layers: ``make_fast(bert)`` when built, forward through
``forward_unpadded`` while ``encoder.unpadded`` is true (the default), ``encode(workers=...)`` defaulting to 2 on CPU.
Every piece has a test against the plain model path.
"""

from __future__ import annotations

import torch.nn as nn

from .dropout import use_cheap_dropout


def make_fast(bert: nn.Module) -> nn.Module:
    """Switch ``bert``'s modules to their fast versions, in place: today, the cheap CPU dropout masks (same p, same
    train/eval behaviour, identity in eval). Outputs in eval mode are unchanged."""
    return use_cheap_dropout(bert)
