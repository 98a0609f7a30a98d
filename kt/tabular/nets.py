"""Multi-layer perceptron for tabular regression."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


class MLP(nn.Module):
    """``input_size`` -> hidden layers (Linear [-> BatchNorm] -> activation [-> Dropout]) -> ``output_size``.

    The default is the ML2022Spring HW1 network: inputs -> 16 -> 8 -> 1 with ReLU. With ``output_size`` 1
    the output is squeezed to shape (batch,). With ``skip``, a linear map of the inputs is added to the
    output (a "wide and deep" shortcut: the network contains the linear model and learns what it misses).
    """

    def __init__(
        self,
        input_size: int,
        hidden_sizes: Sequence[int] = (16, 8),
        output_size: int = 1,
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = False,
        skip: bool = False,
    ) -> None:
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got '{activation}'")
        layers: list[nn.Module] = []
        size = input_size
        for hidden in hidden_sizes:
            layers.append(nn.Linear(size, hidden))
            if batch_norm:
                layers.append(nn.BatchNorm1d(hidden))
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            size = hidden
        layers.append(nn.Linear(size, output_size))
        self.layers = nn.Sequential(*layers)
        self.shortcut = nn.Linear(input_size, output_size) if skip else None
        self.output_size = output_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return out.squeeze(-1) if self.output_size == 1 else out


class Members(nn.Module):
    """``members`` independently initialised networks whose predictions are averaged (a seed ensemble in one
    model). :meth:`each` gives every member's prediction, stacked on a new first dimension, for training
    each member on its own loss."""

    def __init__(self, make: Callable[[], nn.Module], members: int) -> None:
        super().__init__()
        self.members = nn.ModuleList(make() for _ in range(members))

    def each(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x) for member in self.members])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.each(x).mean(0)
