"""Reading training data: CSV/TSV/JSONL files into named columns, then into the roles a loss needs.

Every bad row is an error naming file, line and reason; nothing is silently skipped, because a quietly
dropped row changes batches, and batches change the numbers.
"""

import csv
import json
import math
import re
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

from minilm.losses.inputs import KINDS, roles_of
from minilm.util.io import read_text, split_lines

__all__ = ["Dataset", "read_rows", "to_roles", "role_columns", "read_sts"]

_INT = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


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


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_cells(path, line: int, names: list[str], values: list) -> None:
    for name, value in zip(names, values):
        if _is_empty(value) or value == []:
            raise _fail(path, line, f"empty cell in column {name!r}")
        if isinstance(value, list) and (all(_is_number(v) for v in value) or all(isinstance(v, str) for v in value)):
            continue  # a JSONL array of numbers (a teacher's scores or embedding) or of ids (a query's relevant ones)
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise _fail(
                path,
                line,
                f"column {name!r}: expected a string or number (or a list of numbers or of strings), found "
                f"{type(value).__name__}",
            )


def _drop_trailing_blank(rows: list) -> list:
    while rows and not rows[-1][1]:
        rows.pop()  # blank lines after the last row are formatting, not data; blank lines inside are errors
    return rows


def _read_delimited(path: Path, columns, has_header, delimiter: str, quote: bool) -> Dataset:
    rows = []  # (start line, cells)
    text = read_text(path)  # a BOM must not end up in the first header; bad bytes are named by line
    reader = csv.reader(
        StringIO(text, newline=""),
        delimiter=delimiter,
        quoting=csv.QUOTE_MINIMAL if quote else csv.QUOTE_NONE,
        strict=True,
    )
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
        if not rows:
            raise ValueError(f"{path}: has a header row but no data rows")
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
    lines = split_lines(read_text(path))  # on \n only: a JSON string may hold U+2028 and other line breaks
    rows = _drop_trailing_blank([(i, raw.strip()) for i, raw in enumerate(lines, 1)])
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
        if not obj:
            raise _fail(path, line, "an empty JSON object {} has no columns")
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


def read_rows(
    path: str | Path,
    columns: list[str] | None = None,
    has_header: bool | None = None,
    delimiter: str | None = None,
    quote: bool | None = None,
) -> Dataset:
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
    if columns is not None and (
        not columns or not all(isinstance(c, str) and c for c in columns) or len(set(columns)) != len(columns)
    ):
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
        except (TypeError, ValueError):  # TypeError: a list
            x = math.nan
        if not math.isfinite(x) or isinstance(v, bool):
            raise ValueError(f"{ds.where(i)}: column {name!r}: score must be a finite number, found {v!r}")
        out.append(x)
    return out


def _labels(ds: Dataset, name: str) -> list[int]:
    """Integer labels as given; otherwise string labels numbered in sorted order (independent of row order)."""
    values = _column(ds, name)
    for i, v in enumerate(values):
        if isinstance(v, (bool, float, list)):
            raise ValueError(f"{ds.where(i)}: column {name!r}: label must be an int or a string, found {v!r}")
    if all(isinstance(v, int) or _INT.fullmatch(v.strip()) for v in values):
        return [int(v) for v in values]
    _check_one_spelling(ds, name, values)
    ids = {s: k for k, s in enumerate(sorted({str(v) for v in values}))}
    return [ids[str(v)] for v in values]


def _vectors(ds: Dataset, names: str | list[str]) -> list[list[float]]:
    """Per row, the numbers of the named columns in order (each cell a number or a JSONL list of numbers), all rows
    of one length: a teacher's scores (one per candidate) or its embedding."""
    names = [names] if isinstance(names, str) else list(names)
    columns = [_column(ds, n) for n in names]
    out = []
    for i, cells in enumerate(zip(*columns)):
        row = []
        for name, cell in zip(names, cells):
            values = cell if isinstance(cell, list) else [cell]
            for v in values:
                try:
                    x = float(v)
                except (TypeError, ValueError):
                    x = math.nan
                if not math.isfinite(x) or isinstance(v, bool):
                    raise ValueError(
                        f"{ds.where(i)}: column {name!r}: teacher values must be finite numbers, found {v!r}"
                    )
                row.append(x)
        if out and len(row) != len(out[0]):
            raise ValueError(
                f"{ds.where(i)}: columns {names}: {len(row)} teacher values, but the first row has {len(out[0])}"
            )
        out.append(row)
    return out


def _text_columns(ds: Dataset, names: str | list[str]) -> list[list[str]]:
    return [_texts(ds, n) for n in ([names] if isinstance(names, str) else list(names))]


def _check_one_spelling(ds: Dataset, name: str, values: list) -> None:
    """Text labels are classes by their spelling, so one number written two ways ("1" and "1.0") would silently be
    two classes: refused, naming both lines."""
    first = {}  # numeric value -> (row, spelling)
    for i, v in enumerate(values):
        text = str(v).strip()
        if not _NUMBER.fullmatch(text):
            continue
        seen = first.setdefault(float(text), (i, text))
        if seen[1] != text:
            raise ValueError(
                f"{ds.where(i)}: column {name!r}: label {text!r} is the number written {seen[1]!r} on "
                f"line {ds.lines[seen[0]]}; write each label one way, or they count as two classes"
            )


def to_roles(
    ds: Dataset, roles: dict[str, str | list[str]], kind: str, teacher_model: bool = False, model_copy: bool = False
):
    """Map columns to what a loss needs.

    kind "columns": roles anchor, positive[, negative: name or list] -> [anchors, positives, *negatives]
    kind "labels":  roles text, label -> (texts, int labels)
    kind "scores":  roles a, b, score -> (texts_a, texts_b, float scores)
    kind "pair_labels": roles a, b, label -> (texts_a, texts_b, int labels)
    kind "teacher_scores": roles anchor, positive[, negative], teacher (name or list) -> [anchors, positives,
        *negatives, teacher rows]: one teacher score per candidate (or per negative: margins), per row
    kind "teacher_embeddings": roles text (name or list), teacher (name or list) -> [*texts, teacher rows]; with
        ``teacher_model`` (a teacher model named in the recipe embeds the texts): role text only -> [*texts]
    with ``model_copy`` (a loss comparing the model with a trained copy), whatever the kind: role text -> [texts]
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {list(KINDS)}, got {kind!r}")
    required, optional = roles_of(kind, teacher_model, model_copy)
    unknown = [r for r in roles if r not in required + optional]
    missing = [r for r in required if r not in roles]
    if unknown or missing:
        raise ValueError(
            f"roles for kind {kind!r} need {list(required)} (optional {list(optional)}); "
            f"missing {missing}, unknown {unknown}"
        )
    if model_copy:
        return [_texts(ds, roles["text"])]
    if kind == "columns":
        negatives = roles.get("negative", [])
        negatives = [negatives] if isinstance(negatives, str) else list(negatives)
        return [_texts(ds, roles["anchor"]), _texts(ds, roles["positive"])] + [_texts(ds, n) for n in negatives]
    if kind == "labels":
        return _texts(ds, roles["text"]), _labels(ds, roles["label"])
    if kind == "pair_labels":
        return _texts(ds, roles["a"]), _texts(ds, roles["b"]), _labels(ds, roles["label"])
    if kind == "teacher_scores":
        texts = _text_columns(ds, [roles["anchor"], roles["positive"]]) + _text_columns(ds, roles.get("negative", []))
        return texts + [_vectors(ds, roles["teacher"])]
    if kind == "teacher_embeddings":
        texts = _text_columns(ds, roles["text"])
        return texts if teacher_model else texts + [_vectors(ds, roles["teacher"])]
    return _texts(ds, roles["a"]), _texts(ds, roles["b"]), _scores(ds, roles["score"])


def role_columns(
    roles: dict[str, str | list[str]], kind: str, teacher_model: bool = False, model_copy: bool = False
) -> list[str]:
    """The file's column names behind each value ``to_roles`` returns, in its order (a teacher given as several
    columns is one value: its names joined)."""

    def names(role: str) -> list[str]:
        value = roles.get(role, [])
        return [value] if isinstance(value, str) else list(value)

    order = (
        {
            "columns": ["anchor", "positive", "negative"],
            "labels": ["text", "label"],
            "pair_labels": ["a", "b", "label"],
            "teacher_scores": ["anchor", "positive", "negative"],
            "teacher_embeddings": ["text"],
            "scores": ["a", "b", "score"],
        }[kind]
        if not model_copy
        else ["text"]
    )
    columns = [name for role in order for name in names(role)]
    return columns + ([", ".join(names("teacher"))] if kind.startswith("teacher_") and not teacher_model else [])


# The STS benchmark's two layouts, by the number of tab-separated cells (the main files and the companion files),
# -> the cells' names; a row may carry two more trailing cells (the source of each sentence), which are ignored.
STS_LAYOUTS = {
    7: ("genre", "file", "year", "id", "score", "sentence1", "sentence2"),
    6: ("file", "year", "id", "score", "sentence1", "sentence2"),
}


def _sts_layout(path, line: int, count: int) -> int:
    """The layout (its cell count without sources) of a row of ``count`` cells."""
    for width in STS_LAYOUTS:
        if count in (width, width + 2):
            return width
    raise _fail(
        path,
        line,
        f"expected the STS layout of 7 cells (genre, file, year, id, score, sentence1, sentence2; 9 with the "
        f"sentences' sources) or the companion files' 6 (without genre; 8 with sources), found {count}",
    )


def read_sts(path: str | Path) -> tuple[list[str], list[str], list[float]]:
    """Read an STS benchmark file: tab-separated genre, file, year, id, score (0-5), sentence1, sentence2, or, in the
    companion files, the same without genre (``STS_LAYOUTS``).

    Some rows carry two extra trailing columns (the source of each sentence); only those are ignored. One file holds
    one layout: a row of the other is an error naming its line (a shifted score column would otherwise be read).
    Quoting is off: sentences contain bare quote characters. Scores are returned on their 0-5 scale.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path {str(path)!r} is not a file")
    s1, s2, scores = [], [], []
    reader = csv.reader(StringIO(read_text(path), newline=""), delimiter="\t", quoting=csv.QUOTE_NONE)  # no quotes
    rows = _drop_trailing_blank(list(enumerate(reader, 1)))
    layout = first_line = None
    for line, cells in rows:
        width = _sts_layout(path, line, len(cells))
        if layout is None:
            layout, first_line = width, line
        elif width != layout:
            raise _fail(
                path,
                line,
                f"{len(cells)} cells ({'with' if width == 7 else 'without'} genre), but line {first_line} has the "
                f"{layout}-cell layout ({'with' if layout == 7 else 'without'} genre): one file holds one layout",
            )
        names = STS_LAYOUTS[width]
        score_cell, first, second = (cells[names.index(n)] for n in ("score", "sentence1", "sentence2"))
        try:
            score = float(score_cell)
        except ValueError:
            raise _fail(path, line, f"score must be a number, found {score_cell!r}") from None
        if not 0 <= score <= 5:
            raise _fail(path, line, f"score must be in [0, 5], found {score}")
        if not first.strip() or not second.strip():
            raise _fail(path, line, "empty sentence")
        s1.append(first)
        s2.append(second)
        scores.append(score)
    if not scores:
        raise ValueError(f"{path}: file has no rows")
    return s1, s2, scores


STS_COLUMNS = ("sentence1", "sentence2", "score")  # what read_roles gives of an STS file, as the card names them


def read_roles(
    path: str,
    fmt: str,
    roles: dict,
    kind: str,
    min_score: float = 4.0,
    header: bool = True,
    columns: list | None = None,
    teacher_model: bool = False,
    model_copy: bool = False,
):
    """What a loss or evaluator of ``kind`` needs from a file (see ``data.to_roles``)."""
    if fmt == "sts":
        s1, s2, scores = read_sts(path)
        if kind == "scores":
            return s1, s2, [s / 5.0 for s in scores]  # 0-5 gold rescaled to 0-1, as sentence-transformers' examples do
        if kind == "columns":
            keep = [i for i, s in enumerate(scores) if s >= min_score]
            return [[s1[i] for i in keep], [s2[i] for i in keep]]
        raise ValueError(f"{path}: an STS file gives pairs or scores, not labels")
    return to_roles(read_rows(path, columns=columns or None, has_header=header), roles, kind, teacher_model, model_copy)
