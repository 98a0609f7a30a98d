"""MLP regressor LightningModule: MSE (or L1/Huber) loss; MSE, MAE and R² for train/val/test."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection, R2Score

from kt.core.module import BaseModule, Optimizer, Scheduler
from kt.core.validation import Fraction, NonNegativeFloat, PositiveFloat, PositiveInt
from kt.tabular.nets import MLP, Members

Activation = Literal["relu", "leaky_relu", "gelu", "silu", "tanh", "sigmoid"]
LOSSES = {"mse": F.mse_loss, "l1": F.l1_loss, "huber": F.huber_loss}


class MLPRegressor(BaseModule):
    """Regression with an MLP on the features a DataModule selects (e.g. :class:`kt.tabular.CovidDataModule`).

    The defaults are the ML2022Spring HW1 seed: inputs -> 16 -> 8 -> 1, ReLU, MSE, SGD lr 1e-5 momentum 0.9.

    Args:
        hidden_sizes: sizes of the hidden layers.
        activation: activation after each hidden layer.
        dropout: dropout after each hidden activation.
        batch_norm: BatchNorm1d after each hidden Linear.
        skip: add a linear map of the inputs to the output (the network then contains the linear model).
        members: train this many networks (each its own random initialisation, each on its own loss, on the
            same mini-batches) and predict with their mean; 1 is a single network.
        loss: training loss, ``mse``, ``l1`` (MAE) or ``huber``; validation is judged by MSE either way.
        optimizer: ``sgd`` (with ``momentum``), ``adam`` or ``adamw``.
        lr: learning rate.
        weight_decay: L2 penalty (decoupled for ``adamw``).
        momentum: SGD momentum.
        scheduler: ``none``, ``cosine`` (over ``trainer.max_epochs``) or ``plateau`` (on ``val/mse``).
        input_size: number of input features; taken from the data when left empty.
        data_state: the selected features and scaler, filled in from the data at fit time and saved in the
            checkpoint; leave it empty.
    """

    monitor = "val/mse"
    monitor_mode = "min"

    def __init__(
        self,
        hidden_sizes: list[PositiveInt] = [16, 8],  # noqa: B006 - jsonargparse shows the default; never mutated
        activation: Activation = "relu",
        dropout: Fraction = 0.0,
        batch_norm: bool = False,
        skip: bool = False,
        members: PositiveInt = 1,
        loss: Literal["mse", "l1", "huber"] = "mse",
        optimizer: Optimizer = "sgd",
        lr: PositiveFloat = 1e-5,
        weight_decay: NonNegativeFloat = 0.0,
        momentum: NonNegativeFloat = 0.9,
        scheduler: Scheduler = "none",
        input_size: PositiveInt | None = None,
        data_state: dict | None = None,
    ) -> None:
        super().__init__()
        if data_state is not None:
            input_size = len(data_state["columns"])
        self.save_hyperparameters()
        self.net: MLP | Members | None = None
        if input_size is not None:
            self._build(input_size)
        self.loss_fn = LOSSES[loss]
        self.train_mse = MeanSquaredError()
        metrics = MetricCollection({"mse": MeanSquaredError(), "mae": MeanAbsoluteError(), "r2": R2Score()})
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")

    def _build(self, input_size: int) -> None:
        hp = self.hparams
        self.hparams.input_size = input_size

        def make() -> MLP:
            return MLP(input_size, list(hp.hidden_sizes), 1, hp.activation, hp.dropout, hp.batch_norm, hp.skip)

        self.net = make() if hp.members == 1 else Members(make, hp.members)

    def configure_model(self) -> None:
        # A model configured without a data state takes the training data's (and saves it in checkpoints);
        # configure_model rather than setup for the same reason as DKT's (weight-averaging callbacks).
        if self.net is None:
            self.hparams.data_state = self.trainer.datamodule.data_state
            self._build(len(self.hparams.data_state["columns"]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def export_module(self) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
        """For :mod:`kt.export`: standardised features (batch, input_size) float32 -> predictions (batch,)."""
        return self.net, (torch.zeros(2, self.hparams.input_size),)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if isinstance(self.net, Members):
            # Each member on its own loss: the sum of the members' losses gives every member the gradient it
            # would get trained alone on these batches.
            each = self.net.each(batch["x"])
            self.train_mse.update(each.detach().mean(0), batch["y"])
            return self.loss_fn(each, batch["y"].expand_as(each)) * len(each)
        pred = self(batch["x"])
        self.train_mse.update(pred.detach(), batch["y"])
        return self.loss_fn(pred, batch["y"])

    # Metrics are logged once per epoch as computed values: each self.log call costs more than an
    # optimizer step of this network, and logging a torchmetrics object costs more than a tensor.
    def on_train_epoch_end(self) -> None:
        self.log("train/mse", self.train_mse.compute())
        self.train_mse.reset()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.val_metrics.update(self(batch["x"]), batch["y"])

    def on_validation_epoch_end(self) -> None:
        self.log_dict(self.val_metrics.compute(), prog_bar=True)
        self.val_metrics.reset()

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self.test_metrics.update(self(batch["x"]), batch["y"])

    def on_test_epoch_end(self) -> None:
        self.log_dict(self.test_metrics.compute())
        self.test_metrics.reset()

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        """The submission columns: ``id`` as in the input, and the prediction under the target's name."""
        state = self.hparams.data_state or {}
        target = state.get("header", ["tested_positive"])[-1]
        return {"id": batch["id"], target: self(batch["x"]).float()}
