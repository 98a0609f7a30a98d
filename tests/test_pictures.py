"""Pictures: learning curves from a real tiny `kt fit`, a DKT knowledge-state heatmap, a confusion matrix.

Each plot function returns the arrays it drew; the tests check those against independently computed values
(the trainer's own metrics, the model's forward pass, numpy counts) and that the PNG is a real image.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import write_three_line
from PIL import Image

from kt.cli import main, run_cli
from kt.core.errors import InputError
from kt.plots.confusion import plot_confusion
from kt.plots.curves import learning_curves, plot_curves, read_scalars
from kt.plots.knowledge_state import load_dkt, plot_knowledge_state, student_sequence

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def kt_plot(picture: str):
    """``kt plot <picture>`` as a function of its remaining arguments, through the real entry point."""
    return lambda argv: main(["plot", picture, *argv])


def fails(main, argv: list[str], capsys) -> str:
    """Run a script's main on bad input: exit code 2 and one line on stderr, which is returned."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1, err
    return err


def assert_png(path: Path, min_size: tuple[int, int] = (300, 200)) -> tuple[int, int]:
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        width, height = image.size
    assert min_size[0] <= width <= 4000 and min_size[1] <= height <= 4000
    assert path.stat().st_size < 400_000
    return width, height


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """3 epochs of DKT on 60 simulated students, logging every step: (version folder, trainer, checkpoint)."""
    tmp = tmp_path_factory.mktemp("run")
    fit = run_cli([
        "fit", "--config", "dkt_synthetic",
        "--data.init_args.num_students", "60", "--data.init_args.steps_per_student", "10",
        "--data.init_args.seq_len", "4", "--model.init_args.hidden_size", "8", "--model.init_args.emb_size", "8",
        "--trainer.max_epochs", "3", "--trainer.log_every_n_steps", "1",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
        "--trainer.logger.init_args.save_dir", str(tmp / "logs"),
    ])
    return Path(fit.trainer.logger.log_dir), fit.trainer, fit.trainer.checkpoint_callback.last_model_path


def test_curves_plot_the_logged_values_against_epochs(tiny_run, tmp_path):
    run_dir, trainer, _ = tiny_run
    out = tmp_path / "curves.png"
    # The experiment folder (lightning_logs/<name>) with a single version works as well as the version.
    panels = plot_curves(run_dir.parent, out)
    assert_png(out)
    assert list(panels) == ["loss", "acc", "auc", "learning rate"]
    assert list(panels["loss"]) == ["train", "val", "train (per step)"]
    for panel, label, tag in [("loss", "train", "train/loss_epoch"), ("loss", "val", "val/loss"),
                              ("auc", "val", "val/auc"), ("acc", "val", "val/acc")]:
        x, y = panels[panel][label]
        np.testing.assert_array_equal(x, [1, 2, 3])
        # The last point is what the trainer ended with; the best val/auc is what checkpointing kept.
        assert y[-1] == pytest.approx(trainer.callback_metrics[tag].item(), rel=1e-6)
    assert panels["auc"]["val"][1].max() == pytest.approx(trainer.checkpoint_callback.best_model_score.item())
    np.testing.assert_array_equal(panels["learning rate"]["lr-Adam"][0], [1, 2, 3])
    np.testing.assert_allclose(panels["learning rate"]["lr-Adam"][1], 0.005)
    # Per-step losses: every training step, spread over (0, 3] epochs, ending on the last epoch's end.
    x, y = panels["loss"]["train (per step)"]
    assert len(x) == trainer.global_step and np.all(np.diff(x) > 0) and 0 < x[0] < 1 and x[-1] == 3
    np.testing.assert_array_equal(y, read_scalars(run_dir)["train/loss_step"][1])
    assert "train (per step)" not in learning_curves(read_scalars(run_dir), steps=False)["loss"]


@pytest.mark.parametrize("first", [0, 2])
def test_curves_map_steps_to_epochs_as_lightning_logs_them(tmp_path, first):
    """Hand-written events in Lightning's layout: epoch metrics at an epoch's last step, the learning rate at
    the next epoch's first step, step losses in between. ``first`` > 0: a run resumed from a checkpoint."""
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(tmp_path)
    steps_per_epoch, val_mse = 5, [0.9, 0.5, 0.4, 0.45]
    for epoch, mse in enumerate(val_mse, start=first):
        start, end = epoch * steps_per_epoch, (epoch + 1) * steps_per_epoch - 1
        writer.add_scalar("lr-SGD", 0.1 / (epoch + 1), start)
        writer.add_scalar("epoch", epoch, start + 2)
        writer.add_scalar("train/loss_step", 1.0 - epoch / 10, start + 2)
        for tag, value in [("epoch", epoch), ("val/mse", mse), ("val/r2", 1 - mse), ("train/mse", mse / 2)]:
            writer.add_scalar(tag, value, end)
    writer.close()
    panels = learning_curves(read_scalars(tmp_path))
    assert list(panels) == ["loss", "mse", "r2", "learning rate"]
    np.testing.assert_allclose(panels["mse"]["val"][1], val_mse)
    np.testing.assert_allclose(panels["mse"]["train"][1], np.array(val_mse) / 2)
    epochs = first + np.arange(1, 5)
    np.testing.assert_array_equal(panels["mse"]["val"][0], epochs)
    np.testing.assert_array_equal(panels["learning rate"]["lr-SGD"][0], epochs)
    np.testing.assert_allclose(panels["learning rate"]["lr-SGD"][1], 0.1 / epochs, rtol=1e-6)
    # Step 2 of each 5-step epoch (steps 0..4 -> epoch 0..1): 3/5 of the way through it.
    np.testing.assert_allclose(panels["loss"]["train (per step)"][0], epochs - 0.4)


def test_knowledge_state_heatmap_holds_the_models_probabilities(tiny_run, tmp_path):
    _, _, ckpt = tiny_run
    model = load_dkt(ckpt)
    vocab = model.vocabulary.skills
    seq = [vocab[i] for i in [0, 1, 0, 2, 3, 0, 1, 4, 0, 2]]
    answers = [1, 0, 1, 1, 0, 1, 0, 0, 1, 1]
    data = write_three_line(tmp_path / "students.csv", [([vocab[5]] * 2, [0, 1]), (seq, answers)])
    skills, correct = student_sequence("1", data_file=data)
    assert (skills, correct) == (seq, answers)

    out = tmp_path / "ks.png"
    result = plot_knowledge_state(model, skills, correct, out, start=2, steps=6, max_skills=3)
    assert_png(out)
    # Answers 2..7 are drawn; the 3 most practised of their skills, in the order first met there.
    assert result["rows"] == [vocab[0], vocab[2], vocab[3]]  # 0 twice; 2 and 3 met before 1 and 4
    assert result["columns"] == [f"{s} {'✓' if a else '✗'}" for s, a in zip(seq[2:8], answers[2:8])]
    with torch.no_grad():
        ids = torch.tensor([[vocab.index(s) for s in seq]])
        full = torch.sigmoid(model(ids, torch.tensor([answers])))[0].numpy()  # (steps, skills)
    expected = full[2:8][:, [0, 2, 3]].T
    np.testing.assert_allclose(result["values"], expected, atol=1e-5)


@pytest.mark.slow  # `kt predict` over whole histories
def test_knowledge_state_agrees_with_kt_predict(tiny_run, tmp_path):
    """The cell of the skill answered next, in each column, is that answer's p_correct in `kt predict`'s CSV
    (when predict reads whole histories: the tiny run trains on windows of 5 steps)."""
    run_dir, _, ckpt = tiny_run
    out = tmp_path / "predictions.csv"
    run_cli(["predict", "--config", str(run_dir / "config.yaml"), "--ckpt_path", ckpt,
             "--data.init_args.eval_seq_len", "100", "--trainer.logger.init_args.save_dir", str(tmp_path / "logs"),
             "--prediction_writer.output_path", str(out)])
    frame = pd.read_csv(out, dtype={"student": str, "skill_id": str})
    student = frame["student"].iloc[0]
    skills, correct = student_sequence(student, predictions=out)
    result = plot_knowledge_state(load_dkt(ckpt), skills, correct, tmp_path / "ks.png", max_skills=100)
    rows = [result["rows"].index(s) for s in skills[1:]]
    expected = frame[frame["student"] == student].sort_values("step")["p_correct"].to_numpy()[1:]
    np.testing.assert_allclose(result["values"][rows, np.arange(len(rows))], expected, atol=1e-6)


def test_knowledge_state_from_predictions_and_its_errors(tiny_run, tmp_path, capsys):
    _, _, ckpt = tiny_run
    vocab = load_dkt(ckpt).vocabulary.skills
    pd.DataFrame({"student": ["7", "7", "8", "7"], "step": [2, 0, 0, 1], "skill_id": [vocab[3], vocab[1], vocab[0],
                  vocab[2]], "correct": [1, 0, 1, 1]}).to_csv(tmp_path / "p.csv", index=False)
    assert student_sequence("7", predictions=tmp_path / "p.csv") == ([vocab[1], vocab[2], vocab[3]], [0, 1, 1])

    plot = kt_plot("knowledge-state")
    out = tmp_path / "ks.png"
    plot([ckpt, "--predictions", str(tmp_path / "p.csv"), "--student", "7", "-o", str(out)])
    assert_png(out, min_size=(200, 100))
    assert f"{out}: 3 skills x 3 answers" in capsys.readouterr().out

    write_three_line(tmp_path / "bad.csv", [(["no-such-skill"], [1])])
    for argv, message in [
        (["--data-file", str(tmp_path / "bad.csv")], "skill id 'no-such-skill' is not in the model's vocabulary"),
        (["--data-file", str(tmp_path / "bad.csv"), "--student", "3"], "no student '3'; students are numbered 0..0"),
        (["--predictions", str(tmp_path / "p.csv"), "--student", "9"], "no rows for student '9'"),
        (["--predictions", str(tmp_path / "p.csv"), "--student", "7", "--start", "5"], "start 5: the student has 3"),
        (["--predictions", str(tmp_path / "p.csv"), "--student", "7", "--steps", "0"], "steps \\(0\\) and max_skills"),
    ]:
        err = fails(plot, [ckpt, *argv, "-o", str(out)], capsys)
        assert re.search(f"^kt plot: error: .*{message}", err)
    bad = ["--data-file", str(tmp_path / "bad.csv")]
    assert re.search("missing.ckpt not found", fails(plot, [str(tmp_path / "missing.ckpt"), *bad], capsys))
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    err = fails(plot, [str(tmp_path / "junk.ckpt"), *bad], capsys)
    assert re.search("junk.ckpt is not a PyTorch checkpoint", err)
    assert re.search("nope.csv: no such file", fails(plot, [ckpt, "--data-file", str(tmp_path / "nope.csv")], capsys))


def test_confusion_matrix_counts_and_accuracy(tmp_path):
    rng = np.random.default_rng(0)
    names = ["zero", "one", "two", "three"]
    label = rng.integers(0, 4, 200)
    pred = np.where(rng.random(200) < 0.7, label, rng.integers(0, 4, 200))
    probs = {f"p_{k}": rng.random(200) for k in range(4)}
    frame = pd.DataFrame({"label": label, "pred": pred, "pred_name": [names[p] for p in pred], **probs})
    frame.to_csv(tmp_path / "pred.csv", index=False)

    out = tmp_path / "confusion.png"
    result = plot_confusion(tmp_path / "pred.csv", out)
    assert_png(out)
    expected = np.zeros((4, 4), dtype=int)
    np.add.at(expected, (label, pred), 1)
    np.testing.assert_array_equal(result["counts"], expected)
    np.testing.assert_allclose(result["normalised"], expected / expected.sum(1, keepdims=True))
    assert result["accuracy"] == pytest.approx(np.mean(label == pred))
    assert result["classes"] == names

    # Without pred_name: indices, as many as the p_k columns say (a class never predicted still gets a row).
    frame[frame["label"] < 3].drop(columns="pred_name").assign(pred=lambda f: f["pred"].clip(0, 2)).to_csv(
        tmp_path / "few.csv", index=False)
    assert plot_confusion(tmp_path / "few.csv", out)["classes"] == ["0", "1", "2", "3"]
    assert plot_confusion(tmp_path / "few.csv", out, classes=list("abcd"))["classes"] == list("abcd")


def test_confusion_and_curves_commands_help_and_errors(tmp_path, capsys):
    from torch.utils.tensorboard import SummaryWriter

    confusion, curves = kt_plot("confusion"), kt_plot("curves")
    events = tmp_path / "run"
    with SummaryWriter(events) as writer:
        for tag, value in [("epoch", 0), ("val/loss", 0.5), ("val/auc", 0.7)]:
            writer.add_scalar(tag, value, 0)
    (tmp_path / "empty").mkdir()
    for plot in (confusion, curves):
        with pytest.raises(SystemExit) as exit_info:
            plot(["--help"])
        assert exit_info.value.code == 0 and "-o OUT, --out OUT" in capsys.readouterr().out

    (tmp_path / "bad.csv").write_text("label,guess\n1,2\n")
    bad = [str(tmp_path / "bad.csv")]
    assert re.search("^kt plot: error: .*bad.csv: missing column\\(s\\) pred", fails(confusion, bad, capsys))
    (tmp_path / "bad.csv").write_text("label,pred\n1,2\n1,x\n")
    assert re.search("bad.csv, row 3, column 'pred': expected a class index", fails(confusion, bad, capsys))
    (tmp_path / "own.csv").write_text("image,label,pred\na.png,,1\nb.png,,2\n")
    assert re.search("own.csv: the 'label' column is empty", fails(confusion, [str(tmp_path / "own.csv")], capsys))
    (tmp_path / "ok.csv").write_text("label,pred\n0,1\n2,2\n")
    err = fails(confusion, [str(tmp_path / "ok.csv"), "--classes", "a,b"], capsys)
    assert re.search("--classes names 2 classes, but the predictions use 3", err)
    confusion([str(tmp_path / "ok.csv"), "--classes", "a,b,c", "-o", str(tmp_path / "c.png")])
    assert "accuracy 0.5000 over 2 examples" in capsys.readouterr().out

    with pytest.raises(InputError, match="log-scale panel\\(s\\) mae not in this run; its panels: loss, auc"):
        plot_curves(events, tmp_path / "c.png", log_y=["mae"])
    curves([str(events), "--log-y", "loss", "-o", str(tmp_path / "c.png")])
    assert "c.png: loss, auc" in capsys.readouterr().out
    assert re.search("^kt plot: error: .*nope: no such folder", fails(curves, [str(tmp_path / "nope")], capsys))
    assert re.search("expected TensorBoard event files", fails(curves, [str(tmp_path / "empty")], capsys))
    with pytest.raises(InputError, match="no such file"):
        plot_confusion(tmp_path / "missing.csv", tmp_path / "x.png")
