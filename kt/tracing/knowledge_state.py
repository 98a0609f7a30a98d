"""Step-by-step knowledge tracing: each student's state, updated one answer at a time.

    from kt.tracing.knowledge_state import KnowledgeTracer
    tracer = KnowledgeTracer.from_checkpoint("lightning_logs/dkt_assist2009/version_0/checkpoints/best.ckpt")
    tracer.add("alice", skill_id="27", correct=1)
    tracer.add("alice", skill_id="30", correct=0)
    tracer.probabilities("alice")     # {skill_id: P(next answer on that skill is correct)}

Any knowledge-tracing model works: the state is what its :meth:`knowledge_step` keeps (DKT: the recurrent
state; DKVMN: the value memory; SAKT, AKT: the past interactions). For DKT and DKVMN an update runs the network
on one interaction from the stored state, so it costs the same at step 1000 as at step 1; SAKT and AKT attend
over the stored history. Every model gives the same numbers as running the whole sequence (tested to 1e-5 in
float32).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from kt.core.errors import InputError
from kt.tracing.models.base import KnowledgeTracingModel


@dataclass
class _Student:
    state: Any  # the model's knowledge_step state
    logits: torch.Tensor  # (num_skills,): the logits of the next answer on each skill
    steps: int = 0
    history: list[tuple[str, int]] = field(default_factory=list)


class KnowledgeTracer:
    """Keeps one state per student for a trained knowledge-tracing model (:class:`~kt.tracing.DKT`,
    :class:`~kt.tracing.DKVMN`, :class:`~kt.tracing.SAKT`, :class:`~kt.tracing.AKT`)."""

    def __init__(self, model: KnowledgeTracingModel) -> None:
        if model.net is None or model.vocabulary is None:
            raise InputError("the model has no skill vocabulary: load a checkpoint written by `kt fit`")
        self.model = model.eval()
        self.vocabulary = model.vocabulary
        self._index = {skill: i for i, skill in enumerate(self.vocabulary.skills)}
        self._students: dict[str, _Student] = {}

    @classmethod
    def from_checkpoint(cls, path: str, map_location: str | torch.device = "cpu") -> KnowledgeTracer:
        """From a knowledge-tracing checkpoint alone, read safely by :func:`kt.load_checkpoint` (weights_only)."""
        from kt.core.checkpoints import load_checkpoint  # kt.core.checkpoints imports every model; only needed here

        model = load_checkpoint(path, map_location=map_location)
        if not isinstance(model, KnowledgeTracingModel):
            raise InputError(
                f"{path} holds a {type(model).__name__}; knowledge tracing needs a DKT, DKVMN, SAKT or AKT checkpoint"
            )
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
        skills = torch.tensor([skill], device=device)
        answers = torch.tensor([int(correct)], device=device)
        state, logits = self.model.knowledge_step(previous.state if previous else None, skills, answers)
        record = previous or _Student(state, logits)
        record.state, record.logits = state, logits
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
