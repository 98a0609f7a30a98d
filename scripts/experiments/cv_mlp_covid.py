"""Cross-validated MSE of a kt config on covid.train.csv, with reference models on the same rows.

For each fold k of ``--folds`` (``CovidDataModule(fold=k)``): fold k is held out as the test split (no part
of training sees it, early stopping included), ``valid_ratio`` of the other rows is the validation split that
early stopping and checkpointing follow, the rest is trained on. The best checkpoint's ``test/mse`` on
fold k is that fold's score. Also reported, on exactly the same test rows and trained on all the other
rows: predicting the mean, ordinary least squares on all 116 features and, if scikit-learn is installed
(it is not a kt dependency), ``StandardScaler + MLPRegressor((64, 32))``.

    OMP_NUM_THREADS=1 python scripts/experiments/cv_mlp_covid.py --config configs/mlp_covid_tuned.yaml

``--group-by state`` splits states instead of rows (``CovidDataModule(group_by="state")``, for the reference
models too): no state has rows on both sides, so no test row's answer is written in a training row
(``scripts/experiments/covid_windows.py`` shows how often it is with row splits).

``--seed-split`` also trains once on the seed's split (valid_ratio 0.2, seed 5201314) and reports the best
checkpoint's validation MSE there.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]  # the repository


def quiet():
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)


def fit_and_test(config: str, data_dir: Path, workdir: Path, extra: list[str]) -> dict[str, float]:
    """``kt fit`` then ``kt test`` of the best checkpoint; returns the logged test metrics and val/mse."""
    from kt.cli import run_cli

    args = [
        "--config", str(ROOT / config), "--data.init_args.data_dir", str(data_dir),
        "--trainer.logger.init_args.save_dir", str(workdir), "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
    ] + extra  # fmt: skip
    cli = run_cli(args, run=False)
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        best_val = float(cli.trainer.checkpoint_callback.best_model_score)
        (metrics,) = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)
    return {"val/mse": best_val, "epochs": cli.trainer.current_epoch, **metrics}


def references(values: np.ndarray, train: np.ndarray, test: np.ndarray) -> dict[str, float]:
    x, y = values[:, :-1], values[:, -1]
    out = {"mean": float(np.mean((y[test] - y[train].mean()) ** 2))}
    a = np.c_[x[train], np.ones(len(train))]
    coef, *_ = np.linalg.lstsq(a, y[train], rcond=None)
    out["ols"] = float(np.mean((np.c_[x[test], np.ones(len(test))] @ coef - y[test]) ** 2))
    try:
        from sklearn.neural_network import MLPRegressor
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        return out
    model = make_pipeline(StandardScaler(), MLPRegressor(hidden_layer_sizes=(64, 32), max_iter=2000, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(x[train], y[train])
    out["sklearn_mlp"] = float(np.mean((model.predict(x[test]) - y[test]) ** 2))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_dir = Path(os.environ.get("KT_DATA_DIR", ROOT.parent / "shared" / "data")) / "covid"
    parser.add_argument("--config", default="configs/mlp_covid_tuned.yaml")
    parser.add_argument("--data-dir", type=Path, default=default_dir)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed-split", action="store_true", help="also train on the seed split")
    parser.add_argument("--no-references", action="store_true")
    parser.add_argument("--group-by", choices=["row", "state"], default="row", help="split rows or states")
    parser.add_argument("--kt-arg", action="append", default=[], help="extra `kt fit` argument (repeatable)")
    args = parser.parse_args()
    quiet()
    import torch

    from kt.core.splits import train_val_test
    from kt.tabular.covid_reader import read_covid_csv, state_of_rows

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    table = read_covid_csv(args.data_dir / "covid.train.csv")
    groups = state_of_rows(table) if args.group_by == "state" else None
    args.kt_arg = ["--data.init_args.group_by", args.group_by] + args.kt_arg
    scores: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.seed_split:
            start = time.perf_counter()
            m = fit_and_test(args.config, args.data_dir, Path(tmp), args.kt_arg)
            rows = train_val_test(len(table), 0.2, 5201314, groups=groups)
            ref = {} if args.no_references else references(table.values, rows["train"], rows["val"])
            print(
                f"seed split (by {args.group_by}): kt val/mse {m['val/mse']:.4f} ({m['epochs']} epochs, "
                f"{time.perf_counter() - start:.0f} s)"
                + "".join(f", {k} {v:.4f}" for k, v in ref.items()),
                flush=True,
            )
        for fold in range(args.folds):
            start = time.perf_counter()
            extra = ["--data.init_args.fold", str(fold), "--data.init_args.num_folds", str(args.folds)]
            m = fit_and_test(args.config, args.data_dir, Path(tmp), extra + args.kt_arg)
            rows = train_val_test(len(table), 0.2, 5201314, fold, args.folds, groups)
            seen = np.concatenate([rows["train"], rows["val"]])
            ref = {} if args.no_references else references(table.values, seen, rows["test"])
            scores.setdefault("kt", []).append(m["test/mse"])
            for k, v in ref.items():
                scores.setdefault(k, []).append(v)
            print(
                f"fold {fold}: kt test/mse {m['test/mse']:.4f} (val {m['val/mse']:.4f}, {m['epochs']} epochs, "
                f"{time.perf_counter() - start:.0f} s)" + "".join(f", {k} {v:.4f}" for k, v in ref.items()),
                flush=True,
            )
    print(f"{args.folds}-fold test MSE, mean ± std over folds ({args.config}, split by {args.group_by}):")
    for name, values in scores.items():
        print(f"  {name:12s} {np.mean(values):.4f} ± {np.std(values):.4f}")


if __name__ == "__main__":
    main()
