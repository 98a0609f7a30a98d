"""kt.core.splits against independent computations: random_split, numpy's permutation, plain set algebra."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kt.core.errors import InputError
from kt.core.splits import cut, seeded_order, split_groups, train_val_test


def expected_folds(n: int, k: int, seed: int) -> list[list[int]]:
    """k near-equal consecutive folds of random_split's order, written out without numpy's array_split."""
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
    starts = [sum(sizes[:i]) for i in range(k)]
    return [order[s : s + size] for s, size in zip(starts, sizes)]


def test_seed_split_matches_random_split() -> None:
    rows = train_val_test(2299, 0.2, 5201314)
    train, valid = torch.utils.data.random_split(
        range(2299), [1840, 459], generator=torch.Generator().manual_seed(5201314)
    )
    assert rows["train"].tolist() == list(train.indices)
    assert rows["val"].tolist() == list(valid.indices)
    assert rows["test"].tolist() == rows["val"].tolist()


@pytest.mark.parametrize(("n", "k", "seed"), [(103, 5, 7), (10, 10, 0), (37, 3, 5201314)])
def test_folds_partition_the_groups(n: int, k: int, seed: int) -> None:
    folds = expected_folds(n, k, seed)
    tested = []
    for fold in range(k):
        split = train_val_test(n, 0.2, seed, fold, k)
        assert split["test"].tolist() == folds[fold]
        rest = [g for i, f in enumerate(folds) if i != fold for g in f]
        n_valid = int(0.2 * len(rest))
        assert split["train"].tolist() == rest[: len(rest) - n_valid]
        assert split["val"].tolist() == rest[len(rest) - n_valid :]
        sides = [set(split[name].tolist()) for name in ("train", "val", "test")]
        assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
        assert set().union(*sides) == set(range(n))
        tested += split["test"].tolist()
    assert sorted(tested) == list(range(n))  # every group tested exactly once


def test_group_split_keeps_every_group_on_one_side() -> None:
    groups = np.repeat(np.array(list("abcdefghij")), np.arange(1, 11))  # 10 groups of 1..10 rows
    labels = np.array(list("abcdefghij"))  # np.unique's order
    for fold in [None, 0, 3]:
        rows = train_val_test(len(groups), 0.2, 7, fold, 5, groups)
        by_label = train_val_test(10, 0.2, 7, fold, 5)
        for name in ("train", "val", "test"):
            # The rows of a side are exactly the rows whose label the same split of the 10 labels puts there.
            expected = [i for i, g in enumerate(groups) if g in set(labels[by_label[name]])]
            assert rows[name].tolist() == expected
        sides = {name: set(groups[idx]) for name, idx in rows.items()}
        assert not sides["train"] & sides["val"] and not sides["train"] & sides["test"]
    # The row order does not matter: shuffled rows, same labels on each side.
    shuffled = groups[np.random.default_rng(0).permutation(len(groups))]
    assert set(shuffled[train_val_test(55, 0.2, 7, groups=shuffled)["val"]]) == set(
        groups[train_val_test(55, 0.2, 7, groups=groups)["val"]]
    )


def test_numpy_permutation_and_sizes() -> None:
    split = split_groups(523, {"val": 52, "test": 52, "train": None}, seed=42, permutation="numpy")
    order = np.random.default_rng(42).permutation(523).tolist()
    assert split["val"].tolist() == order[:52]
    assert split["test"].tolist() == order[52:104]
    assert split["train"].tolist() == order[104:]


@pytest.mark.parametrize("permutation", ["torch", "numpy"])
def test_deterministic_per_seed(permutation: str) -> None:
    a = split_groups(1000, {"train": None, "val": 100}, 3, permutation)
    b = split_groups(1000, {"train": None, "val": 100}, 3, permutation)
    c = split_groups(1000, {"train": None, "val": 100}, 4, permutation)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["val"], c["val"])
    assert sorted(np.concatenate([a["train"], a["val"]]).tolist()) == list(range(1000))
    assert len(a["val"]) == 100 and len(a["train"]) == 900


def test_cut_checks_sizes() -> None:
    order = np.arange(10)
    pieces = cut(order, {"a": 3, "b": None, "c": 2})
    assert [p.tolist() for p in pieces.values()] == [[0, 1, 2], [3, 4, 5, 6, 7], [8, 9]]
    assert cut(order, {"a": 10})["a"].tolist() == list(range(10))
    with pytest.raises(InputError, match="do not fit the 10 groups"):
        cut(order, {"a": 8, "b": 3, "c": None})
    with pytest.raises(InputError, match="do not fit the 10 groups"):
        cut(order, {"a": 3, "b": 3})
    with pytest.raises(ValueError, match="at most one None"):
        cut(order, {"a": None, "b": None})


def test_bad_fold_options() -> None:
    with pytest.raises(InputError, match="num_folds must be between 2 and"):
        train_val_test(5, 0.2, 0, fold=0, num_folds=6)
    with pytest.raises(InputError, match=r"fold must be in 0\.\.4, got 5"):
        train_val_test(50, 0.2, 0, fold=5, num_folds=5)


def test_seeded_order_is_a_permutation() -> None:
    for permutation in ("torch", "numpy"):
        assert sorted(seeded_order(57, 1, permutation).tolist()) == list(range(57))
    with pytest.raises(ValueError, match="permutation must be"):
        seeded_order(5, 1, "python")
