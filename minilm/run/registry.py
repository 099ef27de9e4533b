"""How a recipe names a loss: a registry name (``mnrl``) or an import path to the user's own loss.

``name = "mnrl"``: a loss of minilm's library. ``name = "my_losses:masked_mnrl"``: attribute ``masked_mnrl`` of
importable module ``my_losses``. ``name = "losses/mine.py:masked_mnrl"``: that file, relative to the recipe's
folder. Either way the loss declares its inputs with ``@minilm.losses.needs``; everything about data and sampling
follows from that declaration, not from the name.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import hashlib
import importlib
import importlib.util
import inspect
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from minilm import losses
from minilm.loading.hub import sha256_of
from minilm.losses.catalogue import LOSSES as CATALOGUE_LOSSES
from minilm.losses.inputs import CONTEXT, MODEL_ROLES, Needs, module_of, needs_of, split_output
from minilm.train.wiring import candidates, setting_keys
from minilm.util import usercode

LOSSES = CATALOGUE_LOSSES  # name -> loss, from the one catalogue table (minilm/losses/catalogue.py)

MATRYOSHKA_KEYS = ("matryoshka_dims", "matryoshka_weights")
# Global Orthogonal Regularization added to the loss (losses.with_global_orthogonal_regularization): any of these
# keys switches it on; an unset weight keeps its default of 1.0, as in sentence-transformers.
GOR_KEYS = {
    "gor_mean_weight": "mean_weight",
    "gor_second_moment_weight": "second_moment_weight",
    "gor_aggregation": "aggregation",
    "gor_similarity": "similarity",
}
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
    """The loss function ``name`` refers to: a registry name, ``module:attribute`` or ``file.py:attribute``.

    A loss file is loaded as a module of its own (named after its resolved path, so two files called ``losses.py``
    stay apart); its folder is importable while it loads, so it can import modules beside it (``import helpers``;
    import them at the top of the file: the folder leaves ``sys.path`` once the file has loaded). Its folder is the
    user's code (``minilm.util.usercode``): anything raised there, at import or later, is named as the user's."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a loss name must be a non-empty string, got {name!r}")
    if name in LOSSES:
        return LOSSES[name]
    if ":" not in name:
        raise ValueError(
            f"unknown loss name {name!r}; known: {sorted(LOSSES)}, or an import path "
            f"'module:function' / 'file.py:function'"
        )
    where, _, attribute = name.rpartition(":")
    if where.endswith(".py"):
        path = Path(where) if base_dir is None else Path(base_dir) / where
        if not path.is_file():
            raise ValueError(f"loss {name!r}: file {path.resolve()} not found")
        module = _load_file(path.resolve(), f"{Path(where).name}:{attribute}")
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as e:
            raise ValueError(f"loss {name!r}: cannot import module {where!r} ({e})") from None
        except (Exception, SystemExit) as e:
            raise usercode.UserCodeError(
                f"loss {name}: importing module {where} failed: {usercode.describe(e)}"
                f"{usercode.where(usercode.culprit(e) or _last_frame(e))}"
            ) from e
        if where.split(".")[0] != "minilm" and getattr(module, "__file__", None):
            usercode.register(Path(module.__file__).parent)  # the user's own importable module
    loss = getattr(module, attribute, None)
    if not callable(loss):
        raise ValueError(f"loss {name!r}: {where} has no function {attribute!r}")
    try:
        needs_of(loss)
    except TypeError as e:
        raise ValueError(f"loss {name!r}: {e}") from None
    return loss


def _load_file(path: Path, shown: str):
    """The module of the loss file ``path`` (resolved), loaded once per process."""
    module_name = usercode.MODULE_PREFIX + hashlib.sha256(str(path).encode()).hexdigest()[:16]
    module = sys.modules.get(module_name)
    if module is not None:
        return module
    folder = path.parent
    usercode.register(folder)
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    # A module beside this file wins over one of the same name imported earlier from elsewhere (another loss folder's
    # helpers.py, a library's top-level utils): it steps aside while this file loads, as it would for a script run
    # from this folder, and is put back afterwards; this file keeps the module it imported.
    beside = {p.stem for p in folder.glob("*.py")} | {p.parent.name for p in folder.glob("*/__init__.py")}
    aside = {
        key: sys.modules.pop(key)
        for key in list(sys.modules)
        if key.split(".")[0] in beside and not _from_folder(sys.modules[key], folder)
    }
    sys.modules[module_name] = module  # dataclasses and pickling look the module up by name
    sys.path.insert(0, str(folder))
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as e:
        del sys.modules[module_name]
        raise usercode.UserCodeError(
            f"loss {shown}: importing {path} failed: {usercode.describe(e)}"
            f"{usercode.where(usercode.culprit(e) or _last_frame(e))}"
        ) from e
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(folder))
        for key, earlier in aside.items():
            sys.modules[key] = earlier
    return module


def _from_folder(module, folder: Path) -> bool:
    file = getattr(module, "__file__", None)
    return bool(file) and folder in Path(file).resolve().parents


def _last_frame(error: BaseException):
    frames = traceback.extract_tb(error.__traceback__)
    return frames[-1] if frames else None


def loss_files(name: str, base_dir: str | Path | None = None) -> dict[str, Path]:
    """The user's code behind loss ``name``: the file it names and the modules beside it that the file imports (and
    they import), found by reading their import statements, as {the file as the recipe names it: path}. A loss of
    minilm's library gives {}. An import hidden from the parser (``importlib.import_module(text)``) is not found."""
    if not isinstance(name, str) or name in LOSSES or ":" not in name:
        return {}
    where = name.rpartition(":")[0]
    if where.endswith(".py"):
        path = (Path(where) if base_dir is None else Path(base_dir) / where).resolve()
        shown = Path(where)
    else:
        module = sys.modules.get(where) or importlib.import_module(where)
        if where.split(".")[0] == "minilm" or not getattr(module, "__file__", None):
            return {}
        path = Path(module.__file__).resolve()
        shown = path
    found = {}
    for file in _sources(path):
        found[str(shown.parent / file.relative_to(path.parent))] = file
    return found


def _sources(path: Path) -> list[Path]:
    """``path`` and the files under its folder that it imports, transitively (``import x``, ``from x import y``,
    ``import pkg.sub``; relative imports inside a package)."""
    folder, found, todo = path.parent, [], [path]
    while todo:
        file = todo.pop()
        if file in found or not file.is_file() or folder not in file.parents:
            continue
        found.append(file)
        try:
            tree = ast.parse(file.read_bytes())
        except (SyntaxError, ValueError):  # loading it fails and says so; nothing more to find here
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                dotted = [(folder, alias.name) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = folder if not node.level else file.parents[node.level - 1]
                module = node.module or ""
                dotted = [(base, module)] if module else []
                dotted += [(base, f"{module}.{alias.name}" if module else alias.name) for alias in node.names]
            else:
                continue
            for base, name in dotted:
                parts = name.split(".")
                for i in range(1, len(parts) + 1):  # a package's __init__ runs on the way to its module
                    stem = base.joinpath(*parts[:i])
                    todo += [stem.with_suffix(".py"), stem / "__init__.py"]
    return sorted(found, key=lambda p: (p != path, p))


def code_fingerprint(loss: dict, base_dir: str | Path | None = None) -> dict[str, str]:
    """The sha256 of every file of the user's code a ``[loss]`` table names (its loss, and a layer loss's inner
    loss): what a run's record holds, so that a resume or a sweep rerun with changed code is refused."""
    names = [loss.get("name"), loss.get(INNER_KEY)]
    files = {}
    for name in names:
        files.update(loss_files(name, base_dir))
    return {shown: sha256_of(path) for shown, path in sorted(files.items())}


@dataclass(frozen=True)
class LossSpec:
    """A recipe's ``[loss]`` table resolved once: the loss its name refers to (and a layer loss's inner loss), the
    rows it consumes, and its settings. A run holds one; building, checking and describing the loss all start here."""

    name: str  # as the recipe gives it: a registry name or an import path
    function: Callable  # the loss it refers to: a function, or an nn.Module class
    needs: Needs  # the rows it consumes (a layer loss: its inner loss's, plus every layer)
    settings: dict = field(default_factory=dict)  # the table less ``name``
    base_dir: Path | None = None  # where a file path in ``name`` is found
    inner: Callable | None = None  # a layer loss's inner loss, resolved

    @classmethod
    def resolve(cls, name: str, settings: dict | None = None, base_dir: str | Path | None = None) -> LossSpec:
        function = resolve_loss(name, base_dir)
        declared, inner = needs_of(function), None
        inner_name = (settings or {}).get(INNER_KEY)
        if declared.layers and isinstance(inner_name, str) and inner_name:
            try:
                inner = resolve_loss(inner_name, base_dir)
                declared = losses.layered_needs(inner)
            except ValueError as e:
                raise ValueError(f"loss {name!r}: {INNER_KEY} {inner_name!r}: {e}") from None
        return cls(name, function, declared, dict(settings or {}), Path(base_dir) if base_dir else None, inner)

    def build(self, context: dict | None = None) -> Callable[..., Tensor]:
        return _build(self, context)

    def check(self, dry_run: bool = True) -> None:
        _check(self, dry_run)


def loss_needs(name: str, base_dir: str | Path | None = None, settings: dict | None = None) -> Needs:
    """What rows the loss ``name`` consumes; for a layer loss, those of the inner loss its ``settings`` name."""
    return LossSpec.resolve(name, settings, base_dir).needs


def make_inner_loss(spec: LossSpec, kwargs: dict, context: dict | None) -> dict:
    """A layer loss's settings with its inner loss built: ``loss`` (a name) and ``loss_settings`` become the bound
    inner loss. The inner loss must be a function: a module's parameters, hidden inside the wrapper, would be neither
    optimised nor checkpointed. The inner loss's rows were checked first (``LossSpec.resolve``)."""
    name, base_dir = spec.name, spec.base_dir
    inner, inner_settings = kwargs.pop(INNER_KEY, None), kwargs.pop(INNER_SETTINGS_KEY, None)
    if inner is None:
        if inner_settings is not None:
            raise ValueError(f"loss {name!r}: {INNER_SETTINGS_KEY} is set but {INNER_KEY} (the inner loss) is not")
        return kwargs
    if not isinstance(inner, str) or not inner:
        raise ValueError(
            f"loss {name!r}: {INNER_KEY} must name the inner loss (a registry name or an import path), got {inner!r}"
        )
    if inner_settings is not None and not isinstance(inner_settings, dict):
        raise ValueError(
            f"loss {name!r}: {INNER_SETTINGS_KEY} must be a table of the inner loss's settings, got {inner_settings!r}"
        )
    if is_module_loss(spec.inner):
        raise ValueError(
            f"loss {name!r}: inner loss {inner!r} has parameters (an nn.Module), which a layer loss "
            f"cannot train; use a function loss"
        )
    return {**kwargs, INNER_KEY: make_loss(inner, inner_settings or {}, base_dir, context)}


def is_module_loss(loss) -> bool:
    """A loss with parameters: an nn.Module class, built once per run."""
    return isinstance(loss, type) and issubclass(loss, nn.Module)


def loss_module_of(loss: Callable) -> nn.Module | None:
    """The nn.Module inside a built loss, or None (``inputs.module_of``)."""
    return module_of(loss)


def settable(loss: Callable) -> list[str]:
    """The loss's keyword settings: parameters with defaults (for a class, of __init__, less the CONTEXT names)."""
    params = inspect.signature(loss).parameters.values()
    return [
        p.name for p in params if p.default is not p.empty and p.kind is not p.VAR_KEYWORD and p.name not in CONTEXT
    ]


def make_loss(
    name: str, kwargs: dict | None = None, base_dir: str | Path | None = None, context: dict | None = None
) -> Callable[..., Tensor]:
    """The loss a recipe's ``[loss]`` table describes, settings bound; matryoshka_dims/_weights wrap it.

    A loss class is instantiated with the settings plus the ``context`` values its __init__ asks for (CONTEXT
    names: embedding_dim, num_labels); the result is the module, whose parameters the trainer optimises.
    """
    return LossSpec.resolve(name, kwargs, base_dir).build(context)


def check_loss_kwargs(name: str, kwargs: dict, dry_run: bool = True, base_dir: str | Path | None = None) -> None:
    """Validate a loss name and its keyword settings before any model loads; ValueError names the bad key.

    Keys are checked against the loss's signature; with dry_run the values are checked by running the loss once on a
    tiny random batch, so a bad distance name or a negative scale fails here, with the loss's own message.
    """
    LossSpec.resolve(name, kwargs, base_dir).check(dry_run)


def _build(spec: LossSpec, context: dict | None) -> Callable[..., Tensor]:
    name, found, declared = spec.name, spec.function, spec.needs
    kwargs = dict(spec.settings)
    _check(spec, dry_run=False)
    dims, weights = (kwargs.pop(k, None) for k in MATRYOSHKA_KEYS)
    for key in setting_keys(declared):  # its extensions': the loss gets what they add, not these
        kwargs.pop(key, None)
    kwargs.pop(PAIRS_KEY, None)  # the sampler's business
    gor = {GOR_KEYS[k]: kwargs.pop(k) for k in list(kwargs) if k in GOR_KEYS}
    if weights is not None and dims is None:
        raise ValueError("matryoshka_weights is set but matryoshka_dims is not")
    if needs_of(found).layers and not is_module_loss(found):
        kwargs = make_inner_loss(spec, kwargs, context)
    if is_module_loss(found):
        wanted = inspect.signature(found).parameters
        given = {k: v for k, v in (context or {}).items() if k in wanted}
        missing = [k for k in CONTEXT if k in wanted and k not in given and wanted[k].default is wanted[k].empty]
        if missing:
            raise ValueError(f"loss {name!r} needs {missing} from the run ({', '.join(CONTEXT[k] for k in missing)})")
        with usercode.blame(found, "when built (its __init__)"):
            loss = found(**kwargs, **given)
    else:
        loss = functools.partial(found, **kwargs)
        if needs_of(found).layers and INNER_KEY in kwargs:  # it consumes what its inner loss consumes
            loss.needs = losses.layered_needs(kwargs[INNER_KEY])
    loss = loss if dims is None else losses.matryoshka(loss, dims, weights)
    return losses.with_global_orthogonal_regularization(loss, **gor) if gor else loss


def _check(spec: LossSpec, dry_run: bool) -> None:
    name, kwargs, declared, found = spec.name, spec.settings, spec.needs, spec.function
    valid = settable(spec.function)
    if TEACHER_KEY in kwargs and declared.kind not in MODEL_ROLES:
        raise ValueError(teacher_refusal(name, declared))
    models = list(setting_keys(declared)) + ([PAIRS_KEY] if makes_pairs(declared) else [])
    if declared.layers:  # the inner loss takes matryoshka_dims in its own settings, not the wrapper
        extra = [INNER_SETTINGS_KEY] + models
        wrapping = [key for key in kwargs if key in MATRYOSHKA_KEYS or key in GOR_KEYS]
        if wrapping:
            raise ValueError(
                f"loss {name!r}: {', '.join(wrapping)} cannot wrap a layer loss (the earlier layers "
                f"would go untouched); put them in {INNER_SETTINGS_KEY}, the inner loss's settings"
                + (", or use matryoshka_2d" if any(k in MATRYOSHKA_KEYS for k in wrapping) else "")
            )
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
        raise ValueError(
            f"loss {name!r}: {PAIRS_KEY} must be an int >= 2 (one identical pair, then "
            f"{PAIRS_KEY} - 1 random pairs), got {ratio!r}"
        )
    dims = kwargs.get("matryoshka_dims")
    if declared.layers:  # matryoshka_2d's own widths, or the inner loss's
        inner_settings = kwargs.get(INNER_SETTINGS_KEY)
        dims = kwargs.get("dims") or (
            inner_settings.get("matryoshka_dims") if isinstance(inner_settings, dict) else None
        )
    width = max(dims) if isinstance(dims, (list, tuple)) and dims and all(isinstance(d, int) for d in dims) else 8
    width = min(width, 8192)  # a dry run, not an allocation test
    try:
        with usercode.blame(found, "on a tiny random batch (the check before any model loads)"):
            labels = {"num_labels": 2} if declared.target == "labels" else {}
            context = {"embedding_dim": width, **labels}  # as a run has
            bound = _build(spec, context)
            # a loss that projects the student to a teacher's width says which width its teacher rows have
            args, targets = dummy_inputs(declared, width, teacher_width=getattr(bound, "teacher_dim", width))
            for extension in candidates(declared):  # its own settings, and what it would add at a step
                extension.check_settings(kwargs)
                targets.update(extension.example_inputs(args))
            split_output(bound(*args, **targets))
    except (TypeError, ValueError) as e:
        if isinstance(e, usercode.UserCodeError):  # named already, with the user's line
            raise
        if str(e).startswith(f"loss {name!r}: "):  # make_loss named it already
            raise ValueError(str(e)) from e
        raise ValueError(f"loss {name!r}: {e}") from e


def teacher_refusal(name: str, declared: Needs) -> str:
    """Why loss ``name`` cannot take a teacher model: only a loss of kind teacher_embeddings takes one."""
    takers = ", ".join(sorted(n for n, loss in LOSSES.items() if needs_of(loss).kind in MODEL_ROLES))
    why = (
        " it takes the teacher's score of each candidate (a cross-encoder's), which a sentence encoder does not "
        "give: put the scores in a data column ([data] roles teacher)"
        if declared.kind == "teacher_scores"
        else " it takes no teacher"
    )
    return (
        f"loss {name!r}: {TEACHER_KEY} names a teacher model, whose embeddings only a loss of kind "
        f"'teacher_embeddings' takes ({takers}); loss {name!r} is of kind {declared.kind!r}, and{why}"
    )


def dummy_inputs(
    declared: Needs, width: int, rows: int = 4, teacher_width: int | None = None
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
