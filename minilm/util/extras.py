"""Optional extras: importing a package that only an optional feature needs, with an error that says how to get it."""

from __future__ import annotations

import importlib


class MissingExtra(ImportError):
    """An optional dependency is not installed; the message names the feature and the pip extra that installs it."""


def require(module: str, extra: str, feature: str):
    """Import ``module`` (for ``feature``), or raise MissingExtra naming ``pip install 'minilm[extra]'``."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtra(
            f"{feature} needs the optional package behind {module} ({e.name or module} is not "
            f"installed): pip install 'minilm[{extra}]'"
        ) from None
