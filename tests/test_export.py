"""Export to TorchScript: the exported network gives the PyTorch model's outputs (max abs diff <= 1e-5),
also on batch sizes and sequence lengths other than the example's; the data state travels in the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from lightning.pytorch import LightningModule

from kt.cli import run_cli
from kt.core.errors import InputError
from kt.export import DATA_STATE_FILE, export, max_abs_difference
from kt.tabular import MLPRegressor
from kt.tracing import DKT
from kt.vision import CNN

TOLERANCE = 1e-5


def load_exported(path: Path) -> tuple[torch.jit.ScriptModule, object]:
    extra = {DATA_STATE_FILE: ""}
    module = torch.jit.load(str(path), _extra_files=extra)
    return module, json.loads(extra[DATA_STATE_FILE])


@pytest.mark.parametrize("backbone", ["lstm", "gru"])
def test_dkt_export_parity_on_other_lengths(tmp_path, backbone):
    torch.manual_seed(0)
    model = DKT(num_skills=7, emb_size=8, hidden_size=8, num_layers=2, dropout=0.3, backbone=backbone).eval()
    _, (skills, _) = export(model, tmp_path / "dkt.pt")
    exported, state = load_exported(tmp_path / "dkt.pt")
    assert state is None  # no data was attached to this model
    for batch, length in [(1, skills.shape[1]), (4, 12), (2, 1)]:
        inputs = (torch.randint(0, 7, (batch, length)), torch.randint(0, 2, (batch, length)))
        with torch.no_grad():
            expected = model(*inputs)
        got = exported(*inputs)
        assert got.shape == (batch, length, 7)
        assert (got - expected).abs().max().item() <= TOLERANCE


def test_mlp_export_parity(tmp_path):
    torch.manual_seed(0)
    model = MLPRegressor(input_size=6, hidden_sizes=[16, 8], batch_norm=True, dropout=0.2).eval()
    with torch.no_grad():  # non-trivial running statistics
        model.net.layers[1].running_mean.uniform_(-1, 1)
    export(model, tmp_path / "mlp.pt")
    exported, _ = load_exported(tmp_path / "mlp.pt")
    x = torch.randn(33, 6)
    assert max_abs_difference(model, exported, (x,)) <= TOLERANCE
    assert exported(x).shape == (33,)


def test_cnn_export_parity(tmp_path):
    torch.manual_seed(0)
    model = CNN().eval()
    network, example = model.export_module()
    export(model, tmp_path / "cnn.pt")
    exported, _ = load_exported(tmp_path / "cnn.pt")
    other = tuple(torch.randn(3, *t.shape[1:]) for t in example)
    assert max_abs_difference(network.eval(), exported, other) <= TOLERANCE


def run_export_script(argv: list[str]) -> float:
    from kt.export import main

    return main(argv)


def test_export_script_from_a_checkpoint(tmp_path, capsys):
    fit = run_cli([
        "fit", "--config", "dkt_synthetic",
        "--data.init_args.num_students", "40", "--data.init_args.steps_per_student", "6",
        "--model.init_args.hidden_size", "8", "--model.init_args.emb_size", "8", "--trainer.max_epochs", "1",
        "--trainer.enable_progress_bar", "false", "--trainer.logger.init_args.save_dir", str(tmp_path),
    ])
    ckpt = fit.trainer.checkpoint_callback.last_model_path
    assert run_export_script(["--ckpt", ckpt, "--out", str(tmp_path / "dkt.pt")]) <= TOLERANCE
    assert "DKT -> " in capsys.readouterr().out
    _, state = load_exported(tmp_path / "dkt.pt")
    assert state == fit.model.hparams.data_state  # the vocabulary, to encode skill ids as in training


def test_export_script_errors_are_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("KT_TRACEBACK", "1")  # the InputError itself, not its one-line exit
    # The script reads checkpoints with kt.load_checkpoint: one clear error naming the file.
    out = ["--out", str(tmp_path / "x.pt")]
    with pytest.raises(InputError, match="nope.ckpt not found"):
        run_export_script(["--ckpt", str(tmp_path / "nope.ckpt"), *out])
    torch.save({"state_dict": {}, "hyper_parameters": {"nonsense": 1}}, tmp_path / "x.ckpt")
    with pytest.raises(InputError, match="x.ckpt is not a kt checkpoint: it does not say which model wrote it"):
        run_export_script(["--ckpt", str(tmp_path / "x.ckpt"), *out])


class StepLoop(torch.nn.Module):
    """A Python loop over time steps: its trace only fits the example's length."""

    def forward(self, skills: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
        return torch.cat([(skills[:, t : t + 1] + correct[:, t : t + 1]).float() for t in range(skills.shape[1])], 1)


class StepLoopModel(LightningModule):
    def export_module(self):
        return StepLoop(), (torch.zeros(2, 5, dtype=torch.long), torch.ones(2, 5, dtype=torch.long))


def test_a_trace_that_only_fits_the_example_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"StepLoopModel: the traced network does not carry over .* \(3, 8\)"):
        export(StepLoopModel(), tmp_path / "loop.pt")
    assert not (tmp_path / "loop.pt").exists()
