"""The bad-input matrix, through the `kt` command itself: each case is a non-zero exit, ONE line on stderr that
says what is wrong and where (file, line, column, option or key), no traceback, and no output left behind
(no predictions CSV, no checkpoint, no log folder).

Adding a case is one `Case(...)` entry in CASES. The image cases (a corrupt IDX file, an image that cannot be
decoded) live with the CNN's data in tests/test_mnist_cnn.py.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import QUIET, ROOT, write_three_line

from kt.cli import main, run_cli
from kt.core.errors import InputError

COVID_HEADER = "id,AL,AK,cli,tested_positive,cli,tested_positive"
COVID_ROWS = [f"{i},1,0,{i % 7}.5,{i % 5}.25,{i % 3}.5,{i % 4}.75" for i in range(1, 41)]


@dataclass
class Ctx:
    """What a case can use: its own folder, and checkpoints trained once for the whole module."""

    tmp: Path
    dkt_ckpt: Path
    mlp_ckpt: Path

    def write(self, name: str, text: str) -> Path:
        path = self.tmp / name
        path.write_text(text)
        return path

    def dkt(self, subcommand: str, train: str = "train.csv", *extra: str) -> list[str]:
        """`kt <subcommand>` for DKT on 3-line files in ``tmp`` (train.csv is valid unless a case rewrites it)."""
        if not (self.tmp / "train.csv").exists():
            write_three_line(self.tmp / "train.csv", [([1, 2, 3, 4], [0, 1, 1, 0])] * 10)
        return [
            subcommand, "--model", "DKT", "--model.hidden_size", "4", "--model.emb_size", "4",
            "--data", "Assist2009DataModule", "--data.data_dir", str(self.tmp), "--data.train_file", train,
            "--data.test_file", "null", "--data.download", "false", "--trainer.max_epochs", "1", *extra,
        ]  # fmt: skip

    def covid(self, subcommand: str, *extra: str) -> list[str]:
        """`kt <subcommand>` for the COVID MLP on CSVs in ``tmp``."""
        return [subcommand, "--config", "mlp_covid_tuned",
                "--data.init_args.data_dir", str(self.tmp), "--data.init_args.top_k", "2",
                "--trainer.max_epochs", "1", *extra]

    def covid_train(self, *lines: str) -> Path:
        return self.write("covid.train.csv", "\n".join(lines) + "\n" if lines else "")


@dataclass
class Case:
    name: str
    args: Callable[[Ctx], list[str]]  # writes the bad input into ctx.tmp and returns the kt arguments
    error: str  # a regex the single error line must match (after "kt: error: ")


def predict_file(ctx: Ctx, text: str) -> list[str]:
    ctx.write("new.csv", text)
    return ctx.dkt("predict", "train.csv", "--data.predict_file", "new.csv", "--ckpt_path", str(ctx.dkt_ckpt))


def covid_predict(ctx: Ctx, *lines: str) -> list[str]:
    ctx.write("covid.test.csv", "\n".join(lines) + "\n")
    return ctx.covid("predict", "--ckpt_path", str(ctx.mlp_ckpt))


CASES = [
    # ---- missing and empty files
    Case("missing-train-file", lambda c: c.dkt("fit", "absent.csv"), r"absent\.csv not found\. Put the file there"),
    Case("missing-covid-file", lambda c: c.covid("fit"), r"covid\.train\.csv not found\. Put the ML2022Spring"),
    Case("missing-predict-file", lambda c: c.covid("predict", "--ckpt_path", str(c.mlp_ckpt),
                                                   "--data.init_args.predict_file", "nope.csv"),
         r"predict_file nope\.csv not found"),
    Case("missing-checkpoint", lambda c: c.dkt("test", "train.csv", "--ckpt_path", str(c.tmp / "no.ckpt")),
         r"checkpoint .*no\.ckpt not found"),
    Case("missing-config-file", lambda c: ["fit", "--config", str(c.tmp / "no.yaml")],
         r"config: File does not exist: .*no\.yaml"),
    Case("empty-3-line-file", lambda c: c.write("empty.csv", "") and c.dkt("fit", "empty.csv"),
         r"empty\.csv: the file is empty"),
    Case("empty-covid-file", lambda c: c.covid_train() and c.covid("fit"), r"covid\.train\.csv: the file is empty"),
    Case("empty-checkpoint", lambda c: c.write("e.ckpt", "") and c.dkt("test", "train.csv", "--ckpt_path",
                                                                       str(c.tmp / "e.ckpt")),
         r"e\.ckpt: the file is empty"),
    # ---- wrong header or column count
    Case("wrong-header", lambda c: covid_predict(c, COVID_HEADER.replace("AK", "XX")[: -len(",tested_positive")],
                                                 "1,1,0,2,3,4"),
         r"covid\.test\.csv, line 1, column 3: header 'XX', expected 'AK'"),
    Case("wrong-column-count",
         lambda c: c.covid_train(COVID_HEADER, *COVID_ROWS[:5], "99,1,0,2,3", *COVID_ROWS[5:]) and c.covid("fit"),
         r"covid\.train\.csv, line 7: 5 columns, expected 7 as in the header"),
    Case("wrong-3-line-length", lambda c: c.write("bad.csv", "3\n1,2\n0,1\n") and c.dkt("fit", "bad.csv"),
         r"bad\.csv, line 1: length 3, but 2 skill ids \(line 2\) and 2 answers \(line 3\)"),
    # ---- bad cells
    Case("non-numeric-cell",
         lambda c: c.covid_train(COVID_HEADER, *COVID_ROWS[:2], "3,1,0,abc,1,2,3", *COVID_ROWS[3:]) and c.covid("fit"),
         r"covid\.train\.csv, line 4, column 4 \(cli\): expected a finite number, got 'abc'"),
    Case("nan-cell",
         lambda c: c.covid_train(COVID_HEADER, *COVID_ROWS[:9], "10,1,0,1,nan,2,3", *COVID_ROWS[10:])
         and c.covid("fit"),
         r"covid\.train\.csv, line 11, column 5 \(tested_positive\): expected a finite number, got 'nan'"),
    Case("nan-in-predict-file", lambda c: covid_predict(c, COVID_HEADER[: -len(",tested_positive")],
                                                        "1,1,0,2,3,NaN"),
         r"covid\.test\.csv, line 2, column 6 \(cli\): expected a finite number, got 'NaN'"),
    Case("non-binary-answer", lambda c: c.write("bad.csv", "2\n1,2\n1,x\n") and c.dkt("fit", "bad.csv"),
         r"bad\.csv, line 3: answers must be 0 or 1, found 'x'"),
    Case("non-numeric-length", lambda c: c.write("bad.csv", "two\n1,2\n1,0\n") and c.dkt("fit", "bad.csv"),
         r"bad\.csv, line 1: expected a sequence length, found 'two'"),
    # ---- skills the model does not know (DKT predict)
    Case("unknown-skill-in-predict-file", lambda c: predict_file(c, "3\n1,2,3\n1,0,1\n3\n2,99,4\n1,1,0\n"),
         r"new\.csv, line 5 \(student 1\): skill id\(s\) 99 are not in the model's vocabulary of 4 skills"),
    # ---- options and config keys
    Case("unknown-option", lambda c: c.dkt("fit", "train.csv", "--model.init_args.nonexistent", "3"),
         r"Option 'nonexistent' is not accepted \(`kt fit --model\.help DKT` lists its options\)$"),
    Case("unknown-config-key", lambda c: ["fit", "--config", str(c.write("x.yaml", "trainer:\n  max_epoch: 3\n"))],
         r"does not accept option 'trainer\.max_epoch' \(`kt fit --help` lists the options\)$"),
    Case("unknown-model-option-in-config",
         lambda c: ["fit", "--config", str(c.write("m.yaml", "model:\n  class_path: kt.tracing.DKT\n  init_args:\n"
                                                             "    hiden_size: 3\n"))],
         r"model: .*Option 'hiden_size' is not accepted"),
    Case("unknown-subcommand", lambda c: ["train"], r"invalid choice: 'train' \(choose from 'fit', .*see `kt --help`"),
    Case("no-model", lambda c: ["fit"], r"the following arguments are required: fit\.model \(`kt fit --help`"),
    Case("wrong-type", lambda c: c.dkt("fit", "train.csv", "--trainer.max_epochs", "abc"),
         r"trainer\.max_epochs: Expected int; Given value: abc"),
    Case("bad-choice", lambda c: c.dkt("fit", "train.csv", "--model.backbone", "rnn"),
         r"backbone\": Expected a typing\.Literal\['lstm', 'gru', 'xlstm'\]\. Got value: rnn"),
    Case("checkpoint-of-another-model", lambda c: c.dkt("test", "train.csv", "--ckpt_path", str(c.mlp_ckpt)),
         r"mlp_covid_tuned/.*last\.ckpt holds a MLPRegressor model, but the config's model is kt\.tracing\.DKT"),
    Case("not-a-checkpoint", lambda c: c.dkt("test", "train.csv", "--ckpt_path", str(c.tmp / "train.csv")),
         r"train\.csv is not a PyTorch checkpoint"),
]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> tuple[Path, Path]:
    """A DKT (skills 1-4) and a COVID MLP checkpoint, trained for one epoch each."""
    tmp = tmp_path_factory.mktemp("trained")
    ctx = Ctx(tmp, Path(), Path())
    logs = ["--trainer.logger.init_args.save_dir", str(tmp / "logs"), *QUIET]
    dkt = run_cli([*ctx.dkt("fit", "train.csv", "--data.val_fraction", "0.2"), *logs])
    ctx.covid_train(COVID_HEADER, *COVID_ROWS)
    mlp = run_cli([*ctx.covid("fit"), *logs])
    return Path(dkt.trainer.checkpoint_callback.last_model_path), Path(mlp.trainer.checkpoint_callback.last_model_path)


def run_kt(args: list[str], capsys) -> tuple[int, str]:
    # Python warnings (Lightning's hints) are not kt's output; in a real run they come before the error line.
    with pytest.raises(SystemExit) as exit_info, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main(args)
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.slow  # end to end through the CLI (CI runs it; `make test-fast` skips it)
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input(case: Case, tmp_path: Path, checkpoints, capsys, monkeypatch):
    monkeypatch.delenv("KT_TRACEBACK", raising=False)
    ctx = Ctx(tmp_path / "in", *checkpoints)
    ctx.tmp.mkdir()
    out = tmp_path / "out"
    args = [*case.args(ctx), *QUIET, "--trainer.logger.init_args.save_dir", str(out / "logs"),
            "--checkpoint.dirpath", str(out / "ckpt"), "--prediction_writer.output_path", str(out / "pred.csv")]
    code, err = run_kt(args, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("kt: error: ") and re.search(case.error, lines[0]), lines[0]
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()], sorted(out.rglob("*"))


def test_traceback_on_request(tmp_path, checkpoints, monkeypatch):
    monkeypatch.setenv("KT_TRACEBACK", "1")
    ctx = Ctx(tmp_path, *checkpoints)
    with pytest.raises(InputError, match="absent.csv not found"):
        main(ctx.dkt("fit", "absent.csv", "--trainer.logger", "false"))


def test_help_still_works(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["predict", "--help"])
    assert exit_info.value.code == 0
    assert "--ckpt_path CKPT_PATH" in capsys.readouterr().out


@pytest.mark.slow
def test_the_real_command_prints_one_line_and_no_traceback(tmp_path):
    """The installed entry point, in a fresh process: stderr ends with the one error line, no traceback."""
    ctx = Ctx(tmp_path, Path(), Path())
    ctx.covid_train(COVID_HEADER, *COVID_ROWS[:3], "4,1,0,1,2,nan,3", *COVID_ROWS[4:])
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    env.pop("KT_TRACEBACK", None)
    result = subprocess.run([sys.executable, "-m", "kt", *ctx.covid("fit"), "--trainer.logger", "false", *QUIET],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("kt: error:")]
    assert errors == [f"kt: error: {tmp_path / 'covid.train.csv'}, line 5, column 6 (cli): "
                      "expected a finite number, got 'nan'"]
    assert result.stderr.strip().splitlines()[-1] == errors[0]
    assert not list(tmp_path.rglob("*.ckpt")) and not (tmp_path / "pred.csv").exists()
