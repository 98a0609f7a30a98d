"""LightningDataModules, one per dataset."""

from kt.data.assist2009 import Assist2009DataModule
from kt.data.covid import CovidDataModule
from kt.data.mnist import MNISTDataModule
from kt.data.synthetic import SyntheticKTDataModule

__all__ = ["Assist2009DataModule", "CovidDataModule", "MNISTDataModule", "SyntheticKTDataModule"]
