"""Shared by every picture: figures drawn on :class:`matplotlib.figure.Figure` with the Agg canvas directly,
never through ``pyplot``, so no display is needed and no global matplotlib state changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

Series = tuple[np.ndarray, np.ndarray]  # (x, y)


def save_figure(fig: Figure, out: str | Path, dpi: int) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(out, dpi=dpi)
    return out
