"""Old import paths, from before the package was grouped by layer, kept working: each names its new place.

``import minilm.training.trainer`` (or any name below) gives the module at its new path, the same module object, with
a DeprecationWarning that says where it lives now. Only the names in ``MOVED`` are answered; anything else under an
old package fails as usual.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# The old training package itself is an empty package of its own (so ``from minilm.training import sweep`` asks for
# ``minilm.training.sweep``, which is answered below); every module it held has a new place.
OLD_PACKAGES = ("minilm.training",)
MOVED = {
    "minilm.training.trainer": "minilm.train.trainer",
    "minilm.training.step": "minilm.train.step",
    "minilm.training.grad_cache": "minilm.train.grad_cache",
    "minilm.training.optim": "minilm.train.optim",
    "minilm.training.samplers": "minilm.train.samplers",
    "minilm.training.checkpoint_files": "minilm.train.checkpoints",
    "minilm.training.distributed": "minilm.train.distributed",
    "minilm.training.config": "minilm.train.config",
    "minilm.training.best": "minilm.train.best",
    "minilm.training.compiled": "minilm.train.compiled",
    "minilm.training.reporting": "minilm.train.reporting",
    "minilm.training.data": "minilm.data.readers",
    "minilm.training.recipe": "minilm.run.recipe",
    "minilm.training.registry": "minilm.run.registry",
    "minilm.training.run": "minilm.run.build",
    "minilm.training.output_dir": "minilm.run.output_dir",
    "minilm.training.preflight": "minilm.run.preflight",
    "minilm.training.plots": "minilm.run.plots",
    "minilm.training.sweep": "minilm.sweep.runner",
    "minilm.training.sweep_spec": "minilm.sweep.spec",
    "minilm.training.sweep_stats": "minilm.sweep.stats",
    "minilm.training.sweep_report": "minilm.sweep.report",
    "minilm.weights": "minilm.loading.weights",
    "minilm.tokenizer": "minilm.loading.tokenizer",
    "minilm.hub": "minilm.loading.hub",
    "minilm.layout": "minilm.loading.layout",
    "minilm.encode_options": "minilm.encoding.options",
    "minilm.quantization": "minilm.encoding.quantization",
    "minilm.compare": "minilm.run.compare",
    "minilm.shards": "minilm.corpus.shards",
    "minilm.npyfile": "minilm.corpus.npyfile",
    "minilm.io": "minilm.util.io",
    "minilm.checks": "minilm.util.checks",
    "minilm.extras": "minilm.util.extras",
    "minilm.progress": "minilm.util.progress",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, new: str):
        self.new = new

    def create_module(self, spec):
        if self.new is None:
            return None  # the default: an empty module, made a package by the spec
        return importlib.import_module(self.new)  # the module itself: one object, whichever name imported it

    def exec_module(self, module):
        pass  # already executed under its new name


class MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in OLD_PACKAGES:
            return importlib.util.spec_from_loader(name, _Alias(None), is_package=True)
        new = MOVED.get(name)
        if new is None:
            return None
        warnings.warn(f"{name} moved to {new}; import it from there", DeprecationWarning, stacklevel=3)
        return importlib.util.spec_from_loader(name, _Alias(new))


def install() -> None:
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedFinder())  # after the real finders: a name that exists is never shadowed
