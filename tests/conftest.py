from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from helpers import RAW_HEADER, raw_row

# The tests' networks are tiny: a second intra-op thread only spins (on a shared 2-core machine it doubled the
# suite's CPU time), and one thread is what the `python -m kt` subprocesses of the tests run with as well.
torch.set_num_threads(1)


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


def find_real_data(name: str = "", *files: str) -> Path:
    """``$KT_DATA_DIR/<name>`` (the shared real data) if it holds ``files``; else the calling test is skipped.
    The one place that decides whether real data is there: every test on real data goes through it."""
    root = os.environ.get("KT_DATA_DIR")
    if not root:
        pytest.skip("KT_DATA_DIR is not set (the real data folder)")
    folder = Path(root) / name
    missing = [f for f in files if not (folder / f).is_file()]
    if not folder.is_dir() or missing:
        pytest.skip(f"{folder} lacks {', '.join(missing) or 'the folder itself'}")
    return folder


@pytest.fixture
def real_data() -> Callable[..., Path]:
    """``real_data("covid", "covid.train.csv")``: that folder of ``$KT_DATA_DIR`` with those files, or skip."""
    return find_real_data


@pytest.fixture
def real_data_dir() -> Path:
    """``$KT_DATA_DIR`` itself, or skip (for a test that reads several of its folders)."""
    return find_real_data()
