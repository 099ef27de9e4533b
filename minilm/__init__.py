"""minilm: a from-scratch MiniLM sentence encoder and the losses, optimiser and trainer to fine-tune it."""

from pathlib import Path as _Path

__version__ = "0.1.0"

from minilm import _moved

_moved.install()  # old import paths (minilm.training.*, minilm.io, ...) lead to the new places

# The optional fused kernels live in the repository's top-level kernels/ folder (the project layout asks for it
# there) and are imported as ``minilm.kernels``. An install maps the folder into the package (pyproject's
# package-dir); from a bare source checkout, this makes the same import find it. Only that one name resolves
# there: the finder below answers for "minilm.kernels" and nothing else in the repository root.
_ROOT = _Path(__file__).resolve().parent.parent
_KERNELS = _ROOT / "kernels"
if (_ROOT / "pyproject.toml").is_file() and (_KERNELS / "__init__.py").is_file():  # a checkout, not site-packages
    import importlib.abc as _abc
    import importlib.util as _util
    import sys as _sys

    class _KernelsFinder(_abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name != "minilm.kernels":
                return None
            return _util.spec_from_file_location(
                name, _KERNELS / "__init__.py", submodule_search_locations=[str(_KERNELS)]
            )

    _sys.meta_path.insert(0, _KernelsFinder())
