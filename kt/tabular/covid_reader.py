"""Reading and validating the COVID-19 survey CSVs (ML2022Spring HW1).

The training CSV has an ``id`` column, the features (37 one-hot states, then 16 survey features for each
of 5 days, the fifth day's ``tested_positive`` excluded) and the target last. The header repeats the
survey names for every day, so a feature's identity is its column *position*; names shown in logs carry
a day suffix where the header repeats them (``tested_positive_d4`` = the 4th ``tested_positive`` column).
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd

from kt.core.errors import InputError

FLOAT32_MAX = float(np.finfo(np.float32).max)


class CovidTable:
    """One parsed CSV: the header, the row ids (as written) and the numeric columns after ``id``."""

    def __init__(self, path: Path, header: list[str], ids: list[str], values: np.ndarray) -> None:
        self.path = path
        self.header = header
        self.ids = ids
        self.values = values

    def __len__(self) -> int:
        return len(self.ids)


def _read_cells(path: Path) -> pd.DataFrame:
    """Every cell as the text written in the file (the header is row 0), nothing read as NaN, so that an
    error can quote the cell. The python engine leaves the cells a short row lacks as NaN (the C engine
    would make them empty strings, like empty cells); blank lines are kept so row ``i`` is line ``i + 1``."""
    try:
        return pd.read_csv(
            path, header=None, dtype=str, keep_default_na=False, skip_blank_lines=False, engine="python",
            encoding="utf-8-sig",
        )  # fmt: skip
    except pd.errors.EmptyDataError:
        raise InputError(f"{path}: the file is empty; expected a header line and data rows") from None
    except pd.errors.ParserError as err:
        # A row longer than the header; pandas names it as "Expected 9 fields in line 4, saw 10".
        found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(err))
        if found is None:
            raise InputError(f"{path}: not a CSV file pandas can read ({err})") from None
        expected, line, saw = found.groups()
        raise InputError(f"{path}, line {line}: {saw} columns, expected {expected} as in the header") from None


def _check_header(path: Path, header: list[str], expected: list[str]) -> None:
    if header == expected:
        return
    if len(header) != len(expected):
        raise InputError(
            f"{path}, line 1: {len(header)} columns, expected {len(expected)} "
            f"({expected[0]}, ..., {expected[-1]}) as in the training file"
        )
    col = next(i for i, (a, b) in enumerate(zip(header, expected)) if a != b)
    raise InputError(f"{path}, line 1, column {col + 1}: header '{header[col]}', expected '{expected[col]}'")


def read_covid_csv(
    path: str | Path, expected_header: list[str] | None = None, target_optional: bool = False
) -> CovidTable:
    """Read and validate a CSV: a header, then rows of the header's length with an id and finite numbers.

    ``expected_header``: the header the file must have (the training file's); with ``target_optional`` the
    file may also have it without its last column (an unlabelled file to predict).
    Every problem is one :class:`InputError` naming the file, the line and the column.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} not found")
    cells = _read_cells(path)
    header = [name.strip() for name in cells.iloc[0].dropna()]
    if len(header) < 3:
        raise InputError(f"{path}, line 1: {len(header)} columns; expected id, feature columns and the target")
    if expected_header is not None:
        unlabelled = target_optional and len(header) == len(expected_header) - 1
        _check_header(path, header, expected_header[:-1] if unlabelled else expected_header)
    body = cells.iloc[1:]
    if body.empty:
        raise InputError(f"{path}: no data rows after the header")
    widths = body.notna().sum(axis=1).to_numpy()
    short = np.flatnonzero(widths != len(header))
    if len(short):
        row = short[0]
        raise InputError(f"{path}, line {row + 2}: {widths[row]} columns, expected {len(header)} as in the header")

    ids = body[0].str.strip()
    empty = np.flatnonzero(ids == "")
    if len(empty):
        raise InputError(f"{path}, line {empty[0] + 2}, column 1 ({header[0]}): empty id")
    repeated = np.flatnonzero(ids.duplicated().to_numpy())
    if len(repeated):
        row = repeated[0]
        raise InputError(f"{path}, line {row + 2}, column 1 ({header[0]}): id '{ids.iloc[row]}' occurs more than once")

    values = body.iloc[:, 1:].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    bad = np.argwhere(~np.isfinite(values))  # row-major: the first bad cell of the first bad line
    if len(bad):
        row, col = bad[0]
        cell = body.iat[row, col + 1]
        got = f"'{cell}'" if cell.strip() else "an empty cell"
        raise InputError(
            f"{path}, line {row + 2}, column {col + 2} ({header[col + 1]}): expected a finite number, got {got}"
        )
    # The model computes in float32: a number finite in float64 but beyond float32's range becomes inf there.
    huge = np.argwhere(np.abs(values) > FLOAT32_MAX)
    if len(huge):
        row, col = huge[0]
        raise InputError(
            f"{path}, line {row + 2}, column {col + 2} ({header[col + 1]}): {body.iat[row, col + 1].strip()} is "
            f"beyond float32's range (the model computes in float32; expected at most {FLOAT32_MAX:.4g} in size)"
        )
    return CovidTable(path, header, ids.tolist(), values)


def feature_names(header: list[str]) -> list[str]:
    """Display names of the feature columns (between id and target): repeated names get ``_d<n>``."""
    names = header[1:-1]
    total = Counter(names)
    seen: Counter = Counter()
    out = []
    for name in names:
        seen[name] += 1
        out.append(f"{name}_d{seen[name]}" if total[name] > 1 else name)
    return out


def state_of_rows(table: CovidTable) -> np.ndarray:
    """Each row's state: the columns after ``id`` up to the first that is not 0/1 are a one-hot state code."""
    values = table.values[:, :-1]
    binary = np.all((values == 0) | (values == 1), axis=0)
    width = int(np.argmin(binary)) if not binary.all() else values.shape[1]
    ones = values[:, :width].sum(1)
    bad = np.flatnonzero(ones != 1)
    if width == 0 or len(bad):
        where = f", line {bad[0] + 2}" if width and len(bad) else ""
        raise InputError(
            f"{table.path}{where}: group_by state needs one-hot state columns right after {table.header[0]} "
            f"(exactly one 1 per row); found {width} 0/1 column(s)"
            + (f" with {int(ones[bad[0]])} ones in that row" if width and len(bad) else "")
        )
    return np.asarray(table.header[1 : width + 1])[values[:, :width].argmax(1)]
