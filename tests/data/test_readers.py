"""Reading CSV/TSV/JSONL into roles, row-level errors naming file and line, and the STS benchmark reader."""

import json
import re
from pathlib import Path

import pytest

from minilm.data.readers import Dataset, read_rows, read_sts, to_roles


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_header_quotes_and_unicode(tmp_path):
    path = _write(
        tmp_path,
        "t.csv",
        "anchor,positive,negative\n"
        '"a, with comma",b,c\n'
        '"multi\nline ""quoted""",고양이가 앉아 있다,猫が座っている\n'
        "x,y,z\n",
    )
    ds = read_rows(path)
    assert list(ds.columns) == ["anchor", "positive", "negative"] and len(ds) == 3
    assert ds.lines == [2, 3, 5]  # a quoted cell spanning lines moves later rows down
    cols = to_roles(ds, {"anchor": "anchor", "positive": "positive", "negative": "negative"}, "columns")
    assert cols == [
        ["a, with comma", 'multi\nline "quoted"', "x"],
        ["b", "고양이가 앉아 있다", "y"],
        ["c", "猫が座っている", "z"],
    ]
    # selecting and reordering columns by header name; negatives may be a list
    ds2 = read_rows(path, columns=["positive", "anchor"])
    assert list(ds2.columns) == ["positive", "anchor"] and ds2.columns["anchor"][2] == "x"
    assert (
        to_roles(ds, {"anchor": "anchor", "positive": "positive", "negative": ["negative", "anchor"]}, "columns")[3]
        == cols[0]
    )


def test_csv_without_header_and_bom(tmp_path):
    path = _write(tmp_path, "t.csv", "\ufeffhello,world\nfoo,bar\n")
    ds = read_rows(path, columns=["a", "b"])  # first row is not the names -> no header guessed
    assert ds.columns == {"a": ["hello", "foo"], "b": ["world", "bar"]} and ds.lines == [1, 2]
    assert read_rows(path, columns=["hello", "world"]).columns == {"hello": ["foo"], "world": ["bar"]}
    assert len(read_rows(path, columns=["hello", "world"], has_header=False)) == 2
    with pytest.raises(ValueError, match="columns is required"):
        read_rows(path, has_header=False)


def test_tsv_labels_and_scores(tmp_path):
    path = _write(tmp_path, "t.tsv", 'text\tlabel\tscore\nsay "hi\tdog\t0.5\nb\tcat\t1\nc\tdog\t2e-1\n')
    ds = read_rows(path)  # tabs: quoting off, so the lone quote is kept as text
    texts, labels = to_roles(ds, {"text": "text", "label": "label"}, "labels")
    assert texts == ['say "hi', "b", "c"] and labels == [1, 0, 1]  # sorted names: cat=0, dog=1
    a, b, scores = to_roles(ds, {"a": "text", "b": "label", "score": "score"}, "scores")
    assert scores == [0.5, 1.0, 0.2] and b == ["dog", "cat", "dog"]
    int_labels = _write(tmp_path, "i.tsv", "t\tl\nx\t3\ny\t-1\n")
    assert to_roles(read_rows(int_labels), {"text": "t", "label": "l"}, "labels")[1] == [3, -1]


def test_jsonl(tmp_path):
    rows = [{"q": "고양이", "p": "猫", "y": 2, "s": 0.25}, {"q": "b", "p": "c", "y": 7, "s": 1}]
    path = _write(tmp_path, "t.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows) + "\n")
    ds = read_rows(path)
    assert ds.columns["q"] == ["고양이", "b"] and ds.lines == [1, 2]
    assert to_roles(ds, {"text": "q", "label": "y"}, "labels") == (["고양이", "b"], [2, 7])
    assert to_roles(ds, {"a": "q", "b": "p", "score": "s"}, "scores")[2] == [0.25, 1.0]
    assert list(read_rows(path, columns=["p"]).columns) == ["p"]  # extra keys ignored when columns are named


@pytest.mark.parametrize(
    "name,text,line,reason",
    [
        ("e.csv", "a,b\nx,y\nx,\n", 3, "empty cell in column 'b'"),
        ("e.csv", "a,b\nx,y\nx, \n", 3, "empty cell"),
        ("w.csv", "a,b\nx,y\nx,y,z\n", 3, "expected 2 columns, found 3"),
        ("w.tsv", "a\tb\nx\ty\n\nx\ty\n", 3, "expected 2 columns, found 0"),
        ("q.csv", 'a,b\nx,"y\n', 2, "cannot parse row"),
        ("j.jsonl", '{"a": "x"}\n{"a": "y"\n', 2, "invalid JSON"),
        ("j.jsonl", '{"a": "x"}\n["y"]\n', 2, "expected a JSON object"),
        ("j.jsonl", '{"a": "x"}\n{"b": "y"}\n', 2, "expected keys"),
        ("j.jsonl", '{"a": "x"}\n{"a": null}\n', 2, "empty cell"),
        ("j.jsonl", '{"a": "x"}\n{"a": [["y"]]}\n', 2, "expected a string or number"),
        ("j.jsonl", '{"a": "x"}\n\n{"a": "y"}\n', 2, "blank line"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, name, text, line, reason):
    path = _write(tmp_path, name, text)
    with pytest.raises(ValueError) as err:
        read_rows(path)
    assert str(err.value).startswith(f"{path}:{line}: ") and reason in str(err.value), str(err.value)


@pytest.mark.parametrize(
    "text,roles,kind,line,reason",
    [
        ("t,s\na,1\nb,high\n", {"a": "t", "b": "t", "score": "s"}, "scores", 3, "score must be a finite number"),
        ("t,s\na,nan\n", {"a": "t", "b": "t", "score": "s"}, "scores", 2, "score must be a finite number"),
    ],
)
def test_bad_values_name_file_and_line(tmp_path, text, roles, kind, line, reason):
    path = _write(tmp_path, "v.csv", text)
    with pytest.raises(ValueError) as err:
        to_roles(read_rows(path), roles, kind)
    assert str(err.value).startswith(f"{path}:{line}: ") and reason in str(err.value)


def test_bad_jsonl_types_name_line(tmp_path):
    path = _write(tmp_path, "t.jsonl", '{"t": "a", "y": 1}\n{"t": 5, "y": 1.5}\n')
    ds = read_rows(path)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:2: column 't': expected text"):
        to_roles(ds, {"text": "t", "label": "y"}, "labels")
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:2: column 'y': label must be an int or a string"):
        to_roles(
            Dataset(ds.path, {"t": ["a", "b"], "y": ds.columns["y"]}, ds.lines), {"text": "t", "label": "y"}, "labels"
        )


def test_bad_arguments(tmp_path):
    path = _write(tmp_path, "t.csv", "a,b\nx,y\n")
    ds = read_rows(path)
    with pytest.raises(ValueError, match="kind"):
        to_roles(ds, {}, "pairs")
    with pytest.raises(ValueError, match=r"missing \['positive'\]"):
        to_roles(ds, {"anchor": "a"}, "columns")
    with pytest.raises(ValueError, match=r"unknown \['query'\]"):
        to_roles(ds, {"anchor": "a", "positive": "b", "query": "a"}, "columns")
    with pytest.raises(ValueError, match="column 'c' not in"):
        to_roles(ds, {"anchor": "a", "positive": "c"}, "columns")
    with pytest.raises(ValueError, match=r"columns \['c'\] not in header"):
        read_rows(path, columns=["a", "c"], has_header=True)
    with pytest.raises(ValueError, match="is not a file"):
        read_rows(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="delimiter is required"):
        read_rows(_write(tmp_path, "t.txt", "a b\n"))
    with pytest.raises(ValueError, match="columns must be"):
        read_rows(path, columns=["a", "a"])
    with pytest.raises(ValueError, match="no rows"):
        read_rows(_write(tmp_path, "empty.csv", ""))


def test_read_sts_counts(sts_dir):
    for split, n in [("dev", 1500), ("train", 5749)]:
        s1, s2, scores = read_sts(sts_dir / f"sts-{split}.csv")
        assert len(s1) == len(s2) == len(scores) == n
        assert min(scores) == 0.0 and max(scores) == 5.0
    s1, s2, scores = read_sts(sts_dir / "sts-dev.csv")
    assert (s1[0], s2[0], scores[0]) == (
        "A man with a hard hat is dancing.",
        "A man wearing a hard hat is dancing.",
        5.0,
    )
    assert any('"' in s for s in s1 + s2)  # quotes kept verbatim (quoting is off)


def test_read_sts_extra_columns_and_errors(tmp_path):
    good = 'g\tf\t2012\t0001\t3.5\tA "b\tC\ng\tf\t2016\t0002\t1\tx\ty\tsrc1\tsrc2\n'
    assert read_sts(_write(tmp_path, "ok.csv", good)) == (['A "b', "x"], ["C", "y"], [3.5, 1.0])
    for text, reason in [
        ("g\tf\t2012\t1\t3\n", "expected the STS layout of 7 cells"),
        ("g\tf\t2012\t1\tbad\tx\ty\n", "score"),
        ("g\tf\t2012\t1\t6\tx\ty\n", "in [0, 5]"),
        ("g\tf\t2012\t1\t3\tx\t \n", "empty sentence"),
    ]:
        path = _write(tmp_path, "bad.csv", good + text)
        with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:3: .*{re.escape(reason)}"):
            read_sts(path)


def test_pair_labels_and_teacher_kinds(tmp_path):
    """The input kinds of the loss catalogue: a pair with a class label (a classifier head), and texts with a
    teacher's scores or embedding per row (JSONL lists of numbers, or one number per named column)."""
    rows = [
        {"q": "a", "p": "b", "n": "c", "y": "entail", "t": [0.5, 0.1], "e": [1, 2, 3], "s1": 3, "s2": -1.5},
        {"q": "d", "p": "e", "n": "f", "y": "neutral", "t": [0.2, 0.3], "e": [4, 5, 6.5], "s1": 0, "s2": 2},
    ]
    ds = read_rows(_write(tmp_path, "t.jsonl", "".join(json.dumps(r) + "\n" for r in rows)))
    assert to_roles(ds, {"a": "q", "b": "p", "label": "y"}, "pair_labels") == (["a", "d"], ["b", "e"], [0, 1])
    assert to_roles(ds, {"anchor": "q", "positive": "p", "negative": "n", "teacher": "t"}, "teacher_scores") == [
        ["a", "d"],
        ["b", "e"],
        ["c", "f"],
        [[0.5, 0.1], [0.2, 0.3]],
    ]
    assert to_roles(ds, {"anchor": "q", "positive": "p", "teacher": ["s1", "s2"]}, "teacher_scores")[2] == [
        [3.0, -1.5],
        [0.0, 2.0],
    ]
    assert to_roles(ds, {"text": ["q", "p"], "teacher": "e"}, "teacher_embeddings") == [
        ["a", "d"],
        ["b", "e"],
        [[1.0, 2.0, 3.0], [4.0, 5.0, 6.5]],
    ]
    mixed = to_roles(ds, {"text": "q", "teacher": ["s1", "e"]}, "teacher_embeddings")
    assert mixed[1] == [[3, 1, 2, 3], [0, 4, 5, 6.5]]


@pytest.mark.parametrize(
    "rows, roles, kind, line, reason",
    [
        (
            [{"q": "a", "t": [1, 2]}, {"q": "b", "t": [1]}],
            {"text": "q", "teacher": "t"},
            "teacher_embeddings",
            2,
            "1 teacher values, but the first row has 2",
        ),
        (
            [{"q": "a", "t": 1}, {"q": "b", "t": "x"}],
            {"text": "q", "teacher": "t"},
            "teacher_embeddings",
            2,
            "teacher values must be finite numbers",
        ),
        (
            [{"q": "a", "t": [1, 2]}, {"q": [1, 2], "t": [1, 2]}],
            {"text": "q", "teacher": "t"},
            "teacher_embeddings",
            2,
            "expected text",
        ),
        (
            [{"q": "a", "p": "b", "y": [1]}],
            {"a": "q", "b": "p", "label": "y"},
            "pair_labels",
            1,
            "label must be an int or a string",
        ),
        ([{"q": "a", "p": "b", "y": [1]}], {"a": "q", "b": "p", "score": "y"}, "scores", 1, "score must be a finite"),
    ],
)
def test_teacher_and_pair_label_errors_name_file_and_line(tmp_path, rows, roles, kind, line, reason):
    path = _write(tmp_path, "t.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(ValueError) as err:
        to_roles(read_rows(path), roles, kind)
    assert str(err.value).startswith(f"{path}:{line}: ") and reason in str(err.value), str(err.value)


def test_teacher_cells_must_be_numbers(tmp_path):
    path = _write(tmp_path, "t.jsonl", '{"q": "a", "t": [1, 2]}\n{"q": "b", "t": [1, "2"]}\n')
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:2: column 't': expected a string or number"):
        read_rows(path)
    path = _write(tmp_path, "e.jsonl", '{"q": "a", "t": []}\n')
    with pytest.raises(ValueError, match="empty cell in column 't'"):
        read_rows(path)


@pytest.mark.parametrize(
    "name, content, line",
    [
        ("d.csv", b"anchor,positive\nq1,a1\nq2,caf\xe9\n", 3),
        ("d.tsv", b"anchor\tpositive\nq1\t\xff\n", 2),
        ("d.jsonl", b'{"anchor": "q1", "positive": "a1"}\n{"anchor": "\xc3", "positive": "a2"}\n', 2),
    ],
)
def test_non_utf8_input_names_file_and_line(tmp_path, name, content, line):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ValueError, match=rf"{name}:{line}: not UTF-8 text"):
        read_rows(tmp_path / name)


def test_non_utf8_sts_names_file_and_line(tmp_path):
    (tmp_path / "sts.csv").write_bytes(b"g\tf\t2012\t1\t5.0\tA man.\tA man.\ng\tf\t2012\t2\t1.0\tna\xefve\tx\n")
    with pytest.raises(ValueError, match=r"sts.csv:2: not UTF-8 text"):
        read_sts(tmp_path / "sts.csv")


def test_a_header_without_rows_is_an_error(tmp_path):
    (tmp_path / "d.csv").write_text("anchor,positive\n\n")
    with pytest.raises(ValueError, match=r"d.csv: has a header row but no data rows"):
        read_rows(tmp_path / "d.csv")


def test_one_label_written_two_ways_is_refused(tmp_path):
    (tmp_path / "d.csv").write_text("text,label\na,1\nb,cat\nc,1.0\nd,cat\n")
    with pytest.raises(ValueError, match=r"d.csv:4: column 'label': label '1.0' is the number written '1' on line 2"):
        to_roles(read_rows(tmp_path / "d.csv"), {"text": "text", "label": "label"}, "labels")
    (tmp_path / "d.csv").write_text("text,label\na,1.5\nb,cat\nc,1.5\nd,2.5\n")  # one spelling each: names
    assert to_roles(read_rows(tmp_path / "d.csv"), {"text": "text", "label": "label"}, "labels")[1] == [0, 2, 0, 1]


def test_jsonl_lines_split_on_newline_only(tmp_path):
    (tmp_path / "d.jsonl").write_bytes(
        '{"anchor": "a\u2028b",\r "positive": "c"}\r\n{"anchor": "d", "positive": "e"}'.encode()
    )
    ds = read_rows(tmp_path / "d.jsonl")
    assert ds.columns["anchor"] == ["a\u2028b", "d"] and ds.lines == [1, 2]
