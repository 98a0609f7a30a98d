"""Mini-batches sliced from tensors that already hold the whole (small) data set.

A per-row ``Dataset.__getitem__`` plus ``default_collate`` costs microseconds per row, every epoch; for a
few thousand rows and thousands of epochs that overhead dominates training. Here an epoch is one
``randperm`` and one gather per tensor, then views.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch


class TensorBatches:
    """An iterable of dict batches over equal-length tensors (and optional per-row string ``ids``).

    Args:
        tensors: name -> tensor, all with the same first dimension.
        batch_size: rows per batch; the last batch may be smaller (as a DataLoader without ``drop_last``).
        shuffle: draw a fresh permutation every epoch from torch's global generator (seeded by
            ``seed_everything``).
        ids: optional row identifiers, yielded as a list under ``"id"`` (order follows the tensors).
        whole_epoch: yield the whole (shuffled) epoch as a single item with ``"batch_size"`` added; the
            model then takes the mini-batches itself (one Lightning step per epoch instead of one per batch,
            see :class:`kt.models.mlp.MLPRegressor`). The mini-batches are the same either way.
    """

    def __init__(
        self,
        tensors: dict[str, torch.Tensor],
        batch_size: int,
        shuffle: bool = False,
        ids: Sequence[str] | None = None,
        whole_epoch: bool = False,
    ) -> None:
        lengths = {len(t) for t in tensors.values()}
        if len(lengths) != 1:
            raise ValueError(f"tensors of different lengths: { {k: len(t) for k, t in tensors.items()} }")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.tensors = tensors
        self.num_rows = lengths.pop()
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.ids = list(ids) if ids is not None else None
        self.whole_epoch = whole_epoch

    def to(self, device: torch.device | str) -> TensorBatches:
        """Move the tensors once (e.g. to the GPU), so batches need no copy."""
        self.tensors = {k: t.to(device) for k, t in self.tensors.items()}
        return self

    def __len__(self) -> int:
        if self.whole_epoch:
            return 1
        return math.ceil(self.num_rows / self.batch_size)

    def __iter__(self) -> Iterator[dict]:
        tensors = self.tensors
        ids = self.ids
        if self.shuffle:
            order = torch.randperm(self.num_rows)
            ids = [ids[i] for i in order.tolist()] if ids is not None else None
            device = next(iter(tensors.values())).device
            order = order.to(device)
            tensors = {k: t.index_select(0, order) for k, t in tensors.items()}
        if self.whole_epoch:
            yield {**tensors, "batch_size": self.batch_size} | ({"id": ids} if ids is not None else {})
            return
        for start in range(0, self.num_rows, self.batch_size):
            stop = start + self.batch_size
            batch = {k: t[start:stop] for k, t in tensors.items()}
            if ids is not None:
                batch["id"] = ids[start:stop]
            yield batch
