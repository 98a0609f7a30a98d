"""Five-fold cross-validation of a DKT config on the DKVMN ASSISTments 2009 folds (trainK / validK).

    python scripts/experiments/cv_dkt.py --data-dir DIR        # DIR: the DKVMN folds; or set KT_DATA_DIR
    python scripts/experiments/cv_dkt.py --data-dir DIR --folds 1 2 -- --model.init_args.hidden_size 100
    python scripts/experiments/cv_dkt.py --data-dir DIR --results cv.jsonl   # resumable: skips finished folds

Each fold runs `kt fit` with the config (``--config``: a shipped config's name, default ``dkt_assist2009``,
or a path), training on
assist2009_updated_trainK.csv and validating on assist2009_updated_validK.csv; the fold's score is the
best validation AUC (the checkpoint kept). Arguments after `--` go to `kt fit` unchanged. Prints one line
per fold, then mean ± std (sample standard deviation) of AUC and accuracy, seconds per epoch and parameters.
With ``--results``, each fold's result is appended to that file (one JSON line) as soon as it finishes, and
a rerun skips the folds already there (same config and arguments), so an interrupted run can be resumed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from kt.cli import run_cli


def run_fold(config: str, data_dir: str, fold: int, extra: list[str], log_dir: str) -> dict:
    args = [
        "fit", "--config", config,
        "--data.init_args.data_dir", data_dir,
        "--data.init_args.train_file", f"assist2009_updated_train{fold}.csv",
        "--data.init_args.val_file", f"assist2009_updated_valid{fold}.csv",
        "--data.init_args.test_file", f"assist2009_updated_valid{fold}.csv",
        "--data.init_args.download", "false",
        "--trainer.enable_progress_bar", "false",
        "--trainer.logger.init_args.save_dir", log_dir,
        "--trainer.logger.init_args.name", f"fold{fold}",
        *extra,
    ]
    start = time.perf_counter()
    cli = run_cli(args)
    seconds = time.perf_counter() - start
    best = cli.trainer.checkpoint_callback.best_model_path
    # The scores of the kept checkpoint (best val/auc), re-measured.
    scores = cli.trainer.validate(cli.model, datamodule=cli.datamodule, ckpt_path=best, verbose=False)[0]
    return {
        "auc": scores["val/auc"],
        "acc": scores["val/acc"],
        "epochs": cli.trainer.current_epoch,
        "seconds_per_epoch": seconds / max(cli.trainer.current_epoch, 1),
        "params": sum(p.numel() for p in cli.model.parameters()),
    }


def mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {std:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="dkt_assist2009", help="a shipped config's name, or a path")
    default_dir = Path(os.environ["KT_DATA_DIR"]) / "assist2009" if os.environ.get("KT_DATA_DIR") else None
    parser.add_argument("--data-dir", type=Path, default=default_dir, required=default_dir is None,
                        help="folder with assist2009_updated_train1..5/valid1..5 (default: $KT_DATA_DIR/assist2009)")
    parser.add_argument("--folds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--log-dir", default="lightning_logs/cv_dkt_assist2009")
    parser.add_argument("--results", help="JSON-lines file of finished folds: appended to, and read to skip them")
    args, extra = parser.parse_known_args()
    extra = [a for a in extra if a != "--"]

    setting = {"config": args.config, "extra": extra}
    done = {}
    if args.results and Path(args.results).is_file():
        for line in Path(args.results).read_text().splitlines():
            record = json.loads(line)
            if record["setting"] == setting:
                done[record["fold"]] = record["result"]
    results = []
    for fold in args.folds:
        if fold in done:
            result = done[fold]
        else:
            result = run_fold(args.config, str(args.data_dir), fold, extra, args.log_dir)
            if args.results:
                Path(args.results).parent.mkdir(parents=True, exist_ok=True)
                with open(args.results, "a") as handle:
                    handle.write(json.dumps({"setting": setting, "fold": fold, "result": result}) + "\n")
        results.append(result)
        print(f"fold {fold}: val AUC {result['auc']:.4f}, acc {result['acc']:.4f}, {result['epochs']} epochs, "
              f"{result['seconds_per_epoch']:.1f} s/epoch", flush=True)
    print(f"config {args.config} {' '.join(extra)}; {torch.get_num_threads()} threads")
    print(f"val AUC {mean_std([r['auc'] for r in results])} | val acc {mean_std([r['acc'] for r in results])} | "
          f"{statistics.mean(r['seconds_per_epoch'] for r in results):.1f} s/epoch | {results[0]['params']:,} params")


if __name__ == "__main__":
    main()
