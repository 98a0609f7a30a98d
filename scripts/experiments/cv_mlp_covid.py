"""Cross-validated MSE of kt configs on covid.train.csv, with reference models and fold ensembles on the same rows.

For each fold k of ``--folds`` (``CovidDataModule(fold=k)``): fold k is held out as the test split (no part
of training sees it, early stopping included), ``valid_ratio`` of the other rows is the validation split that
early stopping and checkpointing follow, the rest is trained on. The best checkpoint's ``test/mse`` on
fold k is that fold's score. Also reported, on exactly the same test rows and trained on all the other
rows: predicting the mean, ordinary least squares on all 116 features, ridge regression (standardised, the
penalty chosen by ``RidgeCV`` on the training rows) and ``StandardScaler + MLPRegressor((64, 32))`` with
early stopping (scikit-learn's reference models are skipped when it is not installed; it is not a kt
dependency).

    OMP_NUM_THREADS=1 python scripts/experiments/cv_mlp_covid.py --config mlp_covid_tuned --data-dir DIR
    OMP_NUM_THREADS=1 python scripts/experiments/cv_mlp_covid.py --config mlp_covid_tuned --config mlp_covid_cv

``--config`` is a shipped config's name (``kt/configs/NAME.yaml``) or a path (repeatable); ``--data-dir`` holds
covid.train.csv (default: ``$KT_DATA_DIR/covid``).

``--ensemble-folds J`` also scores each config's fold ensemble: on fold k's non-test rows, ``kt cv`` trains
the config's J fold models (inner folds of those rows only) and ``kt predict-ensemble`` predicts fold k's
test rows with their mean.

``--group-by state`` splits states instead of rows (``CovidDataModule(group_by="state")``, for the reference
models and the inner folds too): no state has rows on both sides, so no test row's answer is written in a
training row (``scripts/experiments/covid_windows.py`` shows how often it is with row splits).

``--refit`` also scores each config refitted on all of fold k's non-test rows (``valid_ratio: 0``, no early
stopping) for as many epochs as its early-stopped run on that fold took to its best checkpoint: the protocol
of a shipped refit config (``mlp_covid_refit``), whose epoch count the folds chose.

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


def quiet():
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)


def fit_quietly(config: str, data_dir: Path, workdir: Path, extra: list[str]):
    """``kt fit`` of a config in-process (no progress bar, no model summary, stdout silenced); returns the CLI."""
    from kt.cli import run_cli
    from kt.cv import fit_config_args

    args = [
        *fit_config_args(config), "--data.init_args.data_dir", str(data_dir),
        "--trainer.logger.init_args.save_dir", str(workdir), "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
    ] + extra  # fmt: skip
    cli = run_cli(args, run=False)
    cli.before_fit()  # what `kt fit` does first (e.g. no early stopping without a validation split)
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return cli


def fit_and_test(config: str, data_dir: Path, workdir: Path, extra: list[str]) -> dict[str, float]:
    """``kt fit`` then ``kt test`` of the best checkpoint; returns the logged test metrics and val/mse."""
    cli = fit_quietly(config, data_dir, workdir, extra)
    import torch

    best = cli.trainer.checkpoint_callback
    best_epochs = torch.load(best.best_model_path, weights_only=True)["epoch"] + 1
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        (metrics,) = cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path="best", verbose=False)
    return {"val/mse": float(best.best_model_score), "epochs": cli.trainer.current_epoch,
            "best_epochs": best_epochs, **metrics}


def refit_and_test(config: str, data_dir: Path, workdir: Path, extra: list[str], epochs: int) -> float:
    """Test MSE of the config trained for ``epochs`` epochs on all non-test rows (no validation split)."""
    refit = ["--data.init_args.valid_ratio", "0", "--trainer.max_epochs", str(epochs)]
    cli = fit_quietly(config, data_dir, workdir, extra + refit)
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        (metrics,) = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    return metrics["test/mse"]


def fold_ensemble(config: str, table, train: np.ndarray, test: np.ndarray, inner_folds: int, workdir: Path,
                  extra: list[str]) -> float:
    """Test MSE of the mean of the config's ``inner_folds`` fold models, trained with ``kt cv`` on the
    ``train`` rows only (written as their own covid.train.csv), predicting the ``test`` rows."""
    from kt.cv import main as kt_cv
    from kt.ensemble import checkpoint_paths, predict_ensemble

    workdir.mkdir(parents=True)
    header = ",".join(table.header)
    for name, rows in (("covid.train.csv", train), ("heldout.csv", test)):
        lines = [",".join([table.ids[i], *(f"{v:.17g}" for v in table.values[i])]) for i in rows]
        (workdir / name).write_text(header + "\n" + "\n".join(lines) + "\n")
    data = ["--data.init_args.data_dir", str(workdir)]
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
        kt_cv(["--config", config, "--num-folds", str(inner_folds), "--out", str(workdir / "folds"), "--",
               *data, *extra])
        pred = predict_ensemble(
            checkpoint_paths([str(workdir / "folds")]),
            ["--config", config, *data, "--data.init_args.predict_file", "heldout.csv",
             "--trainer.logger.init_args.save_dir", str(workdir / "logs"),
             "--prediction_writer.output_path", str(workdir / "pred.csv"), *extra],
        )
    import pandas as pd

    predicted = pd.read_csv(pred).iloc[:, -1].to_numpy()
    return float(np.mean((predicted - table.values[test, -1]) ** 2))


def references(values: np.ndarray, train: np.ndarray, test: np.ndarray) -> dict[str, float]:
    x, y = values[:, :-1], values[:, -1]
    out = {"mean": float(np.mean((y[test] - y[train].mean()) ** 2))}
    a = np.c_[x[train], np.ones(len(train))]
    coef, *_ = np.linalg.lstsq(a, y[train], rcond=None)
    out["ols"] = float(np.mean((np.c_[x[test], np.ones(len(test))] @ coef - y[test]) ** 2))
    try:
        from sklearn.linear_model import RidgeCV
        from sklearn.neural_network import MLPRegressor
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
    except ImportError:
        return out
    models = {
        "ridge": make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-3, 3, 13))),
        "sklearn_mlp": make_pipeline(StandardScaler(), MLPRegressor(
            hidden_layer_sizes=(64, 32), early_stopping=True, max_iter=2000, random_state=0)),
    }
    for name, model in models.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(x[train], y[train])
        out[name] = float(np.mean((model.predict(x[test]) - y[test]) ** 2))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", action="append", help="a kt config, file or shipped name (repeatable; "
                        "default mlp_covid_tuned)")
    default_dir = Path(os.environ["KT_DATA_DIR"]) / "covid" if os.environ.get("KT_DATA_DIR") else None
    parser.add_argument("--data-dir", type=Path, default=default_dir, required=default_dir is None,
                        help="the folder with covid.train.csv (default: $KT_DATA_DIR/covid)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--ensemble-folds", type=int, default=0,
                        help="also score each config's fold ensemble of this many inner folds (0: no)")
    parser.add_argument("--refit", action="store_true",
                        help="also refit on all non-test rows for the early-stopped run's epoch count")
    parser.add_argument("--seed-split", action="store_true", help="also train on the seed split")
    parser.add_argument("--no-references", action="store_true")
    parser.add_argument("--group-by", choices=["row", "state"], default="row", help="split rows or states")
    parser.add_argument("--kt-arg", action="append", default=[], help="extra `kt fit` argument (repeatable)")
    args = parser.parse_args()
    quiet()
    import torch

    from kt.cli import resolve_config
    from kt.core.splits import train_val_test
    from kt.tabular.covid_reader import read_covid_csv, state_of_rows

    configs = {Path(c).stem: resolve_config(c) for c in (args.config or ["mlp_covid_tuned"])}
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    table = read_covid_csv(args.data_dir / "covid.train.csv")
    groups = state_of_rows(table) if args.group_by == "state" else None
    args.kt_arg = ["--data.init_args.group_by", args.group_by] + args.kt_arg
    scores: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        if args.seed_split:
            rows = train_val_test(len(table), 0.2, 5201314, groups=groups)
            ref = {} if args.no_references else references(table.values, rows["train"], rows["val"])
            line = f"seed split (by {args.group_by}):"
            for name, config in configs.items():
                m = fit_and_test(config, args.data_dir, Path(tmp), args.kt_arg)
                line += f" {name} val/mse {m['val/mse']:.4f} ({m['epochs']} epochs),"
            print(line + "".join(f" {k} {v:.4f}," for k, v in ref.items()).rstrip(","), flush=True)
        for fold in range(args.folds):
            start = time.perf_counter()
            extra = ["--data.init_args.fold", str(fold), "--data.init_args.num_folds", str(args.folds)]
            rows = train_val_test(len(table), 0.2, 5201314, fold, args.folds, groups)
            seen = np.concatenate([rows["train"], rows["val"]])
            fold_scores = {}
            for name, config in configs.items():
                m = fit_and_test(config, args.data_dir, Path(tmp), extra + args.kt_arg)
                fold_scores[name] = m["test/mse"]
                if args.refit:
                    fold_scores[f"{name} refit"] = refit_and_test(
                        config, args.data_dir, Path(tmp), extra + args.kt_arg, m["best_epochs"])
                    fold_scores[f"{name} epochs"] = m["best_epochs"]
                if args.ensemble_folds:
                    workdir = Path(tmp) / f"ensemble_{name}_{fold}"
                    fold_scores[f"{name} ensemble"] = fold_ensemble(
                        config, table, seen, rows["test"], args.ensemble_folds, workdir, args.kt_arg)
            if not args.no_references:
                fold_scores.update(references(table.values, seen, rows["test"]))
            for k, v in fold_scores.items():
                scores.setdefault(k, []).append(v)
            print(f"fold {fold} ({time.perf_counter() - start:.0f} s):"
                  + ",".join(f" {k} {v:.4f}" for k, v in fold_scores.items()), flush=True)
    print(f"{args.folds}-fold test MSE, mean ± std over folds (split by {args.group_by}):")
    for name, values in scores.items():
        print(f"  {name:24s} {np.mean(values):.4f} ± {np.std(values):.4f}   "
              f"({' / '.join(f'{v:.3f}' for v in values)})")


if __name__ == "__main__":
    main()
