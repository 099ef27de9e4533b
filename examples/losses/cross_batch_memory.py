"""Cross-batch memory (Wang et al. 2020, "Cross-Batch Memory for Embedding Learning", XBM): in-batch negatives plus
the positives of the last K batches, kept in a queue, in your own file.

The loss needs something no batch has: the queue. It brings it as its own extension object, which the trainer
builds once per run, passes to the loss each step (``memory=``), fills after each applied step, checkpoints with the
model and restores on ``--resume``. minilm needs no edit::

    [loss]
    name = "../examples/losses/cross_batch_memory.py:cross_batch_memory_loss"
    scale = 20.0
    memory_batches = 4   # K: the queue holds the positives of the last K batches

The queue's embeddings come from earlier weights; XBM relies on their drifting slowly, which holds at fine-tuning
learning rates. A text that returns in a later batch meets its own older embedding as a negative: with
``no_duplicates`` batches and K * batch_size well below the data's size this is rare, as in the paper.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from minilm.losses import needs
from minilm.losses.distances import cosine_similarity_matrix
from minilm.train.extensions import Extension, RunContext
from minilm.util.checks import check_embeddings, check_number

CITATION = """@inproceedings{wang2020xbm,
    title={Cross-Batch Memory for Embedding Learning},
    author={Wang, Xun and Zhang, Haozhi and Huang, Weilin and Scott, Matthew R.},
    booktitle={Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition},
    year={2020}
}"""


class CrossBatchMemory(Extension):
    """A FIFO queue of the positives' embeddings of the last ``batches`` steps: (M, D), newest first."""

    name = "xbm"
    settings = {"memory_batches": 4}

    def __init__(self, batches: int = 4):
        if isinstance(batches, bool) or not isinstance(batches, int) or batches < 1:
            raise ValueError(f"memory_batches must be a positive int, got {batches!r}")
        self.batches = batches
        self.queue: list[Tensor] = []  # one (B, D) per step, newest first

    @classmethod
    def refusal(cls, loss: str, config, world_size: int) -> str | None:
        if world_size > 1:  # each process would queue only its own shard's positives
            return f"loss {loss} keeps a memory of past batches in one process: it trains without torchrun"
        return None

    @classmethod
    def check_settings(cls, settings: dict) -> None:
        cls(settings.get("memory_batches", cls.settings["memory_batches"]))

    @classmethod
    def example_inputs(cls, embeddings: list[Tensor]) -> dict:
        return {"memory": torch.randn(3, embeddings[0].shape[1], generator=torch.Generator().manual_seed(3))}

    @classmethod
    def build(cls, run: RunContext) -> CrossBatchMemory:
        return cls(run.settings.get("memory_batches", cls.settings["memory_batches"]))

    def loss_inputs(self, columns, step: int, device) -> dict:
        if not self.queue:
            return {"memory": None}
        return {"memory": torch.cat(self.queue).to(device)}  # (M, D)

    def after_step(self, result) -> None:
        self.queue = [result.embeddings[1].detach().clone(), *self.queue][: self.batches]

    def state_dict(self) -> dict[str, Tensor]:
        return {str(i): t for i, t in enumerate(self.queue)}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.queue = [state[str(i)] for i in range(len(state))]


@needs("columns", columns=2, in_batch_negatives=True, extensions=(CrossBatchMemory,))
def cross_batch_memory_loss(anchor: Tensor, positive: Tensor, memory: Tensor | None = None, scale: float = 20.0):
    """MNRL over the batch's positives and the memory's: mean_i CE(scale * cos(a_i, [p; m]), i). With an empty
    memory (the first step) this is MNRL itself."""
    scale = check_number(scale, "scale", positive=True)
    anchor, positive = check_embeddings(anchor=anchor, positive=positive)
    if memory is not None:
        if memory.ndim != 2 or memory.shape[1] != anchor.shape[1]:
            raise ValueError(f"memory must be (M, {anchor.shape[1]}) like the batch, got shape {tuple(memory.shape)}")
        if not bool(torch.isfinite(memory).all()):
            raise ValueError("memory holds non-finite values")
    candidates = positive if memory is None else torch.cat([positive, memory.to(positive.dtype)])  # (B + M, D)
    scores = cosine_similarity_matrix(anchor, candidates) * scale  # (B, B + M)
    labels = torch.arange(anchor.shape[0], device=anchor.device)
    memory_size = 0 if memory is None else memory.shape[0]
    return F.cross_entropy(scores, labels), {"memory_size": float(memory_size)}


cross_batch_memory_loss.citation = CITATION
