"""Simulated students, in the spirit of the DKT paper's "Synthetic-5" data: no download needed.

Each exercise tests one hidden concept and has a difficulty; each student has a hidden ability per
concept. The chance of a correct answer follows item response theory with guessing,
``p = guess + (1 - guess) * sigmoid(ability[concept] - difficulty)``, and every attempt at a concept
raises the student's ability in it (students learn). Everything is drawn from ``seed``.
"""

from __future__ import annotations

import numpy as np

from kt.core.validation import (
    Fraction,
    NonNegativeFloat,
    NonNegativeInt,
    OpenUnitInterval,
    PositiveInt,
    check_split_fractions,
)
from kt.tracing.data.datamodule import KnowledgeTracingDataModule
from kt.tracing.data.sequences import Interactions


def simulate_students(
    num_students: int,
    num_exercises: int,
    num_concepts: int,
    steps_per_student: int,
    guess: float,
    learning_gain: float,
    seed: int,
) -> tuple[Interactions, np.ndarray]:
    """Return the students' answer sequences and each exercise's concept."""
    rng = np.random.default_rng(seed)
    concept = rng.integers(num_concepts, size=num_exercises)
    difficulty = rng.normal(size=num_exercises)
    ability = rng.normal(size=(num_students, num_concepts))
    exercises = rng.integers(num_exercises, size=(num_students, steps_per_student))
    correct = np.empty_like(exercises, dtype=np.int8)
    students = np.arange(num_students)
    for t in range(steps_per_student):
        q = exercises[:, t]
        c = concept[q]
        p = guess + (1 - guess) / (1 + np.exp(difficulty[q] - ability[students, c]))
        correct[:, t] = rng.random(num_students) < p
        ability[students, c] += learning_gain
    skills = exercises.astype(str)
    data = Interactions([str(s) for s in students], list(skills), list(correct))
    return data, concept


class SyntheticKTDataModule(KnowledgeTracingDataModule):
    """Simulated knowledge-tracing data (see module docstring); students are split into train/val/test.

    Args:
        num_students: students simulated.
        num_exercises: distinct exercises; each is one "skill" to the model.
        num_concepts: hidden concepts the exercises test.
        steps_per_student: exercises each student answers (drawn at random).
        guess: chance of a lucky correct answer.
        learning_gain: how much one attempt raises the ability in the exercise's concept.
        seed: seed of the simulation.
    """

    def __init__(
        self,
        num_students: PositiveInt = 4000,
        num_exercises: PositiveInt = 50,
        num_concepts: PositiveInt = 5,
        steps_per_student: PositiveInt = 50,
        guess: Fraction = 0.25,
        learning_gain: NonNegativeFloat = 0.1,
        seed: int = 0,
        seq_len: PositiveInt = 100,
        eval_seq_len: PositiveInt | None = None,
        batch_size: PositiveInt = 64,
        val_fraction: OpenUnitInterval = 0.2,
        test_fraction: OpenUnitInterval = 0.2,
        split_seed: int = 42,
        num_workers: NonNegativeInt = 0,
    ) -> None:
        super().__init__(seq_len, eval_seq_len, batch_size, val_fraction, test_fraction, split_seed, num_workers)
        # Checked here, before any run folder exists: every split must get students.
        check_split_fractions(type(self).__name__, num_students, val_fraction=val_fraction, test_fraction=test_fraction)
        self.simulation = dict(
            num_students=num_students,
            num_exercises=num_exercises,
            num_concepts=num_concepts,
            steps_per_student=steps_per_student,
            guess=guess,
            learning_gain=learning_gain,
            seed=seed,
        )
        self._concepts: np.ndarray | None = None

    def load(self) -> dict[str, Interactions | None]:
        data, self._concepts = simulate_students(**self.simulation)
        return {"train": data}

    def skill_names(self) -> dict[str, str]:
        return {str(q): f"exercise {q} (concept {c})" for q, c in enumerate(self._concepts)}
