"""kt.load_checkpoint: any kt model from its checkpoint alone, safely (weights_only), on CPU or GPU."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import EMAWeightAveraging
from torch.utils.data import DataLoader

import kt
import kt.tracing
import kt.vision
from kt.cli import main
from kt.core.checkpoints import model_registry
from kt.core.errors import InputError
from kt.tabular import MLPRegressor
from kt.tracing import DKT, SyntheticKTDataModule
from kt.tracing.knowledge_state import KnowledgeTracer

QUIET = dict(logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)


def fit_dkt(tmp_path: Path) -> tuple[DKT, Path]:
    """Two optimizer steps of a tiny DKT with what our checkpoints can carry: an LR scheduler's state and a
    weight-averaging callback's state, all of which must load with weights_only=True."""
    seed_everything(0)
    data = SyntheticKTDataModule(num_students=30, num_exercises=6, steps_per_student=8, seq_len=4, batch_size=8)
    model = DKT(emb_size=4, hidden_size=6, scheduler="plateau")
    trainer = Trainer(max_steps=2, callbacks=[EMAWeightAveraging(decay=0.5)], **QUIET)
    trainer.fit(model, datamodule=data)
    path = tmp_path / "dkt.ckpt"
    trainer.save_checkpoint(path)
    return model, path


def fit_mlp(tmp_path: Path) -> tuple[MLPRegressor, Path]:
    seed_everything(0)
    state = {"header": ["id", "a", "b", "c", "y"], "columns": [1, 3], "names": ["a", "c"],
             "mean": [0.5, -1.0], "std": [2.0, 0.5]}
    model = MLPRegressor(hidden_sizes=[5], optimizer="adamw", lr=1e-2, scheduler="cosine", data_state=state)
    batches = [{"x": torch.randn(16, 2), "y": torch.randn(16)} for _ in range(2)]
    trainer = Trainer(max_epochs=1, limit_val_batches=0, **QUIET)
    trainer.fit(model, DataLoader(batches, batch_size=None))
    path = tmp_path / "mlp.ckpt"
    trainer.save_checkpoint(path)
    return model, path


def test_dkt_round_trip(tmp_path):
    model, path = fit_dkt(tmp_path)
    saved = torch.load(path, weights_only=True)  # everything in it is tensors and plain values
    assert saved["kt_model"] == "DKT"
    loaded = kt.load_checkpoint(path)
    assert type(loaded) is DKT and not loaded.training and loaded.device.type == "cpu"
    assert loaded.hparams.data_state == model.hparams.data_state  # the vocabulary travels in the checkpoint
    assert loaded.hparams.scheduler == "plateau" and loaded.hparams.hidden_size == 6
    skills, answers = torch.tensor([[0, 3, 5, 3]]), torch.tensor([[1, 0, 1, 1]])
    model.load_state_dict(saved["state_dict"])  # the checkpoint's weights (the averaged ones, with EMA)
    with torch.no_grad():
        assert torch.equal(loaded(skills, answers), model.eval()(skills, answers))


def test_mlp_round_trip(tmp_path):
    model, path = fit_mlp(tmp_path)
    loaded = kt.load_checkpoint(path, map_location=torch.device("cpu"))
    assert type(loaded) is MLPRegressor and not loaded.training
    assert loaded.hparams.data_state == model.hparams.data_state  # selected columns and scaler
    x = torch.randn(7, 2)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU")
def test_load_on_gpu(tmp_path):
    model, path = fit_mlp(tmp_path)
    loaded = kt.load_checkpoint(path, map_location="cuda")
    x = torch.randn(7, 2)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x.cuda()).cpu(), model.eval()(x), atol=1e-5, rtol=1e-5)


def test_knowledge_tracer_from_a_loaded_checkpoint(tmp_path):
    _, path = fit_dkt(tmp_path)
    model = kt.load_checkpoint(path)
    vocab = model.vocabulary
    tracer = KnowledgeTracer.from_checkpoint(str(path))
    answers = [(vocab.skills[2], 1), (vocab.skills[0], 0), (vocab.skills[2], 1)]
    for skill, correct in answers:
        tracer.add("alice", skill, correct)
    index = torch.tensor([[vocab.skills.index(s) for s, _ in answers]])
    with torch.no_grad():
        full = torch.sigmoid(model(index, torch.tensor([[c for _, c in answers]])))[0, -1].numpy()
    np.testing.assert_allclose(tracer.probability_vector("alice"), full, atol=1e-5, rtol=0)
    _, mlp_path = fit_mlp(tmp_path)
    with pytest.raises(InputError, match="holds a MLPRegressor; knowledge tracing needs a DKT, DKVMN, SAKT or AKT"):
        KnowledgeTracer.from_checkpoint(str(mlp_path))


def test_registry_is_every_model_in_the_task_packages(monkeypatch):
    assert model_registry() == {
        "DKT": DKT, "DKVMN": kt.tracing.DKVMN, "SAKT": kt.tracing.SAKT, "AKT": kt.tracing.AKT,
        "MLPRegressor": MLPRegressor, "CNN": kt.vision.CNN,
    }

    class NewModel(DKT):
        pass

    monkeypatch.setattr(kt.tracing, "NewModel", NewModel, raising=False)
    monkeypatch.setattr(kt.tracing, "__all__", [*kt.tracing.__all__, "NewModel"])
    assert model_registry()["NewModel"] is NewModel


# ----------------------------------------------------------------------------------- refused checkpoints
class _RunsCodeOnLoad:
    """Unpickling this calls os.system: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture
def evil_checkpoint(tmp_path) -> tuple[Path, Path]:
    marker = tmp_path / "code-was-executed"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "kt_model": "DKT", "hyper_parameters": {"x": _RunsCodeOnLoad(marker)}}, path)
    return path, marker


def test_a_checkpoint_that_runs_code_is_refused(evil_checkpoint):
    path, marker = evil_checkpoint
    with pytest.raises(InputError, match=r"evil.ckpt refused: loading it would call \w+\.system, "):
        kt.load_checkpoint(path)
    with pytest.raises(InputError, match="refused"):
        KnowledgeTracer.from_checkpoint(str(path))
    assert not marker.exists()


def test_kt_test_refuses_a_checkpoint_that_runs_code(evil_checkpoint, capsys):
    path, marker = evil_checkpoint
    with pytest.raises(SystemExit) as exit_info, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Lightning's hints are not kt's output
        main(["test", "--config", "dkt_synthetic", "--ckpt_path", str(path),
              "--trainer.logger", "false"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"kt: error: checkpoint {path} refused: loading it would call")
    assert not marker.exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "not found: pass a .ckpt file written by `kt fit`"),
        (b"", "the file is empty"),
        (b"id,x\n1,2\n", "is not a PyTorch checkpoint"),
        ({"epoch": 1}, "has no model weights"),
        ({"state_dict": {}}, "is not a kt checkpoint: it does not say which model wrote it"),
        ({"state_dict": {}, "kt_model": "Transformer"},
         "written by model 'Transformer', which this kt does not have "
         "\\(known: AKT, CNN, DKT, DKVMN, MLPRegressor, SAKT\\)"),
    ],
)
def test_not_a_kt_checkpoint(tmp_path, content, message):
    path = tmp_path / "model.ckpt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        torch.save(content, path)
    with pytest.raises(InputError, match=message):
        kt.load_checkpoint(path)


def test_weights_only_false_is_refused(tmp_path, capsys):
    _, path = fit_mlp(tmp_path)
    with pytest.raises(SystemExit):
        main(["predict", "--model", "MLPRegressor", "--data", "CovidDataModule", "--ckpt_path", str(path),
              "--weights_only", "false", "--trainer.logger", "false"])
    assert "weights_only false is not supported" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- prediction CSV
def test_a_crash_while_writing_predictions_leaves_no_half_file(tmp_path, monkeypatch):
    import pandas as pd

    from kt.core.predictions import write_csv_atomically

    target = tmp_path / "pred.csv"
    write_csv_atomically(pd.DataFrame({"id": [1, 2], "y": [0.5, 0.25]}), target)
    before = target.read_text()
    assert before == "id,y\n1,0.5\n2,0.25\n"

    def crash_halfway(self, handle, **kwargs):
        handle.write("id,y\n1,")
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_csv", crash_halfway)
    with pytest.raises(OSError, match="disk full"):
        write_csv_atomically(pd.DataFrame({"id": [3], "y": [1.0]}), target)
    assert target.read_text() == before  # the previous file, whole
    assert [p.name for p in tmp_path.iterdir()] == ["pred.csv"]  # and no temporary file left
