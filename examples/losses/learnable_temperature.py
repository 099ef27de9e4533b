"""InfoNCE with a learnable temperature (CLIP's learnable logit scale): a loss with a parameter, in your own file.

Name it in a recipe by path (relative to the recipe's folder); minilm needs no edit::

    [loss]
    name = "../examples/losses/learnable_temperature.py:LearnableTemperatureInfoNCE"
    init_temperature = 0.05

    [train]
    loss_lr = 1e-2   # optional: its own learning rate (the encoder's 5e-5 would move it by ~0.1 % in 20 steps)

The trainer builds the class once per run, optimises ``log_temperature`` with the encoder, checkpoints it, restores it
on ``--resume``, saves it in ``final/loss.safetensors``, and logs the reported statistics with every step in
``log.jsonl``: the temperature as ``statistics()`` gives it after the step's update.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from minilm.losses import needs
from minilm.losses.distances import cosine_similarity_matrix
from minilm.losses.in_batch import ranking_statistics
from minilm.util.checks import check_embeddings, check_number


@needs("columns", columns=2, more_columns=True, in_batch_negatives=True)
class LearnableTemperatureInfoNCE(nn.Module):
    """mean_i [log sum_j exp(cos(a_i, c_j) / t) - cos(a_i, p_i) / t] over candidates c = (positives, hard negatives),
    with t = exp(log_temperature) learned, clamped to [min_temperature, 1] (CLIP clamps its logit scale at 100).

    The parameter is the log of the temperature: it stays positive, and Adam's steps are then relative changes.
    MNRL with scale 20 is this loss at a fixed t = 0.05.
    """

    def __init__(self, init_temperature: float = 0.05, min_temperature: float = 0.01):
        super().__init__()
        init_temperature = check_number(init_temperature, "init_temperature", positive=True)
        min_temperature = check_number(min_temperature, "min_temperature", positive=True)
        if not min_temperature <= init_temperature <= 1.0:
            raise ValueError(
                f"init_temperature must lie in [min_temperature, 1] = [{min_temperature}, 1], got {init_temperature}"
            )
        self.log_temperature = nn.Parameter(torch.tensor(math.log(init_temperature)))
        self.min_log_temperature = math.log(min_temperature)

    def temperature(self) -> Tensor:
        return self.log_temperature.clamp(self.min_log_temperature, 0.0).exp()

    def statistics(self) -> dict:
        """What the trainer logs after each update (the forward can report only the value before it): the
        temperature the next step uses, and after the last step the one saved in final/loss.safetensors."""
        return {"temperature": self.temperature()}

    def forward(self, anchors: Tensor, positives: Tensor, *hard_negatives: Tensor) -> tuple[Tensor, dict]:
        named = {f"hard_negatives[{i}]": n for i, n in enumerate(hard_negatives)}
        anchors, positives, *negatives = check_embeddings(anchors=anchors, positives=positives, **named)
        similarities = cosine_similarity_matrix(anchors, torch.cat([positives, *negatives]))  # (B, B * (1 + k))
        temperature = self.temperature()
        logits = similarities / temperature
        loss = (logits.logsumexp(dim=1) - logits.diagonal()).mean()
        return loss, {"temperature": temperature.detach(), **ranking_statistics(similarities)}
