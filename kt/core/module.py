"""What every kt LightningModule shares: the optimizer options and the metric it is judged by."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from lightning.pytorch import LightningModule

Optimizer = Literal["adam", "adamw", "sgd"]
Scheduler = Literal["none", "cosine", "plateau"]


class BaseModule(LightningModule):
    """Base class. Subclasses take ``optimizer``, ``lr``, ``weight_decay``, ``momentum`` and ``scheduler``
    as ``__init__`` arguments (so the CLI documents them) and call ``save_hyperparameters()``.

    ``monitor``/``monitor_mode`` name the validation metric that checkpointing, early stopping and the
    plateau scheduler follow.
    """

    monitor: ClassVar[str] = "val/loss"
    monitor_mode: ClassVar[str] = "min"

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # kt.load_checkpoint finds the class by this name (in a task package's __all__): the file alone suffices.
        checkpoint["kt_model"] = type(self).__name__

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Runs before the weights are loaded: tensors that disagree with the hyperparameters are one clear error.
        from kt.core.checkpoints import check_weights_match

        try:
            path = self.trainer.ckpt_path or "checkpoint"
        except RuntimeError:  # not attached to a Trainer (load_from_checkpoint)
            path = "checkpoint"
        check_weights_match(self, checkpoint, path)

    def configure_optimizers(self):
        hp = self.hparams
        params = [p for p in self.parameters() if p.requires_grad]
        if hp.optimizer == "sgd":
            optimizer = torch.optim.SGD(params, lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
        elif hp.optimizer == "adamw":
            optimizer = torch.optim.AdamW(params, lr=hp.lr, weight_decay=hp.weight_decay)
        else:
            optimizer = torch.optim.Adam(params, lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.scheduler == "cosine":
            epochs = self.trainer.max_epochs if self.trainer.max_epochs and self.trainer.max_epochs > 0 else 100
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
        if hp.scheduler == "plateau":
            scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=self.monitor_mode, factor=0.5)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "monitor": self.monitor}}
        return optimizer
