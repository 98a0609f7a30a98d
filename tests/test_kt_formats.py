from __future__ import annotations

import pytest
from helpers import RAW_HEADER, raw_row, write_three_line

from kt.core.errors import InputError
from kt.tracing.data.formats import parse_skill_builder, read_three_line


def test_raw_csv_drops_and_orders_like_the_seed(raw_csv):
    data, names, report = parse_skill_builder(raw_csv)
    assert report == {"rows": 8, "no_skill": 1, "duplicates": 1, "multi_skill_problems": 1, "multi_skill_rows": 2}
    assert data.students == ["100", "200"]
    # Student 100 in order_id order: 10, 15, 40 (two skills, file order kept); order 20 had no skill.
    assert data.skills[0].tolist() == ["10", "12", "11", "12"]
    assert data.correct[0].tolist() == [0, 0, 1, 1]
    assert data.skills[1].tolist() == ["10", "11"]
    assert data.correct[1].tolist() == [1, 0]
    assert names == {"10": "Addition", "11": "Subtraction", "12": "Fractions"}


@pytest.mark.parametrize(
    "header, row, message",
    [
        (RAW_HEADER.replace("skill_id", "skill"), raw_row(1, 1, 1, "a", 1), "missing column(s) skill_id"),
        (RAW_HEADER, raw_row(1, 1, 1, "a", 2), "row 2, column 'correct': expected 0 or 1"),
        (RAW_HEADER, raw_row("x1", 1, 1, "a", 1), "row 2, column 'order_id': expected a number"),
    ],
)
def test_raw_csv_errors_name_the_place(tmp_path, header, row, message):
    path = tmp_path / "bad.csv"
    path.write_text(header + "\n" + row + "\n")
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        parse_skill_builder(path)
    assert str(path) in str(err.value)


def test_three_line_parsing(tmp_path):
    path = write_three_line(tmp_path / "t.csv", [([1, 2, 2], [0, 1, 1]), ([7], [1])])
    data = read_three_line(path)
    assert data.students == ["0", "1"]
    assert data.skills[0].tolist() == ["1", "2", "2"] and data.correct[0].tolist() == [0, 1, 1]
    assert data.skills[1].tolist() == ["7"]


def test_three_line_accepts_trailing_commas(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("2\n3,4,\n1,0,\n")
    assert read_three_line(path).skills[0].tolist() == ["3", "4"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("2\n1,2\n", "not a multiple of 3"),
        ("3\n1,2\n0,1\n", "line 1: length 3, but 2 skill ids"),
        ("2\n1,2\n0,2\n", "line 3: answers must be 0 or 1"),
        ("x\n1\n0\n", "line 1: expected a sequence length"),
    ],
)
def test_three_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_three_line(path)
