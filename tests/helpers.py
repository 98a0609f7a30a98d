"""Builders the tests share: tiny input files in each format kt reads, and the arguments of tiny `kt` runs.

Tests import these (``from helpers import ...``; pytest puts ``tests/`` on the import path) rather than
importing each other or ``conftest``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
# Lightning's progress bar and model summary: noise in test output.
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def kt_env() -> dict[str, str]:
    """The environment of a `python -m kt` subprocess: this checkout's kt, one thread, no warnings."""
    return dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")


# --------------------------------------------------------------------------------------- knowledge tracing
def auc_by_ranks(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney AUC with average ranks for ties: independent of torchmetrics."""
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    pos = labels == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return (ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def write_three_line(path: Path, sequences: list[tuple[list, list[int]]]) -> Path:
    """A 3-line file (length, skill ids, answers per student)."""
    lines = []
    for skills, answers in sequences:
        lines += [str(len(skills)), ",".join(map(str, skills)), ",".join(map(str, answers))]
    path.write_text("\n".join(lines) + "\n")
    return path


# The published skill_builder_data.csv header.
RAW_HEADER = (
    "order_id,assignment_id,user_id,assistment_id,problem_id,original,correct,attempt_count,ms_first_response,"
    "tutor_mode,answer_type,sequence_id,student_class_id,position,type,base_sequence_id,skill_id,skill_name,"
    "teacher_id,school_id,hint_count,hint_total,overlap_time,template_id,answer_id,answer_text,first_action,"
    "bottom_hint,opportunity,opportunity_original"
)


def raw_row(order_id, user_id, skill_id, skill_name, correct) -> str:
    """One row of the raw skill-builder CSV; only the columns kt reads vary."""
    fields = dict(
        order_id=order_id, assignment_id=1, user_id=user_id, assistment_id=7, problem_id=9, original=1,
        correct=correct, attempt_count=1, ms_first_response=1000, tutor_mode="tutor", answer_type="algebra",
        sequence_id=5, student_class_id=3, position=1, type="MasterySection", base_sequence_id=5,
        skill_id=skill_id, skill_name=skill_name, teacher_id=2, school_id=4, hint_count=0, hint_total=3,
        overlap_time=1000, template_id=8, answer_id="", answer_text="42", first_action=0, bottom_hint="",
        opportunity=1, opportunity_original=1,
    )  # fmt: skip
    return ",".join(str(fields[c]) for c in RAW_HEADER.split(","))


def tiny_dkt_args(students: int, steps: int, size: int = 8) -> list[str]:
    """`kt` arguments for DKT on ``students`` simulated students of ``steps`` answers, ``size`` units wide,
    from the shipped ``dkt_synthetic`` config (by name, as a user gives it)."""
    return [
        "--config", "dkt_synthetic",
        "--data.init_args.num_students", str(students), "--data.init_args.steps_per_student", str(steps),
        "--model.init_args.hidden_size", str(size), "--model.init_args.emb_size", str(size), *QUIET,
    ]  # fmt: skip


# ------------------------------------------------------------------------------------------------ COVID
COVID_STATES = ["AL", "AK"]
COVID_DAILY = ["cli", "tested_positive"]
COVID_DAYS = 3


def covid_header() -> list[str]:
    """The header of :func:`make_covid_csv`'s files: id, one-hot states, (cli, tested_positive) per day."""
    return ["id", *COVID_STATES] + COVID_DAILY * COVID_DAYS


def make_covid_csv(path: Path, rows: int = 60, seed: int = 0, target: bool = True) -> pd.DataFrame:
    """A tiny CSV shaped like covid.train.csv: id, one-hot states, days of features, the target last
    (without it, shaped like covid.test.csv)."""
    rng = np.random.default_rng(seed)
    state = rng.integers(len(COVID_STATES), size=rows)
    columns = [np.eye(len(COVID_STATES))[state][:, i] for i in range(len(COVID_STATES))]
    level = rng.uniform(5, 20, size=rows)
    for _ in range(COVID_DAYS):
        columns += [level + rng.normal(size=rows), level + 0.1 * rng.normal(size=rows)]
    frame = pd.DataFrame(np.column_stack(columns))
    frame.insert(0, "id", np.arange(rows) + 100)
    frame.columns = covid_header()
    if not target:
        frame = frame.iloc[:, :-1]
    with open(path, "w") as handle:  # the header as written (pandas would rename the repeated names)
        handle.write(",".join(frame.columns) + "\n")
        frame.to_csv(handle, index=False, header=False)
    return frame


# ------------------------------------------------------------------------------------------------ images
def bar_images(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 28 x 28 noise images with a bright bar in the left half whose row is the class: learnable in
    an epoch, and asymmetric left/right (a flip shows)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    images = rng.integers(0, 30, size=(n, 28, 28)).astype(np.uint8)
    images[np.arange(n), 4 + 2 * labels, 2:14] = 255
    return images, labels


def write_mnist_folder(folder: Path, train: int, test: int) -> Path:
    """The four MNIST IDX files of :func:`bar_images` (training files gzipped, test files raw, as both occur)."""
    from kt.vision.idx import write_idx

    folder.mkdir(parents=True)
    for name, n, seed, suffix in (("train", train, 0, ".gz"), ("t10k", test, 1, "")):
        images, labels = bar_images(n, seed)
        write_idx(folder / f"{name}-images-idx3-ubyte{suffix}", images)
        write_idx(folder / f"{name}-labels-idx1-ubyte{suffix}", labels)
    return folder
