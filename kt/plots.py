"""Pictures as PNG files: learning curves, a DKT student's knowledge state, a confusion matrix.

Figures are drawn on :class:`matplotlib.figure.Figure` with the Agg canvas directly, never through ``pyplot``:
no display is needed and importing this module changes no global matplotlib state. Every ``plot_*`` function
returns the arrays it drew, so tests can check the picture's numbers rather than its pixels.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from kt.errors import KTInputError

STAGE_STYLE = {"train": ("tab:blue", "-"), "val": ("tab:orange", "-"), "test": ("tab:green", "")}
Series = tuple[np.ndarray, np.ndarray]  # (x, y)


def _save(fig: Figure, out: str | Path, dpi: int) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(out, dpi=dpi)
    return out


# --------------------------------------------------------------------------------------------------------------
# Learning curves from TensorBoard event files


def find_event_dir(run_dir: str | Path) -> Path:
    """``run_dir`` itself when it holds event files, else its only ``version_N`` sub-folder that does."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise KTInputError(f"{run_dir}: no such folder; expected a run folder like lightning_logs/<name>/version_N")
    if any(run_dir.glob("events.out.tfevents.*")):
        return run_dir
    versions = sorted(p.parent for p in run_dir.glob("*/events.out.tfevents.*"))
    if len(set(versions)) == 1:
        return versions[0]
    found = ", ".join(sorted({p.name for p in versions})) or "none"
    raise KTInputError(
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
        raise KTInputError(f"{folder}: the event files hold no scalars (did the run log anything?)")
    return scalars


def _steps_to_epochs(scalars: dict[str, Series]) -> tuple[dict[int, int], tuple[np.ndarray, np.ndarray]]:
    """From Lightning's ``epoch`` scalar: {step: epoch} at every logged step, and the (step, epochs completed)
    points that place a step at a fractional epoch: each epoch's last step, and the step before the first."""
    if "epoch" not in scalars:
        raise KTInputError("the run logged no 'epoch' scalar, so steps cannot be mapped to epochs")
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
        raise KTInputError(f"{folder}: no metrics to plot (only {', '.join(scalars)})")
    unknown = sorted(set(log_y) - set(panels))
    if unknown:
        raise KTInputError(f"log-scale panel(s) {', '.join(unknown)} not in this run; its panels: {', '.join(panels)}")
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
    _save(fig, out, dpi)
    return panels


# --------------------------------------------------------------------------------------------------------------
# DKT: one student's knowledge state


def knowledge_state(model, skills: Sequence[str], correct: Sequence[int]) -> np.ndarray:
    """P(correct) on every skill (vocabulary order) after each answer: shape (steps, num_skills)."""
    from kt.knowledge_state import KnowledgeTracer

    tracer = KnowledgeTracer(model)
    rows = []
    for skill, answer in zip(skills, correct):
        tracer.add("student", str(skill), int(answer))
        rows.append(tracer.probability_vector("student"))
    return np.stack(rows)


def pick_skills(skills: Sequence[str], max_skills: int) -> list[str]:
    """The student's skills, most practised first (ties: first practised first), at most ``max_skills``."""
    first: dict[str, int] = {}
    count: dict[str, int] = {}
    for t, s in enumerate(map(str, skills)):
        first.setdefault(s, t)
        count[s] = count.get(s, 0) + 1
    chosen = sorted(first, key=lambda s: (-count[s], first[s]))[:max_skills]
    return sorted(chosen, key=first.get)  # rows in the order the student met them


def plot_knowledge_state(
    model,
    skills: Sequence[str],
    correct: Sequence[int],
    out: str | Path,
    start: int = 0,
    steps: int | None = None,
    max_skills: int = 20,
    title: str = "",
    dpi: int = 100,
) -> dict:
    """The DKT paper's heatmap: rows = skills, columns = the student's answers, colour = P(correct) after each.

    The model reads the whole sequence up to ``start + steps`` (the state depends on all of it); answers
    ``start .. start + steps - 1`` are drawn, and rows are the skills practised there (the ``max_skills`` most
    practised). Each column's label is the answered skill and ✓/✗ and its cell is outlined. Returns ``rows``
    (skill ids), ``values`` (rows x drawn steps, the plotted probabilities) and ``columns`` (x tick labels).
    """
    skills, correct = [str(s) for s in skills], [int(a) for a in correct]
    if (steps is not None and steps < 1) or max_skills < 1:
        raise KTInputError(f"steps ({steps}) and max_skills ({max_skills}) must be at least 1")
    if not 0 <= start < len(skills):
        raise KTInputError(f"start {start}: the student has {len(skills)} answers (steps 0..{len(skills) - 1})")
    stop = len(skills) if steps is None else min(len(skills), start + steps)
    probs = knowledge_state(model, skills[:stop], correct[:stop])[start:]
    skills, correct = skills[start:stop], correct[start:stop]
    vocab = model.vocabulary
    index = {s: i for i, s in enumerate(vocab.skills)}
    rows = pick_skills(skills, max_skills)
    values = probs[:, [index[s] for s in rows]].T
    row_labels = [f"{s}  {vocab.names[index[s]][:40]}".rstrip() for s in rows]
    columns = [f"{s} {'✓' if a else '✗'}" for s, a in zip(skills, correct)]

    width, height = len(skills), len(rows)
    fig = Figure(figsize=(min(30.0, 3.5 + 0.24 * width), 2.0 + 0.28 * height), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(values, aspect="auto", cmap="RdYlGn", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(image, ax=ax, label="P(correct)", fraction=0.03, pad=0.01)
    ax.set_yticks(range(height), row_labels, fontsize=8)
    ax.set_xticks(range(width), columns, rotation=90, fontsize=7)
    for t, (label, s, a) in enumerate(zip(ax.get_xticklabels(), skills, correct)):
        label.set_color("darkgreen" if a else "firebrick")
        if s in rows:  # the answered skill's cell at that step
            ax.add_patch(Rectangle((t - 0.5, rows.index(s) - 0.5), 1, 1, fill=False, lw=1.2, ec="black"))
    ax.set_xlabel(f"answers {start + 1}..{stop}: skill answered, ✓ right / ✗ wrong (outlined cell)")
    ax.set_ylabel("skill")
    ax.set_title(title or "knowledge state: P(correct) on each skill after each answer")
    _save(fig, out, dpi)
    return {"rows": rows, "values": values, "columns": columns}


def load_dkt(path: str | Path):
    """A DKT checkpoint on the CPU, in eval mode, read safely by :func:`kt.load_checkpoint`; a clear error when
    it is missing, not a checkpoint, or another model's."""
    from kt.knowledge_state import KnowledgeTracer

    return KnowledgeTracer.from_checkpoint(str(path)).model


def student_sequence(
    student: str, data_file: str | Path | None = None, predictions: str | Path | None = None
) -> tuple[list[str], list[int]]:
    """One student's skill ids and answers, from a 3-line file (``student`` = 0-based position in it) or from
    a DKT ``kt predict`` CSV (columns ``student``, ``step``, ``skill_id``, ``correct``)."""
    if (data_file is None) == (predictions is None):
        raise KTInputError("give exactly one of a 3-line data file and a predictions CSV")
    if data_file is not None:
        from kt.data.kt_formats import read_three_line

        if not Path(data_file).is_file():
            raise KTInputError(f"{data_file}: no such file; expected a 3-line file (length, skill ids, answers)")
        data = read_three_line(data_file)
        if str(student) not in data.students:
            raise KTInputError(f"{data_file}: no student {student!r}; students are numbered 0..{len(data) - 1}")
        i = data.students.index(str(student))
        return [str(s) for s in data.skills[i]], [int(a) for a in data.correct[i]]
    path = Path(predictions)
    if not path.is_file():
        raise KTInputError(f"{path}: no such file; expected the CSV written by `kt predict` with a DKT model")
    frame = pd.read_csv(path, dtype={"student": str, "skill_id": str})
    missing = [c for c in ("student", "step", "skill_id", "correct") if c not in frame.columns]
    if missing:
        raise KTInputError(f"{path}: missing column(s) {', '.join(missing)} (expected DKT `kt predict` output)")
    rows = frame[frame["student"] == str(student)].sort_values("step")
    if rows.empty:
        known = ", ".join(frame["student"].drop_duplicates().head(5))
        raise KTInputError(f"{path}: no rows for student {student!r} (students include {known})")
    return rows["skill_id"].tolist(), rows["correct"].astype(int).tolist()


# --------------------------------------------------------------------------------------------------------------
# Classification: confusion matrix


def read_predictions(path: str | Path) -> pd.DataFrame:
    """A classifier's ``kt predict`` CSV: integer columns ``label`` (true class) and ``pred``."""
    path = Path(path)
    if not path.is_file():
        raise KTInputError(f"{path}: no such file; expected the CSV written by `kt predict`")
    frame = pd.read_csv(path)
    missing = [c for c in ("label", "pred") if c not in frame.columns]
    if missing:
        raise KTInputError(
            f"{path}: missing column(s) {', '.join(missing)}; expected 'label' (true class index) and 'pred' "
            f"(predicted class index), found {', '.join(map(str, frame.columns[:12]))}"
        )
    if frame.empty:
        raise KTInputError(f"{path}: no rows")
    if frame["label"].isna().all():
        raise KTInputError(
            f"{path}: the 'label' column is empty (predictions on your own images have no true class); "
            "a confusion matrix needs `kt predict` on a labelled set such as the test set"
        )
    for column in ("label", "pred"):
        values = pd.to_numeric(frame[column], errors="coerce")
        bad = values.isna() | (values < 0) | (values != values.round())
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise KTInputError(
                f"{path}, row {row + 2}, column {column!r}: expected a class index (0, 1, 2...), "
                f"found {frame[column].iloc[row]!r}"
            )
        frame[column] = values.astype(int)
    return frame


def class_names(frame: pd.DataFrame, classes: Sequence[str] | None = None) -> list[str]:
    """``classes`` when given; else the CSV's ``pred_name`` per predicted index; else the indices."""
    size = int(max(frame["label"].max(), frame["pred"].max())) + 1
    size = max(size, sum(bool(re.fullmatch(r"p_\d+", str(c))) for c in frame.columns))
    if classes:
        if len(classes) < size:
            raise KTInputError(f"--classes names {len(classes)} classes, but the predictions use {size}")
        return list(classes)
    names = [str(i) for i in range(size)]
    if "pred_name" in frame.columns:
        for index, name in frame.drop_duplicates("pred")[["pred", "pred_name"]].itertuples(index=False):
            names[int(index)] = str(name)
    return names


def confusion_counts(labels: np.ndarray, preds: np.ndarray, num_classes: int) -> np.ndarray:
    """counts[i, j]: examples of true class i predicted as j."""
    return np.bincount(labels * num_classes + preds, minlength=num_classes**2).reshape(num_classes, num_classes)


def plot_confusion(
    predictions: str | Path, out: str | Path, classes: Sequence[str] | None = None, dpi: int = 100
) -> dict:
    """Counts and row-normalised (recall per class) confusion matrices side by side, accuracy in the title.

    Returns ``counts``, ``normalised``, ``accuracy`` and ``classes``.
    """
    frame = read_predictions(predictions)
    names = class_names(frame, classes)
    k = len(names)
    counts = confusion_counts(frame["label"].to_numpy(), frame["pred"].to_numpy(), k)
    totals = counts.sum(1, keepdims=True)
    normalised = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    accuracy = float(np.trace(counts) / counts.sum())

    fig = Figure(figsize=(2 * (2.2 + 0.5 * k), 1.6 + 0.5 * k), layout="constrained")
    for i, (matrix, what) in enumerate([(counts, "counts"), (normalised, "row-normalised (recall)")]):
        ax = fig.add_subplot(1, 2, i + 1)
        image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=matrix.max() or 1)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
        for (r, c), v in np.ndenumerate(matrix):
            text = f"{v:d}" if matrix is counts else f"{v:.2f}"
            ax.text(c, r, text, ha="center", va="center", fontsize=7,
                    color="white" if v > 0.6 * (matrix.max() or 1) else "black")
        ax.set_xticks(range(k), names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(k), names, fontsize=8)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(what)
    fig.suptitle(f"{Path(predictions).name}: accuracy {accuracy:.2%} ({int(np.trace(counts))}/{counts.sum()})")
    _save(fig, out, dpi)
    return {"counts": counts, "normalised": normalised, "accuracy": accuracy, "classes": names}
