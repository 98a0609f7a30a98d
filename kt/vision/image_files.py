"""A user's own image files (PNG, JPEG, ... of any size) turned into MNIST-style 28 x 28 uint8 images.

MNIST digits are white on black, scaled to fit a 20 x 20 box and centred in 28 x 28 by their centre of
mass; Fashion-MNIST items are white(ish) on black and fill the 28 x 28 frame. A photo or a drawing is
usually the opposite (dark on a light background), so:

1. convert to grey (alpha composited on white);
2. invert when the background is light: the border pixels' median brightness decides, as the border of
   a picture of one object is background;
3. crop to the object (pixels clearly above the background), scale it keeping its aspect ratio to fit
   ``box`` pixels (20 for MNIST, 28 for Fashion-MNIST), and paste it into 28 x 28: centred on its centre of
   mass for MNIST (as the MNIST authors did), on its bounding box for Fashion-MNIST.

The result goes through the same normalisation as training (the DataModule does it per batch).
"""

from __future__ import annotations

import glob
from pathlib import Path

import numpy as np

from kt.core.errors import InputError


def expand_paths(patterns: list[str]) -> list[Path]:
    """Files named by ``patterns`` (paths or glob patterns), in order, each once; a folder means its images."""
    out: list[Path] = []
    for pattern in patterns:
        if any(ch in pattern for ch in "*?["):
            matches = sorted(glob.glob(pattern, recursive=True))
            if not matches:
                raise InputError(f"predict_files: no file matches '{pattern}'")
            out += [Path(m) for m in matches if Path(m).is_file()]
        elif Path(pattern).is_dir():
            exts = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
            found = sorted(p for p in Path(pattern).iterdir() if p.suffix.lower() in exts)
            if not found:
                raise InputError(f"predict_files: {pattern} is a folder without image files ({', '.join(exts)})")
            out += found
        elif Path(pattern).is_file():
            out.append(Path(pattern))
        else:
            raise InputError(f"predict_files: {pattern} not found")
    return list(dict.fromkeys(out))


def load_grey(path: Path) -> np.ndarray:
    """The image as a float array of grey levels in 0..255 (transparent parts become white)."""
    from PIL import Image, UnidentifiedImageError  # Pillow is only needed for user images

    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in ("RGBA", "LA", "P"):
                image = image.convert("RGBA")
                background = Image.new("RGBA", image.size, (255, 255, 255, 255))
                image = Image.alpha_composite(background, image)
            grey = image.convert("L")
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise InputError(f"{path}: cannot read it as an image ({err}); expected a PNG, JPEG or similar file") from err
    return np.asarray(grey, dtype=np.float64)


def to_mnist_style(grey: np.ndarray, box: int = 20, center_of_mass: bool = True, size: int = 28) -> np.ndarray:
    """A grey image (any size, either polarity) -> ``(size, size)`` uint8, white object on black."""
    from PIL import Image

    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if np.median(border) > 127:
        grey, border = 255.0 - grey, 255.0 - border
    grey = np.clip(grey - np.median(border), 0, None)  # the background becomes 0, as in MNIST
    peak = grey.max()
    if peak <= 0:
        return np.zeros((size, size), dtype=np.uint8)  # a blank image: nothing to centre
    grey = grey * (255.0 / peak)
    rows = np.flatnonzero((grey > 0.2 * 255).any(1))
    cols = np.flatnonzero((grey > 0.2 * 255).any(0))
    crop = grey[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    scale = box / max(crop.shape)
    height, width = max(1, round(crop.shape[0] * scale)), max(1, round(crop.shape[1] * scale))
    small = np.asarray(Image.fromarray(crop.astype(np.float32), mode="F").resize((width, height), Image.LANCZOS))
    small = np.clip(small, 0, 255)
    if center_of_mass and small.sum() > 0:
        ys, xs = np.indices(small.shape)
        cy, cx = (ys * small).sum() / small.sum(), (xs * small).sum() / small.sum()
        # MNIST puts the centre of mass at pixel (14, 14) (measured on its test set: 13.99, 14.00).
        top, left = round(size / 2 - cy), round(size / 2 - cx)
    else:
        top, left = (size - height) // 2, (size - width) // 2
    top = min(max(top, 0), size - height)
    left = min(max(left, 0), size - width)
    out = np.zeros((size, size), dtype=np.float64)
    out[top : top + height, left : left + width] = small
    return np.round(out).astype(np.uint8)


def load_image_files(paths: list[Path], box: int = 20, center_of_mass: bool = True) -> np.ndarray:
    """``(n, 28, 28)`` uint8 MNIST-style images of the files (see the module docstring)."""
    return np.stack([to_mnist_style(load_grey(p), box, center_of_mass) for p in paths])
