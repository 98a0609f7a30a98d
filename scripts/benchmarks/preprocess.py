"""Preprocessing time of a raw ASSISTments skill-builder CSV of the real size (generated).

    python scripts/benchmarks/preprocess.py                 # ~525,000 rows, 4,000 students
    python scripts/benchmarks/preprocess.py --rows 100000 --repeats 5

The generated file has the published 30-column header, rows without a skill, repeated (order_id, skill)
rows and problems tagged with several skills, in shuffled order. Each read parses it from scratch (kt's
vectorised pandas path: read, clean, sort, one sequence per student); there is no cache, since a parse
takes well under a second.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from kt.tracing.data.formats import RAW_ENCODING, read_skill_builder

HEADER = (
    "order_id,assignment_id,user_id,assistment_id,problem_id,original,correct,attempt_count,ms_first_response,"
    "tutor_mode,answer_type,sequence_id,student_class_id,position,type,base_sequence_id,skill_id,skill_name,"
    "teacher_id,school_id,hint_count,hint_total,overlap_time,template_id,answer_id,answer_text,first_action,"
    "bottom_hint,opportunity,opportunity_original"
).split(",")


def generate(path: Path, rows: int, students: int, skills: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    problems = int(rows / 1.1)  # ~10% of problems carry a second skill
    skill = rng.integers(1, skills + 1, problems)
    frame = pd.DataFrame({
        "order_id": np.arange(problems) * 3 + 20_000_000,
        "user_id": rng.integers(60_000, 60_000 + students, problems),
        "skill_id": skill.astype(float),
        "correct": (rng.random(problems) < 0.65).astype(int),
    })
    second = frame.sample(frac=0.1, random_state=seed).assign(skill_id=lambda f: (f.skill_id % skills) + 1)
    frame = pd.concat([frame, second, frame.sample(frac=0.02, random_state=seed + 1)])  # + repeated rows
    frame.loc[frame.sample(frac=0.12, random_state=seed + 2).index, "skill_id"] = np.nan  # no skill
    frame = frame.sample(frac=1.0, random_state=seed + 3).head(rows)
    n = len(frame)
    names = "Skill " + frame.skill_id.fillna(0).astype(int).astype(str)
    frame["skill_name"] = np.where(frame.skill_id.isna(), "", names)
    for column in HEADER:
        if column not in frame:
            frame[column] = rng.integers(0, 1000, n) if column.endswith(("_id", "count", "time")) else "x"
    frame[HEADER].to_csv(path, index=False, encoding=RAW_ENCODING, float_format="%.0f")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=525_000)
    parser.add_argument("--students", type=int, default=4_000)
    parser.add_argument("--skills", type=int, default=123)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "skill_builder_data.csv"
        generate(path, args.rows, args.students, args.skills)
        print(f"generated {path.stat().st_size / 1e6:.0f} MB, {args.rows:,} rows")
        wall, cpu = [], []
        for run in range(args.repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            data, _ = read_skill_builder(path)
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            sizes = f"{len(data):,} students, {data.num_interactions:,} interactions"
            print(f"read {run + 1}: {wall[-1]:.2f} s ({cpu[-1]:.2f} CPU seconds) -> {sizes}")
        # CPU seconds: what other jobs on a shared machine disturb least.
        print(f"median of {len(wall)}: {np.median(wall):.2f} s ({np.median(cpu):.2f} CPU seconds)")


if __name__ == "__main__":
    main()
