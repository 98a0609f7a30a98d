"""The run's log folder (``lightning_logs/<name>/version_N/``): which logger a config builds, the folder a
failed run leaves behind, the config saved into it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.cli import SaveConfigCallback, instantiate_class
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only


def asks_for_logger(args: list[str]) -> bool:
    """Whether the command line configures ``trainer.logger`` (``--trainer.logger ...``)."""
    return any(a == "--trainer.logger" or a.startswith(("--trainer.logger.", "--trainer.logger=")) for a in args)


def logger_config(trainer_config: Namespace) -> Any:
    """The ``trainer.logger`` setting (the first logger of a list): a class_path Namespace, a bool or None."""
    value = trainer_config.get("logger")
    if isinstance(value, list):
        value = value[0] if value else None
    return value


def build_logger(trainer_config: Namespace) -> Any:
    """The logger ``trainer.logger`` configures, built alone (which creates no folder), or None for none."""
    value = logger_config(trainer_config)
    if isinstance(value, Namespace) and value.get("class_path"):
        return instantiate_class((), value.as_dict())
    if value is None or value is True:  # Lightning's default logger
        return TensorBoardLogger(save_dir=trainer_config.get("default_root_dir") or os.getcwd())
    return None


class DiscardFailedRun(Callback):
    """Removes the run's log folder when the run fails before writing a checkpoint, if the run created it:
    bad input leaves no ``version_N`` behind, nor the ``lightning_logs/<name>`` above it if that is new too
    (a continued run's folder is never removed)."""

    def __init__(self, logger: Any) -> None:
        log_dir = getattr(logger, "log_dir", None) if logger is not None else None
        # The outermost folder of log_dir that does not exist yet: everything in it will be this run's.
        missing = [p for p in (Path(log_dir), *Path(log_dir).parents) if not p.exists()] if log_dir else []
        self.fresh = missing[-1] if missing else None

    @rank_zero_only
    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        folder = self.fresh
        if isinstance(exception, Exception) and folder is not None and folder.is_dir():
            if not any(folder.rglob("*.ckpt")):
                shutil.rmtree(folder, ignore_errors=True)


class SaveConfigToRunFolder(SaveConfigCallback):
    """Saves the run's config.yaml into its version folder. A run without a logger has no such folder, and
    Lightning would write the file into the working directory instead: such a run saves no config."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        if trainer.logger is not None:
            super().setup(trainer, pl_module, stage)
