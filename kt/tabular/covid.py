"""COVID-19 survey regression (ML2022Spring HW1): the DataModule that predicts ``tested_positive`` on the fifth day.

Reading the CSVs: :mod:`kt.tabular.covid_reader`; feature selection and scaling (fitted on the training
split only, saved in the model's checkpoint as its ``data_state``): :mod:`kt.tabular.features`; the
splits: :func:`kt.core.splits.train_val_test`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info

from kt.core.data_state import model_data_state
from kt.core.download import ensure_file
from kt.core.errors import InputError
from kt.core.splits import train_val_test
from kt.core.tensor_batches import TensorBatches, TensorDataModule
from kt.core.validation import Fraction, NonNegativeInt, PositiveInt
from kt.tabular.covid_reader import CovidTable, read_covid_csv, state_of_rows
from kt.tabular.features import encode, fit_feature_state

# The seed's split: torch.utils.data.random_split with this generator seed and valid_ratio 0.2.
SEED = 5201314


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
        valid_ratio: fraction of the (non-test) rows held out for validation; the seed used 0.2. ``0``: no
            validation split, every non-test row is trained on for ``trainer.max_epochs`` epochs (no early
            stopping, the last epoch's checkpoint is the model): the refit of a config whose epoch count
            was chosen by cross-validation (``mlp_covid_refit``).
        seed: seed of the split permutation; the seed's 5201314 reproduces its split.
        fold: with ``num_folds``, k-fold cross-validation: this fold is the test split (see
            :func:`kt.core.splits.train_val_test`).
        num_folds: number of folds.
        group_by: ``row`` splits rows (the seed's way); ``state`` splits the 37 states, so that the validation
            and test rows come from states no training row comes from. The rows are overlapping 5-day windows
            of each state's series (one row's days 2-5 are another's days 1-4), so a row split leaves most
            validation targets written in training rows' features (``scripts/experiments/covid_windows.py``);
            a state split does not.
        features: ``all``, or a list of CSV column indices (0 is ``id``, so the seed's ``feat_idx``
            lists work as they are) and/or names: a display name such as ``tested_positive_d4`` or a header
            name such as ``tested_positive`` (every day's column of it).
        top_k: keep only the ``top_k`` of those features with the highest |correlation| with the target on
            the training split.
        standardize: scale features to zero mean, unit variance with training-split statistics.
        batch_size: training batch size (the seed's 256).
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
        valid_ratio: Fraction = 0.2,
        seed: int = SEED,
        fold: NonNegativeInt | None = None,
        num_folds: PositiveInt = 5,
        group_by: Literal["row", "state"] = "row",
        features: Literal["all"] | list[int | str] = "all",
        top_k: PositiveInt | None = None,
        standardize: bool = True,
        batch_size: PositiveInt = 256,
        eval_batch_size: PositiveInt | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= valid_ratio < 1.0:
            raise InputError(f"valid_ratio must be at least 0 and below 1, got {valid_ratio}")
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
        self.eval_batch_size = eval_batch_size
        self.state: dict | None = None
        self.splits: dict[str, dict] = {}

    @property
    def validates(self) -> bool:
        """False with ``valid_ratio: 0``: no validation split, so nothing for early stopping to follow."""
        return self.valid_ratio > 0

    # ----------------------------------------------------------------------------------------- state
    @property
    def data_state(self) -> dict:
        """Plain types: the CSV header, the selected column positions and names, the scaler."""
        if self.state is None:
            raise RuntimeError("call setup() first: the data state is computed from the training split")
        return self.state

    def fit_state(self, table: CovidTable, train_rows: np.ndarray) -> dict:
        """Select features and fit the scaler on the training rows only."""
        return fit_feature_state(table, train_rows, self.features, self.top_k, self.standardize)

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
        """Row indices of "train", "val" and "test"."""
        groups = state_of_rows(table) if self.group_by == "state" else None
        return train_val_test(len(table), self.valid_ratio, self.seed, self.fold, self.num_folds, groups)

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
            x = encode(table.values[idx], self.state)
            self.splits[name] = {"x": x, "y": y[idx], "ids": [table.ids[i] for i in idx]}
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
        # Either the unlabelled layout (no target) or the training layout (target ignored); positions are
        # the training layout's either way, and the target is last.
        table = read_covid_csv(path, header, target_optional=True)
        self.splits["predict"] = {"x": encode(table.values, state), "ids": table.ids}
        rank_zero_info(f"{path}: {len(table):,} rows to predict")

    # ----------------------------------------------------------------------------------------- loaders
    def _batches(self, name: str) -> TensorBatches:
        split = self.splits[name]
        tensors = {"x": split["x"]} | ({"y": split["y"]} if "y" in split else {})
        size = self.batch_size if name == "train" else (self.eval_batch_size or max(len(split["x"]), 1))
        # Row ids only where predictions are written: shuffling a list of strings every epoch costs time.
        ids = split["ids"] if name in ("test", "predict") else None
        return self._tensor_batches(name, tensors, size, ids=ids)
