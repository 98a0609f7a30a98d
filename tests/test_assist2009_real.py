"""Checks on the real ASSISTments 2009 files in $KT_DATA_DIR/assist2009 (skipped without them)."""

from __future__ import annotations

import pytest
from lightning.pytorch import Trainer, seed_everything

from kt.core.download import sha256sum
from kt.tracing import DKT, Assist2009DataModule
from kt.tracing.data.assist2009 import DKVMN_SHA256
from kt.tracing.data.formats import read_three_line


@pytest.fixture
def assist_dir(real_data):
    return real_data("assist2009", "assist2009_updated_train.csv", "assist2009_updated_train1.csv",
                     "assist2009_updated_valid1.csv")


def test_dkvmn_train_file_is_the_published_one(assist_dir):
    name = "assist2009_updated_train.csv"
    assert sha256sum(assist_dir / name) == DKVMN_SHA256[name]
    data = read_three_line(assist_dir / name)
    assert len(data) == 2921
    assert len({s for seq in data.skills for s in seq}) == 110


def test_folds_split_the_training_students(assist_dir):
    train, valid = read_three_line(assist_dir / "assist2009_updated_train1.csv"), read_three_line(
        assist_dir / "assist2009_updated_valid1.csv"
    )
    assert len(train) + len(valid) == 2921


@pytest.mark.slow  # trains on the real fold
def test_short_dkt_run_learns_on_fold_1(assist_dir):
    seed_everything(0)
    dm = Assist2009DataModule(
        data_dir=str(assist_dir), train_file="assist2009_updated_train1.csv", val_file="assist2009_updated_valid1.csv",
        test_file="assist2009_updated_valid1.csv", download=False, seq_len=100, batch_size=64,
    )
    model = DKT(hidden_size=64, emb_size=64, lr=3e-3)
    trainer = Trainer(max_epochs=1, limit_train_batches=20, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, dm)
    assert model.hparams.num_skills == 110
    assert model.vocabulary.names[model.vocabulary.skills.index("31")].strip() == "Circumference"
    assert trainer.callback_metrics["val/auc"].item() > 0.70
