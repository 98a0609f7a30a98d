"""What every knowledge-tracing DataModule shares: splits by student, the vocabulary, windows, loaders."""

from __future__ import annotations

import math
import warnings
from abc import abstractmethod
from functools import partial

import torch
from lightning.pytorch import LightningDataModule
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader

from kt.core.data_state import model_data_state
from kt.core.errors import InputError
from kt.core.sampling import BucketSampler, EpochSampler, ResumableLoader, global_seed, trained_batches
from kt.core.validation import (
    Fraction,
    NonNegativeInt,
    OpenUnitInterval,
    PositiveInt,
    check_split_fractions,
    check_split_sizes,
)
from kt.tracing.data.sequences import Interactions, SkillVocabulary, WindowDataset, collate_windows, make_windows

STAGES = ("train", "val", "test", "predict")


class KnowledgeTracingDataModule(LightningDataModule):
    """Subclasses say where the sequences come from (:meth:`load`); this class does the rest.

    The skill vocabulary is built from the data at ``fit`` time and travels in the model's checkpoint.
    When the model already has one (loaded from a checkpoint), the data is encoded with the model's
    vocabulary instead, so a skill index always means the same skill to the model.

    Sequences longer than ``seq_len`` are cut into windows for training (shorter backpropagation through
    time, batches of even length); ``eval_seq_len`` (default: ``seq_len``) is the window for validation,
    test and predict, where a longer one lets the model keep a student's whole history instead of starting
    from an empty state every ``seq_len`` steps.

    With ``bucket`` on (the default), batches hold windows of similar length, so little time goes into
    padding: training batches of ``batch_size`` windows sorted by length (with random tie-breaks and a 10%
    jitter, so batches change every epoch), shuffled per (seed, epoch); evaluation batches of at most
    ``eval_tokens`` steps, padding included (many short histories or a few long ones), in length order.
    Training batches then carry the epoch's mean number of scored answers per batch (``loss_norm``), with which
    the model weighs every answer of the epoch the same (a batch of ten 3-answer windows would otherwise weigh
    as much as a batch of full windows). ``bucket: false`` gives the previous behaviour: random batches of
    ``batch_size`` windows padded to the longest, and the mean loss of each batch.
    """

    def __init__(
        self,
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
        super().__init__()
        self.seq_len = seq_len
        self.eval_seq_len = eval_seq_len or seq_len
        self.batch_size = batch_size
        self.val_fraction = val_fraction
        self.test_fraction = test_fraction
        self.split_seed = split_seed
        self.num_workers = num_workers
        self.bucket = bucket
        # Default: the steps of a full training batch, so evaluating whole histories needs no more memory.
        self.eval_tokens = eval_tokens or batch_size * (seq_len + 1)
        self.vocab: SkillVocabulary | None = None
        self.datasets: dict[str, WindowDataset] = {}
        self.no_test = False  # set by setup(): test_fraction 0 and no test file

    @abstractmethod
    def load(self) -> dict[str, Interactions | None]:
        """Sequences for "train", and for "val", "test", "predict" where the source has its own.

        A missing "val" or "test" is split off the training students (``val_fraction``,
        ``test_fraction``); a missing "predict" means the test students.
        """

    def load_predict(self) -> Interactions | None:
        """The "predict" sequences alone, when the source has them without the training data (its own file);
        None when they are split off the training students, which then have to be loaded."""
        return None

    def predicting_from_checkpoint(self) -> bool:
        """``kt predict`` with a model that carries its vocabulary: the training data is not needed."""
        trainer = self.trainer
        return trainer is not None and trainer.state.fn == "predict" and model_data_state(self) is not None

    def skill_names(self) -> dict[str, str]:
        return {}

    def where(self, stage: str, student: str) -> str:
        """Where a student's sequence of ``stage`` comes from, for error messages (a file and line if known)."""
        return f"{type(self).__name__} {stage} student {student}"

    @property
    def data_state(self) -> dict:
        """What inference needs from the data: the skill vocabulary (plain lists)."""
        if self.vocab is None:
            raise RuntimeError("call setup() first: the vocabulary is built from the data")
        return self.vocab.state()

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        if stage == "predict" and self.predicting_from_checkpoint() and self._setup_predict_only():
            return
        parts = self.load()
        train = parts["train"]
        missing = [name for name in ("val", "test") if parts.get(name) is None]
        fractions = {"val": self.val_fraction, "test": self.test_fraction}
        if missing:
            owner = type(self).__name__
            check_split_fractions(owner, **{f"{name}_fraction": fractions[name] for name in missing})
            *held_out, train = train.split([fractions[name] for name in missing], seed=self.split_seed)
            parts.update(zip(missing, held_out))
            parts["train"] = train
        # test_fraction 0 without a test file: no test split, asked for (a fit on fixed train/validation files);
        # `kt test` / `kt predict` then say so (see _loader).
        self.no_test = "test" in missing and fractions["test"] == 0
        if parts.get("predict") is None:
            parts["predict"] = parts["test"]
        unused = {"test", "predict"} if self.no_test and parts["predict"] is parts["test"] else set()
        sizes = {name: len(parts[name]) for name in STAGES if name not in unused}
        check_split_sizes(type(self).__name__, sizes, {name: f"{name}_fraction" for name in missing})

        state = model_data_state(self)
        if state is not None:
            self.vocab = SkillVocabulary.from_state(state)
        else:
            # Skill ids only (no answers) from every split: a skill first met in validation still gets
            # an index, and its embedding simply stays untrained.
            sources = [parts[name] for name in ("train", "val", "test")]
            self.vocab = SkillVocabulary.build(*sources, names=self.skill_names())

        for name in STAGES:
            data = parts[name]
            seq_len = self.seq_len if name == "train" else self.eval_seq_len
            windows = make_windows(data, self.vocab, seq_len, where=partial(self.where, name))
            self.datasets[name] = WindowDataset(windows)
            singles = sum(len(s) < 2 for s in data.skills)
            rank_zero_info(
                f"{name}: {len(data):,} students, {data.num_interactions:,} interactions, "
                f"{len(windows):,} windows of <= {seq_len + 1} steps"
                + (f"; {singles} students with a single interaction have nothing to score" if singles else "")
            )
        rank_zero_info(f"{len(self.vocab)} skills")

    def _setup_predict_only(self) -> bool:
        """Inference needs only the checkpoint's vocabulary and the rows to predict."""
        data = self.load_predict()
        if data is None:
            return False
        self.vocab = SkillVocabulary.from_state(model_data_state(self))
        windows = make_windows(data, self.vocab, self.eval_seq_len, where=partial(self.where, "predict"))
        self.datasets["predict"] = WindowDataset(windows)
        rank_zero_info(f"predict: {len(data):,} students, {data.num_interactions:,} interactions")
        return True

    def _loader(self, name: str, train: bool = False) -> DataLoader:
        """Training: shuffled per (seed, epoch), resumable mid-epoch. Evaluation: every window once, in a
        fixed order. Under DDP each process gets its share (training padded to equal shares, evaluation not:
        every window is scored exactly once, and torchmetrics gathers the states across processes)."""
        dataset = self.datasets[name]
        if not len(dataset) and name in ("test", "predict") and self.no_test:
            raise InputError(f"{type(self).__name__}: there is no {name} split (test_fraction is 0 and no test_file "
                             "is given); give a test_file or a test_fraction above 0")
        options = dict(
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            # Its own generator: creating an iterator would otherwise draw from the global one, and a
            # resumed run would see different dropout masks.
            generator=torch.Generator().manual_seed(global_seed()),
        )
        if self.bucket:
            lengths = dataset.lengths()
            if train:
                sampler = BucketSampler(lengths, batch_size=self.batch_size, shuffle=True, pad=True)
                answers = sum(n - 1 for n in lengths) / max(math.ceil(len(lengths) / self.batch_size), 1)
                collate = partial(collate_windows, answers_per_batch=answers)
            else:
                sampler = BucketSampler(lengths, max_tokens=self.eval_tokens, shuffle=False, pad=False)
                collate = collate_windows
            # The sampler yields whole batches.
            options.update(batch_size=None, sampler=sampler, collate_fn=collate)
        else:
            options.update(batch_size=self.batch_size, sampler=EpochSampler(len(dataset), shuffle=train, pad=train),
                           collate_fn=collate_windows)
        if train:
            return ResumableLoader(dataset, progress=trained_batches(self), **options)
        return DataLoader(dataset, **options)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", train=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        if self.bucket:
            # Batches in length order; the model returns each window's position and the writer puts the rows
            # back in input order. So Lightning's own batch indices (which it cannot infer from a sampler
            # that yields batches, and warns about) are not needed.
            warnings.filterwarnings("ignore", message="Couldn't infer the batch indices fetched")
            return self._loader("predict")
        # A plain loader: Lightning tracks the order of predictions itself.
        return DataLoader(
            self.datasets["predict"], batch_size=self.batch_size, collate_fn=collate_windows,
            num_workers=self.num_workers, pin_memory=torch.cuda.is_available(),
        )
