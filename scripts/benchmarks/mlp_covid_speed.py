"""Epochs per second of the ML2022Spring HW1 seed configuration: kt vs the seed's own training loop.

Both train the seed's network (116 features -> 16 -> 8 -> 1, ReLU, MSE, SGD lr 1e-5 momentum 0.9, batch 256)
on the seed's split of covid.train.csv, validate every epoch, keep the best weights on disk and log to
TensorBoard, in the same process on the same machine, one after the other. The seed loop is the course's
sample code (per-row ``Dataset.__getitem__`` + ``DataLoader``, tqdm bar per epoch); kt is
``kt fit --config mlp_covid``. Only the training loop is timed (not imports or CSV reading).
A third, bare loop (:func:`run_bare`) shows the ceiling: what eager PyTorch's own optimizer steps cost.

    OMP_NUM_THREADS=1 python scripts/benchmarks/mlp_covid_speed.py --data-dir "$KT_DATA_DIR/covid" --epochs 300
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from lightning.pytorch import Callback
from torch import nn
from torch.utils.data import DataLoader, Dataset, random_split
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

# Wall-clock time by default; --cpu-time counts this process's CPU seconds instead, which other jobs on a
# shared machine disturb far less (with one thread, the two agree on an otherwise idle machine).
clock = time.perf_counter


# ------------------------------------------------------------------------------ the seed (HW1 sample code)
class COVID19Dataset(Dataset):
    def __init__(self, x, y=None):
        self.y = y if y is None else torch.FloatTensor(y)
        self.x = torch.FloatTensor(x)

    def __getitem__(self, idx):
        return self.x[idx] if self.y is None else (self.x[idx], self.y[idx])

    def __len__(self):
        return len(self.x)


class My_Model(nn.Module):  # noqa: N801 - the seed's name
    def __init__(self, input_dim):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(input_dim, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 1))

    def forward(self, x):
        return self.layers(x).squeeze(1)


def seed_trainer(train_loader, valid_loader, model, n_epochs, save_path, log_dir, early_stop=400):
    criterion = nn.MSELoss(reduction="mean")
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-5, momentum=0.9)
    writer = SummaryWriter(log_dir)
    best_loss, step, early_stop_count = math.inf, 0, 0
    for epoch in range(n_epochs):
        model.train()
        loss_record = []
        train_pbar = tqdm(train_loader, position=0, leave=True)
        for x, y in train_pbar:
            optimizer.zero_grad()
            pred = model(x)
            loss = criterion(pred, y)
            loss.backward()
            optimizer.step()
            step += 1
            loss_record.append(loss.detach().item())
            train_pbar.set_description(f"Epoch [{epoch + 1}/{n_epochs}]")
            train_pbar.set_postfix({"loss": loss.detach().item()})
        mean_train_loss = sum(loss_record) / len(loss_record)
        writer.add_scalar("Loss/train", mean_train_loss, step)
        model.eval()
        loss_record = []
        for x, y in valid_loader:
            with torch.no_grad():
                loss = criterion(model(x), y)
            loss_record.append(loss.item())
        mean_valid_loss = sum(loss_record) / len(loss_record)
        print(f"Epoch [{epoch + 1}/{n_epochs}]: Train loss: {mean_train_loss:.4f}, Valid loss: {mean_valid_loss:.4f}")
        writer.add_scalar("Loss/valid", mean_valid_loss, step)
        if mean_valid_loss < best_loss:
            best_loss = mean_valid_loss
            torch.save(model.state_dict(), save_path)
            early_stop_count = 0
        else:
            early_stop_count += 1
        if early_stop_count >= early_stop:
            break
    writer.close()
    return epoch + 1, best_loss


def seed_split(data_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The seed's rows of covid.train.csv: random_split, valid_ratio 0.2, generator seed 5201314."""
    torch.manual_seed(5201314)
    data = pd.read_csv(data_dir / "covid.train.csv").values
    n_valid = int(0.2 * len(data))
    train, valid = random_split(data, [len(data) - n_valid, n_valid], generator=torch.Generator().manual_seed(5201314))
    return np.array(train), np.array(valid)


def run_seed(data_dir: Path, epochs: int, workdir: Path) -> tuple[float, int, float]:
    train, valid = seed_split(data_dir)
    # The seed's select_feat(select_all=True) also fed the id column; here the same 116 features as kt.
    train_set = COVID19Dataset(train[:, 1:-1], train[:, -1])
    valid_set = COVID19Dataset(valid[:, 1:-1], valid[:, -1])
    train_loader = DataLoader(train_set, batch_size=256, shuffle=True, pin_memory=torch.cuda.is_available())
    valid_loader = DataLoader(valid_set, batch_size=256, shuffle=True, pin_memory=torch.cuda.is_available())
    model = My_Model(train_set.x.shape[1])
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
        start = clock()
        done, best = seed_trainer(train_loader, valid_loader, model, epochs, workdir / "seed.ckpt", workdir / "seed_tb")
        elapsed = clock() - start
    return elapsed, done, best


# ------------------------------------------------------------------------------ the floor
def run_bare(data_dir: Path, epochs: int) -> tuple[float, int, float]:
    """The least work an epoch of the seed configuration needs in eager PyTorch: the same split, network,
    optimizer and batch size, the rows already in tensors, one validation forward per epoch; no data loading,
    progress bar, logging, checkpoint or early stopping. No training loop can beat this by much, so it bounds
    the speed-up any loop can show over the seed's."""
    train, valid = (torch.tensor(part, dtype=torch.float32) for part in seed_split(data_dir))
    x, y, vx, vy = train[:, 1:-1], train[:, -1], valid[:, 1:-1], valid[:, -1]
    model = My_Model(x.shape[1])
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-5, momentum=0.9)
    best = math.inf
    start = clock()
    for _ in range(epochs):
        order = torch.randperm(len(x))
        for i in range(0, len(x), 256):
            rows = order[i : i + 256]
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x[rows]), y[rows]).backward()
            optimizer.step()
        with torch.no_grad():
            best = min(best, nn.functional.mse_loss(model(vx), vy).item())
    return clock() - start, epochs, best


# ------------------------------------------------------------------------------ kt
class EpochTimer(Callback):
    def on_train_start(self, trainer, pl_module):
        self.start = clock()

    def on_train_end(self, trainer, pl_module):
        self.elapsed = clock() - self.start
        self.epochs = trainer.current_epoch


def run_kt(data_dir: Path, epochs: int, workdir: Path, config: str, extra: list[str]) -> tuple[float, int, float]:
    from kt.cli import resolve_config, run_cli

    timer = EpochTimer()
    args = [
        "--config", resolve_config(config), "--data.init_args.data_dir", str(data_dir),
        "--trainer.max_epochs", str(epochs), "--trainer.logger.init_args.save_dir", str(workdir / "kt_logs"),
        "--trainer.enable_model_summary", "false",
    ] + extra  # fmt: skip
    cli = run_cli(args, run=False)
    cli.trainer.callbacks.append(timer)
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    best = cli.trainer.checkpoint_callback.best_model_score
    return timer.elapsed, timer.epochs, float(best) if best is not None else math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_dir = Path(os.environ["KT_DATA_DIR"]) / "covid" if os.environ.get("KT_DATA_DIR") else None
    parser.add_argument("--data-dir", type=Path, default=default_dir, required=default_dir is None,
                        help="the folder with covid.train.csv (default: $KT_DATA_DIR/covid)")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--config", default="mlp_covid", help="a shipped config's name, or a path")
    parser.add_argument("--kt-arg", action="append", default=[], help="extra `kt fit` argument (repeatable)")
    parser.add_argument("--skip-seed", action="store_true", help="time kt only")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for both (the default: 1)")
    parser.add_argument("--cpu-time", action="store_true", help="time CPU seconds of this process, not wall time")
    args = parser.parse_args()
    if args.cpu_time:
        global clock
        clock = time.process_time
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        seed_s, seed_epochs, seed_best = (
            (1.0, 1, math.nan) if args.skip_seed else run_seed(args.data_dir, args.epochs, workdir)
        )
        kt_s, kt_epochs, kt_best = run_kt(args.data_dir, args.epochs, workdir, args.config, args.kt_arg)
        bare_s, bare_epochs, bare_best = run_bare(args.data_dir, args.epochs)
    seed_rate, kt_rate, bare_rate = seed_epochs / seed_s, kt_epochs / kt_s, bare_epochs / bare_s
    unit = "CPU seconds" if args.cpu_time else "seconds of wall time"
    print(f"machine: {os.cpu_count()} CPUs, torch {torch.__version__}, {args.threads} thread(s); {unit}")
    print(
        f"seed loop: {seed_epochs} epochs in {seed_s:.2f} s = {seed_rate:.1f} epochs/s (best val mse {seed_best:.3f})"
    )
    print(f"kt:        {kt_epochs} epochs in {kt_s:.2f} s = {kt_rate:.1f} epochs/s (best val mse {kt_best:.3f})")
    print(f"speed-up:  {kt_rate / seed_rate:.2f}x")
    print(
        f"floor:     {bare_epochs} epochs in {bare_s:.2f} s = {bare_rate:.1f} epochs/s (best val mse {bare_best:.3f}): "
        f"bare tensors-in-memory loop, no logging/checkpoints, {bare_rate / seed_rate:.2f}x the seed loop"
    )


if __name__ == "__main__":
    main()
