"""Callbacks the CLI adds to every run: the prediction writer.

The output file is checked before anything is predicted (a folder, a parent that is a file, a folder that
cannot be written to are one error, not a traceback after the whole run), written to a temporary file
beside it (``.<name>.<pid>.<random>.tmp``) and renamed into place, so an interrupted run leaves the old
file whole. The new file gets the permissions a plain write would give: an overwritten file keeps its
mode, a new one gets ``0o666`` less the umask. Temporary files that a killed run left (their writer's pid
is gone) are removed by the next run writing to the same folder.
"""

from __future__ import annotations

import math
import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from lightning.pytorch import LightningModule, Trainer
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities import rank_zero_info

from kt.core.errors import InputError
from kt.core.signals import StopOnSignals


def check_output_path(path: str | Path, option: str = "output") -> None:
    """Refuse, before any work, an output that cannot be written: a folder, below a file, or not writable."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{option} {path} is a folder; expected a file name (e.g. {path / 'predictions.csv'})")
    if path.exists() and not os.access(path.parent, os.W_OK):
        raise InputError(f"{option} {path}: cannot replace it, its folder {path.parent} is not writable")
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise InputError(f"{option} {path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise InputError(f"{option} {path}: cannot create it, {ancestor} is not writable")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def remove_stale_temp_files(path: str | Path) -> list[Path]:
    """Remove ``.<name>.<pid>.*.tmp`` files beside ``path`` whose writer process is gone (a killed run)."""
    path = Path(path)
    removed = []
    for tmp in path.parent.glob(f".{glob_escape(path.name)}.*.tmp"):
        pid = tmp.name[len(path.name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def glob_escape(name: str) -> str:
    return "".join(f"[{ch}]" if ch in "*?[" else ch for ch in name)


def _mode_for(path: Path) -> int:
    """The permissions a plain ``open(path, "w")`` would leave: the old file's, or 0o666 less the umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_csv_atomically(frame: pd.DataFrame, path: str | Path) -> None:
    """Write to a temporary file beside ``path`` and rename it into place: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temp_files(path)
    # The writer's pid in the name: a later run can tell a killed writer's leftover from a live one's file.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, _mode_for(path))
        with os.fdopen(fd, "w", newline="") as handle:
            frame.to_csv(handle, index=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# A column of sort keys a predict_step may return when its batches are not in input order: the rows are
# stably sorted by it, and it is left out of the file.
ORDER_COLUMN = "_order"


def check_finite(frame: pd.DataFrame, source: str, allowed: dict[str, Any] | None = None) -> None:
    """No missing, NaN or infinite value: a prediction the model could not make is an error, not a blank.

    Numeric columns must be finite; text columns (ids, skill names) may hold an empty string but no
    missing value. ``allowed``: per column, the rows where the model leaves a blank on purpose (a boolean
    mask, or True for the whole column), e.g. DKT's first step of a student, which has no history."""
    allowed = allowed or {}
    for column in frame.columns:
        values = frame[column]
        if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            bad = ~values.map(lambda v: math.isfinite(float(v)))
        else:
            bad = values.isna()  # text columns (ids, names) may hold "", but not a missing value
        if column in allowed:
            bad &= ~(pd.Series(allowed[column], index=frame.index) & values.isna())
        if bad.any():
            row = int(bad.to_numpy().nonzero()[0][0])
            got = values.iloc[row]
            if got is None:
                got = "an empty cell"
            else:
                got = str(float(got)) if isinstance(got, (float, np.floating)) else repr(got)
            ident = f" (id {frame['id'].iloc[row]})" if "id" in frame.columns and column != "id" else ""
            raise InputError(
                f"{source}, prediction row {row + 1}{ident}, column {column!r}: {got}; the model produced no "
                "finite value for that input row (check it for values far outside the training range); "
                "nothing was written"
            )


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
        self._signals = StopOnSignals()

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "predict":
            check_output_path(self.output_path, "prediction_writer.output_path")
            # SIGTERM/SIGINT stop the run here and now; the old output stays as it was.
            self._signals.install()

    def on_predict_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Again, in case Lightning's signal connector replaced the handlers after setup.
        self._signals.restore()
        self._signals.install()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._signals.restore()

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._signals.restore()

    def write_on_epoch_end(
        self, trainer: Trainer, pl_module: LightningModule, predictions: Sequence[Any], batch_indices: Any
    ) -> None:
        # One dataloader gives a flat list of batch outputs; several give a list per dataloader.
        batches = [b for group in predictions for b in (group if isinstance(group, list) else [group])]
        frames = [pd.DataFrame({k: _column(v) for k, v in batch.items()}) for batch in batches]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        if ORDER_COLUMN in frame:
            frame = frame.sort_values(ORDER_COLUMN, kind="stable").drop(columns=ORDER_COLUMN)
        blanks = getattr(pl_module, "prediction_blanks", None)  # where the model leaves a cell empty on purpose
        check_finite(frame, str(self.output_path), blanks(frame) if blanks is not None and len(frame) else None)
        write_csv_atomically(frame, self.output_path)
        rank_zero_info(f"Wrote {len(frame):,} prediction rows to {self.output_path}")
