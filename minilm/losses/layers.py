"""Losses over every layer of the encoder: AdaptiveLayer (Li et al. 2024, "2D Matryoshka Sentence Embeddings") trains
the earlier layers' pooled outputs with the same loss and a KL term towards the last layer, so the model can be cut
short; Matryoshka2d does so with a Matryoshka loss. Match sentence-transformers 6.2's AdaptiveLayerLoss and
Matryoshka2dLoss (tests/parity/test_losses_vs_st_catalogue.py).

These are functions of the embeddings they need: the last layer's pooled embeddings of each text column and those of
the chosen earlier layers (the padded model exposes every layer's hidden states; pooling them the way the model pools
its last layer is the caller's job, as is choosing the layers with ``choose_layers``). ``adaptive_layer`` and
``matryoshka_2d`` are their recipe forms: the trainer hands them every earlier layer (``@needs(..., layers=True)``)
and a random.Random seeded from the run's seed and step, from which they draw the layers of the step.
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from minilm.losses.in_batch import multiple_negatives_ranking_loss
from minilm.losses.inputs import Needs, needs, needs_of, split_output
from minilm.losses.matryoshka import matryoshka
from minilm.util.checks import check_embeddings, check_number, lookup

LAYER_WEIGHTS: dict[str, Callable[[int], float]] = {
    "uniform": lambda layer: 1.0,
    "log": lambda layer: 1.0 / (1.0 + math.log(1 + layer)),
    "linear": lambda layer: 1.0 / (1 + layer),
}


def choose_layers(num_layers: int, n_layers_per_step: int = 1, rng: random.Random | None = None) -> list[int]:
    """Which earlier layers a step trains, as sentence-transformers picks them: indices into the model's
    ``num_layers`` hidden states (the embedding output is 0, the last layer is excluded), all of them when
    n_layers_per_step <= 0 or >= num_layers - 1, else a random sample of that many."""
    indices = list(range(num_layers - 1))
    if 0 < n_layers_per_step < len(indices):
        return (rng or random).sample(indices, n_layers_per_step)
    return indices


def adaptive_layer_loss(
    loss_fn: Callable[..., Tensor],
    final: Sequence[Tensor],
    layers: Mapping[int, Sequence[Tensor]],
    targets: Mapping[str, Tensor] | None = None,
    last_layer_weight: float = 1.0,
    prior_layers_weight: float = 1.0,
    kl_div_weight: float = 1.0,
    kl_temperature: float = 0.3,
    layer_weighting: str = "uniform",
) -> Tensor:
    """last_layer_weight * loss(final) + sum over the given layers l of
    prior_layers_weight * w(l) / n * loss(layer l) + kl_div_weight * T * KL(softmax(final / T) || softmax(layer l / T))
    (the KL over the rows of all columns stacked, batch-mean, towards the detached last layer; off when T = 0).

    final: the last layer's embeddings of each text column; layers: {layer index: that layer's embeddings of each
    column}; targets: the loss's keyword targets (labels, scores); w: LAYER_WEIGHTS[layer_weighting].
    """
    targets = dict(targets or {})
    weight_of = lookup(LAYER_WEIGHTS, layer_weighting, "layer_weighting")
    last_layer_weight = check_number(last_layer_weight, "last_layer_weight")
    prior_layers_weight = check_number(prior_layers_weight, "prior_layers_weight")
    kl_div_weight = check_number(kl_div_weight, "kl_div_weight")
    t = check_number(kl_temperature, "kl_temperature")
    if t < 0:
        raise ValueError(f"kl_temperature must be >= 0 (0 switches the KL term off), got {t}")
    final = check_embeddings(**{f"final[{i}]": x for i, x in enumerate(final)})
    loss = split_output(loss_fn(*final, **targets))[0] * last_layer_weight
    if t > 0:
        target = F.softmax(torch.cat(final) / t, dim=-1).detach()
    for index, embeddings in layers.items():
        embeddings = check_embeddings(**{f"layers[{index}][{i}]": x for i, x in enumerate(embeddings)})
        if len(embeddings) != len(final) or embeddings[0].shape != final[0].shape:
            raise ValueError(
                f"layers[{index}] must hold {len(final)} column(s) shaped like final {tuple(final[0].shape)}"
            )
        layer_loss = split_output(loss_fn(*embeddings, **targets))[0]
        loss = loss + layer_loss * weight_of(index) / len(layers) * prior_layers_weight
        if t > 0:
            kl = F.kl_div(F.log_softmax(torch.cat(embeddings) / t, dim=-1), target, reduction="batchmean")
            loss = loss + kl * t * kl_div_weight
    return loss


def matryoshka_2d_loss(
    loss_fn: Callable[..., Tensor],
    final: Sequence[Tensor],
    layers: Mapping[int, Sequence[Tensor]],
    dims: Sequence[int],
    weights: Sequence[float] | None = None,
    targets: Mapping[str, Tensor] | None = None,
    **adaptive,
) -> Tensor:
    """adaptive_layer_loss of matryoshka(loss_fn, dims, weights): every chosen layer and every prefix width. The KL
    terms compare full-width embeddings, as sentence-transformers does. Unlike its Matryoshka2dLoss (which by default
    trains one random width per step), every width in ``dims`` is trained each step."""
    return adaptive_layer_loss(matryoshka(loss_fn, dims, weights), final, layers, targets, **adaptive)


# The declarations below are those of the default inner loss (MNRL); the registry declares a bound one with its inner
# loss's needs (training/registry.py), since the rows a wrapper consumes are those of the loss it wraps.
@needs("columns", more_columns=True, in_batch_negatives=True, layers=True)
def adaptive_layer(
    *final: Tensor,
    layers: Mapping[int, Sequence[Tensor]],
    layer_rng: random.Random | None,
    loss: Callable[..., Tensor] = multiple_negatives_ranking_loss,
    n_layers_per_step: int = 1,
    last_layer_weight: float = 1.0,
    prior_layers_weight: float = 1.0,
    kl_div_weight: float = 1.0,
    kl_temperature: float = 0.3,
    layer_weighting: str = "uniform",
    **targets,
) -> Tensor:
    """adaptive_layer_loss of ``loss`` over the layers ``choose_layers`` draws from ``layer_rng``.

    final: the last layer's embeddings of each column; layers: every earlier layer's, keys 0 (the embedding output)
    to L - 1; targets: the inner loss's keywords (labels, scores, guide), passed to it at every layer.
    """
    chosen = _chosen_layers(layers, n_layers_per_step, layer_rng)
    return adaptive_layer_loss(
        loss,
        final,
        chosen,
        targets,
        last_layer_weight,
        prior_layers_weight,
        kl_div_weight,
        kl_temperature,
        layer_weighting,
    )


@needs("columns", more_columns=True, in_batch_negatives=True, layers=True)
def matryoshka_2d(
    *final: Tensor,
    layers: Mapping[int, Sequence[Tensor]],
    layer_rng: random.Random | None,
    loss: Callable[..., Tensor] = multiple_negatives_ranking_loss,
    dims: Sequence[int] | None = None,
    weights: Sequence[float] | None = None,
    n_layers_per_step: int = 1,
    last_layer_weight: float = 1.0,
    prior_layers_weight: float = 1.0,
    kl_div_weight: float = 1.0,
    kl_temperature: float = 0.3,
    layer_weighting: str = "uniform",
    **targets,
) -> Tensor:
    """matryoshka_2d_loss of ``loss`` over the layers ``choose_layers`` draws from ``layer_rng``, every width of
    ``dims`` (required: sentence-transformers' Matryoshka2dLoss has no default widths either)."""
    if dims is None:
        raise ValueError("matryoshka_2d needs dims, the embedding widths to train (e.g. dims = [384, 256, 128, 64])")
    chosen = _chosen_layers(layers, n_layers_per_step, layer_rng)
    return matryoshka_2d_loss(
        loss,
        final,
        chosen,
        dims,
        weights,
        targets,
        last_layer_weight=last_layer_weight,
        prior_layers_weight=prior_layers_weight,
        kl_div_weight=kl_div_weight,
        kl_temperature=kl_temperature,
        layer_weighting=layer_weighting,
    )


def _chosen_layers(
    layers: Mapping[int, Sequence[Tensor]], n_layers_per_step: int, rng: random.Random | None
) -> dict[int, Sequence[Tensor]]:
    if isinstance(n_layers_per_step, bool) or not isinstance(n_layers_per_step, int):
        raise ValueError(f"n_layers_per_step must be an int (<= 0: every layer), got {n_layers_per_step!r}")
    if not isinstance(layers, Mapping) or sorted(layers) != list(range(len(layers))):
        keys = sorted(layers) if isinstance(layers, Mapping) else type(layers).__name__
        raise ValueError(
            f"layers must map every earlier layer 0 (the embedding output) .. L - 1 to its embeddings, got {keys}"
        )
    if rng is None and 0 < n_layers_per_step < len(layers):
        raise ValueError("layer_rng is None, but n_layers_per_step draws layers: pass the step's random.Random")
    return {i: layers[i] for i in choose_layers(len(layers) + 1, n_layers_per_step, rng)}


def layered_needs(inner: Callable) -> Needs:
    """What a layer loss wrapping ``inner`` consumes: the rows ``inner`` needs, plus every layer."""
    declared = needs_of(inner)
    if declared.layers:
        raise ValueError("the inner loss of adaptive_layer / matryoshka_2d must not itself be a layer loss")
    if declared.model_copy:  # the layers would be the model's alone, the copy's earlier layers never trained
        raise ValueError(
            "the inner loss of adaptive_layer / matryoshka_2d must not compare the model with a trained "
            "copy of it (model_copy: Contrastive Tension)"
        )
    return dataclasses.replace(declared, layers=True)
