"""The speed machinery, kept beside the textbook model (``minilm/model.py``) and applied to it from outside.

- ``unpadded.py``: run a ``BertModel``'s own forward on the real tokens only (``forward_unpadded``,
  ``pool_unpadded``); attention pads per group of similar-length sequences.
- ``dropout.py``: cheap CPU dropout masks, swapped in for the model's ``nn.Dropout`` modules.
- ``int8.py``: a dynamically int8-quantised copy of the model for ``encode(quantized_model=True)``.
- ``workers.py``: encode batches two at a time on CPU, one core each.
- ``slices.py``: on CPU, an encode batch too large for the cache runs as several forwards.
- compiled layers are in ``kernels/layer.py`` (``minilm.kernels.layer``), off by default.

``SentenceEncoder`` switches the model to the fast path by default: ``make_fast(bert)`` when built, its forward
through ``forward_unpadded`` for each batch with enough padding to skip (``unpadding_pays``) while
``encoder.unpadded`` is true, and ``encode(workers=...)`` defaulting to 2 on CPU, each worker taking cache-sized
forwards (``forward_slices``). int8 (``encode(quantized_model=True)``) and compiled layers (``compile_kernels()``)
are opt-in. Every piece has a test against the plain model path.
"""

from __future__ import annotations

import torch.nn as nn

from minilm.fast.dropout import use_cheap_dropout


def make_fast(bert: nn.Module) -> nn.Module:
    """Swap ``bert``'s modules for their fast versions in place (the cheap CPU dropout masks: same p, same train/eval
    behaviour) and return it; outputs in eval mode are unchanged. The rest of the fast path is chosen per call."""
    return use_cheap_dropout(bert)
