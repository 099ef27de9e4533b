"""How a recipe names a loss: a registry name (``mnrl``) or an import path to the user's own loss.

``name = "mnrl"``: a loss of minilm's library. ``name = "my_losses:masked_mnrl"``: attribute ``masked_mnrl`` of
importable module ``my_losses``. ``name = "losses/mine.py:masked_mnrl"``: that file, relative to the recipe's
folder. Either way the loss declares its inputs with ``@minilm.losses.needs``; everything about data and sampling
follows from that declaration, not from the name.
"""

from __future__ import annotations

import functools
import importlib
import random
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor, nn

from minilm import losses
from minilm.losses.inputs import CONTEXT, MODEL_ROLES, Needs, needs_of, split_output

LOSSES: dict[str, Callable[..., Tensor]] = {
    "triplet": losses.triplet_loss,
    "batch_hard_triplet": losses.batch_hard_triplet_loss,
    "batch_semi_hard_triplet": losses.batch_semi_hard_triplet_loss,
    "batch_all_triplet": losses.batch_all_triplet_loss,
    "mnrl": losses.multiple_negatives_ranking_loss,
    "cosent": losses.cosent_loss,
    # the loss catalogue (docs/losses.md)
    "contrastive": losses.contrastive_loss,
    "online_contrastive": losses.online_contrastive_loss,
    "cosine_similarity": losses.cosine_similarity_loss,
    "angle": losses.angle_loss,
    "mega_batch_margin": losses.mega_batch_margin_loss,
    "supcon": losses.supcon_loss,
    "ntxent": losses.ntxent_loss,
    "circle": losses.circle_loss,
    "multi_similarity": losses.multi_similarity_loss,
    "arcface": losses.ArcFaceLoss,
    "cosface": losses.CosFaceLoss,
    "proxy_anchor": losses.ProxyAnchorLoss,
    "softmax": losses.SoftmaxLoss,
    "mse": losses.mse_distill_loss,
    "embed_distill": losses.EmbedDistillLoss,
    "margin_mse": losses.margin_mse_loss,
    "distill_kl_div": losses.distill_kl_div_loss,
    # a guide model's embeddings mask false negatives ([loss] guide names it); its cached form is this loss with
    # [train] mini_batch_size, as for every in-batch loss
    "gist": losses.gist_embed_loss,
    # every earlier layer trained too ([loss] loss names the inner loss, loss_settings its settings)
    "adaptive_layer": losses.adaptive_layer,
    "matryoshka_2d": losses.matryoshka_2d,
    # the model against a trained copy of itself, from one text column (training/model_copy.py)
    "contrastive_tension": losses.contrastive_tension_loss,
    "contrastive_tension_in_batch": losses.ContrastiveTensionInBatchLoss,
}

MATRYOSHKA_KEYS = ("matryoshka_dims", "matryoshka_weights")
# Global Orthogonal Regularization added to the loss (losses.with_global_orthogonal_regularization): any of these
# keys switches it on; an unset weight keeps its default of 1.0, as in sentence-transformers.
GOR_KEYS = {"gor_mean_weight": "mean_weight", "gor_second_moment_weight": "second_moment_weight",
            "gor_aggregation": "aggregation", "gor_similarity": "similarity"}
# The model whose embeddings a loss declared with @needs(..., guide=True) takes as ``guide=``: a folder or hub id,
# loaded by the trainer (training/frozen.py), never passed to the loss itself.
GUIDE_KEY = "guide"
# A teacher model whose embeddings of the batch's texts a loss of kind teacher_embeddings takes as
# ``teacher_embeddings=``, in place of a data column: a folder or hub id, loaded frozen by the trainer like a guide.
TEACHER_KEY = "teacher"
# A loss over every layer (@needs(..., layers=True)) wraps another loss: ``loss`` names it (a registry name or an
# import path; MNRL when absent) and ``loss_settings`` holds that loss's own [loss] settings (matryoshka_dims too).
# The rows the wrapper consumes are the inner loss's.
INNER_KEY, INNER_SETTINGS_KEY = "loss", "loss_settings"
# A loss with a model copy and 0/1 scores (contrastive_tension) gets its pairs from the sampler: one identical pair,
# then pos_neg_ratio - 1 random ones (samplers.TensionPairSampler); a setting of the method, not of the loss function.
PAIRS_KEY, PAIRS_DEFAULT = "pos_neg_ratio", 8


def makes_pairs(declared: Needs) -> bool:
    """Whether the run builds the loss's (text, text, 0/1 score) rows from one text column."""
    return declared.model_copy and declared.kind == "scores"


class UnknownLossSettings(ValueError):
    """Settings a loss does not take; ``valid`` lists the ones it does (for messages that say what to keep)."""

    def __init__(self, name: str, unknown: list[str], valid: list[str]):
        self.name, self.unknown, self.valid = name, unknown, valid
        plural = "s" if len(unknown) > 1 else ""
        super().__init__(f"loss {name!r} has no setting{plural} {', '.join(map(repr, unknown))}; valid: {valid}")


def resolve_loss(name: str, base_dir: str | Path | None = None) -> Callable[..., Tensor]:
    """The loss function ``name`` refers to: a registry name, ``module:attribute`` or ``file.py:attribute``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a loss name must be a non-empty string, got {name!r}")
    if name in LOSSES:
        return LOSSES[name]
    if ":" not in name:
        raise ValueError(f"unknown loss name {name!r}; known: {sorted(LOSSES)}, or an import path "
                         f"'module:function' / 'file.py:function'")
    where, _, attribute = name.rpartition(":")
    if where.endswith(".py"):
        path = Path(where) if base_dir is None else Path(base_dir) / where
        if not path.is_file():
            raise ValueError(f"loss {name!r}: file {path.resolve()} not found")
        module_name = f"minilm_user_loss_{abs(hash(str(path.resolve())))}"
        module = sys.modules.get(module_name)
        if module is None:
            spec = importlib.util.spec_from_file_location(module_name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
            try:
                spec.loader.exec_module(module)
            except Exception as e:
                del sys.modules[module_name]
                raise ValueError(f"loss {name!r}: importing {path} failed: {type(e).__name__}: {e}") from e
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as e:
            raise ValueError(f"loss {name!r}: cannot import module {where!r} ({e})") from None
    loss = getattr(module, attribute, None)
    if not callable(loss):
        raise ValueError(f"loss {name!r}: {where} has no function {attribute!r}")
    try:
        needs_of(loss)
    except TypeError as e:
        raise ValueError(f"loss {name!r}: {e}") from None
    return loss


def loss_needs(name: str, base_dir: str | Path | None = None, settings: dict | None = None) -> Needs:
    """What rows the loss ``name`` consumes; for a layer loss, those of the inner loss its ``settings`` name."""
    declared = needs_of(resolve_loss(name, base_dir))
    inner = (settings or {}).get(INNER_KEY)
    if declared.layers and isinstance(inner, str):
        try:
            return losses.layered_needs(resolve_loss(inner, base_dir))
        except ValueError as e:
            raise ValueError(f"loss {name!r}: {INNER_KEY} {inner!r}: {e}") from None
    return declared


def make_inner_loss(name: str, kwargs: dict, base_dir: str | Path | None, context: dict | None) -> dict:
    """A layer loss's settings with its inner loss built: ``loss`` (a name) and ``loss_settings`` become the bound
    inner loss. The inner loss must be a function: a module's parameters, hidden inside the wrapper, would be neither
    optimised nor checkpointed. The inner loss's rows were checked first, by check_loss_kwargs (loss_needs)."""
    inner, inner_settings = kwargs.pop(INNER_KEY, None), kwargs.pop(INNER_SETTINGS_KEY, None)
    if inner is None:
        if inner_settings is not None:
            raise ValueError(f"loss {name!r}: {INNER_SETTINGS_KEY} is set but {INNER_KEY} (the inner loss) is not")
        return kwargs
    if not isinstance(inner, str) or not inner:
        raise ValueError(f"loss {name!r}: {INNER_KEY} must name the inner loss (a registry name or an import path), "
                         f"got {inner!r}")
    if inner_settings is not None and not isinstance(inner_settings, dict):
        raise ValueError(f"loss {name!r}: {INNER_SETTINGS_KEY} must be a table of the inner loss's settings, "
                         f"got {inner_settings!r}")
    if is_module_loss(resolve_loss(inner, base_dir)):
        raise ValueError(f"loss {name!r}: inner loss {inner!r} has parameters (an nn.Module), which a layer loss "
                         f"cannot train; use a function loss")
    return {**kwargs, INNER_KEY: make_loss(inner, inner_settings or {}, base_dir, context)}


def is_module_loss(loss) -> bool:
    """A loss with parameters: an nn.Module class, built once per run."""
    return isinstance(loss, type) and issubclass(loss, nn.Module)


def loss_module_of(loss: Callable) -> nn.Module | None:
    """The nn.Module inside a built loss (through matryoshka, gather and functools.partial wrappers), or None."""
    seen = loss
    while not isinstance(seen, nn.Module):
        if isinstance(seen, functools.partial):
            seen = seen.func
        elif hasattr(seen, "__wrapped__"):
            seen = seen.__wrapped__
        else:
            return None
    return seen


def teacher_width(loss: Callable, student_width: int) -> int:
    """The teacher width a built loss compares with: its projection's (``teacher_dim``: embed_distill with
    projection_dim), else the student's own."""
    return getattr(loss_module_of(loss), "teacher_dim", None) or student_width


def settable(loss: Callable) -> list[str]:
    """The loss's keyword settings: parameters with defaults (for a class, of __init__, less the CONTEXT names)."""
    params = inspect.signature(loss).parameters.values()
    return [p.name for p in params
            if p.default is not p.empty and p.kind is not p.VAR_KEYWORD and p.name not in CONTEXT]


def make_loss(name: str, kwargs: dict | None = None, base_dir: str | Path | None = None,
              context: dict | None = None) -> Callable[..., Tensor]:
    """The loss a recipe's ``[loss]`` table describes, settings bound; matryoshka_dims/_weights wrap it.

    A loss class is instantiated with the settings plus the ``context`` values its __init__ asks for (CONTEXT
    names: embedding_dim, num_labels); the result is the module, whose parameters the trainer optimises.
    """
    kwargs = dict(kwargs or {})
    check_loss_kwargs(name, kwargs, dry_run=False, base_dir=base_dir)
    dims, weights = (kwargs.pop(k, None) for k in MATRYOSHKA_KEYS)
    kwargs.pop(GUIDE_KEY, None)  # the trainer's business: the loss gets the guide's embeddings, not its name
    kwargs.pop(TEACHER_KEY, None)  # likewise the teacher's
    kwargs.pop(PAIRS_KEY, None)  # the sampler's business
    gor = {GOR_KEYS[k]: kwargs.pop(k) for k in list(kwargs) if k in GOR_KEYS}
    if weights is not None and dims is None:
        raise ValueError("matryoshka_weights is set but matryoshka_dims is not")
    found = resolve_loss(name, base_dir)
    if needs_of(found).layers and not is_module_loss(found):
        kwargs = make_inner_loss(name, kwargs, base_dir, context)
    if is_module_loss(found):
        wanted = inspect.signature(found).parameters
        given = {k: v for k, v in (context or {}).items() if k in wanted}
        missing = [k for k in CONTEXT if k in wanted and k not in given and wanted[k].default is wanted[k].empty]
        if missing:
            raise ValueError(f"loss {name!r} needs {missing} from the run ({', '.join(CONTEXT[k] for k in missing)})")
        loss = found(**kwargs, **given)
    else:
        loss = functools.partial(found, **kwargs)
        if needs_of(found).layers and INNER_KEY in kwargs:  # it consumes what its inner loss consumes
            loss.needs = losses.layered_needs(kwargs[INNER_KEY])
    loss = loss if dims is None else losses.matryoshka(loss, dims, weights)
    return losses.with_global_orthogonal_regularization(loss, **gor) if gor else loss


def check_loss_kwargs(name: str, kwargs: dict, dry_run: bool = True, base_dir: str | Path | None = None) -> None:
    """Validate a loss name and its keyword settings before any model loads; ValueError names the bad key.

    Keys are checked against the loss's signature; with dry_run the values are checked by running the loss once on a
    tiny random batch, so a bad distance name or a negative scale fails here, with the loss's own message.
    """
    loss = resolve_loss(name, base_dir)
    valid = settable(loss)
    declared = loss_needs(name, base_dir, kwargs)
    if TEACHER_KEY in kwargs and declared.kind not in MODEL_ROLES:
        raise ValueError(teacher_refusal(name, declared))
    models = ([GUIDE_KEY] if declared.guide else []) + ([TEACHER_KEY] if declared.kind in MODEL_ROLES else [])
    models += [PAIRS_KEY] if makes_pairs(declared) else []
    if declared.layers:  # the inner loss takes matryoshka_dims in its own settings, not the wrapper
        extra = [INNER_SETTINGS_KEY] + models
        wrapping = [key for key in kwargs if key in MATRYOSHKA_KEYS or key in GOR_KEYS]
        if wrapping:
            raise ValueError(f"loss {name!r}: {', '.join(wrapping)} cannot wrap a layer loss (the earlier layers "
                             f"would go untouched); put them in {INNER_SETTINGS_KEY}, the inner loss's settings"
                             + (", or use matryoshka_2d" if any(k in MATRYOSHKA_KEYS for k in wrapping) else ""))
    else:
        extra = list(MATRYOSHKA_KEYS) + list(GOR_KEYS) + models
    unknown = [key for key in kwargs if key not in valid and key not in extra]
    if unknown:
        raise UnknownLossSettings(name, unknown, valid + extra)
    for key in (GUIDE_KEY, TEACHER_KEY):
        model = kwargs.get(key)
        if key in kwargs and model is not None and (not isinstance(model, str) or not model):
            raise ValueError(f"loss {name!r}: {key} must name a model (a folder or a hub id), got {model!r}")
    if not dry_run:
        return
    ratio = kwargs.get(PAIRS_KEY, PAIRS_DEFAULT)
    if makes_pairs(declared) and (isinstance(ratio, bool) or not isinstance(ratio, int) or ratio < 2):
        raise ValueError(f"loss {name!r}: {PAIRS_KEY} must be an int >= 2 (one identical pair, then "
                         f"{PAIRS_KEY} - 1 random pairs), got {ratio!r}")
    dims = kwargs.get("matryoshka_dims")
    if declared.layers:  # matryoshka_2d's own widths, or the inner loss's
        inner_settings = kwargs.get(INNER_SETTINGS_KEY)
        dims = kwargs.get("dims") or (inner_settings.get("matryoshka_dims") if isinstance(inner_settings, dict)
                                      else None)
    width = max(dims) if isinstance(dims, (list, tuple)) and dims and all(isinstance(d, int) for d in dims) else 8
    width = min(width, 8192)  # a dry run, not an allocation test
    try:
        context = {"embedding_dim": width, **({"num_labels": 2} if declared.target == "labels" else {})}  # as a run has
        bound = make_loss(name, kwargs, base_dir, context=context)
        # a loss that projects the student to a teacher's width says which width its teacher rows have
        args, targets = dummy_inputs(declared, width, teacher_width=getattr(bound, "teacher_dim", width))
        if declared.guide:  # the guide's own width need not be the student's
            targets[GUIDE_KEY] = [torch.randn(a.shape[0], 3, generator=torch.Generator().manual_seed(1)) for a in args]
        if declared.layers:  # two earlier layers, shaped like the last
            gen = torch.Generator().manual_seed(2)
            targets["layers"] = {i: [torch.randn(a.shape, generator=gen) for a in args] for i in range(2)}
            targets["layer_rng"] = random.Random(0)
        split_output(bound(*args, **targets))
    except (TypeError, ValueError) as e:
        if str(e).startswith(f"loss {name!r}: "):  # make_loss named it already
            raise ValueError(str(e)) from e
        raise ValueError(f"loss {name!r}: {e}") from e


def teacher_refusal(name: str, declared: Needs) -> str:
    """Why loss ``name`` cannot take a teacher model: only a loss of kind teacher_embeddings takes one."""
    takers = ", ".join(sorted(n for n, loss in LOSSES.items() if needs_of(loss).kind in MODEL_ROLES))
    why = (" it takes the teacher's score of each candidate (a cross-encoder's), which a sentence encoder does not "
           "give: put the scores in a data column ([data] roles teacher)" if declared.kind == "teacher_scores" else
           " it takes no teacher")
    return (f"loss {name!r}: {TEACHER_KEY} names a teacher model, whose embeddings only a loss of kind "
            f"'teacher_embeddings' takes ({takers}); loss {name!r} is of kind {declared.kind!r}, and{why}")


def dummy_inputs(declared: Needs, width: int, rows: int = 4, teacher_width: int | None = None
                 ) -> tuple[list[Tensor], dict[str, Tensor]]:
    """Embeddings and targets of the declared kind for a small batch: one (rows, width) tensor per text column."""
    gen = torch.Generator().manual_seed(0)
    embeddings = list(torch.randn(declared.columns, rows, width, generator=gen).unbind(0))
    targets = {}
    if declared.kind in ("labels", "pair_labels"):
        targets["labels"] = torch.arange(rows) // 2  # pairs of labels: every anchor has a positive and a negative
    elif declared.kind == "scores":
        targets["scores"] = (torch.arange(rows) % 2).float()  # 0/1: also valid pair labels (online contrastive)
    elif declared.kind == "teacher_scores":  # one score per candidate column (positive, negatives...)
        targets["teacher_scores"] = torch.randn(rows, declared.columns - 1, generator=gen)
    elif declared.kind == "teacher_embeddings":
        targets["teacher_embeddings"] = torch.randn(rows, teacher_width or width, generator=gen)
    return embeddings, targets
