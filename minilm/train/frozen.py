"""Frozen models a recipe names (``[loss] guide`` or ``[loss] teacher``): loaded once, frozen, never optimised,
checkpointed or saved; each step they embed the batch's texts for the loss.

GIST (``minilm/losses/guided.py``) drops the in-batch candidates that a guide model rates above the anchor's own
positive; the distillation losses of kind ``teacher_embeddings`` (``minilm/losses/distill.py``) pull the student onto
a teacher model's embeddings. Either loss sees only the frozen model's embeddings of the batch (``guide=``,
``teacher_embeddings=``). A recipe may name the model it fine-tunes as its own guide or teacher: that is then a
separate, frozen copy of the starting weights.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from minilm.losses.inputs import MODEL_ROLES, Needs, module_of
from minilm.train.extensions import Extension, RunContext


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
    def load(cls, name_or_path: str, device=None, batch_size: int = 32, role: str = "guide") -> FrozenEncoder:
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
                    raise TypeError(
                        f"the {self.role} embeds texts: columns[{i}] must be a list of texts, "
                        f"got {type(column).__name__}"
                    )
                texts = list(column)
                parts = []
                for begin in range(0, len(texts), self.batch_size):
                    features = self.encoder.tokenize(texts[begin : begin + self.batch_size])
                    parts.append(self.encoder(**{k: v.to(where) for k, v in features.items()}))
                embeddings = torch.cat(parts)
                out.append(embeddings if device is None else embeddings.to(device))
        return out


class _FrozenModel(Extension):
    """A frozen model whose embeddings of the batch's texts the loss takes: a part that never trains."""

    key = ""  # the [loss] setting that names the model

    def __init__(self, frozen: FrozenEncoder):
        self.frozen = frozen

    def check(self, run: RunContext) -> None:
        if self.frozen.encoder is run.model:
            raise ValueError(f"the {self.name} must be a separate frozen copy, not the model being trained")

    # no parts: the frozen model is outside the model and the loss, so no optimiser group, checkpoint or save has it


class GuideModel(_FrozenModel):
    """GIST's guide (``@needs(..., guide=True)``): ``guide=``, one (B, D_guide) per column."""

    name, key = "guide", "guide"
    settings = {"guide": None}

    @classmethod
    def takes(cls, needs: Needs) -> bool:
        return needs.guide

    @classmethod
    def example_inputs(cls, embeddings: list[Tensor]) -> dict:
        gen = torch.Generator().manual_seed(1)  # the guide's own width need not be the student's
        return {"guide": [torch.randn(e.shape[0], 3, generator=gen) for e in embeddings]}

    @classmethod
    def build(cls, run: RunContext) -> GuideModel:
        name = run.settings.get(cls.key)
        if name is None:
            raise ValueError(
                f"loss {run.loss_name} takes a guide model's embeddings: give the trainer a guide (a "
                f"recipe's [loss] guide)"
            )
        batch_size = run.config.mini_batch_size or 32
        return cls(FrozenEncoder(run.load_model(name), batch_size))

    def loss_inputs(self, columns: Sequence, step: int, device) -> dict:
        return {"guide": self.frozen.embed(columns, device)}  # this rank's rows, as the frozen guide sees them


class TeacherModel(_FrozenModel):
    """A teacher model in place of a data column, for a loss of kind teacher_embeddings: ``teacher_embeddings=``, the
    teacher's (B, D) of each column side by side, (B, k * D)."""

    name, key = "teacher", "teacher"
    settings = {"teacher": None}

    @classmethod
    def takes(cls, needs: Needs) -> bool:
        return needs.kind in MODEL_ROLES

    @classmethod
    def wanted(cls, needs: Needs, settings: dict) -> bool:
        return cls.takes(needs) and settings.get(cls.key) is not None  # else the teacher is a data column

    @classmethod
    def build(cls, run: RunContext) -> TeacherModel:
        return cls(FrozenEncoder(run.load_model(run.settings[cls.key]), role="teacher"))

    def check(self, run: RunContext) -> None:
        super().check(run)
        if run.target_name is not None:
            raise ValueError(
                f"a teacher model was given and the data holds a teacher column ({run.target_name}): the "
                f"teacher's embeddings come from one or the other"
            )
        wanted = teacher_width(run.loss_fn, run.model.embedding_dim)
        if self.frozen.embedding_dim != wanted:
            raise ValueError(
                f"the teacher model embeds in {self.frozen.embedding_dim} dimensions, but loss "
                f"{run.loss_name} compares it with {wanted}-dimensional embeddings (the student's is "
                f"{run.model.embedding_dim})"
            )

    def loss_inputs(self, columns: Sequence, step: int, device) -> dict:
        # one (B, D) per column, side by side: each column fits its own teacher row
        return {"teacher_embeddings": torch.cat(self.frozen.embed(columns, device), dim=1)}


def teacher_width(loss, student_width: int) -> int:
    """The teacher width a built loss compares with: its projection's (``teacher_dim``: embed_distill with
    projection_dim), else the student's own."""
    return getattr(module_of(loss), "teacher_dim", None) or student_width
