"""IDX files (the MNIST / Fashion-MNIST format), gzipped or not.

Layout: a 4-byte magic number ``0x00 0x00 <type> <ndim>`` (type 0x08 = unsigned byte), ``ndim``
big-endian uint32 dimensions, then the data. Images are ``0x00000803`` (count, rows, cols), labels
``0x00000801`` (count). Every check names the file, so a truncated download or a swapped file is one
clear :class:`InputError` rather than a reshape error deep in numpy.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from kt.core.errors import InputError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
GZIP_MAGIC = b"\x1f\x8b"


def read_bytes(path: str | Path) -> bytes:
    """The file's content, decompressed when it is gzip (decided by its first bytes, not its name)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} not found")
    raw = path.read_bytes()
    if raw[:2] != GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise InputError(f"{path}: not a complete gzip file ({err}); the download was probably cut short") from err


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """An IDX file of unsigned bytes with the expected ``magic`` as a uint8 array of its dimensions."""
    path = Path(path)
    data = read_bytes(path)
    kind = "images" if magic == IMAGES_MAGIC else "labels"
    if len(data) < 4:
        raise InputError(f"{path}: {len(data)} bytes, too short for an IDX header; expected an IDX {kind} file")
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        raise InputError(
            f"{path}: magic number 0x{found:08x}, expected 0x{magic:08x} (IDX {kind}, unsigned bytes); "
            "not an IDX file of that kind"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise InputError(f"{path}: the header is cut short ({len(data)} bytes, expected {header})")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(dims, dtype=np.int64))
    got = len(data) - header
    if got != expected:
        shape = " x ".join(map(str, dims))
        what = "truncated" if got < expected else "has trailing bytes"
        raise InputError(f"{path}: {what}: {got:,} data bytes, expected {expected:,} for {shape}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_images(path: str | Path, size: tuple[int, int] | None = (28, 28)) -> np.ndarray:
    """``(n, rows, cols)`` uint8 images; ``size`` (rows, cols) is checked when given."""
    images = read_idx(path, IMAGES_MAGIC)
    if size is not None and images.shape[1:] != tuple(size):
        raise InputError(
            f"{path}: images are {images.shape[1]} x {images.shape[2]} pixels, expected {size[0]} x {size[1]}"
        )
    return images


def read_labels(path: str | Path, num_classes: int | None = 10) -> np.ndarray:
    """``(n,)`` uint8 labels; each must be below ``num_classes`` when given."""
    labels = read_idx(path, LABELS_MAGIC)
    bad = np.flatnonzero(labels >= num_classes) if num_classes is not None else []
    if len(bad):
        raise InputError(f"{path}: label {labels[bad[0]]} at index {bad[0]}, expected 0..{num_classes - 1}")
    return labels


def read_pair(images_path: str | Path, labels_path: str | Path, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels that belong together: the counts must agree."""
    images = read_images(images_path)
    labels = read_labels(labels_path, num_classes)
    if len(images) != len(labels):
        raise InputError(
            f"{images_path} has {len(images):,} images but {labels_path} has {len(labels):,} labels; "
            "they must be the same set (one file is truncated or from another split)"
        )
    return images, labels


def write_idx(path: str | Path, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write a uint8 array as IDX (gzip when ``compress`` or the name ends in .gz); used by tests and tools."""
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    data = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path
