"""Readers for knowledge-tracing files: the 3-line format and the raw ASSISTments skill-builder CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from lightning.pytorch.utilities import rank_zero_info

from kt.core.errors import InputError
from kt.tracing.data.sequences import Interactions, skill_sort_key


def read_three_line(path: str | Path) -> Interactions:
    """Read the DKT/DKVMN/SAKT format: per student a length line, a skill-id line and a 0/1 answer line.

    Students are named by their 0-based position in the file.
    """
    path = Path(path)
    data = path.read_bytes()
    try:
        lines = data.decode("utf-8").splitlines()
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise InputError(
            f"{path}, line {line}: byte {data[err.start]:#04x} is not UTF-8 text; expected the 3-line format "
            "(a length, skill ids and 0/1 answers per student, as text)"
        ) from None
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise InputError(f"{path}: the file is empty; expected 3 lines per student")
    if len(lines) % 3:
        raise InputError(
            f"{path}: {len(lines)} lines is not a multiple of 3; expected per student a length line, "
            "a line of skill ids and a line of 0/1 answers"
        )
    students, skills, correct = [], [], []
    for k in range(0, len(lines), 3):
        where = f"{path}, line {k + 1}"
        try:
            length = int(lines[k])
        except ValueError:
            raise InputError(f"{where}: expected a sequence length, found {lines[k][:40]!r}") from None
        ids = [s.strip() for s in lines[k + 1].strip().rstrip(",").split(",")]
        answers = [a.strip() for a in lines[k + 2].strip().rstrip(",").split(",")]
        if len(ids) != length or len(answers) != length:
            raise InputError(
                f"{where}: length {length}, but {len(ids)} skill ids (line {k + 2}) "
                f"and {len(answers)} answers (line {k + 3})"
            )
        if "" in ids:
            raise InputError(f"{path}, line {k + 2}: empty skill id")
        bad = [a for a in answers if a not in ("0", "1")]
        if bad:
            raise InputError(f"{path}, line {k + 3}: answers must be 0 or 1, found {bad[0]!r}")
        students.append(str(k // 3))
        skills.append(np.array(ids))
        correct.append(np.array(answers, dtype=np.int8))
    return Interactions(students, skills, correct)


def student_location(path: str | Path, student: str, three_line: bool = True) -> str:
    """Where a student's rows are, for error messages: 3-line students are named by their position, and
    student k's skill ids are on line 3k + 2."""
    if three_line and student.isdigit():
        return f"{path}, line {3 * int(student) + 2} (student {student})"
    return f"{path}, student {student}"


def read_skill_map(path: str | Path) -> dict[str, str]:
    """``<skill id>\\t<skill name>`` per line (the DKVMN authors' ``*_skill_mapping.txt``)."""
    names = {}
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        sid, _, name = line.partition("\t")
        if sid.strip():
            names[sid.strip()] = name.strip()
    return names


RAW_COLUMNS = ("order_id", "user_id", "skill_id", "skill_name", "correct")
RAW_ENCODING = "ISO-8859-15"
MultiSkill = Literal["expand", "join"]


def _numeric(frame: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    values = pd.to_numeric(frame[column], errors="coerce")
    bad = values.isna()
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"{path}, row {row + 2}, column {column!r}: expected a number, found {frame[column].iloc[row]!r}"
        )
    return values.to_numpy()


def _join_skills(frame: pd.DataFrame, order: np.ndarray, correct: np.ndarray):
    """One row per problem (order_id): its skills sorted and joined with ``_`` into one token."""
    frame = frame.assign(_order=order, _correct=correct, _key=frame["skill_id"].map(skill_sort_key))
    frame = frame.sort_values(["_order", "_key"], kind="stable")
    grouped = frame.groupby("_order", sort=False)
    joined = grouped["skill_id"].agg("_".join)
    names = grouped["skill_name"].agg(lambda n: " & ".join(n.fillna("")))
    first = grouped.head(1).set_index("_order")
    first = first.assign(skill_id=joined, skill_name=names)
    return first.reset_index(drop=True), first.index.to_numpy(), first["_correct"].to_numpy()


def parse_skill_builder(
    path: Path, multi_skill: MultiSkill = "expand"
) -> tuple[Interactions, dict[str, str], dict[str, int]]:
    """Parse the raw ASSISTments skill-builder CSV as the DKT seed did, vectorised.

    Rows without a skill and repeated (order_id, skill_id) rows are dropped (and counted), rows are put in
    ``order_id`` order, and each student becomes one sequence. A problem tagged with several skills stays
    one row per skill (``multi_skill="expand"``, its rows sharing one answer; the sequences carry each
    step's order_id as its problem) or becomes one interaction whose skill is its skill ids joined with
    ``_``, e.g. ``"10_27"`` (``"join"``).
    """
    if multi_skill not in ("expand", "join"):
        raise InputError(f"multi_skill {multi_skill!r}: expected 'expand' or 'join'")
    try:
        header = pd.read_csv(path, nrows=0, encoding=RAW_ENCODING).columns
    except (pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: not a readable skill-builder CSV ({err})") from None
    missing = [c for c in RAW_COLUMNS if c not in header]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; expected the published header")
    frame = pd.read_csv(
        path,
        encoding=RAW_ENCODING,
        usecols=list(RAW_COLUMNS),
        dtype={"user_id": str, "skill_id": str, "skill_name": str},
        low_memory=False,
    )
    report = {"rows": len(frame)}
    no_skill = frame["skill_id"].isna().to_numpy()
    frame = frame[~no_skill]
    duplicate = frame.duplicated(["order_id", "skill_id"]).to_numpy()
    frame = frame[~duplicate]
    report.update(no_skill=int(no_skill.sum()), duplicates=int(duplicate.sum()))

    order = _numeric(frame, "order_id", path)
    correct = _numeric(frame, "correct", path)
    bad = ~np.isin(correct, (0, 1))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{path}, row {frame.index[row] + 2}, column 'correct': expected 0 or 1, found {correct[row]!r}"
        )
    multi = frame["order_id"].duplicated(keep=False).to_numpy()
    report.update(multi_skill_problems=int(frame["order_id"][multi].nunique()), multi_skill_rows=int(multi.sum()))
    if multi_skill == "join":
        frame, order, correct = _join_skills(frame, order, correct)

    # One stable sort by (student, order_id) instead of one filter over the whole frame per student.
    user_codes, users = pd.factorize(frame["user_id"], sort=True)
    sort = np.lexsort((order, user_codes))
    user_codes = user_codes[sort]
    bounds = np.flatnonzero(np.diff(user_codes)) + 1
    skills = np.split(frame["skill_id"].to_numpy(dtype=str)[sort], bounds)
    answers = np.split(correct.astype(np.int8)[sort], bounds)
    problems = np.split(order.astype(np.int64)[sort], bounds)
    students = [str(u) for u in users[user_codes[np.r_[0, bounds]]]] if len(frame) else []
    names = frame.drop_duplicates("skill_id").set_index("skill_id")["skill_name"].fillna("").to_dict()
    return Interactions(students, skills, answers, problems), names, report


def read_skill_builder(path: str | Path, multi_skill: MultiSkill = "expand") -> tuple[Interactions, dict[str, str]]:
    """:func:`parse_skill_builder`, with what was dropped reported in the log."""
    data, names, report = parse_skill_builder(path, multi_skill)
    rank_zero_info(
        f"{path}: {report['rows']:,} rows; dropped {report['no_skill']:,} without a skill and "
        f"{report['duplicates']:,} repeated (order_id, skill_id) rows; {len(data):,} students, "
        f"{len(names):,} skills; {report['multi_skill_problems']:,} problems carry several skills "
        f"({report['multi_skill_rows']:,} rows, "
        + ("one interaction per skill)" if multi_skill == "expand" else "joined into one interaction each)")
    )
    return data, names
