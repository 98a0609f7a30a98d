"""DKVMN, SAKT and AKT beside DKT: causality, masking, checkpoints, the CLI, step-by-step knowledge tracing,
and hand computations of DKVMN's memory update and AKT's decayed attention."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import Trainer, seed_everything
from sklearn.metrics import roc_auc_score
from torch.utils.data import DataLoader

import kt
from kt.cli import run_cli
from kt.core.errors import InputError
from kt.tracing import AKT, DKT, DKVMN, SAKT, KnowledgeTracer
from kt.tracing.nets.akt import monotonic_attention_weights
from kt.tracing.nets.dkvmn import DKVMNNet

NUM_SKILLS = 6
TINY = {
    "DKT": (DKT, dict(emb_size=8, hidden_size=8)),
    "DKVMN": (DKVMN, dict(memory_size=4, key_dim=6, value_dim=8, summary_dim=5)),
    "SAKT": (SAKT, dict(embed_size=8, num_heads=2, max_length=40)),
    "AKT": (AKT, dict(d_model=8, num_heads=2, d_ff=16, final_fc_dim=8)),
}
NEW_MODELS = ["DKVMN", "SAKT", "AKT"]
VOCABULARY = {"skills": [str(10 + i) for i in range(NUM_SKILLS)], "names": [f"skill {i}" for i in range(NUM_SKILLS)]}


def tiny_model(name: str, seed: int = 0):
    torch.manual_seed(seed)
    cls, options = TINY[name]
    return cls(data_state=VOCABULARY, **options).eval()


def random_sequences(batch: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    skills = torch.randint(0, NUM_SKILLS, (batch, length), generator=generator)
    return skills, torch.randint(0, 2, (batch, length), generator=generator)


def step_predictions(model, skills: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
    """The logit predicted for every step t >= 1 from steps < t, (batch, time - 1)."""
    with torch.no_grad():
        return model.next_step_logits({"skills": skills, "correct": correct})[0]


@pytest.mark.parametrize("name", list(TINY))
def test_the_future_does_not_move_earlier_predictions(name):
    model = tiny_model(name)
    skills, correct = random_sequences(4, 12, seed=1)
    before = step_predictions(model, skills, correct)
    for k in (1, 5, 10):
        other_skills, other_correct = random_sequences(4, 12, seed=k + 100)
        skills2 = torch.cat([skills[:, :k], other_skills[:, k:]], dim=1)
        correct2 = torch.cat([correct[:, :k], 1 - correct[:, k:]], dim=1)
        after = step_predictions(model, skills2, correct2)
        # Column t - 1 is step t: steps 1..k-1 only saw steps before k.
        torch.testing.assert_close(after[:, : k - 1], before[:, : k - 1], rtol=0, atol=1e-6)
        assert not torch.allclose(after[:, k - 1 :], before[:, k - 1 :])  # it reaches steps k and later


@pytest.mark.parametrize("name", list(TINY))
def test_no_prediction_depends_on_its_own_answer(name):
    """Flipping the answers from step k on keeps the prediction of step k (same skill) and of every step
    before it, and changes those after."""
    model = tiny_model(name)
    skills, correct = random_sequences(4, 10, seed=2)
    before = step_predictions(model, skills, correct)
    for k in range(1, 9):
        flipped = correct.clone()
        flipped[:, k:] = 1 - flipped[:, k:]
        after = step_predictions(model, skills, flipped)
        torch.testing.assert_close(after[:, :k], before[:, :k], rtol=0, atol=1e-6)  # steps 1..k
        assert not torch.allclose(after[:, k:], before[:, k:])
    if name != "DKT":  # query models also predict step 0, from nothing
        with torch.no_grad():
            torch.testing.assert_close(model(skills, 1 - correct)[:, 0], model(skills, correct)[:, 0])


def padded_batch(seed: int = 3) -> tuple[dict, list[int]]:
    skills, correct = random_sequences(5, 9, seed=seed)
    lengths = [9, 4, 7, 2, 9]
    mask = torch.arange(9)[None, :] < torch.tensor(lengths)[:, None]
    return {"skills": skills, "correct": correct, "mask": mask}, lengths


@pytest.mark.parametrize("name", list(TINY))
def test_padding_changes_neither_predictions_nor_loss_nor_metrics(name):
    model = tiny_model(name)
    batch, lengths = padded_batch()
    with torch.no_grad():
        logit, target = model._scored(batch)
        # Independently: each student alone, unpadded.
        alone = [step_predictions(model, batch["skills"][i : i + 1, :n], batch["correct"][i : i + 1, :n])[0]
                 for i, n in enumerate(lengths)]
        answers = [batch["correct"][i, 1:n] for i, n in enumerate(lengths)]
        garbage = {k: v.clone() for k, v in batch.items()}
        pad = ~batch["mask"]
        garbage["skills"][pad] = NUM_SKILLS - 1
        garbage["correct"][pad] = 1 - garbage["correct"][pad]
        logit2, target2 = model._scored(garbage)
    torch.testing.assert_close(logit, torch.cat(alone), rtol=0, atol=1e-5)
    torch.testing.assert_close(target, torch.cat(answers).float())
    torch.testing.assert_close(logit2, logit, rtol=0, atol=1e-6)
    assert len(target) == sum(n - 1 for n in lengths)

    trainer = Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    logged = trainer.validate(model, DataLoader([batch], batch_size=None), verbose=False)[0]
    scores, labels = torch.sigmoid(torch.cat(alone)).numpy(), torch.cat(answers).numpy()
    assert logged["val/auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-6)
    assert logged["val/acc"] == pytest.approx(((scores >= 0.5) == labels).mean(), abs=1e-6)
    expected_loss = F.binary_cross_entropy(torch.tensor(scores), torch.tensor(labels).float()).item()
    assert logged["val/loss"] == pytest.approx(expected_loss, rel=1e-4)


@pytest.mark.parametrize("name", NEW_MODELS)
def test_stepping_one_answer_at_a_time_matches_the_whole_sequence(name):
    model = tiny_model(name)
    skills, correct = random_sequences(1, 30, seed=4)
    full = torch.sigmoid(step_predictions(model, skills, correct))[0]
    tracer = KnowledgeTracer(model)
    stepped = []
    for t in range(29):
        tracer.add("alice", VOCABULARY["skills"][skills[0, t]], int(correct[0, t]))
        stepped.append(tracer.probability_vector("alice")[skills[0, t + 1]])
    np.testing.assert_allclose(stepped, full.numpy(), atol=1e-5, rtol=0)


def test_sakt_tracer_keeps_the_last_max_length_minus_one_answers():
    model = tiny_model("SAKT")
    skills, correct = random_sequences(1, 50, seed=5)
    tracer = KnowledgeTracer(model)
    for t in range(49):
        tracer.add("bob", VOCABULARY["skills"][skills[0, t]], int(correct[0, t]))
    window = slice(49 - 39, 50)  # the last 39 answers and the step they predict: 40 positions
    expected = torch.sigmoid(step_predictions(model, skills[:, window], correct[:, window]))[0, -1]
    assert tracer.probability_vector("bob")[skills[0, 49]] == pytest.approx(expected.item(), abs=1e-5)


def test_sakt_refuses_windows_longer_than_its_positions():
    model = tiny_model("SAKT")
    skills, correct = random_sequences(1, 41, seed=6)
    with pytest.raises(InputError, match="window of 41 steps is longer than model.max_length 40"):
        model(skills, correct)


def test_dkvmn_memory_update_and_prediction_by_hand():
    """Two steps of DKVMN computed with plain numpy from the parameters: erase/add write, then the read."""
    torch.manual_seed(0)
    net = DKVMNNet(num_skills=3, memory_size=2, key_dim=2, value_dim=3, summary_dim=2).eval()
    p = {name: value.detach().double().numpy() for name, value in net.state_dict().items()}

    def sigmoid(x):
        return 1 / (1 + np.exp(-x))

    def weight(skill):
        scores = p["key_memory"] @ p["key_embedding.weight"][skill]
        return np.exp(scores) / np.exp(scores).sum()

    memory = p["initial_value"].copy()  # (slots, value_dim)
    skill0, answer0, skill1 = 2, 1, 0
    v = p["value_embedding.weight"][skill0 + 3 * answer0]
    e = sigmoid(p["erase.weight"] @ v + p["erase.bias"])
    a = np.tanh(p["add.weight"] @ v + p["add.bias"])
    w = weight(skill0)
    for i in range(2):  # M(i) <- M(i) * (1 - w(i) e) + w(i) a, slot by slot
        memory[i] = memory[i] * (1 - w[i] * e) + w[i] * a
    with torch.no_grad():
        written = net.write(net.initial_memory(1), torch.tensor([skill0]), torch.tensor([answer0]))
    np.testing.assert_allclose(written[0].double().numpy(), memory, rtol=1e-6)

    read = weight(skill1) @ memory
    summary = np.tanh(p["summary.weight"] @ np.r_[read, p["key_embedding.weight"][skill1]] + p["summary.bias"])
    logit = p["head.weight"] @ summary + p["head.bias"]
    with torch.no_grad():
        out = net(torch.tensor([[skill0, skill1]]), torch.tensor([[answer0, 0]]))
    assert out[0, 1].item() == pytest.approx(logit.item(), rel=1e-5)


def akt_weights_by_hand(scores: np.ndarray, theta: float, strict: bool) -> np.ndarray:
    """alpha(t, tau) = softmax_tau(exp(-theta * sqrt(d(t, tau))) * s(t, tau)) over allowed tau, with
    d(t, tau) = |t - tau| * sum_{tau < t' <= t, t' allowed} gamma(t, t') and gamma = softmax of s."""
    n = len(scores)
    alpha = np.zeros_like(scores)
    for t in range(n):
        keys = list(range(t if strict else t + 1))
        if not keys:
            continue
        gamma = {j: math.exp(scores[t, j]) / sum(math.exp(scores[t, i]) for i in keys) for j in keys}
        decayed = {}
        for tau in keys:
            d = abs(t - tau) * sum(gamma[j] for j in keys if j > tau)
            decayed[tau] = math.exp(-theta * math.sqrt(d)) * scores[t, tau]
        total = sum(math.exp(x) for x in decayed.values())
        for tau in keys:
            alpha[t, tau] = math.exp(decayed[tau]) / total
    return alpha


@pytest.mark.parametrize("strict", [False, True])
def test_akt_decayed_attention_weights_by_hand(strict):
    scores = np.array([[0.5, 0, 0, 0], [1.0, -0.3, 0, 0], [0.2, 0.8, -1.0, 0], [1.5, 0.1, 0.4, 0.9]])
    length = len(scores)
    allowed = torch.ones(length, length, dtype=torch.bool).tril(-1 if strict else 0)
    thetas = torch.tensor([0.7, 2.0])
    two_heads = torch.tensor(scores, dtype=torch.float64).expand(1, 2, length, length)
    weights = monotonic_attention_weights(two_heads, allowed, thetas.double())
    for head, theta in enumerate(thetas.tolist()):
        np.testing.assert_allclose(weights[0, head].numpy(), akt_weights_by_hand(scores, theta, strict), atol=1e-12)
    if strict:
        assert weights[0, :, 0].abs().sum() == 0  # step 0 has nothing before it: zero attention
    # The decay is real: without it (theta = 0) the weights are a plain softmax, and differ.
    plain = monotonic_attention_weights(two_heads, allowed, torch.zeros(2, dtype=torch.float64))
    assert not torch.allclose(plain, weights)


CLI_OPTIONS = {
    "DKVMN": ["--model.memory_size", "4", "--model.key_dim", "6", "--model.value_dim", "8", "--model.summary_dim", "5"],
    "SAKT": ["--model.embed_size", "8", "--model.num_heads", "2", "--model.max_length", "16"],
    "AKT": ["--model.d_model", "8", "--model.num_heads", "2", "--model.d_ff", "16", "--model.final_fc_dim", "8"],
}


@pytest.mark.slow  # end to end through the CLI (CI runs it; `make test-fast` skips it)
@pytest.mark.parametrize("name", NEW_MODELS)
def test_fit_predict_and_checkpoint_round_trip_from_the_cli(name, tmp_path):
    seed_everything(0)
    common = [
        "--config", "dkt_synthetic", "--model", f"kt.tracing.{name}", *CLI_OPTIONS[name],
        "--data.num_students", "60", "--data.steps_per_student", "10", "--data.seq_len", "4",
        "--data.eval_seq_len", "12", "--trainer.logger.init_args.save_dir", str(tmp_path / "logs"),
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
    ]
    fit = run_cli(["fit", *common, "--trainer.max_epochs", "1"])
    ckpt = fit.trainer.checkpoint_callback.last_model_path
    out = tmp_path / "predictions.csv"
    run_cli(["predict", *common, "--ckpt_path", ckpt, "--prediction_writer.output_path", str(out)])
    frame = pd.read_csv(out, dtype={"student": str, "skill_id": str})

    model = kt.load_checkpoint(ckpt)
    assert type(model).__name__ == name and model.hparams.data_state == fit.model.hparams.data_state
    for key, value in fit.model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    index = {skill: i for i, skill in enumerate(model.vocabulary.skills)}
    for _, student in list(frame.groupby("student"))[:3]:  # every student is one window of 10 steps
        skills = torch.tensor([[index[s] for s in student["skill_id"]]])
        correct = torch.tensor([student["correct"].tolist()])
        expected = torch.sigmoid(step_predictions(model, skills, correct))[0].numpy()
        assert np.isnan(student["p_correct"].iloc[0])
        np.testing.assert_allclose(student["p_correct"].iloc[1:], expected, rtol=1e-5)

    tracer = KnowledgeTracer.from_checkpoint(ckpt)  # the knowledge state from the checkpoint alone
    tracer.add("carol", model.vocabulary.skills[0], 1)
    assert tracer.probability_vector("carol").shape == (len(model.vocabulary),)


def test_model_options_have_the_papers_defaults():
    assert DKVMN(num_skills=3).hparams.memory_size == 50 and DKVMN(num_skills=3).net.key_memory.shape == (50, 50)
    assert DKVMN(num_skills=3).net.initial_value.shape == (50, 200)
    akt = AKT(num_skills=3)
    assert (akt.hparams.d_model, akt.hparams.num_heads, akt.hparams.num_blocks) == (256, 8, 1)
    assert akt.net.knowledge_encoder[0].attention.raw_theta.shape == (8,)
    assert SAKT(num_skills=3).net.attention.num_heads == 5


def test_every_model_is_in_the_registry():
    from kt.core.checkpoints import model_registry

    assert {"DKT", "DKVMN", "SAKT", "AKT"} <= set(model_registry())



def test_dkt_keeps_its_checkpoint_keys():
    """DKT checkpoints written before the shared base class still load: same state_dict keys and hyperparameters."""
    model = DKT(num_skills=4, emb_size=3, hidden_size=5)
    assert sorted(model.state_dict()) == [
        "net.embedding.weight", "net.head.bias", "net.head.weight", "net.rnn.bias_hh_l0", "net.rnn.bias_ih_l0",
        "net.rnn.weight_hh_l0", "net.rnn.weight_ih_l0",
    ]
    assert list(model.hparams) == [
        "num_skills", "emb_size", "hidden_size", "num_layers", "dropout", "backbone", "xlstm_blocks", "slstm_at",
        "xlstm_heads", "lambda_r", "lambda_w1", "lambda_w2", "score_positions", "optimizer", "lr", "weight_decay",
        "momentum", "scheduler", "data_state",
    ]
