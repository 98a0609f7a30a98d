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


@pytest.mark.slow  # end to end through the CLI (CI runs it; `make test-fast` skips it)
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


def error_line(capsys, args: list[str]) -> str:
    """`kt ARGS` must fail with exit code 2 and one `kt: error:` line; that line."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kt: error: "), lines
    return lines[0].removeprefix("kt: error: ")


@pytest.mark.parametrize(
    ("option", "error"),
    [
        ("--trainer.max_epo", "unrecognized arguments: --trainer.max_epo 3 (`kt fit --help` lists the options)"),
        ("--seed_everyth", "unrecognized arguments: --seed_everyth 3 (`kt fit --help` lists the options)"),
        ("--model.init_args.hidden", "model: Problem with given class_path 'kt.tracing.DKT': Option 'hidden' is "
                                     "not accepted (`kt fit --model.help DKT` lists its options)"),
    ],
)
def test_abbreviated_options_are_errors(capsys, option, error):
    # argparse would take a prefix of exactly one option as that option; a typo must not do that silently.
    assert error_line(capsys, ["fit", *TINY, option, "3"]) == error


def test_unknown_class_lists_the_known_ones(capsys):
    from kt.core.checkpoints import model_registry

    error = error_line(capsys, ["fit", "--model", "kt.tracing.NoSuchModel"])
    assert error == (f"model: no class 'kt.tracing.NoSuchModel'; known: {', '.join(sorted(model_registry()))} "
                     "(`kt fit --model.help NAME` lists one's options)")
    error = error_line(capsys, ["test", "--model", "DKT", "--data", "NoData"])
    assert error.startswith("data: no class 'NoData'; known: Assist2009DataModule, CovidDataModule, ")


def test_yaml_syntax_error_names_the_file_and_line(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("trainer:\n  max_epochs: 2\n  callbacks: [a, b\nmodel: DKT\n")
    error = error_line(capsys, ["fit", "--config", str(path)])
    assert error.startswith(f"{path}, line 4, column 6: not valid YAML: "), error


def test_a_failing_run_leaves_no_log_folder(tmp_path, capsys):
    logs = tmp_path / "logs"
    args = ["fit", "--model", "DKT", "--data", "Assist2009DataModule", "--data.data_dir", str(tmp_path),
            "--data.download", "false", "--trainer.logger.init_args.save_dir", str(logs)]
    assert "not found" in error_line(capsys, args)
    assert not logs.exists()
    # A folder that was there before the run stays, with what was in it.
    (logs / "default" / "version_0").mkdir(parents=True)
    (logs / "default" / "version_0" / "notes.txt").write_text("mine")
    assert "not found" in error_line(capsys, args)
    assert sorted(p.relative_to(logs).as_posix() for p in logs.rglob("*")) == [
        "default", "default/version_0", "default/version_0/notes.txt"]


@pytest.mark.slow  # end to end through the CLI
def test_evaluation_runs_write_no_log_folder_unless_asked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the configs' logger writes to ./lightning_logs
    fit = run_cli(["fit", *TINY, "--trainer.max_epochs", "1"])
    ckpt = fit.trainer.checkpoint_callback.last_model_path
    runs = tmp_path / "lightning_logs" / "dkt_synthetic"
    assert [p.name for p in runs.iterdir()] == ["version_0"]
    for subcommand in ("validate", "test", "predict"):
        cli = run_cli([subcommand, *TINY, "--ckpt_path", ckpt, "--prediction_writer.output_path", "p.csv"])
        assert cli.trainer.logger is None
    assert [p.name for p in runs.iterdir()] == ["version_0"]
    # Asked for on the command line: a logger, and its folder.
    cli = run_cli(["test", *TINY, "--ckpt_path", ckpt, "--trainer.logger.init_args.save_dir", "eval_logs"])
    log_dir = Path(cli.trainer.logger.log_dir).resolve()
    assert log_dir.is_dir() and log_dir.relative_to(tmp_path).parts[:2] == ("eval_logs", "dkt_synthetic")
