"""Tabular regression: the COVID-19 survey data (ML2022Spring HW1) and an MLP regressor."""

from kt.tabular.covid import CovidDataModule
from kt.tabular.models import MLPRegressor

__all__ = ["CovidDataModule", "MLPRegressor"]
