"""``kt predict-ensemble``: ``kt predict`` with several checkpoints, writing their mean prediction.

    kt predict-ensemble --config mlp_covid_tuned --ckpt_path runs/cv_covid        # kt cv's fold models
    kt predict-ensemble --config dkt_assist2009 --ckpt_path a.ckpt b.ckpt c.ckpt --prediction_writer.output_path p.csv

``--ckpt_path`` takes checkpoint files, or a folder: its ``checkpoints.txt`` (as ``kt cv`` writes) or else
every ``*.ckpt`` under it. Every other argument goes to ``kt predict`` as it is. Each model predicts with
``kt predict`` (its own data state: features and scaler, or vocabulary, from its checkpoint); the file
written has the single model's format, with every float column (the MLP's predicted value, DKT's
``p_correct``) the mean over models and every other column (ids, students, steps, answers) as the models
wrote it, which must agree.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from kt.core.errors import InputError, one_line_errors
from kt.core.predictions import write_csv_atomically


def checkpoint_paths(values: list[str]) -> list[Path]:
    paths: list[Path] = []
    for value in values:
        path = Path(value)
        if path.is_dir():
            listed = path / "checkpoints.txt"
            found = ([Path(line) for line in listed.read_text().split() if line] if listed.is_file()
                     else sorted(path.rglob("*.ckpt")))
            if not found:
                raise InputError(f"--ckpt_path {path}: a folder with no checkpoints.txt and no *.ckpt under it")
            paths += found
        elif path.is_file():
            paths.append(path)
        else:
            raise InputError(f"--ckpt_path {path}: no such file or folder")
    return paths


def mean_predictions(frames: list[pd.DataFrame], names: list[str]) -> pd.DataFrame:
    """The first frame with every float column replaced by its mean over ``frames``; every other column
    must be equal in all of them."""
    first = frames[0]
    for frame, name in zip(frames[1:], names[1:]):
        if list(frame.columns) != list(first.columns) or len(frame) != len(first):
            raise InputError(f"{name}: its predictions have columns {list(frame.columns)} and {len(frame)} rows, "
                             f"{names[0]}'s {list(first.columns)} and {len(first)}: not the same model kind and data")
    out = first.copy()
    for column in first.columns:
        if pd.api.types.is_float_dtype(first[column]):
            out[column] = np.mean(np.stack([f[column].to_numpy(dtype=np.float64) for f in frames]), axis=0)
            continue
        for frame, name in zip(frames[1:], names[1:]):
            if not frame[column].equals(first[column]):
                raise InputError(f"{name}: column {column} differs from {names[0]}'s: the models were not "
                                 "given the same rows (a different data config?)")
    return out


def output_path(predict_args: list[str]) -> str:
    """Where ``kt predict`` with these arguments writes (the config's ``prediction_writer.output_path``)."""
    from kt.cli import run_cli, trainer_config_files, with_shipped_configs

    defaults = [arg for path in trainer_config_files() for arg in ("--config", path)]
    cli = run_cli([*defaults, *with_shipped_configs(predict_args)], run=False)
    return str(cli.config.prediction_writer.output_path)


def predict_ensemble(checkpoints: list[Path], predict_args: list[str]) -> Path:
    from kt.cli import run_cli

    if not checkpoints:
        raise InputError("--ckpt_path: no checkpoints")
    target = Path(output_path(predict_args))
    frames = []
    beside = target.parent if target.parent.is_dir() else None
    with tempfile.TemporaryDirectory(prefix=".kt-ensemble-", dir=beside) as tmp:
        for k, ckpt in enumerate(checkpoints):
            path = Path(tmp) / f"model_{k}.csv"
            run_cli(["predict", *predict_args, "--ckpt_path", str(ckpt), "--prediction_writer.output_path", str(path)])
            frames.append(pd.read_csv(path))
    write_csv_atomically(mean_predictions(frames, [str(c) for c in checkpoints]), target)
    print(f"Wrote the mean of {len(checkpoints)} models' predictions to {target}")
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="kt predict-ensemble", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        usage="kt predict-ensemble --config CONFIG --ckpt_path DIR_OR_CKPT [CKPT ...] [kt predict options]",
    )
    parser.add_argument("--ckpt_path", nargs="+", required=True, help="checkpoints, or a folder (see above)")
    args, predict_args = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    with one_line_errors("kt predict-ensemble"):
        predict_ensemble(checkpoint_paths(args.ckpt_path), predict_args)
