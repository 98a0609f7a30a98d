"""Sample orders that survive a crash and split across processes.

A resumed run must see the batches the killed run had not reached, in the same order. So the order of an
epoch depends only on (seed, epoch) — never on a global random generator whose state depends on everything
that ran before — and a loader can be told to skip the batches the checkpoint already trained on.
Lightning (2.x) saves ``state_dict()`` of every stateful training loader in the checkpoint and hands it
back to ``load_state_dict()`` when it resumes mid-epoch; it calls ``set_epoch`` on the loader's sampler
at every epoch.

Under DDP each process takes every ``num_replicas``-th sample from ``rank`` on. :class:`EpochSampler`
is a ``DistributedSampler``, so Lightning leaves it in place rather than wrapping it in one of its own.

:class:`BucketSampler` yields whole batches of samples of similar length (variable-length sequences waste
little on padding); it is a ``DistributedSampler`` too, used as a DataLoader's ``sampler`` with
``batch_size=None`` (each item it yields is one batch), and shares an epoch across processes batch by batch.
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


class BucketSampler(DistributedSampler):
    """Batches (lists of indices) of samples of similar length; the order is a function of (seed, epoch) only.

    Samples are sorted by length (with ties, and lengths within ``jitter``, broken at random when shuffling)
    and cut into batches of ``batch_size`` samples or, with ``max_tokens``, of at most ``max_tokens`` steps
    counting padding (as many samples as fit; a longer sample alone). Training shuffles the batches; evaluation
    keeps them sorted. Under DDP each process takes every ``num_replicas``-th batch from ``rank`` on.

    Args:
        lengths: the length of every sample.
        batch_size: samples per batch (with ``max_tokens`` unset).
        max_tokens: steps per batch, padding included, instead of a fixed number of samples.
        shuffle: fresh random batches in a fresh order every epoch (seeded with ``seed + epoch``).
        jitter: when shuffling, sort by ``length * exp(u)``, ``u`` uniform in ``[-jitter, jitter]``: batches
            mix lengths within about that fraction, so they change from epoch to epoch (0: exact length).
        seed: default: the ``seed_everything`` seed.
        num_replicas, rank: as for :class:`EpochSampler`.
        pad: repeat a few batches so that every process gets the same number (training); without it every
            batch is used exactly once and the shares differ by at most one batch.
    """

    def __init__(
        self,
        lengths: list[int] | torch.Tensor,
        batch_size: int | None = None,
        max_tokens: int | None = None,
        shuffle: bool = True,
        jitter: float = 0.1,
        seed: int | None = None,
        num_replicas: int | None = None,
        rank: int | None = None,
        pad: bool = True,
    ) -> None:
        if (batch_size is None) == (max_tokens is None):
            raise ValueError("give exactly one of batch_size and max_tokens")
        if (batch_size or max_tokens) < 1:
            raise ValueError(f"batch_size / max_tokens must be positive, got {batch_size or max_tokens}")
        world, own_rank = distributed()
        num_replicas = world if num_replicas is None else num_replicas
        rank = own_rank if rank is None else rank
        self.lengths = torch.as_tensor(lengths, dtype=torch.float64)
        super().__init__(
            range(len(self.lengths)), num_replicas=num_replicas, rank=rank, shuffle=shuffle,
            seed=global_seed() if seed is None else seed,
        )
        self.batch_size = batch_size
        self.max_tokens = max_tokens
        self.jitter = jitter
        self.pad = pad
        self._skip = 0

    def all_batches(self) -> list[list[int]]:
        """Every batch of the current epoch, before the split across processes."""
        key = self.lengths
        if self.shuffle:
            generator = torch.Generator()
            generator.manual_seed(self.seed + self.epoch)
            # A random order first, then a stable sort: equal keys stay in random order.
            shuffled = torch.randperm(len(key), generator=generator)
            noise = (torch.rand(len(key), generator=generator, dtype=torch.float64) * 2 - 1) * self.jitter
            order = shuffled[torch.sort((key * noise.exp())[shuffled], stable=True).indices]
        else:
            generator = None
            order = torch.sort(key, stable=True).indices
        batches = self._cut(order.tolist())
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

    def _cut(self, order: list[int]) -> list[list[int]]:
        if self.max_tokens is None:
            return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        batches, batch, longest = [], [], 0
        for i in order:
            length = int(self.lengths[i])
            if batch and (len(batch) + 1) * max(longest, length) > self.max_tokens:
                batches.append(batch)
                batch, longest = [], 0
            batch.append(i)
            longest = max(longest, length)
        return batches + [batch] if batch else batches

    def batches(self) -> list[list[int]]:
        """This process's batches of the current epoch."""
        batches = self.all_batches()
        if self.pad and batches and len(batches) % self.num_replicas:
            extra = self.num_replicas - len(batches) % self.num_replicas
            batches = batches + (batches * math.ceil(extra / len(batches)))[:extra]
        return batches[self.rank :: self.num_replicas]

    def __len__(self) -> int:
        # Fixed-size batches: known without drawing the epoch. Token budgets: the count varies little with
        # the jitter, so it is drawn (cheap: a sort).
        if self.max_tokens is None:
            total = math.ceil(len(self.lengths) / self.batch_size)
        else:
            total = len(self.all_batches())
        if self.pad:
            return math.ceil(total / self.num_replicas)
        return len(range(self.rank, total, self.num_replicas))

    def skip(self, count: int) -> None:
        """Leave out the first ``count`` batches of the next iteration only (a resumed epoch)."""
        self._skip = count

    def __iter__(self) -> Iterator[list[int]]:
        skip, self._skip = self._skip, 0
        yield from self.batches()[skip:]


class ResumableLoader(DataLoader):
    """A DataLoader over an :class:`EpochSampler` (or a :class:`BucketSampler` with ``batch_size=None``)
    that Lightning can checkpoint and resume mid-epoch.

    Args:
        progress: returns the number of batches of the current epoch already trained on
            (:func:`trained_batches`).
        Everything else as for ``DataLoader``; ``sampler`` must be an :class:`EpochSampler` or
        :class:`BucketSampler`.
    """

    def __init__(self, *args: Any, progress: Callable[[], int], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.sampler, EpochSampler | BucketSampler):
            raise TypeError(
                f"ResumableLoader needs an EpochSampler or BucketSampler, got {type(self.sampler).__name__}"
            )
        if isinstance(self.sampler, BucketSampler) and self.batch_size is not None:
            raise TypeError("a BucketSampler yields whole batches: give the loader batch_size=None")
        self.progress = progress

    def state_dict(self) -> dict:
        return {"epoch": self.sampler.epoch, "batches": int(self.progress())}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.set_epoch(state["epoch"])
        # A BucketSampler yields batches (batch_size None); an EpochSampler yields samples.
        self.sampler.skip(state["batches"] * (self.batch_size or 1))
