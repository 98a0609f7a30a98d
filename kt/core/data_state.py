"""The "data state": what a model needs from its training data at inference time.

DKT: the skill vocabulary; MLP: selected features and scaler statistics; CNN: normalisation and class
names. A DataModule computes it from the training split at ``fit`` time; the model copies it into its
hyperparameters (``data_state``), so it is saved in every checkpoint as plain types and
``Model.load_from_checkpoint(path)`` needs nothing else. A model loaded from a checkpoint already has one,
and the DataModule must then encode data with the model's state rather than refit its own.
"""

from __future__ import annotations

from lightning.pytorch import LightningDataModule


def model_data_state(datamodule: LightningDataModule) -> dict | None:
    """The ``data_state`` of the model this DataModule is attached to, if it has one."""
    trainer = datamodule.trainer
    module = trainer.lightning_module if trainer is not None else None
    return module.hparams.get("data_state") if module is not None else None
