"""kt tune (Optuna search scored by k-fold CV), kt cv (fold models) and kt predict-ensemble (their mean)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
import yaml

import kt
from kt.cli import main, run_cli, trainer_config_files
from kt.cv import fit_config_args
from kt.tabular.covid_reader import read_covid_csv

STATES = ["AL", "AK"]


def make_covid_csv(path: Path, rows: int, seed: int, target: bool = True) -> None:
    """A tiny CSV shaped like covid.train.csv: id, one-hot states, three days of two features, target last."""
    rng = np.random.default_rng(seed)
    state = np.eye(len(STATES))[rng.integers(len(STATES), size=rows)]
    level = rng.uniform(5, 20, size=rows)
    days = [c for _ in range(3) for c in (level + rng.normal(size=rows), level + 0.1 * rng.normal(size=rows))]
    frame = pd.DataFrame(np.column_stack([state, *days]), columns=[*STATES] + ["cli", "tested_positive"] * 3)
    frame.insert(0, "id", np.arange(rows) + 100)
    if not target:
        frame = frame.iloc[:, :-1]
    path.write_text(",".join(frame.columns) + "\n" + frame.to_csv(index=False, header=False))


@pytest.fixture
def covid(tmp_path: Path) -> Path:
    """A base config (CSVLogger, so that tests can read the logged metrics) and its tiny data."""
    data = tmp_path / "data"
    data.mkdir()
    make_covid_csv(data / "covid.train.csv", 60, 0)
    make_covid_csv(data / "covid.test.csv", 11, 1, target=False)
    config = {
        "seed_everything": 3,
        "model": {"class_path": "kt.tabular.MLPRegressor",
                  "init_args": {"hidden_sizes": [4], "optimizer": "adam", "lr": 1.0e-2}},
        "data": {"class_path": "kt.tabular.CovidDataModule",
                 "init_args": {"data_dir": str(data), "top_k": 3, "batch_size": 16}},
        "trainer": {"max_epochs": 3, "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                                                "init_args": {"save_dir": str(tmp_path / "logs")}}},
    }
    path = tmp_path / "base.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def write_space(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


SPACE = """
model.init_args.lr: {low: 1.0e-3, high: 3.0e-2, log: true}
model.init_args.hidden_sizes: {choices: [[4], [6, 3]]}
data.init_args.batch_size: {choices: [8, 32]}
"""


def tune(config: Path, space: Path, out: Path, trials: int, *extra: str) -> None:
    main(["tune", "--config", str(config), "--space", str(space), "--out", str(out), "--n-trials", str(trials),
          "--num-folds", "2", "--startup-trials", "2", *extra])


def load_study(out: Path) -> optuna.Study:
    return optuna.load_study(study_name="kt-tune", storage=f"sqlite:///{out / 'study.db'}")


def parsed_fit_config(config: Path):
    """``config`` as ``kt fit --config config`` parses it."""
    defaults = [arg for path in trainer_config_files() for arg in ("--config", path)]
    return run_cli([*defaults, "--config", str(config)], run=False).config


def test_a_config_printed_by_kt_fit_is_a_base_config(covid: Path, tmp_path: Path, capsys) -> None:
    # `kt fit --print_config` (and a run folder's config.yaml) carries the subcommand's ckpt_path and
    # weights_only, which the subcommand-less parser of kt tune / kt cv does not know.
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(covid), "--print_config"])
    printed = tmp_path / "printed.yaml"
    printed.write_text(capsys.readouterr().out)
    assert "ckpt_path" in yaml.safe_load(printed.read_text())
    parsed = run_cli(fit_config_args(str(printed)), run=False).config
    original = parsed_fit_config(covid)
    assert parsed.model == original.model and parsed.data == original.data
    assert parsed.trainer.max_epochs == 3


@pytest.mark.slow  # end to end through the CLI
def test_tune_scores_by_folds_writes_best_yaml_and_resumes(covid: Path, tmp_path: Path) -> None:
    space, out = write_space(tmp_path / "space.yaml", SPACE), tmp_path / "tune"
    tune(covid, space, out, 2)
    study = load_study(out)
    first = [(t.number, t.state.name, t.params, t.value) for t in study.trials]
    assert [state for _, state, _, _ in first] == ["COMPLETE", "COMPLETE"]

    # A trial's score is the mean over folds of the best val/mse that fold logged (read back from the CSV logs).
    for trial in study.trials:
        folds = []
        for k in range(2):
            (metrics,) = (out / f"trial_{trial.number}" / f"fold_{k}").rglob("metrics.csv")
            folds.append(pd.read_csv(metrics)["val/mse"].dropna().min())
        assert trial.user_attrs["fold_scores"] == pytest.approx(folds)
        assert trial.value == pytest.approx(np.mean(folds))
        assert not list((out / f"trial_{trial.number}").rglob("*.ckpt"))  # no checkpoints in a search

    # best.yaml is the base config with the best trial's values, and kt fit reads it.
    best = study.best_trial
    parsed = parsed_fit_config(out / "best.yaml")
    assert parsed.model.init_args.lr == pytest.approx(best.params["model.init_args.lr"])
    assert parsed.model.init_args.hidden_sizes == json.loads(best.params["model.init_args.hidden_sizes"])
    assert parsed.data.init_args.batch_size == best.params["data.init_args.batch_size"]
    assert parsed.data.init_args.top_k == 3 and parsed.model.init_args.optimizer == "adam"  # from the base
    assert best.value == min(t.value for t in study.trials)

    table = pd.read_csv(out / "trials.csv")
    assert table["number"].tolist() == [0, 1] and set(table["state"]) == {"COMPLETE"}
    np.testing.assert_allclose(table["fold_0"], [t.user_attrs["fold_scores"][0] for t in study.trials])
    assert (out / "optimization_history.png").stat().st_size > 0

    # The same command with more trials continues the study: the finished trials are kept as they were.
    tune(covid, space, out, 3)
    trials = load_study(out).trials
    assert len(trials) == 3 and [(t.number, t.state.name, t.params, t.value) for t in trials[:2]] == first
    assert trials[2].state.name == "COMPLETE"
    tune(covid, space, out, 3)  # nothing left to do
    assert len(load_study(out).trials) == 3


@pytest.mark.slow  # end to end through the CLI
def test_a_failing_trial_is_recorded_and_the_study_goes_on(covid: Path, tmp_path: Path) -> None:
    # Dropout 1.5 is refused by torch when the network is built; 0.0 trains.
    space = write_space(tmp_path / "space.yaml", "model.init_args.dropout: {choices: [1.5, 0.0]}\n")
    out = tmp_path / "tune"
    tune(covid, space, out, 4, "--startup-trials", "4", "--seed", "1")
    trials = load_study(out).trials
    assert len(trials) == 4
    states = {t.params["model.init_args.dropout"]: t.state.name for t in trials}
    assert states == {1.5: "FAIL", 0.0: "COMPLETE"}  # both were drawn, whatever their order
    for t in trials:
        if t.state.name == "FAIL":
            assert "dropout" in t.user_attrs["error"] and t.value is None
    table = pd.read_csv(out / "trials.csv")
    assert sorted(table["state"]) == sorted(t.state.name for t in trials)
    assert parsed_fit_config(out / "best.yaml").model.init_args.dropout == 0.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model.init_args.nope: {low: 1, high: 2}\n", "model.init_args.nope: not an option of this config"),
        ("model.init_args.lr: {low: 0.1, high: 0.01}\n", "model.init_args.lr: low 0.1 > high 0.01"),
        ("model.init_args.lr: {lo: 0.1, high: 0.2}\n", "model.init_args.lr: unknown spec key(s) lo"),
        ("data.init_args.batch_size: {choices: []}\n", "data.init_args.batch_size: choices must be a non-empty list"),
        ("model.init_args.lr: {low: 0, high: 1, log: true}\n", "model.init_args.lr: log needs low > 0"),
        ("model.init_args.lr: 0.1\n", "model.init_args.lr: expected {low: .., high: ..} or {choices: [..]}"),
        ("- lr\n", "expected a mapping of config keys"),
    ],
)
def test_bad_space_files_get_one_line_errors(covid: Path, tmp_path: Path, capsys, text: str, message: str) -> None:
    space = write_space(tmp_path / "space.yaml", text)
    with pytest.raises(SystemExit) as exit_info:
        tune(covid, space, tmp_path / "tune", 1)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"kt tune: error: search space {space}") and message in err and "\n" not in err
    assert not (tmp_path / "tune").exists()


# ------------------------------------------------------------------------------------------- fold ensembles
@pytest.mark.slow  # end to end through the CLI
def test_mlp_fold_ensemble_predicts_the_mean_of_the_fold_models(covid: Path, tmp_path: Path) -> None:
    folds = tmp_path / "cv"
    main(["cv", "--config", str(covid), "--num-folds", "2", "--out", str(folds)])
    checkpoints = (folds / "checkpoints.txt").read_text().split()
    assert len(checkpoints) == 2 and all(Path(c).is_file() for c in checkpoints)
    assert pd.read_csv(folds / "folds.csv")["fold"].tolist() == [0, 1]

    pred = tmp_path / "ensemble.csv"
    main(["predict-ensemble", "--config", str(covid), "--ckpt_path", str(folds),
          "--prediction_writer.output_path", str(pred)])
    written = pd.read_csv(pred)

    # Independently: each fold model on covid.test.csv with its own features and scaler, then the mean.
    table = read_covid_csv(Path(yaml.safe_load(covid.read_text())["data"]["init_args"]["data_dir"]) / "covid.test.csv")
    outputs = []
    for ckpt in checkpoints:
        model = kt.load_checkpoint(ckpt)
        state = model.hparams.data_state
        x = (table.values[:, [c - 1 for c in state["columns"]]] - state["mean"]) / state["std"]
        with torch.no_grad():
            outputs.append(model(torch.as_tensor(x, dtype=torch.float32)).numpy())
    assert list(written.columns) == ["id", "tested_positive"]
    assert written["id"].tolist() == [int(i) for i in table.ids]
    np.testing.assert_allclose(written["tested_positive"], np.mean(outputs, axis=0), rtol=1e-5, atol=1e-5)
    assert not np.allclose(outputs[0], outputs[1])  # two different models, so the mean is a real test


@pytest.mark.slow  # end to end through the CLI
def test_dkt_ensemble_averages_probabilities(tmp_path: Path) -> None:
    config = {
        "seed_everything": 0,
        "model": {"class_path": "kt.tracing.DKT", "init_args": {"emb_size": 4, "hidden_size": 6, "lr": 0.05}},
        "data": {"class_path": "kt.tracing.SyntheticKTDataModule",
                 "init_args": {"num_students": 40, "num_exercises": 5, "steps_per_student": 6, "seq_len": 4,
                               "batch_size": 8}},
        "trainer": {"max_epochs": 2, "logger": {"class_path": "lightning.pytorch.loggers.CSVLogger",
                                                "init_args": {"save_dir": str(tmp_path / "logs")}}},
    }
    path = tmp_path / "dkt.yaml"
    path.write_text(yaml.safe_dump(config))
    # Folds given as overrides: two runs that differ in their seed (their initial weights and batches).
    main(["cv", "--config", str(path), "--out", str(tmp_path / "cv"), "--folds", "--seed_everything 1",
          "--seed_everything 2"])
    checkpoints = (tmp_path / "cv" / "checkpoints.txt").read_text().split()
    singles = []
    for k, ckpt in enumerate(checkpoints):
        single = tmp_path / f"single_{k}.csv"
        main(["predict", "--config", str(path), "--ckpt_path", ckpt, "--prediction_writer.output_path", str(single)])
        singles.append(pd.read_csv(single))
    pred = tmp_path / "ensemble.csv"
    main(["predict-ensemble", "--config", str(path), "--ckpt_path", *checkpoints,
          "--prediction_writer.output_path", str(pred)])
    ensemble = pd.read_csv(pred)
    assert list(ensemble.columns) == list(singles[0].columns)
    pd.testing.assert_frame_equal(ensemble.drop(columns="p_correct"), singles[0].drop(columns="p_correct"))
    expected = (singles[0]["p_correct"] + singles[1]["p_correct"]) / 2
    np.testing.assert_allclose(ensemble["p_correct"], expected, rtol=1e-6, equal_nan=True)
    assert ensemble["p_correct"].isna().sum() == singles[0]["p_correct"].isna().sum() > 0  # first steps
    assert not np.allclose(singles[0]["p_correct"].dropna(), singles[1]["p_correct"].dropna())
