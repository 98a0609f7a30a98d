"""Batched image preprocessing on the training device: uint8 -> float, augmentation, normalisation.

torchvision's per-image transforms (PIL rotation, flips, ``ToTensor``, ``Normalize``) run in the loader
workers, one image at a time. Here a whole batch is transformed with a few tensor operations where the
model runs (GPU or CPU), so the in-memory uint8 data set needs no workers at all.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def to_float(images: torch.Tensor) -> torch.Tensor:
    """``(n, H, W)`` or ``(n, 1, H, W)`` uint8 in 0..255 -> ``(n, 1, H, W)`` float32 in [0, 1] (as ``ToTensor``)."""
    if images.dim() == 3:
        images = images.unsqueeze(1)
    return images.float().div_(255.0)


def normalize(images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """``(x - mean) / std`` as ``transforms.Normalize((mean,), (std,))``."""
    return (images - mean) / std


def augment(
    images: torch.Tensor,
    rotation: float = 0.0,
    translate: int = 0,
    hflip: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random rotation (uniform in ±``rotation`` degrees), translation (whole pixels in ±``translate``, as a
    random crop with that much zero padding) and horizontal flip (probability 0.5), each image its own draw.

    ``images``: ``(n, 1, H, W)`` floats in [0, 1] with a black (0) background, so what moves in from outside
    the frame is background. Rotation and translation are one ``affine_grid`` + ``grid_sample``; a pure
    integer translation lands on pixel centres, so it is exact (no blur).
    """
    n, _, height, width = images.shape
    device = images.device
    if rotation > 0 or translate > 0:
        angle = torch.zeros(n, device=device)
        if rotation > 0:
            angle = (torch.rand(n, generator=generator, device=device) * 2 - 1) * math.radians(rotation)
        shift = torch.zeros(n, 2, device=device)
        if translate > 0:
            shift = torch.randint(-translate, translate + 1, (n, 2), generator=generator, device=device).float()
        cos, sin = torch.cos(angle), torch.sin(angle)
        # theta maps output coordinates (in [-1, 1]) to input coordinates; one pixel is 2 / size.
        theta = torch.stack(
            [
                torch.stack([cos, -sin, -shift[:, 0] * 2 / width], dim=1),
                torch.stack([sin, cos, -shift[:, 1] * 2 / height], dim=1),
            ],
            dim=1,
        )
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if hflip:
        flip = torch.rand(n, generator=generator, device=device) < 0.5
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    return images
