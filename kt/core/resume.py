"""Resuming a killed ``kt fit`` where it stopped, with the result it would have had.

Three things make a resumed run equal to an uninterrupted one:

* a recent checkpoint, also in the middle of an epoch: :class:`ResumableCheckpoint` (``checkpoint.*`` in the
  config) writes ``last.ckpt`` every ``last_every_n_batches`` training batches, besides its usual
  best-on-validation and end-of-epoch checkpoints;
* the same batches after the restart: the training loaders order each epoch by (seed, epoch) and skip
  what the checkpoint already trained on (:mod:`kt.core.sampling`);
* the same random numbers (dropout): :class:`RNGStates` saves the generators' states in the checkpoint
  and puts them back when the restarted training starts.

``--ckpt_path last`` finds the newest ``last*.ckpt`` of the experiment (:func:`find_last_checkpoint`);
``kt fit`` then continues in that run's version folder (:func:`checkpoint_version`), so its checkpoints and
curves stay together.

Private Lightning members are used here and nowhere else in kt, each with the reason next to it.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint


class ResumableCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` whose ``last.ckpt`` is always a recent state: after every epoch (or every
    ``last_every_n_epochs``), and optionally during an epoch.

    The other arguments are ``ModelCheckpoint``'s (``monitor``, ``save_top_k``, ``save_last``, ...).

    Args:
        last_every_n_batches: write ``last.ckpt`` after every this many training batches of an epoch (it
            is written at the end of every epoch anyway, with ``save_last``); a run killed in the middle
            of an epoch then loses at most this many batches. Unset: only at epoch ends.
        last_every_n_epochs: write the end-of-epoch ``last.ckpt`` only after every this many epochs, and
            when training ends. For models whose epochs take milliseconds (the COVID MLP runs thousands),
            where writing a checkpoint every epoch costs more than the epoch; a crash then loses at most
            this many epochs. Best checkpoints are written on every improvement either way.

    Lightning 2.6's public options cannot say this: ``save_last`` writes ``last.ckpt`` only beside a top-k
    (best) checkpoint, so after an epoch without improvement it still holds an older epoch (reported
    upstream as Lightning-AI/pytorch-lightning#19107 and #19189: "a last.ckpt copy whenever a checkpoint
    file gets saved"); ``every_n_train_steps`` counts global steps rather than batches of the epoch, writes
    top-k files too, and with a monitored validation metric defers its save to the end of validation
    (see Lightning-AI/pytorch-lightning#20075). So this class writes ``last.ckpt`` itself, through the two
    private ``ModelCheckpoint`` members named below; everything else is public hooks and attributes.
    """

    def __init__(
        self,
        *args: Any,
        last_every_n_batches: int | None = None,
        last_every_n_epochs: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if last_every_n_batches is not None and last_every_n_batches < 1:
            raise ValueError(f"last_every_n_batches must be >= 1, got {last_every_n_batches}")
        if last_every_n_epochs < 1:
            raise ValueError(f"last_every_n_epochs must be >= 1, got {last_every_n_epochs}")
        self.last_every_n_batches = last_every_n_batches
        self.last_every_n_epochs = last_every_n_epochs
        self._last_saved_step: int | None = None
        self._at_epoch_end = False

    # Private override: `_save_last_checkpoint` is the one method every last.ckpt write of ModelCheckpoint goes
    # through (beside a new best, when training ends, on an exception), and it keeps `last_model_path`, the
    # file name and the removal of the previous last.ckpt consistent. Overriding it is the only way to thin
    # out the end-of-epoch writes (`last_every_n_epochs`) and to know which step last.ckpt holds; there is no
    # public hook per write (Lightning-AI/pytorch-lightning#19107, #19189).
    def _save_last_checkpoint(self, trainer: Trainer, monitor_candidates: dict) -> None:
        # Only the end-of-epoch writes (Lightning's beside a new best, and ours) are thinned out; the others
        # (mid-epoch, on an exception, at the end of training) always write.
        if self._at_epoch_end and not self._last_due(trainer):
            return
        super()._save_last_checkpoint(trainer, monitor_candidates)
        self._last_saved_step = trainer.global_step

    def _last_due(self, trainer: Trainer) -> bool:
        epochs_done = trainer.current_epoch + 1
        final = trainer.should_stop or (trainer.max_epochs is not None and epochs_done >= trainer.max_epochs)
        return final or epochs_done % self.last_every_n_epochs == 0

    def write_last(self, trainer: Trainer) -> None:
        """Write ``last.ckpt`` now, unless it already holds this step (e.g. written beside a new best)."""
        if not self.save_last or trainer.sanity_checking or trainer.fast_dev_run:
            return
        if self._last_saved_step != trainer.global_step:
            # Private call: `_monitor_candidates` is the metrics dictionary `_save_last_checkpoint` formats the
            # file name with (e.g. `last-{epoch}`); ModelCheckpoint builds it no other way.
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # Training can end where no write was due (e.g. max_steps, or a stop requested after the save).
        super().on_train_end(trainer, pl_module)
        if self._last_saved_step is not None:
            self.write_last(trainer)

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        every = self.last_every_n_batches
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        # The epoch's last batch is left to the end-of-epoch save (after validation).
        if every and done % every == 0 and done < trainer.num_training_batches:
            self.write_last(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # A new best found by the epoch's validation is written here by the parent, with last.ckpt beside it:
        # that last.ckpt is an end-of-epoch write (thinned out by last_every_n_epochs); one after a
        # validation in the middle of an epoch (val_check_interval < 1) is not.
        self._at_epoch_end = trainer.fit_loop.epoch_loop.batch_progress.is_last_batch
        try:
            super().on_validation_end(trainer, pl_module)
        finally:
            self._at_epoch_end = False

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        # After the epoch's validation (and early stopping's decision): the parent saves its best here or
        # already did in on_validation_end; last.ckpt is then refreshed whether or not the epoch improved.
        self._at_epoch_end = True
        try:
            super().on_train_epoch_end(trainer, pl_module)
            self.write_last(trainer)
        finally:
            self._at_epoch_end = False


def _capture() -> dict:
    # Plain tensors and numbers only, so that checkpoints load with torch.load(weights_only=True).
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state((np_state["name"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


class RNGStates(Callback):
    """Saves the torch, numpy, Python (and CUDA) random generator states in every checkpoint; after a
    resume, restores them when training starts (``on_train_start``).

    Not earlier: between loading the checkpoint and that hook the restarted run does things the
    uninterrupted one did not (building the model, a sanity validation), and whatever they draw must not
    shift what training draws next. Not later: the first batch's ``on_after_batch_transfer`` (e.g. image
    augmentation on the device) already draws random numbers, before ``on_train_batch_start``. Under DDP
    every process starts from the same seed, so the saved states (rank 0's) are every process's.
    """

    def __init__(self) -> None:
        self._pending: dict | None = None

    def state_dict(self) -> dict:
        return _capture()

    def load_state_dict(self, state_dict: dict) -> None:
        self._pending = state_dict

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._pending is not None:
            _restore(self._pending)
            self._pending = None


def checkpoint_folders(dirpaths: list, logger: Any, default_root_dir: str | Path) -> list[Path]:
    """Where an experiment's checkpoints are: the checkpoint callbacks' own folders (``dirpaths``) where they
    have one, else every ``version_*/checkpoints`` of the logger's folder (each run gets a new version
    folder), else ``<default_root_dir>/checkpoints`` (a run without a logger)."""
    folders = [Path(d) for d in dirpaths if d]
    if folders:
        return folders
    root = getattr(logger, "root_dir", None) if logger is not None else None
    if root is not None:
        return [v / "checkpoints" for v in Path(root).glob("version_*") if v.is_dir()]
    return [Path(default_root_dir) / "checkpoints"]


def newest_last_checkpoint(folders: list[Path]) -> Path | None:
    """The newest ``last*.ckpt`` in ``folders``, whichever run (version folder) wrote it.

    Lightning's own ``ckpt_path="last"`` looks only in the new run's checkpoint folder, which a restarted
    run (a new version folder) has not written yet, so it finds nothing to resume
    (Lightning-AI/pytorch-lightning#17606, #2735)."""
    found = [p for folder in folders if folder.is_dir() for p in folder.glob("last*.ckpt")]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def find_last_checkpoint(trainer: Trainer) -> Path | None:
    """The newest ``last*.ckpt`` of the experiment ``trainer`` is configured for."""
    dirpaths = [getattr(c, "dirpath", None) for c in trainer.checkpoint_callbacks]
    return newest_last_checkpoint(checkpoint_folders(dirpaths, trainer.logger, trainer.default_root_dir))


def checkpoint_version(ckpt: Path, logger_root: str | Path) -> int | None:
    """N when ``ckpt`` is in ``<logger_root>/version_N/checkpoints/``: the run to continue, by passing
    ``version=N`` to the logger, so a resumed run keeps writing its curves and checkpoints there."""
    match = re.fullmatch(r"version_(\d+)", ckpt.parent.parent.name)
    if match is None or ckpt.parent.parent.parent.resolve() != Path(logger_root).resolve():
        return None
    return int(match.group(1))
