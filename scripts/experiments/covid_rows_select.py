"""Choose among a few kt configs for COVID by cross-validated validation MSE, never looking at the test folds.

Each candidate is a JSON dict of ``kt fit`` overrides (dotted keys, as on the command line) over ``--config``.
For each of the 5 folds of ``cv_mlp_covid.py`` (fold k held out, 20% of the other rows the validation split,
the rest trained on) it runs ``kt fit`` and keeps the best checkpoint's ``val/mse``, the score ``kt tune``
gives a trial (the mean over folds). No test split is scored. For scale it also prints least squares and
ridge (standardised, ``RidgeCV``) fitted on the same training rows and scored on the same validation rows;
the networks' figure is slightly optimistic next to theirs, since early stopping picks its epoch on those rows.

    OMP_NUM_THREADS=1 python scripts/experiments/covid_rows_select.py --config mlp_covid_wide \\
        '{}' '{"data.init_args.top_k": null}' --data-dir "$KT_DATA_DIR/covid"
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from cv_mlp_covid import fit_quietly  # the script beside this one


def overrides(candidate: dict) -> list[str]:
    return [a for key, value in candidate.items()
            for a in (f"--{key}", value if isinstance(value, str) else json.dumps(value))]


def best_val(config: str, data_dir: Path, workdir: Path, extra: list[str]) -> tuple[float, int]:
    cli = fit_quietly(config, data_dir, workdir, extra)
    return float(cli.trainer.checkpoint_callback.best_model_score), cli.trainer.current_epoch


def linear_val(values: np.ndarray, train: np.ndarray, val: np.ndarray) -> dict[str, float]:
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = values[:, :-1], values[:, -1]
    coef, *_ = np.linalg.lstsq(np.c_[x[train], np.ones(len(train))], y[train], rcond=None)
    out = {"least squares": float(np.mean((np.c_[x[val], np.ones(len(val))] @ coef - y[val]) ** 2))}
    ridge = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13))).fit(x[train], y[train])
    out["ridge"] = float(np.mean((ridge.predict(x[val]) - y[val]) ** 2))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("candidates", nargs="+", help="JSON dicts of kt overrides over --config")
    parser.add_argument("--config", default="mlp_covid_wide", help="the base config (file or shipped name)")
    default_dir = Path(os.environ["KT_DATA_DIR"]) / "covid" if os.environ.get("KT_DATA_DIR") else None
    parser.add_argument("--data-dir", type=Path, default=default_dir, required=default_dir is None)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--group-by", choices=["row", "state"], default="row")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import logging

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import torch

    from kt.cli import resolve_config
    from kt.core.splits import train_val_test
    from kt.tabular.covid_reader import read_covid_csv, state_of_rows

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    config = resolve_config(args.config)
    table = read_covid_csv(args.data_dir / "covid.train.csv")
    groups = state_of_rows(table) if args.group_by == "state" else None
    splits = [train_val_test(len(table), 0.2, 5201314, k, args.folds, groups) for k in range(args.folds)]
    refs = [linear_val(table.values, s["train"], s["val"]) for s in splits]
    for name in refs[0]:
        vals = [r[name] for r in refs]
        print(f"{name}: val {np.mean(vals):.4f} ({' / '.join(f'{v:.3f}' for v in vals)})", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for text in args.candidates:
            candidate, start, vals, epochs = json.loads(text), time.perf_counter(), [], []
            for k in range(args.folds):
                extra = ["--data.init_args.fold", str(k), "--data.init_args.num_folds", str(args.folds),
                         "--data.init_args.group_by", args.group_by, *overrides(candidate)]
                val, epoch = best_val(config, args.data_dir, Path(tmp), extra)
                vals.append(val)
                epochs.append(epoch)
            print(f"{text}: val {np.mean(vals):.4f} ({' / '.join(f'{v:.3f}' for v in vals)}), epochs "
                  f"{'/'.join(map(str, epochs))}, {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
