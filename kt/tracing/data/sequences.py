"""Student interaction sequences: the skill vocabulary, windowing, and padding into batches.

Every knowledge-tracing DataModule turns its source into :class:`Interactions` (one sequence per student,
in time order); everything after that is shared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset

from kt.core.errors import InputError
from kt.core.splits import split_groups


@dataclass
class Interactions:
    """One sequence per student: raw skill ids (strings) and 0/1 answers, in time order.

    ``problems`` (optional): the problem of every step, where one problem can span several consecutive steps
    (raw ASSISTments rows of a multi-skill problem); it lets evaluation score only a problem's first step.
    """

    students: list[str]
    skills: list[np.ndarray]
    correct: list[np.ndarray]
    problems: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.students)

    @property
    def num_interactions(self) -> int:
        return sum(len(s) for s in self.skills)

    def subset(self, index: np.ndarray | list[int]) -> Interactions:
        return Interactions(
            [self.students[i] for i in index],
            [self.skills[i] for i in index],
            [self.correct[i] for i in index],
            None if self.problems is None else [self.problems[i] for i in index],
        )

    def split(self, fractions: list[float], seed: int) -> list[Interactions]:
        """Split by student (never through one student's sequence), reproducibly from ``seed``.

        Returns ``len(fractions) + 1`` parts: one per fraction, then the rest.
        """
        sizes: dict[str, int | None] = {f"part {i}": round(f * len(self)) for i, f in enumerate(fractions)}
        parts = split_groups(len(self), sizes | {"rest": None}, seed, permutation="numpy")
        return [self.subset(np.sort(p)) for p in parts.values()]


def skill_sort_key(skill: str) -> tuple:
    # Numeric ids sort as numbers (2 before 10); names sort as text, after all numbers.
    try:
        return (0, float(skill), skill)
    except ValueError:
        return (1, 0.0, skill)


@dataclass
class SkillVocabulary:
    """Raw skill id <-> index (0..num_skills-1), with optional human-readable names."""

    skills: list[str]
    names: list[str]

    @classmethod
    def build(cls, *sources: Interactions, names: dict[str, str] | None = None) -> SkillVocabulary:
        seen = {str(s) for source in sources for seq in source.skills for s in np.unique(seq)}
        skills = sorted(seen, key=skill_sort_key)
        names = names or {}
        return cls(skills, [str(names.get(s, "")) for s in skills])

    @classmethod
    def from_state(cls, state: dict) -> SkillVocabulary:
        return cls(list(state["skills"]), list(state["names"]))

    def state(self) -> dict:
        """Plain lists, so checkpoints load with ``weights_only=True``."""
        return {"skills": [str(s) for s in self.skills], "names": [str(n) for n in self.names]}

    def __len__(self) -> int:
        return len(self.skills)

    def encode(self, skills: np.ndarray, where: str = "") -> np.ndarray:
        """Map raw ids to indices; unknown ids are an error, never silently dropped."""
        table = np.asarray(self.skills)
        order = np.argsort(table)
        pos = np.searchsorted(table, skills, sorter=order).clip(max=len(table) - 1)
        index = order[pos]
        unknown = table[index] != skills
        if unknown.any():
            bad = sorted(set(np.asarray(skills)[unknown].tolist()), key=skill_sort_key)[:10]
            raise InputError(
                f"{where or 'input'}: skill id(s) {', '.join(bad)} are not in the model's vocabulary "
                f"of {len(self)} skills (known: {self.skills[0]} .. {self.skills[-1]})"
            )
        return index.astype(np.int64)


@dataclass
class Window:
    student: str
    start: int  # position of the window's first step in the student's whole sequence
    skills: torch.Tensor  # int64 skill indices
    correct: torch.Tensor  # int64 0/1
    first: torch.Tensor | None = None  # bool: the step is its problem's first (when problems are known)
    index: int = 0  # position among the windows of its split: students in input order, then by start


def make_windows(
    data: Interactions, vocab: SkillVocabulary, seq_len: int, where: str | Callable[[str], str] = ""
) -> list[Window]:
    """Cut each sequence into windows of ``seq_len + 1`` steps that overlap by one step.

    A window predicts its steps 1..seq_len from the steps before them, so with the one-step overlap every
    step but a student's first is scored exactly once. Students with a single interaction give nothing to
    score and yield no window (the caller counts them). ``where(student)`` (or ``where`` + the student) says
    where a student's data came from, for errors.
    """
    if seq_len < 1:
        raise InputError(f"seq_len must be at least 1, got {seq_len}")
    windows = []
    problems = data.problems or [None] * len(data)
    for student, skills, correct, problem in zip(data.students, data.skills, data.correct, problems):
        place = where(student) if callable(where) else f"{where} student {student}"
        index = torch.from_numpy(vocab.encode(skills, where=place))
        answers = torch.from_numpy(correct.astype(np.int64))
        first = None if problem is None else torch.from_numpy(np.r_[True, problem[1:] != problem[:-1]])
        for start in range(0, max(len(skills) - 1, 0), seq_len):
            end = start + seq_len + 1
            window_first = None if first is None else first[start:end]
            windows.append(
                Window(student, start, index[start:end], answers[start:end], window_first, len(windows))
            )
    return windows


class WindowDataset(Dataset):
    def __init__(self, windows: list[Window]) -> None:
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int | list[int]) -> Window | list[Window]:
        # A list: a whole batch, from a sampler that yields batches (BucketSampler).
        return [self.windows[j] for j in i] if isinstance(i, list) else self.windows[i]

    def lengths(self) -> list[int]:
        return [len(w.skills) for w in self.windows]


def collate_windows(windows: list[Window], answers_per_batch: float | None = None) -> dict:
    """Right-pad a batch of windows; ``mask`` marks real steps (padding is never scored); ``window`` is each
    window's position in its split (to put predictions back in input order).

    ``answers_per_batch`` (training): the epoch's mean number of scored answers per batch, passed on as
    ``loss_norm`` so that the loss can weigh every answer of the epoch the same
    (see ``KnowledgeTracingModel.training_step``).
    """
    lengths = torch.tensor([len(w.skills) for w in windows])
    mask = torch.arange(int(lengths.max()))[None, :] < lengths[:, None]
    batch = {
        "skills": pad_sequence([w.skills for w in windows], batch_first=True),
        "correct": pad_sequence([w.correct for w in windows], batch_first=True),
        "mask": mask,
        "student": [w.student for w in windows],
        "start": torch.tensor([w.start for w in windows]),
        "window": torch.tensor([w.index for w in windows]),
    }
    if answers_per_batch is not None:
        batch["loss_norm"] = torch.tensor(float(answers_per_batch))
    if all(w.first is not None for w in windows):
        # A window's step 0 repeats the previous window's last step: its flag is never used for scoring.
        batch["first"] = pad_sequence([w.first for w in windows], batch_first=True)
    return batch
