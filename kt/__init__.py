"""kt: knowledge tracing, tabular regression and image classification with PyTorch Lightning."""

__version__ = "0.1.0"
