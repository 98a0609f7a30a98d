"""Length-bucketed batches: every window once per epoch, orders that depend on (seed, epoch) only, equal and
disjoint DDP shares, mid-epoch resume, per-answer loss weights, predictions in input order."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from helpers import write_three_line

from kt.cli import run_cli
from kt.core.sampling import BucketSampler, ResumableLoader
from kt.tracing.data.sequences import WindowDataset, collate_windows, make_windows

# Lengths from 1 to 60, uneven counts: the shapes of real histories (many short, a few long).
LENGTHS = [int(n) for n in np.random.default_rng(0).geometric(0.08, size=203).clip(1, 60)]


def flat(batches: list[list[int]]) -> list[int]:
    return [i for batch in batches for i in batch]


@pytest.mark.parametrize("size", [dict(batch_size=8), dict(max_tokens=100)])
@pytest.mark.parametrize("shuffle", [True, False])
def test_every_sample_exactly_once_per_epoch(size, shuffle):
    sampler = BucketSampler(LENGTHS, shuffle=shuffle, seed=1, **size)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert sorted(flat(batches)) == list(range(len(LENGTHS)))
        assert len(batches) == len(sampler)
        if "batch_size" in size:
            assert sorted(len(b) for b in batches)[1:] == [8] * (len(batches) - 1)  # all full but one
        else:  # within the budget, padding included, unless a single sample is longer
            assert all(len(b) * max(LENGTHS[i] for i in b) <= 100 or len(b) == 1 for b in batches)


def test_batches_hold_similar_lengths():
    sampler = BucketSampler(LENGTHS, batch_size=8, seed=1)
    batches = list(sampler)
    real = sum(LENGTHS)
    computed = sum(len(b) * max(LENGTHS[i] for i in b) for b in batches)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(LENGTHS))
    random_computed = sum(8 * max(LENGTHS[i] for i in order[k : k + 8]) for k in range(0, len(order), 8))
    assert real / computed > 0.85 > real / random_computed


def test_order_depends_on_seed_and_epoch_only():
    a, b = BucketSampler(LENGTHS, batch_size=8, seed=3), BucketSampler(LENGTHS, batch_size=8, seed=3)
    torch.manual_seed(0)
    first = list(a)
    torch.manual_seed(1)  # the global generator plays no part
    assert list(b) == first
    a.set_epoch(1)
    second = list(a)
    assert second != first and sorted(flat(second)) == sorted(flat(first))
    # Not only the order of the batches changes: their contents too (ties and jitter broken afresh).
    assert {tuple(sorted(x)) for x in second} != {tuple(sorted(x)) for x in first}
    assert list(BucketSampler(LENGTHS, batch_size=8, seed=4)) != first
    # Evaluation: sorted by length, the same every epoch.
    evaluation = BucketSampler(LENGTHS, max_tokens=100, shuffle=False)
    once = list(evaluation)
    evaluation.set_epoch(5)
    assert list(evaluation) == once
    assert [LENGTHS[i] for i in flat(once)] == sorted(LENGTHS)


@pytest.mark.parametrize("size", [dict(batch_size=8), dict(max_tokens=100)])
def test_ddp_shares(size):
    every = BucketSampler(LENGTHS, seed=2, num_replicas=1, rank=0, pad=False, **size).all_batches()
    # Training: padded to equal numbers of batches (equal optimizer steps); the real batches are split
    # disjointly, and the padding repeats whole batches of the epoch.
    shares = [list(BucketSampler(LENGTHS, seed=2, num_replicas=3, rank=r, **size)) for r in range(3)]
    assert len({len(s) for s in shares}) == 1
    assert all(len(s) == len(BucketSampler(LENGTHS, seed=2, num_replicas=3, rank=0, **size)) for s in shares)
    dealt = [batch for k in range(len(shares[0])) for s in shares for batch in s[k : k + 1]]
    assert dealt[: len(every)] == every and all(b in every for b in dealt[len(every) :])
    # Evaluation: no padding, every batch exactly once, shares differ by at most one batch.
    shares = [list(BucketSampler(LENGTHS, seed=2, num_replicas=3, rank=r, pad=False, **size)) for r in range(3)]
    assert sorted(flat([b for s in shares for b in s])) == list(range(len(LENGTHS)))
    assert max(map(len, shares)) - min(map(len, shares)) <= 1
    assert [len(s) for s in shares] == [
        len(BucketSampler(LENGTHS, seed=2, num_replicas=3, rank=r, pad=False, **size)) for r in range(3)
    ]


def window_dataset() -> WindowDataset:
    from kt.tracing.data.sequences import Interactions, SkillVocabulary

    rng = np.random.default_rng(0)
    data = Interactions(
        [str(i) for i in range(len(LENGTHS))],
        [rng.integers(0, 5, n).astype(str) for n in LENGTHS],
        [rng.integers(0, 2, n) for n in LENGTHS],
    )
    vocab = SkillVocabulary.build(data)
    return WindowDataset(make_windows(data, vocab, seq_len=20))


def test_resume_skips_exactly_the_trained_batches():
    dataset = window_dataset()

    def loader() -> ResumableLoader:
        sampler = BucketSampler(dataset.lengths(), batch_size=8, seed=5)
        return ResumableLoader(dataset, batch_size=None, sampler=sampler, collate_fn=collate_windows,
                               progress=lambda: 7)

    uninterrupted = loader()
    uninterrupted.sampler.set_epoch(2)
    expected = [b["window"].tolist() for b in uninterrupted]
    killed = loader()
    killed.sampler.set_epoch(2)
    state = killed.state_dict()
    assert state == {"epoch": 2, "batches": 7}
    resumed = loader()
    resumed.load_state_dict(state)
    assert [b["window"].tolist() for b in resumed] == expected[7:]
    # The skip holds for one iteration only.
    assert [b["window"].tolist() for b in resumed] == expected


def test_loss_weighs_every_answer_of_the_epoch_the_same():
    from kt.tracing import DKT

    dataset = window_dataset()
    lengths = dataset.lengths()
    batches = list(BucketSampler(lengths, batch_size=8, seed=0))
    answers = sum(n - 1 for n in lengths) / len(batches)
    model = DKT(num_skills=5, hidden_size=8, emb_size=8)
    model.log = model.log_dict = lambda *a, **k: None
    model.eval()  # no dropout: the loss is a function of the weights alone
    total = 0.0
    for indices in batches:
        batch = collate_windows(dataset[indices], answers_per_batch=answers)
        loss = model.training_step(batch, 0)
        # Independently: the sum of the BCE of every scored answer of the batch, over the epoch's mean count.
        logits = model.net(batch["skills"], batch["correct"])[0]
        per_step = F.binary_cross_entropy_with_logits(
            logits[:, :-1].gather(-1, batch["skills"][:, 1:, None])[..., 0],
            batch["correct"][:, 1:].float(), reduction="none",
        )
        expected = (per_step * batch["mask"][:, 1:]).sum() / answers
        assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
        total += loss.item()
    # Over the epoch: the mean loss per answer times the number of batches, as a batch mean would give with
    # batches of equal counts.
    assert total / len(batches) == pytest.approx(sum(
        F.binary_cross_entropy_with_logits(*_scored(model, dataset[i]), reduction="sum").item() for i in batches
    ) / sum(n - 1 for n in lengths), rel=1e-5)


def _scored(model, windows):
    logit, target = model._scored(collate_windows(windows))
    return logit, target


def tiny_assist(tmp_path: Path) -> list[str]:
    rng = np.random.default_rng(1)
    sequences = [
        (rng.integers(1, 9, n).tolist(), rng.integers(0, 2, n).tolist())
        for n in rng.geometric(0.1, size=90).clip(1, 70)
    ]
    write_three_line(tmp_path / "train.csv", sequences[:60])
    write_three_line(tmp_path / "test.csv", sequences[60:])
    return [
        "--data", "kt.tracing.Assist2009DataModule", "--data.data_dir", str(tmp_path), "--data.download", "false",
        "--data.train_file", "train.csv", "--data.test_file", "test.csv", "--data.seq_len", "10",
        "--data.eval_seq_len", "100", "--data.batch_size", "4", "--data.eval_tokens", "60",
        "--model", "kt.tracing.DKT", "--model.hidden_size", "8", "--model.emb_size", "8",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--trainer.logger.init_args.save_dir", str(tmp_path / "logs"),
    ]


@pytest.mark.slow  # end to end through the CLI
def test_predictions_in_input_order_and_metrics_as_without_bucketing(tmp_path):
    args = tiny_assist(tmp_path)
    fit = run_cli(["fit", *args, "--trainer.max_epochs", "1"])
    ckpt = fit.trainer.checkpoint_callback.best_model_path
    frames = {}
    for bucket in ("true", "false"):
        out = tmp_path / f"predictions_{bucket}.csv"
        run_cli(["predict", *args, "--data.bucket", bucket, "--ckpt_path", ckpt,
                 "--prediction_writer.output_path", str(out)])
        frames[bucket] = pd.read_csv(out, dtype={"student": str, "skill_id": str})
    bucketed, plain = frames["true"], frames["false"]
    # Input order: students as in the file, each student's steps in order.
    students = [s for s in bucketed["student"].drop_duplicates()]
    assert students == sorted(students, key=int)
    assert (bucketed.groupby("student", sort=False)["step"].apply(lambda s: (s.diff().dropna() == 1).all())).all()
    # The same rows as without bucketing, and the same probabilities (padding changes nothing).
    columns = ["student", "step", "skill_id", "correct"]
    assert bucketed[columns].equals(plain[columns])
    np.testing.assert_allclose(bucketed["p_correct"], plain["p_correct"], rtol=1e-5, atol=1e-6)
    # Metrics on real steps only: the same AUC with and without bucketing (different padding).
    aucs = [
        run_cli(["validate", *args, "--data.bucket", bucket, "--ckpt_path", ckpt]).trainer.callback_metrics["val/auc"]
        for bucket in ("true", "false")
    ]
    assert aucs[0].item() == pytest.approx(aucs[1].item(), abs=1e-6)


@pytest.mark.parametrize("backbone", ["lstm", "gru"])
def test_packed_sequences_give_the_padded_outputs_on_real_steps(backbone):
    from kt.tracing.nets.dkt import DKTNet

    torch.manual_seed(0)
    net = DKTNet(5, 8, 8, num_layers=2, backbone=backbone).eval()
    batch = collate_windows(window_dataset()[[0, 1, 2, 3, 4, 5]])
    padded, _ = net(batch["skills"], batch["correct"])
    packed, _ = net(batch["skills"], batch["correct"], lengths=batch["mask"].sum(1))
    mask = batch["mask"]
    assert not mask.all()  # there is padding to skip
    torch.testing.assert_close(packed[mask], padded[mask], rtol=1e-5, atol=1e-6)
