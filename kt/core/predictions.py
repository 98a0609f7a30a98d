"""Callbacks the CLI adds to every run."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info


def write_csv_atomically(frame: pd.DataFrame, path: str | Path) -> None:
    """Write to a temporary file beside ``path`` and rename it into place: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", newline="") as handle:
            frame.to_csv(handle, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# A column of sort keys a predict_step may return when its batches are not in input order: the rows are
# stably sorted by it, and it is left out of the file.
ORDER_COLUMN = "_order"


def _column(values: Any) -> Sequence:
    return values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else values


class PredictionWriter(BasePredictionWriter):
    """Writes what ``predict_step`` returns (a dict of equal-length columns per batch) to one CSV file.

    Rows come in batch order, or sorted (stably) by an ``ORDER_COLUMN`` column, which is not written.

    Args:
        output_path: the CSV to write at the end of ``kt predict``.
    """

    def __init__(self, output_path: str = "predictions.csv") -> None:
        super().__init__(write_interval="epoch")
        self.output_path = output_path

    def write_on_epoch_end(
        self, trainer: Trainer, pl_module: LightningModule, predictions: Sequence[Any], batch_indices: Any
    ) -> None:
        # One dataloader gives a flat list of batch outputs; several give a list per dataloader.
        batches = [b for group in predictions for b in (group if isinstance(group, list) else [group])]
        frames = [pd.DataFrame({k: _column(v) for k, v in batch.items()}) for batch in batches]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        if ORDER_COLUMN in frame:
            frame = frame.sort_values(ORDER_COLUMN, kind="stable").drop(columns=ORDER_COLUMN)
        write_csv_atomically(frame, self.output_path)
        rank_zero_info(f"Wrote {len(frame):,} prediction rows to {self.output_path}")
