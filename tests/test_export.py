"""Export with torch.export (.pt2) and ONNX: the exported network gives the PyTorch model's outputs (max abs
diff <= 1e-5) on the example and on other batch sizes and sequence lengths; the data state travels in the
file; `kt export` checks and reports this; bad input is one clear error."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningModule, Trainer

from kt.cli import main as kt_main
from kt.core.checkpoints import load_checkpoint
from kt.core.errors import InputError
from kt.export import export, load_exported
from kt.tabular import MLPRegressor
from kt.tracing import DKT, SyntheticKTDataModule
from kt.vision import CNN

TOLERANCE = 1e-5
SKILLS = {"skills": ["12", "7", "301", "5", "44", "9", "81"], "names": ["a", "b", "c", "d", "e", "f", "g"]}
SCALER = {"columns": ["f0", "f1", "f2", "f3", "f4", "f5"], "mean": [0.5] * 6, "std": [2.0] * 6}


def dkt(backbone: str, num_layers: int) -> DKT:
    torch.manual_seed(0)
    return DKT(emb_size=8, hidden_size=8, num_layers=num_layers, dropout=0.3, backbone=backbone, data_state=SKILLS)


def mlp() -> MLPRegressor:
    torch.manual_seed(0)
    model = MLPRegressor(hidden_sizes=[16, 8], batch_norm=True, dropout=0.2, data_state=SCALER)
    with torch.no_grad():  # non-trivial running statistics
        model.net.layers[1].running_mean.uniform_(-1, 1)
        model.net.layers[1].running_var.uniform_(0.5, 2)
    return model.eval()


def sequences(batch: int, length: int, num_skills: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randint(0, num_skills, (batch, length)), torch.randint(0, 2, (batch, length))


def assert_parity(model: LightningModule, exported, inputs: tuple[torch.Tensor, ...]) -> None:
    """The exported network against the LightningModule's own forward (for DKT: nn.LSTM/GRU, not the
    while_loop recurrence that gets exported)."""
    with torch.no_grad():
        expected = model.eval()(*inputs)
    got = exported(*inputs)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= TOLERANCE


# The one-layer LSTM is exported from a trained checkpoint below; each DKT export takes seconds.
@pytest.mark.slow
@pytest.mark.parametrize(("backbone", "num_layers"), [("lstm", 2), ("gru", 1)])
def test_dkt_pt2_takes_any_batch_size_and_length(tmp_path, backbone, num_layers):
    model = dkt(backbone, num_layers)
    diffs = export(model, tmp_path / "dkt.pt2")
    assert list(diffs) == ["the example inputs (2, 5), (2, 5)", "inputs (3, 8), (3, 8)"]
    assert max(diffs.values()) <= TOLERANCE
    exported, state = load_exported(tmp_path / "dkt.pt2")
    assert state == SKILLS
    for batch, length in [(1, 1), (4, 12), (2, 5)]:
        assert_parity(model, exported, sequences(batch, length))
    assert [p.name for p in tmp_path.iterdir()] == ["dkt.pt2"]  # no partial file left behind


def test_mlp_pt2_parity_and_data_state(tmp_path):
    model = mlp()
    export(model, tmp_path / "mlp.pt2")
    exported, state = load_exported(tmp_path / "mlp.pt2")
    assert state == SCALER  # features and scaler, to encode rows as in training
    for batch in (1, 33):
        assert_parity(model, exported, (torch.randn(batch, 6),))
    # The same JSON document, read without kt.
    extra = {"data_state.json": ""}
    torch.export.load(tmp_path / "mlp.pt2", extra_files=extra)
    assert json.loads(extra["data_state.json"]) == SCALER


def test_cnn_pt2_parity(tmp_path):
    torch.manual_seed(0)
    model = CNN(batch_norm=True).eval()
    export(model, tmp_path / "cnn.pt2")
    exported, state = load_exported(tmp_path / "cnn.pt2")
    assert state is None  # no data was attached to this model
    for batch in (1, 5):
        assert_parity(model, exported, (torch.randn(batch, 1, 28, 28),))


def onnx_session(path: Path):
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_onnx(session, *inputs: torch.Tensor) -> torch.Tensor:
    feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), inputs)}
    return torch.from_numpy(session.run(None, feeds)[0])


@pytest.mark.slow
def test_mlp_onnx_parity_and_metadata(tmp_path):
    import onnx

    model = mlp()
    assert max(export(model, tmp_path / "mlp.onnx").values()) <= TOLERANCE
    session = onnx_session(tmp_path / "mlp.onnx")
    for batch in (1, 33):
        assert_parity(model, lambda x: run_onnx(session, x), (torch.randn(batch, 6),))
    metadata = {p.key: p.value for p in onnx.load(tmp_path / "mlp.onnx").metadata_props}
    assert json.loads(metadata["data_state"]) == SCALER
    assert load_exported(tmp_path / "mlp.onnx")[1] == SCALER


@pytest.mark.slow
def test_cnn_onnx_parity(tmp_path):
    torch.manual_seed(0)
    model = CNN(batch_norm=True).eval()
    export(model, tmp_path / "cnn.onnx")
    session = onnx_session(tmp_path / "cnn.onnx")
    assert [d for d in session.get_inputs()[0].shape] == ["batch", 1, 28, 28]
    for batch in (1, 5):
        assert_parity(model, lambda x: run_onnx(session, x), (torch.randn(batch, 1, 28, 28),))


@pytest.fixture(scope="module")
def dkt_checkpoint(tmp_path_factory) -> tuple[Path, dict]:
    """A tiny DKT trained for one epoch on simulated students: its checkpoint and data state. (A plain
    Trainer: LightningCLI would bring jsonargparse's deprecation warnings about Lightning's own calls.)"""
    root = tmp_path_factory.mktemp("fit")
    torch.manual_seed(0)
    model = DKT(emb_size=8, hidden_size=8)
    data = SyntheticKTDataModule(num_students=40, steps_per_student=6, batch_size=8)
    trainer = Trainer(
        max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=root,
    )
    trainer.fit(model, data)
    trainer.save_checkpoint(root / "last.ckpt")
    return root / "last.ckpt", model.hparams.data_state


def reported_differences(out: str) -> list[float]:
    return [float(x) for x in re.findall(r"max \|exported - PyTorch\| on .*: (\S+)$", out, re.MULTILINE)]


@pytest.mark.slow  # end to end through the CLI (CI runs it; `make test-fast` skips it)
def test_kt_export_pt2_from_a_checkpoint(tmp_path, capsys, dkt_checkpoint):
    ckpt, data_state = dkt_checkpoint
    kt_main(["export", "--ckpt", str(ckpt), "--out", str(tmp_path / "dkt.pt2")])
    out = capsys.readouterr().out
    assert f"DKT -> {tmp_path / 'dkt.pt2'} (pt2)" in out
    diffs = reported_differences(out)
    assert len(diffs) == 2 and max(diffs) <= TOLERANCE  # the example, and batch 3 x 8 steps
    exported, state = load_exported(tmp_path / "dkt.pt2")
    assert state == data_state  # the vocabulary, to encode skill ids as in training
    model = load_checkpoint(ckpt)
    assert_parity(model, exported, sequences(3, 17, model.hparams.num_skills))


@pytest.mark.slow
def test_dkt_onnx_lstm_from_a_checkpoint_and_gru(tmp_path, capsys, dkt_checkpoint):
    ckpt, data_state = dkt_checkpoint
    # --format names the format when the suffix does not.
    kt_main(["export", "--ckpt", str(ckpt), "--out", str(tmp_path / "dkt.model"), "--format", "onnx"])
    assert max(reported_differences(capsys.readouterr().out)) <= TOLERANCE
    session = onnx_session(tmp_path / "dkt.model")
    assert json.loads(session.get_modelmeta().custom_metadata_map["data_state"]) == data_state
    assert [i.shape for i in session.get_inputs()] == [["batch", "time"]] * 2
    model = load_checkpoint(ckpt)
    for batch, length in [(1, 1), (4, 12)]:
        assert_parity(model, lambda *x: run_onnx(session, *x), sequences(batch, length, model.hparams.num_skills))

    gru = dkt("gru", 2)
    assert max(export(gru, tmp_path / "gru.onnx").values()) <= TOLERANCE
    session = onnx_session(tmp_path / "gru.onnx")
    assert_parity(gru, lambda *x: run_onnx(session, *x), sequences(4, 12))


def test_kt_export_errors_are_clear(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KT_TRACEBACK", "1")  # the InputError itself, not its one-line exit
    out = ["--out", str(tmp_path / "x.pt2")]
    with pytest.raises(InputError, match="nope.ckpt not found"):
        kt_main(["export", "--ckpt", str(tmp_path / "nope.ckpt"), *out])
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="junk.ckpt is not a PyTorch checkpoint"):
        kt_main(["export", "--ckpt", str(tmp_path / "junk.ckpt"), *out])
    torch.save({"state_dict": {}, "hyper_parameters": {"nonsense": 1}}, tmp_path / "x.ckpt")
    with pytest.raises(InputError, match="x.ckpt is not a kt checkpoint: it does not say which model wrote it"):
        kt_main(["export", "--ckpt", str(tmp_path / "x.ckpt"), *out])
    # The format is checked before the checkpoint is read.
    ckpt = ["--ckpt", str(tmp_path / "nope.ckpt")]
    no_format = r"model.pt: cannot tell the format from the suffix '\.pt'.*--format pt2\|onnx"
    with pytest.raises(InputError, match=no_format):
        kt_main(["export", *ckpt, "--out", str(tmp_path / "model.pt")])
    with pytest.raises(InputError, match="--format 'tflite': expected 'pt2' or 'onnx'"):
        kt_main(["export", *ckpt, "--out", str(tmp_path / "model.bin"), "--format", "tflite"])
    with pytest.raises(InputError, match="x.onnx: the suffix '.onnx' says onnx, but --format says pt2"):
        kt_main(["export", *ckpt, "--out", str(tmp_path / "x.onnx"), "--format", "pt2"])
    # On the command line: one line and exit code 2.
    monkeypatch.delenv("KT_TRACEBACK")
    with pytest.raises(SystemExit) as exit_:
        kt_main(["export", *ckpt, "--out", str(tmp_path / "model.pt")])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.startswith("kt export: error: --out ")
    assert not list(tmp_path.glob("*.pt*"))


def test_onnx_without_its_packages_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # as if not installed
    missing = r'ONNX export needs onnxscript, not installed: pip install "kt\[export\]"'
    with pytest.raises(InputError, match=missing):
        export(mlp(), tmp_path / "mlp.onnx")
    monkeypatch.setenv("KT_TRACEBACK", "1")
    with pytest.raises(InputError, match=missing):  # before the checkpoint is read
        kt_main(["export", "--ckpt", str(tmp_path / "nope.ckpt"), "--out", str(tmp_path / "x.onnx")])


def test_xlstm_dkt_is_refused_clearly(tmp_path):
    model = DKT(emb_size=8, hidden_size=8, backbone="xlstm", xlstm_blocks=1, xlstm_heads=2, data_state=SKILLS)
    with pytest.raises(InputError, match="DKT with backbone 'xlstm' cannot be exported"):
        export(model, tmp_path / "x.pt2")
    assert not list(tmp_path.iterdir())


class StepLoop(torch.nn.Module):
    """A Python loop over time steps: torch.export fixes it to the example's length."""

    def forward(self, skills: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
        return torch.cat([(skills[:, t : t + 1] + correct[:, t : t + 1]).float() for t in range(skills.shape[1])], 1)


class OffWhenExported(torch.nn.Module):
    """Gives other outputs once exported: the parity check must catch it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 1e-3 if torch.compiler.is_exporting() else x


class Exports(LightningModule):
    def __init__(self, network: torch.nn.Module, example: tuple[torch.Tensor, ...]) -> None:
        super().__init__()
        self.network, self.example = network, example

    def export_module(self):
        return self.network, self.example


def test_a_network_export_cannot_follow_is_refused(tmp_path):
    model = Exports(StepLoop(), (torch.zeros(2, 5, dtype=torch.long), torch.ones(2, 5, dtype=torch.long)))
    refused = r"Exports \(StepLoop\) cannot be exported to pt2 with free batch and time sizes: Constraints violated"
    with pytest.raises(InputError, match=refused):
        export(model, tmp_path / "loop.pt2")
    assert not list(tmp_path.iterdir())


def test_an_export_that_differs_is_not_written(tmp_path):
    with pytest.raises(InputError, match=r"Exports: the exported network differs from PyTorch by up to 0\.001 "):
        export(Exports(OffWhenExported(), (torch.zeros(2, 3),)), tmp_path / "off.pt2")
    assert not list(tmp_path.iterdir())
