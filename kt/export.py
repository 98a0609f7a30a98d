"""Export a trained model's network with torch.export (.pt2) or ONNX (.onnx), to run without kt or Lightning.

Each model says what to export with ``export_module() -> (network, example inputs)``: the plain
``nn.Module`` that maps input tensors to outputs (DKT: skills and answers to logits; MLP: features to the
prediction; CNN: images to logits). :func:`export` captures it with dynamic sizes -- the batch, and the
sequence length of (batch, time) integer inputs (DKT's) -- and writes it with the model's ``data_state``
(vocabulary, feature columns and scaler, normalisation) as one JSON document: in a ``.pt2`` the extra file
``data_state.json``, in an ``.onnx`` the model metadata entry ``data_state``. :func:`load_exported` reads
either back.

The file is written only once its reloaded network gives the PyTorch network's outputs to within
:data:`TOLERANCE`, on the example inputs and on inputs of another batch size and sequence length.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from lightning.pytorch import LightningModule
from torch.export import Dim

from kt.core.errors import InputError

FORMATS = {".pt2": "pt2", ".onnx": "onnx"}  # file suffix -> format
DATA_STATE = "data_state"  # the ONNX metadata key
DATA_STATE_FILE = "data_state.json"  # the .pt2 extra file
# Exported and PyTorch outputs must agree to this (float32 round-off).
TOLERANCE = 1e-5
ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")

Network = Callable[..., torch.Tensor]


def export_format(out: str | Path, fmt: str | None = None) -> str:
    """``pt2`` or ``onnx``: ``fmt`` if given, else from ``out``'s suffix."""
    by_suffix = FORMATS.get(Path(out).suffix.lower())
    if fmt is None:
        if by_suffix is None:
            raise InputError(
                f"--out {out}: cannot tell the format from the suffix {Path(out).suffix or '(none)'!r}; "
                "name the file *.pt2 (torch.export) or *.onnx, or give --format pt2|onnx"
            )
        return by_suffix
    if fmt not in FORMATS.values():
        raise InputError(f"--format {fmt!r}: expected 'pt2' or 'onnx'")
    if by_suffix is not None and by_suffix != fmt:
        raise InputError(f"--out {out}: the suffix {Path(out).suffix!r} says {by_suffix}, but --format says {fmt}")
    return fmt


def dynamic_dims(example: Sequence[torch.Tensor]) -> list[dict[int, str]]:
    """Which dimension of each input is free, by name: dimension 0 is the batch; an integer (batch, time)
    input (DKT's skills and answers) also has a free sequence length. Inputs sharing a name share a size."""
    return [{0: "batch", 1: "time"} if t.dim() == 2 and not t.is_floating_point() else {0: "batch"} for t in example]


def dynamic_shapes(example: Sequence[torch.Tensor]) -> tuple[dict[int, Dim], ...]:
    dims = {"batch": Dim("batch", min=1), "time": Dim("time", min=1)}
    return tuple({axis: dims[name] for axis, name in free.items()} for free in dynamic_dims(example))


def other_inputs(example: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Inputs shaped unlike the example, drawn like it: batch 3 and 3 more steps in every free sequence
    length; integers within the example's range, floats standard normal."""
    generator = torch.Generator().manual_seed(0)
    out = []
    for tensor, free in zip(example, dynamic_dims(example)):
        shape = [3 if free.get(axis) == "batch" else size + 3 if free.get(axis) == "time" else size
                 for axis, size in enumerate(tensor.shape)]
        if tensor.is_floating_point():
            out.append(torch.randn(shape, generator=generator))
        else:
            out.append(torch.randint(0, int(tensor.max()) + 1, shape, generator=generator))
    return tuple(out)


def require_onnx() -> None:
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise InputError(f'ONNX export needs {", ".join(missing)}, not installed: pip install "kt[export]"')


def export(model: LightningModule, out: str | Path, fmt: str | None = None) -> dict[str, float]:
    """Export ``model.export_module()`` to ``out`` (format ``fmt``, or from the suffix) with the model's
    data state; returns the largest absolute difference between the reloaded export and the PyTorch network,
    per set of inputs (the example, and :func:`other_inputs`).

    Nothing is written at ``out`` when the network cannot be captured or its export differs by more than
    :data:`TOLERANCE`: both are an :class:`InputError`.
    """
    fmt = export_format(out, fmt)
    if not hasattr(torch.compiler, "is_exporting"):  # DKTLogits switches to the while_loop recurrence with it
        raise InputError(f"kt export needs torch >= 2.7 (tested with 2.13); this is torch {torch.__version__}")
    if fmt == "onnx":
        require_onnx()
    if not hasattr(model, "export_module"):
        raise InputError(f"{type(model).__name__} has no export_module(); it cannot be exported")
    network, example = model.export_module()
    network = network.eval()
    state = json.dumps(model.hparams.get(DATA_STATE))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.stem}.partial{out.suffix}")  # checked before it takes the name `out`
    try:
        with torch.no_grad():
            program = capture(model, network, example, fmt)
            (save_pt2 if fmt == "pt2" else save_onnx)(program, state, partial)
        exported, _ = load_exported(partial, fmt)
        other = other_inputs(example)
        diffs = {
            f"the example inputs {shapes(example)}": max_abs_difference(network, exported, example),
            f"inputs {shapes(other)}": max_abs_difference(network, exported, other),
        }
        for inputs, diff in diffs.items():
            if not diff <= TOLERANCE:  # NaN included
                raise InputError(
                    f"{type(model).__name__}: the exported network differs from PyTorch by up to {diff:.3g} "
                    f"(more than {TOLERANCE:g}) on {inputs}; nothing written"
                )
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return diffs


def shapes(inputs: Sequence[torch.Tensor]) -> str:
    return ", ".join(str(tuple(t.shape)) for t in inputs)


def capture(model: LightningModule, network: torch.nn.Module, example: tuple, fmt: str):
    """The network as a ``torch.export.ExportedProgram`` (pt2) or ``torch.onnx.ONNXProgram``, with free
    sizes (:func:`dynamic_shapes`); any failure is one :class:`InputError`."""
    free = sorted({name for dims in dynamic_dims(example) for name in dims.values()})
    try:
        if fmt == "pt2":
            return torch.export.export(network, example, dynamic_shapes=dynamic_shapes(example))
        with warnings.catch_warnings():
            # Notes from inside torch.onnx, not about kt's calls: inputs sharing a size (DKT's skills and
            # answers) share its name, and torch's own use of a pytree API it deprecates.
            warnings.filterwarnings("ignore", message=r".*The axis name: \w+ will not be used", category=UserWarning)
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning)
            return torch.onnx.export(
                network, example, dynamo=True, dynamic_shapes=dynamic_shapes(example), output_names=["output"],
                verbose=False,
            )
    except Exception as err:  # the exporters raise many types; all mean the same to the user
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise InputError(
            f"{type(model).__name__} ({type(network).__name__}) cannot be exported to {fmt} with free "
            f"{' and '.join(free)} sizes: {reason}"
        ) from err


def save_pt2(program: torch.export.ExportedProgram, state: str, path: Path) -> None:
    torch.export.save(program, path, extra_files={DATA_STATE_FILE: state})


def save_onnx(program, state: str, path: Path) -> None:
    program.model.metadata_props[DATA_STATE] = state
    program.save(path)


def load_exported(path: str | Path, fmt: str | None = None) -> tuple[Network, object]:
    """The network in an exported file, as a function of tensors returning a tensor, and its data state."""
    fmt = export_format(path, fmt)
    if fmt == "pt2":
        extra = {DATA_STATE_FILE: ""}
        program = torch.export.load(path, extra_files=extra)
        return program.module(), json.loads(extra[DATA_STATE_FILE])
    require_onnx()
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(*inputs: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(session.run(None, {n: t.numpy() for n, t in zip(names, inputs)})[0])

    return run, json.loads(session.get_modelmeta().custom_metadata_map[DATA_STATE])


def max_abs_difference(reference: Network, exported: Network, inputs: Sequence[torch.Tensor]) -> float:
    """Largest absolute difference between the two networks' outputs on ``inputs``."""
    with torch.no_grad():
        expected, got = reference(*inputs), exported(*inputs)
    if expected.shape != got.shape:
        return math.inf
    return (expected.float() - got.float()).abs().max().item()


def main(argv: list[str] | None = None) -> float:
    """``kt export --ckpt CKPT --out FILE [--format pt2|onnx]``: export, then print (and return) the largest
    difference from the PyTorch model."""
    import argparse

    from kt.core.checkpoints import load_checkpoint
    from kt.core.errors import one_line_errors

    parser = argparse.ArgumentParser(prog="kt export", description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--ckpt", required=True, help="checkpoint written by `kt fit`")
    parser.add_argument("--out", required=True, help="file to write: model.pt2 (torch.export) or model.onnx")
    parser.add_argument("--format", help="pt2 or onnx (default: from the suffix of --out)")
    args = parser.parse_args(argv)
    with one_line_errors("kt export"):
        fmt = export_format(args.out, args.format)  # before loading: a typo or a missing package fails fast
        if fmt == "onnx":
            require_onnx()
        model = load_checkpoint(args.ckpt)
        diffs = export(model, args.out, fmt)
    print(f"{type(model).__name__} -> {args.out} ({fmt})")
    for name, diff in diffs.items():
        print(f"  max |exported - PyTorch| on {name}: {diff:.3g}")
    return max(diffs.values())
