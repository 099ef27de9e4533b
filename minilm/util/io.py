"""Files in and out, without losing anything: every write lands beside its target and is renamed into place, and
every text or JSON file read is checked, with errors naming the file and line.

Writing: a file goes to a temporary name in the target's folder (unique to this process), is flushed to disk, then
renamed over the target, so a failure or a kill leaves either the old complete file or the new complete one. A
folder (a saved model, a checkpoint) is built the same way and swapped with the old one in a single rename
(``renameat2(RENAME_EXCHANGE)`` on Linux, ``renamex_np(RENAME_SWAP)`` on macOS) before the old one is removed.
Permissions follow the umask, as for any file the user creates. Leftover temporary names carry the writer's pid, so
a later run can tell a dead writer's leftovers from a live one's (``stale_temporaries``).
"""

from __future__ import annotations

import ctypes
import errno
import json
import math
import os
import re
import secrets
import shutil
import stat
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; outputs are then not protected against a concurrent second writer
    fcntl = None

TEMP_MARK = ".minilm-tmp-"
_TEMP = re.compile(r"^\..*\.minilm-tmp-(\d+)-[0-9a-f]+$")


class WriteError(OSError):
    """A write that failed; the message names the target and says it was left as it was."""

    def __init__(self, code: int, message: str, reason: str = ""):
        super().__init__(code, message)
        self.reason = reason or message

    def __str__(self) -> str:
        return self.args[1]


def write_failed(path: Path, e: OSError) -> WriteError:
    """The error for ``path`` (the target the user asked for, not a temporary inside it), keeping the cause."""
    # strerror alone: str(e) would name the temporary the error happened on, which the user never asked for
    reason = e.reason if isinstance(e, WriteError) else e.strerror or f"{e} (a short write: is the disk full?)"
    return WriteError(e.errno or errno.EIO, f"cannot write {path}: {reason}; what was at {path} is unchanged", reason)


def temp_path(target: Path) -> Path:
    """A fresh name beside ``target``: hidden, marked as minilm's, carrying this process's pid."""
    target = Path(target)
    return target.parent / f".{target.name}{TEMP_MARK}{os.getpid()}-{secrets.token_hex(4)}"


def stale_temporaries(directory: Path) -> list[Path]:
    """minilm temporaries anywhere under ``directory`` whose writing process is gone (a kill's leftovers)."""
    found = []
    for root, dirs, files in os.walk(directory):
        for name in dirs + files:
            match = _TEMP.match(name)
            if match and not _alive(int(match.group(1))):
                found.append(Path(root) / name)
        dirs[:] = [d for d in dirs if not _TEMP.match(d)]  # a stale folder is removed whole
    return found


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """A process that has exited but not been reaped (its parent killed, and an init that reaps late, as in some
    containers): it writes nothing more, so its temporaries are leftovers. Linux only; elsewhere False."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] == b"Z"
    except (OSError, IndexError):
        return False


# ------------------------------------------------------------------------------------------- writing files


@contextmanager
def replacing(path: str | Path) -> Iterator:
    """``with replacing(path) as f: f.write(...)``: a binary file object whose content becomes ``path`` only when
    the block ends without an error (flushed to disk first, so a full disk is reported before the rename)."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for any new file
    except OSError as e:
        raise write_failed(path, e) from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        _unlink(tmp)
        raise write_failed(path, e) from None
    except BaseException:
        _unlink(tmp)
        raise
    _fsync_dir(path.parent)


def write_bytes(path: str | Path, data: bytes) -> None:
    with replacing(path) as f:
        f.write(data)


def write_text(path: str | Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj) -> None:
    write_text(path, json.dumps(obj, indent=2) + "\n")


def append_line(path: str | Path, line: str) -> None:
    """Append one line in a single write: a kill can at worst leave that last line torn (``read_json_lines``
    drops it); lines already there are never rewritten."""
    path = Path(path)
    try:
        with open(path, "ab") as f:
            f.write(line.encode("utf-8") + b"\n")
    except OSError as e:
        raise WriteError(e.errno or errno.EIO, f"cannot append to {path}: {e.strerror or e}", str(e.strerror)) from None


def _unlink(path: Path) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)


def _fsync_dir(directory: Path) -> None:
    with suppress(OSError):  # not every platform can open a directory
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_tree(directory: Path) -> None:
    """Flush every file and folder under ``directory`` to disk."""
    for root, _, files in os.walk(directory):
        for name in files:
            fd = os.open(Path(root) / name, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(root))


# ------------------------------------------------------------------------------------------- writing folders


def _swap_function():
    """The platform's atomic swap of two paths, as f(a, b) -> 0 on success, or None if it has none."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None
    if sys.platform.startswith("linux") and hasattr(libc, "renameat2"):
        at_fdcwd, rename_exchange = -100, 2
        return lambda a, b: libc.renameat2(at_fdcwd, a, at_fdcwd, b, rename_exchange)
    if sys.platform == "darwin" and hasattr(libc, "renamex_np"):
        rename_swap = 2
        return lambda a, b: libc.renamex_np(a, b, rename_swap)
    return None


_SWAP = _swap_function()


def exchange(a: Path, b: Path) -> bool:
    """Swap the entries at ``a`` and ``b`` in one atomic step; False if the platform or file system cannot."""
    if _SWAP is None:
        return False
    if _SWAP(os.fsencode(a), os.fsencode(b)) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def put_in_place(tmp: Path, target: Path) -> None:
    """Move the complete folder ``tmp`` to ``target``, replacing whatever is there in one step, then remove the old."""
    if not os.path.lexists(target):
        os.rename(tmp, target)  # nothing to lose; an empty folder appearing meanwhile would be replaced, not merged
        return
    if exchange(tmp, target):
        remove_tree(tmp)  # tmp now holds the old content
        return
    # No atomic swap here: two renames. A kill between them leaves the old content at a hidden name beside target.
    old = temp_path(target)
    os.rename(target, old)
    os.rename(tmp, target)
    remove_tree(old)


@contextmanager
def building(target: str | Path) -> Iterator[Path]:
    """``with building(target) as tmp:`` fill the folder ``tmp``; on success it replaces ``target`` in one step (see
    put_in_place); on any error or interruption ``tmp`` is removed and ``target`` is untouched."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_path(target)
        os.mkdir(tmp, 0o777)  # the umask applies
    except OSError as e:
        raise write_failed(target, e) from None
    try:
        yield tmp
        fsync_tree(tmp)
        put_in_place(tmp, target)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_failed(target, e) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(target.parent)


def remove_tree(path: Path) -> None:
    """Remove a folder (or file) so that a kill part-way leaves a hidden temporary name, never a half-deleted
    ``path``."""
    path = Path(path)
    doomed = path if _TEMP.match(path.name) else temp_path(path)
    if doomed != path:
        os.rename(path, doomed)
    if doomed.is_dir() and not doomed.is_symlink():
        shutil.rmtree(doomed, ignore_errors=True)
    else:
        _unlink(doomed)


def foreign_entries(directory: Path, allowed: set[str]) -> list[str]:
    """Paths under ``directory`` (relative, sorted) that are not in ``allowed`` and lead to nothing in it: what a
    folder holds beyond what minilm itself writes there."""
    directory = Path(directory)
    parents = {str(p) for name in allowed for p in Path(name).parents} | set(allowed)
    found = []
    for root, dirs, files in os.walk(directory):
        rel_root = Path(root).relative_to(directory)
        for name in sorted(dirs):
            if str(rel_root / name) not in parents:
                found.append(str(rel_root / name) + "/")
        dirs[:] = [d for d in dirs if str(rel_root / d) in parents]
        found += [str(rel_root / name) for name in sorted(files) if str(rel_root / name) not in allowed]
    return sorted(found)


def check_replaceable(path: Path, allowed: set[str], overwrite: bool, what: str) -> None:
    """Refuse to write the folder ``path`` over something minilm did not write: a file, or a folder holding more
    than ``allowed`` (unless ``overwrite``); and always refuse the working directory or a folder around it."""
    path = Path(path)
    try:
        here, there = Path.cwd().resolve(), path.resolve()
    except OSError:  # no working directory any more: nothing to protect
        here = there = None
    if here is not None and (here == there or there in here.parents):
        raise FileExistsError(
            f"{path} is the working directory or holds it; {what} goes in a folder of its own, e.g. {path / 'model'}"
        )
    if overwrite or not os.path.lexists(path):
        return
    if not path.is_dir() or path.is_symlink():
        raise FileExistsError(
            f"{path} exists and is not a folder; {what} is a folder. Choose another path, or pass "
            f"overwrite=True to replace it"
        )
    foreign = foreign_entries(path, allowed)
    if foreign:
        listed = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise FileExistsError(
            f"{path} holds files minilm did not write ({listed}); refusing to replace it. Choose "
            f"another path, or pass overwrite=True to replace it"
        )


# ------------------------------------------------------------------------------------------- one writer


class Lock:
    """An ``flock`` this process holds on a lock file until ``release()`` (or the end of a ``with`` block). The kernel
    drops it when the process ends, however it ends, so a killed writer leaves no stale lock."""

    def __init__(self, path: Path, fd: int | None, remove: bool):
        self.path, self.fd, self.remove = path, fd, remove

    def release(self) -> None:
        if self.fd is None:
            return
        if self.remove:  # unlinked while still locked: a process that opened it meanwhile sees the swap and retries
            _unlink(self.path)
        os.close(self.fd)
        self.fd = None

    def __enter__(self) -> Lock:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def lock(path: str | Path, busy: Callable[[str], Exception], remove: bool = False) -> Lock:
    """Hold the lock file ``path`` (created if missing), or raise ``busy(pid of the holder)`` at once if another
    process holds it. ``remove``: the file is deleted on release (an output file's lock leaves nothing behind);
    otherwise it stays (a run directory's ``.lock``)."""
    path = Path(path)
    if fcntl is None:
        return Lock(path, None, False)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise busy(holder) from None
        try:
            here, held = os.stat(path), os.fstat(fd)
            current = (here.st_dev, here.st_ino) == (held.st_dev, held.st_ino)
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)  # the previous holder removed the file we opened: lock the one now at ``path``
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return Lock(path, fd, remove)


# ------------------------------------------------------------------------------------------- reading

# What a configuration file may weigh: far above any real one (a large tokenizer.json is ~20 MB), far below memory.
SMALL_FILE_LIMIT = 256 << 20


def open_regular(path: str | Path, what: str = "", limit: int | None = None) -> tuple[int, int]:
    """(fd, size) of ``path`` opened for reading, refused naming it unless it is a regular file of at most ``limit``
    bytes: a FIFO would block (so it is opened non-blocking, then refused), /dev/zero would never end."""
    label = f"{what} {path}" if what else str(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except IsADirectoryError:
        raise IsADirectoryError(errno.EISDIR, f"{label} is a directory, not a file") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, f"{label} is a directory, not a file")
        if not stat.S_ISREG(info.st_mode):
            kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device" if stat.S_ISCHR(info.st_mode) else "special"
            raise ValueError(f"{label} is not a regular file ({kind}); refusing to read it")
        if limit is not None and info.st_size > limit:
            raise ValueError(f"{label} is {info.st_size:,} bytes, more than the {limit:,} such a file may have")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, info.st_size


def read_bytes(path: str | Path, what: str = "", limit: int | None = None) -> bytes:
    """The bytes of the regular file ``path`` (see open_regular); one growing past ``limit`` while read is refused."""
    fd, _ = open_regular(path, what, limit)
    with os.fdopen(fd, "rb") as f:
        data = f.read(-1 if limit is None else limit + 1)
    if limit is not None and len(data) > limit:
        raise ValueError(f"{f'{what} ' if what else ''}{path} grew past {limit:,} bytes while being read")
    return data


def decode_utf8(data: bytes, path) -> str:
    """``data`` as UTF-8 (a leading BOM dropped), or a ValueError naming file, line and byte column."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise ValueError(
            f"{path}:{line}: not UTF-8 text (byte {data[e.start : e.start + 1]!r} at column {column}); "
            f"save the file as UTF-8"
        ) from None


def read_text(path: str | Path, limit: int | None = None) -> str:
    return decode_utf8(read_bytes(path, limit=limit), path)


def split_lines(text: str) -> list[str]:
    """Lines split on ``\\n`` and ``\\r\\n`` only, not on the form feeds, U+2028 and others that str.splitlines takes;
    a final line ending does not start another line."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def read_json(path: str | Path, kind: type = dict, error: type[Exception] = ValueError):
    """The JSON value in ``path``, which must be of ``kind`` (dict or list); ``error`` names the file otherwise. A
    path that is not a regular file of at most SMALL_FILE_LIMIT bytes is refused (``error`` too), never read."""
    try:
        value = json.loads(read_text(path, SMALL_FILE_LIMIT))
    except json.JSONDecodeError as e:
        raise error(f"{path}:{e.lineno}: not valid JSON ({e.msg} at column {e.colno})") from None
    except ValueError as e:
        raise error(str(e)) from None
    if not isinstance(value, kind):
        expected = {dict: "a JSON object {...}", list: "a JSON list [...]"}.get(kind, kind.__name__)
        raise error(f"{path}: expected {expected}, found {type(value).__name__}")
    return value


def read_json_lines(path: str | Path) -> tuple[list[dict], bool]:
    """The records of a JSON Lines file minilm wrote, and whether a torn last line (a write cut short) was dropped.
    Any other line that is not a JSON object is an error naming file and line."""
    lines = split_lines(read_text(path))
    records, torn = [], False
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not an object")
        except ValueError:
            if number == len(lines):
                torn = True
                break
            raise ValueError(f"{path}:{number}: not a JSON object: {line[:60]!r}") from None
        records.append(record)
    return records, torn


# ------------------------------------------------------------------------------------------- JSON out


def finite_json(record: dict) -> dict:
    """``record`` with every NaN or infinity replaced by null, and a ``nonfinite`` entry saying what each was
    (key path -> "nan" / "inf" / "-inf"), so the line stays valid JSON and the reason is kept."""
    reasons = {}

    def clean(value, where):
        if isinstance(value, float) and not math.isfinite(value):
            reasons[where] = str(value)
            return None
        if isinstance(value, dict):
            return {k: clean(v, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return value

    out = clean(record, "")
    if reasons:
        out["nonfinite"] = reasons
    return out


def json_line(record: dict) -> str:
    """One JSON Lines record: valid JSON always (see finite_json); anything else is stringified."""
    return json.dumps(finite_json(record), allow_nan=False, default=str)
