"""Plain ``nn.Module`` networks, free of training logic; the LightningModules in kt.models train them."""

from kt.components.dkt_net import DKTNet
from kt.components.mlp import MLP

__all__ = ["DKTNet", "MLP"]
