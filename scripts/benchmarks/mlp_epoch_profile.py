"""Where an epoch of the COVID seed configuration spends its time, in kt and in plain PyTorch.

Three measurements behind the README's speed section (one CPU thread):

1. one optimizer step of the seed's network (116 -> 16 -> 8 -> 1 ReLU, batch 256, SGD momentum) in eager
   PyTorch, part by part, and the same forward/backward written by hand as one autograd node
   (``--compile`` adds the step under ``torch.compile``, which takes a while to compile);
2. an empty Lightning epoch of 8 steps (the seed's 1,840 rows / batch 256) on a one-parameter model,
   with and without a validation step: Lightning's own per-step cost;
3. ``kt fit --config mlp_covid`` with timers around the parts of its epoch (the timers add
   their own cost, so the parts add up to more than an untimed epoch).

    OMP_NUM_THREADS=1 python scripts/benchmarks/mlp_epoch_profile.py --data-dir "$KT_DATA_DIR/covid"
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from torch import nn

# Wall-clock time by default; --cpu-time counts this process's CPU seconds instead, which other jobs on a
# shared machine disturb far less.
clock = time.perf_counter


def per_call_us(fn, n: int = 3000) -> float:
    for _ in range(n // 10):
        fn()
    start = clock()
    for _ in range(n):
        fn()
    return (clock() - start) / n * 1e6


class HandWrittenMLP(torch.autograd.Function):
    """The seed network's forward and backward as one autograd node (no per-layer graph)."""

    @staticmethod
    def forward(ctx, x, w1, b1, w2, b2, w3, b3):
        h1 = torch.addmm(b1, x, w1.t()).relu_()
        h2 = torch.addmm(b2, h1, w2.t()).relu_()
        ctx.save_for_backward(x, w2, w3, h1, h2)
        return torch.addmm(b3, h2, w3.t())

    @staticmethod
    def backward(ctx, grad):
        x, w2, w3, h1, h2 = ctx.saved_tensors
        g2 = (grad @ w3) * (h2 > 0)
        g1 = (g2 @ w2) * (h1 > 0)
        return None, g1.t() @ x, g1.sum(0), g2.t() @ h1, g2.sum(0), grad.t() @ h2, grad.sum(0)


def step_parts(compile_step: bool) -> None:
    x, y = torch.randn(256, 116), torch.randn(256)
    net = nn.Sequential(nn.Linear(116, 16), nn.ReLU(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 1))
    optimizer = torch.optim.SGD(net.parameters(), lr=1e-5, momentum=0.9)

    def forward():
        with torch.no_grad():
            net(x)

    def forward_backward():
        nn.functional.mse_loss(net(x).squeeze(1), y).backward()

    params = list(net.parameters())

    def hand_written():
        nn.functional.mse_loss(HandWrittenMLP.apply(x, *params).squeeze(1), y).backward()

    forward_backward()
    print("one step of the seed network, eager PyTorch, microseconds per call:")
    print(
        f"  forward {per_call_us(forward):.0f}, forward + backward {per_call_us(forward_backward):.0f}, "
        f"SGD step {per_call_us(optimizer.step):.0f}, zero_grad {per_call_us(optimizer.zero_grad):.0f}"
    )
    print(f"  forward + backward written by hand as one autograd node: {per_call_us(hand_written):.0f}")
    if compile_step:
        compiled = torch.compile(forward_backward)
        compiled_step = torch.compile(optimizer.step)

        def step():
            optimizer.zero_grad(set_to_none=True)
            compiled()
            compiled_step()

        print(f"  whole step under torch.compile: {per_call_us(step):.0f}")


class Nothing(LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return self.weight.sum()

    def validation_step(self, batch, batch_idx):
        return None

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return [torch.zeros(1)] * 8

    def val_dataloader(self):
        return [torch.zeros(1)]


class EpochClock(Callback):
    def on_train_start(self, trainer, pl_module):
        self.start = clock()

    def on_train_end(self, trainer, pl_module):
        self.ms_per_epoch = (clock() - self.start) / trainer.current_epoch * 1e3


def empty_epochs(epochs: int = 1000) -> None:
    for validate in (False, True):
        epoch_clock = EpochClock()
        trainer = Trainer(
            max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, callbacks=[epoch_clock], limit_val_batches=1 if validate else 0,
            num_sanity_val_steps=0,
        )  # fmt: skip
        trainer.fit(Nothing())
        label = "empty Lightning epoch of 8 steps" + (", with a validation step" if validate else "")
        print(f"{label}: {epoch_clock.ms_per_epoch:.2f} ms")


def kt_parts(data_dir: Path, epochs: int) -> None:
    import lightning.pytorch.core.optimizer as lightning_optimizer
    from lightning.pytorch.trainer.trainer import Trainer as LightningTrainer

    import kt.core.tensor_batches as tensor_batches
    from kt.cli import run_cli
    from kt.tabular.models import MLPRegressor

    spent: dict[str, float] = collections.defaultdict(float)
    # Lightning's automatic optimisation runs the training step and the backward pass inside the closure
    # it hands to optimizer.step, so the optimizer steps contain them.
    steps = "optimizer steps, with the closure (Lightning's wrapper)"
    inner = ("  of which training steps (forward, loss, metric update)", "  of which backward passes")
    for label in (steps, *inner):
        spent[label] = 0.0  # printed in this order, then the others as they come
    patched: list[tuple[object, str, object]] = []

    def time_it(owner, name: str, label: str) -> None:
        original = getattr(owner, name)

        @functools.wraps(original)
        def timed(*args, **kwargs):
            start = clock()
            try:
                return original(*args, **kwargs)
            finally:
                spent[label] += clock() - start

        patched.append((owner, name, original))
        setattr(owner, name, timed)

    time_it(lightning_optimizer.LightningOptimizer, "step", steps)
    time_it(MLPRegressor, "training_step", inner[0])
    time_it(MLPRegressor, "backward", inner[1])
    time_it(MLPRegressor, "optimizer_zero_grad", "zero_grad")
    time_it(MLPRegressor, "validation_step", "validation forward + metric update")
    time_it(MLPRegressor, "on_validation_epoch_end", "validation metrics computed and logged")
    time_it(MLPRegressor, "on_train_epoch_end", "training MSE computed and logged")
    time_it(LightningTrainer, "save_checkpoint", "checkpoints written")
    # TensorBatches.__iter__ is a generator: the shuffle and gather happen before its first item.
    original_iter = tensor_batches.TensorBatches.__iter__

    def first_item_timed(self):
        start = clock()
        items = original_iter(self)
        first = next(items, None)
        spent["the epoch's shuffle and gather"] += clock() - start
        if first is not None:
            yield first
            yield from items

    patched.append((tensor_batches.TensorBatches, "__iter__", original_iter))
    tensor_batches.TensorBatches.__iter__ = first_item_timed
    epoch_clock = EpochClock()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cli = run_cli([
                "--config", "mlp_covid",
                "--data.init_args.data_dir", str(data_dir), "--trainer.max_epochs", str(epochs),
                "--trainer.logger.init_args.save_dir", tmp, "--trainer.enable_model_summary", "false",
            ], run=False)  # fmt: skip
            cli.trainer.callbacks.append(epoch_clock)
            with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
                cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    finally:
        for owner, name, original in patched:
            setattr(owner, name, original)
    done = cli.trainer.current_epoch
    per_epoch = epoch_clock.ms_per_epoch
    print(f"kt fit --config mlp_covid, {done} epochs, with timers: {per_epoch:.1f} ms per epoch")
    for label, seconds in spent.items():
        print(f"  {label:52s} {seconds / done * 1e3:5.2f} ms per epoch")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_dir = Path(os.environ["KT_DATA_DIR"]) / "covid" if os.environ.get("KT_DATA_DIR") else None
    parser.add_argument("--data-dir", type=Path, default=default_dir, required=default_dir is None,
                        help="the folder with covid.train.csv (default: $KT_DATA_DIR/covid)")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--compile", action="store_true", help="also time the step under torch.compile")
    parser.add_argument("--cpu-time", action="store_true", help="time CPU seconds of this process, not wall time")
    args = parser.parse_args()
    if args.cpu_time:
        global clock
        clock = time.process_time
    warnings.filterwarnings("ignore")
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    torch.set_num_threads(1)
    step_parts(args.compile)
    empty_epochs()
    kt_parts(args.data_dir, args.epochs)


if __name__ == "__main__":
    main()
