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


# Larger images are refused before they are decoded (a "decompression bomb" is a small file that decodes to
# gigabytes): 40 megapixels is a 7,300 x 5,500 photo, far more than a 28 x 28 input needs.
MAX_IMAGE_PIXELS = 40_000_000
# Modes with an alpha channel (or a palette that may have a transparent entry): composited on white.
ALPHA_MODES = ("RGBA", "LA", "PA", "P", "RGBa", "La")


def load_grey(path: Path) -> np.ndarray:
    """The image as a float array of grey levels in 0..255 (transparent parts become white).

    Every mode Pillow reads is scaled to 0..255 by its own range: 16-bit greys (``I;16*``, and ``I``, as
    which Pillow may open a 16-bit PNG) are divided by 257 (65535 -> 255), float images (``F``) with values in
    0..1 are multiplied by 255 (otherwise taken as 0..255), 1-bit images are 0 or 255, colour (``RGB``,
    ``CMYK``, ...) becomes grey by ITU-R 601 luma, and alpha is composited on white.
    """
    import warnings

    from PIL import Image, UnidentifiedImageError  # Pillow is only needed for user images

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                pixels = image.width * image.height
                if pixels > MAX_IMAGE_PIXELS:
                    raise _too_large(path, image.width, image.height)
                image.load()
                return _grey_levels(image)
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise InputError(f"{path}: refused, it decodes to too many pixels ({err}); "
                         f"kt reads images of at most {MAX_IMAGE_PIXELS:,} pixels") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise InputError(f"{path}: cannot read it as an image ({err}); expected a PNG, JPEG or similar file") from None


def _too_large(path: Path, width: int, height: int) -> InputError:
    return InputError(
        f"{path}: {width} x {height} = {width * height:,} pixels is more than kt reads "
        f"({MAX_IMAGE_PIXELS:,}); scale it down first"
    )


def _grey_levels(image) -> np.ndarray:
    from PIL import Image

    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(image, dtype=np.float64)
        return np.clip(values / 257.0, 0, 255)
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        values = np.nan_to_num(values, nan=0.0, posinf=255.0, neginf=0.0)
        if values.size and values.min() >= 0 and values.max() <= 1:
            values = values * 255.0
        return np.clip(values, 0, 255)
    if mode in ALPHA_MODES:
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    elif mode not in ("L", "RGB", "1"):
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV, ...: Pillow's own conversion to RGB first
    return np.asarray(image.convert("L"), dtype=np.float64)


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
