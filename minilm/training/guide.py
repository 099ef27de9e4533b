"""A guide model named in a recipe (``[loss] guide``): loaded once, frozen, and kept out of the optimiser and the
checkpoints.

GIST (``minilm/losses/guided.py``) drops the in-batch candidates that a guide model rates above the anchor's own
positive. The loss sees only the guide's embeddings (``guide=``), and this module produces them for each batch. The
guide is not an attribute of the model or of the loss, so no optimiser group, checkpoint or saved model can pick it
up. A recipe may name the model it fine-tunes as its own guide: the guide is then a separate, frozen copy of the
starting weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn


class Guide:
    """A frozen encoder that embeds a batch's text columns for a loss that takes ``guide=``."""

    def __init__(self, encoder: nn.Module, batch_size: int = 32):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"guide batch_size must be a positive int, got {batch_size!r}")
        encoder.eval()  # no dropout: the guide's judgement of a candidate must not change from step to step
        encoder.requires_grad_(False)
        self.encoder, self.batch_size = encoder, batch_size

    @classmethod
    def load(cls, name_or_path: str, device=None, batch_size: int = 32) -> "Guide":
        from minilm.encoder import SentenceEncoder

        return cls(SentenceEncoder.from_pretrained(name_or_path, device=device), batch_size)

    def embed(self, columns: Sequence[Sequence[str]], device: torch.device | None = None) -> list[Tensor]:
        """One (B, D_guide) tensor per text column, in order; no autograd, in chunks of ``batch_size`` rows."""
        where = next(self.encoder.parameters()).device
        out = []
        with torch.no_grad():
            for i, column in enumerate(columns):
                if isinstance(column, (str, Mapping)):
                    raise TypeError(f"the guide embeds texts: columns[{i}] must be a list of texts, "
                                    f"got {type(column).__name__}")
                texts = list(column)
                parts = []
                for begin in range(0, len(texts), self.batch_size):
                    features = self.encoder.tokenize(texts[begin:begin + self.batch_size])
                    parts.append(self.encoder(**{k: v.to(where) for k, v in features.items()}))
                embeddings = torch.cat(parts)
                out.append(embeddings if device is None else embeddings.to(device))
        return out
