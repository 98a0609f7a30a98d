"""Confusion matrix of a classifier's ``kt predict`` CSV: counts and row-normalised, accuracy in the title."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from kt.core.errors import InputError
from kt.plots.figure import save_figure


def read_predictions(path: str | Path) -> pd.DataFrame:
    """A classifier's ``kt predict`` CSV: integer columns ``label`` (true class) and ``pred``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file; expected the CSV written by `kt predict`")
    frame = pd.read_csv(path)
    missing = [c for c in ("label", "pred") if c not in frame.columns]
    if missing:
        raise InputError(
            f"{path}: missing column(s) {', '.join(missing)}; expected 'label' (true class index) and 'pred' "
            f"(predicted class index), found {', '.join(map(str, frame.columns[:12]))}"
        )
    if frame.empty:
        raise InputError(f"{path}: no rows")
    if frame["label"].isna().all():
        raise InputError(
            f"{path}: the 'label' column is empty (predictions on your own images have no true class); "
            "a confusion matrix needs `kt predict` on a labelled set such as the test set"
        )
    for column in ("label", "pred"):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() | (values < 0) | (values != values.round())
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise InputError(
                f"{path}, row {row + 2}, column {column!r}: expected a class index (0, 1, 2...), "
                f"found {frame[column].iloc[row]!r}"
            )
        frame[column] = values.astype(int)
    return frame


def class_names(frame: pd.DataFrame, classes: Sequence[str] | None = None) -> list[str]:
    """``classes`` when given; else the CSV's ``pred_name`` per predicted index; else the indices."""
    size = int(max(frame["label"].max(), frame["pred"].max())) + 1
    size = max(size, sum(bool(re.fullmatch(r"p_\d+", str(c))) for c in frame.columns))
    if classes:
        if len(classes) < size:
            raise InputError(f"--classes names {len(classes)} classes, but the predictions use {size}")
        return list(classes)
    names = [str(i) for i in range(size)]
    if "pred_name" in frame.columns:
        for index, name in frame.drop_duplicates("pred")[["pred", "pred_name"]].itertuples(index=False):
            names[int(index)] = str(name)
    return names


def confusion_counts(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[i, j]: examples of true class i predicted as j."""
    return np.bincount(labels * num_classes + preds, minlength=num_classes**2).reshape(num_classes, num_classes)


def plot_confusion(
    predictions: str | Path, out: str | Path, classes: Sequence[str] | None = None, dpi: int = 100
) -> dict:
    """Counts and row-normalised (recall per class) confusion matrices side by side, accuracy in the title.

    Returns ``counts``, ``normalised``, ``accuracy`` and ``classes``.
    """
    frame = read_predictions(predictions)
    names = class_names(frame, classes)
    k = len(names)
    counts = confusion_counts(frame["label"].to_numpy(), frame["pred"].to_numpy(), k)
    totals = counts.sum(1, keepdims=True)
    normalised = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    accuracy = float(np.trace(counts) / counts.sum())

    fig = Figure(figsize=(2 * (2.2 + 0.5 * k), 1.6 + 0.5 * k), layout="constrained")
    for i, (matrix, what) in enumerate([(counts, "counts"), (normalised, "row-normalised (recall)")]):
        ax = fig.add_subplot(1, 2, i + 1)
        image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=matrix.max() or 1)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        for (r, c), v in np.ndenumerate(matrix):
            text = f"{v:d}" if matrix is counts else f"{v:.2f}"
            ax.text(c, r, text, ha="center", va="center", fontsize=7,
                    color="white" if v > 0.6 * (matrix.max() or 1) else "black")
        ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(k), names, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(what)
    fig.suptitle(f"{Path(predictions).name}: accuracy {accuracy:.2%} ({int(np.trace(counts))}/{counts.sum()})")
    save_figure(fig, out, dpi)
    return {"counts": counts, "normalised": normalised, "accuracy": accuracy, "classes": names}
