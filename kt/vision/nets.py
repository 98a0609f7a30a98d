"""Convolutional network for small grey images (MNIST-sized), configurable in width and depth."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class CNNNet(nn.Module):
    """Conv blocks, then fully connected layers, then one logit per class.

    Each block is ``convs_per_block`` x (Conv ``kernel_size``, same padding [-> BatchNorm] -> ReLU), then
    2 x 2 max-pooling [-> Dropout2d ``conv_dropout``]. With ``pool_early`` the pooling comes right after the
    block's last conv, before its BatchNorm and ReLU: a quarter of the elementwise work on the block's largest
    tensors (on a CPU these, not the convolutions, dominate at 28 x 28); max-pooling commutes with ReLU.

    The head flattens the last feature map (or averages it over space with ``global_pool``), then each of
    ``fc_sizes`` is Linear [-> BatchNorm] -> ReLU [-> Dropout ``dropout``], then a Linear to ``num_classes``.

    The defaults are the course seeds' SimpleCNN: conv 16 -> conv 32 (each ReLU + max-pool), fc 128, fc 10.
    """

    def __init__(
        self,
        channels: Sequence[int] = (16, 32),
        convs_per_block: int = 1,
        kernel_size: int = 3,
        fc_sizes: Sequence[int] = (128,),
        batch_norm: bool = False,
        dropout: float = 0.0,
        conv_dropout: float = 0.0,
        global_pool: bool = False,
        pool_early: bool = False,
        in_channels: int = 1,
        image_size: int = 28,
        num_classes: int = 10,
    ) -> None:
        super().__init__()
        if not channels:
            raise ValueError("channels must name at least one conv block")
        if image_size >> len(channels) < 1:
            raise ValueError(f"{len(channels)} pooling blocks do not fit a {image_size}-pixel image")
        layers: list[nn.Module] = []
        size, width = image_size, in_channels
        for out in channels:
            for i in range(convs_per_block):
                # No conv bias before BatchNorm: its shift makes the bias redundant.
                layers.append(nn.Conv2d(width, out, kernel_size, padding=kernel_size // 2, bias=not batch_norm))
                last = i == convs_per_block - 1
                if last and pool_early:
                    layers.append(nn.MaxPool2d(2))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(out))
                layers.append(nn.ReLU(inplace=True))
                width = out
            if not pool_early:
                layers.append(nn.MaxPool2d(2))
            size //= 2
            if conv_dropout > 0:
                layers.append(nn.Dropout2d(conv_dropout))
        self.features = nn.Sequential(*layers)
        head: list[nn.Module] = [nn.AdaptiveAvgPool2d(1)] if global_pool else []
        head.append(nn.Flatten())
        features = width if global_pool else width * size * size
        for hidden in fc_sizes:
            head.append(nn.Linear(features, hidden, bias=not batch_norm))
            if batch_norm:
                head.append(nn.BatchNorm1d(hidden))
            head.append(nn.ReLU(inplace=True))
            if dropout > 0:
                head.append(nn.Dropout(dropout))
            features = hidden
        head.append(nn.Linear(features, num_classes))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, in_channels, H, W)`` normalised images -> ``(n, num_classes)`` logits."""
        return self.classifier(self.features(x))
