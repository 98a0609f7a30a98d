"""Save a PNG grid of one training batch as the model sees it: after augmentation (undoing only the
normalisation for display), titled with the class names, as the course seeds do with matplotlib.

    python scripts/save_batch_grid.py --config configs/cnn_fashion_mnist.yaml --out batch.png
    python scripts/save_batch_grid.py --dataset mnist --data-dir ../shared/data/mnist --split test --out mnist.png

With ``--config`` the DataModule is built from the experiment config's ``data`` section (augmentation
included); without, from the options here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display needed
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

from kt.data.mnist import MNISTDataModule  # noqa: E402


def build(args: argparse.Namespace) -> MNISTDataModule:
    if args.config:
        options = dict(yaml.safe_load(Path(args.config).read_text())["data"]["init_args"])
        if args.data_dir:
            options["data_dir"] = args.data_dir
        return MNISTDataModule(**options)
    return MNISTDataModule(dataset=args.dataset, data_dir=args.data_dir, rotation=args.rotation,
                           translate=args.translate, hflip=args.hflip)  # fmt: skip


def save_grid(dm: MNISTDataModule, split: str, out: Path, rows: int = 4, cols: int = 8, seed: int = 0) -> Path:
    """Draw ``rows * cols`` images of ``split`` (training augmentation applied when ``split`` is train)."""
    torch.manual_seed(seed)
    dm.setup("fit" if split in ("train", "val") else "test")
    data = dm.splits[split]
    pick = torch.randperm(len(data["x"]))[: rows * cols]
    state = dm.data_state
    x = dm.preprocess(data["x"][pick], train=split == "train") * state["std"] + state["mean"]
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.3, rows * 1.5))
    for ax, image, label in zip(axes.flat, x, data["y"][pick]):
        ax.imshow(image[0].clamp(0, 1).numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(state["classes"][int(label)], fontsize=8)
        ax.axis("off")
    fig.suptitle(f"{state['dataset']} {split} batch" + (" after augmentation" if split == "train" else ""))
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="experiment config whose data section to use")
    parser.add_argument("--dataset", default="fashion_mnist", choices=["mnist", "fashion_mnist"])
    parser.add_argument("--data-dir")
    parser.add_argument("--split", default="train", choices=["train", "val", "test"])
    parser.add_argument("--rotation", type=float, default=0.0)
    parser.add_argument("--translate", type=int, default=0)
    parser.add_argument("--hflip", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("batch.png"))
    args = parser.parse_args()
    print(save_grid(build(args), args.split, args.out))


if __name__ == "__main__":
    main()
