"""Lesson 8's checker: the plain step against minilm's loss_backward, the cached step against minilm's
cached_loss_backward, on a tiny random encoder (2 layers, H = 32) with the real tokenizer: loss and the gradient of
every parameter."""

import functools

import _minilm
import torch
from _checking import Case, Exercise, Tolerance

TITLE = "one training step and the gradient cache"

# Every gradient of the model is compared. float32 through a whole encoder: rounding differs with how the columns
# are batched, hence a looser absolute floor than the elementwise default.
GRADIENTS = Tolerance(rtol=1e-3, atol=1e-6)
NOTE = f"Lesson 8 compares every parameter's gradient (float32) to {GRADIENTS}."

ANCHORS = [
    "How do I reset my password?",
    "Where is my order?",
    "Can I pay by card?",
    "How do I cancel?",
    "My screen flickers",
    "The printer is offline",
    "Battery drains fast",
]
POSITIVES = [
    "Use the 'forgot password' link.",
    "Track it under My orders.",
    "We accept all major cards.",
    "Cancel any time in Settings, under Subscription.",
    "Update the graphics driver.",
    "Restart the printer and re-add it.",
    "Turn on battery saver and close heavy apps.",
]
NEGATIVES = [
    "Track it under My orders.",
    "We accept all major cards.",
    "Use the 'forgot password' link.",
    "Update the graphics driver.",
    "Cancel any time in Settings.",
    "Turn on battery saver.",
    "Restart the printer.",
]

mnrl = _minilm.multiple_negatives_ranking_loss
triplet = functools.partial(_minilm.triplet_loss, distance="cosine", margin=0.3)


def step_case(name, hint, columns, loss_fn, mini_batch_size=None, dropout=0.0, seed=0, grads_before=False) -> Case:
    """Build the same tiny model for both sides, run one step, return the loss and every parameter's gradient."""

    def model():
        encoder = _minilm.tiny_encoder(seed=seed, dropout=dropout)
        if dropout:
            encoder.train()
        if grads_before:  # gradients of an earlier micro-batch that the step must add to
            for p in encoder.parameters():
                p.grad = torch.full_like(p, 0.01)
        return encoder

    def run(step):
        encoder = model()
        torch.manual_seed(1234)  # both sides draw the same dropout masks from here on
        loss = step(encoder)
        results = {"loss": loss}
        for name_, p in encoder.named_parameters():
            results[f"gradient of {name_}"] = p.grad
        return results

    def yours(fn):
        if mini_batch_size is None:
            return run(lambda encoder: fn(encoder, [list(c) for c in columns], loss_fn))
        return run(
            lambda encoder: fn(
                encoder, [_minilm.split_column(encoder, list(c), mini_batch_size) for c in columns], loss_fn
            )
        )

    def minilm():
        if mini_batch_size is None:
            return run(lambda encoder: _minilm.loss_backward(encoder, [list(c) for c in columns], loss_fn))
        return run(
            lambda encoder: _minilm.cached_loss_backward(encoder, [list(c) for c in columns], loss_fn, mini_batch_size)
        )

    shown = f"{len(columns)} columns of {len(columns[0])} texts"
    if mini_batch_size is not None:
        shown += f" in mini-batches of {mini_batch_size}"
    shown += f", tiny encoder, dropout {dropout}" + (", gradients already present" if grads_before else "")
    return Case(name, shown, hint, yours, minilm, torch.float32, gradient_tolerance=GRADIENTS, autograd_note=False)


STEP_HINT = (
    "Embed each column with model.embed (autograd on), call loss_fn once on all the embeddings in column "
    "order, call backward on the loss, return it detached. Don't wrap the forward in torch.no_grad()."
)
TRIPLET_HINT = "Three columns here: pass all three embeddings to loss_fn, in column order."
ACCUMULATE_HINT = (
    "The parameters already hold gradients from an earlier micro-batch: the step must add to them, as "
    "loss.backward() does. Don't zero or overwrite .grad."
)
CACHE_HINT = (
    "The loss is computed once, on every column's full (B, D) embeddings (concatenate the mini-batches "
    "first), and its gradient with respect to those embeddings is what each mini-batch's second forward "
    "back-propagates: emb.backward(its rows of that gradient). Not one loss per mini-batch."
)
UNEVEN_HINT = (
    "7 rows in mini-batches of 3 gives mini-batches of 3, 3 and 1: slice each column's embedding gradient "
    "in the same sizes, in the same order."
)
RNG_HINT = (
    "Dropout is on: the second forward of a mini-batch must draw the same dropout masks as the first, or the "
    "gradient belongs to another network. Save torch.get_rng_state() just before each no-grad forward and "
    "restore it with torch.set_rng_state() just before that mini-batch's second forward."
)


def plain_cases():
    return [
        step_case("in-batch negatives, 2 columns", STEP_HINT, [ANCHORS[:6], POSITIVES[:6]], mnrl),
        step_case("triplet loss, 3 columns", TRIPLET_HINT, [ANCHORS, POSITIVES, NEGATIVES], triplet, seed=1),
        step_case(
            "gradients already present", ACCUMULATE_HINT, [ANCHORS[:4], POSITIVES[:4]], mnrl, seed=2, grads_before=True
        ),
    ]


def cached_cases():
    return [
        step_case(
            "in-batch negatives, mini-batches of 2, no dropout",
            CACHE_HINT,
            [ANCHORS[:6], POSITIVES[:6]],
            mnrl,
            mini_batch_size=2,
        ),
        step_case(
            "triplet loss, 7 rows in mini-batches of 3",
            UNEVEN_HINT,
            [ANCHORS, POSITIVES, NEGATIVES],
            triplet,
            mini_batch_size=3,
            seed=1,
        ),
        step_case("dropout on", RNG_HINT, [ANCHORS[:6], POSITIVES[:6]], mnrl, mini_batch_size=2, dropout=0.1, seed=2),
        step_case(
            "gradients already present",
            ACCUMULATE_HINT,
            [ANCHORS[:4], POSITIVES[:4]],
            mnrl,
            mini_batch_size=3,
            seed=3,
            grads_before=True,
        ),
    ]


EXERCISES = [Exercise("training_step", plain_cases), Exercise("cached_training_step", cached_cases)]
