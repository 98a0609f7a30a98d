"""Export a trained model's network to TorchScript, to run without kt, Lightning or Python.

Each model says what to export with ``export_module() -> (network, example inputs)``: the plain
``nn.Module`` that maps input tensors to outputs (DKT: skills and answers to logits; MLP: features to the
prediction). :func:`export` traces it with the example inputs and saves it; the model's ``data_state``
(vocabulary, feature columns and scaler, ...) goes into the same file as ``data_state.json``, so whoever
loads it can encode inputs as the model was trained:

    extra = {"data_state.json": ""}
    network = torch.jit.load("model.pt", _extra_files=extra)
    data_state = json.loads(extra["data_state.json"])
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from lightning.pytorch import LightningModule

from kt.core.errors import InputError

DATA_STATE_FILE = "data_state.json"
# Exported and PyTorch outputs must agree to this (float32 round-off).
TOLERANCE = 1e-5


def other_inputs(example: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Inputs shaped unlike the example, drawn like it: batch 3 and, for integer sequences (batch, time),
    3 more steps; integers within the example's range, floats standard normal."""
    generator = torch.Generator().manual_seed(0)
    out = []
    for tensor in example:
        if tensor.is_floating_point():
            out.append(torch.randn((3, *tensor.shape[1:]), generator=generator))
        else:
            shape = (3, tensor.shape[1] + 3, *tensor.shape[2:]) if tensor.dim() >= 2 else (3,)
            out.append(torch.randint(0, int(tensor.max()) + 1, shape, generator=generator))
    return tuple(out)


def export(model: LightningModule, out: str | Path) -> tuple[torch.jit.ScriptModule, tuple[torch.Tensor, ...]]:
    """Trace ``model.export_module()`` and save it to ``out`` with the data state; returns the traced
    module and the example inputs.

    A trace records one run; before anything is written it is checked on inputs of another batch size and
    sequence length (:func:`other_inputs`), so a network whose trace would only fit the example's shapes
    (e.g. a Python loop over time steps) is refused rather than exported wrong.
    """
    if not hasattr(model, "export_module"):
        raise InputError(f"{type(model).__name__} has no export_module(); it cannot be exported")
    network, example = model.export_module()
    network = network.eval()
    with torch.no_grad(), warnings.catch_warnings():
        # nn.LSTM/GRU check their input's shape in Python while tracing; the checks hold for every batch
        # size and length, as the check below confirms.
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        traced = torch.jit.trace(network, example)
    other = other_inputs(example)
    try:
        diff = max_abs_difference(network, traced, other)
    except RuntimeError as err:
        diff, reason = math.inf, str(err).strip().splitlines()[-1]
    else:
        reason = f"outputs differ by up to {diff:.3g}"
    if not diff <= TOLERANCE:
        raise InputError(
            f"{type(model).__name__}: the traced network does not carry over from inputs of shape "
            f"{[tuple(t.shape) for t in example]} to {[tuple(t.shape) for t in other]} ({reason}); "
            "this configuration cannot be exported by tracing"
        )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    state = model.hparams.get("data_state")
    torch.jit.save(traced, str(out), _extra_files={DATA_STATE_FILE: json.dumps(state)})
    return traced, example


def max_abs_difference(reference: torch.nn.Module, exported: torch.nn.Module, inputs: Sequence[torch.Tensor]) -> float:
    """Largest absolute difference between the two modules' outputs on ``inputs``."""
    with torch.no_grad():
        expected, got = reference(*inputs), exported(*inputs)
    return (expected.float() - got.float()).abs().max().item()


def main(argv: list[str] | None = None) -> float:
    """``kt export --ckpt CKPT --out FILE``: export, then print (and return) the largest difference from the
    PyTorch model."""
    import argparse

    from kt.core.checkpoints import load_checkpoint
    from kt.core.errors import one_line_errors

    parser = argparse.ArgumentParser(prog="kt export", description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--ckpt", required=True, help="checkpoint written by `kt fit`")
    parser.add_argument("--out", required=True, help="file to write, e.g. model.pt")
    args = parser.parse_args(argv)
    with one_line_errors("kt export"):
        model = load_checkpoint(args.ckpt)
        network, _ = model.export_module()
        _, example = export(model, args.out)
        exported = torch.jit.load(args.out)
        diffs = {"example inputs": max_abs_difference(network.eval(), exported, example)}
        other = other_inputs(example)
        diffs[f"inputs of shape {[tuple(t.shape) for t in other]}"] = max_abs_difference(network, exported, other)
    print(f"{type(model).__name__} -> {args.out}")
    for name, diff in diffs.items():
        print(f"  max |exported - PyTorch| on {name}: {diff:.3g}")
    return max(diffs.values())
