"""Seeded train/validation/test splits of groups, for every DataModule.

A group is what must never have members on two sides: a row (COVID's seed split), a state (COVID's
``group_by: state``), a student (knowledge tracing) or an image (MNIST). A split is a seeded permutation
of the groups, cut into consecutive pieces (:func:`split_groups`), or into folds one of which is the
test split (:func:`train_val_test`); :func:`rows_of_groups` maps a split of group labels to the rows
that carry them.

Two permutations are offered because published results were measured with both: ``torch`` is
``torch.randperm`` with ``torch.Generator().manual_seed(seed)``, the order ``torch.utils.data.random_split``
uses (the HW1 seed's COVID split, MNIST's validation images); ``numpy`` is
``np.random.default_rng(seed).permutation`` (the knowledge-tracing student splits).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch

from kt.core.errors import InputError

Permutation = Literal["torch", "numpy"]


def seeded_order(num_groups: int, seed: int, permutation: Permutation = "torch") -> np.ndarray:
    """A permutation of ``0..num_groups-1`` that depends on ``seed`` only (int64)."""
    if permutation == "torch":
        return torch.randperm(num_groups, generator=torch.Generator().manual_seed(seed)).numpy()
    if permutation == "numpy":
        return np.random.default_rng(seed).permutation(num_groups)
    raise ValueError(f"permutation must be 'torch' or 'numpy', got '{permutation}'")


def cut(order: np.ndarray, sizes: dict[str, int | None]) -> dict[str, np.ndarray]:
    """Consecutive pieces of ``order``, in the order of ``sizes``; at most one size ``None`` takes the rest."""
    rest = [name for name, size in sizes.items() if size is None]
    fixed = sum(size for size in sizes.values() if size is not None)
    if len(rest) > 1 or any(size is not None and size < 0 for size in sizes.values()):
        raise ValueError(f"sizes must be >= 0 with at most one None, got {sizes}")
    if fixed > len(order) or (not rest and fixed != len(order)):
        # Sizes come from configured fractions/counts: a configuration error, not a bug.
        raise InputError(f"split sizes {sizes} do not fit the {len(order)} groups (rows, students, images)")
    pieces, start = {}, 0
    for name, size in sizes.items():
        size = len(order) - fixed if size is None else size
        pieces[name] = order[start : start + size]
        start += size
    return pieces


def split_groups(
    num_groups: int, sizes: dict[str, int | None], seed: int, permutation: Permutation = "torch"
) -> dict[str, np.ndarray]:
    """The groups of each split: :func:`cut` of the seeded permutation (so pieces are in random order)."""
    return cut(seeded_order(num_groups, seed, permutation), sizes)


def train_val_test(
    num_groups: int,
    valid_ratio: float,
    seed: int,
    fold: int | None = None,
    num_folds: int = 5,
    groups: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The groups of "train", "val" and "test" (torch permutation).

    With ``groups`` (a label per row, ``num_groups`` rows), the distinct labels are split as below and the
    result is each split's rows (:func:`rows_of_groups`): no label has rows on two sides.

    Without ``fold``: ``torch.utils.data.random_split``'s split, ``int(valid_ratio * n)`` validation groups
    (the last ones of the permutation); "test" is "val".

    With ``fold``: the permutation cut into ``num_folds`` near-equal folds (``np.array_split``); fold ``fold``
    is "test", and of the other folds (in permutation order) the last ``int(valid_ratio * len)`` groups are
    "val", the others "train". Over ``fold = 0..num_folds-1`` every group is tested exactly once.
    """
    if groups is not None:
        if len(groups) != num_groups:
            raise ValueError(f"{len(groups)} group labels for {num_groups} rows")
        return rows_of_groups(groups, lambda n: train_val_test(n, valid_ratio, seed, fold, num_folds))
    order = seeded_order(num_groups, seed)
    if fold is None:
        split = cut(order, {"train": None, "val": int(valid_ratio * num_groups)})
        return split | {"test": split["val"]}
    if not 2 <= num_folds <= num_groups:
        raise InputError(
            f"num_folds must be between 2 and the number of rows (of groups with group_by) {num_groups}, "
            f"got {num_folds}"
        )
    if not 0 <= fold < num_folds:
        raise InputError(f"fold must be in 0..{num_folds - 1}, got {fold}")
    folds = np.array_split(order, num_folds)
    rest = np.concatenate([f for i, f in enumerate(folds) if i != fold])
    return cut(rest, {"train": None, "val": int(valid_ratio * len(rest))}) | {"test": folds[fold]}


def rows_of_groups(groups: np.ndarray, split: Callable[[int], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Split the distinct labels of ``groups`` (one label per row) with ``split(number of labels)`` and return
    each split's rows, in row order: every row goes where its label goes. Labels are numbered in sorted
    order, so the result does not depend on the order of the rows."""
    labels, label_of_row = np.unique(groups, return_inverse=True)
    chosen = split(len(labels))
    return {name: np.flatnonzero(np.isin(label_of_row, picked)) for name, picked in chosen.items()}
