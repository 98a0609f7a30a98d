"""COVID-19 survey regression (ML2022Spring HW1): predict ``tested_positive`` on the fifth day.

The training CSV has an ``id`` column, the features (37 one-hot states, then 16 survey features for each
of 5 days, the fifth day's ``tested_positive`` excluded) and the target last. The header repeats the
survey names for every day, so a feature's identity is its column *position*; names shown in logs carry
a day suffix where the header repeats them (``tested_positive_d4`` = the 4th ``tested_positive`` column).

What inference needs (the selected columns and the scaler) is computed on the training split only and
travels in the model's checkpoint as its ``data_state``.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info

from kt.core.data_state import model_data_state
from kt.core.download import ensure_file
from kt.core.errors import InputError
from kt.core.sampling import distributed
from kt.core.tensor_batches import TensorBatches, TensorDataModule
from kt.core.validation import NonNegativeInt, OpenUnitInterval, PositiveInt

FLOAT32_MAX = float(np.finfo(np.float32).max)
# The seed's split: torch.utils.data.random_split with this generator seed and valid_ratio 0.2.
SEED = 5201314


class CovidTable:
    """One parsed CSV: the header, the row ids (as written) and the numeric columns after ``id``."""

    def __init__(self, path: Path, header: list[str], ids: list[str], values: np.ndarray) -> None:
        self.path = path
        self.header = header
        self.ids = ids
        self.values = values

    def __len__(self) -> int:
        return len(self.ids)


def read_covid_csv(path: str | Path, expected_header: list[str] | None = None) -> CovidTable:
    """Read and validate a CSV: a header, then rows of the header's length with an id and finite numbers.

    ``expected_header``: the header the file must have (e.g. the training file's, without the target).
    Every problem is one :class:`InputError` naming the file, the line and the column.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} not found")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise InputError(f"{path}: the file is empty; expected a header line and data rows")
    header = [name.strip() for name in rows[0]]
    if len(header) < 3:
        raise InputError(f"{path}, line 1: {len(header)} columns; expected id, feature columns and the target")
    if expected_header is not None and header != expected_header:
        if len(header) != len(expected_header):
            raise InputError(
                f"{path}, line 1: {len(header)} columns, expected {len(expected_header)} "
                f"({expected_header[0]}, ..., {expected_header[-1]}) as in the training file"
            )
        col = next(i for i, (a, b) in enumerate(zip(header, expected_header)) if a != b)
        raise InputError(
            f"{path}, line 1, column {col + 1}: header '{header[col]}', expected '{expected_header[col]}'"
        )
    body = rows[1:]
    if not body:
        raise InputError(f"{path}: no data rows after the header")
    for number, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise InputError(f"{path}, line {number}: {len(row)} columns, expected {len(header)} as in the header")
    ids = [row[0].strip() for row in body]
    for number, value in enumerate(ids, start=2):
        if not value:
            raise InputError(f"{path}, line {number}, column 1 ({header[0]}): empty id")
    duplicates = [value for value, n in Counter(ids).items() if n > 1]
    if duplicates:
        raise InputError(f"{path}, line {ids.index(duplicates[0], ids.index(duplicates[0]) + 1) + 2}, column 1 "
                           f"({header[0]}): id '{duplicates[0]}' occurs more than once")
    try:
        values = np.array([row[1:] for row in body], dtype=np.float64)
    except ValueError:
        values = None
    # The model computes in float32: a number finite in float64 but beyond float32's range becomes inf there.
    if values is None or not np.isfinite(values).all() or (np.abs(values) > FLOAT32_MAX).any():
        for number, row in enumerate(body, start=2):
            for col, cell in enumerate(row[1:], start=1):
                try:
                    ok = math.isfinite(float(cell))
                except ValueError:
                    ok = False
                where = f"{path}, line {number}, column {col + 1} ({header[col]})"
                if not ok:
                    got = f"'{cell}'" if cell.strip() else "an empty cell"
                    raise InputError(f"{where}: expected a finite number, got {got}")
                if abs(float(cell)) > FLOAT32_MAX:
                    raise InputError(
                        f"{where}: {cell.strip()} is beyond float32's range (the model computes in float32; "
                        f"expected at most {FLOAT32_MAX:.4g} in size)"
                    )
    return CovidTable(path, header, ids, values)


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


def split_rows(
    num_rows: int,
    valid_ratio: float,
    seed: int,
    fold: int | None = None,
    num_folds: int = 5,
    groups: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Row indices of each split.

    With ``groups`` (a group label per row), the groups are split instead of the rows, as below, and every
    row goes where its group goes: no group has rows on both sides.

    Without ``fold``: the seed's split (``random_split`` with ``torch.Generator().manual_seed(seed)``):
    ``int(valid_ratio * n)`` validation rows; the test rows are the validation rows.

    With ``fold``: a ``seed`` permutation cut into ``num_folds`` near-equal folds; fold ``fold`` is the
    test split (rows no part of training sees, early stopping included) and ``valid_ratio`` of the other
    rows is the validation split that early stopping and checkpointing follow.
    """
    if groups is not None:
        labels, group_of_row = np.unique(groups, return_inverse=True)
        split = split_rows(len(labels), valid_ratio, seed, fold, num_folds)
        return {name: np.flatnonzero(np.isin(group_of_row, chosen)) for name, chosen in split.items()}
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(num_rows, generator=generator).numpy()
    if fold is None:
        n_valid = int(valid_ratio * num_rows)
        train, valid = order[: num_rows - n_valid], order[num_rows - n_valid :]
        return {"train": train, "val": valid, "test": valid}
    if not 2 <= num_folds <= num_rows:
        raise InputError(
            f"num_folds must be between 2 and the number of rows (of groups with group_by) {num_rows}, got {num_folds}"
        )
    if not 0 <= fold < num_folds:
        raise InputError(f"fold must be in 0..{num_folds - 1}, got {fold}")
    folds = np.array_split(order, num_folds)
    rest = np.concatenate([f for i, f in enumerate(folds) if i != fold])
    n_valid = int(valid_ratio * len(rest))
    return {"train": rest[: len(rest) - n_valid], "val": rest[len(rest) - n_valid :], "test": folds[fold]}


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


def univariate_scores(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """|Pearson correlation| of each column of ``x`` with ``y`` (0 for a constant column).

    Ranking by it is the same as ranking by scikit-learn's ``f_regression`` F statistic.
    """
    xc = x - x.mean(0)
    yc = y - y.mean()
    denom = np.sqrt((xc**2).sum(0) * (yc**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(denom > 0, (xc * yc[:, None]).sum(0) / np.where(denom > 0, denom, 1), 0.0)
    return np.abs(r)


class CovidDataModule(TensorDataModule):
    """COVID-19 survey data: seed split or k-fold, feature selection and standardisation on the training split.

    Args:
        data_dir: folder with the CSV files.
        train_file: the labelled CSV (id, features, target last).
        test_file: the unlabelled CSV (id, features) that ``kt predict`` scores by default.
        predict_file: a different CSV for ``kt predict`` (with or without the target column).
        train_url: where to download ``train_file`` from when it is absent (sha256-verified if
            ``train_sha256`` is set); without one, a missing file is a clear error.
        train_sha256: expected sha256 of ``train_file``.
        test_url: likewise for ``test_file``.
        test_sha256: expected sha256 of ``test_file``.
        valid_ratio: fraction of the (non-test) rows held out for validation; the seed used 0.2.
        seed: seed of the split permutation; the seed's 5201314 reproduces its split.
        fold: with ``num_folds``, k-fold cross-validation: this fold is the test split (see :func:`split_rows`).
        num_folds: number of folds.
        group_by: ``row`` splits rows (the seed's way); ``state`` splits the 37 states, so that the validation
            and test rows come from states no training row comes from. The rows are overlapping 5-day windows
            of each state's series (one row's days 2-5 are another's days 1-4), so a row split leaves most
            validation targets written in training rows' features (``scripts/covid_windows.py``); a state
            split does not.
        features: ``all``, or a list of CSV column indices (0 is ``id``, so the seed's ``feat_idx``
            lists work as they are) and/or names: a display name such as ``tested_positive_d4`` or a header
            name such as ``tested_positive`` (every day's column of it).
        top_k: keep only the ``top_k`` of those features with the highest |correlation| with the target on
            the training split.
        standardize: scale features to zero mean, unit variance with training-split statistics.
        batch_size: training batch size (the seed's 256).
        whole_epoch: hand the model each shuffled training epoch as one item that it cuts into
            ``batch_size`` mini-batches itself: the same mini-batches and optimizer steps, but one Lightning
            step per epoch instead of one per batch (Lightning's per-step overhead dwarfs this network).
        eval_batch_size: validation/test/predict batch size (default: the whole split at once).
    """

    def __init__(
        self,
        data_dir: str = "data/covid",
        train_file: str = "covid.train.csv",
        test_file: str = "covid.test.csv",
        predict_file: str | None = None,
        train_url: str | None = None,
        train_sha256: str | None = None,
        test_url: str | None = None,
        test_sha256: str | None = None,
        valid_ratio: OpenUnitInterval = 0.2,
        seed: int = SEED,
        fold: NonNegativeInt | None = None,
        num_folds: PositiveInt = 5,
        group_by: Literal["row", "state"] = "row",
        features: Literal["all"] | list[int | str] = "all",
        top_k: PositiveInt | None = None,
        standardize: bool = True,
        batch_size: PositiveInt = 256,
        whole_epoch: bool = True,
        eval_batch_size: PositiveInt | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 < valid_ratio < 1.0:
            raise InputError(f"valid_ratio must be between 0 and 1, got {valid_ratio}")
        self.data_dir = Path(data_dir)
        self.train_file = train_file
        self.test_file = test_file
        self.predict_file = predict_file
        self.urls = {"train": (train_url, train_sha256), "test": (test_url, test_sha256)}
        self.valid_ratio = valid_ratio
        self.seed = seed
        self.fold = fold
        self.num_folds = num_folds
        self.group_by = group_by
        self.features = features
        self.top_k = top_k
        self.standardize = standardize
        self.batch_size = batch_size
        self.whole_epoch = whole_epoch
        self.eval_batch_size = eval_batch_size
        self.state: dict | None = None
        self.splits: dict[str, dict] = {}

    # ----------------------------------------------------------------------------------------- state
    @property
    def data_state(self) -> dict:
        """Plain types: the CSV header, the selected column positions and names, the scaler."""
        if self.state is None:
            raise RuntimeError("call setup() first: the data state is computed from the training split")
        return self.state

    def resolve_features(self, header: list[str]) -> list[int]:
        """CSV column positions of the configured features (before top-k), in CSV order."""
        first, last = 1, len(header) - 2
        if self.features == "all":
            return list(range(first, last + 1))
        if isinstance(self.features, str):
            raise InputError(f"features must be 'all' or a list of column indices/names, got '{self.features}'")
        names = feature_names(header)
        chosen: set[int] = set()
        for item in self.features:
            if isinstance(item, int) or (isinstance(item, str) and item.strip().lstrip("-").isdigit()):
                col = int(item)
                if not first <= col <= last:
                    raise InputError(
                        f"features: column {col} is not a feature column; feature columns are {first}..{last} "
                        f"(0 is {header[0]}, {len(header) - 1} is the target {header[-1]})"
                    )
                chosen.add(col)
                continue
            matches = [i + 1 for i, n in enumerate(names) if n == item] or [
                i + 1 for i, n in enumerate(header[1:-1]) if n == item
            ]
            if not matches:
                raise InputError(f"features: no feature column named '{item}' (names look like {names[-1]})")
            chosen.update(matches)
        if not chosen:
            raise InputError("features: the list is empty")
        return sorted(chosen)

    def fit_state(self, table: CovidTable, train_rows: np.ndarray) -> dict:
        """Select features and fit the scaler on the training rows only."""
        header = table.header
        columns = self.resolve_features(header)
        x = table.values[train_rows][:, [c - 1 for c in columns]]
        y = table.values[train_rows, -1]
        names = feature_names(header)
        if self.top_k is not None:
            if self.top_k < 1:
                raise InputError(f"top_k must be >= 1, got {self.top_k}")
            scores = univariate_scores(x, y)
            keep = np.sort(np.argsort(-scores, kind="stable")[: self.top_k])
            columns = [columns[i] for i in keep]
            x = x[:, keep]
            ranked = sorted(zip(scores[keep], columns), reverse=True)
            rank_zero_info(
                f"top {len(columns)} features by |corr| with {header[-1]} on {len(y)} training rows: "
                + ", ".join(f"{names[c - 1]} ({s:.3f})" for s, c in ranked)
            )
        if self.standardize:
            mean = x.mean(0)
            std = x.std(0)
            constant = std == 0
            if constant.any():
                rank_zero_info(
                    f"{int(constant.sum())} selected feature(s) constant on the training split, left unscaled: "
                    + ", ".join(names[c - 1] for c, k in zip(columns, constant) if k)
                )
            std = np.where(constant, 1.0, std)
        else:
            mean = np.zeros(len(columns))
            std = np.ones(len(columns))
        return {
            "header": list(header),
            "columns": [int(c) for c in columns],
            "names": [names[c - 1] for c in columns],
            "mean": [float(v) for v in mean],
            "std": [float(v) for v in std],
        }

    def encode(self, table: CovidTable, rows: np.ndarray | None = None) -> torch.Tensor:
        """Selected, standardised features of ``rows`` (all rows by default) as float32."""
        state = self.data_state
        values = table.values if rows is None else table.values[rows]
        x = (values[:, [c - 1 for c in state["columns"]]] - np.asarray(state["mean"])) / np.asarray(state["std"])
        return torch.as_tensor(x, dtype=torch.float32)

    # ----------------------------------------------------------------------------------------- files
    def file(self, name: str, which: str) -> Path:
        url, sha256 = self.urls.get(which, (None, None))
        path = self.data_dir / name
        if not path.is_file() and not url:
            raise InputError(
                f"{path} not found. Put the ML2022Spring HW1 file {name} there (e.g. from the course's Kaggle "
                f"page), set data.data_dir to the folder that has it, or set data.{which}_url to download it."
            )
        return ensure_file(path, url, sha256)

    # ----------------------------------------------------------------------------------------- setup
    def split(self, table: CovidTable) -> dict[str, np.ndarray]:
        groups = state_of_rows(table) if self.group_by == "state" else None
        return split_rows(len(table), self.valid_ratio, self.seed, self.fold, self.num_folds, groups)

    def setup(self, stage: str | None = None) -> None:
        state = model_data_state(self)
        if stage == "predict":
            self._setup_predict(state)
            return
        if "train" in self.splits:
            return
        table = read_covid_csv(self.file(self.train_file, "train"), state["header"] if state else None)
        rows = self.split(table)
        self.state = state if state is not None else self.fit_state(table, rows["train"])
        y = torch.as_tensor(table.values[:, -1], dtype=torch.float32)
        for name, idx in rows.items():
            self.splits[name] = {"x": self.encode(table, idx), "y": y[idx], "ids": [table.ids[i] for i in idx]}
        where = f"fold {self.fold} of {self.num_folds}" if self.fold is not None else f"seed {self.seed}"
        where += " (split by state)" if self.group_by == "state" else ""
        rank_zero_info(
            f"{table.path}: {len(table):,} rows; {where}: {len(rows['train']):,} train, {len(rows['val']):,} "
            f"validation, {len(rows['test']):,} test"
            + (" (= validation)" if self.fold is None else "")
            + f"; {len(self.state['columns'])} of {len(table.header) - 2} features"
            + (", standardised on the training split" if self.standardize else "")
        )

    def _setup_predict(self, state: dict | None) -> None:
        if state is None:
            # A model without a data state (not fitted, not from a checkpoint): fit it as for training.
            table = read_covid_csv(self.file(self.train_file, "train"))
            state = self.fit_state(table, self.split(table)["train"])
        self.state = state
        header = state["header"]
        if self.predict_file is not None:
            path = Path(self.predict_file)
            path = path if path.is_file() else self.data_dir / self.predict_file
            if not path.is_file():
                raise InputError(f"predict_file {self.predict_file} not found (nor in data_dir {self.data_dir})")
        else:
            path = self.file(self.test_file, "test")
        # Either the unlabelled layout (no target) or the training layout (target ignored).
        with open(path, newline="", encoding="utf-8-sig") as handle:
            first = next(csv.reader(handle), [])
        table = read_covid_csv(path, header if len(first) == len(header) else header[:-1])
        if len(table.header) == len(header) - 1:
            # Pad a target column so positions match the training layout.
            table.values = np.concatenate([table.values, np.zeros((len(table), 1))], axis=1)
        self.splits["predict"] = {"x": self.encode(table), "ids": table.ids}
        rank_zero_info(f"{path}: {len(table):,} rows to predict")

    # ----------------------------------------------------------------------------------------- loaders
    def _batches(self, name: str) -> TensorBatches:
        split = self.splits[name]
        tensors = {"x": split["x"]} | ({"y": split["y"]} if "y" in split else {})
        size = self.batch_size if name == "train" else (self.eval_batch_size or len(split["x"]))
        # Row ids only where predictions are written: shuffling a list of strings every epoch costs time.
        ids = split["ids"] if name in ("test", "predict") else None
        # Under DDP a Lightning step must be one backward pass (DDP averages the gradients of each), so the
        # model gets the mini-batches one by one there.
        whole = self.whole_epoch and name == "train" and distributed()[0] == 1
        return self._tensor_batches(name, tensors, size, ids=ids, whole_epoch=whole)
