"""``kt tune``: hyperparameter search over a kt config with Optuna, each trial scored by k-fold cross-validation.

    kt tune --config mlp_covid_tuned --space space.yaml --out runs/tune --n-trials 40 \\
        -- --data.init_args.data_dir data/covid --data.init_args.group_by state

The search space is a YAML mapping from config keys to ranges or choices:

    model.init_args.lr: {low: 1.0e-4, high: 1.0e-2, log: true}   # float range (log-uniform)
    model.init_args.dropout: {low: 0.0, high: 0.3, step: 0.1}     # float grid
    early_stopping.patience: {low: 20, high: 200}                  # both ends integers: an integer range
    model.init_args.hidden_sizes: {choices: [[16, 8], [64, 32], [32]]}
    data.init_args.batch_size: {choices: [32, 64, 128]}

Every key must be one the config's ``kt fit`` parser knows (``kt fit --config X --print_config`` lists them).

A trial runs ``kt fit`` once per fold, in this process, with the trial's values, logging under
``OUT/trial_N/fold_K`` and writing no checkpoint. Folds are ``--fold-key`` (default ``data.init_args.fold``)
0..K-1 with ``--num-folds`` K, or one ``--folds`` string of overrides per fold, e.g. the DKVMN fold files of
knowledge tracing: ``--folds "--data.init_args.train_file assist2009_updated_train1.csv
--data.init_args.val_file assist2009_updated_valid1.csv" "...train2.csv ...valid2.csv"``. The trial's score is
the mean over folds of the best value of the model's monitored validation metric (``val/mse``: minimised;
``val/auc``: maximised); test splits are never looked at. After each fold the fold's score is reported to the
pruner (``--pruner median``: a trial whose fold score is worse than the median of earlier trials' at the same
fold stops there, state PRUNED). A trial that raises (a value the model refuses, bad input) or scores NaN is
recorded as FAIL with the reason in its ``error`` attribute, and the study goes on.

The study lives in ``--storage`` (default ``OUT/study.db``, SQLite): rerunning the same command resumes it,
keeping every finished trial; ``--n-trials`` is the number of finished trials (complete, pruned or failed)
the study should have. Written after every trial, in ``OUT``:

* ``best.yaml``: the base config with the best trial's values merged in (``kt fit --config OUT/best.yaml``);
* ``trials.csv``: one row per trial: number, state, score, per-fold scores, values, seconds, error;
* ``optimization_history.png``: Optuna's optimization-history plot.

Arguments after ``--`` go to every ``kt fit`` unchanged (data location, protocol, trainer limits).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from kt.core.errors import InputError, one_line_errors
from kt.core.predictions import write_csv_atomically
from kt.cv import add_fold_options, fit_config_args, fit_fold, fold_overrides, quiet_lightning, split_extra

SPEC_KEYS = {"low", "high", "log", "step", "choices"}
FINISHED = ("COMPLETE", "PRUNED", "FAIL")


# ------------------------------------------------------------------------------------------- search space
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load_space(path: str | Path) -> dict[str, dict]:
    """The search space file, checked: every problem is one InputError naming the file and the key."""
    path = Path(path)
    try:
        space = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise InputError(f"search space {path}: no such file") from None
    except yaml.YAMLError as err:
        raise InputError(f"search space {path}: not valid YAML: {' '.join(str(err).split())}") from None
    if not isinstance(space, dict) or not space:
        raise InputError(f"search space {path}: expected a mapping of config keys to ranges or choices")
    for key, spec in space.items():
        where = f"search space {path}: {key}"
        if not isinstance(spec, dict):
            raise InputError(f"{where}: expected {{low: .., high: ..}} or {{choices: [..]}}, got {spec!r}")
        unknown = sorted(set(spec) - SPEC_KEYS)
        if unknown:
            expected = ", ".join(sorted(SPEC_KEYS))
            raise InputError(f"{where}: unknown spec key(s) {', '.join(unknown)}; expected {expected}")
        if "choices" in spec:
            if set(spec) != {"choices"}:
                others = ", ".join(sorted(set(spec) - {"choices"}))
                raise InputError(f"{where}: choices cannot be combined with {others}")
            if not isinstance(spec["choices"], list) or not spec["choices"]:
                raise InputError(f"{where}: choices must be a non-empty list, got {spec['choices']!r}")
            continue
        if "low" not in spec or "high" not in spec:
            raise InputError(f"{where}: a range needs both low and high (or give choices)")
        low, high = spec["low"], spec["high"]
        if not (_is_number(low) and _is_number(high)):
            raise InputError(f"{where}: low and high must be numbers, got {low!r} and {high!r}")
        if low > high:
            raise InputError(f"{where}: low {low} > high {high}")
        if spec.get("log") and low <= 0:
            raise InputError(f"{where}: log needs low > 0, got {low}")
        if "step" in spec and spec.get("log"):
            raise InputError(f"{where}: step and log cannot be combined")
        if "step" in spec and not (_is_number(spec["step"]) and spec["step"] > 0):
            raise InputError(f"{where}: step must be a positive number, got {spec['step']!r}")
    return space


def check_keys(space: dict[str, dict], path: str | Path, config: str, args: list[str]) -> tuple[str, str]:
    """Every key of ``space`` is known to the config's ``kt fit`` parser; returns the model's monitored
    metric and its direction."""
    from kt.cli import import_class, run_cli

    fit = run_cli([*fit_config_args(config), *args], run=False).config  # `kt fit`'s parser
    for key in space:
        if key not in fit:
            raise InputError(f"search space {path}: {key}: not an option of this config "
                             f"(`kt fit --config {config} --print_config` lists them)")
    cls = import_class(fit.model.class_path)
    return getattr(cls, "monitor", "val/loss"), getattr(cls, "monitor_mode", "min")


def _encode(choice: Any) -> Any:
    # Optuna's categorical choices are None/bool/int/float/str: a list or mapping travels as its JSON text.
    return choice if choice is None or isinstance(choice, (bool, int, float, str)) else json.dumps(choice)


def _decode(spec: dict, value: Any) -> Any:
    if "choices" in spec and isinstance(value, str) and value not in spec["choices"]:
        return json.loads(value)
    return value


def suggest(trial, space: dict[str, dict]) -> dict[str, Any]:
    values = {}
    for key, spec in space.items():
        if "choices" in spec:
            value = trial.suggest_categorical(key, [_encode(c) for c in spec["choices"]])
            values[key] = _decode(spec, value)
            continue
        low, high, step, log = spec["low"], spec["high"], spec.get("step"), bool(spec.get("log"))
        if isinstance(low, int) and isinstance(high, int) and not isinstance(step, float):
            value = trial.suggest_int(key, low, high, step=step or 1, log=log)
        else:
            value = trial.suggest_float(key, low, high, step=step, log=log)
        values[key] = value
    return values


def as_argument(value: Any) -> str:
    """A value as ``kt fit`` reads it on the command line (YAML/JSON text; strings as they are)."""
    return value if isinstance(value, str) else json.dumps(value)


def overrides(values: dict[str, Any]) -> list[str]:
    return [arg for key, value in values.items() for arg in (f"--{key}", as_argument(value))]


# ------------------------------------------------------------------------------------------------ outputs
def merged_config(base: str, values: dict[str, Any]) -> dict:
    """The base config file with ``values`` (dotted keys) set in it."""
    config = yaml.safe_load(Path(base).read_text()) or {}
    for key, value in values.items():
        node = config
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return config


class _ConfigDumper(yaml.SafeDumper):
    """Block-style mappings with flow-style lists (``hidden_sizes: [64, 32]``), as the shipped configs."""


_ConfigDumper.add_representer(
    list, lambda dumper, data: dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=True)
)


def write_best(study, space: dict, base: str, out: Path, command: str, metric: str, extra: list[str]) -> None:
    best = study.best_trial
    values = {k: _decode(space[k], v) for k, v in best.params.items() if k in space}
    folds = best.user_attrs.get("fold_scores", [])
    header = (
        f"# kt tune: trial {best.number} of {len(study.trials)}, the best mean {metric} over "
        f"{len(folds)} folds: {best.value:.6g} (folds: {', '.join(f'{s:.4g}' for s in folds)})\n"
        f"# {command}\n"
        f"# Values tuned: {', '.join(values)}\n"
    )
    if extra:
        header += f"# The trials also had (not merged here): {shlex.join(extra)}\n"
    text = header + yaml.dump(merged_config(base, values), Dumper=_ConfigDumper, sort_keys=False)
    tmp = out / ".best.yaml.tmp"
    tmp.write_text(text)
    tmp.replace(out / "best.yaml")


def trials_table(study, space: dict) -> pd.DataFrame:
    rows = []
    for t in study.trials:
        row: dict[str, Any] = {"number": t.number, "state": t.state.name, "score": t.value}
        for k, score in enumerate(t.user_attrs.get("fold_scores", [])):
            row[f"fold_{k}"] = score
        for key, spec in space.items():
            value = _decode(spec, t.params[key]) if key in t.params else None
            row[key] = json.dumps(value) if isinstance(value, (list, dict)) else value
        row["epochs"] = " ".join(str(e) for e in t.user_attrs.get("fold_epochs", []))
        row["seconds"] = t.duration.total_seconds() if t.duration else None
        row["error"] = t.user_attrs.get("error", "")
        rows.append(row)
    return pd.DataFrame(rows, dtype=object)  # ints stay ints next to the empty cells of pruned or failed trials


def write_plot(study, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the matplotlib backend is marked experimental
        ax = optuna.visualization.matplotlib.plot_optimization_history(study)
    ax.figure.tight_layout()
    ax.figure.savefig(path, dpi=100)
    plt.close(ax.figure)


# ----------------------------------------------------------------------------------------------- the study
def one_line_reason(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text if isinstance(err, InputError) else f"{type(err).__name__}: {text}"


def make_objective(config: str, extra: list[str], folds: list[list[str]], space: dict, out: Path,
                   verbose: bool):
    import optuna

    def objective(trial: optuna.Trial) -> float:
        values = suggest(trial, space)
        scores: list[float] = []
        epochs: list[int] = []
        try:
            for k, fold_args in enumerate(folds):
                result = fit_fold(config, [*extra, *fold_args, *overrides(values)], out / f"trial_{trial.number}",
                                  f"fold_{k}", verbose=verbose)
                if math.isnan(result.score):
                    raise InputError(f"fold {k}: the monitored metric was never finite (NaN loss?)")
                scores.append(result.score)
                epochs.append(result.epochs)
                trial.set_user_attr("fold_scores", scores)
                trial.set_user_attr("fold_epochs", epochs)
                trial.report(result.score, k)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"fold {k} score {result.score:.6g}")
        except optuna.TrialPruned:
            raise
        except Exception as err:
            trial.set_user_attr("error", one_line_reason(err))
            raise
        return statistics.mean(scores)

    return objective


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kt tune", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="kt tune --config CONFIG --space SPACE.yaml --out DIR [options] [-- KT_FIT_ARGS ...]",
    )
    parser.add_argument("--config", required=True, help="the base config: a file or a shipped config's name")
    parser.add_argument("--space", required=True, help="the search space YAML file")
    parser.add_argument("--out", type=Path, required=True, help="folder for the study, trial logs and results")
    parser.add_argument("--n-trials", type=int, default=20,
                        help="finished trials (complete, pruned or failed) the study should reach (default 20)")
    parser.add_argument("--timeout", type=float, default=None, help="stop starting trials after this many seconds")
    parser.add_argument("--storage", default=None, help="Optuna storage URL or SQLite file (default OUT/study.db)")
    parser.add_argument("--study-name", default="kt-tune", help="study name inside the storage (default kt-tune)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the TPE sampler (default 0)")
    parser.add_argument("--startup-trials", type=int, default=10,
                        help="random trials before TPE models the space (default 10)")
    parser.add_argument("--pruner", choices=["median", "none"], default="median",
                        help="median: stop a trial after a fold worse than the median of earlier trials there")
    parser.add_argument("--prune-after", type=int, default=5,
                        help="trials that finish before the pruner starts comparing (default 5)")
    add_fold_options(parser)
    parser.add_argument("--verbose", action="store_true", help="show Lightning's output")
    return parser


def storage_url(value: str | None, out: Path) -> str:
    if value and "://" in value:
        return value
    return f"sqlite:///{Path(value) if value else out / 'study.db'}"


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    own, extra = split_extra(argv)
    args = build_parser().parse_args(own)
    with one_line_errors("kt tune"):
        tune(args, extra, "kt tune " + shlex.join(argv))


def tune(args: argparse.Namespace, extra: list[str], command: str):
    import optuna

    from kt.cli import resolve_config

    config = resolve_config(args.config)
    if not Path(config).is_file():
        raise InputError(f"--config {args.config}: no such file or shipped config")
    if args.n_trials < 1:
        raise InputError(f"--n-trials must be at least 1, got {args.n_trials}")
    space = load_space(args.space)
    folds = fold_overrides(args.folds, args.num_folds, args.fold_key, args.num_folds_key)
    if not args.verbose:
        quiet_lightning()
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    metric, mode = check_keys(space, args.space, config, [*extra, *folds[0]])
    args.out.mkdir(parents=True, exist_ok=True)
    # Heartbeats let a resumed study mark the trial a killed run left RUNNING as failed.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(storage_url(args.storage, args.out), heartbeat_interval=60,
                                             grace_period=180)
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=args.prune_after) if args.pruner == "median"
              else optuna.pruners.NopPruner())
    study = optuna.create_study(
        study_name=args.study_name, storage=storage, load_if_exists=True,
        direction="minimize" if mode == "min" else "maximize",
        sampler=optuna.samplers.TPESampler(seed=args.seed, n_startup_trials=args.startup_trials), pruner=pruner,
    )

    def finished() -> int:
        return sum(t.state.name in FINISHED for t in study.trials)

    def after_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        write_csv_atomically(trials_table(study, space), args.out / "trials.csv")
        if any(t.state.name == "COMPLETE" for t in study.trials):
            write_best(study, space, config, args.out, command, metric, extra)
            write_plot(study, args.out / "optimization_history.png")
        folds_done = ", ".join(f"{s:.4g}" for s in trial.user_attrs.get("fold_scores", []))
        value = f"{trial.value:.6g}" if trial.value is not None else "-"
        reason = f" ({trial.user_attrs['error']})" if trial.user_attrs.get("error") else ""
        best = f"{study.best_value:.6g}" if any(t.state.name == "COMPLETE" for t in study.trials) else "-"
        print(f"trial {trial.number}: {trial.state.name} {metric} {value} [folds {folds_done}]{reason}; "
              f"best {best}; {trial.params}", flush=True)

    remaining = args.n_trials - finished()
    if remaining <= 0:
        print(f"the study already has {finished()} finished trials (--n-trials {args.n_trials})")
    else:
        print(f"{finished()} finished trials in the study; running {remaining} more "
              f"({len(folds)} folds each, {mode}imising {metric})", flush=True)
        start = time.perf_counter()
        study.optimize(make_objective(config, extra, folds, space, args.out, args.verbose), n_trials=remaining,
                       timeout=args.timeout, catch=(Exception,), callbacks=[after_trial])
        print(f"{time.perf_counter() - start:.0f} s")
    write_csv_atomically(trials_table(study, space), args.out / "trials.csv")
    if any(t.state.name == "COMPLETE" for t in study.trials):
        write_best(study, space, config, args.out, command, metric, extra)
        print(f"best: trial {study.best_trial.number}, {metric} {study.best_value:.6g}; {args.out / 'best.yaml'}")
    else:
        print("no trial completed: no best.yaml")
    return study
