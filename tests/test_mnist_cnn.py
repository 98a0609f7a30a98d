"""MNISTDataModule and CNN: IDX parsing and its errors, augmentation in training only, user image files,
predictions CSV, checkpoint round trip."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from helpers import bar_images, write_mnist_folder
from lightning.pytorch import LightningModule, Trainer

from kt.cli import main, resolve_config
from kt.core.errors import InputError
from kt.vision import mnist as mnist_module
from kt.vision.idx import read_images, read_labels, read_pair, write_idx
from kt.vision.image_files import to_mnist_style
from kt.vision.mnist import MNISTDataModule
from kt.vision.models import CNN
from kt.vision.nets import CNNNet

TINY_MODEL = ["--model", "kt.vision.CNN", "--model.channels", "[4]", "--model.fc_sizes", "[]"]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The four IDX files (gzipped training files, raw test files) with 120 training and 30 test images."""
    return write_mnist_folder(tmp_path / "idx", train=120, test=30)


def datamodule(data_dir: Path, **kwargs) -> MNISTDataModule:
    return MNISTDataModule(data_dir=str(data_dir), download=False, **{"val_size": 20, "batch_size": 32, **kwargs})


# ------------------------------------------------------------------------------------------------ IDX files
def test_idx_round_trip_raw_and_gzip(tmp_path: Path) -> None:
    images, labels = bar_images(7)
    for suffix in ("", ".gz"):
        img = write_idx(tmp_path / f"img{suffix}", images)
        lab = write_idx(tmp_path / f"lab{suffix}", labels)
        got_images, got_labels = read_pair(img, lab)
        assert got_images.dtype == np.uint8 and got_images.shape == (7, 28, 28)
        np.testing.assert_array_equal(got_images, images)
        np.testing.assert_array_equal(got_labels, labels)
    assert (tmp_path / "img.gz").read_bytes()[:2] == b"\x1f\x8b"
    # gzip is recognised by content, not by name.
    write_idx(tmp_path / "plain-name", images, compress=True)
    np.testing.assert_array_equal(read_images(tmp_path / "plain-name"), images)


def header(magic: int, *dims: int) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in dims)


@pytest.mark.parametrize(
    ("content", "reader", "message"),
    [
        (header(0x803, 2, 28, 28) + bytes(28 * 28 * 2 - 5), read_images, "truncated: 1,563 data bytes, expected 1,568"),
        (header(0x803, 1, 28, 28) + bytes(28 * 28 + 3), read_images, "has trailing bytes"),
        (header(0x801, 3) + bytes(3), read_images, "magic number 0x00000801, expected 0x00000803"),
        (header(0x803, 1, 28, 28) + bytes(784), read_labels, "magic number 0x00000803, expected 0x00000801"),
        (header(0x803, 1, 27, 27) + bytes(27 * 27), read_images, "images are 27 x 27 pixels, expected 28 x 28"),
        (header(0x801, 3) + bytes([1, 12, 3]), read_labels, "label 12 at index 1, expected 0..9"),
        (b"\x00\x00", read_images, "too short for an IDX header"),
        (header(0x803, 1), read_images, "the header is cut short"),
        (gzip.compress(header(0x801, 3) + bytes(3))[:-6], read_labels, "not a complete gzip file"),
    ],
)
def test_corrupt_idx_files_name_the_file(tmp_path: Path, content: bytes, reader, message: str) -> None:
    path = tmp_path / "broken-idx"
    path.write_bytes(content)
    with pytest.raises(InputError, match="broken-idx") as err:
        reader(path)
    assert message in str(err.value)


def test_image_and_label_counts_must_agree(tmp_path: Path) -> None:
    images, labels = bar_images(5)
    write_idx(tmp_path / "img", images)
    write_idx(tmp_path / "lab", labels[:4])
    with pytest.raises(InputError, match=r"img has 5 images but .*lab has 4 labels"):
        read_pair(tmp_path / "img", tmp_path / "lab")


@pytest.fixture
def mnist_dir(real_data) -> Path:
    """The real MNIST files in ``$KT_DATA_DIR/mnist``."""
    return real_data("mnist", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz")


def test_real_mnist_test_set(mnist_dir: Path) -> None:
    folder = mnist_dir
    images, labels = read_pair(folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (10000, 28, 28)
    counts = Counter(labels.tolist())
    assert [counts[d] for d in range(10)] == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    train_counts = Counter(read_labels(folder / "train-labels-idx1-ubyte.gz").tolist())
    assert [train_counts[d] for d in range(10)] == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    # MNIST: white digits on black; the border is background.
    assert images[:, 0, :].max() == 0 and images.mean() / 255 == pytest.approx(0.1325, abs=1e-3)


# ----------------------------------------------------------------------------------------- DataModule
def test_seeded_split_and_test_set(data_dir: Path) -> None:
    dm = datamodule(data_dir)
    dm.setup("fit")
    train, val = dm.splits["train"], dm.splits["val"]
    assert len(train["x"]) == 100 and len(val["x"]) == 20 and "test" not in dm.splits
    again = datamodule(data_dir)
    again.setup("fit")
    assert torch.equal(again.splits["val"]["x"], val["x"])
    other = datamodule(data_dir, split_seed=7)
    other.setup("fit")
    assert not torch.equal(other.splits["val"]["y"], val["y"])
    # Together the splits are the training file, each image once.
    all_images, _ = read_pair(data_dir / "train-images-idx3-ubyte.gz", data_dir / "train-labels-idx1-ubyte.gz")
    rows = sorted(x.numpy().tobytes() for x in torch.cat([train["x"], val["x"]]))
    assert rows == sorted(x.tobytes() for x in all_images)
    dm.setup("test")
    assert len(dm.splits["test"]["x"]) == 30


def test_normalisation_seed_and_dataset(data_dir: Path) -> None:
    images = torch.tensor([[[0, 255]]], dtype=torch.uint8).expand(1, 28, 2)
    seed = datamodule(data_dir).preprocess(images, train=False)
    assert seed.shape == (1, 1, 28, 2) and seed[0, 0, 0].tolist() == [-1.0, 1.0]
    fashion = MNISTDataModule(dataset="fashion_mnist", normalization="dataset")
    assert fashion.data_state["mean"] == 0.2860 and fashion.data_state["classes"][9] == "Ankle boot"
    assert fashion.preprocess(images, train=False)[0, 0, 0, 0].item() == pytest.approx(-0.2860 / 0.3530)


class Recorder(CNN):
    """Keeps the images each stage sees."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seen: dict[str, list[torch.Tensor]] = {"train": [], "val": []}

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.seen["train"].append(batch["x"].clone())
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.seen["val"].append(batch["x"].clone())
        super().validation_step(batch, batch_idx)


def fit(model: LightningModule, dm: MNISTDataModule, tmp_path: Path, epochs: int = 1) -> Trainer:
    trainer = Trainer(max_epochs=epochs, logger=False, enable_progress_bar=False, enable_model_summary=False,
                      default_root_dir=tmp_path, enable_checkpointing=False, num_sanity_val_steps=0)  # fmt: skip
    trainer.fit(model, datamodule=dm)
    return trainer


def test_augmentation_only_in_training(data_dir: Path, tmp_path: Path) -> None:
    # The bars are in the left half; a flip moves them to the right half.
    dm = datamodule(data_dir, dataset="fashion_mnist", hflip=True)  # flips are meant for Fashion-MNIST
    model = Recorder(channels=[4], fc_sizes=[])
    fit(model, dm, tmp_path)
    train = torch.cat(model.seen["train"])
    right_heavy = (train[..., 14:].sum((1, 2, 3)) > train[..., :14].sum((1, 2, 3))).float().mean()
    assert 0.25 < right_heavy < 0.75
    val = torch.cat(model.seen["val"])
    assert torch.equal(val, dm.preprocess(dm.splits["val"]["x"], train=False))


# ------------------------------------------------------------------------------------------------- model
def test_seed_network_and_recommended_size() -> None:
    seed = CNN()
    assert sum(p.numel() for p in seed.parameters()) == 206_922  # conv16, conv32, fc 1568->128, fc 10
    assert seed(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    config = yaml.safe_load(Path(resolve_config("cnn_fashion_mnist")).read_text())["model"]["init_args"]
    net = CNNNet(**{k: v for k, v in config.items() if k in CNNNet.__init__.__code__.co_varnames})
    assert sum(p.numel() for p in net.parameters()) < 500_000
    module, example = CNN(**config).eval().export_module()
    assert module(*example).shape == (2, 10)


def test_checkpoint_round_trip(data_dir: Path, tmp_path: Path) -> None:
    dm = datamodule(data_dir, normalization="dataset")
    model = CNN(channels=[4, 8], fc_sizes=[16], batch_norm=True, dropout=0.2)
    trainer = fit(model, dm, tmp_path)
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    checkpoint = torch.load(path, weights_only=True)  # the data state is plain types
    assert checkpoint["hyper_parameters"]["data_state"] == {
        "dataset": "mnist", "classes": [str(d) for d in range(10)], "mean": 0.1307, "std": 0.3081,
        "image_size": [28, 28],
    }  # fmt: skip
    loaded = CNN.load_from_checkpoint(path, map_location="cpu").eval()
    model.eval()
    x = dm.preprocess(dm.splits["val"]["x"], train=False)
    torch.testing.assert_close(loaded(x), model(x))
    assert loaded.classes[3] == "3"


# ----------------------------------------------------------------------------------------- user images
def digit_picture(width: int, height: int, dark_on_light: bool) -> np.ndarray:
    """A thick vertical stroke off-centre in a big picture, like a photographed '1'."""
    picture = np.full((height, width), 230 if dark_on_light else 20, dtype=np.uint8)
    picture[height // 5 : height * 4 // 5, width // 5 : width // 5 + width // 10] = 15 if dark_on_light else 240
    return picture


def test_user_images_become_mnist_style() -> None:
    for dark_on_light in (True, False):
        image = to_mnist_style(digit_picture(300, 200, dark_on_light).astype(float))
        assert image.shape == (28, 28) and image.dtype == np.uint8
        assert image[0].max() == 0 and image.max() == 255  # white on black, background 0
        rows, cols = np.nonzero(image > 128)
        assert rows.max() - rows.min() + 1 == 20  # the longer side fits the 20-pixel box
        ys, xs = np.indices(image.shape)
        centre = [(ys * image).sum() / image.sum(), (xs * image).sum() / image.sum()]
        assert centre == pytest.approx([14, 14], abs=0.6)  # centred by mass, at (14, 14) as MNIST
    np.testing.assert_array_equal(
        to_mnist_style(digit_picture(300, 200, True).astype(float)),
        to_mnist_style(digit_picture(300, 200, False).astype(float)),
    )


def test_real_mnist_digits_survive_the_photo_round_trip(mnist_dir: Path) -> None:
    """A test digit enlarged 4x and made dark on light, as a user's scan, comes back as the original."""
    from PIL import Image

    images = read_images(mnist_dir / "t10k-images-idx3-ubyte.gz")[:100]
    correlations = []
    for image in images:
        scan = 255.0 - np.asarray(Image.fromarray(image).resize((112, 112), Image.BILINEAR), dtype=float)
        back = to_mnist_style(scan).astype(float)
        correlations.append(np.corrcoef(back.ravel(), image.astype(float).ravel())[0, 1])
    assert np.median(correlations) > 0.95 and np.mean(correlations) > 0.9


# -------------------------------------------------------------------------------------------------- CLI
def quiet(tmp_path: Path) -> list[str]:
    return ["--trainer.logger.init_args.save_dir", str(tmp_path / "logs"), "--trainer.enable_progress_bar", "false"]


@pytest.mark.slow  # fit, then predict twice, through the CLI
def test_cli_fit_predict_test_set_and_own_images(data_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    data = ["--data", "kt.vision.MNISTDataModule", "--data.data_dir", str(data_dir), "--data.val_size", "20",
            "--data.download", "false", *quiet(tmp_path)]  # fmt: skip
    main(["fit", *TINY_MODEL, *data, "--trainer.max_epochs", "1"])
    ckpt = next(tmp_path.rglob("last.ckpt"))
    out = tmp_path / "pred.csv"
    main(["predict", *TINY_MODEL, *data, "--ckpt_path", str(ckpt), "--prediction_writer.output_path", str(out)])
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["image", "label", "pred", "pred_name"] + [f"p_{k}" for k in range(10)]
    assert len(frame) == 30 and frame["image"].tolist() == list(range(30))
    assert frame["label"].tolist() == read_labels(data_dir / "t10k-labels-idx1-ubyte").tolist()
    probs = frame[[f"p_{k}" for k in range(10)]].to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    assert (probs.argmax(1) == frame["pred"]).all() and (frame["pred_name"] == frame["pred"]).all()

    photos = tmp_path / "photos"
    photos.mkdir()
    Image.fromarray(digit_picture(120, 90, True)).save(photos / "one.png")
    Image.fromarray(digit_picture(50, 64, False)).convert("RGB").save(photos / "two.jpg")
    out = tmp_path / "own.csv"
    main(["predict", *TINY_MODEL, *data, "--data.predict_files", f"[{photos}/*.png, {photos / 'two.jpg'}]",
          "--ckpt_path", str(ckpt), "--prediction_writer.output_path", str(out)])  # fmt: skip
    frame = pd.read_csv(out)
    assert frame["image"].tolist() == [str(photos / "one.png"), str(photos / "two.jpg")]
    assert frame["label"].isna().all()


def expect_one_line_error(capsys, args: list[str], message: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kt: error: ") and message in err[0], err


def test_cli_bad_image_and_truncated_idx_are_one_line_errors(data_dir: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "scan.png"
    bad.write_bytes(b"not a png at all")
    out = tmp_path / "pred.csv"
    common = [*TINY_MODEL, "--data", "kt.vision.MNISTDataModule", "--data.data_dir", str(data_dir),
              "--data.download", "false", "--prediction_writer.output_path", str(out), *quiet(tmp_path)]  # fmt: skip
    expect_one_line_error(capsys, ["predict", *common, "--data.predict_files", f"[{bad}]"],
                          f"{bad}: cannot read it as an image")  # fmt: skip
    test_images = data_dir / "t10k-images-idx3-ubyte"
    test_images.write_bytes(test_images.read_bytes()[:-100])
    expect_one_line_error(capsys, ["predict", *common], f"{test_images}: truncated")
    assert not out.exists() and not list(tmp_path.glob(".pred.csv*"))


def test_missing_files_say_where_to_put_them(tmp_path: Path, monkeypatch) -> None:
    dm = MNISTDataModule(dataset="mnist", data_dir=str(tmp_path / "none"), download=False)
    with pytest.raises(InputError, match=r"t10k-images-idx3-ubyte.gz not found and download is off\. Put"):
        dm.setup("test")
    # Offline: every mirror fails, and the message still says where to put the file and where to get it.
    monkeypatch.setitem(mnist_module.MIRRORS, "mnist", [f"file://{tmp_path}/no-mirror/"])
    dm = MNISTDataModule(dataset="mnist", data_dir=str(tmp_path / "none"))
    with pytest.raises(InputError, match=r"could not be downloaded \(offline\?\)\. Put t10k-images-idx3-ubyte.gz"):
        dm.setup("test")


def test_lone_last_image_is_skipped_with_batch_norm(data_dir: Path, tmp_path: Path) -> None:
    dm = datamodule(data_dir, val_size=19, batch_size=50)  # 101 training images: batches of 50, 50 and 1
    model = Recorder(channels=[4], fc_sizes=[8], batch_norm=True)
    fit(model, dm, tmp_path)
    assert [len(x) for x in model.seen["train"]] == [50, 50, 1]  # and no "Expected more than 1 value" error


def test_flip_test_time_augmentation_averages_the_mirror_image() -> None:
    torch.manual_seed(0)
    model = CNN(channels=[4], fc_sizes=[], tta_hflip=True).eval()
    x = torch.randn(3, 1, 28, 28)
    torch.testing.assert_close(model.evaluate(x), (model(x) + model(x.flip(-1))) / 2)
    torch.testing.assert_close(model.evaluate(x), model.evaluate(x.flip(-1)))  # mirror images: same answer
    assert not torch.allclose(model(x), model(x.flip(-1)))
