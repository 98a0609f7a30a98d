"""DKT LightningModule: next-answer prediction with masked BCE, AUROC/accuracy on real steps only."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC

from kt.components.dkt_net import Backbone, DKTLogits, DKTNet
from kt.data.sequences import SkillVocabulary
from kt.models.base import KTModule, Optimizer, Scheduler


class DKT(KTModule):
    """Deep Knowledge Tracing.

    Args:
        num_skills: number of skills; taken from the data when left empty.
        emb_size: size of the interaction embedding.
        hidden_size: recurrent hidden size.
        num_layers: stacked recurrent layers.
        dropout: dropout on the recurrent output (and between recurrent layers).
        backbone: the recurrent core, ``lstm`` (the DKT paper's) or ``gru``.
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
        num_skills: int | None = None,
        emb_size: int = 100,
        hidden_size: int = 100,
        num_layers: int = 1,
        dropout: float = 0.0,
        backbone: Backbone = "lstm",
        optimizer: Optimizer = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
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
        self.net = DKTNet(num_skills, hp.emb_size, hp.hidden_size, hp.num_layers, hp.dropout, hp.backbone)

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

    def forward(self, skills: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
        """Logits (batch, time, num_skills): output t is about the answer at step t + 1."""
        return self.net(skills, correct)[0]

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
        logits = self(batch["skills"], batch["correct"])
        target_skills = batch["skills"][:, 1:].unsqueeze(-1)
        return logits[:, :-1].gather(-1, target_skills).squeeze(-1), batch["correct"][:, 1:]

    def _scored(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        logit, answer = self.next_step_logits(batch)
        real = batch["mask"][:, 1:]
        # float32 for the loss and the metrics, whatever precision the network ran in.
        return logit[real].float(), answer[real].float()

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        logit, target = self._scored(batch)
        loss = F.binary_cross_entropy_with_logits(logit, target)
        # sync_dist: under DDP the epoch's loss is averaged over every process's batches (a no-op otherwise).
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=target.numel(),
                 sync_dist=True)
        return loss

    def _evaluate(self, batch: dict, stage: str, metrics: MetricCollection) -> None:
        logit, target = self._scored(batch)
        loss = F.binary_cross_entropy_with_logits(logit, target)
        metrics.update(torch.sigmoid(logit), target.long())
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=target.numel(), sync_dist=True)
        self.log_dict(metrics, prog_bar=True)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "val", self.val_metrics)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "test", self.test_metrics)

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
