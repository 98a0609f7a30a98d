from __future__ import annotations

import numpy as np
import pytest
import torch

from kt.core.errors import InputError
from kt.tracing.data.sequences import Interactions, SkillVocabulary, collate_windows, make_windows


def interactions(lengths: list[int]) -> Interactions:
    rng = np.random.default_rng(0)
    skills = [rng.integers(0, 5, n).astype(str) for n in lengths]
    correct = [rng.integers(0, 2, n).astype(np.int8) for n in lengths]
    return Interactions([f"s{i}" for i in range(len(lengths))], skills, correct)


def test_windows_score_every_step_but_the_first_exactly_once():
    data = interactions([8, 1, 4])
    vocab = SkillVocabulary.build(data)
    windows = make_windows(data, vocab, seq_len=3)
    # Student s0 (8 steps): windows start at 0, 3, 6 and overlap by one step; s1 (1 step) gives none.
    assert [(w.student, w.start, len(w.skills)) for w in windows] == [
        ("s0", 0, 4), ("s0", 3, 4), ("s0", 6, 2), ("s2", 0, 4)
    ]
    scored = [w.start + t for w in windows if w.student == "s0" for t in range(1, len(w.skills))]
    assert scored == list(range(1, 8))
    assert windows[1].skills.tolist() == vocab.encode(data.skills[0][3:7]).tolist()


def test_collate_pads_right_and_masks_real_steps():
    data = interactions([5, 2])
    batch = collate_windows(make_windows(data, SkillVocabulary.build(data), seq_len=10))
    assert batch["skills"].shape == (2, 5)
    assert batch["mask"].tolist() == [[True] * 5, [True, True, False, False, False]]
    assert batch["correct"][1, 2:].tolist() == [0, 0, 0]
    assert batch["student"] == ["s0", "s1"]


def test_split_is_by_student_disjoint_and_reproducible():
    data = interactions([3] * 100)
    val, test, train = data.split([0.2, 0.1], seed=7)
    assert (len(val), len(test), len(train)) == (20, 10, 70)
    assert not set(val.students) & set(train.students) and not set(test.students) & set(train.students)
    assert sorted(val.students + test.students + train.students) == sorted(data.students)
    assert data.split([0.2, 0.1], seed=7)[0].students == val.students
    assert data.split([0.2, 0.1], seed=8)[0].students != val.students


def test_vocabulary_sorts_numerically_and_rejects_unknown_ids():
    vocab = SkillVocabulary(["2", "10", "x"], ["two", "ten", "ex"])
    assert SkillVocabulary.build(Interactions(["a"], [np.array(["10", "x", "2"])], [np.zeros(3)])).skills == [
        "2", "10", "x"
    ]
    assert vocab.encode(np.array(["10", "2", "x"])).tolist() == [1, 0, 2]
    with pytest.raises(InputError, match="skill id\\(s\\) 7 are not in the model's vocabulary"):
        vocab.encode(np.array(["2", "7"]), where="predict file")
    assert SkillVocabulary.from_state(vocab.state()) == vocab
    assert all(type(s) is str for s in vocab.state()["skills"])


def test_window_tensors_are_int64():
    data = interactions([4])
    (w,) = make_windows(data, SkillVocabulary.build(data), seq_len=5)
    assert w.skills.dtype == torch.int64 and w.correct.dtype == torch.int64
