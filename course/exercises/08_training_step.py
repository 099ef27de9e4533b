"""Lesson 8 exercise: one training step's forward and backward, plainly and with a gradient cache.

Replace each ``raise NotImplementedError`` with your code, then run ``python course/check.py 8``.

``model`` is a minilm SentenceEncoder: ``model.embed(texts)`` tokenises and embeds a list of texts with autograd,
(B, D); ``model(**features)`` embeds already tokenised features. ``loss_fn(*embeddings)`` takes one (B, D) tensor
per column and returns a 0-d loss. Neither function zeroes the gradients: like ``loss.backward()``, a step adds
to whatever ``.grad`` holds (the trainer zeroes them between steps).
"""

import torch
from torch import Tensor


def training_step(model, columns: list[list[str]], loss_fn) -> Tensor:
    """Embed every column (each a list of B texts) with autograd, apply loss_fn to the embeddings in column order,
    back-propagate, and return the loss detached."""
    raise NotImplementedError


def cached_training_step(model, chunks: list[list[dict[str, Tensor]]], loss_fn) -> Tensor:
    """The same step with a gradient cache. chunks[c][i] is mini-batch i of column c, tokenised: model(**chunks[c][i])
    embeds it. Work through the mini-batches in this order: column 0's in turn, then column 1's, and so on.

    1. Without autograd, embed every mini-batch, saving torch's random-number state (torch.get_rng_state()) just
       before each forward: dropout draws its masks from it.
    2. Put each column's embeddings together (B, D), make them leaves that require grad, compute the loss on them and
       back-propagate it: the leaves' .grad is d loss / d embeddings.
    3. For every mini-batch, in the same order: restore its random-number state, embed it again with autograd and
       back-propagate its slice of d loss / d embeddings through the model.

    Return the loss detached.
    """
    raise NotImplementedError
