from __future__ import annotations

import numpy as np
import pytest
import torch
from lightning.pytorch import seed_everything

from kt.core.errors import InputError
from kt.tracing import DKT
from kt.tracing.knowledge_state import KnowledgeTracer

SKILLS = ["3", "7", "12", "40", "41"]


def model(backbone: str) -> DKT:
    seed_everything(0)
    state = {"skills": SKILLS, "names": [f"skill {s}" for s in SKILLS]}
    return DKT(emb_size=6, hidden_size=10, num_layers=2, backbone=backbone, data_state=state).eval()


@pytest.mark.parametrize("backbone", ["lstm", "gru"])
def test_step_by_step_equals_the_whole_sequence(backbone):
    dkt = model(backbone)
    rng = np.random.default_rng(0)
    skills = rng.integers(0, len(SKILLS), 60)
    answers = rng.integers(0, 2, 60)
    with torch.no_grad():
        full = torch.sigmoid(dkt(torch.from_numpy(skills)[None], torch.from_numpy(answers)[None]))[0].numpy()
    tracer = KnowledgeTracer(dkt)
    for t, (skill, answer) in enumerate(zip(skills, answers)):
        tracer.add("alice", SKILLS[skill], int(answer))
        tracer.add("bob", SKILLS[(skill + 1) % len(SKILLS)], 1)  # another student in between changes nothing
        np.testing.assert_allclose(tracer.probability_vector("alice"), full[t], atol=1e-5, rtol=0)
    assert tracer.history("alice")[:2] == [(SKILLS[skills[0]], int(answers[0])), (SKILLS[skills[1]], int(answers[1]))]
    assert list(tracer.probabilities("alice")) == SKILLS
    assert sorted(tracer.students) == ["alice", "bob"]


def test_unknown_skill_student_and_answer_are_clear_errors():
    tracer = KnowledgeTracer(model("lstm"))
    with pytest.raises(InputError, match="skill id '99' is not in the model's vocabulary of 5 skills"):
        tracer.add("alice", "99", 1)
    with pytest.raises(InputError, match="unknown student 'carol'"):
        tracer.probabilities("carol")
    with pytest.raises(InputError, match="correct must be 0 or 1"):
        tracer.add("alice", "3", 2)
    assert tracer.students == []  # nothing half-recorded
    tracer.add("alice", 7, True)  # int skill ids and bool answers are accepted
    tracer.forget("alice")
    assert tracer.students == []


def test_a_model_without_vocabulary_is_refused():
    with pytest.raises(InputError, match="no skill vocabulary"):
        KnowledgeTracer(DKT(num_skills=4))


def test_each_answer_costs_one_step_of_the_network():
    """Constant time per interaction: the network sees one (1, 1) step and the stored state, never the history."""
    dkt = model("lstm")
    tracer = KnowledgeTracer(dkt)
    calls = []
    net_forward = dkt.net.forward

    def recording(skills, correct, state=None):
        calls.append((tuple(skills.shape), state is None))
        return net_forward(skills, correct, state)

    dkt.net.forward = recording
    for step in range(50):
        tracer.add("alice", SKILLS[step % len(SKILLS)], step % 2)
    tracer.add("bob", "3", 1)
    assert calls == [((1, 1), True)] + [((1, 1), False)] * 49 + [((1, 1), True)]
    assert tracer.probability_vector("alice").dtype == np.float32
