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
import sys
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

import kt.tabular  # noqa: F401  (these imports register the models and DataModules: `--model DKT`,
import kt.tracing  # noqa: F401   `--data.help Assist2009DataModule`, ...)
import kt.vision  # noqa: F401
from kt.core.checkpoints import checkpoint_model_class, read_checkpoint
from kt.core.cli_errors import HelpFormatter, KTArgumentParser, UsageError, config_files, yaml_error
from kt.core.errors import InputError, one_line_errors
from kt.core.malloc import reuse_freed_memory
from kt.core.predictions import PredictionWriter
from kt.core.resume import (
    ResumableCheckpoint,
    RNGStates,
    checkpoint_folders,
    checkpoint_version,
    newest_last_checkpoint,
)
from kt.core.run_folder import (
    DiscardFailedRun,
    SaveConfigToRunFolder,
    asks_for_logger,
    build_logger,
    logger_config,
)
from kt.core.validation import check_trainer_limits

# The shipped configs install with the package; KT_TRAINER_CONFIG points at other trainer defaults.
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
AUTO = "auto"
# Subcommands that are tools rather than Lightning runs: name -> (module with main(argv), what it does).
TOOLS = {
    "plot": ("kt.plots.cli", "pictures: learning curves, knowledge state, confusion matrix, an image batch"),
    "export": ("kt.export", "export a checkpoint's network for use without kt"),
    "tune": ("kt.tune", "hyperparameter search (Optuna), each trial scored by k-fold cross-validation"),
    "cv": ("kt.cv", "train a config's k fold models (cross-validation), keeping each fold's best checkpoint"),
    "predict-ensemble": ("kt.ensemble", "predict with the mean of several models (e.g. `kt cv`'s fold models)"),
}
# ckpt_path values that are not files: Lightning resolves them itself (`last` is kt's, see resolve_last).
SPECIAL_CKPT_PATHS = ("best", "last", "hpc")


def trainer_config_files() -> list[str]:
    """The trainer defaults every Lightning subcommand reads first."""
    path = Path(os.environ.get("KT_TRAINER_CONFIG", CONFIG_DIR / "trainer.yaml"))
    return [str(path)] if path.is_file() else []


def resolve_config(value: str) -> str:
    """A ``--config`` value: an existing file as it is, else a config shipped in ``kt/configs`` by name
    (``dkt_synthetic`` or ``dkt_synthetic.yaml``; ``data/assist2015`` in a subfolder); anything else unchanged,
    for the parser to report."""
    # A file, not any path: `data/assist2015` is also the default data folder of that data set.
    try:
        if Path(value).is_file():
            return value
        for candidate in (CONFIG_DIR / value, CONFIG_DIR / f"{value}.yaml"):
            if candidate.is_file():
                return str(candidate)
    except OSError:  # not a name at all (too long): YAML text given as the config
        pass
    return value


def with_shipped_configs(args: list[str]) -> list[str]:
    """``args`` with every ``--config NAME`` / ``--config=NAME`` resolved by :func:`resolve_config`."""
    out = []
    for i, arg in enumerate(args):
        if i > 0 and args[i - 1] in ("--config", "-c"):
            arg = resolve_config(arg)
        elif arg.startswith("--config="):
            arg = "--config=" + resolve_config(arg.removeprefix("--config="))
        out.append(arg)
    return out


def shipped_configs() -> list[str]:
    names = (p.relative_to(CONFIG_DIR).with_suffix("").as_posix() for p in CONFIG_DIR.rglob("*.yaml"))
    return sorted(name for name in names if name != "trainer")


def import_class(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


class KTCLI(LightningCLI):
    """LightningCLI with kt's callbacks, the monitored metric chosen by the model, checkpoints read safely
    (weights_only, only kt models), ``--ckpt_path last`` across runs, and no log folder for evaluation runs
    unless ``--trainer.logger`` is given."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # Always-on callbacks, configured under their own keys (checkpoint.*, early_stopping.*, ...).
        parser.add_lightning_class_args(ResumableCheckpoint, "checkpoint")
        parser.add_lightning_class_args(EarlyStopping, "early_stopping")
        parser.add_lightning_class_args(PredictionWriter, "prediction_writer")
        # Random generator states in every checkpoint, for resumed runs that equal uninterrupted ones.
        parser.add_lightning_class_args(RNGStates, "rng_states")
        # "auto": monitor what the model declares (e.g. DKT: val/auc, max), in that metric's direction.
        parser.set_defaults({"checkpoint.monitor": AUTO, "early_stopping.monitor": AUTO})

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """Lightning's, with YAML errors located in their file, and a checkpoint given as ``--ckpt_path FILE``
        read here, safely, by :meth:`use_checkpoint_hparams`.

        The path is taken out of the config until :meth:`before_instantiate_classes`: Lightning would read the
        checkpoint again in between, trusting the class path written in the file and without kt's errors."""
        self.command_line = [str(a) for a in (sys.argv[1:] if args is None else args)]
        try:
            super().parse_arguments(parser, args)
        except UsageError as err:
            where = yaml_error([*trainer_config_files(), *config_files(self.command_line)])
            if where is None or "<unicode string>" not in str(err):
                raise
            raise UsageError(where) from None
        self.checkpoint_path = None
        subcommand = self.config.get("subcommand")
        if subcommand is None:
            return
        # Checkpoints hold only tensors and plain values: never unpickle code from a file. Trainer.fit/validate/
        # test/predict take weights_only, so the config passes it on.
        if self.config[subcommand].get("weights_only") is False:
            raise InputError("--weights_only false is not supported: kt checkpoints load with weights_only=true")
        self.config[subcommand]["weights_only"] = True
        ckpt_path = self.config[subcommand].get("ckpt_path")
        if ckpt_path and not self.resolved_by_lightning(str(ckpt_path)):
            self.use_checkpoint_hparams(str(ckpt_path))
            self.config[subcommand]["ckpt_path"] = None
            self.checkpoint_path = str(ckpt_path)

    @staticmethod
    def resolved_by_lightning(ckpt_path: str) -> bool:
        """``best``, ``hpc``, a URL or a registry name: not a local file, Lightning finds it (``last``: kt does)."""
        if Path(ckpt_path).is_file():
            return False
        return ckpt_path in SPECIAL_CKPT_PATHS or "://" in ckpt_path or ckpt_path.startswith("registry")

    def use_checkpoint_hparams(self, ckpt_path: str) -> None:
        """The checkpoint's hyperparameters (with the data state: vocabulary, features, scaler) become the
        model's config, so data is encoded the way the model was trained. The checkpoint is read with
        weights_only (one clear error for anything else) and may only name a kt model."""
        subcommand = self.config.subcommand
        checkpoint = read_checkpoint(ckpt_path)
        cls = checkpoint_model_class(checkpoint, ckpt_path)  # never a class path the file chooses
        configured = self.config[subcommand].get("model")
        if configured is not None and configured.get("class_path") and import_class(configured.class_path) is not cls:
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

    def before_instantiate_classes(self) -> None:
        """The config's last touches: the monitored metric, the checkpoint to start from, and no logger for
        validate/test/predict unless the command line asks for one."""
        self.set_monitor(self.config[self.subcommand] if self.subcommand else self.config)
        if self.subcommand is None:
            return
        config = self.config[self.subcommand]
        check_trainer_limits(config.get("trainer"))
        if self.checkpoint_path is not None:
            config["ckpt_path"] = self.checkpoint_path
        elif config.get("ckpt_path") == "last":
            self.resolve_last()
            config = self.config[self.subcommand]
        if self.subcommand != "fit" and not asks_for_logger(self.command_line):
            # The experiment config's logger is for training runs: an evaluation writes no version folder.
            config.trainer.logger = False

    @staticmethod
    def set_monitor(config: Namespace) -> None:
        """``monitor: auto``: the metric the model class declares, in its direction (default val/loss, min)."""
        model_class = import_class(config.model.class_path)
        for key in ("checkpoint", "early_stopping"):
            if config[key].monitor == AUTO:
                config[key].monitor = getattr(model_class, "monitor", "val/loss")
                config[key].mode = getattr(model_class, "monitor_mode", "min")

    def resolve_last(self) -> None:
        """``--ckpt_path last``: the experiment's newest last.ckpt, whichever run (version folder) wrote it;
        ``kt fit`` continues in that run's folder (the logger's ``version``)."""
        config = self.config[self.subcommand]
        logger = build_logger(config.trainer)
        default_root = config.trainer.get("default_root_dir") or os.getcwd()
        ckpt = newest_last_checkpoint(checkpoint_folders([config.checkpoint.get("dirpath")], logger, default_root))
        if ckpt is None and self.subcommand != "fit":
            raise InputError("--ckpt_path last: no last*.ckpt in this experiment's checkpoint folders")
        if ckpt is None:
            # As Lightning does: "last" can be set before the first run.
            rank_zero_warn("--ckpt_path last: no last*.ckpt in this experiment's folders; starting from scratch")
            config["ckpt_path"] = None
            return
        rank_zero_info(f"--ckpt_path last: {ckpt}")
        self.use_checkpoint_hparams(str(ckpt))  # a new self.config
        config = self.config[self.subcommand]
        config["ckpt_path"] = str(ckpt)
        version = checkpoint_version(ckpt, logger.root_dir) if hasattr(logger, "root_dir") else None
        if self.subcommand == "fit" and version is not None:
            configured = logger_config(config.trainer)
            if isinstance(configured, Namespace) and configured.get("init_args") is not None:
                configured.init_args["version"] = version
            else:
                rank_zero_warn("--ckpt_path last: the logger is not configured by class_path; a new version folder")

    def before_fit(self) -> None:
        """A DataModule without a validation split (``validates`` False, e.g. COVID's ``valid_ratio: 0``) leaves
        nothing to stop early on or to choose a best checkpoint by: training runs ``trainer.max_epochs`` and
        the checkpoint follows the last epoch."""
        if getattr(self.datamodule, "validates", True):
            return
        trainer = self.trainer
        trainer.callbacks = [c for c in trainer.callbacks if not isinstance(c, EarlyStopping)]
        for checkpoint in trainer.checkpoint_callbacks:
            checkpoint.monitor = None  # ModelCheckpoint's way of saying "the latest epoch"
        trainer.limit_val_batches = 0
        rank_zero_info(
            f"no validation split: training runs all {trainer.max_epochs} epochs (no early stopping), and the "
            "checkpoint is the last epoch's"
        )

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Lightning's, plus :class:`DiscardFailedRun` for the log folder this run is about to create."""
        trainer = super().instantiate_trainer(**kwargs)
        trainer.callbacks.append(DiscardFailedRun(trainer.logger))
        return trainer


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
    reuse_freed_memory()  # large CPU tensors: reuse freed memory instead of page-faulting it in again
    argv = sys.argv[1:] if args is None else args
    if argv and argv[0] in TOOLS:
        importlib.import_module(TOOLS[argv[0]][0]).main(argv[1:])
        return
    with one_line_errors("kt"):
        run_cli(args)
