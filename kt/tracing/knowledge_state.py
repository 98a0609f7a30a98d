"""Step-by-step knowledge tracing: each student's recurrent state, updated one answer at a time.

    from kt.tracing.knowledge_state import KnowledgeTracer
    tracer = KnowledgeTracer.from_checkpoint("lightning_logs/dkt_assist2009/version_0/checkpoints/best.ckpt")
    tracer.add("alice", skill_id="27", correct=1)
    tracer.add("alice", skill_id="30", correct=0)
    tracer.probabilities("alice")     # {skill_id: P(next answer on that skill is correct)}

An update runs the network on one interaction from the stored state, so it costs the same at step 1000 as at
step 1, and gives the same numbers as running the whole sequence (tested to 1e-5 in float32).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from kt.core.errors import InputError
from kt.tracing.models.dkt import DKT
from kt.tracing.nets.dkt import RecurrentState


@dataclass
class _Student:
    state: RecurrentState
    logits: torch.Tensor  # (num_skills,): the network's output after the latest interaction
    steps: int = 0
    history: list[tuple[str, int]] = field(default_factory=list)


class KnowledgeTracer:
    """Keeps one recurrent state per student for a trained :class:`~kt.tracing.DKT` model."""

    def __init__(self, model: DKT) -> None:
        if model.net is None or model.vocabulary is None:
            raise InputError("the model has no skill vocabulary: load a checkpoint written by `kt fit`")
        self.model = model.eval()
        self.vocabulary = model.vocabulary
        self._index = {skill: i for i, skill in enumerate(self.vocabulary.skills)}
        self._students: dict[str, _Student] = {}

    @classmethod
    def from_checkpoint(cls, path: str, map_location: str | torch.device = "cpu") -> KnowledgeTracer:
        """From a DKT checkpoint alone, read safely by :func:`kt.load_checkpoint` (weights_only)."""
        from kt.core.checkpoints import load_checkpoint  # kt.core.checkpoints imports every model; only needed here

        model = load_checkpoint(path, map_location=map_location)
        if not isinstance(model, DKT):
            raise InputError(f"{path} holds a {type(model).__name__}; knowledge tracing needs a DKT checkpoint")
        return cls(model)

    @property
    def students(self) -> list[str]:
        return list(self._students)

    def skill_index(self, skill_id: str | int) -> int:
        try:
            return self._index[str(skill_id)]
        except KeyError:
            raise InputError(
                f"skill id {skill_id!r} is not in the model's vocabulary of {len(self.vocabulary)} skills "
                f"(known: {self.vocabulary.skills[0]} .. {self.vocabulary.skills[-1]})"
            ) from None

    @torch.no_grad()
    def add(self, student: str, skill_id: str | int, correct: int | bool) -> None:
        """Record one answer of ``student`` (a new student starts from the empty state)."""
        if int(correct) not in (0, 1):
            raise InputError(f"student {student!r}, skill {skill_id!r}: correct must be 0 or 1, got {correct!r}")
        skill = self.skill_index(skill_id)
        previous = self._students.get(student)
        device = self.model.device
        skills = torch.tensor([[skill]], device=device)
        answers = torch.tensor([[int(correct)]], device=device)
        logits, state = self.model.net(skills, answers, previous.state if previous else None)
        record = previous or _Student(state, logits[0, -1])
        record.state, record.logits = state, logits[0, -1]
        record.steps += 1
        record.history.append((str(skill_id), int(correct)))
        self._students[student] = record

    def _record(self, student: str) -> _Student:
        if student not in self._students:
            raise InputError(f"unknown student {student!r}: add() at least one answer first")
        return self._students[student]

    def probability_vector(self, student: str) -> np.ndarray:
        """P(correct) for every skill, in vocabulary order, given the student's answers so far."""
        return torch.sigmoid(self._record(student).logits.float()).cpu().numpy()

    def probabilities(self, student: str) -> dict[str, float]:
        """``{skill_id: P(the student's next answer on that skill is correct)}``."""
        return dict(zip(self.vocabulary.skills, self.probability_vector(student).tolist()))

    def history(self, student: str) -> list[tuple[str, int]]:
        return list(self._record(student).history)

    def forget(self, student: str) -> None:
        self._record(student)
        del self._students[student]
