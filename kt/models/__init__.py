"""LightningModules: each trains one network from kt.components."""

from kt.models.dkt import DKT
from kt.models.mlp import MLPRegressor

__all__ = ["DKT", "MLPRegressor"]
