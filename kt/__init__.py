"""kt: knowledge tracing, tabular regression and image classification with PyTorch Lightning."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy: `import kt.core.errors` (or one task package) need not import the models.
    if name == "load_checkpoint":
        from kt.core.checkpoints import load_checkpoint

        return load_checkpoint
    raise AttributeError(f"module 'kt' has no attribute {name!r}")


__all__ = ["load_checkpoint"]
