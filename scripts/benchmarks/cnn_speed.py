"""Training images per second: ``kt fit`` vs the course seeds' plain loop, same network, same machine, one run.

Both train the seeds' SimpleCNN (conv 16 -> conv 32, fc 128, fc 10; Adam lr 1e-3; batch 64) on Fashion-MNIST
training images for ``--steps`` optimizer steps, alternating ``--repeats`` times (the median is reported).

* seed: a ``Dataset`` whose ``__getitem__`` makes a PIL image and applies ``ToTensor`` + ``Normalize((0.5,),
  (0.5,))`` (written out with PIL/numpy, as torchvision is not a dependency), a shuffling ``DataLoader``
  (batch 64, ``--workers`` workers), and the plain ``zero_grad / forward / backward / step`` loop.
* kt: ``kt fit --config cnn_simple_fashion_mnist`` (the same network and optimizer); batches are
  slices of the in-memory uint8 tensor, normalised per batch on the training device.

Only the training loop is timed (from the first batch requested to the last step), not data loading from disk.
``--data-dir DIR`` is a folder with the Fashion-MNIST IDX files; without it the DataModule looks in its usual
places and downloads them to ``data/fashion_mnist``.

    OMP_NUM_THREADS=1 python scripts/benchmarks/cnn_speed.py --steps 200 --repeats 3 [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import numpy as np
import torch
from lightning.pytorch import Callback
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from kt.cli import run_cli
from kt.vision.mnist import MNISTDataModule

CONFIG = "cnn_simple_fashion_mnist"  # a shipped config, by name (kt/configs/cnn_simple_fashion_mnist.yaml)


# ------------------------------------------------------------------------------ the seed's way
class SeedDataset(Dataset):
    """As torchvision.datasets.FashionMNIST with transforms ToTensor + Normalize((0.5,), (0.5,))."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, idx: int):
        image = Image.fromarray(self.images[idx], mode="L")  # what torchvision's __getitem__ does
        x = torch.from_numpy(np.array(image, dtype=np.uint8)).float().div(255).unsqueeze(0)  # ToTensor
        return (x - 0.5) / 0.5, int(self.labels[idx])  # Normalize


class SimpleCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(32 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def seed_loop(images: np.ndarray, labels: np.ndarray, steps: int, workers: int) -> float:
    loader = DataLoader(SeedDataset(images, labels), batch_size=64, shuffle=True, num_workers=workers)
    model = SimpleCNN()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    model.train()
    seen, start = 0, time.perf_counter()
    for step, (x, y) in enumerate(loader):
        if step == steps:
            break
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
        seen += len(x)
    return seen / (time.perf_counter() - start)


# ------------------------------------------------------------------------------ kt fit
class Timer(Callback):
    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds = time.perf_counter() - self.start


def kt_fit(steps: int, data_dir: str | None) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        # run=False: the same parsing and objects as `kt fit`, so the timer can be added before fitting.
        args = ["--config", CONFIG, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", str(steps),
                "--trainer.limit_val_batches", "0", "--trainer.enable_progress_bar", "false",
                "--trainer.enable_model_summary", "false", "--trainer.logger.init_args.save_dir", tmp,
                # No validation is timed, so checkpointing and early stopping follow a training metric.
                "--checkpoint.monitor", "train/acc", "--checkpoint.mode", "max",
                "--early_stopping.monitor", "train/acc", "--early_stopping.mode", "max"]  # fmt: skip
        if data_dir:
            args += ["--data.init_args.data_dir", data_dir]
        cli = run_cli(args, run=False)
        timer = Timer()
        cli.trainer.callbacks.append(timer)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
        return steps * 64 / timer.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="optimizer steps (batches of 64) per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of the seed loop")
    parser.add_argument("--data-dir", help="Fashion-MNIST folder (default: as the DataModule finds it)")
    args = parser.parse_args()
    dm = MNISTDataModule(dataset="fashion_mnist", data_dir=args.data_dir)
    images, labels = (t.numpy() for t in dm.load("train"))
    seed, kt = [], []
    for _ in range(args.repeats):
        torch.manual_seed(0)
        seed.append(seed_loop(images, labels, args.steps, args.workers))
        kt.append(kt_fit(args.steps, args.data_dir))
        print(f"seed loop {seed[-1]:,.0f} img/s, kt fit {kt[-1]:,.0f} img/s", flush=True)
    s, k = statistics.median(seed), statistics.median(kt)
    print(f"median of {args.repeats} x {args.steps} steps of 64 images, torch threads {torch.get_num_threads()}: "
          f"seed loop {s:,.0f} img/s, kt fit {k:,.0f} img/s, kt/seed {k / s:.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
