"""ASSISTments 2009-2010 skill-builder: the 3-line DKVMN split, or the raw CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from lightning.pytorch.utilities import rank_zero_warn

from kt.core.download import ensure_file
from kt.core.errors import InputError
from kt.core.validation import Fraction, NonNegativeInt, OpenUnitInterval, PositiveInt, check_split_fractions
from kt.tracing.data.datamodule import KnowledgeTracingDataModule
from kt.tracing.data.dkvmn import DATASETS
from kt.tracing.data.formats import MultiSkill, read_skill_builder, read_skill_map, read_three_line, student_location
from kt.tracing.data.sequences import Interactions

# The DKVMN authors' split (github.com/jennyzhang0215/DKVMN, data/assist2009_updated/): 3-line files, the same
# ones DKVMNDataModule(dataset="assist2009") reads; this module adds the raw skill-builder CSV.
DKVMN_URL = DATASETS["assist2009"].url
DKVMN_SHA256 = DATASETS["assist2009"].sha256
SKILL_MAP = "assist2009_updated_skill_mapping.txt"
RAW_HELP = (
    "Get skill_builder_data.csv from the ASSISTments 2009-2010 page "
    "(https://sites.google.com/site/assistmentsdata/home/2009-2010-assistment-data) and put it in data_dir, "
    "or set raw_url (and raw_sha256) to a copy you can reach."
)


class Assist2009DataModule(KnowledgeTracingDataModule):
    """ASSISTments 2009 for knowledge tracing, split by student.

    Args:
        data_dir: folder with the files (downloaded there when absent and ``download`` is on).
        format: ``three_line`` (length / skill ids / answers per student, as in the DKT, DKVMN and SAKT
            papers) or ``raw`` (the published ``skill_builder_data.csv``).
        train_file: training sequences, relative to ``data_dir``.
        val_file: validation sequences; without one, ``val_fraction`` of the training students.
        test_file: test sequences; without one, ``test_fraction`` of the training students.
        predict_file: sequences ``kt predict`` scores; without one, the test students.
        download: fetch absent DKVMN-split files from the authors' GitHub repository (sha256-verified).
        raw_url: where to download ``train_file`` from in ``raw`` format, if absent.
        raw_sha256: its expected sha256.
        multi_skill: ``raw`` format only -- a problem tagged with several skills is several rows sharing one
            answer: ``expand`` keeps one interaction per row (as the DKT seed; evaluate with the model's
            ``score_positions: first`` to avoid scoring answers the model was just shown), ``join`` makes
            it one interaction whose skill is the joined skill ids (e.g. ``10_27``).
    """

    def __init__(
        self,
        data_dir: str = "data/assist2009",
        format: Literal["three_line", "raw"] = "three_line",
        train_file: str = "assist2009_updated_train.csv",
        val_file: str | None = None,
        test_file: str | None = "assist2009_updated_test.csv",
        predict_file: str | None = None,
        download: bool = True,
        raw_url: str | None = None,
        raw_sha256: str | None = None,
        multi_skill: MultiSkill = "expand",
        seq_len: PositiveInt = 100,
        eval_seq_len: PositiveInt | None = None,
        batch_size: PositiveInt = 64,
        val_fraction: OpenUnitInterval = 0.1,
        test_fraction: Fraction = 0.1,
        split_seed: int = 42,
        num_workers: NonNegativeInt = 0,
        bucket: bool = True,
        eval_tokens: PositiveInt | None = None,
    ) -> None:
        super().__init__(
            seq_len, eval_seq_len, batch_size, val_fraction, test_fraction, split_seed, num_workers, bucket,
            eval_tokens,
        )
        self.data_dir = Path(data_dir)
        self.format = format
        self.files = {"train": train_file, "val": val_file, "test": test_file, "predict": predict_file}
        # The fractions that split the training file (no file of their own) must leave it training students.
        held_out = {f"{name}_fraction": f for name, f in (("val", val_fraction), ("test", test_fraction))
                    if self.files[name] is None}  # fmt: skip
        check_split_fractions(type(self).__name__, **held_out)
        self.download = download
        self.raw_url = raw_url
        self.raw_sha256 = raw_sha256
        self.multi_skill = multi_skill
        self._names: dict[str, str] = {}

    def _path(self, name: str) -> Path:
        path = self.data_dir / name
        if self.format == "raw":
            url = self.raw_url if self.download and name == self.files["train"] else None
            if not path.is_file() and not url:
                raise InputError(f"{path} not found. {RAW_HELP}")
            return ensure_file(path, url, self.raw_sha256 if name == self.files["train"] else None)
        url = DKVMN_URL + name if self.download and name in DKVMN_SHA256 else None
        return ensure_file(path, url, DKVMN_SHA256.get(name))

    def _read(self, name: str) -> Interactions:
        path = self._path(name)
        if self.format == "three_line":
            return read_three_line(path)
        data, names = read_skill_builder(path, self.multi_skill)
        self._names.update(names)
        return data

    def prepare_data(self) -> None:
        # Downloads happen once per machine, before setup() runs in every process.
        if self.predicting_from_checkpoint() and self._predict_file() is not None:
            self._path(self._predict_file())  # the checkpoint has the vocabulary: no training file needed
            return
        for name in self.files.values():
            if name is not None:
                self._path(name)
        if self.format == "three_line":
            self._three_line_names()

    def _predict_file(self) -> str | None:
        return self.files["predict"] or self.files["test"]

    def load_predict(self) -> Interactions | None:
        name = self._predict_file()
        return self._read(name) if name else None

    def load(self) -> dict[str, Interactions | None]:
        parts = {stage: self._read(name) if name else None for stage, name in self.files.items()}
        if self.format == "three_line":
            self._names = self._three_line_names()
        return parts

    def _three_line_names(self) -> dict[str, str]:
        # Names exist for the DKVMN split only; other 3-line data simply has ids.
        if not (self.data_dir / SKILL_MAP).is_file() and self.files["train"] not in DKVMN_SHA256:
            return {}
        try:
            return read_skill_map(self._path(SKILL_MAP))
        except InputError as err:
            rank_zero_warn(f"skill names unavailable, using ids only ({err})")
            return {}

    def skill_names(self) -> dict[str, str]:
        return self._names

    def where(self, stage: str, student: str) -> str:
        # Held-out students (no file of their own) come from the training file; so does "predict" without one.
        name = self.files.get(stage) or (self.files["test"] if stage == "predict" else None) or self.files["train"]
        return student_location(self.data_dir / name, student, self.format == "three_line")
