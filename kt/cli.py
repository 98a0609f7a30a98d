"""The ``kt`` command: LightningCLI's ``fit``, ``validate``, ``test`` and ``predict``, and the tools
``plot`` and ``export``.

Model and data are chosen in the config (``model.class_path``, ``data.class_path``), so a new model or
dataset needs no change here. Every Lightning subcommand first reads the packaged ``kt/configs/trainer.yaml``
(the shared trainer defaults), then the files given with ``--config`` (a path, or the name of a config
shipped in ``kt/configs``: ``--config dkt_synthetic``), then the command line.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import sys
from argparse import RawDescriptionHelpFormatter
from pathlib import Path
from typing import Any

from jsonargparse import DefaultHelpFormatter
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI, SaveConfigCallback
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

import kt.tabular  # noqa: F401  (these imports register the models and DataModules: `--model DKT`,
import kt.tracing  # noqa: F401   `--data.help Assist2009DataModule`, ...)
import kt.vision  # noqa: F401
from kt.core.checkpoints import checkpoint_model_class, read_checkpoint
from kt.core.errors import InputError, input_error_in, one_line_errors
from kt.core.predictions import PredictionWriter
from kt.core.resume import ResumableCheckpoint, RNGStates, continue_version, find_last_checkpoint
from kt.core.validation import check_trainer_limits, plain_numbers

# The shipped configs install with the package; KT_TRAINER_CONFIG points at other trainer defaults.
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
AUTO = "auto"
# Subcommands that are tools rather than Lightning runs: name -> (module with main(argv), what it does).
TOOLS = {
    "plot": ("kt.plots.cli", "pictures: learning curves, knowledge state, confusion matrix, an image batch"),
    "export": ("kt.export", "export a checkpoint's network for use without kt"),
}


def trainer_config_files() -> list[str]:
    path = Path(os.environ.get("KT_TRAINER_CONFIG", CONFIG_DIR / "trainer.yaml"))
    return [str(path)] if path.is_file() else []


def resolve_config(value: str) -> str:
    """A ``--config`` value: an existing path as it is, else a config shipped in ``kt/configs`` by name
    (``dkt_synthetic`` or ``dkt_synthetic.yaml``); anything else unchanged, for the parser to report."""
    if Path(value).exists():
        return value
    for candidate in (CONFIG_DIR / value, CONFIG_DIR / f"{value}.yaml"):
        if candidate.is_file():
            return str(candidate)
    return value


def with_shipped_configs(args: list[str]) -> list[str]:
    """``args`` with every ``--config NAME`` / ``--config=NAME`` resolved by :func:`resolve_config`."""
    out = []
    for i, arg in enumerate(args):
        if i > 0 and args[i - 1] == "--config":
            arg = resolve_config(arg)
        elif arg.startswith("--config="):
            arg = "--config=" + resolve_config(arg.removeprefix("--config="))
        out.append(arg)
    return out


def shipped_configs() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.stem != "trainer")


def _import(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


# ckpt_path values that are not files: Lightning resolves them itself (e.g. `kt fit --ckpt_path last`).
SPECIAL_CKPT_PATHS = ("best", "last", "hpc")
# Lines of jsonargparse's nested Union report that say nothing the user can act on.
_NOISE = re.compile(r"^(Does not validate against any of the Union subtypes|Subtypes:|Errors:|Given value type:"
                    r"|Expected a <class 'NoneType'>|Given value: (NestedArg\(|\{))")


class UsageError(InputError):
    """A command-line or config-file problem (unknown key, wrong type, missing config file)."""


def one_line(message: str) -> str:
    """jsonargparse's multi-line report (nested per Union subtype) as one line: the key, then what is wrong."""
    parts = [line.strip().lstrip("- ").strip() for line in message.splitlines()]
    parts = [p for p in parts if p and not _NOISE.match(p)]
    text = " ".join(p if p.endswith(":") else p.rstrip(".") + ";" for p in parts).rstrip(";")
    text = re.sub(r"(a )?<class '(\w+)'>", r"\2", text)
    return re.sub(r'^Parser key "([^"]+)":', r'\1:', text)


class KTArgumentParser(LightningArgumentParser):
    def error(self, message: str, ex: Exception | None = None):
        # jsonargparse prints the whole usage (a hundred lines) and a nested report; kt prints one line.
        # Parsers that do not exit on error (jsonargparse tries Union subtypes with them) keep raising theirs.
        if not self.exit_on_error:
            return super().error(message, ex)
        raise UsageError(f"{one_line(message)} ({self._help_hint(message)})")

    def instantiate_classes(self, cfg, *args: Any, **kwargs: Any):
        # Range-checked numbers (kt.core.validation) become plain ones: checkpoints hold only plain values.
        try:
            return super().instantiate_classes(plain_numbers(cfg), *args, **kwargs)
        except ValueError as err:
            # A model's or DataModule's own check (an InputError in its __init__), not jsonargparse's report.
            raise input_error_in(err) or err from None

    def _help_hint(self, message: str) -> str:
        subcommands = LightningCLI.subcommands()
        # The subcommand: in this parser's name, or named by the main parser ("Subcommand 'fit' ...", "fit.model").
        words = self.prog.split() + re.findall(r"Subcommand '(\w+)'|\b(\w+)\.\w", message)
        words = [w if isinstance(w, str) else "".join(w) for w in words]
        named = [w for w in words if w in subcommands]
        if not named:
            return "see `kt --help`"
        # An option of the model or data class: point at that class's own help.
        component = re.match(r'Parser key "(model|data)":', message)
        cls = re.search(r"class_path '[\w.]*?(\w+)'", message)
        if component and cls:
            return f"`kt {named[0]} --{component.group(1)}.help {cls.group(1)}` lists its options"
        return f"`kt {named[0]} --help` lists the options"


class HelpFormatter(RawDescriptionHelpFormatter, DefaultHelpFormatter):
    """jsonargparse's help, with the epilog's line breaks (the tools and shipped configs) kept."""


class KTCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # Always-on callbacks, configured under their own keys (checkpoint.*, early_stopping.*, ...).
        parser.add_lightning_class_args(ResumableCheckpoint, "checkpoint")
        parser.add_lightning_class_args(EarlyStopping, "early_stopping")
        parser.add_lightning_class_args(PredictionWriter, "prediction_writer")
        # Random generator states in every checkpoint, for resumed runs that equal uninterrupted ones.
        parser.add_lightning_class_args(RNGStates, "rng_states")
        # "auto": monitor what the model declares (e.g. DKT: val/auc, max), in that metric's direction.
        parser.set_defaults({"checkpoint.monitor": AUTO, "early_stopping.monitor": AUTO})

    def instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        model_class = _import(config.model.class_path)
        check_trainer_limits(config.get("trainer"))
        for key in ("checkpoint", "early_stopping"):
            if config[key].monitor == AUTO:
                config[key].monitor = getattr(model_class, "monitor", "val/loss")
                config[key].mode = getattr(model_class, "monitor_mode", "min")
        super().instantiate_classes()
        if self.subcommand and self.config_init[self.subcommand].get("ckpt_path") == "last":
            self._resolve_last()

    def _resolve_last(self) -> None:
        """``--ckpt_path last``: the experiment's newest last.ckpt, whichever run (version folder) wrote it."""
        ckpt = find_last_checkpoint(self.trainer)
        if ckpt is None and self.subcommand != "fit":
            raise InputError("--ckpt_path last: no last*.ckpt in this experiment's checkpoint folders")
        if ckpt is None:
            # As Lightning does: "last" can be set before the first run.
            rank_zero_warn("--ckpt_path last: no last*.ckpt in this experiment's folders; starting from scratch")
            self.config_init[self.subcommand]["ckpt_path"] = None
            return
        rank_zero_info(f"--ckpt_path last: {ckpt}")
        # From here on as if the path had been given: the model's hyperparameters (and data state) are read
        # from the checkpoint, and everything is instantiated again with them.
        self.config[self.subcommand]["ckpt_path"] = str(ckpt)
        self._parse_ckpt_path()
        super().instantiate_classes()
        if self.subcommand == "fit":
            continue_version(self.trainer, ckpt)

    def _parse_ckpt_path(self) -> None:
        """Lightning's, but the checkpoint is read safely (weights_only, one clear error) and may only name a kt model.

        The checkpoint's hyperparameters (with the data state: vocabulary, features, scaler) become the model's
        config, so data is encoded the way the model was trained.
        """
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path:
            return
        if not Path(ckpt_path).is_file():
            if ckpt_path in SPECIAL_CKPT_PATHS or "://" in str(ckpt_path) or str(ckpt_path).startswith("registry"):
                return
        checkpoint = read_checkpoint(ckpt_path)
        cls = checkpoint_model_class(checkpoint, ckpt_path)  # never a class path the file chooses
        configured = self.config[subcommand].get("model")
        if configured is not None and configured.get("class_path") and _import(configured.class_path) is not cls:
            # Otherwise the checkpoint's model would meet the config's data and fail far from the cause.
            raise InputError(
                f"checkpoint {ckpt_path} holds a {cls.__name__} model, but the config's model is "
                f"{configured.class_path}: use the config the checkpoint was trained with"
            )
        hparams = dict(checkpoint.get("hyper_parameters", {}))
        hparams.pop("_instantiator", None)
        hparams.pop("_class_path", None)
        if not hparams:
            return
        # As Lightning does: dict_kwargs, so that a saved value the signature does not list is not an error.
        model = {"class_path": f"{cls.__module__}.{cls.__qualname__}", "dict_kwargs": hparams}
        try:
            self.config = self.parser.parse_object({subcommand: {"model": model}}, self.config)
        except UsageError as err:
            raise UsageError(f"checkpoint {ckpt_path}: hyperparameters that {cls.__name__} refuses: {err}") from None

    def _run_subcommand(self, subcommand: str) -> None:
        # A run stopped by bad input leaves nothing behind: not even the (empty) log folder it just created.
        # Predictions are written atomically at the end and checkpoints only after a validated epoch.
        log_dir = getattr(self.trainer.logger, "log_dir", None) if self.trainer.logger else None
        fresh = Path(log_dir) if log_dir and not Path(log_dir).exists() else None
        try:
            super()._run_subcommand(subcommand)
        except InputError:
            if fresh is not None and fresh.is_dir() and not any(fresh.rglob("*.ckpt")):
                shutil.rmtree(fresh, ignore_errors=True)
            raise

    def _prepare_subcommand_kwargs(self, subcommand: str) -> dict[str, Any]:
        kwargs = super()._prepare_subcommand_kwargs(subcommand)
        if "weights_only" in self._subcommand_method_arguments[subcommand]:
            # Checkpoints hold only tensors and plain values: never unpickle code from a file.
            if kwargs.get("weights_only") is False:
                raise InputError("--weights_only false is not supported: kt checkpoints load with weights_only=true")
            kwargs["weights_only"] = True
        return kwargs


class SaveConfigToRunFolder(SaveConfigCallback):
    """Saves the run's config.yaml into its version folder. A run without a logger has no such folder, and
    Lightning would write the file into the working directory instead: such a run saves no config."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        if trainer.logger is not None:
            super().setup(trainer, pl_module, stage)


def run_cli(args: list[str] | None = None, run: bool = True) -> KTCLI:
    """Build (and by default run) the Lightning CLI; ``args`` replaces ``sys.argv[1:]`` (tests, notebooks)."""
    defaults = trainer_config_files()
    parser_kwargs: dict[str, Any] = {name: {"default_config_files": defaults} for name in KTCLI.subcommands()}
    tools = "\n".join(f"  {name:<9} {what} (`kt {name} --help`)" for name, (_, what) in TOOLS.items())
    configs = ", ".join(shipped_configs())
    parser_kwargs["epilog"] = f"tools:\n{tools}\n\nshipped configs (`--config NAME`):\n  {configs}"
    parser_kwargs["formatter_class"] = HelpFormatter
    if args is None:
        # The program's own command line, with shipped config names resolved (passing it as ``args`` too
        # would make Lightning warn that both were given).
        sys.argv[1:] = with_shipped_configs(sys.argv[1:])
    else:
        args = with_shipped_configs(list(args))
    return KTCLI(
        parser_class=KTArgumentParser,
        subclass_mode_model=True,
        subclass_mode_data=True,
        parser_kwargs=parser_kwargs,
        args=args,
        run=run,
        auto_configure_optimizers=False,
        save_config_callback=SaveConfigToRunFolder,
        save_config_kwargs={"overwrite": True},
    )


def main(args: list[str] | None = None) -> None:
    argv = sys.argv[1:] if args is None else args
    if argv and argv[0] in TOOLS:
        importlib.import_module(TOOLS[argv[0]][0]).main(argv[1:])
        return
    with one_line_errors("kt"):
        run_cli(args)
