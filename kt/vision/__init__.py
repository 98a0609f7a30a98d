"""Image classification: MNIST / Fashion-MNIST (IDX files or your own images) and a CNN."""

from kt.vision.mnist import MNISTDataModule
from kt.vision.models import CNN

__all__ = ["CNN", "MNISTDataModule"]
