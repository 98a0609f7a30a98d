"""Reliability: a run killed with SIGKILL mid-epoch and resumed equals an uninterrupted one; same seed, same
bits; the samplers' orders and shares."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import kt_env, make_covid_csv
from lightning.pytorch import Callback

from kt.cli import run_cli
from kt.core.errors import InputError
from kt.core.resume import find_last_checkpoint
from kt.core.sampling import EpochSampler
from kt.core.tensor_batches import TensorBatches

# 200 simulated students, 120 for training: 30 batches of 4 per epoch; dropout, so random numbers matter.
TINY_DKT = [
    "--config", "dkt_synthetic",
    "--data.init_args.num_students", "200",
    "--data.init_args.steps_per_student", "12",
    "--data.init_args.batch_size", "4",
    "--model.init_args.hidden_size", "8",
    "--model.init_args.emb_size", "8",
    "--model.init_args.dropout", "0.3",
    "--trainer.enable_progress_bar", "false",
    "--trainer.enable_model_summary", "false",
]
BATCHES_PER_EPOCH = 30


def kt_process(args: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "kt", *args], cwd=cwd, env=kt_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen) -> None:
    _, err = process.communicate(timeout=120)
    assert process.returncode == 0, err[-3000:]


def checkpoint_state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def best_score(ckpt: dict) -> float:
    (state,) = [v for k, v in ckpt["callbacks"].items() if k.startswith("ResumableCheckpoint")]
    return state["best_model_score"].item()


def validation_metrics(ckpt: Path, save_dir: Path) -> dict[str, float]:
    logs = ["--trainer.logger.init_args.save_dir", str(save_dir)]
    cli = run_cli(["validate", *TINY_DKT, "--ckpt_path", str(ckpt), *logs])
    return {k: v.item() for k, v in cli.trainer.callback_metrics.items()}


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_equals_uninterrupted_run(tmp_path):
    fit = ["fit", *TINY_DKT, "--trainer.max_epochs", "2", "--checkpoint.last_every_n_batches", "5"]
    killed = kt_process([*fit, "--trainer.logger.init_args.save_dir", "run"], tmp_path)
    # The uninterrupted run, here while the other starts up, with its single thread (as OMP_NUM_THREADS=1).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_cli([*fit, "--trainer.logger.init_args.save_dir", str(tmp_path / "ref")])
    finally:
        torch.set_num_threads(threads)
    last = tmp_path / "run" / "dkt_synthetic" / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 90
    while not last.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    killed.send_signal(signal.SIGKILL)
    killed.communicate()
    assert killed.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    progress = checkpoint_state(last)["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["processed"]
    epoch = checkpoint_state(last)["epoch"]
    assert 0 < progress < BATCHES_PER_EPOCH, "the checkpoint to resume from must be mid-epoch"

    finish(kt_process([*fit, "--trainer.logger.init_args.save_dir", "run", "--ckpt_path", "last"], tmp_path))
    # The resumed run continued in the killed run's folder; no second version was started.
    assert not (tmp_path / "run" / "dkt_synthetic" / "version_1").exists()
    reference_last = tmp_path / "ref" / "dkt_synthetic" / "version_0" / "checkpoints" / "last.ckpt"
    resumed, uninterrupted = checkpoint_state(last), checkpoint_state(reference_last)
    assert resumed["global_step"] == uninterrupted["global_step"] == 2 * BATCHES_PER_EPOCH
    for name, value in uninterrupted["state_dict"].items():
        assert torch.equal(resumed["state_dict"][name], value), name
    for name in ("optimizer_states", "lr_schedulers"):
        assert str(resumed[name]) == str(uninterrupted[name])
    assert best_score(resumed) == best_score(uninterrupted)
    # Bit-identical final validation metrics (AUC, accuracy, loss).
    metrics = validation_metrics(last, tmp_path / "val")
    assert metrics == validation_metrics(reference_last, tmp_path / "val")
    # `kt validate --ckpt_path last` takes the same file, as if its path had been given.
    cli = run_cli(["validate", *TINY_DKT, "--trainer.logger.init_args.save_dir", str(tmp_path / "run"),
                   "--ckpt_path", "last"])
    assert cli.trainer.ckpt_path == str(last)
    assert cli.model.hparams.data_state == checkpoint_state(last)["hyper_parameters"]["data_state"]
    assert {k: v.item() for k, v in cli.trainer.callback_metrics.items()} == metrics
    print(f"killed at epoch {epoch}, batch {progress} of {BATCHES_PER_EPOCH}; resumed and uninterrupted: "
          f"best val/auc {best_score(resumed)!r}, final {metrics}")


@pytest.mark.slow  # two whole runs
def test_same_seed_gives_bit_identical_metrics_dkt(tmp_path):
    runs = []
    for name in ("a", "b"):
        cli = run_cli(["fit", *TINY_DKT, "--trainer.max_epochs", "2",
                       "--trainer.logger.init_args.save_dir", str(tmp_path / name)])
        runs.append(({k: v.item() for k, v in cli.trainer.callback_metrics.items()}, cli.model.state_dict()))
    (metrics_a, weights_a), (metrics_b, weights_b) = runs
    assert metrics_a == metrics_b and "val/auc" in metrics_a
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)


@pytest.mark.slow  # two whole runs
def test_same_seed_gives_bit_identical_metrics_mlp(tmp_path):
    make_covid_csv(tmp_path / "covid.train.csv", rows=80)
    metrics = []
    for name in ("a", "b"):
        cli = run_cli([
            "fit", "--config", "mlp_covid_tuned",
            "--data.init_args.data_dir", str(tmp_path), "--data.init_args.top_k", "3",
            "--model.init_args.dropout", "0.2", "--trainer.max_epochs", "5",
            "--trainer.logger.init_args.save_dir", str(tmp_path / name),
        ])
        metrics.append({k: v.item() for k, v in cli.trainer.callback_metrics.items()})
    assert metrics[0] == metrics[1] and "val/mse" in metrics[0]


def test_epoch_sampler_order_depends_on_seed_and_epoch_only():
    a, b = EpochSampler(50, seed=3), EpochSampler(50, seed=3)
    torch.rand(10)  # the global generator plays no part
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) == list(b) and sorted(a) == list(range(50))
    b.set_epoch(2)
    assert list(a) != list(b)
    a.skip(20)
    assert list(a) == a.indices()[20:]
    assert len(list(a)) == 50  # the skip holds for one iteration only


@pytest.mark.parametrize("pad", [True, False])
def test_epoch_sampler_shares(pad):
    shares = [EpochSampler(11, seed=0, num_replicas=3, rank=r, pad=pad) for r in range(3)]
    seen = [i for s in shares for i in s]
    assert [len(s) for s in shares] == [len(list(s)) for s in shares]
    if pad:  # equal shares (12 = 11 + one repeat) for equal numbers of optimizer steps
        assert [len(s) for s in shares] == [4, 4, 4] and sorted(set(seen)) == list(range(11))
    else:  # every sample exactly once
        assert sorted(seen) == list(range(11))


def test_tensor_batches_resume_skips_trained_batches():
    x = torch.arange(10.0)[:, None]
    full = list(TensorBatches({"x": x}, batch_size=3, shuffle=True, seed=1))
    resumed = TensorBatches({"x": x}, batch_size=3, shuffle=True, seed=1)
    resumed.load_state_dict({"epoch": 0, "batches": 2})
    assert [b["x"].tolist() for b in resumed] == [b["x"].tolist() for b in full[2:]]
    assert len(list(resumed)) == 4  # the next epoch is whole again
    # Without a progress function: the batches handed out (Lightning fetches none ahead from a sized loader).
    counting = TensorBatches({"x": x}, batch_size=3, shuffle=True, seed=1)
    batches = iter(counting)
    next(batches), next(batches)
    assert counting.state_dict() == {"epoch": 0, "batches": 2}


@pytest.mark.slow  # a whole 3-epoch run
def test_last_checkpoint_is_the_latest_epoch_even_without_improvement(tmp_path):
    # lr 1e-30: the weights do not move (in float32), so the validation AUC never improves after the first
    # epoch and no new best checkpoint is written.
    cli = run_cli(["fit", *TINY_DKT, "--model.init_args.lr", "1e-30", "--trainer.max_epochs", "3",
                   "--trainer.logger.init_args.save_dir", str(tmp_path)])
    callback = cli.trainer.checkpoint_callback
    assert Path(callback.best_model_path).name == "epoch=0-step=30.ckpt"
    last = torch.load(callback.last_model_path, map_location="cpu", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (2, 3 * BATCHES_PER_EPOCH)


def test_ckpt_path_last_is_the_newest_of_every_version(tmp_path):
    logs = ["--trainer.logger.init_args.save_dir", str(tmp_path)]
    with pytest.raises(InputError, match="--ckpt_path last: no last"):
        run_cli(["validate", *TINY_DKT, *logs, "--ckpt_path", "last"])
    versions = tmp_path / "dkt_synthetic"
    for n, mtime in [(0, 2_000_000_000), (1, 1_000_000_000), (2, None)]:
        folder = versions / f"version_{n}" / "checkpoints"
        folder.mkdir(parents=True)
        if mtime is not None:  # version_2: a restarted run that has not written a checkpoint yet
            (folder / "last.ckpt").write_bytes(b"")
            os.utime(folder / "last.ckpt", (mtime, mtime))
    cli = run_cli([*TINY_DKT, *logs], run=False)
    assert find_last_checkpoint(cli.trainer) == versions / "version_0" / "checkpoints" / "last.ckpt"


class Crash(Exception):
    pass


class CrashAfter(Callback):
    """Raises after ``batches`` training batches: a crash in the middle of an epoch."""

    def __init__(self, batches: int) -> None:
        self.batches = batches

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.fit_loop.total_batch_idx + 1 == self.batches:
            raise Crash


@pytest.mark.slow  # three runs: reference, crashed, resumed
def test_mlp_resumes_mid_epoch_from_tensor_batches(tmp_path):
    """The MLP's data are TensorBatches (not a DataLoader); one mini-batch per step, dropout."""
    make_covid_csv(tmp_path / "covid.train.csv", rows=80)
    args = [  # run=False reads no subcommand defaults: trainer.yaml comes first explicitly
        "--config", "trainer",
        "--config", "mlp_covid_tuned", "--data.init_args.data_dir", str(tmp_path),
        "--data.init_args.top_k", "3", "--data.init_args.batch_size", "8",
        "--model.init_args.dropout", "0.2", "--trainer.max_epochs", "3", "--checkpoint.last_every_n_batches", "3",
    ]

    def fit(name: str, crash_after: int | None = None, ckpt: Path | None = None):
        cli = run_cli([*args, "--trainer.logger.init_args.save_dir", str(tmp_path / name)], run=False)
        if crash_after:
            cli.trainer.callbacks.append(CrashAfter(crash_after))
        with contextlib.suppress(Crash):
            cli.trainer.fit(cli.model, cli.datamodule, ckpt_path=ckpt)
        return cli

    reference = fit("ref")
    steps_per_epoch = reference.trainer.num_training_batches
    crashed = fit("run", crash_after=steps_per_epoch + 5)  # in the 2nd epoch, after its batch 3 was saved
    last = Path(crashed.trainer.checkpoint_callback.last_model_path)
    progress = torch.load(last, weights_only=True)["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]
    assert progress["processed"] == 3
    resumed = fit("run2", ckpt=last)
    assert resumed.trainer.global_step == reference.trainer.global_step == 3 * steps_per_epoch
    ref_weights, weights = reference.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(weights[k], ref_weights[k]) for k in ref_weights)
    assert resumed.trainer.callback_metrics["val/mse"].item() == reference.trainer.callback_metrics["val/mse"].item()


class LastCheckpointEpochs(Callback):
    """Records, when each epoch starts (the previous one's checkpoints written), the epoch stored in last.ckpt."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        last = Path(trainer.checkpoint_callback.last_model_path or "/nonexistent")
        self.seen.append(torch.load(last, weights_only=True)["epoch"] if last.exists() else -1)


@pytest.mark.parametrize(("max_epochs", "patience"), [(7, 100), (30, 2)])
def test_last_every_n_epochs(tmp_path, max_epochs, patience):
    """last.ckpt every 3rd epoch, and always the final state, whether max_epochs or early stopping ends the run."""
    make_covid_csv(tmp_path / "covid.train.csv", rows=80)
    args = [
        "--config", "trainer",
        "--config", "mlp_covid_tuned", "--data.init_args.data_dir", str(tmp_path),
        "--model.init_args.lr", "0.3", "--trainer.max_epochs", str(max_epochs),
        "--early_stopping.patience", str(patience), "--checkpoint.last_every_n_epochs", "3",
        "--trainer.logger.init_args.save_dir", str(tmp_path / "logs"),
    ]  # fmt: skip
    cli = run_cli(args, run=False)
    spy = LastCheckpointEpochs()
    cli.trainer.callbacks.append(spy)
    cli.trainer.fit(cli.model, cli.datamodule)
    epochs = len(spy.seen)
    assert epochs == max_epochs or cli.trainer.should_stop
    assert spy.seen == [e // 3 * 3 - 1 for e in range(epochs)]  # written after epochs 2, 5, 8, ... (0-based)
    final = torch.load(cli.trainer.checkpoint_callback.last_model_path, weights_only=True)
    assert final["epoch"] == epochs - 1 and final["global_step"] == cli.trainer.global_step
