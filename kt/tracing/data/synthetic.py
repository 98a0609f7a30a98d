"""Simulated students generated the way the DKT paper's "Synthetic-5" was: no download needed.

Piech et al. (2015, section "Simulated data"): every student answers the same exercises in the same order;
each exercise tests one of ``num_concepts`` hidden concepts and has a difficulty ``b``; each student has a
latent ability ``a[concept]`` per concept, and answers correctly with the item-response-theory probability
with guessing

    p = guess + (1 - guess) * sigmoid(a[concept] - b),        guess = 0.25;

students learn: every attempt at a concept raises their ability in it by ``learning_gain``.

Parameters (defaults give Synthetic-5's shape: 50 exercises, 5 concepts, 50 answers per student):

* ``num_exercises``, ``num_concepts``, ``steps_per_student``: exercises ``1..num_exercises`` are answered in
  that order by everyone (repeated from 1 if ``steps_per_student`` is longer); exercise ids are 1-based, as in
  the published files. Each exercise's concept is drawn uniformly (the published ``cluster_info_0`` lists
  such an assignment: its first line is the concept of exercises 1..50).
* ``ability_sd``: abilities ~ Normal(0, ability_sd), independent across concepts and students.
* ``difficulty_mean``, ``difficulty_sd``: difficulties ~ Normal(difficulty_mean, difficulty_sd).
* ``guess``, ``learning_gain``: as above.

The paper does not give the distributions' scales, and the generator's code was not published with the data,
so ``ability_sd``, ``difficulty_mean``, ``difficulty_sd`` and ``learning_gain`` were matched to the published
version 0 (2,000 training students). 2,000 simulated students (seeds 0, 1, 2; published value in brackets):
fraction correct 0.591-0.601 (0.605), standard deviation of a student's fraction correct 0.152-0.154 (0.150),
second half of the sequence minus first half 0.043-0.065 (0.059), agreement of a student's even and odd
attempts at one concept (split-half correlation) 0.770-0.776 (0.767), correlation between a student's
concepts -0.002-0.005 (about 0). The large ability spread means a student mostly knows a concept or not.
Everything is drawn from ``seed``.
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
    ability_sd: float = 6.0,
    difficulty_mean: float = 1.5,
    difficulty_sd: float = 1.0,
) -> tuple[Interactions, np.ndarray]:
    """Return the students' answer sequences and each exercise's concept (index 0 is exercise 1)."""
    rng = np.random.default_rng(seed)
    concept = rng.integers(num_concepts, size=num_exercises)
    difficulty = rng.normal(difficulty_mean, difficulty_sd, size=num_exercises)
    ability = rng.normal(0.0, ability_sd, size=(num_students, num_concepts))
    order = np.arange(steps_per_student) % num_exercises  # the same sequence for everyone
    correct = np.empty((num_students, steps_per_student), dtype=np.int8)
    for t, q in enumerate(order):
        c = concept[q]
        p = guess + (1 - guess) / (1 + np.exp(difficulty[q] - ability[:, c]))
        correct[:, t] = rng.random(num_students) < p
        ability[:, c] += learning_gain
    skills = (order + 1).astype(str)
    data = Interactions([str(s) for s in range(num_students)], [skills.copy() for _ in range(num_students)],
                        list(correct))
    return data, concept


class SyntheticKTDataModule(KnowledgeTracingDataModule):
    """Simulated knowledge-tracing data (see module docstring); students are split into train/val/test.

    Args:
        num_students: students simulated.
        num_exercises: distinct exercises; each is one "skill" to the model.
        num_concepts: hidden concepts the exercises test.
        steps_per_student: answers per student (exercises 1, 2, ... in order for everyone).
        guess: chance of a lucky correct answer.
        learning_gain: how much one attempt raises the ability in the exercise's concept.
        ability_sd: spread of the students' abilities (per concept).
        difficulty_mean: mean difficulty of the exercises.
        difficulty_sd: spread of the difficulties.
        seed: seed of the simulation.
    """

    def __init__(
        self,
        num_students: PositiveInt = 4000,
        num_exercises: PositiveInt = 50,
        num_concepts: PositiveInt = 5,
        steps_per_student: PositiveInt = 50,
        guess: Fraction = 0.25,
        learning_gain: NonNegativeFloat = 0.2,
        ability_sd: NonNegativeFloat = 6.0,
        difficulty_mean: float = 1.5,
        difficulty_sd: NonNegativeFloat = 1.0,
        seed: int = 0,
        seq_len: PositiveInt = 100,
        eval_seq_len: PositiveInt | None = None,
        batch_size: PositiveInt = 64,
        val_fraction: OpenUnitInterval = 0.2,
        test_fraction: Fraction = 0.2,
        split_seed: int = 42,
        num_workers: NonNegativeInt = 0,
        bucket: bool = True,
        eval_tokens: PositiveInt | None = None,
    ) -> None:
        super().__init__(
            seq_len, eval_seq_len, batch_size, val_fraction, test_fraction, split_seed, num_workers, bucket,
            eval_tokens,
        )
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
            ability_sd=ability_sd,
            difficulty_mean=difficulty_mean,
            difficulty_sd=difficulty_sd,
        )
        self._concepts: np.ndarray | None = None

    def load(self) -> dict[str, Interactions | None]:
        data, self._concepts = simulate_students(**self.simulation)
        return {"train": data}

    def skill_names(self) -> dict[str, str]:
        return {str(q + 1): f"exercise {q + 1} (concept {c})" for q, c in enumerate(self._concepts)}
