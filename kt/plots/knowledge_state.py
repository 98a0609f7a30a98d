"""A student's knowledge state under a trained knowledge-tracing model (DKT, DKVMN, SAKT, AKT): P(correct) on
each skill after each answer."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from kt.core.errors import InputError
from kt.plots.figure import save_figure


def knowledge_state(model, skills: Sequence[str], correct: Sequence[int]) -> np.ndarray:
    """P(correct) on every skill (vocabulary order) after each answer: shape (steps, num_skills)."""
    from kt.tracing.knowledge_state import KnowledgeTracer

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
        raise InputError(f"steps ({steps}) and max_skills ({max_skills}) must be at least 1")
    if not 0 <= start < len(skills):
        raise InputError(f"start {start}: the student has {len(skills)} answers (steps 0..{len(skills) - 1})")
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
    save_figure(fig, out, dpi)
    return {"rows": rows, "values": values, "columns": columns}


def load_dkt(path: str | Path):
    """A knowledge-tracing checkpoint on the CPU, in eval mode, read safely by :func:`kt.load_checkpoint`; a clear
    error when it is missing, not a checkpoint, or another kind of model's."""
    from kt.tracing.knowledge_state import KnowledgeTracer

    return KnowledgeTracer.from_checkpoint(str(path)).model


def student_sequence(
    student: str, data_file: str | Path | None = None, predictions: str | Path | None = None
) -> tuple[list[str], list[int]]:
    """One student's skill ids and answers, from a 3-line file (``student`` = 0-based position in it) or from
    a knowledge-tracing ``kt predict`` CSV (columns ``student``, ``step``, ``skill_id``, ``correct``)."""
    if (data_file is None) == (predictions is None):
        raise InputError("give exactly one of a 3-line data file and a predictions CSV")
    if data_file is not None:
        from kt.tracing.data.formats import read_three_line

        if not Path(data_file).is_file():
            raise InputError(f"{data_file}: no such file; expected a 3-line file (length, skill ids, answers)")
        data = read_three_line(data_file)
        if str(student) not in data.students:
            raise InputError(f"{data_file}: no student {student!r}; students are numbered 0..{len(data) - 1}")
        i = data.students.index(str(student))
        return [str(s) for s in data.skills[i]], [int(a) for a in data.correct[i]]
    path = Path(predictions)
    if not path.is_file():
        raise InputError(f"{path}: no such file; expected the CSV of `kt predict` with a tracing model")
    frame = pd.read_csv(path, dtype={"student": str, "skill_id": str})
    missing = [c for c in ("student", "step", "skill_id", "correct") if c not in frame.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} (expected `kt predict` output)")
    rows = frame[frame["student"] == str(student)].sort_values("step")
    if rows.empty:
        known = ", ".join(frame["student"].drop_duplicates().head(5))
        raise InputError(f"{path}: no rows for student {student!r} (students include {known})")
    return rows["skill_id"].tolist(), rows["correct"].astype(int).tolist()
