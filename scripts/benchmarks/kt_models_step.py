"""CPU time of one training step (forward, backward, Adam) of DKT, DKVMN, SAKT and AKT at their default sizes.

    OMP_NUM_THREADS=1 python scripts/benchmarks/kt_models_step.py                # batch 32 x 200 steps, 110 skills
    OMP_NUM_THREADS=1 python scripts/benchmarks/kt_models_step.py --models AKT --steps 5
    OMP_NUM_THREADS=1 python scripts/benchmarks/kt_models_step.py --malloc system  # glibc's default thresholds

Process CPU time (``time.process_time``), not wall time, so that other jobs sharing the machine do not inflate
it; with one thread the two agree on an idle machine. Prints the median over ``--steps`` steps after one warm-up
step, and the time of an epoch of ASSISTments 2009 fold 1 at that rate (``--batches``: 83 batches of 32 windows
of <= 200 steps, the fold's 2,627 training windows). Like `kt`, it first raises glibc's malloc thresholds
(:mod:`kt.core.malloc`) unless ``--malloc system``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from kt.core.malloc import reuse_freed_memory
from kt.tracing import AKT, DKT, DKVMN, SAKT

MODELS = {"DKT": DKT, "DKVMN": DKVMN, "SAKT": SAKT, "AKT": AKT}


def step_seconds(model, batch: dict, steps: int) -> float:
    optimizer = model.configure_optimizers()
    model.train()
    times = []
    for _ in range(steps + 1):
        start = time.process_time()
        logit, target = model._scored(batch)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append(time.process_time() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--length", type=int, default=200)
    parser.add_argument("--skills", type=int, default=110)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batches", type=int, default=83)
    parser.add_argument("--malloc", choices=["kt", "system"], default="kt", help="kt's thresholds or glibc's")
    args = parser.parse_args()
    if args.malloc == "kt":
        reuse_freed_memory()
    torch.manual_seed(0)
    shape = (args.batch_size, args.length)
    batch = {
        "skills": torch.randint(args.skills, shape),
        "correct": torch.randint(2, shape),
        "mask": torch.ones(shape, dtype=torch.bool),
    }
    print(f"{'model':<6} {'parameters':>10} {'CPU s/step':>10} {'CPU s/epoch':>11}")
    for name in args.models:
        model = MODELS[name](num_skills=args.skills)
        seconds = step_seconds(model, batch, args.steps)
        params = sum(p.numel() for p in model.parameters())
        print(f"{name:<6} {params:>10,} {seconds:>10.3f} {seconds * args.batches:>11.1f}")


if __name__ == "__main__":
    main()
