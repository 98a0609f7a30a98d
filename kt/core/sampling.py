"""Sample orders that survive a crash and split across processes.

A resumed run must see the batches the killed run had not reached, in the same order. So the order of an
epoch depends only on (seed, epoch) — never on a global random generator whose state depends on everything
that ran before — and a loader can be told to skip the batches the checkpoint already trained on.
Lightning (2.x) saves ``state_dict()`` of every stateful training loader in the checkpoint and hands it
back to ``load_state_dict()`` when it resumes mid-epoch; it calls ``set_epoch`` on the loader's sampler
at every epoch.

Under DDP each process takes every ``num_replicas``-th sample from ``rank`` on. :class:`EpochSampler`
is a ``DistributedSampler``, so Lightning leaves it in place rather than wrapping it in one of its own.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, DistributedSampler


def global_seed() -> int:
    """The seed of ``seed_everything`` (Lightning's own distributed sampler uses the same), else 0."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


def trained_batches(datamodule: LightningDataModule) -> Callable[[], int]:
    """A function giving how many batches of the current training epoch the model has trained on.

    That is what a resumed loader must skip. It is the trainer's own count, so it holds whatever the loader,
    its workers or Lightning fetch ahead.
    """

    def done() -> int:
        trainer = datamodule.trainer
        return trainer.fit_loop.epoch_loop.batch_progress.current.processed if trainer is not None else 0

    return done


def distributed() -> tuple[int, int]:
    """(world size, rank) of the process group (Lightning starts it before it asks for loaders); (1, 0)
    without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class EpochSampler(DistributedSampler):
    """Indices of one process's share of an epoch; the order is a function of (seed, epoch) only.

    Args:
        size: number of samples.
        shuffle: a fresh permutation every epoch (seeded with ``seed + epoch``); else in order.
        seed: default: the ``seed_everything`` seed.
        num_replicas: number of processes sharing the data; default: the process group's size, 1 without one.
        rank: this process's rank; default: the process group's.
        pad: repeat a few samples so that every process gets the same number (training: each process
            must take the same number of optimizer steps); without it (evaluation) each sample is seen
            exactly once and the shares differ by at most one.
    """

    def __init__(
        self,
        size: int,
        shuffle: bool = True,
        seed: int | None = None,
        num_replicas: int | None = None,
        rank: int | None = None,
        pad: bool = True,
    ) -> None:
        world, own_rank = distributed()
        num_replicas = world if num_replicas is None else num_replicas
        rank = own_rank if rank is None else rank
        super().__init__(
            range(size), num_replicas=num_replicas, rank=rank, shuffle=shuffle,
            seed=global_seed() if seed is None else seed,
        )
        self.size = size
        self.pad = pad
        self._skip = 0

    def index_tensor(self) -> torch.Tensor:
        """This process's indices of the current epoch, as an int64 tensor."""
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed + self.epoch)
            order = torch.randperm(self.size, generator=generator)
        else:
            order = torch.arange(self.size)
        if self.pad and self.size and self.size % self.num_replicas:
            extra = self.num_replicas - self.size % self.num_replicas
            order = torch.cat([order, order.repeat(math.ceil(extra / self.size))[:extra]])
        return order[self.rank :: self.num_replicas]

    def indices(self) -> list[int]:
        return self.index_tensor().tolist()

    def __len__(self) -> int:
        if self.pad:
            return math.ceil(self.size / self.num_replicas)
        return len(range(self.rank, self.size, self.num_replicas))

    def skip(self, count: int) -> None:
        """Leave out the first ``count`` indices of the next iteration only (a resumed epoch)."""
        self._skip = count

    def __iter__(self) -> Iterator[int]:
        # A generator: the order is drawn at the first ``next``, after Lightning's ``set_epoch``.
        skip, self._skip = self._skip, 0
        yield from self.indices()[skip:]


class ResumableLoader(DataLoader):
    """A DataLoader over an :class:`EpochSampler` that Lightning can checkpoint and resume mid-epoch.

    Args:
        progress: returns the number of batches of the current epoch already trained on
            (:func:`trained_batches`).
        Everything else as for ``DataLoader``; ``sampler`` must be an :class:`EpochSampler`.
    """

    def __init__(self, *args: Any, progress: Callable[[], int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, EpochSampler):
            raise TypeError(f"ResumableLoader needs an EpochSampler, got {type(self.sampler).__name__}")
        self.progress = progress

    def state_dict(self) -> dict:
        return {"epoch": self.sampler.epoch, "batches": int(self.progress())}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.set_epoch(state["epoch"])
        self.sampler.skip(state["batches"] * self.batch_size)
