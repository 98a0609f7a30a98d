"""Learning curves of a run from its TensorBoard event files: a panel per metric, train/val/test by epoch."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from kt.core.errors import InputError
from kt.plots.figure import Series, save_figure

STAGE_STYLE = {"train": ("tab:blue", "-"), "val": ("tab:orange", "-"), "test": ("tab:green", "")}




def find_event_dir(run_dir: str | Path) -> Path:
    """``run_dir`` itself when it holds event files, else its only ``version_N`` sub-folder that does."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: no such folder; expected a run folder like lightning_logs/<name>/version_N")
    if any(run_dir.glob("events.out.tfevents.*")):
        return run_dir
    versions = sorted(p.parent for p in run_dir.glob("*/events.out.tfevents.*"))
    if len(set(versions)) == 1:
        return versions[0]
    found = ", ".join(sorted({p.name for p in versions})) or "none"
    raise InputError(
        f"{run_dir}: expected TensorBoard event files (events.out.tfevents.*) in it or in exactly one "
        f"version_N sub-folder; sub-folders with events: {found}"
    )


def read_scalars(run_dir: str | Path) -> dict[str, Series]:
    """Every scalar of a run, ``{tag: (steps, values)}``, in step order."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = find_event_dir(run_dir)
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})  # 0: keep every point, not a sample
    acc.Reload()
    scalars = {}
    for tag in acc.Tags()["scalars"]:
        events = sorted(acc.Scalars(tag), key=lambda e: e.step)
        scalars[tag] = (np.array([e.step for e in events]), np.array([e.value for e in events], dtype=float))
    if not scalars:
        raise InputError(f"{folder}: the event files hold no scalars (did the run log anything?)")
    return scalars


def _steps_to_epochs(scalars: dict[str, Series]) -> tuple[dict[int, int], tuple[np.ndarray, np.ndarray]]:
    """From Lightning's ``epoch`` scalar: {step: epoch} at every logged step, and the (step, epochs completed)
    points that place a step at a fractional epoch: each epoch's last step, and the step before the first."""
    if "epoch" not in scalars:
        raise InputError("the run logged no 'epoch' scalar, so steps cannot be mapped to epochs")
    steps, epochs = scalars["epoch"]
    epoch_of = {int(s): int(e) for s, e in zip(steps, epochs)}
    numbers = np.unique(epochs)
    ends = np.array([steps[epochs == e].max() for e in numbers])
    # A run resumed from a checkpoint starts past epoch 0 and step 0: assume its first epoch was as long as the
    # second.
    if numbers[0] == 0:
        before = -1
    elif len(ends) > 1:
        before = 2 * ends[0] - ends[1]
    else:
        before = steps[epochs == numbers[0]].min() - 1
    return epoch_of, (np.r_[before, ends], np.r_[numbers[0], numbers + 1])


def _epoch_at(step: int, epoch_of: dict[int, int], logged: np.ndarray) -> int:
    if step in epoch_of:
        return epoch_of[step]
    # Not logged with an epoch (LearningRateMonitor logs at an epoch's start, at the previous epoch's last
    # step + 1): it belongs to the epoch of the next step that was.
    later = logged[logged >= step]
    return epoch_of[int(later[0] if len(later) else logged[-1])]


def _panel_and_label(tag: str) -> tuple[str, str] | None:
    """``train/loss_epoch`` -> ("loss", "train"); ``lr-Adam`` -> ("learning rate", "lr-Adam"); None: skip."""
    if tag in ("epoch", "hp_metric"):
        return None
    if tag.startswith("lr-"):
        return "learning rate", tag
    stage, _, name = tag.partition("/")
    if not name:
        return tag, tag
    if name.endswith("_step"):
        return name[: -len("_step")], f"{stage} (per step)"
    return re.sub(r"_epoch$", "", name), stage


def learning_curves(scalars: dict[str, Series], steps: bool = True) -> dict[str, dict[str, Series]]:
    """Group a run's scalars into panels, x in epochs (1 = after the first epoch).

    Returns ``{panel: {label: (x, y)}}``: one panel per metric name (``loss``, ``auc``, ``mse``...) holding its
    train/val/test series, plus ``learning rate``. Epoch-level values sit at whole epochs; step-level series
    (``*_step``, kept when ``steps``) at fractional epochs, interpolated between the epochs' last steps.
    """
    epoch_of, (anchor_steps, anchor_epochs) = _steps_to_epochs(scalars)
    logged = np.array(sorted(epoch_of))
    panels: dict[str, dict[str, Series]] = {}
    for tag, (tag_steps, values) in scalars.items():
        where = _panel_and_label(tag)
        if where is None or (not steps and tag.endswith("_step")):
            continue
        panel, label = where
        if tag.endswith("_step"):
            x = np.interp(tag_steps, anchor_steps, anchor_epochs)
        else:
            x = np.array([_epoch_at(int(s), epoch_of, logged) + 1 for s in tag_steps], dtype=float)
        panels.setdefault(panel, {})[label] = (x, values)
    # Loss first, learning rate last, the metrics alphabetically in between.
    order = sorted(panels, key=lambda p: (p != "loss", p == "learning rate", p))
    stages = ["train", "val", "test"]

    def label_order(label: str) -> tuple:
        stage = label.split(" ")[0]
        return ("(" in label, stages.index(stage) if stage in stages else len(stages), label)

    return {p: {k: panels[p][k] for k in sorted(panels[p], key=label_order)} for p in order}


def plot_curves(
    run_dir: str | Path, out: str | Path, steps: bool = True, log_y: Sequence[str] = (), dpi: int = 100
) -> dict:
    """Learning curves of one run as one PNG: a panel per metric, train/val/test in each; returns the panels.

    ``log_y`` names panels drawn on a log scale (e.g. ``mse`` when it falls by orders of magnitude).
    """
    folder = find_event_dir(run_dir)
    scalars = read_scalars(folder)
    panels = learning_curves(scalars, steps=steps)
    if not panels:
        raise InputError(f"{folder}: no metrics to plot (only {', '.join(scalars)})")
    unknown = sorted(set(log_y) - set(panels))
    if unknown:
        raise InputError(f"log-scale panel(s) {', '.join(unknown)} not in this run; its panels: {', '.join(panels)}")
    cols = 2 if len(panels) == 4 else min(3, len(panels))
    rows = -(-len(panels) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows), layout="constrained")
    for i, (panel, series) in enumerate(panels.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        for label, (x, y) in series.items():
            stage = label.split(" ")[0]
            color, line = STAGE_STYLE.get(stage, (None, "-"))
            if "(per step)" in label:
                ax.plot(x, y, color=color, alpha=0.3, lw=0.8, label=label)
            else:
                # Markers show where the epochs are; past ~40 they only thicken the line.
                ax.plot(x, y, color=color, ls=line if len(x) > 1 else "", marker="o", ms=3 if len(x) <= 40 else 0,
                        label=label)
                if len(x) == 1:  # a lone point (a test run): write its value
                    ax.annotate(f"{y[0]:.4g}", (x[0], y[0]), textcoords="offset points", xytext=(5, 5), fontsize=8)
        if panel in log_y:
            ax.set_yscale("log")
        ax.set_title(panel)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        xs = np.concatenate([x for x, _ in series.values()])
        if xs.max() - xs.min() < 2:  # one or two epochs: widen, or the integer ticks vanish
            ax.set_xlim(xs.min() - 1, xs.max() + 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(str(folder))
    save_figure(fig, out, dpi)
    return panels
