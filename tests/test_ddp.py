"""Lightning DDP on the CPU with 2 processes (gloo): every model trains, the validation metric gathered over
both processes equals the one-process metric of the same weights, and it is close to a one-process run's."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import QUIET, kt_env, make_covid_csv, write_mnist_folder

from kt.cli import run_cli

pytestmark = pytest.mark.slow  # two processes per run, three runs

DDP = ["--trainer.strategy", "ddp", "--trainer.accelerator", "cpu", "--trainer.devices", "2"]


def dkt_args(batch_size: int) -> list[str]:
    return [
        "--config", "dkt_synthetic",
        "--data.init_args.num_students", "305", "--data.init_args.steps_per_student", "20",
        "--data.init_args.batch_size", str(batch_size),
        "--model.init_args.hidden_size", "16", "--model.init_args.emb_size", "16",
        "--trainer.max_epochs", "2", *QUIET,
    ]


def mlp_args(data_dir: Path, batch_size: int) -> list[str]:
    return [
        "--config", "mlp_covid_tuned",
        "--data.init_args.data_dir", str(data_dir), "--data.init_args.top_k", "4",
        "--data.init_args.batch_size", str(batch_size), "--model.init_args.lr", "0.01",
        "--trainer.max_epochs", "15", *QUIET,
    ]


def cnn_args(data_dir: Path, batch_size: int) -> list[str]:
    return [
        "--model", "kt.vision.CNN", "--model.channels", "[4]", "--model.fc_sizes", "[]",
        "--data", "kt.vision.MNISTDataModule", "--data.data_dir", str(data_dir), "--data.val_size", "101",
        "--data.download", "false", "--data.batch_size", str(batch_size), "--trainer.max_epochs", "1", *QUIET,
        "--trainer.logger.init_args.name", "cnn",
    ]


def start_ddp(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kt", "fit", *args, *DDP], cwd=cwd, env=kt_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> None:
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]


def last_checkpoint(save_dir: Path) -> tuple[Path, dict]:
    (path,) = save_dir.glob("*/version_0/checkpoints/last.ckpt")
    return path, torch.load(path, map_location="cpu", weights_only=True)


def current_score(ckpt: dict) -> float:
    (state,) = [v for k, v in ckpt["callbacks"].items() if k.startswith("ResumableCheckpoint")]
    return state["current_score"].item()


@pytest.fixture(scope="module")
def ddp_runs(tmp_path_factory) -> dict[str, tuple[Path, dict]]:
    """DKT and MLP each trained with 2 processes of half the batch (the same effective batch as one
    process of the whole batch), both at once."""
    tmp = tmp_path_factory.mktemp("ddp")
    # DKT: 183 training and 61 validation windows (padded training shares, uneven validation ones); MLP: even.
    make_covid_csv(tmp / "covid.train.csv", rows=120)
    images = write_mnist_folder(tmp / "idx", train=601, test=50)
    runs = {
        "dkt": start_ddp([*dkt_args(8), "--trainer.logger.init_args.save_dir", "dkt"], tmp),
        "mlp": start_ddp([*mlp_args(tmp, 8), "--trainer.logger.init_args.save_dir", "mlp"], tmp),
        # 500 training images (padded shares of 250), 101 validation images (shares of 51 and 50)
        "cnn": start_ddp([*cnn_args(images, 8), "--trainer.logger.init_args.save_dir", "cnn"], tmp),
    }
    for process in runs.values():
        finish(process)
    return {name: last_checkpoint(tmp / name) for name in runs} | {"tmp": tmp}


@pytest.mark.parametrize("model", [
    "dkt", "mlp", "cnn"
])
def test_ddp_matches_one_process(ddp_runs, model, tmp_path):
    ckpt_path, ckpt = ddp_runs[model]
    tmp = ddp_runs["tmp"]
    args = {"dkt": dkt_args, "mlp": lambda b: mlp_args(tmp, b), "cnn": lambda b: cnn_args(tmp / "idx", b)}[model]
    metric = {"dkt": "val/auc", "mlp": "val/mse", "cnn": "val/acc"}[model]
    logs = ["--trainer.logger.init_args.save_dir", str(tmp_path)]

    # The metric gathered over both processes is the metric of the whole validation set: validating the
    # DDP weights in one process gives the same number.
    validate = run_cli(["validate", *args(16), *logs, "--ckpt_path", str(ckpt_path)])
    assert validate.trainer.callback_metrics[metric].item() == pytest.approx(current_score(ckpt), rel=1e-5)

    # Training in one process with the same effective batch: as many optimizer steps, and a close result.
    single = run_cli(["fit", *args(16), *logs])
    assert ckpt["global_step"] == single.trainer.global_step
    ddp_value, single_value = current_score(ckpt), single.trainer.callback_metrics[metric].item()
    print(f"{model} {metric}: DDP 2 processes {ddp_value:.6f}, one process {single_value:.6f}")
    if model == "mlp":
        assert ddp_value == pytest.approx(single_value, rel=0.02)
    else:  # AUC, accuracy
        assert ddp_value == pytest.approx(single_value, abs=0.01 if model == "dkt" else 0.05)
