"""DKT speed in real (scored) interactions per second: a plain padded PyTorch loop, `kt fit` with bucketing off,
`kt fit` with bucketing on; training and evaluation of whole histories; same data and hyperparameters.

    OMP_NUM_THREADS=1 python scripts/benchmarks/dkt_speed.py --data-dir DIR/assist2009 --repeats 2
    OMP_NUM_THREADS=1 python scripts/benchmarks/dkt_speed.py            # simulated students, no data needed

Data: ASSISTments 2009 fold 1 (``assist2009_updated_train1.csv`` for training, ``..._valid1.csv`` evaluated
with whole histories) with ``--data-dir``, else the simulated students of ``dkt_synthetic``. Model and data
options: the config (default ``dkt_assist2009``: GRU 200, batch 32, training windows of 200, evaluation
windows of 1500).

* plain: the loop one writes by hand around the same ``DKTNet``: a shuffling ``DataLoader`` of batch-size
  windows padded to the batch's longest, Adam, mean BCE over real steps; evaluation in batches of batch-size
  whole histories, padded, under ``no_grad``.
* kt, bucket off / on: the Lightning trainer exactly as `kt fit` builds it (``--data.init_args.bucket``),
  validation off during fit; evaluation is ``trainer.validate``.

A real interaction is a scored step (every step of a window but its first). Each variant runs ``--epochs``
training epochs and one evaluation per repeat; the variants alternate, and each figure is the best (fastest)
epoch or evaluation over all repeats: the machine may be shared, and the best is the least disturbed.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, seed_everything
from torch.utils.data import DataLoader

from kt.cli import run_cli
from kt.tracing.data.sequences import collate_windows
from kt.tracing.nets.dkt import DKTNet


class Timer(Callback):
    """Seconds of every training epoch and of every validation run."""

    def __init__(self) -> None:
        self.train: list[float] = []
        self.evaluate: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.train.append(time.perf_counter() - self._start)

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._eval_start = time.perf_counter()

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self.evaluate.append(time.perf_counter() - self._eval_start)


def cli_args(config: str, data_dir: str | None, epochs: int, bucket: bool, log_dir: str) -> list[str]:
    args = ["--config", config]
    if data_dir:
        args += ["--data.init_args.data_dir", data_dir, "--data.init_args.download", "false",
                 "--data.init_args.train_file", "assist2009_updated_train1.csv",
                 "--data.init_args.val_file", "assist2009_updated_valid1.csv",
                 "--data.init_args.test_file", "assist2009_updated_valid1.csv"]
    return [*args, "--data.init_args.bucket", str(bucket).lower(), "--trainer.max_epochs", str(epochs),
            # Validation off during fit (timed on its own), no checkpoint or log churn.
            "--trainer.check_val_every_n_epoch", "100000", "--trainer.num_sanity_val_steps", "0",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--trainer.logger.init_args.save_dir", log_dir]


def scored(dataset) -> int:
    return sum(len(w.skills) - 1 for w in dataset.windows)


def plain_loop(datamodule, hp, epochs: int, batch_size: int) -> tuple[list[float], float]:
    """Training epoch seconds and one evaluation's seconds of the hand-written loop."""
    seed_everything(0)
    net = DKTNet(len(datamodule.vocab), hp.emb_size, hp.hidden_size, hp.num_layers, hp.dropout, hp.backbone)
    optimizer = torch.optim.Adam(net.parameters(), lr=hp.lr)
    train = DataLoader(datamodule.datasets["train"], batch_size=batch_size, shuffle=True, collate_fn=collate_windows)
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        net.train()
        for batch in train:
            logits, _ = net(batch["skills"], batch["correct"])
            logit = logits[:, :-1].gather(-1, batch["skills"][:, 1:].unsqueeze(-1)).squeeze(-1)
            real = batch["mask"][:, 1:]
            loss = F.binary_cross_entropy_with_logits(logit[real], batch["correct"][:, 1:][real].float())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
    evaluation = DataLoader(datamodule.datasets["val"], batch_size=batch_size, collate_fn=collate_windows)
    start = time.perf_counter()
    net.eval()
    with torch.no_grad():
        for batch in evaluation:
            logits, _ = net(batch["skills"], batch["correct"])
            logit = logits[:, :-1].gather(-1, batch["skills"][:, 1:].unsqueeze(-1)).squeeze(-1)
            torch.sigmoid(logit[batch["mask"][:, 1:]])
    return seconds, time.perf_counter() - start


def kt_run(config: str, data_dir: str | None, epochs: int, bucket: bool, log_dir: str):
    cli = run_cli(cli_args(config, data_dir, epochs, bucket, log_dir), run=False)
    timer = Timer()
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)
    return cli, timer.train, timer.evaluate[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="folder with assist2009_updated_train1.csv / valid1.csv; "
                        "default: simulated students")
    parser.add_argument("--config", default=None, help="default: dkt_assist2009 with --data-dir, else dkt_synthetic")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs per variant and repeat")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--log-dir", default="lightning_logs/bench_dkt_speed")
    args = parser.parse_args()
    config = args.config or ("dkt_assist2009" if args.data_dir else "dkt_synthetic")

    train_seconds: dict[str, list[float]] = {"plain": [], "kt, bucket off": [], "kt, bucket on": []}
    eval_seconds: dict[str, list[float]] = {name: [] for name in train_seconds}
    totals: dict[str, list[float]] = {name: [] for name in train_seconds}
    for _ in range(args.repeats):
        for bucket in (False, True):
            cli, train, evaluate = kt_run(config, args.data_dir, args.epochs, bucket, args.log_dir)
            name = f"kt, bucket {'on' if bucket else 'off'}"
            train_seconds[name] += train
            eval_seconds[name].append(evaluate)
            totals[name].append(sum(train))
            if not bucket:  # the plain loop between the two, on the same data module's windows
                batch_size = cli.datamodule.batch_size
                train, evaluate = plain_loop(cli.datamodule, cli.model.hparams, args.epochs, batch_size)
                train_seconds["plain"] += train
                eval_seconds["plain"].append(evaluate)
                totals["plain"].append(sum(train))

    datamodule = cli.datamodule
    train_real, eval_real = scored(datamodule.datasets["train"]), scored(datamodule.datasets["val"])
    plain_train, plain_eval = train_real / min(train_seconds["plain"]), eval_real / min(eval_seconds["plain"])
    print(f"config {config}, data {args.data_dir or 'simulated'}: {train_real:,} real training interactions "
          f"per epoch (windows of <= {datamodule.seq_len + 1}), {eval_real:,} evaluated (windows of <= "
          f"{datamodule.eval_seq_len + 1}); batch {datamodule.batch_size}; {torch.get_num_threads()} threads; "
          f"{args.epochs} epochs x {args.repeats} repeats; best of each")
    print()
    print("| | training interactions/s | × plain | evaluation interactions/s | × plain "
          f"| {args.epochs} training epochs, s (best) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in train_seconds:
        train_rate, eval_rate = train_real / min(train_seconds[name]), eval_real / min(eval_seconds[name])
        print(f"| {name} | {train_rate:,.0f} | {train_rate / plain_train:.2f} | {eval_rate:,.0f} "
              f"| {eval_rate / plain_eval:.2f} | {min(totals[name]):.1f} |")


if __name__ == "__main__":
    main()
