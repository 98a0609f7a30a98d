"""LightningModules: each trains one network from kt.components."""

from kt.models.cnn import CNN
from kt.models.dkt import DKT
from kt.models.mlp import MLPRegressor

__all__ = ["CNN", "DKT", "MLPRegressor"]
