"""How far below MSE ~1.05 can an honest model go on covid.train.csv? Measures why the answer is "not far".

The rows are overlapping 5-day windows of 37 states' daily series: one row's days 2-5 are, value for value,
another row's days 1-4. So the day-5 ``tested_positive`` a model must predict for one row is, for most rows,
written as ``tested_positive`` of day 4 (3, 2, 1) in the features of the next rows. A random split (the
seed's, or k-fold) puts those rows on the other side of it. This script, on the same 5 folds as
``scripts/experiments/cv_mlp_covid.py``, reports:

* the window structure: rows whose successor window is in the file, how many runs of consecutive windows;
* ``past only``: least squares on what a row itself holds (days 1-4 and the day-5 survey answers), the honest
  model class every kt model belongs to;
* ``two-sided``: least squares that is also given the next two days' ``tested_positive`` (the future); a
  yardstick for how much information the 0.90 target needs, not a model anyone can deploy;
* the gaps: for a row whose next-day window is not in the file, the nearest later window of its state whose
  first day is one of this row's days 3-5 (2-4 days later), i.e. how many windows are missing inside each
  state's run and how long the holes are;
* ``lookup``: the leak itself — a test row's answer copied from its successor window when that is in the
  training rows (least squares otherwise).

    python scripts/experiments/covid_windows.py --data-dir DIR    # DIR holds covid.train.csv; or set KT_DATA_DIR
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

STATES, DAY = 37, 16  # one-hot state columns, then 16 survey features per day (tested_positive last)


def successors(x: np.ndarray) -> np.ndarray:
    """Row index of the window one day later (its day 1 == this row's day 2, all 16 values), or -1."""
    key = lambda block: [tuple(r) for r in np.round(block, 6)]  # noqa: E731
    first = {k: i for i, k in enumerate(key(x[:, STATES : STATES + DAY]))}
    return np.array([first.get(k, -1) for k in key(x[:, STATES + DAY : STATES + 2 * DAY])])


def gaps(x: np.ndarray, y: np.ndarray, nxt: np.ndarray) -> tuple[np.ndarray, int]:
    """For rows without a next-day window: how many windows later (2-4) the state's next window in the file
    starts (0: none within 4 days); and the number of chains of windows that are left."""
    days = [x[:, STATES + DAY * d : STATES + DAY * (d + 1)] for d in range(4)] + [
        np.c_[x[:, STATES + DAY * 4 :], y]  # day 5, its tested_positive being the target
    ]
    key = lambda block: [tuple(r) for r in np.round(block, 6)]  # noqa: E731
    first = {k: i for i, k in enumerate(key(days[0]))}
    later = np.zeros(len(x), int)
    for step in (2, 3, 4):
        found = np.array([first.get(k, -1) for k in key(days[step])]) >= 0
        later[(nxt < 0) & (later == 0) & found] = step
    linked = (nxt >= 0) | (later > 0)
    return later[nxt < 0], int(len(x) - linked.sum())


def lstsq_mse(a_train: np.ndarray, y_train: np.ndarray, a_test: np.ndarray, y_test: np.ndarray) -> tuple:
    coef, *_ = np.linalg.lstsq(np.c_[a_train, np.ones(len(a_train))], y_train, rcond=None)
    pred = np.c_[a_test, np.ones(len(a_test))] @ coef
    return pred, float(np.mean((pred - y_test) ** 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_dir = Path(os.environ["KT_DATA_DIR"]) / "covid" if os.environ.get("KT_DATA_DIR") else None
    parser.add_argument("--data-dir", type=Path, default=default_dir, required=default_dir is None,
                        help="the folder with covid.train.csv (default: $KT_DATA_DIR/covid)")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()

    from kt.core.splits import train_val_test
    from kt.tabular.covid_reader import read_covid_csv

    table = read_covid_csv(args.data_dir / "covid.train.csv")
    x, y = table.values[:, :-1], table.values[:, -1]
    tp = [STATES + DAY * d + DAY - 1 for d in range(4)]  # tested_positive of days 1-4
    nxt = successors(x)
    has_next = nxt >= 0
    print(
        f"{len(x)} rows; {has_next.sum()} have their next-day window in the file "
        f"({len(x) - has_next.sum()} runs of consecutive windows, {STATES} states)"
    )
    print(
        "  next window's tested_positive_d4 == this row's target:",
        bool(np.array_equal(x[nxt[has_next], tp[3]], y[has_next])),
    )

    # Holes inside the runs: the same windows, 2-4 days later, follow most run ends.
    later, chains = gaps(x, y, nxt)
    holes = {step - 1: int((later == step).sum()) for step in (2, 3, 4)}
    missing = sum(k * v for k, v in holes.items())
    share = missing / (len(x) + missing)
    print(
        f"  of the {len(later)} rows without a next-day window, {int((later > 0).sum())} have their state's next "
        f"window 2-4 days later: holes of 1/2/3 missing windows: {holes[1]}/{holes[2]}/{holes[3]} "
        f"({missing} windows missing inside {chains} chains of windows)"
    )
    # Windows missing at random with probability p leave holes of length L with frequency ~ (1-p)^2 p^L.
    n_full = len(x) + missing
    expected = [n_full * (1 - share) ** 2 * share**k for k in (1, 2, 3)]
    print(
        f"  if {missing} of {n_full} windows were removed at random (p={share:.3f}): holes of 1/2/3 expected "
        + "/".join(f"{e:.0f}" for e in expected)
    )

    # Two-sided yardstick: rows whose next two windows exist, their targets are days t+1 and t+2.
    two = np.flatnonzero(has_next)
    two = two[nxt[nxt[two]] >= 0]
    future = np.c_[y[nxt[two]], y[nxt[nxt[two]]]]
    print(f"  {len(two)} rows have their next two windows in the file")

    scores: dict[str, list[float]] = {}
    for fold in range(args.folds):
        rows = train_val_test(len(x), 0.2, 5201314, fold, args.folds)
        train, test = np.concatenate([rows["train"], rows["val"]]), rows["test"]
        pred, mse = lstsq_mse(x[train], y[train], x[test], y[test])
        scores.setdefault("past only (least squares, all features)", []).append(mse)
        in_train = np.zeros(len(x), bool)
        in_train[train] = True
        leak = has_next[test] & in_train[np.maximum(nxt[test], 0)]
        pred[leak] = x[nxt[test[leak]], tp[3]]
        scores.setdefault("lookup: answer copied from the next window (leak)", []).append(
            float(np.mean((pred - y[test]) ** 2))
        )
        scores.setdefault("  share of test rows whose answer is in training features", []).append(leak.mean())
        # The yardstick, on the rows that have two next days: the same least squares, without and with them.
        tr, te = np.isin(two, train), np.isin(two, test)
        base = x[two]
        scores.setdefault("past only, the rows with 2 next days", []).append(
            lstsq_mse(base[tr], y[two][tr], base[te], y[two][te])[1]
        )
        with_future = np.c_[base, future]
        scores.setdefault("two-sided: the same + tested_positive of the next 2 days", []).append(
            lstsq_mse(with_future[tr], y[two][tr], with_future[te], y[two][te])[1]
        )
    print(f"{args.folds}-fold test MSE, mean ± std (same folds as scripts/experiments/cv_mlp_covid.py):")
    for name, values in scores.items():
        print(f"  {name:58s} {np.mean(values):.4f} ± {np.std(values):.4f}")


if __name__ == "__main__":
    main()
