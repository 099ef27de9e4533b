"""A frozen model named in a recipe (``[loss] guide`` or ``[loss] teacher``): loaded once, frozen, and kept out of the
optimiser and the checkpoints.

GIST (``minilm/losses/guided.py``) drops the in-batch candidates that a guide model rates above the anchor's own
positive; the distillation losses of kind ``teacher_embeddings`` (``minilm/losses/distill.py``) pull the student onto
a teacher model's embeddings. Either loss sees only the frozen model's embeddings of the batch (``guide=``,
``teacher_embeddings=``), and this module produces them. The frozen model is not an attribute of the model or of the
loss, so no optimiser group, checkpoint or saved model can pick it up. A recipe may name the model it fine-tunes as
its own guide or teacher: that is then a separate, frozen copy of the starting weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn


class FrozenEncoder:
    """An encoder that embeds a batch's text columns without autograd, for a loss that takes ``guide=`` or a teacher's
    ``teacher_embeddings=``."""

    def __init__(self, encoder: nn.Module, batch_size: int = 32, role: str = "guide"):
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"{role} batch_size must be a positive int, got {batch_size!r}")
        encoder.eval()  # no dropout: the frozen model's view of a text must not change from step to step
        encoder.requires_grad_(False)
        self.encoder, self.batch_size, self.role = encoder, batch_size, role

    @classmethod
    def load(cls, name_or_path: str, device=None, batch_size: int = 32, role: str = "guide") -> "FrozenEncoder":
        from minilm.encoder import SentenceEncoder

        return cls(SentenceEncoder.from_pretrained(name_or_path, device=device), batch_size, role)

    @property
    def embedding_dim(self) -> int:
        return self.encoder.embedding_dim

    def embed(self, columns: Sequence[Sequence[str]], device: torch.device | None = None) -> list[Tensor]:
        """One (B, D_frozen) tensor per text column, in order; no autograd, in chunks of ``batch_size`` rows."""
        where = next(self.encoder.parameters()).device
        out = []
        with torch.no_grad():
            for i, column in enumerate(columns):
                if isinstance(column, (str, Mapping)):
                    raise TypeError(f"the {self.role} embeds texts: columns[{i}] must be a list of texts, "
                                    f"got {type(column).__name__}")
                texts = list(column)
                parts = []
                for begin in range(0, len(texts), self.batch_size):
                    features = self.encoder.tokenize(texts[begin:begin + self.batch_size])
                    parts.append(self.encoder(**{k: v.to(where) for k, v in features.items()}))
                embeddings = torch.cat(parts)
                out.append(embeddings if device is None else embeddings.to(device))
        return out
