from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import auc_by_ranks
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import LambdaCallback

from kt.core.errors import InputError
from kt.tracing import DKT, SyntheticKTDataModule
from kt.tracing.knowledge_state import KnowledgeTracer


def tiny_data(**kwargs) -> SyntheticKTDataModule:
    options = dict(num_students=120, num_exercises=8, steps_per_student=12, seq_len=5, batch_size=16)
    return SyntheticKTDataModule(**(options | kwargs))


def batch_of(dm: SyntheticKTDataModule, stage: str = "val") -> dict:
    dm.setup("fit")
    loader = {"val": dm.val_dataloader, "train": dm.train_dataloader}[stage]()
    return next(iter(loader))


@pytest.mark.parametrize("backbone", ["lstm", "gru"])
def test_loss_and_outputs_ignore_padding(backbone):
    seed_everything(0)
    dm = tiny_data(steps_per_student=7, seq_len=10)
    model = DKT(num_skills=8, emb_size=8, hidden_size=8, backbone=backbone)
    batch = batch_of(dm)
    batch["mask"][::2, 4:] = False  # pretend every other sequence ends after 4 steps
    logit, target = model._scored(batch)
    changed = {k: v.clone() for k, v in batch.items() if torch.is_tensor(v)}
    pad = ~changed["mask"]
    changed["skills"][pad] = 7
    changed["correct"][pad] = 1 - changed["correct"][pad]
    logit2, target2 = model._scored(changed)
    torch.testing.assert_close(logit, logit2)
    torch.testing.assert_close(target, target2)
    assert len(target) == int(batch["mask"][:, 1:].sum())


def test_next_step_alignment():
    model = DKT(num_skills=3, emb_size=4, hidden_size=4)
    skills = torch.tensor([[0, 2, 1]])
    correct = torch.tensor([[1, 0, 1]])
    logits = model(skills, correct)
    logit, answer = model.next_step_logits({"skills": skills, "correct": correct})
    assert logit.tolist() == [[logits[0, 0, 2].item(), logits[0, 1, 1].item()]]
    assert answer.tolist() == [[0, 1]]


def test_logged_auc_and_accuracy_match_an_independent_computation():
    seed_everything(0)
    dm = tiny_data()
    model = DKT(emb_size=8, hidden_size=8)
    trainer = Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False)
    trainer.fit(model, dm)
    logged = trainer.validate(model, dm, verbose=False)[0]
    model.eval()
    scores, labels = [], []
    with torch.no_grad():
        for batch in dm.val_dataloader():
            logit, target = model._scored(batch)
            scores.append(torch.sigmoid(logit).numpy())
            labels.append(target.numpy())
    scores, labels = np.concatenate(scores), np.concatenate(labels)
    assert logged["val/auc"] == pytest.approx(auc_by_ranks(scores, labels), abs=1e-6)
    assert logged["val/acc"] == pytest.approx(((scores >= 0.5) == labels).mean(), abs=1e-6)
    expected_loss = F.binary_cross_entropy(torch.tensor(scores), torch.tensor(labels)).item()
    assert logged["val/loss"] == pytest.approx(expected_loss, rel=1e-4)


def test_checkpoint_round_trip_gives_identical_outputs(tmp_path):
    seed_everything(0)
    dm = tiny_data()
    model = DKT(emb_size=8, hidden_size=8)
    trainer = Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, limit_val_batches=1)
    trainer.fit(model, dm)
    path = tmp_path / "dkt.ckpt"
    trainer.save_checkpoint(path)
    raw = torch.load(path, weights_only=True)  # plain types only: loads without unpickling code
    assert raw["hyper_parameters"]["data_state"]["skills"] == [str(i) for i in range(1, 9)]  # 1-based, as Synthetic-5
    loaded = DKT.load_from_checkpoint(path, map_location="cpu")
    assert loaded.vocabulary.names[0].startswith("exercise 1")
    batch = batch_of(dm)
    model.eval()
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(batch["skills"], batch["correct"]),
                                   loaded(batch["skills"], batch["correct"]), rtol=0, atol=0)
    # The step-by-step API reads the same checkpoint alone.
    tracer = KnowledgeTracer.from_checkpoint(str(path))
    tracer.add("s", "3", 1)
    with torch.no_grad():
        # Skill "3" has index 2: the simulated exercise ids start at 1.
        expected = torch.sigmoid(model(torch.tensor([[2]]), torch.tensor([[1]])))[0, 0].numpy()
    np.testing.assert_allclose(tracer.probability_vector("s"), expected, atol=1e-6)


def test_reference_auc_on_known_cases():
    """The hand-written AUC the tests compare against, on cases worked out by hand."""
    # 3 of the 4 (positive, negative) pairs ranked right; a tie between classes counts one half.
    assert auc_by_ranks(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75
    assert auc_by_ranks(np.array([0.2, 0.5, 0.5, 0.9]), np.array([0, 0, 1, 1])) == 0.875


def test_bf16_mixed_precision_trains_on_cpu():
    seed_everything(0)
    dm = tiny_data()
    model = DKT(emb_size=8, hidden_size=8)
    before = {}  # the weights as training starts (the network is built in setup, from the data's skills)
    keep = LambdaCallback(on_train_start=lambda _, m: before.update({k: v.clone() for k, v in m.state_dict().items()}))
    trainer = Trainer(precision="bf16-mixed", max_epochs=1, limit_train_batches=3, limit_val_batches=1, logger=False,
                      enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                      callbacks=[keep])
    trainer.fit(model, dm)
    # Mixed precision: the weights stay float32 and did train; the network runs in bfloat16 under autocast.
    assert all(v.dtype == torch.float32 for v in model.state_dict().values())
    assert not all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    batch = next(iter(dm.val_dataloader()))
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(batch["skills"], batch["correct"]).dtype == torch.bfloat16
        logit, target = model._scored(batch)
    # The logged AUC is that of the bfloat16 network's outputs on the validation batch.
    scores, labels = torch.sigmoid(logit).numpy(), target.numpy()
    assert trainer.callback_metrics["val/auc"].item() == pytest.approx(auc_by_ranks(scores, labels), abs=1e-6)


def test_eval_seq_len_keeps_whole_sequences_for_evaluation_only():
    dm = tiny_data(steps_per_student=12, seq_len=5, eval_seq_len=50)
    dm.setup("fit")
    train_lengths = {len(w.skills) for w in dm.datasets["train"].windows}
    assert max(train_lengths) == 6  # windows of seq_len + 1 steps, overlapping by one
    for stage in ("val", "test", "predict"):
        assert {len(w.skills) for w in dm.datasets[stage].windows} == {12}, stage
    # Every step but each student's first is still scored exactly once.
    assert sum(int(b["mask"][:, 1:].sum()) for b in dm.val_dataloader()) == 11 * len(dm.datasets["val"].windows)


def test_test_fraction_zero_means_no_test_split():
    """A fit on training and validation students only: setup accepts it, `kt test` says what is missing."""
    data = SyntheticKTDataModule(num_students=30, steps_per_student=6, val_fraction=0.2, test_fraction=0.0)
    data.setup("fit")
    assert (len(data.datasets["train"]), len(data.datasets["val"]), len(data.datasets["test"])) == (24, 6, 0)
    for loader in (data.test_dataloader, data.predict_dataloader):
        with pytest.raises(InputError, match="there is no (test|predict) split \\(test_fraction is 0"):
            loader()
