"""The knowledge-tracing benchmark: validation AUC of each model on the DKVMN authors' four splits.

    python scripts/experiments/kt_benchmark.py --data-root "$KT_DATA_DIR"
    python scripts/experiments/kt_benchmark.py --data-root DIR --datasets synthetic5 statics2011 \\
        --models dkt_gru --folds 1 --max-epochs 5 -- --data.init_args.batch_size 64

A cell is one (dataset, model, fold, seed): `kt fit --config data/<dataset> --config model/<model>` (plus
`kt/configs/tuned/<model>_<dataset>.yaml` where one exists) trained on ``trainK`` and validated on ``validK``,
in its own process. Its score is the best validation AUC over the epochs (the checkpoint kept) and the
accuracy of that epoch. Every finished cell is appended to ``<out>/kt_benchmark.csv`` at once, and cells
already there are skipped: an interrupted run continues where it stopped (a cell cut off midway starts over).
``<out>/kt_benchmark.md`` is rebuilt from the CSV after every cell: mean ± sample std over the folds
(Synthetic-5 has one fold: three seeds instead), and what is still missing. The test splits are never read.
Arguments after ``--`` go to every `kt fit`.
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

DATASETS = {"synthetic5": (1,), "assist2009": (1, 2, 3, 4, 5), "assist2015": (1, 2, 3, 4, 5),
            "statics2011": (1, 2, 3, 4, 5)}
DATASET_TITLES = {"synthetic5": "Synthetic-5", "assist2009": "ASSIST2009", "assist2015": "ASSIST2015",
                  "statics2011": "Statics2011"}
# Benchmark name -> (model config, overrides). The DKT variants share model/dkt.yaml.
MODELS = {
    "dkt_gru": ("dkt", ["--model.init_args.backbone", "gru"]),
    "dkt_lstm": ("dkt", ["--model.init_args.backbone", "lstm"]),
    "dkvmn": ("dkvmn", []),
    "sakt": ("sakt", []),
    "akt": ("akt", []),
}
# One fold: the spread comes from seeds instead.
DEFAULT_SEEDS = {"synthetic5": (1, 2, 3)}
FIELDS = ["dataset", "model", "fold", "seed", "val_auc", "val_acc", "best_epoch", "epochs", "seconds_per_epoch",
          "seconds", "overrides"]
# Test AUC (%) in the DKVMN paper's table, on the test splits: a reference point, not a like-for-like comparison.
PAPER = {"DKT": (80.3, 80.5, 72.5, 80.2), "DKVMN": (82.7, 81.6, 72.7, 82.8)}
ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "kt" / "configs"


def cells(datasets, models, folds, seeds):
    for dataset in datasets:
        for model in models:
            for fold in [f for f in DATASETS[dataset] if not folds or f in folds]:
                for seed in seeds or DEFAULT_SEEDS.get(dataset, (1,)):
                    yield dataset, model, fold, seed


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def key(row) -> tuple[str, str, int, int]:
    return row["dataset"], row["model"], int(row["fold"]), int(row["seed"])


def append_row(path: Path, row: dict) -> None:
    new = not path.is_file() or path.stat().st_size == 0
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        if new:
            writer.writeheader()
        writer.writerow(row)
        handle.flush()
        os.fsync(handle.fileno())


def tuned_config(dataset: str, model: str) -> list[str]:
    """``--config tuned/<model config>_<dataset>`` where that file exists, else nothing."""
    name = f"tuned/{MODELS[model][0]}_{dataset}"
    return ["--config", name] if (CONFIGS / f"{name}.yaml").is_file() else []


def fit_command(dataset, model, fold, seed, data_root, max_epochs, download, run_dir, extra) -> list[str]:
    config, overrides = MODELS[model]
    return [
        sys.executable, "-m", "kt", "fit",
        "--config", f"data/{dataset}", "--config", f"model/{config}", *tuned_config(dataset, model),
        *overrides,
        "--data.init_args.fold", str(fold),
        *(["--data.init_args.data_dir", str(Path(data_root) / dataset)] if data_root else []),
        *([] if download else ["--data.init_args.download", "false"]),
        "--seed_everything", str(seed),
        "--trainer.max_epochs", str(max_epochs),
        "--trainer.enable_progress_bar", "false",
        # Per-epoch metrics as CSV, to read the best epoch back; version 0 (the folder is cleared first).
        "--trainer.logger", "lightning.pytorch.loggers.CSVLogger",
        "--trainer.logger.init_args.save_dir", str(run_dir.parent),
        "--trainer.logger.init_args.name", run_dir.name,
        "--trainer.logger.init_args.version", "0",
        "--prediction_writer.output_path", str(run_dir / "predictions.csv"),
        *extra,
    ]


def best_epoch(metrics_csv: Path) -> dict:
    """The epoch of the best validation AUC in Lightning's ``metrics.csv`` (what the checkpoint keeps)."""
    epochs = {}
    for row in read_rows(metrics_csv):
        if row.get("val/auc"):
            epochs[int(row["epoch"])] = (float(row["val/auc"]), float(row.get("val/acc") or "nan"))
    if not epochs:
        raise RuntimeError(f"{metrics_csv}: no validation AUC logged")
    epoch = max(epochs, key=lambda e: epochs[e][0])
    return {"best_epoch": epoch + 1, "epochs": len(epochs), "val_auc": epochs[epoch][0], "val_acc": epochs[epoch][1]}


def run_cell(dataset, model, fold, seed, args, extra) -> dict:
    run_dir = Path(args.log_dir) / f"{dataset}-{model}-fold{fold}-seed{seed}"
    shutil.rmtree(run_dir, ignore_errors=True)  # a cell cut off midway starts over
    run_dir.mkdir(parents=True)
    command = fit_command(dataset, model, fold, seed, args.data_root, args.max_epochs, not args.no_download,
                          run_dir, extra)
    # The `kt` next to this script, whatever is installed.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    start = time.perf_counter()
    with (run_dir / "fit.log").open("w") as log:
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    seconds = time.perf_counter() - start
    if code != 0:
        raise RuntimeError(f"kt fit exited with {code}; see {run_dir / 'fit.log'}")
    result = best_epoch(run_dir / "version_0" / "metrics.csv")
    return {
        "dataset": dataset, "model": model, "fold": fold, "seed": seed,
        "val_auc": f"{result['val_auc']:.4f}", "val_acc": f"{result['val_acc']:.4f}",
        "best_epoch": result["best_epoch"], "epochs": result["epochs"],
        "seconds_per_epoch": f"{seconds / result['epochs']:.1f}", "seconds": f"{seconds:.0f}",
        "overrides": shlex.join([*tuned_config(dataset, model), *extra]),
    }


def mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {std:.4f}"


def table(rows: list[dict], datasets, models, folds, seeds, command: str) -> str:
    """The Markdown page: mean ± std of validation AUC per model and data set, with what is missing."""
    done = {key(r): r for r in rows}
    lines = [
        "# Knowledge-tracing benchmark (validation AUC)",
        "",
        "Validation AUC on the DKVMN authors' folds (train on `trainK`, validate on `validK`), mean ± sample std "
        "over the folds (Synthetic-5: one fold, over seeds); `n/N` counts the finished cells. Rebuilt from "
        "`kt_benchmark.csv` by `scripts/experiments/kt_benchmark.py` after every cell.",
        "",
        "| model | " + " | ".join(DATASET_TITLES[d] for d in datasets) + " |",
        "| --- |" + " --- |" * len(datasets),
    ]
    speed = ["| model | " + " | ".join(DATASET_TITLES[d] for d in datasets) + " |", lines[-1]]
    for model in models:
        auc, secs = [], []
        for dataset in datasets:
            wanted = list(cells([dataset], [model], folds, seeds))
            found = [done[c] for c in wanted if c in done]
            if not found:
                auc.append(f"missing 0/{len(wanted)}")
                secs.append("")
                continue
            text = mean_std([float(r["val_auc"]) for r in found])
            auc.append(text if len(found) == len(wanted) else f"{text} ({len(found)}/{len(wanted)})")
            secs.append(f"{statistics.mean(float(r['seconds_per_epoch']) for r in found):.1f}")
        lines.append(f"| {model} | " + " | ".join(auc) + " |")
        speed.append(f"| {model} | " + " | ".join(secs) + " |")
    titles = list(DATASET_TITLES)
    paper = ["| model | " + " | ".join(DATASET_TITLES[d] for d in datasets) + " |", lines[5]]
    for name, values in PAPER.items():
        paper.append(f"| {name} | " + " | ".join(f"{values[titles.index(d)] / 100:.3f}" for d in datasets) + " |")
    return "\n".join([
        *lines, "",
        "Seconds per epoch (wall time of the whole `kt fit` process, start-up and validation included, divided by "
        "its epochs; mean over the finished cells):", "", *speed, "",
        "For orientation only, the test AUC of the DKVMN paper (Zhang et al., WWW 2017) on the test splits, as "
        "commonly cited (a different split and protocol than the validation folds above):", "", *paper, "",
        "The last command run on this CSV (earlier cells may come from other selections of the same table):", "",
        "```bash", command, "```", "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-root", default=os.environ.get("KT_DATA_DIR"),
                        help="folder with one subfolder per data set (default: $KT_DATA_DIR, else data/)")
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--folds", nargs="+", type=int, help="default: every fold of each data set")
    parser.add_argument("--seeds", nargs="+", type=int, help="default: 1 2 3 on Synthetic-5, 1 elsewhere")
    parser.add_argument("--max-epochs", type=int, default=15)
    parser.add_argument("--no-download", action="store_true", help="fail instead of downloading absent files")
    parser.add_argument("--out", default="docs/results", help="where kt_benchmark.csv and .md go")
    parser.add_argument("--log-dir", default="lightning_logs/kt_benchmark", help="one run folder per cell")
    parser.add_argument("--table-only", action="store_true",
                        help="only rebuild kt_benchmark.md from the CSV for the selection (run nothing)")
    argv = sys.argv[1:] if argv is None else argv
    own, extra = (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    args = parser.parse_args(own)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "kt_benchmark.csv"
    # The page names the command that computes its cells (a --table-only rebuild computes none).
    shown = [a for a in argv if a != "--table-only"]
    command = shlex.join(["python", "scripts/experiments/kt_benchmark.py", *shown])

    def write_table() -> None:
        page = table(read_rows(results), args.datasets, args.models, args.folds, args.seeds, command)
        tmp = out / ".kt_benchmark.md.tmp"
        tmp.write_text(page)
        tmp.replace(out / "kt_benchmark.md")

    if args.table_only:
        write_table()
        return 0
    failed = 0
    for cell in cells(args.datasets, args.models, args.folds, args.seeds):
        if cell in {key(r) for r in read_rows(results)}:
            continue
        print(f"{'/'.join(map(str, cell))}: running", flush=True)
        try:
            row = run_cell(*cell, args, extra)
        except RuntimeError as err:
            failed += 1
            print(f"{'/'.join(map(str, cell))}: failed ({err})", flush=True)
            continue
        append_row(results, row)
        print(f"{'/'.join(map(str, cell))}: val AUC {row['val_auc']}, acc {row['val_acc']}, {row['epochs']} epochs, "
              f"{row['seconds_per_epoch']} s/epoch", flush=True)
        write_table()
    write_table()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
