"""scripts/experiments/kt_benchmark.py: one CSV row per finished cell, resumable, and the table built from it."""

from __future__ import annotations

import csv
import importlib.util
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent


def load_benchmark():
    spec = importlib.util.spec_from_file_location("kt_benchmark", ROOT / "scripts" / "experiments" / "kt_benchmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_three_line(path: Path, students: int, steps: int, skills: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(students):
        ids = rng.integers(1, skills + 1, size=steps)
        lines += [str(steps), ",".join(map(str, ids)), ",".join(map(str, rng.integers(0, 2, size=steps)))]
    path.write_text("\n".join(lines) + "\n")


def tiny_data(root: Path) -> None:
    """Folds 1 and 2 of two data sets, named as the published files (no name maps: ids only)."""
    for dataset, prefix in (("assist2015", "assist2015_"), ("statics2011", "STATICS_")):
        (root / dataset).mkdir(parents=True)
        for fold in (1, 2):
            write_three_line(root / dataset / f"{prefix}train{fold}.csv", 24, 12, 4, seed=fold)
            write_three_line(root / dataset / f"{prefix}valid{fold}.csv", 8, 12, 4, seed=10 + fold)


def row(dataset, model, fold, seed, auc, seconds=2.0):
    return {"dataset": dataset, "model": model, "fold": str(fold), "seed": str(seed), "val_auc": str(auc),
            "val_acc": "0.7", "best_epoch": "1", "epochs": "1", "seconds_per_epoch": str(seconds), "seconds": "2",
            "overrides": ""}


def test_table_gives_mean_and_sample_std_and_counts_what_is_missing():
    bench = load_benchmark()
    rows = [row("assist2009", "dkt_gru", f, 1, auc) for f, auc in [(1, 0.81), (2, 0.83), (3, 0.82)]]
    rows += [row("synthetic5", "dkt_gru", 1, s, auc) for s, auc in [(1, 0.80), (2, 0.79), (3, 0.81)]]
    page = bench.table(rows, ["synthetic5", "assist2009"], ["dkt_gru", "dkvmn"], None, None, "python x")
    synthetic = f"{statistics.mean([0.80, 0.79, 0.81]):.4f} ± {statistics.stdev([0.80, 0.79, 0.81]):.4f}"
    assist = f"{statistics.mean([0.81, 0.83, 0.82]):.4f} ± {statistics.stdev([0.81, 0.83, 0.82]):.4f} (3/5)"
    assert f"| dkt_gru | {synthetic} | {assist} |" in page
    assert "| dkvmn | missing 0/3 | missing 0/5 |" in page
    assert "| DKVMN | 0.827 | 0.816 |" in page  # the paper's reference row, per data set
    assert "python x" in page


def test_a_tuned_file_joins_the_cells_of_its_model_and_data_set(tmp_path, monkeypatch):
    bench = load_benchmark()
    monkeypatch.setattr(bench, "CONFIGS", tmp_path)
    (tmp_path / "tuned").mkdir()
    (tmp_path / "tuned" / "dkt_statics2011.yaml").write_text("model: {init_args: {lr: 0.01}}\n")

    def command(dataset):
        return bench.fit_command(dataset, "dkt_lstm", 1, 1, None, 10, False, tmp_path / "run", [])

    tuned = command("statics2011")
    # After the data and model configs, before the variant's own override (the core), so both apply.
    start = tuned.index("model/dkt") + 1
    assert tuned[start:start + 4] == ["--config", "tuned/dkt_statics2011", "--model.init_args.backbone", "lstm"]
    assert "tuned/dkt_statics2011" not in command("assist2009")
    assert bench.tuned_config("statics2011", "dkt_gru") == ["--config", "tuned/dkt_statics2011"]
    assert bench.tuned_config("statics2011", "sakt") == []


@pytest.mark.slow
def test_benchmark_writes_a_row_per_cell_and_a_rerun_recomputes_nothing(tmp_path, monkeypatch):
    bench = load_benchmark()
    tiny_data(tmp_path / "data")
    out, runs = tmp_path / "out", tmp_path / "runs"
    argv = ["--data-root", str(tmp_path / "data"), "--datasets", "assist2015", "statics2011", "--models", "dkt_gru",
            "--folds", "1", "2", "--max-epochs", "1", "--no-download", "--out", str(out), "--log-dir", str(runs),
            "--", "--model.init_args.emb_size", "8", "--model.init_args.hidden_size", "8",
            "--data.init_args.batch_size", "8", "--data.init_args.verify", "false"]
    assert bench.main(argv) == 0

    with (out / "kt_benchmark.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["dataset"], r["fold"], r["seed"]) for r in rows] == [
        ("assist2015", "1", "1"), ("assist2015", "2", "1"), ("statics2011", "1", "1"), ("statics2011", "2", "1")]
    for r in rows:
        # The AUC of the row is the one Lightning logged for the epoch (read independently here).
        metrics = pd.read_csv(runs / f"{r['dataset']}-dkt_gru-fold{r['fold']}-seed1" / "version_0" / "metrics.csv")
        logged = metrics["val/auc"].dropna()
        assert len(logged) == 1 and r["epochs"] == "1"
        assert float(r["val_auc"]) == pytest.approx(logged.max(), abs=5e-5)
        assert float(r["seconds"]) > 0 and float(r["seconds_per_epoch"]) > 0

    # A rerun finds every cell in the CSV: nothing is fitted again, and the rows stay as they were.
    def refuse(*args, **kwargs):
        raise AssertionError("a finished cell was run again")

    monkeypatch.setattr(bench, "run_cell", refuse)
    before = (out / "kt_benchmark.csv").read_text()
    assert bench.main(argv) == 0
    assert (out / "kt_benchmark.csv").read_text() == before

    page = (out / "kt_benchmark.md").read_text()
    for dataset, title in (("assist2015", "ASSIST2015"), ("statics2011", "Statics2011")):
        aucs = [float(r["val_auc"]) for r in rows if r["dataset"] == dataset]
        assert f"{statistics.mean(aucs):.4f} ± {statistics.stdev(aucs):.4f}" in page
        assert title in page
    assert "kt_benchmark.py --data-root" in page
