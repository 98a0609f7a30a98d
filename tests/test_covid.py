"""CovidDataModule and MLPRegressor: parsing and errors, no leakage, pred.csv, checkpoint round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import covid_header, make_covid_csv
from lightning.pytorch import Trainer

from kt.cli import run_cli
from kt.core.errors import InputError
from kt.core.splits import train_val_test
from kt.core.tensor_batches import TensorBatches
from kt.tabular import CovidDataModule
from kt.tabular.covid_reader import feature_names, read_covid_csv, state_of_rows
from kt.tabular.features import univariate_scores
from kt.tabular.models import MLPRegressor


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    make_covid_csv(tmp_path / "covid.train.csv")
    make_covid_csv(tmp_path / "covid.test.csv", rows=25, seed=1, target=False)
    return tmp_path


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------------------------------------- parsing
def test_reads_ids_header_and_values(data_dir: Path) -> None:
    table = read_covid_csv(data_dir / "covid.train.csv")
    assert table.header == covid_header()
    assert table.ids[:3] == ["100", "101", "102"]
    assert table.values.shape == (60, len(covid_header()) - 1)
    assert feature_names(covid_header()) == ["AL", "AK", "cli_d1", "tested_positive_d1", "cli_d2",
                                             "tested_positive_d2", "cli_d3"]  # fmt: skip


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("3,1,0,1,2,3,4,5,x", "line 4, column 9 (tested_positive): expected a finite number, got 'x'"),
        ("3,1,0,1,2,3,4,5,", "line 4, column 9 (tested_positive): expected a finite number, got an empty cell"),
        ("3,1,0,1,2,3,4,nan,1", "line 4, column 8 (cli): expected a finite number, got 'nan'"),
        ("3,1,0,1,2,3,4,5", "line 4: 8 columns, expected 9 as in the header"),
        (",1,0,1,2,3,4,5,6", "line 4, column 1 (id): empty id"),
        ("1,1,0,1,2,3,4,5,6", "line 4, column 1 (id): id '1' occurs more than once"),
    ],
)
def test_bad_cells_name_file_line_and_column(tmp_path: Path, line: str, message: str) -> None:
    good = ["1,1,0,1,2,3,4,5,6", "2,0,1,1,2,3,4,5,6"]
    path = write_lines(tmp_path / "bad.csv", [",".join(covid_header()), *good, line])
    with pytest.raises(InputError) as err:
        read_covid_csv(path)
    assert str(err.value) == f"{path}, {message}"


def test_missing_file_and_wrong_header(tmp_path: Path, data_dir: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        CovidDataModule(data_dir=str(tmp_path / "nowhere")).setup("fit")
    path = write_lines(tmp_path / "other.csv", ["id,a,b", "1,2,3"])
    with pytest.raises(InputError, match=r"line 1: 3 columns, expected 8"):
        read_covid_csv(path, covid_header()[:-1])


# ------------------------------------------------------------------------------------------------- splits
def test_group_by_state_splits_states(tmp_path: Path) -> None:
    states = ["AL", "AK", "AZ", "AR", "CA", "CO"]
    rng = np.random.default_rng(0)
    state = np.arange(60) % len(states)
    frame = pd.DataFrame(np.eye(len(states))[state], columns=states)
    frame.insert(0, "id", np.arange(60))
    frame["cli"] = rng.uniform(1, 2, 60)
    frame["tested_positive"] = rng.uniform(5, 9, 60)
    frame.to_csv(tmp_path / "covid.train.csv", index=False)
    table = read_covid_csv(tmp_path / "covid.train.csv")
    assert state_of_rows(table).tolist() == [states[i] for i in state]
    dm = CovidDataModule(data_dir=str(tmp_path), group_by="state", fold=1, num_folds=3, valid_ratio=0.25)
    dm.setup("fit")
    sides = {name: {states[i] for i in state[[int(r) for r in split["ids"]]]} for name, split in dm.splits.items()}
    assert len(sides["test"]) == 2 and len(sides["val"]) == 1 and len(sides["train"]) == 3
    assert not (sides["train"] & sides["val"]) and not (sides["train"] & sides["test"])
    # A CSV without one-hot columns after the id cannot be split by state: one clear error.
    frame.drop(columns=states).to_csv(tmp_path / "plain.csv", index=False)
    with pytest.raises(InputError, match=r"plain.csv: group_by state needs one-hot state columns .* found 0"):
        state_of_rows(read_covid_csv(tmp_path / "plain.csv"))
    frame.loc[5, "AK"] = 1  # two states in one row
    frame.to_csv(tmp_path / "two.csv", index=False)
    with pytest.raises(InputError, match=r"two.csv, line 7: .* found 6 0/1 column\(s\) with 2 ones"):
        state_of_rows(read_covid_csv(tmp_path / "two.csv"))


# ------------------------------------------------------------------------------------------------- features
def test_feature_selection_by_index_name_and_top_k(data_dir: Path) -> None:
    dm = CovidDataModule(data_dir=str(data_dir), features=[1, "tested_positive", "cli_d3"])
    dm.setup("fit")
    assert dm.data_state["columns"] == [1, 4, 6, 7]
    assert dm.data_state["names"] == ["AL", "tested_positive_d1", "tested_positive_d2", "cli_d3"]
    with pytest.raises(InputError, match="column 8 is not a feature column"):
        CovidDataModule(data_dir=str(data_dir), features=[8]).setup("fit")
    with pytest.raises(InputError, match="no feature column named 'nope'"):
        CovidDataModule(data_dir=str(data_dir), features=["nope"]).setup("fit")
    dm = CovidDataModule(data_dir=str(data_dir), top_k=2)
    dm.setup("fit")
    table = read_covid_csv(data_dir / "covid.train.csv")
    train = train_val_test(len(table), 0.2, dm.seed)["train"]
    scores = univariate_scores(table.values[train, :-1], table.values[train, -1])
    assert dm.data_state["columns"] == sorted((np.argsort(-scores)[:2] + 1).tolist())


def test_univariate_scores_are_abs_pearson() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3))
    x[:, 2] = 1.0
    y = 2 * x[:, 0] + rng.normal(size=50)
    expected = [abs(np.corrcoef(x[:, j], y)[0, 1]) for j in range(2)] + [0.0]
    np.testing.assert_allclose(univariate_scores(x, y), expected)


def test_scaler_and_selection_use_training_rows_only(data_dir: Path, tmp_path: Path) -> None:
    dm = CovidDataModule(data_dir=str(data_dir), top_k=3)
    dm.setup("fit")
    table = read_covid_csv(data_dir / "covid.train.csv")
    train = train_val_test(len(table), 0.2, dm.seed)["train"]
    cols = [c - 1 for c in dm.data_state["columns"]]
    np.testing.assert_allclose(dm.data_state["mean"], table.values[train][:, cols].mean(0))
    np.testing.assert_allclose(dm.data_state["std"], table.values[train][:, cols].std(0))
    # Change every validation row wildly: the state must not move.
    frame = pd.read_csv(data_dir / "covid.train.csv")
    valid = train_val_test(len(table), 0.2, dm.seed)["val"]
    frame.iloc[valid, 1:] = frame.iloc[valid, 1:] * 100 + 7
    other = tmp_path / "changed"
    other.mkdir()
    with open(other / "covid.train.csv", "w") as handle:  # the original header (pandas renames repeats)
        handle.write(",".join(covid_header()) + "\n")
        frame.to_csv(handle, index=False, header=False)
    changed = CovidDataModule(data_dir=str(other), top_k=3)
    changed.setup("fit")
    assert changed.data_state == dm.data_state
    # ... while the validation tensors do change (and are encoded with the training statistics).
    assert not torch.equal(changed.splits["val"]["x"], dm.splits["val"]["x"])


def test_state_is_plain_python(data_dir: Path) -> None:
    dm = CovidDataModule(data_dir=str(data_dir))
    dm.setup("fit")

    def plain(value) -> bool:
        if isinstance(value, dict):
            return all(isinstance(k, str) and plain(v) for k, v in value.items())
        if isinstance(value, list):
            return all(plain(v) for v in value)
        return type(value) in (str, int, float, bool)

    assert plain(dm.data_state)


def test_tensor_batches_cover_every_row_once() -> None:
    x = torch.arange(10.0)[:, None]
    batches = list(TensorBatches({"x": x, "y": x[:, 0]}, batch_size=4, shuffle=True))
    assert [len(b["x"]) for b in batches] == [4, 4, 2]
    assert sorted(torch.cat([b["y"] for b in batches]).tolist()) == list(range(10))
    in_order = list(TensorBatches({"x": x}, batch_size=4, shuffle=False))
    assert torch.equal(torch.cat([b["x"] for b in in_order]), x)


# ------------------------------------------------------------------------------------------------- model
def test_default_network_is_the_seed_one() -> None:
    model = MLPRegressor(input_size=116)
    linears = [m for m in model.net.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(116, 16), (16, 8), (8, 1)]
    assert (model.hparams.optimizer, model.hparams.lr, model.hparams.momentum) == ("sgd", 1e-5, 0.9)
    assert model(torch.zeros(5, 116)).shape == (5,)


def test_metrics_match_numpy(data_dir: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    dm = CovidDataModule(data_dir=str(data_dir))
    model = MLPRegressor(optimizer="adam", lr=1e-2)
    trainer = Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path)  # fmt: skip
    trainer.fit(model, datamodule=dm)
    (metrics,) = trainer.test(model, datamodule=dm, verbose=False)
    with torch.no_grad():
        pred = model(dm.splits["test"]["x"]).numpy().astype(np.float64)
    y = dm.splits["test"]["y"].numpy().astype(np.float64)
    assert metrics["test/mse"] == pytest.approx(np.mean((pred - y) ** 2), rel=1e-4)
    assert metrics["test/mae"] == pytest.approx(np.mean(np.abs(pred - y)), rel=1e-4)
    assert metrics["test/r2"] == pytest.approx(1 - np.sum((pred - y) ** 2) / np.sum((y - y.mean()) ** 2), rel=1e-4)


def test_gradient_clipping_and_accumulation_match_a_hand_written_loop(data_dir: Path, tmp_path: Path) -> None:
    """Automatic optimisation: Lightning's gradient_clip_val and accumulate_grad_batches apply as in plain torch."""
    torch.manual_seed(0)
    dm = CovidDataModule(data_dir=str(data_dir), batch_size=8)  # 48 training rows: 6 batches, 3 steps of 2
    model = MLPRegressor(input_size=7, optimizer="sgd", lr=0.05, momentum=0.0)
    reference = MLPRegressor(input_size=7, optimizer="sgd", lr=0.05, momentum=0.0)
    reference.load_state_dict(model.state_dict())
    trainer = Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, default_root_dir=tmp_path, num_sanity_val_steps=0,
                      limit_val_batches=0, accumulate_grad_batches=2, gradient_clip_val=0.5)  # fmt: skip
    trainer.fit(model, datamodule=dm)

    batches = list(dm.train_dataloader())  # epoch 0's order, as the trainer saw it
    assert len(batches) == 6 and trainer.global_step == 3
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.05)
    clipped = 0
    for start in range(0, len(batches), 2):
        optimizer.zero_grad()
        for batch in batches[start : start + 2]:
            (torch.nn.functional.mse_loss(reference(batch["x"]), batch["y"]) / 2).backward()
        clipped += float(torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.5)) > 0.5
        optimizer.step()
    assert clipped  # the clipping was exercised, not only allowed
    for name, value in reference.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], value, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------------------------------- CLI
def cli_args(data_dir: Path, tmp_path: Path, *extra: str) -> list[str]:
    return [
        "--config", "mlp_covid_tuned", "--data.init_args.data_dir", str(data_dir),
        "--trainer.logger.init_args.save_dir", str(tmp_path / "logs"), "--trainer.enable_model_summary", "false",
        "--data.init_args.top_k", "3", *extra,
    ]  # fmt: skip


@pytest.mark.slow  # end to end through the CLI (CI runs it; `make test-fast` skips it)
def test_fit_predict_and_checkpoint_round_trip(data_dir: Path, tmp_path: Path) -> None:
    run_cli(["fit", *cli_args(data_dir, tmp_path, "--trainer.max_epochs", "3")])
    ckpt = next((tmp_path / "logs").rglob("last.ckpt"))
    pred = tmp_path / "pred.csv"
    args = cli_args(data_dir, tmp_path, "--ckpt_path", str(ckpt), "--prediction_writer.output_path", str(pred))
    run_cli(["predict", *args])
    lines = pred.read_text().splitlines()
    assert lines[0] == "id,tested_positive"
    test = pd.read_csv(data_dir / "covid.test.csv")
    written = pd.read_csv(pred)
    assert written["id"].tolist() == test["id"].tolist()
    assert np.isfinite(written["tested_positive"]).all()

    # Round trip: the checkpoint alone (features, scaler, weights) gives the same predictions, even with a
    # data config that would select other features if it were refitted.
    model = MLPRegressor.load_from_checkpoint(ckpt, weights_only=True)
    state = model.hparams.data_state
    table = read_covid_csv(data_dir / "covid.test.csv")
    x = (table.values[:, [c - 1 for c in state["columns"]]] - state["mean"]) / state["std"]
    model.eval()
    with torch.no_grad():
        expected = model(torch.as_tensor(x, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(written["tested_positive"], expected, rtol=1e-5, atol=1e-5)
    pred2 = tmp_path / "pred2.csv"
    args = cli_args(data_dir, tmp_path, "--ckpt_path", str(ckpt), "--prediction_writer.output_path", str(pred2))
    run_cli(["predict", *args, "--data.init_args.top_k", "5", "--data.init_args.features", "[1, 2]"])
    assert pred2.read_text() == pred.read_text()


def test_kfold_from_the_cli(data_dir: Path, tmp_path: Path) -> None:
    cli = run_cli(["fit", *cli_args(data_dir, tmp_path, "--trainer.max_epochs", "1", "--data.init_args.fold", "2")])
    rows = train_val_test(60, 0.2, 5201314, 2, 5)
    assert cli.datamodule.splits["test"]["ids"] == [str(100 + i) for i in rows["test"]]
    assert cli.model.hparams.data_state["columns"] == cli.datamodule.data_state["columns"]


def test_no_validation_split_trains_every_epoch_on_all_non_test_rows(data_dir: Path, tmp_path: Path) -> None:
    """``valid_ratio: 0`` (the refit of a config whose epoch count cross-validation chose): every non-test row
    is trained on and scales the features, early stopping is off (patience 1 would stop a noisy run), and the
    checkpoint is the last epoch's."""
    extra = ("--data.init_args.valid_ratio", "0", "--data.init_args.fold", "2", "--trainer.max_epochs", "4",
             "--early_stopping.patience", "1", "--checkpoint.last_every_n_epochs", "1")  # fmt: skip
    cli = run_cli(["fit", *cli_args(data_dir, tmp_path, *extra)])
    rows = train_val_test(60, 0.0, 5201314, 2, 5)
    assert len(rows["val"]) == 0 and len(rows["train"]) == 60 - len(rows["test"])
    assert cli.datamodule.splits["train"]["ids"] == [str(100 + i) for i in rows["train"]]
    table = read_covid_csv(data_dir / "covid.train.csv")
    cols = [c - 1 for c in cli.datamodule.data_state["columns"]]
    np.testing.assert_allclose(cli.datamodule.data_state["mean"], table.values[rows["train"]][:, cols].mean(0))
    assert cli.trainer.current_epoch == 4 and cli.trainer.early_stopping_callback is None
    saved = torch.load(cli.trainer.checkpoint_callback.best_model_path, weights_only=True)
    assert saved["epoch"] == 3
    for name, value in cli.model.state_dict().items():
        torch.testing.assert_close(saved["state_dict"][name], value)


def test_real_data_shapes(real_data) -> None:
    dm = CovidDataModule(data_dir=str(real_data("covid", "covid.train.csv", "covid.test.csv")), top_k=20)
    dm.setup("fit")
    assert len(dm.splits["train"]["x"]) == 1840 and len(dm.splits["val"]["x"]) == 459
    assert dm.splits["train"]["x"].shape[1] == 20
    assert set(dm.data_state["names"]) >= {f"tested_positive_d{d}" for d in range(1, 5)}
    dm.setup("predict")
    assert len(dm.splits["predict"]["ids"]) == 1078
