"""Hostile input and faults, through the `kt` command: out-of-range options, files that are not what their
name says, float32 overflow, every image mode and oversized images, bad output paths, signals, and
inference from the checkpoint alone.

Each error case: exit code 2, exactly one ``kt: error:`` line naming the file or option, no traceback, no
run folder or output left, an existing output unchanged.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import QUIET, kt_env, make_covid_csv, write_mnist_folder, write_three_line

import kt
from kt.cli import main, run_cli
from kt.core.errors import InputError
from kt.core.signals import StopOnSignals, Stopped
from kt.vision import image_files
from kt.vision.image_files import load_grey

SKILLS = [([1, 2, 3, 4], [0, 1, 1, 0]), ([2, 3, 4, 1], [1, 1, 0, 1])] * 5
CNN = ["--model", "kt.vision.CNN", "--model.channels", "[4]", "--model.fc_sizes", "[]"]


# ------------------------------------------------------------------------------------------------ builders
def dkt_args(subcommand: str, folder: Path, *extra: str) -> list[str]:
    """`kt <subcommand>` for a tiny DKT on 3-line files in ``folder``."""
    return [subcommand, "--model", "DKT", "--model.hidden_size", "4", "--model.emb_size", "4",
            "--data", "Assist2009DataModule", "--data.data_dir", str(folder), "--data.train_file", "train.csv",
            "--data.test_file", "null", "--data.download", "false", "--trainer.max_epochs", "1", *extra]  # fmt: skip


def covid_args(subcommand: str, folder: Path, *extra: str) -> list[str]:
    return [subcommand, "--config", "mlp_covid_tuned", "--data.init_args.data_dir", str(folder),
            "--data.init_args.top_k", "2", "--trainer.max_epochs", "1", *extra]  # fmt: skip


def outputs(out: Path) -> list[str]:
    """``--trainer`` options that put everything a run writes under ``out``."""
    return [*QUIET, "--trainer.logger.init_args.save_dir", str(out / "logs"), "--checkpoint.dirpath",
            str(out / "ckpt"), "--prediction_writer.output_path", str(out / "pred.csv")]  # fmt: skip


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """Tiny DKT, COVID MLP and CNN checkpoints (one epoch each) and the folders of their data."""
    tmp = tmp_path_factory.mktemp("trained")
    dkt_dir, covid_dir = tmp / "dkt", tmp / "covid"
    dkt_dir.mkdir()
    covid_dir.mkdir()
    write_three_line(dkt_dir / "train.csv", SKILLS)
    make_covid_csv(covid_dir / "covid.train.csv", rows=60)
    make_covid_csv(covid_dir / "covid.test.csv", rows=10, seed=1, target=False)
    mnist_dir = write_mnist_folder(tmp / "idx", train=60, test=10)
    logs = ["--trainer.logger.init_args.save_dir", str(tmp / "logs"), *QUIET]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dkt_cli = run_cli([*dkt_args("fit", dkt_dir, "--data.val_fraction", "0.2"), *logs])
        mlp_cli = run_cli([*covid_args("fit", covid_dir), *logs])
        cnn_cli = run_cli(["fit", *CNN, "--data", "kt.vision.MNISTDataModule", "--data.data_dir", str(mnist_dir),
                           "--data.val_size", "10", "--data.download", "false", "--trainer.max_epochs", "1", *logs])
    last = {name: Path(cli.trainer.checkpoint_callback.last_model_path)
            for name, cli in (("dkt", dkt_cli), ("mlp", mlp_cli), ("cnn", cnn_cli))}  # fmt: skip
    return {**last, "dkt_dir": dkt_dir, "covid_dir": covid_dir, "mnist_dir": mnist_dir}


def run_kt(args: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        main(args)
    return exit_info.value.code, capsys.readouterr().err


def expect_error(args: list[str], out: Path, capsys, pattern: str) -> str:
    """Exit 2, one `kt: error:` line matching ``pattern``, no traceback, no file under ``out`` written or
    changed."""
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} if out.exists() else {}
    code, err = run_kt(args, capsys)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith("kt: error: ") and re.search(pattern, lines[0]), lines[0]
    after = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} if out.exists() else {}
    # No file written or changed. (Empty log folders that a run failing after the parse leaves are another
    # check's business; the option cases below, refused at parse time, assert that nothing at all exists.)
    assert after == before, sorted(set(after) ^ set(before))
    return lines[0]


@pytest.fixture(autouse=True)
def _no_traceback_env(monkeypatch):
    monkeypatch.delenv("KT_TRACEBACK", raising=False)


# ------------------------------------------------------------------------------- 1. option values out of range
OPTION_CASES = [
    ("batch size 0", ["--data.batch_size", "0"], r'"batch_size": Not of type PositiveInt: 0 .*v>0'),
    ("negative batch size", ["--data.batch_size", "-8"], r'"batch_size": Not of type PositiveInt: -8'),
    ("val_fraction -0.2", ["--data.val_fraction", "-0.2"], r'"val_fraction": Not of type OpenUnitInterval: -0.2'),
    ("val_fraction 1.5", ["--data.val_fraction", "1.5"], r'"val_fraction": Not of type OpenUnitInterval: 1.5'),
    ("no students", ["--data.num_students", "0"], r'"num_students": Not of type PositiveInt: 0'),
    ("seq_len 0", ["--data.seq_len", "0"], r'"seq_len": Not of type PositiveInt'),
    ("negative workers", ["--data.num_workers", "-1"], r'"num_workers": Not of type NonNegativeInt'),
    ("max_epochs -3", ["--trainer.max_epochs", "-3"], r"trainer\.max_epochs: expected -1 \(no limit\) or a count"),
    ("dropout 1.5", ["--model.dropout", "1.5"], r'"dropout": Not of type Fraction: 1.5'),
    ("hidden size 0", ["--model.hidden_size", "0"], r'"hidden_size": Not of type PositiveInt'),
    ("lr 0", ["--model.lr", "0"], r'"lr": Not of type PositiveFloat'),
    ("negative weight decay", ["--model.weight_decay", "-1"], r'"weight_decay": Not of type NonNegativeFloat'),
    ("fractions add to 1.1", ["--data.val_fraction", "0.6", "--data.test_fraction", "0.5"],
     r"SyntheticKTDataModule: val_fraction 0\.6 \+ test_fraction 0\.5 = 1\.1 leaves no training data"),
    ("an empty validation split", ["--data.num_students", "4", "--data.val_fraction", "0.1"],
     r"SyntheticKTDataModule: val_fraction 0\.1 of 4 students is an empty split; raise it to at least 0\.25"),
]


@pytest.mark.parametrize("extra,pattern", [c[1:] for c in OPTION_CASES], ids=[c[0] for c in OPTION_CASES])
def test_out_of_range_dkt_options(extra, pattern, tmp_path, capsys):
    args = ["fit", "--config", "dkt_synthetic", "--data.num_students", "40", "--data.steps_per_student", "5",
            "--model.hidden_size", "4", "--model.emb_size", "4", *extra, *outputs(tmp_path / "out")]  # fmt: skip
    expect_error(args, tmp_path / "out", capsys, pattern)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "extra,pattern",
    [(["--data.init_args.valid_ratio", "1.5"], r'"valid_ratio": Not of type Fraction: 1\.5'),
     (["--data.init_args.batch_size", "-1"], r'"batch_size": Not of type PositiveInt'),
     (["--model.init_args.hidden_sizes", "[16, 0]"], r'"hidden_sizes".*PositiveInt'),
     (["--model.init_args.dropout", "-0.1"], r'"dropout": Not of type Fraction')],
    ids=["valid_ratio", "batch_size", "hidden_sizes", "dropout"],
)  # fmt: skip
def test_out_of_range_mlp_options(extra, pattern, tmp_path, capsys):
    make_covid_csv(tmp_path / "covid.train.csv", rows=40)
    expect_error([*covid_args("fit", tmp_path, *extra), *outputs(tmp_path / "out")], tmp_path / "out", capsys, pattern)


def test_out_of_range_cnn_options(tmp_path, capsys):
    args = ["fit", *CNN, "--data", "kt.vision.MNISTDataModule", "--data.data_dir", str(tmp_path),
            "--model.label_smoothing", "1", *outputs(tmp_path / "out")]  # fmt: skip
    expect_error(args, tmp_path / "out", capsys, r'"label_smoothing": Not of type Fraction: 1')


def test_help_shows_the_ranges(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--data.help", "SyntheticKTDataModule"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert re.search(r"--data\.init_args\.batch_size BATCH_SIZE\s+training batch size|type: PositiveInt", text)
    assert "type: OpenUnitInterval" in text and "type: PositiveInt" in text


def test_checkpoint_hyperparameters_are_plain_numbers(trained):
    """Range-checked types never reach a checkpoint (weights_only loading would refuse their class)."""
    for name in ("dkt", "mlp", "cnn"):
        hparams = torch.load(trained[name], weights_only=True)["hyper_parameters"]
        numbers = [v for v in hparams.values() if isinstance(v, (int, float))]
        numbers += [x for v in hparams.values() if isinstance(v, list) for x in v if isinstance(x, (int, float))]
        assert numbers and all(type(v) in (int, float, bool) for v in numbers), hparams


# ------------------------------------------------------------------------- 2. files that are not what they say
def test_latin1_three_line_file(tmp_path, capsys):
    (tmp_path / "train.csv").write_bytes("3\n1,2,3\n0,1,1\n2\ncaf\xe9,2\n0,1\n".encode("latin-1"))
    expect_error([*dkt_args("fit", tmp_path), *outputs(tmp_path / "out")], tmp_path / "out", capsys,
                 rf"{re.escape(str(tmp_path / 'train.csv'))}, line 5: byte 0xe9 is not UTF-8 text")  # fmt: skip


def test_binary_three_line_file(tmp_path, capsys):
    (tmp_path / "train.csv").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00\x01")
    expect_error([*dkt_args("fit", tmp_path), *outputs(tmp_path / "out")], tmp_path / "out", capsys,
                 r"train\.csv, line 1: byte 0x89 is not UTF-8 text; expected the 3-line format")  # fmt: skip


@pytest.mark.parametrize("content", [b"hello world\nfoo\n", b"3\n1,2,3\n0,1,1\n", bytes(range(256)) * 4],
                         ids=["text", "three-line", "binary"])  # fmt: skip
def test_file_named_ckpt_that_is_not_one(content, trained, tmp_path, capsys):
    fake = tmp_path / "model.ckpt"
    fake.write_bytes(content)
    args = [*dkt_args("predict", trained["dkt_dir"], "--ckpt_path", str(fake)), *outputs(tmp_path / "out")]
    expect_error(args, tmp_path / "out", capsys, rf"checkpoint {re.escape(str(fake))} is not a PyTorch checkpoint")
    with pytest.raises(InputError, match="is not a PyTorch checkpoint"):
        kt.load_checkpoint(fake)


def test_checkpoint_whose_tensors_disagree_with_its_hyperparameters(trained, tmp_path, capsys):
    checkpoint = torch.load(trained["dkt"], weights_only=True)
    checkpoint["hyper_parameters"]["hidden_size"] = 6
    edited = tmp_path / "edited.ckpt"
    torch.save(checkpoint, edited)
    out = tmp_path / "out"
    out.mkdir()
    (out / "pred.csv").write_text("old\n")
    args = [*dkt_args("predict", trained["dkt_dir"], "--ckpt_path", str(edited)), *outputs(out)]
    pattern = rf"checkpoint {re.escape(str(edited))}: tensor net\.\S+ has shape \(16, 4\), but the hyperparameters"
    expect_error(args, out, capsys, pattern + r" saved with it build \(24, 4\)")
    with pytest.raises(InputError, match=pattern):
        kt.load_checkpoint(edited)


# -------------------------------------------------------------------------------------- 3. float32 overflow
def test_value_beyond_float32_in_a_covid_feature(trained, tmp_path, capsys):
    frame = pd.read_csv(trained["covid_dir"] / "covid.test.csv", header=None, skiprows=1)
    header = (trained["covid_dir"] / "covid.test.csv").read_text().splitlines()[0]
    frame.iloc[3, 5] = 1e200  # finite in float64, inf in float32
    with open(tmp_path / "huge.csv", "w") as handle:
        handle.write(header + "\n")
        frame.to_csv(handle, index=False, header=False)
    args = [*covid_args("predict", trained["covid_dir"], "--data.init_args.predict_file", str(tmp_path / "huge.csv"),
                        "--ckpt_path", str(trained["mlp"])), *outputs(tmp_path / "out")]  # fmt: skip
    expect_error(args, tmp_path / "out", capsys, r"huge\.csv, line 5, column 6 \(\w+\): 1e\+200 is beyond float32")


def test_nan_predictions_are_an_error_not_an_empty_cell(trained, tmp_path, capsys):
    """Whatever makes the model produce NaN (here: its own weights), no empty cell is written with exit 0."""
    checkpoint = torch.load(trained["mlp"], weights_only=True)
    for name, tensor in checkpoint["state_dict"].items():
        if name.endswith("weight"):
            tensor.fill_(float("nan"))
    broken = tmp_path / "nan.ckpt"
    torch.save(checkpoint, broken)
    out = tmp_path / "out"
    out.mkdir()
    (out / "pred.csv").write_text("id,tested_positive\n1,2.0\n")
    args = [*covid_args("predict", trained["covid_dir"], "--ckpt_path", str(broken)), *outputs(out)]
    expect_error(args, out, capsys, r"pred\.csv, prediction row 1 \(id \d+\), column 'tested_positive': nan; the model "
                 "produced no finite value")


# ------------------------------------------------------------------------------------------------ 4. images
def luma(rgb: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma, computed here independently of Pillow, in 0..255."""
    return rgb[..., 0] * 0.299 + rgb[..., 1] * 0.587 + rgb[..., 2] * 0.114


def on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None] / 255.0
    return rgb * a + 255.0 * (1 - a)


GRADIENT = np.tile(np.linspace(0, 1, 16), (12, 1))  # 12 x 16, 0..1 left to right


def _image_cases():
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(12, 16, 3)).astype(np.uint8)
    alpha = rng.integers(0, 256, size=(12, 16)).astype(np.uint8)
    grey16 = (GRADIENT * 65535).astype(np.uint16)
    palette = np.arange(256, dtype=np.uint8)
    palette_rgb = np.stack([palette, 255 - palette, palette // 2], 1)
    indices = rng.integers(0, 256, size=(12, 16)).astype(np.uint8)
    p = Image.fromarray(indices, mode="P")
    p.putpalette(palette_rgb.flatten().tolist())
    cmyk = rng.integers(0, 256, size=(12, 16, 4)).astype(np.uint8)
    bits = rng.random((12, 16)) > 0.5
    grey_a = np.stack([rgb[..., 0], alpha], -1)
    p_alpha = np.stack([indices, alpha], -1)
    return {
        "I;16": (Image.fromarray(grey16), grey16 / 257.0),
        "I": (Image.fromarray(grey16.astype(np.int32), mode="I"), grey16 / 257.0),
        "F": (Image.fromarray(GRADIENT.astype(np.float32), mode="F"), GRADIENT.astype(np.float32) * 255.0),
        "P": (p, luma(palette_rgb[indices].astype(float))),
        "LA": (Image.fromarray(grey_a, mode="LA"), on_white(grey_a[..., :1].astype(float), alpha)[..., 0]),
        "RGBA": (Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA"), luma(on_white(rgb.astype(float), alpha))),
        "PA": (_pa_image(p, p_alpha), luma(on_white(palette_rgb[indices].astype(float), alpha))),
        "CMYK": (Image.fromarray(cmyk, mode="CMYK"), luma(_cmyk_to_rgb(cmyk))),
        "1": (Image.fromarray(bits), bits * 255.0),
        "RGB": (Image.fromarray(rgb), luma(rgb.astype(float))),
    }


def _pa_image(p, p_alpha):
    from PIL import Image

    image = p.convert("PA")  # keeps the palette; the alpha band is then set
    image.putalpha(Image.fromarray(p_alpha[..., 1]))
    return image


def _cmyk_to_rgb(cmyk: np.ndarray) -> np.ndarray:
    # The usual (profile-free) CMYK -> RGB: (255 - c) * (255 - k) / 255 per channel.
    c = cmyk.astype(float)
    return (255.0 - c[..., :3]) * (255.0 - c[..., 3:4]) / 255.0


@pytest.mark.parametrize("mode", list(_image_cases()))
def test_every_image_mode_scaled_by_its_own_range(mode, tmp_path):
    image, expected = _image_cases()[mode]
    assert image.mode == mode
    path = tmp_path / ("image.tiff" if mode in ("F", "I", "CMYK", "PA") else "image.png")
    image.save(path)
    grey = load_grey(path)
    assert grey.shape == expected.shape
    # Pillow rounds each conversion step to whole levels: within 1.5 of the exact value.
    np.testing.assert_allclose(grey, expected, atol=1.5)
    if mode in ("I;16", "I", "F"):
        assert grey[:, -1].min() > 250 and grey[:, 0].max() < 1  # not clipped to white


def test_sixteen_bit_png_is_not_white(tmp_path):
    from PIL import Image

    dark = np.full((20, 20), 1000, dtype=np.uint16)  # dark grey in 16 bits, white after an 8-bit clip
    dark[5:15, 8:12] = 60000
    Image.fromarray(dark).save(tmp_path / "deep.png")
    grey = load_grey(tmp_path / "deep.png")
    np.testing.assert_allclose(grey, dark / 257.0, atol=0.5)


def test_oversized_image_refused_with_the_limit(trained, tmp_path, capsys, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(image_files, "MAX_IMAGE_PIXELS", 10_000)
    Image.new("1", (200, 100)).save(tmp_path / "big.png")  # 20,000 pixels
    out = tmp_path / "out"
    args = ["predict", *CNN, "--data", "kt.vision.MNISTDataModule", "--data.data_dir", str(trained["mnist_dir"]),
            "--data.download", "false", "--data.predict_files", f"[{tmp_path / 'big.png'}]",
            "--ckpt_path", str(trained["cnn"]), *outputs(out)]  # fmt: skip
    expect_error(args, out, capsys, r"big\.png: 200 x 100 = 20,000 pixels is more than kt reads \(10,000\)")


def test_decompression_bomb_refused(tmp_path):
    from PIL import Image

    Image.new("1", (8_000, 6_000)).save(tmp_path / "bomb.png")  # 48 megapixels in a few kilobytes
    assert (tmp_path / "bomb.png").stat().st_size < 100_000
    with pytest.raises(InputError, match=r"bomb\.png: 8000 x 6000 = 48,000,000 pixels is more than kt reads"):
        load_grey(tmp_path / "bomb.png")
    Image.new("1", (12_000, 8_000)).save(tmp_path / "huge.png")  # beyond Pillow's own warning limit too
    with pytest.raises(InputError, match=r"huge\.png: refused, it decodes to too many pixels .*at most 40,000,000"):
        load_grey(tmp_path / "huge.png")


# ------------------------------------------------------------------------------------------- 5. output paths
def _dkt_predict(trained, out_path: Path, log_dir: Path) -> list[str]:
    return [*dkt_args("predict", trained["dkt_dir"], "--ckpt_path", str(trained["dkt"])), *QUIET,
            "--trainer.logger.init_args.save_dir", str(log_dir), "--prediction_writer.output_path", str(out_path)]


def test_output_path_is_a_folder(trained, tmp_path, capsys):
    (tmp_path / "pred.csv").mkdir()
    expect_error(_dkt_predict(trained, tmp_path / "pred.csv", tmp_path / "logs"), tmp_path, capsys,
                 r"prediction_writer\.output_path .*pred\.csv is a folder; expected a file name")  # fmt: skip


def test_output_parent_is_a_file(trained, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    expect_error(_dkt_predict(trained, tmp_path / "notes.txt" / "sub" / "pred.csv", tmp_path / "logs"), tmp_path,
                 capsys, r"prediction_writer\.output_path .*: .*notes\.txt is a file, not a folder")  # fmt: skip


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_output_folder_not_writable(trained, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        expect_error(_dkt_predict(trained, locked / "new" / "pred.csv", tmp_path / "logs"), tmp_path, capsys,
                     r"cannot create it, .*locked is not writable")  # fmt: skip
    finally:
        locked.chmod(0o700)


def test_prediction_file_permissions_follow_umask_and_old_mode(trained, tmp_path):
    old_umask = os.umask(0o027)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run_cli(_dkt_predict(trained, tmp_path / "new.csv", tmp_path / "logs"))
            assert stat.S_IMODE((tmp_path / "new.csv").stat().st_mode) == 0o640  # 0o666 & ~0o027
            (tmp_path / "old.csv").write_text("old\n")
            (tmp_path / "old.csv").chmod(0o604)
            run_cli(_dkt_predict(trained, tmp_path / "old.csv", tmp_path / "logs"))
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE((tmp_path / "old.csv").stat().st_mode) == 0o604
    assert (tmp_path / "old.csv").read_text() != "old\n"


def test_stale_temp_files_of_dead_writers_are_removed(trained, tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".pred.csv.{dead.pid}.abc123.tmp"
    live = tmp_path / f".pred.csv.{os.getppid()}.def456.tmp"  # our parent is alive: its file stays
    other = tmp_path / f".other.csv.{dead.pid}.x.tmp"  # another output's temp file: not ours to remove
    for path in (stale, live, other):
        path.write_text("partial")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_cli(_dkt_predict(trained, tmp_path / "pred.csv", tmp_path / "logs"))
    assert not stale.exists() and live.exists() and other.exists()
    assert len(pd.read_csv(tmp_path / "pred.csv")) > 0


# ------------------------------------------------------------------------------------------------ 6. signals
def test_signal_handlers_raise_and_are_restored():
    before = signal.getsignal(signal.SIGTERM)
    handlers = StopOnSignals()
    handlers.install()
    with pytest.raises(Stopped, match="SIGTERM"):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)
    handlers.restore()
    handlers.restore()
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_predict_stops_promptly_on_a_signal(signum, trained, tmp_path):
    """A long `kt predict` (many students) gets a signal once it predicts: it stops within seconds, exits
    non-zero, leaves the old output whole and no temporary file."""
    many = tmp_path / "many.csv"
    write_three_line(many, SKILLS * 2_000)
    out = tmp_path / "pred.csv"
    out.write_text("the previous predictions\n")
    args = [*_dkt_predict(trained, out, tmp_path / "logs"), "--data.predict_file", str(many),
            "--data.batch_size", "1"]  # fmt: skip
    process = subprocess.Popen([sys.executable, "-m", "kt", *args], env=kt_env(), cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    seen, deadline = "", time.monotonic() + 120
    # Logged once the checkpoint is being restored, just before the predict loop.
    while "Restoring states" not in seen and process.poll() is None and time.monotonic() < deadline:
        seen += process.stderr.readline()
    assert process.poll() is None, seen
    time.sleep(1)
    sent = time.monotonic()
    process.send_signal(signum)
    process.stderr.close()
    code = process.wait(timeout=60)
    assert time.monotonic() - sent < 20  # seconds, on a shared 2-core machine; uninterrupted it runs on
    assert code != 0
    assert out.read_text() == "the previous predictions\n"
    assert not list(tmp_path.glob(".pred.csv.*"))


# ------------------------------------------------------------------------- 7. inference from the checkpoint alone
def test_dkt_predict_needs_no_training_file(trained, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    write_three_line(data / "new.csv", SKILLS[:3])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = tmp_path / "with_train.csv"
        run_cli([*_dkt_predict(trained, reference, tmp_path / "logs"), "--data.predict_file", "new.csv",
                 "--data.data_dir", str(data), "--data.train_file", str(trained["dkt_dir"] / "train.csv")])
        alone = tmp_path / "alone.csv"  # data_dir holds only new.csv: no train.csv anywhere to be found
        run_cli([*_dkt_predict(trained, alone, tmp_path / "logs"), "--data.predict_file", "new.csv",
                 "--data.data_dir", str(data)])  # fmt: skip
    frame = pd.read_csv(alone)
    assert len(frame) > 0
    pd.testing.assert_frame_equal(frame, pd.read_csv(reference))


def test_mlp_and_cnn_predict_need_no_training_data(trained, tmp_path):
    from PIL import Image

    covid = tmp_path / "covid"
    covid.mkdir()
    (covid / "covid.test.csv").write_bytes((trained["covid_dir"] / "covid.test.csv").read_bytes())
    Image.fromarray((GRADIENT * 255).astype(np.uint8)).save(tmp_path / "img.png")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_cli([*covid_args("predict", covid, "--ckpt_path", str(trained["mlp"])), *QUIET,
                 "--trainer.logger", "false", "--prediction_writer.output_path", str(tmp_path / "mlp.csv")])
        run_cli(["predict", *CNN, "--data", "kt.vision.MNISTDataModule", "--data.data_dir", str(tmp_path / "none"),
                 "--data.download", "false", "--data.predict_files", f"[{tmp_path / 'img.png'}]",
                 "--ckpt_path", str(trained["cnn"]), *QUIET, "--trainer.logger", "false",
                 "--prediction_writer.output_path", str(tmp_path / "cnn.csv")])  # fmt: skip
    assert len(pd.read_csv(tmp_path / "mlp.csv")) == 10
    assert len(pd.read_csv(tmp_path / "cnn.csv")) == 1


@pytest.mark.slow  # end to end through the CLI
def test_real_command_prints_one_line(tmp_path):
    """The entry point in a fresh process: the option error is the last line, exit 2, no traceback."""
    result = subprocess.run([sys.executable, "-m", "kt", "fit", "--config", "dkt_synthetic", "--data.batch_size",
                             "0", "--trainer.logger", "false"], capture_output=True, text=True, env=kt_env(),
                            cwd=tmp_path, timeout=120)  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("kt: error: data: ")
    assert not list(tmp_path.iterdir())


