"""Research models: the xLSTM backbone, DKT+ regularisers, multi-skill problems (expand / join,
first-position scoring)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch import seed_everything

from kt.core.errors import InputError
from kt.tracing import DKT
from kt.tracing.data.formats import parse_skill_builder
from kt.tracing.data.sequences import SkillVocabulary, collate_windows, make_windows
from kt.tracing.knowledge_state import KnowledgeTracer
from kt.tracing.nets import xlstm
from kt.tracing.nets.xlstm import MLSTMBlock, SLSTMBlock, XLSTMStack, mlstm_chunk

SKILLS = ["3", "7", "12", "40", "41"]


def xlstm_dkt(**kwargs) -> DKT:
    seed_everything(0)
    state = {"skills": SKILLS, "names": [""] * len(SKILLS)}
    args = dict(emb_size=6, hidden_size=8, backbone="xlstm", xlstm_blocks=3, slstm_at=[1], xlstm_heads=2)
    return DKT(data_state=state, **(args | kwargs)).eval()


def test_xlstm_stack_layout_defaults_to_seven_mlstm_then_one_slstm():
    stack = XLSTMStack(6, 8, num_heads=2)
    assert [type(b) for b in stack.blocks] == [MLSTMBlock] * 7 + [SLSTMBlock]
    assert [type(b) for b in XLSTMStack(6, 8, 4, slstm_at=[0, 2], num_heads=2).blocks] == [
        SLSTMBlock,
        MLSTMBlock,
        SLSTMBlock,
        MLSTMBlock,
    ]
    with pytest.raises(ValueError, match="slstm_at"):
        XLSTMStack(6, 8, 4, slstm_at=[4])


def test_mlstm_parallel_chunk_equals_the_recurrence():
    """The chunk's parallel form against the paper's recurrent equations, written out step by step."""
    torch.manual_seed(0)
    b, h, t, d = 2, 3, 9, 4
    q, k, v = torch.randn(3, b, h, t, d).unbind(0)
    i_pre, f_pre = (2 * torch.randn(2, b, h, t)).unbind(0)
    c, n, m = torch.randn(b, h, d, d), torch.randn(b, h, d), torch.randn(b, h)
    out, (c_end, n_end, m_end) = mlstm_chunk(q, k, v, i_pre, f_pre, (c, n, m))
    for s in range(t):
        log_f = F.logsigmoid(f_pre[..., s])
        m_new = torch.maximum(log_f + m, i_pre[..., s])
        i_gate, f_gate = torch.exp(i_pre[..., s] - m_new), torch.exp(log_f + m - m_new)
        c = f_gate[..., None, None] * c + i_gate[..., None, None] * v[:, :, s, :, None] * k[:, :, s, None, :]
        n = f_gate[..., None] * n + i_gate[..., None] * k[:, :, s]
        m = m_new
        num = (c @ q[:, :, s, :, None]).squeeze(-1)
        den = torch.maximum((n * q[:, :, s]).sum(-1).abs(), torch.exp(-m))
        torch.testing.assert_close(out[:, :, s], num / den[..., None], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close((c_end, n_end, m_end), (c, n, m), atol=1e-5, rtol=1e-4)


def reference_mlstm_block(block: MLSTMBlock, x: torch.Tensor) -> torch.Tensor:
    """The mLSTM block from a fresh state with its cell as the paper's recurrence, one step at a time."""
    b, t, _ = x.shape
    heads, d, kernel = block.num_heads, block.head_dim, block.kernel
    xm, z = block.up(block.norm(x)).chunk(2, dim=-1)
    padded = F.pad(xm, (0, 0, kernel - 1, 0))  # causal: step t sees inputs t-3..t
    conv = sum(padded[:, j : j + t] * block.conv.weight[:, 0, j] for j in range(kernel)) + block.conv.bias
    xc = F.silu(conv)
    q, k = (u.view(b, t, heads, d) for u in block.qk(xc).chunk(2, dim=-1))
    k = k / d**0.5
    v = block.v(xm).view(b, t, heads, d)
    i_pre, f_pre = block.gates(xc).chunk(2, dim=-1)  # (B, T, H)
    c, n, m = torch.zeros(b, heads, d, d), torch.zeros(b, heads, d), torch.zeros(b, heads)
    hs = []
    for s in range(t):
        log_f = F.logsigmoid(f_pre[:, s])
        m_new = torch.maximum(log_f + m, i_pre[:, s])
        i_gate, f_gate = torch.exp(i_pre[:, s] - m_new), torch.exp(log_f + m - m_new)
        c = f_gate[..., None, None] * c + i_gate[..., None, None] * v[:, s, :, :, None] * k[:, s, :, None, :]
        n = f_gate[..., None] * n + i_gate[..., None] * k[:, s]
        m = m_new
        den = torch.maximum((n * q[:, s]).sum(-1).abs(), torch.exp(-m))
        hs.append((c @ q[:, s, :, :, None]).squeeze(-1) / den[..., None])
    h = torch.stack(hs, dim=1).reshape(b * t, -1)
    h = F.group_norm(h, heads, block.head_norm.weight, block.head_norm.bias).view(b, t, -1) + block.skip * xc
    return x + block.down(h * F.silu(z))


def reference_slstm_block(block: SLSTMBlock, x: torch.Tensor) -> torch.Tensor:
    """The sLSTM block from a fresh state, its recurrence one step at a time (each head its own matrix)."""
    b, t, dim = x.shape
    heads, hd = block.num_heads, block.head_dim
    wx = block.w(block.norm(x)).view(b, t, heads, 4, hd)  # each head's columns: z, i, f, o
    h, c, n, m = torch.zeros(4, b, heads, hd).unbind(0)
    hs = []
    for s in range(t):
        pre = wx[:, s] + torch.stack([h[:, j] @ block.r[j] for j in range(heads)], dim=1).view(b, heads, 4, hd)
        z_pre, i_pre, f_pre, o_pre = pre.unbind(2)
        log_f = F.logsigmoid(f_pre)
        m_new = torch.maximum(log_f + m, i_pre)
        i_gate, f_gate = torch.exp(i_pre - m_new), torch.exp(log_f + m - m_new)
        c = f_gate * c + i_gate * torch.tanh(z_pre)
        n = f_gate * n + i_gate
        h = torch.sigmoid(o_pre) * c / n
        m = m_new
        hs.append(h.reshape(b, dim))
    h = F.group_norm(torch.stack(hs, dim=1).reshape(b * t, dim), heads, block.head_norm.weight, block.head_norm.bias)
    y = x + h.view(b, t, dim)
    gate, up = block.ff_up(block.ff_norm(y)).chunk(2, dim=-1)
    return y + block.ff_down(F.gelu(gate) * up)


def test_xlstm_blocks_equal_a_step_by_step_reference_of_the_paper(monkeypatch):
    """The optimised blocks (chunked mLSTM, fused sLSTM steps, padding skipped) against plain recurrences."""
    torch.manual_seed(0)
    stack = XLSTMStack(12, 12, num_blocks=2, slstm_at=[1], num_heads=3, chunk_size=5)
    with torch.no_grad():
        for p in stack.parameters():  # away from the initialisation (zero gate weights, unit norms)
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(4, 13, 12)
    mlstm, slstm = stack.blocks
    torch.testing.assert_close(mlstm(x)[0], reference_mlstm_block(mlstm, x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(slstm(x)[0], reference_slstm_block(slstm, x), atol=1e-5, rtol=1e-5)

    # Right-padded rows: the real steps' outputs and the gradients from them do not change, whether the
    # per-step layers run on the packed real steps (much padding) or on the padded layout (little).
    lengths = torch.tensor([3, 13, 1, 7])
    real = torch.arange(13) < lengths[:, None]
    x.requires_grad_(True)
    full, _ = stack(x)
    for pack_below in (1.0, 0.0):
        monkeypatch.setattr(xlstm, "PACK_BELOW", pack_below)
        skipped, _ = stack(x, lengths=lengths)
        torch.testing.assert_close(skipped[real], full[real], atol=1e-5, rtol=1e-5)
        assert not skipped[~real].any()
        grads = [torch.autograd.grad(out[real].square().sum(), [x, *stack.parameters()], retain_graph=True)
                 for out in (full, skipped)]
        torch.testing.assert_close(grads[1], grads[0], atol=1e-5, rtol=1e-4)


def test_head_norm_equals_group_norm():
    torch.manual_seed(0)
    norm = torch.nn.GroupNorm(4, 12)
    with torch.no_grad():
        norm.weight.normal_(), norm.bias.normal_()
    x = 3 * torch.randn(10, 12) + 1
    torch.testing.assert_close(xlstm.head_norm(norm, x), norm(x), atol=1e-5, rtol=1e-5)


def test_xlstm_knowledge_tracer_equals_the_whole_sequence():
    dkt = xlstm_dkt()
    for block in dkt.net.rnn.blocks:  # several mLSTM chunks in the whole sequence
        block.chunk_size = 7
    rng = np.random.default_rng(0)
    skills, answers = rng.integers(0, len(SKILLS), 40), rng.integers(0, 2, 40)
    with torch.no_grad():
        full = torch.sigmoid(dkt(torch.from_numpy(skills)[None], torch.from_numpy(answers)[None]))[0].numpy()
    tracer = KnowledgeTracer(dkt)
    for t, (skill, answer) in enumerate(zip(skills, answers)):
        tracer.add("alice", SKILLS[skill], int(answer))
        tracer.add("bob", SKILLS[(skill + 2) % len(SKILLS)], 0)
        np.testing.assert_allclose(tracer.probability_vector("alice"), full[t], atol=1e-5, rtol=0)


def test_xlstm_is_causal_and_trains():
    dkt = xlstm_dkt().train()
    skills, answers = torch.randint(0, 5, (3, 12)), torch.randint(0, 2, (3, 12))
    dkt.eval()
    with torch.no_grad():
        base = dkt(skills, answers)
        changed = answers.clone()
        changed[:, 8:] = 1 - changed[:, 8:]
        # Outputs before step 8 cannot see the answers from step 8 on.
        torch.testing.assert_close(dkt(skills, changed)[:, :8], base[:, :8])
    batch = {"skills": skills, "correct": answers, "mask": torch.ones(3, 12, dtype=torch.bool)}
    dkt.train()
    loss = dkt.training_step(batch, 0)
    loss.backward()
    # Every parameter of the stack gets a gradient, and it is not zero: each block is part of the loss.
    for name, p in dkt.net.rnn.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


def tiny_batch() -> dict:
    skills = torch.tensor([[0, 1, 1, 2], [2, 0, 0, 0]])
    correct = torch.tensor([[1, 0, 1, 1], [0, 1, 0, 0]])
    mask = torch.tensor([[True, True, True, True], [True, True, False, False]])
    return {"skills": skills, "correct": correct, "mask": mask}


def test_dkt_plus_with_zero_lambdas_is_the_plain_loss():
    batch = tiny_batch()
    plain = DKT(num_skills=3, emb_size=4, hidden_size=5)
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 3)
    plain.forward = lambda s, c: logits
    loss = plain.training_step(batch, 0)
    expected = F.binary_cross_entropy_with_logits(
        torch.stack([logits[0, 0, 1], logits[0, 1, 1], logits[0, 2, 2], logits[1, 0, 0]]),
        torch.tensor([0.0, 1.0, 1.0, 1.0]),
    )
    torch.testing.assert_close(loss, expected)


def test_dkt_plus_terms_match_a_hand_computation():
    batch = tiny_batch()
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 3)
    model = DKT(num_skills=3, lambda_r=0.5, lambda_w1=0.25, lambda_w2=2.0)
    terms = model.dkt_plus_terms(logits, batch)
    # Reconstruction: the output after step t, on step t's own skill and answer (6 real steps).
    rec_logits = torch.stack(
        [logits[0, 0, 0], logits[0, 1, 1], logits[0, 2, 1], logits[0, 3, 2], logits[1, 0, 2], logits[1, 1, 0]]
    )
    rec = F.binary_cross_entropy_with_logits(rec_logits, torch.tensor([1.0, 0, 1, 1, 0, 1]))
    torch.testing.assert_close(terms["reconstruction"], rec)
    # Waviness: 3 transitions in student 0, 1 in student 1, each over 3 skills.
    y = torch.sigmoid(logits)
    diffs = torch.cat([y[0, 1:] - y[0, :-1], y[1, 1:2] - y[1, 0:1]])
    torch.testing.assert_close(terms["waviness_l1"], diffs.abs().sum() / (4 * 3))
    torch.testing.assert_close(terms["waviness_l2"], diffs.pow(2).sum() / (4 * 3))
    model.forward = lambda s, c: logits
    plain = DKT(num_skills=3)
    plain.forward = lambda s, c: logits
    total = plain.training_step(batch, 0) + 0.5 * rec + 0.25 * terms["waviness_l1"] + 2.0 * terms["waviness_l2"]
    torch.testing.assert_close(model.training_step(batch, 0), total)


def test_multi_skill_join_makes_one_interaction_per_problem(raw_csv):
    data, names, _ = parse_skill_builder(raw_csv, multi_skill="join")
    # Student 100: orders 10, 15, 40 (skills 11 and 12 -> one token "11_12").
    assert data.skills[0].tolist() == ["10", "12", "11_12"]
    assert data.correct[0].tolist() == [0, 0, 1]
    assert data.skills[1].tolist() == ["10", "11"]
    assert names["11_12"] == "Subtraction & Fractions"
    expand, _, _ = parse_skill_builder(raw_csv)
    assert expand.problems[0].tolist() == [10, 15, 40, 40]
    with pytest.raises(InputError, match="multi_skill 'both'"):
        parse_skill_builder(raw_csv, multi_skill="both")


def test_first_position_scoring_skips_the_repeated_rows(raw_csv):
    data, _, _ = parse_skill_builder(raw_csv)
    vocab = SkillVocabulary.build(data)
    batch = collate_windows(make_windows(data, vocab, seq_len=2))
    # Student 100's windows: steps 0-2 and 2-3; step 3 is the second row of problem 40.
    assert batch["first"].tolist() == [[True, True, True], [True, False, False], [True, True, False]]
    model = DKT(num_skills=len(vocab), score_positions="first")
    logit, target = model._scored(batch, positions="first")
    logit_all, _ = model._scored(batch, positions="all")
    assert len(logit_all) == 4 and len(logit) == 3  # of 4 scored steps, one repeats problem 40
    no_problems = collate_windows(make_windows(data.__class__(data.students, data.skills, data.correct), vocab, 2))
    with pytest.raises(InputError, match="score_positions: first needs problem ids"):
        model._scored(no_problems, positions="first")


def test_xlstm_dkt_plus_fits_and_its_checkpoint_feeds_the_knowledge_tracer(tmp_path):
    from lightning.pytorch import Trainer

    from kt.tracing import SyntheticKTDataModule

    seed_everything(0)
    data = SyntheticKTDataModule(num_students=60, num_exercises=5, steps_per_student=10, seq_len=6, batch_size=16)
    model = DKT(
        emb_size=8,
        hidden_size=8,
        backbone="xlstm",
        xlstm_blocks=2,
        xlstm_heads=2,
        lambda_r=0.1,
        lambda_w1=0.003,
        lambda_w2=3.0,
        lr=1e-2,
    )
    trainer = Trainer(
        max_epochs=2, default_root_dir=tmp_path, logger=False, enable_progress_bar=False, enable_model_summary=False
    )
    trainer.fit(model, datamodule=data)
    logged = trainer.logged_metrics
    for term in ("reconstruction", "waviness_l1", "waviness_l2"):
        assert torch.isfinite(logged[f"train/{term}_epoch"])
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    tracer = KnowledgeTracer.from_checkpoint(str(path))
    assert tracer.model.hparams.backbone == "xlstm" and tracer.model.hparams.lambda_w2 == 3.0
    skills = tracer.vocabulary.skills
    for skill, answer in [(skills[0], 1), (skills[2], 0), (skills[1], 1)]:
        tracer.add("s", skill, answer)
    index = torch.tensor([[tracer.skill_index(s) for s in (skills[0], skills[2], skills[1])]])
    with torch.no_grad():
        full = torch.sigmoid(model.eval()(index, torch.tensor([[1, 0, 1]])))[0, -1].numpy()
    np.testing.assert_allclose(tracer.probability_vector("s"), full, atol=1e-5, rtol=0)
