"""Plain ``nn.Module`` networks, free of training logic; the LightningModules in kt.models train them."""

from kt.components.dkt_net import DKTNet

__all__ = ["DKTNet"]
