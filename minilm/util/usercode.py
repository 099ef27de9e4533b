"""A user's own code (a loss file a recipe names, and the modules beside it): errors in it are the user's, named.

``minilm/run/registry.py`` registers the folder of every loss file it loads (and of a user's importable loss module).
Whatever that code raises, at import, in ``__init__`` or in a step, ``SystemExit`` included, becomes one
``UserCodeError`` naming the loss as ``file.py:function``, when it happened (import, build, step N), the error, and
the line of the user's file it came from: the innermost frame of the traceback that lies in a registered folder.
Errors raised by minilm's own code are left alone (they are minilm's, or bad input minilm already names).
"""

from __future__ import annotations

import functools
import sys
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

MODULE_PREFIX = "minilm_user_loss_"  # the module name a loss file is loaded under (registry.resolve_loss)
_FOLDERS: set[Path] = set()  # resolved folders of the user's loss files and modules


class UserCodeError(Exception):
    """The user's loss code raised (or exited); the message names the loss, when, the error and where in the file.
    The command line ends with exit status 2 and this one line."""


class UserValueError(UserCodeError, ValueError):
    """A ValueError of the user's code (a loss refusing a setting), named; still a ValueError for those who catch one
    (a recipe names its file around it)."""


class UserTypeError(UserCodeError, TypeError):
    """A TypeError of the user's code, named; still a TypeError."""


def register(folder: str | Path) -> None:
    """Code under ``folder`` is the user's: an error raised there is named as theirs."""
    _FOLDERS.add(Path(folder).resolve())


def is_users(filename: str) -> bool:
    if not _FOLDERS or not filename or filename.startswith("<"):
        return False
    try:
        path = Path(filename).resolve()
    except OSError:
        return False
    return any(folder == path.parent or folder in path.parents for folder in _FOLDERS)


def culprit(error: BaseException) -> traceback.FrameSummary | None:
    """The innermost frame of ``error``'s traceback (or of the exceptions it was raised from) in the user's code."""
    seen = error
    while seen is not None:
        frames = [frame for frame in traceback.extract_tb(seen.__traceback__) if is_users(frame.filename)]
        if frames:
            return frames[-1]
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return None


def name_of(loss: Callable) -> str:
    """``file.py:function`` for a loss from a user's file (``file.py:Class`` for a loss class), ``module.function``
    otherwise; through functools.partial and wrappers that keep ``__wrapped__`` (matryoshka, gather)."""
    seen = loss
    while True:
        if isinstance(seen, functools.partial):
            seen = seen.func
        elif hasattr(seen, "__wrapped__"):
            seen = seen.__wrapped__
        else:
            break
    if not isinstance(seen, type) and not hasattr(seen, "__qualname__"):
        seen = type(seen)  # a built loss module: its class
    module_name = getattr(seen, "__module__", None) or ""
    qualname = getattr(seen, "__qualname__", type(seen).__name__)
    module = sys.modules.get(module_name)
    file = getattr(module, "__file__", None)
    if module_name.startswith(MODULE_PREFIX) and file:
        return f"{Path(file).name}:{qualname}"
    return f"{module_name}.{qualname}" if module_name else qualname


def describe(error: BaseException) -> str:
    """``Type: message`` on one line; ``sys.exit(code)`` for a SystemExit."""
    if isinstance(error, SystemExit):
        return f"it called sys.exit({error.code!r})"
    text = one_line(error)
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def one_line(error: BaseException) -> str:
    return "; ".join(part.strip() for part in str(error).splitlines() if part.strip())


def where(frame: traceback.FrameSummary | None) -> str:
    return f" (at {Path(frame.filename).name} line {frame.lineno}, in {frame.name})" if frame is not None else ""


Errors = tuple[type[BaseException], ...]


def users_error(
    error: BaseException, loss: str, when: str, always: Errors = (), never: Errors = ()
) -> UserCodeError | None:
    """The ``UserCodeError`` for ``error`` if the user's code raised it (or it is one of ``always``: a check of what
    the loss returned), else None: ``loss <loss> failed <when>: <error> (at file.py line N, in function)``. ``never``:
    errors that keep their meaning wherever they come from (a non-finite tensor is a diverged run)."""
    if isinstance(error, (KeyboardInterrupt, UserCodeError, *never)):
        return None
    frame = culprit(error)
    if frame is None and not isinstance(error, always):
        return None
    said = describe(error) if frame is not None else one_line(error)  # minilm's check of the output says "it ..."
    kind = UserValueError if isinstance(error, ValueError) else UserTypeError if isinstance(error, TypeError) else None
    return (kind or UserCodeError)(f"loss {loss} failed {when}: {said}{where(frame)}")


@contextmanager
def blame(loss: Callable | str, when: str, always: Errors = (), never: Errors = ()) -> Iterator[None]:
    """Run a block of code that calls the user's loss: an error raised in their code (SystemExit included), or one of
    ``always``, leaves as one ``UserCodeError`` naming the loss; minilm's own errors and ``never`` leave unchanged."""
    try:
        yield
    except (Exception, SystemExit) as e:
        named = users_error(e, loss if isinstance(loss, str) else name_of(loss), when, always, never)
        if named is None:
            raise
        raise named from e
