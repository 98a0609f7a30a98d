"""DKVMNDataModule: the four DKVMN splits by data set and fold, checksums, names, offline errors, composed configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kt.cli import run_cli
from kt.core.download import sha256sum
from kt.core.errors import InputError
from kt.tracing import DKT, DKVMNDataModule
from kt.tracing.data import dkvmn
from kt.tracing.data.dkvmn import DATASETS, read_cluster_info

# (students, distinct ids, answers) of each published training split, as the data sets' descriptions give them.
PUBLISHED = {"synthetic5": (2000, 50, 100_000), "assist2009": (2921, 110, 224_218),
             "assist2015": (13_935, 100, 484_040), "statics2011": (229, 1223, 130_184)}


def write_students(path: Path, sequences: list[tuple[list[int], list[int]]]) -> None:
    lines = []
    for ids, answers in sequences:
        lines += [str(len(ids)), ",".join(map(str, ids)), ",".join(map(str, answers))]
    path.write_text("\n".join(lines) + "\n")


def count_three_line(path: Path) -> tuple[int, set[str], int]:
    """Students, ids and answers of a 3-line file, counted line by line (independently of read_three_line)."""
    lines = path.read_text().split("\n")
    ids, answers = set(), 0
    for k in range(0, len(lines) - 2, 3):
        if lines[k].strip():
            ids |= {s for s in lines[k + 1].strip().strip(",").split(",")}
            answers += int(lines[k])
    return sum(1 for k in range(0, len(lines) - 2, 3) if lines[k].strip()), ids, answers


def test_a_fold_trains_on_trainK_and_validates_on_validK(tmp_path):
    write_students(tmp_path / "assist2015_train2.csv", [([1, 2, 3], [1, 0, 1]), ([2, 2], [0, 1]), ([3, 1], [1, 1])])
    write_students(tmp_path / "assist2015_valid2.csv", [([1, 4], [0, 0])])
    dm = DKVMNDataModule("assist2015", fold=2, data_dir=str(tmp_path), download=False, verify=False)
    dm.setup()
    assert len(dm.datasets["train"]) == 3 and len(dm.datasets["val"]) == 1  # nothing split off the training fold
    assert dm.vocab.skills == ["1", "2", "3", "4"]  # "4" only in validation still gets an index
    assert "assist2015_valid2.csv, line 2" in dm.where("val", "0")


def test_fold_null_is_the_whole_training_split_and_the_test_split():
    spec = DATASETS["statics2011"]
    assert spec.files(None) == {"train": "STATICS_train.csv", "val": None, "test": "STATICS_test.csv"}
    assert spec.files(3) == {"train": "STATICS_train3.csv", "val": "STATICS_valid3.csv", "test": "STATICS_valid3.csv"}
    with pytest.raises(InputError, match="fold 2: this data set has folds 1"):
        DKVMNDataModule("synthetic5", fold=2)


def test_published_checksum_is_enforced_unless_verify_is_off(tmp_path):
    write_students(tmp_path / "STATICS_train1.csv", [([1, 2], [1, 0])])
    write_students(tmp_path / "STATICS_valid1.csv", [([1, 2], [0, 1])])
    with pytest.raises(InputError, match="STATICS_train1.csv: sha256 is .* expected f671f233"):
        DKVMNDataModule("statics2011", fold=1, data_dir=str(tmp_path), download=False).setup()
    DKVMNDataModule("statics2011", fold=1, data_dir=str(tmp_path), download=False, verify=False).setup()


def test_offline_download_names_the_file_and_the_url(tmp_path, monkeypatch):
    monkeypatch.setattr(dkvmn, "REPOSITORY", "http://127.0.0.1:9/DKVMN/data/")  # nothing listens on port 9
    dm = DKVMNDataModule("synthetic5", fold=1, data_dir=str(tmp_path))
    with pytest.raises(InputError, match=r"naive_c5_q50_s4000_v0_train1.csv not found and the download from "
                                         r"http://127.0.0.1:9/DKVMN/data/synthetic/naive_c5_q50_s4000_v0_train1.csv"):
        dm.prepare_data()


def test_cluster_info_gives_each_exercise_its_concept(tmp_path):
    path = tmp_path / "cluster_info_0"
    path.write_text("[2, 0, 1, 0]\n0\t[2, 4]\n1\t[3]\n2\t[1]\n")
    assert read_cluster_info(path) == {"1": 2, "2": 0, "3": 1, "4": 0}


def test_composed_configs_build_the_data_and_model(tmp_path, monkeypatch):
    # A data folder named like the config (the default data_dir) must not shadow the shipped config.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "assist2015").mkdir(parents=True)
    cli = run_cli(["--config", "data/assist2015", "--config", "model/dkt", "--data.init_args.fold", "4",
                   "--trainer.logger", "false"], run=False)
    assert (cli.datamodule.dataset, cli.datamodule.fold) == ("assist2015", 4)
    assert cli.datamodule.files["train"] == "assist2015_train4.csv"
    assert isinstance(cli.model, DKT) and cli.model.hparams.backbone == "gru" and cli.model.hparams.hidden_size == 200


@pytest.mark.parametrize("dataset", list(PUBLISHED))
def test_real_split_matches_its_description_and_checksums(dataset, real_data_dir):
    folder = real_data_dir / dataset
    spec = DATASETS[dataset]
    if not (folder / f"{spec.prefix}train.csv").is_file():
        pytest.skip(f"{folder} has no {spec.prefix}train.csv")
    for name, digest in spec.sha256.items():
        if (folder / name).is_file():
            assert sha256sum(folder / name) == digest, name
    students, ids, answers = count_three_line(folder / f"{spec.prefix}train.csv")
    assert (students, len(ids), answers) == PUBLISHED[dataset]
    # Each fold splits the training students: train + valid = the whole training split.
    dm = DKVMNDataModule(dataset, fold=1, data_dir=str(folder), download=False)
    dm.setup()
    parts = [count_three_line(folder / dm.files[s]) for s in ("train", "val")]
    assert sum(p[0] for p in parts) == students and sum(p[2] for p in parts) == answers
    names = dict(zip(dm.vocab.skills, dm.vocab.names))
    assert len(dm.vocab) == len(ids) and all(names.values())  # every id has a name for the pictures
    if dataset == "synthetic5":
        concepts = np.array([read_cluster_info(folder / "cluster_info_0")[str(q)] for q in range(1, 51)])
        assert names["12"] == f"exercise 12 (concept {concepts[11]})" and np.bincount(concepts).sum() == 50
    if dataset == "assist2009":
        assert names["31"].startswith("Circumference")
