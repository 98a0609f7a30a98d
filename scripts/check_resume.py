"""Kill a `kt fit` with SIGKILL in the middle of training, resume it with `--ckpt_path last`, and compare it
with an uninterrupted run of the same command.

    OMP_NUM_THREADS=1 python scripts/check_resume.py --config configs/dkt_synthetic.yaml --every 10 --kill-at 9

Both runs write `last.ckpt` every ``--every`` training batches; the first is killed right after its
``--kill-at``-th write of `last.ckpt` (with 38 batches per epoch and ``--every 10``, writes 1-4 are epoch 0,
so the 9th is batch 10 of epoch 2). Printed: where the checkpoint was, every epoch's validation metrics of
both runs, and whether the final weights are bit-identical. Extra `kt fit` options go after ``--``, e.g.
``-- --trainer.strategy ddp --trainer.accelerator cpu --trainer.devices 2`` (the kill takes every process).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

ROOT = Path(__file__).resolve().parent.parent


def kt_fit(args: list[str], save_dir: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "kt", "fit", *args, "--trainer.logger.init_args.save_dir", str(save_dir),
               "--trainer.enable_progress_bar", "false"]
    # A session of its own: the kill takes the DDP worker processes too, as a machine failure would.
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def finish(process: subprocess.Popen) -> None:
    _, err = process.communicate()
    if process.returncode != 0:
        sys.exit(f"kt fit failed:\n{err[-3000:]}")


def validation_curves(save_dir: Path) -> dict[str, dict[int, float]]:
    """Every val/* scalar by step, over all event files (the resumed run appends a second one)."""
    curves: dict[str, dict[int, float]] = {}
    for events in sorted(save_dir.glob("*/version_*/events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            if tag.startswith("val/"):
                curves.setdefault(tag, {}).update({e.step: e.value for e in accumulator.Scalars(tag)})
    return curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "dkt_synthetic.yaml"))
    parser.add_argument("--every", type=int, default=10, help="checkpoint.last_every_n_batches")
    parser.add_argument("--kill-at", type=int, default=9, help="kill after this many writes of last.ckpt")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("kt_args", nargs="*", help="extra `kt fit` options (after --)")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="kt_resume_"))
    fit = ["--config", args.config, "--checkpoint.last_every_n_batches", str(args.every), *args.kt_args]

    reference = kt_fit(fit, work / "uninterrupted")
    killed = kt_fit(fit, work / "killed")
    writes, previous = 0, None
    while killed.poll() is None and writes < args.kill_at:
        found = list((work / "killed").glob("*/version_0/checkpoints/last.ckpt"))
        stamp = found[0].stat().st_mtime_ns if found else None
        if stamp is not None and stamp != previous:
            writes, previous = writes + 1, stamp
        time.sleep(0.01)
    if killed.poll() is not None:
        sys.exit(f"the run ended after {writes} writes of last.ckpt, before it could be killed")
    os.killpg(killed.pid, signal.SIGKILL)
    killed.communicate()
    (last,) = (work / "killed").glob("*/version_0/checkpoints/last.ckpt")
    state = torch.load(last, map_location="cpu", weights_only=True)
    done = state["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["processed"]
    print(f"killed (SIGKILL) after write {writes} of last.ckpt: epoch {state['epoch']}, {done} batches into it")

    finish(kt_fit([*fit, "--ckpt_path", "last"], work / "killed"))
    finish(reference)
    curves = {name: validation_curves(work / name) for name in ("uninterrupted", "killed")}
    for tag, values in sorted(curves["uninterrupted"].items()):
        resumed = curves["killed"].get(tag, {})
        print(f"{tag}: uninterrupted {[round(v, 6) for _, v in sorted(values.items())]}")
        print(f"{' ' * len(tag)}  resumed       {[round(v, 6) for _, v in sorted(resumed.items())]}"
              f"  {'identical' if resumed == values else 'DIFFERENT'}")
    (ref_last,) = (work / "uninterrupted").glob("*/version_0/checkpoints/last.ckpt")
    a = torch.load(ref_last, map_location="cpu", weights_only=True)["state_dict"]
    b = torch.load(last, map_location="cpu", weights_only=True)["state_dict"]
    same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    print(f"final weights: {'bit-identical' if same else 'DIFFERENT'} ({work})")


if __name__ == "__main__":
    main()
