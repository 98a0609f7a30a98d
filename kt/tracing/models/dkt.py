"""DKT LightningModule: next-answer prediction with masked BCE, AUROC/accuracy on real steps only."""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC

from kt.core.errors import InputError
from kt.core.module import BaseModule, Optimizer, Scheduler
from kt.core.validation import Fraction, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from kt.tracing.data.sequences import SkillVocabulary
from kt.tracing.nets.dkt import Backbone, DKTLogits, DKTNet


class DKT(BaseModule):
    """Deep Knowledge Tracing.

    Args:
        num_skills: number of skills; taken from the data when left empty.
        emb_size: size of the interaction embedding.
        hidden_size: recurrent hidden size.
        num_layers: stacked recurrent layers.
        dropout: dropout on the recurrent output (and between recurrent layers).
        backbone: the recurrent core, ``lstm`` (the DKT paper's), ``gru`` or ``xlstm`` (a stack of mLSTM
            blocks with sLSTM blocks at ``slstm_at``; ``num_layers`` does not apply to it).
        xlstm_blocks: number of xLSTM blocks.
        slstm_at: positions (0-based) of the sLSTM blocks in the xLSTM stack; default: the last one, so
            7 mLSTM blocks then 1 sLSTM block with the default 8 blocks.
        xlstm_heads: heads of every xLSTM block (``hidden_size`` must be divisible by it).
        lambda_r: DKT+ (Yeung & Yeung, 2018) reconstruction weight: the output after step t is also scored
            on the answer of step t itself.
        lambda_w1: DKT+ waviness weight, L1 change of the prediction vector between consecutive steps.
        lambda_w2: DKT+ waviness weight, squared L2 change between consecutive steps.
        score_positions: which steps validation and test score: ``all``, or ``first`` -- only the first row of
            each problem (raw ASSISTments data read with ``multi_skill: expand``, where a problem with several
            skills is several rows sharing one answer; scoring the later rows rewards copying that answer).
        optimizer: ``adam``, ``adamw`` or ``sgd`` (with ``momentum``).
        lr: learning rate.
        weight_decay: L2 penalty.
        momentum: SGD momentum.
        scheduler: ``none``, ``cosine`` (over ``trainer.max_epochs``) or ``plateau`` (on ``val/auc``).
        data_state: the skill vocabulary, filled in from the data at fit time and saved in the
            checkpoint; leave it empty.
    """

    monitor = "val/auc"
    monitor_mode = "max"

    def __init__(
        self,
        num_skills: PositiveInt | None = None,
        emb_size: PositiveInt = 100,
        hidden_size: PositiveInt = 100,
        num_layers: PositiveInt = 1,
        dropout: Fraction = 0.0,
        backbone: Backbone = "lstm",
        xlstm_blocks: PositiveInt = 8,
        slstm_at: list[NonNegativeInt] | None = None,
        xlstm_heads: PositiveInt = 4,
        lambda_r: NonNegativeFloat = 0.0,
        lambda_w1: NonNegativeFloat = 0.0,
        lambda_w2: NonNegativeFloat = 0.0,
        score_positions: Literal["all", "first"] = "all",
        optimizer: Optimizer = "adam",
        lr: PositiveFloat = 1e-3,
        weight_decay: NonNegativeFloat = 0.0,
        momentum: NonNegativeFloat = 0.9,
        scheduler: Scheduler = "none",
        data_state: dict | None = None,
    ) -> None:
        super().__init__()
        if data_state is not None:
            num_skills = len(data_state["skills"])
        self.save_hyperparameters()
        self.net: DKTNet | None = None
        if num_skills is not None:
            self._build(num_skills)
        metrics = MetricCollection({"auc": BinaryAUROC(), "acc": BinaryAccuracy()})
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")

    def _build(self, num_skills: int) -> None:
        hp = self.hparams
        self.hparams.num_skills = num_skills
        self.net = DKTNet(
            num_skills, hp.emb_size, hp.hidden_size, hp.num_layers, hp.dropout, hp.backbone,
            hp.xlstm_blocks, hp.slstm_at, hp.xlstm_heads,
        )

    @property
    def vocabulary(self) -> SkillVocabulary | None:
        state = self.hparams.data_state
        return SkillVocabulary.from_state(state) if state is not None else None

    def configure_model(self) -> None:
        # A model configured without a vocabulary takes the training data's (and saves it in checkpoints).
        # configure_model rather than setup: weight-averaging callbacks copy the model in their own setup,
        # which runs before the module's, and call configure_model first to get the layers built.
        if self.net is None:
            self.hparams.data_state = self.trainer.datamodule.data_state
            self._build(len(self.hparams.data_state["skills"]))

    def forward(self, skills: torch.Tensor, correct: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (batch, time, num_skills): output t is about the answer at step t + 1. ``mask`` (the
        batch's real steps) lets the xLSTM skip padding; logits at padded steps are then meaningless."""
        return self.net(skills, correct, mask=mask)[0]

    def _logits(self, batch: dict) -> torch.Tensor:
        """A batch's logits; the xLSTM also gets its mask, to skip the padded steps' work."""
        if self.hparams.backbone == "xlstm" and "mask" in batch:
            return self(batch["skills"], batch["correct"], batch["mask"])
        return self(batch["skills"], batch["correct"])

    def export_module(self) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
        """For :mod:`kt.export`: (skills, correct), both (batch, time) int64 skill indices and 0/1 answers,
        -> logits (batch, time, num_skills). Any batch size and sequence length."""
        # Batch 2, 5 steps: sizes 0 and 1 would be taken as fixed by torch.export.
        skills = torch.arange(10).remainder(self.hparams.num_skills).reshape(2, 5)
        correct = torch.tensor([[1, 0, 1, 1, 0], [0, 0, 1, 0, 1]])
        return DKTLogits(self.net), (skills, correct)

    def next_step_logits(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """For every real step t >= 1: the logit predicted for its skill from steps < t, and its answer.

        Both are (batch, time - 1), aligned with steps 1..time-1; the mask of real steps is
        ``batch["mask"][:, 1:]``.
        """
        return self._next_step(self._logits(batch), batch)

    @staticmethod
    def _next_step(logits: torch.Tensor, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        target_skills = batch["skills"][:, 1:].unsqueeze(-1)
        return logits[:, :-1].gather(-1, target_skills).squeeze(-1), batch["correct"][:, 1:]

    def _scored(self, batch: dict, logits: torch.Tensor | None = None, positions: str = "all"):
        """Next-step logits and answers of the scored steps, flattened, in float32 (whatever precision
        the network ran in)."""
        logits = self._logits(batch) if logits is None else logits
        logit, answer = self._next_step(logits, batch)
        real = batch["mask"][:, 1:]
        if positions == "first":
            if "first" not in batch:
                raise InputError(
                    "score_positions: first needs problem ids: read raw ASSISTments data (format: raw) "
                    "with multi_skill: expand"
                )
            real = real & batch["first"][:, 1:]
        return logit[real].float(), answer[real].float()

    def dkt_plus_terms(self, logits: torch.Tensor, batch: dict) -> dict[str, torch.Tensor]:
        """The DKT+ regularisers (Yeung & Yeung, 2018) of one batch, from the same logits as the loss.

        ``reconstruction``: BCE of the output after step t on the skill and answer of step t.
        ``waviness_l1`` / ``waviness_l2``: mean over consecutive real steps and over skills of
        ``|y_{t+1} - y_t|`` / ``(y_{t+1} - y_t)^2``, y the vector of predicted probabilities.
        """
        mask = batch["mask"]
        logits = logits.float()
        current = logits.gather(-1, batch["skills"].unsqueeze(-1)).squeeze(-1)
        reconstruction = F.binary_cross_entropy_with_logits(current[mask], batch["correct"][mask].float())
        prob = torch.sigmoid(logits)
        change = (prob[:, 1:] - prob[:, :-1])[mask[:, 1:]]  # (transitions, num_skills)
        if change.numel() == 0:  # windows of one step have no transition
            zero = prob.sum() * 0
            return {"reconstruction": reconstruction, "waviness_l1": zero, "waviness_l2": zero}
        return {
            "reconstruction": reconstruction,
            "waviness_l1": change.abs().mean(),
            "waviness_l2": change.pow(2).mean(),
        }

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        hp = self.hparams
        logits = self._logits(batch)
        logit, target = self._scored(batch, logits)
        loss = F.binary_cross_entropy_with_logits(logit, target)
        # sync_dist: under DDP the epoch's loss is averaged over every process's batches (a no-op otherwise).
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=target.numel(),
                 sync_dist=True)
        if hp.lambda_r or hp.lambda_w1 or hp.lambda_w2:
            terms = self.dkt_plus_terms(logits, batch)
            loss = loss + hp.lambda_r * terms["reconstruction"] + hp.lambda_w1 * terms["waviness_l1"] \
                + hp.lambda_w2 * terms["waviness_l2"]
            self.log_dict({f"train/{k}": v for k, v in terms.items()}, on_epoch=True, batch_size=target.numel(),
                          sync_dist=True)
            self.log("train/total_loss", loss, on_epoch=True, batch_size=target.numel(), sync_dist=True)
        return loss

    def _evaluate(self, batch: dict, stage: str, metrics: MetricCollection) -> None:
        logit, target = self._scored(batch, positions=self.hparams.score_positions)
        loss = F.binary_cross_entropy_with_logits(logit, target)
        metrics.update(torch.sigmoid(logit), target.long())
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=target.numel(), sync_dist=True)
        self.log_dict(metrics, prog_bar=True)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_metrics)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_metrics)

    @staticmethod
    def prediction_blanks(frame) -> dict:
        """The cells ``predict_step`` leaves empty on purpose: ``p_correct`` at a student's first step."""
        return {"p_correct": (frame["step"] == 0).to_numpy()}

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        """One row per step of each student: the probability of a correct answer predicted from the steps
        before it (empty at the student's first step, which has no history)."""
        logit, _ = self.next_step_logits(batch)
        prob = torch.sigmoid(logit.float())
        prob = torch.cat([torch.full_like(prob[:, :1], math.nan), prob], dim=1)
        # Windows overlap by one step: a later window's first step was already written by the one before.
        mask = batch["mask"].clone()
        mask[batch["start"] > 0, 0] = False
        lengths = mask.sum(1).tolist()
        vocab = self.vocabulary
        steps = (batch["start"][:, None] + torch.arange(mask.shape[1], device=mask.device))[mask]
        skill_index = batch["skills"][mask].cpu().numpy()
        return {
            "student": [s for s, n in zip(batch["student"], lengths) for _ in range(n)],
            "step": steps,
            "skill_id": [vocab.skills[i] for i in skill_index] if vocab else skill_index,
            "skill_name": [vocab.names[i] for i in skill_index] if vocab else [""] * len(skill_index),
            "correct": batch["correct"][mask],
            "p_correct": prob[mask],
        }
