"""The four knowledge-tracing splits the DKVMN authors published (Zhang et al., WWW 2017), in the 3-line format.

One DataModule for all four, since they differ only in file names and in how skill names are stored:
``dataset`` picks the files, ``fold`` the split. ``fold=K`` trains on ``<prefix>trainK.csv`` and validates on
``<prefix>validK.csv`` (model choices are made there); ``fold=None`` trains on the whole training split (a
``val_fraction`` of its students held out for checkpoint selection) and tests on the published test split,
for the final score only.

Absent files are downloaded from the authors' repository and checked against the sha256 recorded here. The
test splits' checksums are known only for ASSISTments 2009; the other test files are downloaded unverified.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lightning.pytorch.utilities import rank_zero_warn

from kt.core.download import ensure_file
from kt.core.errors import InputError
from kt.core.validation import NonNegativeInt, OpenUnitInterval, PositiveInt
from kt.tracing.data.datamodule import KnowledgeTracingDataModule
from kt.tracing.data.formats import read_skill_map, read_three_line, student_location
from kt.tracing.data.sequences import Interactions

REPOSITORY = "https://raw.githubusercontent.com/jennyzhang0215/DKVMN/master/data/"
DatasetName = Literal["synthetic5", "assist2009", "assist2015", "statics2011"]


@dataclass(frozen=True)
class DKVMNDataset:
    """Where one data set lives in the authors' repository and what its files are called."""

    folder: str  # in the authors' repository
    prefix: str  # <prefix>train.csv, <prefix>trainK.csv, <prefix>validK.csv, <prefix>test.csv
    folds: tuple[int, ...]
    names: tuple[str, ...]  # the files the skill names are read from (see skill_names_of)
    sha256: dict[str, str] = field(default_factory=dict)  # every file whose published bytes are known

    @property
    def url(self) -> str:
        return f"{REPOSITORY}{self.folder}/"

    def files(self, fold: int | None) -> dict[str, str | None]:
        if fold is None:
            return {"train": f"{self.prefix}train.csv", "val": None, "test": f"{self.prefix}test.csv"}
        if fold not in self.folds:
            raise InputError(f"fold {fold}: this data set has folds {', '.join(map(str, self.folds))} (or null)")
        # The validation fold doubles as "test" so that nothing is split off the training fold and `kt test`
        # on a fold never touches the test split.
        valid = f"{self.prefix}valid{fold}.csv"
        return {"train": f"{self.prefix}train{fold}.csv", "val": valid, "test": valid}


DATASETS: dict[str, DKVMNDataset] = {
    "synthetic5": DKVMNDataset(
        "synthetic", "naive_c5_q50_s4000_v0_", (1,), ("cluster_info_0",),
        {
            "naive_c5_q50_s4000_v0_train.csv": "f30df366cae4cb93d2a19d77cf450e5f9afc0266b9ee686a39bda421a0a94d35",
            "naive_c5_q50_s4000_v0_train1.csv": "de508f54e63f3aae1845186676661bfbdc0a56d439cd9f766ee780a35dcbb5cc",
            "naive_c5_q50_s4000_v0_valid1.csv": "3f660af774db23826ceaef95706795422522a5d1f15644cab79ee7f248566eb4",
            "cluster_info_0": "d973b6951d425febc595118974d0b105950a569c2c896b879282079703df801e",
        },
    ),
    "assist2009": DKVMNDataset(
        "assist2009_updated", "assist2009_updated_", (1, 2, 3, 4, 5), ("assist2009_updated_skill_mapping.txt",),
        {
            "assist2009_updated_train.csv": "5b851c65f665474a0993d86e87901adb1e0916c0d80fe7fce4096e6641924c74",
            "assist2009_updated_test.csv": "2e8f1d7600543aededa31323343f7d762b8f51c53c0caca852e813b67fe4e823",
            "assist2009_updated_train1.csv": "3816a773851dd0a727322cf9396fd14a652c3a3ff07e71a56ae2ea43f4164201",
            "assist2009_updated_train2.csv": "9bc46dccd674657d730f22869da3ce7667a57c34e1c511067d6bc7f4c865bea9",
            "assist2009_updated_train3.csv": "78d66030acf16a75031d93be77e247370d6d764bc40794f8d0a40a762568aa0b",
            "assist2009_updated_train4.csv": "37b7c55f68965aac0a8e9434fc39cca137d376a18c5839ce6b368612dbabccad",
            "assist2009_updated_train5.csv": "7c5c1e8f82ecd5b90522d4a544f81810bd0b5629a9f0fb75848a219c09d78d33",
            "assist2009_updated_valid1.csv": "e4fff52e91a4b140207de7590e7bc131efa595f42fdfb3983729bc3faa5b5262",
            "assist2009_updated_valid2.csv": "f9abe32803603d8bd1f7df7275d7327462f205ee0ff29ae558a35e69e246f3dc",
            "assist2009_updated_valid3.csv": "275e96b63290dd9c47ca224ec7c089385041fbec8a66918631729907025da323",
            "assist2009_updated_valid4.csv": "4b3c59ca825eb0ebac2039efaec1722e2c93b6c4a5cab1bc3554cffec597369f",
            "assist2009_updated_valid5.csv": "14923acd4ca909d0359dbecdf4322adbe49c645453ba1405eed864a454baa001",
            "assist2009_updated_skill_mapping.txt": "fe9375c05ef1eced388179f968babcf3553dc19f1d19ddf89bf91fa809bbec29",
        },
    ),
    "assist2015": DKVMNDataset(
        "assist2015", "assist2015_", (1, 2, 3, 4, 5), ("assist2015_sname_sid",),
        {
            "assist2015_train.csv": "281f952fcbcc0572b40b43baea9844d66ebf63424671d09bd91a01ff4a55ae18",
            "assist2015_train1.csv": "4838c2732d06eacc982df5e29339d7cf05f52582272a4253e06417c731a4df15",
            "assist2015_train2.csv": "342580dab66c9182aaf7b2effdca81b626d295a050061854993919d28599d7d6",
            "assist2015_train3.csv": "2b0f30d9b3a8eb7276acc25808a9c1a14e04e0655fab52ce2f8c1d6db0ecb4e1",
            "assist2015_train4.csv": "cdd2f09011d19153a573ebcac508d3834fa153301498f06e8cb999be4f8ddd47",
            "assist2015_train5.csv": "a8ef4990b298aa749f1d29e76e15c89e387ee101866ac19bab99a8bbb9e01d19",
            "assist2015_valid1.csv": "6da14a034afc2780776cecfb175e610396672133413556d1bd3fc4fab35cc3ff",
            "assist2015_valid2.csv": "6d7598caa29b489914ebe9861443a4acdab3d47be4494618a5c05ca80f68250d",
            "assist2015_valid3.csv": "a48001a7faeec7c40b2c480b8821755b2a441ff73f9d893a267bc9efdf345429",
            "assist2015_valid4.csv": "f41e8f3bb9bc7a90f77205642a852b9a34f72dcf72270f037346642c0a61e4fe",
            "assist2015_valid5.csv": "23b1fe92d3e09defd107f34e35591500abd5294b4e45cdda5c4d86ef1d9d884d",
            "assist2015_sname_sid": "134f3d79c34de3181138f8df75934ab18ee36ba2de0f386a7e696b3912fd8d37",
        },
    ),
    "statics2011": DKVMNDataset(
        "STATICS", "STATICS_", (1, 2, 3, 4, 5), ("STATICS_qid_qname", "STATICS_qid_sid_sname"),
        {
            "STATICS_train.csv": "a8e1b27f6d47d0c890e5d45b3ac01f9fd3a9d580c9928afffcf3ed00353b9a68",
            "STATICS_train1.csv": "f671f233770ddb906d7253ce714aff74c814323fc47689abe5ed7a531ef0476c",
            "STATICS_train2.csv": "d61f04cf3b6221fe6ff45d41916c1e13b5c05f27b006f086693add5b76ce097c",
            "STATICS_train3.csv": "5dc322b9d3542987beb478f2011472eb6921bd1b4b056f5b2898a08bb3a991ef",
            "STATICS_train4.csv": "3e43dc51878c788ce0e4cd3b4fa7d4aaf58ed2202a82c7483a2d0bcdad133de2",
            "STATICS_train5.csv": "a85ac0a6be4d8a8edb85ededc632bc65120bba14f957d6fc8549d9da09e21cca",
            "STATICS_valid1.csv": "43aade6b1e2b4c2273a2b85eb7e23dee3533457e1160cbfb535d724192531e33",
            "STATICS_valid2.csv": "56dd5dec55fd9ba28799746e13ad059ea45be85f3c464d611e2edeeda2024d2d",
            "STATICS_valid3.csv": "10675bcdc55c94a080876f336e70ea98420eb5f79afcd06982d1af443915e11c",
            "STATICS_valid4.csv": "1273d14f187a38271d560fb33cedd5692fcc81d4841328b594c674ae7bf6f4e2",
            "STATICS_valid5.csv": "1368aece894a08d6c454d35fc232d02565d2e3ec70ea56bea597f6f84b95c02e",
            "STATICS_qid_qname": "8c21cac69493f8af8238455965d00221379d07da88ab1c34913dd6e8672043e9",
            "STATICS_qid_sid_sname": "6893c8a25ad1b2ed3aad0af1ac6938e48802f2aaf39877528d2336c53676ef24",
        },
    ),
}


def _table(path: Path, header: bool = False) -> list[list[str]]:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[1 if header else 0 :]
    return [line.split("\t") for line in lines if line.strip()]


def read_cluster_info(path: str | Path) -> dict[str, int]:
    """Synthetic-5's ``cluster_info_<v>``: its first line lists each exercise's concept (exercise 1 first), e.g.
    ``[3, 3, 1, ...]``; the next lines list each concept's exercises. Returns exercise id -> concept."""
    path = Path(path)
    first = path.read_text().splitlines()[0] if path.stat().st_size else ""
    try:
        concepts = [int(c) for c in first.strip().strip("[]").split(",")]
    except ValueError:
        raise InputError(f"{path}, line 1: expected a list of concepts such as [3, 3, 1, ...]") from None
    return {str(q + 1): c for q, c in enumerate(concepts)}


def skill_names_of(dataset: str, paths: list[Path]) -> dict[str, str]:
    """Skill id -> readable name, from the data set's name files (each data set stores them its own way)."""
    if dataset == "synthetic5":
        return {q: f"exercise {q} (concept {c})" for q, c in read_cluster_info(paths[0]).items()}
    if dataset == "assist2009":
        return read_skill_map(paths[0])
    if dataset == "assist2015":
        # "<name>\t<skill id>"; the names are themselves ASSISTments ids.
        return {row[1].strip(): row[0].strip() for row in _table(paths[0]) if len(row) == 2}
    # Statics: the ids are questions; a question's name, then its skill's name where it has one.
    questions = {row[0]: row[1].strip() for row in _table(paths[0], header=True) if len(row) >= 2}
    skills = {row[0]: row[2].strip() for row in _table(paths[1], header=True) if len(row) >= 3}
    return {q: f"{name} [{skills[q]}]" if skills.get(q) else name for q, name in questions.items()}


class DKVMNDataModule(KnowledgeTracingDataModule):
    """One of the DKVMN authors' four splits (module docstring), in the 3-line format, split by student.

    Args:
        dataset: ``synthetic5`` (Synthetic-5, version 0: 50 exercises, 5 hidden concepts), ``assist2009``
            (110 skills), ``assist2015`` (100 skills) or ``statics2011`` (1,223 question ids).
        fold: 1..5 (Synthetic-5: 1) trains on ``trainK`` and validates on ``validK``; ``null`` trains on the
            whole training split and tests on the test split.
        data_dir: the folder with the files (default ``data/<dataset>``); absent files are downloaded there.
        download: fetch absent files from the authors' GitHub repository (sha256-verified where known).
        verify: check the files against the published sha256 (turn off for your own files named the same way).
        val_fraction: ``fold: null`` only -- the training students held out for validation.
    """

    def __init__(
        self,
        dataset: DatasetName = "assist2009",
        fold: PositiveInt | None = 1,
        data_dir: str | None = None,
        download: bool = True,
        verify: bool = True,
        seq_len: PositiveInt = 200,
        eval_seq_len: PositiveInt | None = None,
        batch_size: PositiveInt = 32,
        val_fraction: OpenUnitInterval = 0.1,
        split_seed: int = 42,
        num_workers: NonNegativeInt = 0,
        bucket: bool = True,
        eval_tokens: PositiveInt | None = None,
    ) -> None:
        super().__init__(
            seq_len, eval_seq_len, batch_size, val_fraction, 0.0, split_seed, num_workers, bucket, eval_tokens
        )
        if dataset not in DATASETS:
            raise InputError(f"dataset {dataset!r}: expected one of {', '.join(DATASETS)}")
        self.dataset = dataset
        self.spec = DATASETS[dataset]
        self.fold = fold
        self.files = self.spec.files(fold)
        self.data_dir = Path(data_dir if data_dir is not None else f"data/{dataset}")
        self.download = download
        self.verify = verify
        self._names: dict[str, str] = {}

    def _path(self, name: str) -> Path:
        url = self.spec.url + name if self.download else None
        sha256 = self.spec.sha256.get(name) if self.verify else None
        if sha256 is None and url and not (self.data_dir / name).is_file():
            rank_zero_warn(f"{name}: no published checksum is recorded, so the download is not verified")
        return ensure_file(self.data_dir / name, url, sha256)

    def prepare_data(self) -> None:
        # Downloads happen once per machine, before setup() runs in every process.
        for name in dict.fromkeys(n for n in self.files.values() if n):  # in order, each once
            self._path(name)
        self._read_names()

    def load(self) -> dict[str, Interactions | None]:
        parts = {stage: read_three_line(self._path(name)) if name else None for stage, name in self.files.items()}
        self._names = self._read_names()
        return parts

    def _read_names(self) -> dict[str, str]:
        try:
            return skill_names_of(self.dataset, [self._path(name) for name in self.spec.names])
        except (InputError, OSError) as err:
            # Names only label pictures: without them the ids still work.
            rank_zero_warn(f"skill names unavailable, using ids only ({err})")
            return {}

    def skill_names(self) -> dict[str, str]:
        return self._names

    def where(self, stage: str, student: str) -> str:
        name = self.files.get(stage) or (self.files["test"] if stage == "predict" else None) or self.files["train"]
        return student_location(self.data_dir / name, student)
