"""Reading training data: CSV/TSV/JSONL files into named columns, then into the roles a loss needs.

Every bad row is an error naming file, line and reason; nothing is silently skipped, because a quietly
dropped row changes batches, and batches change the numbers.
"""

import csv
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from minilm.losses.inputs import KINDS

__all__ = ["Dataset", "read_rows", "to_roles", "role_columns", "read_sts"]

_INT = re.compile(r"[+-]?\d+")


@dataclass
class Dataset:
    """Columns of equal length, plus where each row came from (for error messages)."""

    path: str
    columns: dict[str, list]  # name -> values: str, or int/float when a JSONL file holds numbers
    lines: list[int]  # 1-based line of `path` on which each row starts

    def __len__(self) -> int:
        return len(self.lines)

    def where(self, i: int) -> str:
        return f"{self.path}:{self.lines[i]}"


def _fail(path, line: int, reason: str) -> ValueError:
    return ValueError(f"{path}:{line}: {reason}")


def _is_empty(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _check_cells(path, line: int, names: list[str], values: list) -> None:
    for name, value in zip(names, values):
        if _is_empty(value):
            raise _fail(path, line, f"empty cell in column {name!r}")
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise _fail(path, line, f"column {name!r}: expected a string or number, found {type(value).__name__}")


def _drop_trailing_blank(rows: list) -> list:
    while rows and not rows[-1][1]:
        rows.pop()  # blank lines after the last row are formatting, not data; blank lines inside are errors
    return rows


def _read_delimited(path: Path, columns, has_header, delimiter: str, quote: bool) -> Dataset:
    rows = []  # (start line, cells)
    with open(path, encoding="utf-8-sig", newline="") as f:  # -sig: a BOM must not end up in the first header
        reader = csv.reader(f, delimiter=delimiter, quoting=csv.QUOTE_MINIMAL if quote else csv.QUOTE_NONE, strict=True)
        start = 1
        try:
            for cells in reader:
                rows.append((start, cells))
                start = reader.line_num + 1  # a quoted cell may span lines
        except csv.Error as e:
            raise _fail(path, start, f"cannot parse row ({e})") from None
    rows = _drop_trailing_blank(rows)
    if not rows:
        raise ValueError(f"{path}: file has no rows")
    if has_header is None:  # header assumed unless names were given and the first row is not made of them
        has_header = columns is None or all(c in rows[0][1] for c in columns)
    if has_header:
        header = rows.pop(0)[1]
        if any(not h.strip() for h in header) or len(set(header)) != len(header):
            raise _fail(path, 1, f"header must hold distinct non-empty names, found {header}")
        names = columns or header
        missing = [c for c in names if c not in header]
        if missing:
            raise ValueError(f"{path}: columns {missing} not in header {header}")
        pick, width = [header.index(c) for c in names], len(header)
    elif columns is None:
        raise ValueError(f"columns is required when {path} has no header")
    else:
        names, pick, width = list(columns), list(range(len(columns))), len(columns)
    out = {n: [] for n in names}
    for line, cells in rows:
        if len(cells) != width:
            raise _fail(path, line, f"expected {width} columns, found {len(cells)}")
        values = [cells[i] for i in pick]
        _check_cells(path, line, names, values)
        for n, v in zip(names, values):
            out[n].append(v)
    return Dataset(str(path), out, [line for line, _ in rows])


def _read_jsonl(path: Path, columns) -> Dataset:
    with open(path, encoding="utf-8-sig") as f:
        rows = _drop_trailing_blank([(i, raw.strip()) for i, raw in enumerate(f, 1)])
    if not rows:
        raise ValueError(f"{path}: file has no rows")
    exact = columns is None  # without `columns`, every object must have exactly the first object's keys
    names = list(columns) if columns else None
    out = {n: [] for n in names} if names else None
    lines = []
    for line, raw in rows:
        if not raw:
            raise _fail(path, line, "blank line")
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            raise _fail(path, line, f"invalid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(obj, dict):
            raise _fail(path, line, f"expected a JSON object, found {type(obj).__name__}")
        if names is None:
            names = list(obj)
            out = {n: [] for n in names}
        if (set(obj) != set(names)) if exact else any(n not in obj for n in names):
            raise _fail(path, line, f"expected keys {names}, found {list(obj)}")
        values = [obj[n] for n in names]
        _check_cells(path, line, names, values)
        for n, v in zip(names, values):
            out[n].append(v)
        lines.append(line)
    return Dataset(str(path), out, lines)


def read_rows(path: str | Path, columns: list[str] | None = None, has_header: bool | None = None,
              delimiter: str | None = None, quote: bool | None = None) -> Dataset:
    """Read a .csv / .tsv / .jsonl file into named columns.

    columns: names to keep (a header file: selected by name; no header: names the cells in order; JSONL: keys).
    has_header: None guesses True unless `columns` is given and the first row does not contain them all.
    delimiter: defaults by suffix: "," for .csv, tab for .tsv; a .jsonl/.json file is one JSON object per line.
    quote: csv quoting; defaults on for commas and off for tabs, because TSV corpora (STS, NLI) hold raw quotes.
    Row count must match the header (or `columns`), and empty cells are errors naming file and line.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path {str(path)!r} is not a file")
    if columns is not None and (not columns or not all(isinstance(c, str) and c for c in columns)
                                or len(set(columns)) != len(columns)):
        raise ValueError(f"columns must be distinct non-empty strings, got {columns!r}")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".json") and delimiter is None:
        return _read_jsonl(path, columns)
    if delimiter is None:
        delimiter = {".csv": ",", ".tsv": "\t"}.get(suffix)
        if delimiter is None:
            raise ValueError(f"delimiter is required for a {suffix or 'suffix-less'} file ({path})")
    if len(delimiter) != 1:
        raise ValueError(f"delimiter must be one character, got {delimiter!r}")
    return _read_delimited(path, columns, has_header, delimiter, delimiter != "\t" if quote is None else quote)


def _column(ds: Dataset, name: str) -> list:
    if not isinstance(name, str) or name not in ds.columns:
        raise ValueError(f"column {name!r} not in {ds.path} (has {list(ds.columns)})")
    return ds.columns[name]


def _texts(ds: Dataset, name: str) -> list[str]:
    values = _column(ds, name)
    for i, v in enumerate(values):
        if not isinstance(v, str):
            raise ValueError(f"{ds.where(i)}: column {name!r}: expected text, found {type(v).__name__} {v!r}")
    return list(values)


def _scores(ds: Dataset, name: str) -> list[float]:
    out = []
    for i, v in enumerate(_column(ds, name)):
        try:
            x = float(v)
        except ValueError:
            x = math.nan
        if not math.isfinite(x) or isinstance(v, bool):
            raise ValueError(f"{ds.where(i)}: column {name!r}: score must be a finite number, found {v!r}")
        out.append(x)
    return out


def _labels(ds: Dataset, name: str) -> list[int]:
    """Integer labels as given; otherwise string labels numbered in sorted order (independent of row order)."""
    values = _column(ds, name)
    for i, v in enumerate(values):
        if isinstance(v, (bool, float)):
            raise ValueError(f"{ds.where(i)}: column {name!r}: label must be an int or a string, found {v!r}")
    if all(isinstance(v, int) or _INT.fullmatch(v.strip()) for v in values):
        return [int(v) for v in values]
    ids = {s: k for k, s in enumerate(sorted({str(v) for v in values}))}
    return [ids[str(v)] for v in values]


def to_roles(ds: Dataset, roles: dict[str, str | list[str]], kind: str):
    """Map columns to what a loss needs.

    kind "columns": roles anchor, positive[, negative: name or list] -> [anchors, positives, *negatives]
    kind "labels":  roles text, label -> (texts, int labels)
    kind "scores":  roles a, b, score -> (texts_a, texts_b, float scores)
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    required, optional = KINDS[kind]
    unknown = [r for r in roles if r not in required + optional]
    missing = [r for r in required if r not in roles]
    if unknown or missing:
        raise ValueError(f"roles for kind {kind!r} need {list(required)} (optional {list(optional)}); "
                         f"missing {missing}, unknown {unknown}")
    names = role_columns(roles, kind)
    if kind == "columns":
        return [_texts(ds, name) for name in names]
    if kind == "labels":
        return _texts(ds, names[0]), _labels(ds, names[1])
    return _texts(ds, names[0]), _texts(ds, names[1]), _scores(ds, names[2])


def role_columns(roles: dict[str, str | list[str]], kind: str) -> list[str]:
    """The file's column names behind a row of ``kind``, in the order ``to_roles`` returns the columns."""
    if kind == "columns":
        negatives = roles.get("negative", [])
        negatives = [negatives] if isinstance(negatives, str) else list(negatives)
        return [roles["anchor"], roles["positive"], *negatives]
    if kind == "labels":
        return [roles["text"], roles["label"]]
    return [roles["a"], roles["b"], roles["score"]]


def read_sts(path: str | Path) -> tuple[list[str], list[str], list[float]]:
    """Read an STS benchmark file: tab-separated genre, file, year, id, score (0-5), sentence1, sentence2.

    Some rows carry two extra trailing columns (the source of each sentence); only those are ignored.
    Quoting is off: sentences contain bare quote characters. Scores are returned on their 0-5 scale.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path {str(path)!r} is not a file")
    s1, s2, scores = [], [], []
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)  # one row per line: no quoted newlines
        rows = _drop_trailing_blank(list(enumerate(reader, 1)))
    for line, cells in rows:
        if len(cells) not in (7, 9):
            raise _fail(path, line, f"expected 7 columns (or 9 with sources), found {len(cells)}")
        try:
            score = float(cells[4])
        except ValueError:
            raise _fail(path, line, f"score must be a number, found {cells[4]!r}") from None
        if not 0 <= score <= 5:
            raise _fail(path, line, f"score must be in [0, 5], found {score}")
        if not cells[5].strip() or not cells[6].strip():
            raise _fail(path, line, "empty sentence")
        s1.append(cells[5])
        s2.append(cells[6])
        scores.append(score)
    if not scores:
        raise ValueError(f"{path}: file has no rows")
    return s1, s2, scores
