"""Find a data file, or download and verify it (in the spirit of torchvision's datasets)."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from lightning.pytorch.utilities import rank_zero_info

from kt.core.errors import InputError


def file_digest(path: str | Path, algorithm: str = "sha256", chunk_size: int = 1 << 20) -> str:
    """Hex digest of the file's bytes (``algorithm``: any :mod:`hashlib` name, e.g. ``md5`` as torchvision's
    checksums), read in chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def sha256sum(path: str | Path) -> str:
    return file_digest(path, "sha256")


def verify(path: Path, sha256: str | None) -> None:
    if sha256 and (actual := sha256sum(path)) != sha256:
        raise InputError(
            f"{path}: sha256 is {actual}, expected {sha256}. The file is corrupt or not the published one: "
            "delete it to download it again, or put the right file there."
        )


def ensure_file(path: str | Path, url: str | None = None, sha256: str | None = None) -> Path:
    """Return ``path`` if it exists (verified when a checksum is known), else download it from ``url``.

    Offline or without a URL, the error says where to put the file and where to get it.
    """
    path = Path(path)
    if path.is_file():
        verify(path, sha256)
        return path
    if not url:
        raise InputError(f"{path} not found. Put the file there, or set data_dir to the folder that has it.")
    rank_zero_info(f"Downloading {url} to {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        try:
            urllib.request.urlretrieve(url, tmp)
        except (urllib.error.URLError, OSError) as err:
            raise InputError(
                f"{path} not found and the download from {url} failed ({err}). "
                f"Download it by hand from {url} and put it at {path}."
            ) from err
        verify(Path(tmp), sha256)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path
