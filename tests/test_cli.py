"""`kt` end to end on tiny simulated data: fit, then validate/test/predict from the written checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import auc_by_ranks, tiny_dkt_args, write_three_line

from kt.cli import main, run_cli
from kt.tracing import DKT

TINY = [*tiny_dkt_args(students=60, steps=10), "--data.init_args.seq_len", "4"]


def test_fit_then_validate_test_predict_from_checkpoint(tmp_path):
    logs = ["--trainer.logger.init_args.save_dir", str(tmp_path / "logs")]
    fit = run_cli(["fit", *TINY, *logs, "--trainer.max_epochs", "2"])
    best = fit.trainer.checkpoint_callback.best_model_path
    assert Path(best).is_file() and (Path(best).parent / "last.ckpt").is_file()
    assert fit.trainer.checkpoint_callback.monitor == "val/auc" and fit.trainer.checkpoint_callback.mode == "max"
    best_auc = fit.trainer.checkpoint_callback.best_model_score.item()

    validate = run_cli(["validate", *TINY, *logs, "--ckpt_path", best])
    assert validate.trainer.callback_metrics["val/auc"].item() == pytest.approx(best_auc, abs=1e-6)
    # The vocabulary came from the checkpoint, not from the data.
    assert validate.model.hparams.data_state == DKT.load_from_checkpoint(best).hparams.data_state

    test = run_cli(["test", *TINY, *logs, "--ckpt_path", best])

    out = tmp_path / "predictions.csv"
    run_cli(["predict", *TINY, *logs, "--ckpt_path", best, "--prediction_writer.output_path", str(out)])
    frame = pd.read_csv(out, dtype={"student": str, "skill_id": str})
    assert list(frame.columns) == ["student", "step", "skill_id", "skill_name", "correct", "p_correct"]
    # Test split: 20% of 60 students x 10 steps; each step once; no probability only at a student's step 0.
    assert len(frame) == 12 * 10
    assert frame.groupby("student")["step"].apply(list).map(lambda s: s == list(range(10))).all()
    assert frame["p_correct"].isna().tolist() == (frame["step"] == 0).tolist()
    # `kt test`'s AUC is the AUC of these predictions (the same students, windows and weights).
    scored = frame.dropna(subset=["p_correct"])
    expected_auc = auc_by_ranks(scored["p_correct"].to_numpy(), scored["correct"].to_numpy())
    assert test.trainer.callback_metrics["test/auc"].item() == pytest.approx(expected_auc, abs=1e-5)


def test_predict_on_a_file_uses_the_checkpoint_vocabulary(tmp_path):
    """A predict file with fewer skills than training must still map each id to the trained index."""
    train = write_three_line(tmp_path / "train.csv", [([1, 2, 3, 4, 5, 6], [0, 1, 0, 1, 1, 0])] * 20)
    write_three_line(tmp_path / "new.csv", [([5, 6, 5], [1, 0, 1])])
    args = [
        "--model", "DKT", "--model.hidden_size", "4", "--model.emb_size", "4",
        "--data", "Assist2009DataModule", "--data.data_dir", str(tmp_path), "--data.train_file", train.name,
        "--data.test_file", "null", "--data.download", "false", "--data.val_fraction", "0.2",
        "--trainer.logger.init_args.save_dir", str(tmp_path / "logs"), "--trainer.enable_progress_bar", "false",
    ]
    fit = run_cli(["fit", *args, "--trainer.max_epochs", "1"])
    ckpt = fit.trainer.checkpoint_callback.last_model_path
    out = tmp_path / "p.csv"
    run_cli(["predict", *args, "--data.predict_file", "new.csv", "--ckpt_path", ckpt,
             "--prediction_writer.output_path", str(out)])
    frame = pd.read_csv(out)
    model = DKT.load_from_checkpoint(ckpt)
    with torch.no_grad():
        expected = torch.sigmoid(model(torch.tensor([[4, 5, 4]]), torch.tensor([[1, 0, 1]])))[0]
    np.testing.assert_allclose(frame["p_correct"][1:], [expected[0, 5].item(), expected[1, 4].item()], rtol=1e-6)


def test_missing_data_is_one_clear_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--model", "DKT", "--data", "Assist2009DataModule", "--data.data_dir", str(tmp_path),
              "--data.download", "false", "--trainer.logger", "false"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"kt: error: {tmp_path / 'assist2009_updated_train.csv'} not found. "
                   "Put the file there, or set data_dir to the folder that has it."]


def test_help_documents_model_options(capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["fit", "--model.help", "DKT"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--model.hidden_size", "--model.optimizer {adam,adamw,sgd}", "--model.dropout"):
        assert option in out
