"""Both STS layouts (minilm/data/readers.py read_sts): the main files' 7 cells (genre, file, year, id, score,
sentence1, sentence2; 9 with the sentences' sources) and the companion files' 6 (no genre; 8 with sources); anything
else, or a file mixing the two, is an error naming file and line."""

import re

import pytest

from minilm.data.readers import read_roles, read_sts


def write(tmp_path, text, name="sts.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


MAIN = 'main-news\tMSRpar\t2012test\t0001\t3.5\tA "b\tC\nmain-news\theadlines\t2016\t0002\t1\tx\ty\tsrc1\tsrc2\n'
COMPANION = 'MSRpar\t2012test\t0001\t3.5\tA "b\tC\nheadlines\t2016\t0002\t1\tx\ty\tsrc1\tsrc2\n'


@pytest.mark.parametrize("text", [MAIN, COMPANION], ids=["7 and 9 cells", "6 and 8 cells"])
def test_each_layout_reads_the_same_pairs_and_scores(tmp_path, text):
    assert read_sts(write(tmp_path, text)) == (['A "b', "x"], ["C", "y"], [3.5, 1.0])


def test_a_companion_file_as_an_evaluation_and_as_training_pairs(tmp_path):
    path = write(tmp_path, COMPANION + "forum\t2015\t0003\t4.5\tp\tq\n")
    assert read_roles(str(path), "sts", {}, "scores") == (['A "b', "x", "p"], ["C", "y", "q"], [0.7, 0.2, 0.9])
    assert read_roles(str(path), "sts", {}, "columns", min_score=4.0) == [["p"], ["q"]]


@pytest.mark.parametrize("cells", [1, 5, 10, 11])
def test_another_number_of_cells_names_the_line_and_both_layouts(tmp_path, cells):
    row = "\t".join(["4"] * cells) + "\n"
    path = write(tmp_path, MAIN + row)
    with pytest.raises(
        ValueError,
        match=rf"^{re.escape(str(path))}:3: expected the STS layout of 7 cells .* or the "
        rf"companion files' 6 .*, found {cells}$",
    ):
        read_sts(path)


@pytest.mark.parametrize(
    "first, then, says",
    [
        (MAIN, "forum\t2015\t0003\t4.5\tp\tq\n", "6 cells (without genre), but line 1 has the 7-cell layout"),
        (COMPANION, "g\tforum\t2015\t0003\t4.5\tp\tq\n", "7 cells (with genre), but line 1 has the 6-cell layout"),
    ],
)
def test_a_file_mixing_the_layouts_is_refused_at_the_first_other_row(tmp_path, first, then, says):
    path = write(tmp_path, first + then)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:3: {re.escape(says)}"):
        read_sts(path)


@pytest.mark.parametrize(
    "row, reason",
    [
        ("f\t2012\t1\tbad\tx\ty\n", "score must be a number, found 'bad'"),
        ("f\t2012\t1\t6\tx\ty\n", "score must be in [0, 5], found 6.0"),
        ("f\t2012\t1\t3\tx\t \n", "empty sentence"),
    ],
)
def test_a_companion_row_is_checked_like_a_main_one(tmp_path, row, reason):
    path = write(tmp_path, COMPANION + row)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:3: {re.escape(reason)}$"):
        read_sts(path)
