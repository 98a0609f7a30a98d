"""CNN image classifier LightningModule: cross-entropy; multiclass accuracy for train/val/test."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy

from kt.core.module import BaseModule, Optimizer, Scheduler
from kt.core.validation import Fraction, NonNegativeFloat, PositiveFloat, PositiveInt
from kt.vision.nets import CNNNet


class CNN(BaseModule):
    """Classifies 28 x 28 grey images (:class:`kt.vision.MNISTDataModule`) with a :class:`CNNNet`.

    The defaults are the course seeds' SimpleCNN (conv 16 -> conv 32, fc 128, fc 10; Adam lr 1e-3);
    ``configs/cnn_fashion_mnist.yaml`` is the recommended, stronger variant.

    Args:
        channels: output channels of each conv block (each block ends in 2 x 2 max-pooling).
        convs_per_block: convolutions per block.
        kernel_size: convolution kernel size.
        fc_sizes: hidden fully connected layers before the output layer.
        batch_norm: BatchNorm after every conv and hidden Linear.
        dropout: dropout after each hidden fully connected layer.
        conv_dropout: channel dropout after each conv block.
        global_pool: average the last feature map over space instead of flattening it (far fewer weights).
        pool_early: max-pool right after each block's last conv, before BatchNorm and ReLU (faster on CPU).
        channels_last: keep activations in channels-last memory format (faster convolutions on CPU and GPU).
        tta_hflip: at validation, test and predict time, average the logits of each image and its mirror image
            (test-time augmentation; for Fashion-MNIST, not digits). Training is unchanged.
        num_classes: number of classes.
        label_smoothing: cross-entropy label smoothing (training loss only).
        optimizer: ``adam``, ``adamw`` or ``sgd`` (with ``momentum``).
        lr: learning rate.
        weight_decay: L2 penalty (decoupled for ``adamw``).
        momentum: SGD momentum.
        scheduler: ``none``, ``cosine`` (over ``trainer.max_epochs``) or ``plateau`` (on ``val/acc``).
        data_state: dataset name, class names and normalisation, filled in from the data at fit time and saved
            in the checkpoint; leave it empty.
    """

    monitor = "val/acc"
    monitor_mode = "max"

    def __init__(
        self,
        channels: list[PositiveInt] = [16, 32],  # noqa: B006 - jsonargparse shows the default; never mutated
        convs_per_block: PositiveInt = 1,
        kernel_size: PositiveInt = 3,
        fc_sizes: list[PositiveInt] = [128],  # noqa: B006
        batch_norm: bool = False,
        dropout: Fraction = 0.0,
        conv_dropout: Fraction = 0.0,
        global_pool: bool = False,
        pool_early: bool = False,
        channels_last: bool = False,
        tta_hflip: bool = False,
        num_classes: PositiveInt = 10,
        label_smoothing: Fraction = 0.0,
        optimizer: Optimizer = "adam",
        lr: PositiveFloat = 1e-3,
        weight_decay: NonNegativeFloat = 0.0,
        momentum: NonNegativeFloat = 0.9,
        scheduler: Scheduler = "none",
        data_state: dict | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        # The input is always 1 x 28 x 28 (the DataModule makes it so, user images included), so the network
        # is built here rather than from the data.
        self.net = CNNNet(
            channels, convs_per_block, kernel_size, fc_sizes, batch_norm, dropout, conv_dropout, global_pool,
            pool_early, num_classes=num_classes,
        )  # fmt: skip
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")

    def configure_model(self) -> None:
        # A model without a data state takes the training data's, so every checkpoint carries it.
        if self.hparams.data_state is None and self.trainer.datamodule is not None:
            self.hparams.data_state = self.trainer.datamodule.data_state

    @property
    def classes(self) -> list[str]:
        state = self.hparams.data_state or {}
        return state.get("classes") or [str(i) for i in range(self.hparams.num_classes)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hparams.get("channels_last"):
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def evaluate(self, x: torch.Tensor) -> torch.Tensor:
        """Logits for validation, test and predict: with ``tta_hflip``, the mean over the image and its mirror."""
        logits = self(x)
        if self.hparams.get("tta_hflip"):
            logits = (logits + self(x.flip(-1))) / 2
        return logits

    def export_module(self) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
        """For :mod:`kt.export`: normalised images (batch, 1, 28, 28) float32 -> logits (batch, 10)."""
        # Batch 2: sizes 0 and 1 would be taken as fixed by torch.export.
        return self.net, (torch.zeros(2, 1, 28, 28),)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor | None:
        if self.hparams.batch_norm and len(batch["x"]) < 2:
            return None  # BatchNorm cannot train on a lone last image (55,001 images, batch 64): skip the step
        logits = self(batch["x"])
        loss = F.cross_entropy(logits, batch["y"], label_smoothing=self.hparams.label_smoothing)
        self.train_acc.update(logits.detach(), batch["y"])
        self.log("train/loss", loss, on_step=True, on_epoch=True, batch_size=len(logits))
        return loss

    def on_train_epoch_end(self) -> None:
        self._log_accuracy("train", self.train_acc)

    def _evaluate(self, batch: dict, stage: str, accuracy: MulticlassAccuracy) -> None:
        logits = self.evaluate(batch["x"])
        self.log(f"{stage}/loss", F.cross_entropy(logits, batch["y"]), batch_size=len(logits))
        accuracy.update(logits, batch["y"])

    def _log_accuracy(self, stage: str, accuracy: MulticlassAccuracy) -> None:
        self.log(f"{stage}/acc", accuracy.compute(), prog_bar=stage == "val")
        accuracy.reset()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_acc)

    def on_validation_epoch_end(self) -> None:
        self._log_accuracy("val", self.val_acc)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_acc)

    def on_test_epoch_end(self) -> None:
        self._log_accuracy("test", self.test_acc)

    @staticmethod
    def prediction_blanks(frame) -> dict:
        """The cells ``predict_step`` leaves empty on purpose: the true ``label`` of the user's own images."""
        return {"label": True}

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        """One row per image: ``image`` (test-set index or file path), ``label`` (true class; empty for your
        own files), ``pred``, ``pred_name`` and the class probabilities ``p_0`` .. ``p_9``."""
        probs = torch.softmax(self.evaluate(batch["x"]).float(), dim=-1)
        pred = probs.argmax(-1)
        classes = self.classes
        n = len(pred)
        labels = batch["y"].tolist() if "y" in batch else [None] * n
        out = {"image": batch.get("id", list(range(n))), "label": labels, "pred": pred,
               "pred_name": [classes[i] for i in pred.tolist()]}  # fmt: skip
        out.update({f"p_{k}": probs[:, k] for k in range(probs.shape[1])})
        return out
