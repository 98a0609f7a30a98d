"""Which COVID columns the model sees and how they are scaled, fitted on the training rows only.

The result is a plain-types ``data_state`` (header, selected column positions and names, scaler mean and
std) that travels in the model's checkpoint, so inference encodes new rows exactly as training did.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info

from kt.core.errors import InputError
from kt.tabular.covid_reader import CovidTable, feature_names

FeatureSpec = Literal["all"] | list[int | str]


def resolve_features(features: FeatureSpec, header: list[str]) -> list[int]:
    """CSV column positions of the configured features (before top-k), in CSV order.

    ``features``: ``all``, or column indices (0 is ``id``) and/or names: a display name such as
    ``tested_positive_d4`` or a header name such as ``tested_positive`` (every day's column of it).
    """
    first, last = 1, len(header) - 2
    if features == "all":
        return list(range(first, last + 1))
    if isinstance(features, str):
        raise InputError(f"features must be 'all' or a list of column indices/names, got '{features}'")
    names = feature_names(header)
    chosen: set[int] = set()
    for item in features:
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


def fit_feature_state(
    table: CovidTable,
    train_rows: np.ndarray,
    features: FeatureSpec = "all",
    top_k: int | None = None,
    standardize: bool = True,
) -> dict:
    """Select features (``features``, then the ``top_k`` by |correlation| with the target) and fit the
    standard scaler, all on ``train_rows`` only."""
    header = table.header
    columns = resolve_features(features, header)
    x = table.values[train_rows][:, [c - 1 for c in columns]]
    y = table.values[train_rows, -1]
    names = feature_names(header)
    if top_k is not None:
        if top_k < 1:
            raise InputError(f"top_k must be >= 1, got {top_k}")
        scores = univariate_scores(x, y)
        keep = np.sort(np.argsort(-scores, kind="stable")[:top_k])
        columns = [columns[i] for i in keep]
        x = x[:, keep]
        ranked = sorted(zip(scores[keep], columns), reverse=True)
        rank_zero_info(
            f"top {len(columns)} features by |corr| with {header[-1]} on {len(y)} training rows: "
            + ", ".join(f"{names[c - 1]} ({s:.3f})" for s, c in ranked)
        )
    if standardize:
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


def encode(values: np.ndarray, state: dict) -> torch.Tensor:
    """The selected, standardised features of ``values`` (a table's numeric columns) as float32."""
    x = (values[:, [c - 1 for c in state["columns"]]] - np.asarray(state["mean"])) / np.asarray(state["std"])
    return torch.as_tensor(x, dtype=torch.float32)
