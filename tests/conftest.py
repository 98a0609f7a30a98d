from __future__ import annotations

import os
from pathlib import Path

import pytest

# The published skill_builder_data.csv header.
RAW_HEADER = (
    "order_id,assignment_id,user_id,assistment_id,problem_id,original,correct,attempt_count,ms_first_response,"
    "tutor_mode,answer_type,sequence_id,student_class_id,position,type,base_sequence_id,skill_id,skill_name,"
    "teacher_id,school_id,hint_count,hint_total,overlap_time,template_id,answer_id,answer_text,first_action,"
    "bottom_hint,opportunity,opportunity_original"
)


def raw_row(order_id, user_id, skill_id, skill_name, correct) -> str:
    """One row of the raw CSV; only the columns kt reads vary."""
    fields = dict(
        order_id=order_id, assignment_id=1, user_id=user_id, assistment_id=7, problem_id=9, original=1,
        correct=correct, attempt_count=1, ms_first_response=1000, tutor_mode="tutor", answer_type="algebra",
        sequence_id=5, student_class_id=3, position=1, type="MasterySection", base_sequence_id=5,
        skill_id=skill_id, skill_name=skill_name, teacher_id=2, school_id=4, hint_count=0, hint_total=3,
        overlap_time=1000, template_id=8, answer_id="", answer_text="42", first_action=0, bottom_hint="",
        opportunity=1, opportunity_original=1,
    )
    return ",".join(str(fields[c]) for c in RAW_HEADER.split(","))


@pytest.fixture
def raw_csv(tmp_path: Path) -> Path:
    """Two students, out-of-order rows, a row without a skill, a repeated (order, skill) row and a problem
    tagged with two skills."""
    rows = [
        raw_row(30, 200, 10, "Addition", 1),
        raw_row(10, 100, 10, "Addition", 0),
        raw_row(20, 100, "", "", 1),  # no skill: dropped
        raw_row(40, 100, 11, "Subtraction", 1),
        raw_row(40, 100, 12, "Fractions", 1),  # same problem, second skill: kept
        raw_row(40, 100, 11, "Subtraction", 1),  # repeated (order_id, skill): dropped
        raw_row(15, 100, 12, "Fractions", 0),
        raw_row(50, 200, 11, "Subtraction", 0),
    ]
    path = tmp_path / "skill_builder_data.csv"
    path.write_text(RAW_HEADER + "\n" + "\n".join(rows) + "\n", encoding="ISO-8859-15")
    return path


def write_three_line(path: Path, sequences: list[tuple[list[int], list[int]]]) -> Path:
    lines = []
    for skills, answers in sequences:
        lines += [str(len(skills)), ",".join(map(str, skills)), ",".join(map(str, answers))]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def real_data_dir() -> Path:
    """``$KT_DATA_DIR`` (the shared real data), or skip."""
    root = os.environ.get("KT_DATA_DIR")
    if not root or not Path(root).is_dir():
        pytest.skip("KT_DATA_DIR is not set to the real data folder")
    return Path(root)
