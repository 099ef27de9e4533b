"""Shared helpers for the dataset generators: seeded RNGs and unique-row sampling."""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable
from typing import TypeVar

SEED = 42
Row = TypeVar("Row")


def rng_for(name: str) -> random.Random:
    """One independent RNG per dataset, so editing one generator never shifts another's output."""
    # str seeds are hashed deterministically by random.Random (not via PYTHONHASHSEED).
    return random.Random(f"{SEED}:{name}")


def take_unique(
    make: Callable[[], Row | None],
    n: int,
    keys: Callable[[Row], tuple[Hashable, ...]],
    seen: set | None = None,
    max_tries: int = 200,
) -> list[Row]:
    """Call `make` until `n` rows are collected whose every key is new.

    `keys(row)` returns the values that must be unique across all kept rows (e.g. the note *and* the
    sentence); `make` may return None to reject a draw. `seen` can be shared between splits so that
    train and eval stay disjoint.
    """
    seen = set() if seen is None else seen
    rows: list[Row] = []
    tries = 0
    while len(rows) < n:
        tries += 1
        if tries > max_tries * n:
            raise RuntimeError(f"only {len(rows)} of {n} unique rows after {tries} draws; add vocabulary")
        row = make()
        if row is None:
            continue
        ks = keys(row)
        if any(k in seen for k in ks) or len(set(ks)) != len(ks):
            continue
        seen.update(ks)
        rows.append(row)
    return rows
