"""The ``kt`` command: LightningCLI with ``fit``, ``validate``, ``test`` and ``predict``.

Model and data are chosen in the config (``model.class_path``, ``data.class_path``), so a new model or
dataset needs no change here. Every subcommand first reads ``configs/trainer.yaml`` (the shared trainer
defaults), then the files given with ``--config``, then the command line.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

from lightning.pytorch.callbacks import EarlyStopping
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

import kt.data  # noqa: F401  (registers the DataModules: `--data Assist2009DataModule`, `--data.help ...`)
import kt.models  # noqa: F401  (registers the models: `--model DKT`, `--model.help DKT`)
from kt.callbacks import PredictionWriter
from kt.errors import KTInputError
from kt.resume import KTCheckpoint, RNGStates, continue_version, find_last_checkpoint

# The shared trainer defaults live in the repository's configs/ (see README); KT_TRAINER_CONFIG points
# elsewhere, e.g. for an installed (non-editable) package.
DEFAULT_TRAINER_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "trainer.yaml"
AUTO = "auto"


def trainer_config_files() -> list[str]:
    path = Path(os.environ.get("KT_TRAINER_CONFIG", DEFAULT_TRAINER_CONFIG))
    return [str(path)] if path.is_file() else []


def _import(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    return getattr(importlib.import_module(module), name)


class KTCLI(LightningCLI):
    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # Always-on callbacks, configured under their own keys (checkpoint.*, early_stopping.*, ...).
        parser.add_lightning_class_args(KTCheckpoint, "checkpoint")
        parser.add_lightning_class_args(EarlyStopping, "early_stopping")
        parser.add_lightning_class_args(PredictionWriter, "prediction_writer")
        # Random generator states in every checkpoint, for resumed runs that equal uninterrupted ones.
        parser.add_lightning_class_args(RNGStates, "rng_states")
        # "auto": monitor what the model declares (e.g. DKT: val/auc, max), in that metric's direction.
        parser.set_defaults({"checkpoint.monitor": AUTO, "early_stopping.monitor": AUTO})

    def instantiate_classes(self) -> None:
        config = self.config[self.subcommand] if self.subcommand else self.config
        model_class = _import(config.model.class_path)
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
            raise KTInputError("--ckpt_path last: no last*.ckpt in this experiment's checkpoint folders")
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


def run_cli(args: list[str] | None = None, run: bool = True) -> KTCLI:
    """Build (and by default run) the CLI; ``args`` replaces ``sys.argv[1:]`` (tests, notebooks)."""
    parser_kwargs = {name: {"default_config_files": trainer_config_files()} for name in KTCLI.subcommands()}
    return KTCLI(
        subclass_mode_model=True,
        subclass_mode_data=True,
        parser_kwargs=parser_kwargs,
        args=args,
        run=run,
        auto_configure_optimizers=False,
        # Runs with a logger save config.yaml in their fresh version folder; without one, Lightning would write
        # it into the working directory and refuse every later run there.
        save_config_kwargs={"overwrite": True},
    )


def main(args: list[str] | None = None) -> None:
    try:
        run_cli(args)
    except KTInputError as err:
        # Bad input is the user's to fix: one line saying what and where. KT_TRACEBACK=1 shows the stack.
        if os.environ.get("KT_TRACEBACK"):
            raise
        print(f"kt: error: {err}", file=sys.stderr)
        sys.exit(2)
