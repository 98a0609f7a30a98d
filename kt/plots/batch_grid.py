"""A grid of images as the CNN sees them: after augmentation (only the normalisation undone for display),
titled with the class names, as the course seeds show a batch."""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure

from kt.plots.figure import save_figure
from kt.vision.mnist import MNISTDataModule


def plot_batch(
    dm: MNISTDataModule, split: str, out: str | Path, rows: int = 4, cols: int = 8, seed: int = 0, dpi: int = 100
) -> dict:
    """Draw ``rows * cols`` random images of ``split`` (training augmentation applied when ``split`` is train).

    Returns the drawn images (N, 1, 28, 28, in [0, 1] before clamping) and their labels.
    """
    generator = torch.Generator().manual_seed(seed)
    dm.setup("fit" if split in ("train", "val") else "test")
    data = dm.splits[split]
    pick = torch.randperm(len(data["x"]), generator=generator)[: rows * cols]
    state = dm.data_state
    torch.manual_seed(seed)  # augmentation draws from the global generator
    x = dm.preprocess(data["x"][pick], train=split == "train") * state["std"] + state["mean"]
    labels = data["y"][pick]
    fig = Figure(figsize=(cols * 1.3, rows * 1.5))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, label in zip(axes.flat, x, labels):
        ax.imshow(image[0].clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(state["classes"][int(label)], fontsize=8)
    fig.suptitle(f"{state['dataset']} {split} batch" + (" after augmentation" if split == "train" else ""))
    fig.tight_layout()
    save_figure(fig, out, dpi)
    return {"images": x, "labels": labels}
