"""Loading a trained model back: ``kt.load_checkpoint(path)`` for any kt model, safely.

    import kt
    model = kt.load_checkpoint("lightning_logs/dkt_assist2009/version_0/checkpoints/last.ckpt")  # eval mode

Everything inference needs (skill vocabulary, selected features and scaler, ...) is the model's
``data_state`` hyperparameter, saved in the checkpoint as plain types. Checkpoints are read with
``torch.load(weights_only=True)``: only tensors and plain values are unpickled, so a file crafted to run
code when it is loaded is refused (a :class:`InputError`) before anything in it executes.
"""

from __future__ import annotations

import importlib
import io
import re
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import LightningModule

from kt.core.errors import InputError

# The key every kt model writes into its checkpoints (BaseModule.on_save_checkpoint): the model's class name.
MODEL_KEY = "kt_model"
CHECKPOINT_HELP = "pass a .ckpt file written by `kt fit` (lightning_logs/<experiment>/version_N/checkpoints/)"


# The task packages; each lists its models (and DataModules) in ``__all__``.
TASKS = ("kt.tracing", "kt.tabular", "kt.vision")


def model_registry() -> dict[str, type[LightningModule]]:
    """``{class name: class}`` for every LightningModule in a task package's ``__all__`` (a new model listed
    there needs nothing here)."""
    classes = (getattr(module, name) for module in map(importlib.import_module, TASKS) for name in module.__all__)
    return {cls.__name__: cls for cls in classes if isinstance(cls, type) and issubclass(cls, LightningModule)}


def _unsafe_reason(err: Exception) -> str | None:
    """What ``weights_only`` loading refused, from torch's message, or None if the file is simply not a pickle."""
    found = re.search(r"GLOBAL ([\w.]+)", str(err))
    return f"loading it would call {found.group(1)}" if found else None


def read_checkpoint(path: str | Path, map_location: Any = "cpu") -> dict:
    """The checkpoint's dictionary, read with ``weights_only=True``; every failure is one :class:`InputError`."""
    return _load_bytes(_read_bytes(path), path, map_location)


def _read_bytes(path: str | Path) -> bytes:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} not found: {CHECKPOINT_HELP}")
    data = path.read_bytes()
    if not data:
        raise InputError(f"checkpoint {path}: the file is empty; {CHECKPOINT_HELP}")
    return data


def _load_bytes(data: bytes, path: str | Path, map_location: Any) -> dict:
    try:
        checkpoint = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure to unpickle untrusted bytes means "not a checkpoint"
        reason = _unsafe_reason(err)
        if reason is not None:
            raise InputError(
                f"checkpoint {path} refused: {reason}, and kt loads only tensors and plain values "
                "(weights_only=True), so that a checkpoint cannot run code on your machine; nothing in it was executed"
            ) from None
        kind = type(err).__name__
        raise InputError(f"checkpoint {path} is not a PyTorch checkpoint ({kind}); {CHECKPOINT_HELP}") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise InputError(f"checkpoint {path} has no model weights (no 'state_dict'); {CHECKPOINT_HELP}")
    return checkpoint


def check_weights_match(module: torch.nn.Module, checkpoint: dict, path: str | Path = "checkpoint") -> None:
    """The checkpoint's tensors have the shapes the model built from its hyperparameters has; otherwise one
    error naming the first tensor that differs (instead of PyTorch's "size mismatch" traceback)."""
    own = module.state_dict()
    for name, tensor in checkpoint.get("state_dict", {}).items():
        expected = own.get(name)
        if expected is None or not isinstance(tensor, torch.Tensor) or tensor.shape == expected.shape:
            continue
        raise InputError(
            f"checkpoint {path}: tensor {name} has shape {tuple(tensor.shape)}, but the hyperparameters saved "
            f"with it build {tuple(expected.shape)}; the file's weights and hyperparameters disagree (was it edited "
            f"or assembled from two runs?); {CHECKPOINT_HELP}"
        )


def checkpoint_model_class(checkpoint: dict, path: str | Path = "checkpoint") -> type[LightningModule]:
    """The kt model class that wrote ``checkpoint``."""
    registry = model_registry()
    name = checkpoint.get(MODEL_KEY)
    if name is None:
        # Checkpoints written by `kt fit` before MODEL_KEY existed still name their class in the hyperparameters.
        class_path = str(checkpoint.get("hyper_parameters", {}).get("_class_path", ""))
        name = class_path.rpartition(".")[2] or None
    if name is None:
        raise InputError(
            f"{path} is not a kt checkpoint: it does not say which model wrote it ('{MODEL_KEY}'); {CHECKPOINT_HELP}"
        )
    if name not in registry:
        raise InputError(
            f"{path} was written by model {name!r}, which this kt does not have "
            f"(known: {', '.join(sorted(registry))}); "
            "load it with the kt version that trained it"
        )
    return registry[name]


def load_checkpoint(path: str | Path, map_location: str | torch.device | None = "cpu") -> LightningModule:
    """Load any kt model from its checkpoint alone, in eval mode, on ``map_location`` (e.g. ``"cuda"``).

    The class is the one the checkpoint names; hyperparameters and the data state (vocabulary, features,
    scaler, normalisation) come from the checkpoint, so no data or config is needed.
    """
    data = _read_bytes(path)  # read once: checked here, then handed to Lightning from memory
    checkpoint = _load_bytes(data, path, "cpu")
    cls = checkpoint_model_class(checkpoint, path)
    hparams = {k: v for k, v in checkpoint.get("hyper_parameters", {}).items() if not k.startswith("_")}
    try:
        check_weights_match(cls(**hparams), checkpoint, path)
    except TypeError as err:
        raise InputError(f"checkpoint {path}: its hyperparameters do not fit {cls.__name__} ({err})") from None
    model = cls.load_from_checkpoint(io.BytesIO(data), map_location=map_location, weights_only=True)
    return model.eval()
