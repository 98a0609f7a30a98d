"""Mini-batches sliced from tensors that already hold the whole (small) data set.

A per-row ``Dataset.__getitem__`` plus ``default_collate`` costs microseconds per row, every epoch; for a
few thousand rows and thousands of epochs that overhead dominates training. Here an epoch is one
``randperm`` and one gather per tensor, then views.

The order comes from an :class:`~kt.core.sampling.EpochSampler`: a function of (seed, epoch), one share
per DDP process (Lightning cannot put a distributed sampler into an iterable that is not a DataLoader),
and resumable mid-epoch through ``state_dict``/``load_state_dict``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import torch
from lightning.pytorch import LightningDataModule

from kt.core.sampling import EpochSampler, trained_batches


class TensorBatches:
    """An iterable of dict batches over equal-length tensors (and optional per-row string ``ids``).

    Args:
        tensors: name -> tensor, all with the same first dimension.
        batch_size: rows per batch; the last batch may be smaller (as a DataLoader without ``drop_last``).
        shuffle: a fresh permutation every epoch, seeded by ``seed`` (default: the ``seed_everything``
            seed) plus the epoch.
        ids: optional row identifiers, yielded as a list under ``"id"`` (order follows the tensors).
        seed: seed of the shuffling.
        pad: under DDP, repeat a few rows so that every process gets as many, hence as many optimizer steps
            (default: when shuffling, i.e. for training); without it (evaluation) every row is seen once.
        progress: returns how many batches of the current training epoch were trained on
            (:func:`kt.core.sampling.trained_batches`), saved in checkpoints so that a resumed run skips
            them. Without it: the number of batches handed out.
    """

    def __init__(
        self,
        tensors: dict[str, torch.Tensor],
        batch_size: int,
        shuffle: bool = False,
        ids: Sequence[str] | None = None,
        seed: int | None = None,
        pad: bool | None = None,
        progress: Callable[[], int] | None = None,
    ) -> None:
        lengths = {len(t) for t in tensors.values()}
        if len(lengths) != 1:
            raise ValueError(f"tensors of different lengths: { {k: len(t) for k, t in tensors.items()} }")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.tensors = tensors
        self.num_rows = lengths.pop()
        self.batch_size = batch_size
        self.ids = list(ids) if ids is not None else None
        # Lightning looks for ``sampler`` (to call ``set_epoch``) and ``batch_sampler`` as on a DataLoader.
        pad = shuffle if pad is None else pad
        self.sampler = EpochSampler(self.num_rows, shuffle=shuffle, seed=seed, pad=pad)
        self.batch_sampler = None
        self.progress = progress
        self._handed_out = 0
        self._skip = 0

    def to(self, device: torch.device | str) -> TensorBatches:
        """Move the tensors once (e.g. to the GPU), so batches need no copy."""
        self.tensors = {k: t.to(device) for k, t in self.tensors.items()}
        return self

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def state_dict(self) -> dict:
        # Lightning fetches no batch ahead from a loader with a length, so what was handed out was trained on.
        batches = self.progress() if self.progress is not None else self._handed_out
        return {"epoch": self.sampler.epoch, "batches": int(batches)}

    def load_state_dict(self, state: dict) -> None:
        """Resume: the next iteration is that epoch's, without the batches already trained on."""
        self.sampler.set_epoch(state["epoch"])
        self._skip = state["batches"]

    def __iter__(self) -> Iterator[dict]:
        skip, self._skip = self._skip, 0
        self._handed_out = skip
        tensors = self.tensors
        ids = self.ids
        order = self.sampler.index_tensor()
        if self.sampler.shuffle or self.sampler.num_replicas > 1:  # else the tensors as they are
            ids = [ids[i] for i in order.tolist()] if ids is not None else None
            index = order.to(next(iter(tensors.values())).device)
            tensors = {k: t.index_select(0, index) for k, t in tensors.items()}
        for start in range(skip * self.batch_size, len(order), self.batch_size):
            stop = start + self.batch_size
            batch = {k: t[start:stop] for k, t in tensors.items()}
            if ids is not None:
                batch["id"] = ids[start:stop]
            self._handed_out += 1
            yield batch


class TensorDataModule(LightningDataModule):
    """A DataModule whose splits live in memory as tensors. Subclasses implement ``_batches(name)`` for the
    splits they have, building them with :meth:`_tensor_batches`."""

    def _device(self) -> torch.device:
        trainer = self.trainer
        return trainer.strategy.root_device if trainer is not None else torch.device("cpu")

    def _tensor_batches(
        self,
        name: str,
        tensors: dict[str, torch.Tensor],
        batch_size: int,
        ids: Sequence[str] | None = None,
    ) -> TensorBatches:
        """The split's :class:`TensorBatches`, moved once to the training device. Training batches are shuffled
        per (seed, epoch), padded to equal shares under DDP, and skip what a resumed run already trained on;
        the others come in order, every row once."""
        train = name == "train"
        batches = TensorBatches(
            tensors, batch_size, shuffle=train, ids=ids, pad=train,
            progress=trained_batches(self) if train else None,
        )  # fmt: skip
        return batches.to(self._device())

    def _batches(self, name: str) -> TensorBatches:
        raise NotImplementedError

    def train_dataloader(self) -> TensorBatches:
        return self._batches("train")

    def val_dataloader(self) -> TensorBatches:
        return self._batches("val")

    def test_dataloader(self) -> TensorBatches:
        return self._batches("test")

    def predict_dataloader(self) -> TensorBatches:
        return self._batches("predict")
