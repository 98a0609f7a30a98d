"""One-command GPU check: DKT (GRU, and an xLSTM backbone for a few steps) and the recommended CNN at precision
32, 16-mixed and bf16-mixed on the GPU, against the same number of steps in float32 on the CPU; then one
training epoch of the default xLSTM stack on the GPU.

    python scripts/benchmarks/gpu_check.py --out gpu_check.md                      # synthetic data
    python scripts/benchmarks/gpu_check.py --data-dir DATA --out gpu_check.md      # DATA/assist2009, DATA/fashion_mnist

For each model and precision: training throughput (real interactions/s for DKT, images/s for the CNN; the
optimizer steps after the first ``--warmup`` are timed, synchronised with the GPU), peak GPU memory
(``torch.cuda.max_memory_allocated``) and the validation metric after the fixed number of steps (DKT: AUC,
CNN: accuracy), with its difference from the CPU float32 run of the same steps from the same seed. Printed as a
Markdown table and written to ``--out``.

Models: the DKT of ``kt/configs/dkt_assist2009.yaml`` (GRU 200, batch 32, windows of 200) and the same with
``backbone: xlstm`` (a 2-block stack of width 64, fewer steps: its CPU reference is slow); the CNN of
``kt/configs/cnn_fashion_mnist.yaml`` (batch 128). Data: ``DATA/assist2009/assist2009_updated_train1.csv`` /
``valid1.csv`` and the four Fashion-MNIST IDX files in ``DATA/fashion_mnist`` when present, else simulated
students and synthetic images (a learnable bright bar whose row is the class): no downloads either way.
Last, "DKT xLSTM 7+1, one epoch": the default stack (7 mLSTM + 1 sLSTM blocks, width 200) trained for one
whole epoch at each GPU precision, no CPU reference (a CPU epoch is ~110 s on one thread,
docs/benchmarks.md#xlstm), its epoch's training time in the throughput column (``--no-xlstm-epoch`` leaves it
out).

Exit status: 0 when every run finished; 3 with one line on stderr when no CUDA GPU is visible (nothing is
measured; ``--accelerator cpu`` runs the same table on the CPU, to check the script itself); 1 if a run failed
(the table still lists the others, the failure is in its row).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

# Lightning and kt are imported once a GPU is known to be there: without one, the script answers at once.

CONFIGS = Path(__file__).resolve().parents[2] / "kt" / "configs"
NO_GPU = 3
PRECISIONS = ["32", "16-mixed", "bf16-mixed"]


def meter(warmup: int, units):
    """A callback adding up the seconds and units (real interactions or images) of the training steps after
    the warm-up."""
    from lightning.pytorch import Callback

    class Meter(Callback):
        def __init__(self) -> None:
            self.seconds, self.count, self.step, self.total = 0.0, 0, 0, 0.0

        def _sync(self, module) -> None:
            if module.device.type == "cuda":
                torch.cuda.synchronize(module.device)

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            self._sync(pl_module)
            self._start = time.perf_counter()

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self._sync(pl_module)
            self.step += 1
            self.total += time.perf_counter() - self._start  # every step, the warm-up too
            if self.step > warmup:
                self.seconds += time.perf_counter() - self._start
                self.count += units(batch)

    return Meter()


def config_args(name: str, section: str) -> dict:
    return dict(yaml.safe_load((CONFIGS / f"{name}.yaml").read_text())[section]["init_args"])


@dataclass
class Task:
    name: str
    steps: int
    metric: str
    unit: str
    epoch: bool = False  # one whole training epoch instead of ``steps``, GPU only

    def build(self, data_dir: Path | None, scratch: Path):
        from kt.tracing import DKT, Assist2009DataModule, SyntheticKTDataModule
        from kt.vision.mnist import MNISTDataModule
        from kt.vision.models import CNN

        if self.name.startswith("DKT"):
            model_args = config_args("dkt_assist2009", "model")
            if "7+1" in self.name:
                model_args.update(backbone="xlstm")  # DKT's defaults: 8 blocks, sLSTM last, width 200
            elif "xLSTM" in self.name:
                model_args.update(backbone="xlstm", xlstm_blocks=2, slstm_at=[1], emb_size=64, hidden_size=64)
            data_args = {k: v for k, v in config_args("dkt_assist2009", "data").items()
                         if k in ("seq_len", "eval_seq_len", "batch_size")}
            folder = data_dir / "assist2009" if data_dir else None
            if folder and (folder / "assist2009_updated_train1.csv").is_file():
                data = Assist2009DataModule(
                    data_dir=str(folder), train_file="assist2009_updated_train1.csv",
                    val_file="assist2009_updated_valid1.csv", test_file="assist2009_updated_valid1.csv",
                    download=False, **data_args,
                )
            else:
                data = SyntheticKTDataModule(num_students=2000, steps_per_student=120, **data_args)
            return DKT(**model_args), data
        data_args = config_args("cnn_fashion_mnist", "data")
        folder = data_dir / "fashion_mnist" if data_dir else None
        names = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"]
        if not (folder and all((folder / n).is_file() or (folder / f"{n}.gz").is_file() for n in names)):
            folder = synthetic_images(scratch / "synthetic images")
        return CNN(**config_args("cnn_fashion_mnist", "model")), MNISTDataModule(
            data_dir=str(folder), download=False, val_size=2000, **data_args
        )

    def units(self, batch) -> int:
        if self.name.startswith("DKT"):
            return int(batch["mask"][:, 1:].sum())
        return len(next(iter(batch.values())))


def synthetic_images(folder: Path) -> Path:
    """IDX files of 28 x 28 noise with a bright bar whose row is the class (learnable in a few hundred steps)."""
    from kt.vision.idx import write_idx

    if folder.is_dir():
        return folder
    folder.mkdir(parents=True)
    for name, n, seed in (("train", 12000, 0), ("t10k", 1000, 1)):
        rng = np.random.default_rng(seed)
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
        images[np.arange(n), 4 + 2 * labels, 4:24] = 200
        write_idx(folder / f"{name}-images-idx3-ubyte", images)
        write_idx(folder / f"{name}-labels-idx1-ubyte", labels)
    return folder


def run(task: Task, accelerator: str, precision: str, data_dir: Path | None, scratch: Path, warmup: int) -> dict:
    from lightning.pytorch import Trainer, seed_everything

    seed_everything(0)
    model, data = task.build(data_dir, scratch)
    timer = meter(warmup, task.units)
    trainer = Trainer(
        accelerator=accelerator, devices=1, precision=precision, max_steps=-1 if task.epoch else task.steps,
        max_epochs=1 if task.epoch else -1,
        limit_val_batches=1.0, val_check_interval=None, check_val_every_n_epoch=None, num_sanity_val_steps=0,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[timer],
    )
    if accelerator == "gpu":
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(model, datamodule=data)
    metric = trainer.validate(model, datamodule=data, verbose=False)[0][task.metric]
    return {
        "rate": timer.count / timer.seconds if timer.seconds else float("nan"),
        "epoch_seconds": timer.total,
        "memory": torch.cuda.max_memory_allocated() / 2**20 if accelerator == "gpu" else float("nan"),
        "metric": metric,
        "data": type(data).__name__ + ("" if task.name.startswith("DKT") else f" ({data.data_dir.name})"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, help="folder with assist2009/ and fashion_mnist/; default: synthetic")
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps of DKT GRU and the CNN")
    parser.add_argument("--xlstm-steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=10, help="first steps left out of the throughput")
    parser.add_argument("--no-xlstm-epoch", action="store_true", help="leave out the default xLSTM stack's epoch")
    parser.add_argument("--accelerator", choices=["gpu", "cpu"], default="gpu",
                        help="cpu: the same table on the CPU (precision 32 and bf16-mixed), to check the script")
    args = parser.parse_args(argv)

    if args.accelerator == "gpu" and not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU visible; nothing measured (exit 3)", file=sys.stderr)
        return NO_GPU
    precisions = PRECISIONS if args.accelerator == "gpu" else ["32", "bf16-mixed"]
    device = torch.cuda.get_device_name() if args.accelerator == "gpu" else "CPU"
    tasks = [
        Task("DKT GRU", args.steps, "val/auc", "interactions/s"),
        Task("DKT xLSTM", args.xlstm_steps, "val/auc", "interactions/s"),
        Task("CNN", args.steps, "val/acc", "images/s"),
    ]
    if args.accelerator == "gpu" and not args.no_xlstm_epoch:
        tasks.append(Task("DKT xLSTM 7+1, one epoch", 0, "val/auc", "interactions/s", epoch=True))
    rows, failed = [], False
    with tempfile.TemporaryDirectory() as scratch:
        for task in tasks:
            try:
                reference = None if task.epoch else run(task, "cpu", "32", args.data_dir, Path(scratch), args.warmup)
            except Exception:  # noqa: BLE001 - reported in the table, the other runs go on
                traceback.print_exc()
                reference, failed = None, True
            if reference:
                rows.append(f"| {task.name} | CPU float32 (reference) | {reference['rate']:,.0f} {task.unit} | – "
                            f"| {task.metric} {reference['metric']:.4f} | – | {reference['data']} |")
            for precision in precisions:
                try:
                    result = run(task, args.accelerator, precision, args.data_dir, Path(scratch), args.warmup)
                except Exception as err:  # noqa: BLE001
                    traceback.print_exc()
                    failed = True
                    rows.append(f"| {task.name} | {precision} | failed: {type(err).__name__}: {err} | | | | |")
                    continue
                delta = f"{result['metric'] - reference['metric']:+.4f}" if reference else "–"
                memory = f"{result['memory']:,.0f} MiB" if args.accelerator == "gpu" else "–"
                epoch = f"; epoch {result['epoch_seconds']:.1f} s" if task.epoch else ""
                rows.append(f"| {task.name} | {precision} | {result['rate']:,.0f} {task.unit}{epoch} | {memory} "
                            f"| {task.metric} {result['metric']:.4f} | {delta} "
                            f"| {result['data']} |")
    table = "\n".join([
        f"{device}; torch {torch.__version__}; {args.steps} steps (DKT xLSTM: {args.xlstm_steps}), "
        f"the first {args.warmup} not timed; metric after those steps, Δ vs the CPU float32 run",
        "",
        "| model | precision | training throughput | peak GPU memory | validation metric | Δ vs CPU fp32 | data |",
        "|---|---|---:|---:|---:|---:|---|",
        *rows,
    ])
    print(table)
    if args.out:
        args.out.write_text(table + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
