"""Forward + backward time of the default xLSTM stack (7 mLSTM + 1 sLSTM blocks, width 200), block by block.

    python scripts/benchmarks/xlstm_speed.py --threads 1 2
    python scripts/benchmarks/xlstm_speed.py --threads 1 2 --against <rev>:kt/tracing/nets/xlstm.py
    python scripts/benchmarks/xlstm_speed.py --threads 1 --floor

One batch of 32 windows of 200 steps, every step real (the case with the most work; the stack skips padded
steps when given ``lengths``): each block on its own, then the whole stack, forward and backward of a random
output gradient, after a warm-up; the minimum over ``--repeats``. ``--against`` also times the module at
that git object (an older version of the file), interleaved with the current one in the same process, so
both see the same machine load. Prints a Markdown table in seconds.

``--floor`` times only the stack's linear layers (every ``nn.Linear``, forward + backward with the weight and
input gradients, at the batch's (6400, in) shape), the part no reorganisation of the recurrence can remove,
and scales it to an epoch of ``--epoch-steps`` steps (default: the 176,684 interactions of the training
windows of ASSISTments 2009 fold 1, a lower bound of the steps a bucketed epoch computes).
"""

from __future__ import annotations

import argparse
import subprocess
import time
import types
from pathlib import Path

import torch

from kt.tracing.nets import xlstm

BATCH, STEPS, WIDTH = 32, 200, 200


def load_from_git(spec: str) -> types.ModuleType:
    """The module at a git object such as ``HEAD~1:kt/tracing/nets/xlstm.py``."""
    root = Path(__file__).resolve().parents[2]
    source = subprocess.run(["git", "show", spec], cwd=root, check=True, capture_output=True, text=True).stdout
    module = types.ModuleType("xlstm_at_" + spec.split(":")[0])
    exec(compile(source, spec, "exec"), module.__dict__)
    return module


def fwd_bwd_seconds(module: torch.nn.Module, x: torch.Tensor, grad: torch.Tensor) -> float:
    start = time.perf_counter()
    out, _ = module(x)
    out.backward(grad)
    return time.perf_counter() - start


def parts(code: types.ModuleType) -> list[tuple[str, torch.nn.Module]]:
    torch.manual_seed(0)
    stack = code.XLSTMStack(WIDTH, WIDTH)
    kinds = [type(block).__name__[:5] for block in stack.blocks]
    return [(f"{i}: {kind}", block) for i, (kind, block) in enumerate(zip(kinds, stack.blocks))] + [
        ("whole stack", stack)
    ]


def linear_floor(threads: int, repeats: int, epoch_steps: int) -> None:
    """Print the forward + backward time of the stack's linear layers alone against the whole stack's."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    stack = xlstm.XLSTMStack(WIDTH, WIDTH)
    linears = [m for m in stack.modules() if isinstance(m, torch.nn.Linear)]
    rows = BATCH * STEPS
    inputs = {m.in_features: torch.randn(rows, m.in_features, requires_grad=True) for m in linears}
    flops = sum(6 * rows * m.in_features * m.out_features for m in linears)  # forward 2, backward 4 per MAC
    x = torch.randn(BATCH, STEPS, WIDTH, requires_grad=True)
    grad = torch.randn(BATCH, STEPS, WIDTH)

    def linears_alone() -> float:
        start = time.perf_counter()
        for m in linears:
            m(inputs[m.in_features]).backward(torch.ones(rows, m.out_features))
        return time.perf_counter() - start

    best_linear = best_stack = float("inf")
    for repeat in range(repeats + 1):  # the first round warms up; interleaved, both see the same load
        linear, whole = linears_alone(), fwd_bwd_seconds(stack, x, grad)
        if repeat:
            best_linear, best_stack = min(best_linear, linear), min(best_stack, whole)
    print(f"{threads} thread(s), batch {BATCH} x {STEPS}, min of {repeats}:")
    print(f"  whole stack: {best_stack:.3f} s")
    print(f"  its {len(linears)} linear layers alone: {best_linear:.3f} s, {flops / 1e9:.1f} GFLOP "
          f"({flops / best_linear / 1e9:.0f} GFLOP/s), {best_linear / best_stack:.0%} of the stack; "
          f"{best_linear * epoch_steps / rows:.1f} s per epoch of {epoch_steps:,} steps")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--against", help="git object of another version of the module, e.g. REV:path")
    parser.add_argument("--floor", action="store_true", help="time the linear layers alone (see above)")
    parser.add_argument("--epoch-steps", type=int, default=176_684)
    args = parser.parse_args()
    if args.floor:
        for threads in args.threads:
            linear_floor(threads, args.repeats, args.epoch_steps)
        return

    versions = {"current": xlstm} | ({args.against: load_from_git(args.against)} if args.against else {})
    torch.manual_seed(0)
    x = torch.randn(BATCH, STEPS, WIDTH, requires_grad=True)
    grad = torch.randn(BATCH, STEPS, WIDTH)
    names = list(versions)
    print(f"fwd+bwd seconds, batch {BATCH} x {STEPS} steps, width {WIDTH}, min of {args.repeats}\n")
    print("| part | threads | " + " | ".join(names) + (" | speed-up |" if len(names) > 1 else ""))
    print("| --- " * (2 + len(names) + (len(names) > 1)) + "|", flush=True)
    for threads in args.threads:
        torch.set_num_threads(threads)
        models = {name: parts(code) for name, code in versions.items()}
        for row in range(len(models["current"])):
            best = dict.fromkeys(names, float("inf"))
            for repeat in range(args.repeats + 1):  # the first round warms up
                for name in names:  # interleaved: both versions see the same load
                    seconds = fwd_bwd_seconds(models[name][row][1], x, grad)
                    best[name] = min(best[name], seconds) if repeat else best[name]
            cells = " | ".join(f"{best[n]:.3f}" for n in names)
            ratio = f" | {best[names[1]] / best[names[0]]:.1f}x" if len(names) > 1 else ""
            print(f"| {models['current'][row][0]} | {threads} | {cells}{ratio} |", flush=True)


if __name__ == "__main__":
    main()
