"""``kt cv``: train a config's k fold models (k-fold cross-validation), keep each fold's best checkpoint.

    kt cv --config mlp_covid_tuned --num-folds 5 --out runs/cv_covid -- --data.init_args.data_dir data/covid
    kt predict-ensemble --config mlp_covid_tuned --ckpt_path runs/cv_covid      # the folds' mean prediction

Fold k is ``kt fit`` with the fold's overrides: by default ``--data.init_args.fold k
--data.init_args.num_folds K`` (``CovidDataModule``: fold k is held out as the test split, the validation
split comes from the other rows); for data with its own fold files, one ``--folds`` string of overrides per
fold (e.g. the DKVMN ``trainK``/``validK`` files). A fold's score is the best value of the model's monitored
validation metric (``val/mse`` for the MLP, ``val/auc`` for DKT). ``kt tune`` scores its trials the same way.

``DIR/folds.csv`` lists fold, score, epochs and best checkpoint; ``DIR/checkpoints.txt`` the checkpoints, one
a line (what ``kt predict-ensemble --ckpt_path DIR`` reads). Rerunning the command skips the folds that
``folds.csv`` already has.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import shlex
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml
from lightning.pytorch import Callback, LightningModule, Trainer

from kt.core.errors import InputError, one_line_errors
from kt.core.predictions import write_csv_atomically

FOLD_KEY = "data.init_args.fold"
NUM_FOLDS_KEY = "data.init_args.num_folds"


class BestScore(Callback):
    """The best value of ``monitor`` over the run's validation epochs (sanity checks excluded) and the
    value after each epoch: the fold's score, whether or not checkpoints are written."""

    def __init__(self, monitor: str, mode: str) -> None:
        self.monitor = monitor
        self.mode = mode
        self.history: list[float] = []

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        self.history.append(float(trainer.callback_metrics[self.monitor]))

    @property
    def best(self) -> float:
        finite = [v for v in self.history if math.isfinite(v)]
        if not finite:
            return math.nan
        return min(finite) if self.mode == "min" else max(finite)


@dataclass
class FoldResult:
    score: float
    epochs: int
    seconds: float
    checkpoint: str | None


# Keys of a subcommand, not of the config: `kt fit --print_config` and a run folder's config.yaml carry them,
# the subcommand-less parser of ``run_cli(..., run=False)`` refuses them.
RUN_ONLY_KEYS = ("ckpt_path", "weights_only")


def fit_config_args(config: str) -> list[str]:
    """``--config`` arguments that make ``run_cli(..., run=False)`` (which has no subcommand, so does not
    read the trainer defaults by itself) parse ``config`` as ``kt fit --config config`` does."""
    from kt.cli import trainer_config_files

    path = Path(config)
    if path.is_file():
        content = yaml.safe_load(path.read_text())
        if isinstance(content, dict) and any(key in content for key in RUN_ONLY_KEYS):
            # The config without them, passed as YAML text (jsonargparse reads a --config value that is not a file
            # as the config itself).
            config = yaml.safe_dump({k: v for k, v in content.items() if k not in RUN_ONLY_KEYS}, sort_keys=False)
    return [arg for path in [*trainer_config_files(), config] for arg in ("--config", path)]


def fold_overrides(folds: list[str] | None, num_folds: int, fold_key: str, num_folds_key: str) -> list[list[str]]:
    """The ``kt fit`` arguments of each fold: the ``--folds`` strings (shell-split), else ``fold_key k``
    (and ``num_folds_key K`` unless it is empty) for k in 0..K-1."""
    if folds:
        return [shlex.split(f) for f in folds]
    if num_folds < 2:
        raise InputError(f"--num-folds must be at least 2, got {num_folds}")
    extra = [f"--{num_folds_key}", str(num_folds)] if num_folds_key else []
    return [[f"--{fold_key}", str(k), *extra] for k in range(num_folds)]


def quiet_lightning() -> None:
    """Trials and folds run in one process: Lightning's per-run notices would drown the summary lines."""
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="lightning")
    warnings.filterwarnings("ignore", module="torch")


def fit_fold(config: str, args: list[str], log_dir: Path, name: str, keep_best: Path | None = None,
             verbose: bool = False) -> FoldResult:
    """``kt fit --config config *args`` in-process, logging under ``log_dir/name``.

    With ``keep_best``, the best checkpoint (on the model's monitored metric) is written as
    ``keep_best/best.ckpt`` and nothing else; without, no checkpoint is written at all.
    """
    run_args = [
        *fit_config_args(config), *args,
        "--trainer.enable_progress_bar", "false",
        "--trainer.enable_model_summary", "false",
        "--trainer.logger.init_args.save_dir", str(log_dir),
        "--trainer.logger.init_args.name", name,
    ]  # fmt: skip
    if keep_best is None:
        run_args += ["--checkpoint.save_top_k", "0", "--checkpoint.save_last", "false"]
    else:
        run_args += ["--checkpoint.dirpath", str(keep_best), "--checkpoint.filename", "best",
                     "--checkpoint.save_top_k", "1", "--checkpoint.save_last", "false"]
    from kt.cli import run_cli

    start = time.perf_counter()
    cli = run_cli(run_args, run=False)  # without a subcommand: `kt fit`'s parser, nothing run yet
    if not getattr(cli.datamodule, "validates", True):
        raise InputError("a fold is scored on its validation split: valid_ratio 0 leaves none (use it with kt fit)")
    model = cli.model
    tracker = BestScore(getattr(model, "monitor", "val/loss"), getattr(model, "monitor_mode", "min"))
    cli.trainer.callbacks.append(tracker)
    with contextlib.ExitStack() as stack:
        if not verbose:
            stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
        cli.trainer.fit(model, datamodule=cli.datamodule)
    checkpoint = cli.trainer.checkpoint_callback.best_model_path if keep_best is not None else None
    return FoldResult(tracker.best, cli.trainer.current_epoch, time.perf_counter() - start, checkpoint or None)


def split_extra(argv: list[str]) -> tuple[list[str], list[str]]:
    """``argv`` before ``--`` (the tool's options) and after it (passed to ``kt fit`` unchanged)."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1 :]
    return argv, []


def add_fold_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num-folds", type=int, default=5, help="number of folds (default 5)")
    parser.add_argument("--fold-key", default=FOLD_KEY, help=f"the config key of the fold index (default {FOLD_KEY})")
    parser.add_argument("--num-folds-key", default=NUM_FOLDS_KEY,
                        help=f"the config key of the number of folds (default {NUM_FOLDS_KEY}; '' for none)")
    parser.add_argument("--folds", nargs="+", metavar="OVERRIDES",
                        help="instead of --fold-key: one quoted string of `kt fit` arguments per fold, e.g. "
                             "'--data.init_args.train_file train1.csv --data.init_args.val_file valid1.csv'")


def main(argv: list[str] | None = None) -> None:
    own, extra = split_extra(list(sys.argv[1:] if argv is None else argv))
    parser = argparse.ArgumentParser(
        prog="kt cv", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="kt cv --config CONFIG --out DIR [options] [-- KT_FIT_ARGS ...]",
    )
    parser.add_argument("--config", required=True, help="a config file or the name of a shipped config")
    parser.add_argument("--out", type=Path, required=True, help="folder for the fold models and folds.csv")
    add_fold_options(parser)
    parser.add_argument("--verbose", action="store_true", help="show Lightning's output")
    args = parser.parse_args(own)
    with one_line_errors("kt cv"):
        run_folds(args, extra)


def run_folds(args: argparse.Namespace, extra: list[str]) -> None:
    from kt.cli import resolve_config

    config = resolve_config(args.config)
    folds = fold_overrides(args.folds, args.num_folds, args.fold_key, args.num_folds_key)
    if not args.verbose:
        quiet_lightning()
    table_path = args.out / "folds.csv"
    done = pd.read_csv(table_path) if table_path.is_file() else pd.DataFrame()
    rows = done.to_dict("records")
    for k, fold_args in enumerate(folds):
        if any(int(r["fold"]) == k for r in rows):
            print(f"fold {k}: done before (folds.csv)", flush=True)
            continue
        result = fit_fold(config, [*extra, *fold_args], args.out, f"fold_{k}", keep_best=args.out / f"fold_{k}",
                          verbose=args.verbose)
        if result.checkpoint is None:
            raise InputError(f"fold {k} wrote no checkpoint: did it validate at least once?")
        rows.append({"fold": k, "score": result.score, "epochs": result.epochs, "checkpoint": result.checkpoint})
        write_csv_atomically(pd.DataFrame(rows), table_path)
        print(f"fold {k}: best {result.score:.6g} after {result.epochs} epochs ({result.seconds:.0f} s)", flush=True)
    rows.sort(key=lambda r: int(r["fold"]))
    (args.out / "checkpoints.txt").write_text("".join(f"{r['checkpoint']}\n" for r in rows))
    scores = [float(r["score"]) for r in rows]
    spread = statistics.stdev(scores) if len(scores) > 1 else 0.0
    print(f"{len(scores)} folds: mean {statistics.mean(scores):.6g} ± {spread:.6g} (sample std); "
          f"checkpoints in {args.out / 'checkpoints.txt'}")
