"""MNIST and Fashion-MNIST: one format (IDX, 60k train / 10k test, 28 x 28 grey, 10 classes), one DataModule.

Throughput: the 60,000 training images are one 47 MB uint8 tensor, kept whole (on the GPU when training
there). Batches are index slices of it (:class:`kt.core.tensor_batches.TensorBatches`), and conversion to
float, augmentation and normalisation run per batch in ``on_after_batch_transfer``, i.e. on the training
device, instead of 60,000 ``__getitem__`` calls through PIL and ``default_collate`` per epoch. The
DataModule's interface stays the standard one (``setup``, ``*_dataloader``, batches of ``x`` and ``y``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn

from kt.core.data_state import model_data_state
from kt.core.download import ensure_file, file_digest
from kt.core.errors import InputError
from kt.core.splits import split_groups
from kt.core.tensor_batches import TensorBatches, TensorDataModule
from kt.core.validation import NonNegativeFloat, NonNegativeInt, PositiveInt
from kt.vision.augment import augment, normalize, to_float
from kt.vision.idx import read_pair
from kt.vision.image_files import expand_paths, load_image_files

Dataset = Literal["mnist", "fashion_mnist"]

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# Mirrors and md5 of the .gz files, as torchvision's datasets.MNIST / FashionMNIST.
MIRRORS = {
    "mnist": ["https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"],
    "fashion_mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}
MD5 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}
# Other places the files are often found: torchvision's layout under data_dir, and Debian's package
# (`apt-get install dataset-fashion-mnist`).
TORCHVISION_DIR = {"mnist": "MNIST/raw", "fashion_mnist": "FashionMNIST/raw"}
SYSTEM_DIRS = {"mnist": [], "fashion_mnist": ["/usr/share/datasets/fashion-mnist"]}
CLASSES = {
    "mnist": [str(d) for d in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],  # fmt: skip
}
# Mean and std of the official 60k training images' pixels in [0, 1] (the usual published values).
DATASET_STATS = {"mnist": (0.1307, 0.3081), "fashion_mnist": (0.2860, 0.3530)}


class MNISTDataModule(TensorDataModule):
    """MNIST or Fashion-MNIST from IDX files (gzipped or not), served from in-memory uint8 tensors.

    A seeded train/validation split of the official training set; the official test set for ``test`` (and
    ``predict`` by default).

    Args:
        dataset: ``mnist`` or ``fashion_mnist``.
        data_dir: folder with the four IDX files (``train-images-idx3-ubyte[.gz]`` etc.; torchvision's
            ``MNIST/raw`` / ``FashionMNIST/raw`` below it works too); default ``data/<dataset>``. Fashion-MNIST
            is also found in ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``).
        download: download absent files from the usual mirrors into ``data_dir`` (md5-checked as torchvision).
        val_size: images of the official training set held out for validation (early stopping, checkpoints).
        split_seed: seed of the train/validation permutation.
        normalization: ``seed`` = ``Normalize((0.5,), (0.5,))`` as the course seeds; ``dataset`` = the training
            set's pixel mean/std (MNIST 0.1307/0.3081, Fashion-MNIST 0.2860/0.3530).
        rotation: training augmentation: random rotation, uniform in ± this many degrees (0: none).
        translate: training augmentation: random shift by up to this many pixels (a random crop with that much
            zero padding; 0: none).
        hflip: training augmentation: random horizontal flip. Only for Fashion-MNIST: a mirrored shoe is a shoe,
            a mirrored digit is not the same digit (or any digit).
        batch_size: training batch size.
        eval_batch_size: batch size for validation, test and predict.
        predict_files: your own images for ``kt predict`` (paths, folders or glob patterns; PNG, JPEG, any size,
            dark-on-light or light-on-dark); default: the official test set. See :mod:`kt.vision.image_files`.
    """

    def __init__(
        self,
        dataset: Dataset = "mnist",
        data_dir: str | None = None,
        download: bool = True,
        val_size: PositiveInt = 5000,
        split_seed: int = 42,
        normalization: Literal["seed", "dataset"] = "seed",
        rotation: NonNegativeFloat = 0.0,
        translate: NonNegativeInt = 0,
        hflip: bool = False,
        batch_size: PositiveInt = 64,
        eval_batch_size: PositiveInt = 1000,
        predict_files: list[str] | None = None,
    ) -> None:
        super().__init__()
        if dataset not in CLASSES:
            raise InputError(f"dataset must be one of {', '.join(CLASSES)}, got '{dataset}'")
        if not 0 < val_size < 60000:
            raise InputError(f"val_size must be between 1 and 59,999, got {val_size}")
        if hflip and dataset == "mnist":
            rank_zero_warn("hflip on MNIST: a mirrored digit is not the same digit; flips suit Fashion-MNIST only")
        self.dataset = dataset
        self.data_dir = Path(data_dir) if data_dir else Path("data") / dataset
        self.download = download
        self.val_size = val_size
        self.split_seed = split_seed
        self.normalization = normalization
        self.rotation = rotation
        self.translate = translate
        self.hflip = hflip
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.predict_files = predict_files
        self.state: dict | None = None
        self.splits: dict[str, dict] = {}

    # ----------------------------------------------------------------------------------------- state
    def fit_state(self) -> dict:
        """Plain types only (the checkpoint is loaded with ``weights_only=True``)."""
        mean, std = DATASET_STATS[self.dataset] if self.normalization == "dataset" else (0.5, 0.5)
        return {"dataset": self.dataset, "classes": list(CLASSES[self.dataset]), "mean": mean, "std": std,
                "image_size": [28, 28]}  # fmt: skip

    @property
    def data_state(self) -> dict:
        if self.state is None:
            self.state = self.fit_state()
        return self.state

    # ----------------------------------------------------------------------------------------- files
    def find_file(self, name: str) -> Path:
        """The file ``name`` (raw or .gz) in ``data_dir`` or a known location, else downloaded to ``data_dir``."""
        dirs = [self.data_dir, self.data_dir / TORCHVISION_DIR[self.dataset], *map(Path, SYSTEM_DIRS[self.dataset])]
        for folder in dirs:
            for candidate in (folder / name, folder / f"{name}.gz"):
                if candidate.is_file():
                    return candidate
        target = self.data_dir / f"{name}.gz"
        where = f"Put {name}.gz (or the uncompressed {name}) in {self.data_dir} (data.data_dir)"
        mirrors = MIRRORS[self.dataset]
        if not self.download:
            raise InputError(f"{target} not found and download is off. {where}; get it from {mirrors[0]}{name}.gz")
        errors = []
        for mirror in mirrors:
            try:
                path = ensure_file(target, mirror + f"{name}.gz")
            except InputError as err:
                errors.append(str(err))
                continue
            if (actual := file_digest(path, "md5")) != MD5[self.dataset][f"{name}.gz"]:
                path.unlink()
                errors.append(f"{mirror}{name}.gz: md5 {actual}, expected {MD5[self.dataset][f'{name}.gz']}")
                continue
            return path
        raise InputError(
            f"{target} not found and could not be downloaded (offline?). {where}; get it from "
            + " or ".join(m + f"{name}.gz" for m in mirrors)
            + (" or `apt-get install dataset-fashion-mnist`" if self.dataset == "fashion_mnist" else "")
            + f". Last error: {errors[-1]}"
        )

    def load(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        images_name, labels_name = FILES[split]
        images, labels = read_pair(self.find_file(images_name), self.find_file(labels_name))
        rank_zero_info(f"{self.dataset} {split}: {len(images):,} images")
        return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))

    # ----------------------------------------------------------------------------------------- setup
    def setup(self, stage: str | None = None) -> None:
        state = model_data_state(self)
        if state is not None:
            if state.get("dataset") != self.dataset and not (stage == "predict" and self.predict_files):
                raise InputError(
                    f"the model was trained on {state.get('dataset')} but data.dataset is {self.dataset}; "
                    f"set --data.init_args.dataset {state.get('dataset')}"
                )
            self.state = state
        if stage in ("fit", "validate", None) and "train" not in self.splits:
            images, labels = self.load("train")
            split = split_groups(len(images), {"train": None, "val": self.val_size}, self.split_seed)
            train, val = torch.from_numpy(split["train"]), torch.from_numpy(split["val"])
            self.splits["train"] = {"x": images[train], "y": labels[train]}
            self.splits["val"] = {"x": images[val], "y": labels[val]}
        if stage in ("test", None) and "test" not in self.splits:
            images, labels = self.load("test")
            self.splits["test"] = {"x": images, "y": labels}
        if stage == "predict":
            self.splits["predict"] = self._predict_split()

    def _predict_split(self) -> dict:
        if not self.predict_files:
            images, labels = self.load("test")
            return {"x": images, "y": labels, "ids": [str(i) for i in range(len(images))]}
        paths = expand_paths(list(self.predict_files))
        # Whatever the model was trained on decides the framing: MNIST digits in a 20 x 20 box centred by mass.
        mnist_like = self.data_state["dataset"] == "mnist"
        images = load_image_files(paths, box=20 if mnist_like else 28, center_of_mass=mnist_like)
        rank_zero_info(f"{len(paths)} image file(s) to predict")
        return {"x": torch.from_numpy(images), "ids": [str(p) for p in paths]}

    # ----------------------------------------------------------------------------------------- batches
    def preprocess(self, images: torch.Tensor, train: bool) -> torch.Tensor:
        """uint8 images -> normalised float ``(n, 1, 28, 28)``; augmented when ``train``."""
        x = to_float(images)
        if train:
            x = augment(x, self.rotation, self.translate, self.hflip)
        state = self.data_state
        return normalize(x, state["mean"], state["std"])

    def on_after_batch_transfer(self, batch: dict, dataloader_idx: int) -> dict:
        # Runs on the training device; trainer.training is False in validation, test and predict.
        training = self.trainer is not None and self.trainer.training
        return {**batch, "x": self.preprocess(batch["x"], train=training)}

    def _batches(self, name: str) -> TensorBatches:
        split = self.splits[name]
        tensors = {k: split[k] for k in ("x", "y") if k in split}
        size = self.batch_size if name == "train" else self.eval_batch_size
        return self._tensor_batches(name, tensors, size, ids=split.get("ids"))
