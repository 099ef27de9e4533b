"""What a model card says about the recipe's loss: its settings (defaults filled in), its counterpart and citations.

A shipped loss is cited as the catalogue says (``minilm/losses/catalogue.py``); a user's loss when it carries a
``citation`` attribute (a BibTeX string); without one, its card cites nothing for it.
"""

from __future__ import annotations

import inspect
from pathlib import Path

from minilm.card import LossCard
from minilm.losses.catalogue import GOR, MATRYOSHKA, MNRL_SYMMETRIC, REFERENCES, Reference
from minilm.losses.inputs import needs_of
from minilm.run.registry import (
    GOR_KEYS,
    LOSSES,
    MATRYOSHKA_KEYS,
    PAIRS_DEFAULT,
    PAIRS_KEY,
    makes_pairs,
    resolve_loss,
    settable,
)
from minilm.util import usercode


def reference_of(name: str, settings: dict) -> Reference | None:
    if name == "mnrl" and settings.get("symmetric"):
        return MNRL_SYMMETRIC
    return REFERENCES.get(name) if name in LOSSES else None


def describe_loss(name: str, settings: dict, base_dir: str | Path | None = None) -> LossCard:
    """The card's view of the recipe's ``[loss]``: every setting (defaults filled in), counterpart and citations."""
    loss = resolve_loss(name, base_dir)
    signature = inspect.signature(loss).parameters
    given = {k: v for k, v in settings.items() if k not in MATRYOSHKA_KEYS}
    shown = {key: given.get(key, signature[key].default) for key in settable(loss)}
    shown = {key: usercode.name_of(v) if callable(v) else v for key, v in shown.items()}  # an inner loss
    if makes_pairs(needs_of(loss)):  # how its pairs were made is part of the method
        shown[PAIRS_KEY] = settings.get(PAIRS_KEY, PAIRS_DEFAULT)
    function = usercode.name_of(loss)  # a user's loss as file.py:function
    found = reference_of(name, settings)
    st_names, citations = [], {}
    if found is not None:
        st_names += [found.st_name] if found.st_name else []
        citations.update({found.label: found.citation} if found.citation else {})
    elif isinstance(getattr(loss, "citation", None), str):
        citations[getattr(loss, "__name__", name)] = loss.citation
    if settings.get("matryoshka_dims") is not None:
        shown = {
            "loss": found.label if found else function,
            "loss_settings": shown,
            **{k: settings[k] for k in MATRYOSHKA_KEYS if settings.get(k) is not None},
        }
        st_names.insert(0, MATRYOSHKA.st_name)
        citations = {MATRYOSHKA.st_name: MATRYOSHKA.citation, **citations}
    if any(key in settings for key in GOR_KEYS):  # a regulariser added to the loss: its settings and paper too
        shown.update({key: settings[key] for key in GOR_KEYS if key in settings})
        citations[GOR.label] = GOR.citation
    return LossCard(name=name, function=function, settings=shown, st_names=st_names, citations=citations)
