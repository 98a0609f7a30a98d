"""Export a `kt fit` checkpoint to TorchScript and check it against the PyTorch model.

    python scripts/export.py --ckpt lightning_logs/dkt_synthetic/version_0/checkpoints/last.ckpt --out dkt.pt

The checkpoint is read safely and names its model class (:func:`kt.load_checkpoint`). The network is traced
(see :mod:`kt.export`); the script then runs the exported and the PyTorch network on the example inputs
and, for DKT, on a batch of other size and sequence length, and prints the largest absolute difference.
Load the result with ``torch.jit.load("dkt.pt")`` (Python) or ``torch::jit::load`` (C++).
"""

from __future__ import annotations

import argparse

import torch

from kt.errors import one_line_errors
from kt.export import export, max_abs_difference, other_inputs
from kt.inference import load_checkpoint


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="checkpoint written by `kt fit`")
    parser.add_argument("--out", required=True, help="TorchScript file to write, e.g. model.pt")
    args = parser.parse_args(argv)

    model = load_checkpoint(args.ckpt)
    network, _ = model.export_module()
    _, example = export(model, args.out)
    exported = torch.jit.load(args.out)
    diffs = {"example inputs": max_abs_difference(network.eval(), exported, example)}
    other = other_inputs(example)
    diffs[f"inputs of shape {[tuple(t.shape) for t in other]}"] = max_abs_difference(network, exported, other)
    print(f"{type(model).__name__} -> {args.out} (TorchScript)")
    for name, diff in diffs.items():
        print(f"  max |exported - PyTorch| on {name}: {diff:.3g}")
    return max(diffs.values())


if __name__ == "__main__":
    with one_line_errors("export"):
        main()
