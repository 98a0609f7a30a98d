"""Training throughput of `kt fit` against a minimal hand-written PyTorch loop: same model, data, batch size.

    OMP_NUM_THREADS=1 KT_DATA_DIR=DIR python scripts/benchmarks/dkt_speed.py --epochs 3   # DIR/assist2009
    OMP_NUM_THREADS=1 python scripts/benchmarks/dkt_speed.py --data synthetic --epochs 3   # simulated students

Both sides train the same DKT network on the same DataLoader (validation off) for ``--epochs`` epochs;
interactions/second counts scored interactions (every step but each window's first) per second of training
epoch, averaged over the epochs after the first (warm-up). The Lightning side is built exactly as `kt fit`
builds it (CLI, trainer.yaml defaults, logger, checkpointing, progress bar).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from lightning.pytorch import Callback, seed_everything

from kt.cli import run_cli
from kt.tracing.nets.dkt import DKTNet

ROOT = Path(__file__).resolve().parent.parent


class EpochTimer(Callback):
    def __init__(self) -> None:
        self.seconds: list[float] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.seconds.append(time.perf_counter() - self._start)


def cli_args(data: str, epochs: int, batch_size: int) -> list[str]:
    if data == "assist2009":
        folder = Path(os.environ["KT_DATA_DIR"]) / "assist2009"
        data_args = ["--config", str(ROOT / "configs/dkt_assist2009.yaml"), "--data.init_args.data_dir", str(folder),
                     "--data.init_args.test_file", "assist2009_updated_valid1.csv",
                     "--data.init_args.download", "false"]
    else:
        data_args = ["--config", str(ROOT / "configs/dkt_synthetic.yaml")]
    return [*data_args, "--data.init_args.batch_size", str(batch_size), "--trainer.max_epochs", str(epochs),
            # Validation off on both sides: this measures training.
            "--trainer.check_val_every_n_epoch", "100000", "--trainer.num_sanity_val_steps", "0",
            "--trainer.logger.init_args.save_dir", "lightning_logs/bench"]


def plain_loop(cli, epochs: int) -> list[float]:
    """The loop a user would write by hand around the same network and DataLoader."""
    hp = cli.model.hparams
    seed_everything(0)
    net = DKTNet(len(cli.datamodule.vocab), hp.emb_size, hp.hidden_size, hp.num_layers, hp.dropout, hp.backbone)
    optimizer = torch.optim.Adam(net.parameters(), lr=hp.lr)
    loader = cli.datamodule.train_dataloader()
    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        net.train()
        for batch in loader:
            logits, _ = net(batch["skills"], batch["correct"])
            logit = logits[:, :-1].gather(-1, batch["skills"][:, 1:].unsqueeze(-1)).squeeze(-1)
            real = batch["mask"][:, 1:]
            loss = F.binary_cross_entropy_with_logits(logit[real], batch["correct"][:, 1:][real].float())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        seconds.append(time.perf_counter() - start)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default = "assist2009" if os.environ.get("KT_DATA_DIR") else "synthetic"
    parser.add_argument("--data", choices=["assist2009", "synthetic"], default=default)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    cli = run_cli(cli_args(args.data, args.epochs, args.batch_size), run=False)
    cli.datamodule.setup("fit")
    scored = sum(len(w.skills) - 1 for w in cli.datamodule.datasets["train"].windows)

    # Plain loop, kt fit, plain loop again: drift in the machine's load hits both sides alike.
    plain = plain_loop(cli, args.epochs)
    timer = EpochTimer()
    cli.trainer.callbacks.append(timer)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    plain_after = plain_loop(cli, args.epochs)

    def rate(seconds: list[float]) -> float:
        return scored / statistics.mean(seconds[1:] if len(seconds) > 1 else seconds)

    def show(seconds: list[float]) -> str:
        return ", ".join(f"{s:.2f}" for s in seconds)

    plain_rate = (rate(plain) + rate(plain_after)) / 2
    print(f"data: {args.data}, {scored:,} scored interactions per epoch, batch size {args.batch_size}, "
          f"{torch.get_num_threads()} threads, {args.epochs} epochs per run (the first is warm-up)")
    print(f"plain PyTorch loop: {plain_rate:12,.0f} interactions/s  "
          f"(epoch seconds, before | after kt: {show(plain)} | {show(plain_after)})")
    print(f"kt fit (Lightning): {rate(timer.seconds):12,.0f} interactions/s  (epoch seconds: {show(timer.seconds)})")
    print(f"kt fit / plain loop: {rate(timer.seconds) / plain_rate:.3f}")


if __name__ == "__main__":
    main()
