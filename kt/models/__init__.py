"""LightningModules: each trains one network from kt.components."""

from kt.models.dkt import DKT

__all__ = ["DKT"]
