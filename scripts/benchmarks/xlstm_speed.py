"""Forward + backward time of the default xLSTM stack (7 mLSTM + 1 sLSTM blocks, width 200), block by block.

    python scripts/benchmarks/xlstm_speed.py --threads 1 2
    python scripts/benchmarks/xlstm_speed.py --threads 1 2 --against <rev>:kt/tracing/nets/xlstm.py

One batch of 32 windows of 200 steps, every step real (the case with the most work; the stack skips padded
steps when given ``lengths``): each block on its own, then the whole stack, forward and backward of a random
output gradient, after a warm-up; the minimum over ``--repeats``. ``--against`` also times the module at
that git object (an older version of the file), interleaved with the current one in the same process, so
both see the same machine load. Prints a Markdown table in seconds.
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--against", help="git object of another version of the module, e.g. REV:path")
    args = parser.parse_args()

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
