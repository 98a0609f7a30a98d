"""What every knowledge-tracing LightningModule shares: masking, the loss, metrics, predictions, the vocabulary.

A subclass builds its network (:meth:`KnowledgeTracingModel.build_net`) and says how to read the next-step
logits off its output. Two kinds of network exist:

* per-skill outputs (DKT): output t holds, for every skill, the logit of the answer at step t + 1;
* query outputs (DKVMN, SAKT, AKT): the network is given the skill of step t and returns one logit per step,
  the answer at step t predicted from the interactions before t (the one at step 0 from none).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC

from kt.core.errors import InputError
from kt.core.module import BaseModule
from kt.core.predictions import ORDER_COLUMN
from kt.tracing.data.sequences import SkillVocabulary


class KnowledgeTracingModel(BaseModule):
    """Base class. Subclasses take ``num_skills``, ``score_positions``, the optimizer options and
    ``data_state`` as typed ``__init__`` arguments, call ``save_hyperparameters()`` and then
    :meth:`init_network`.

    ``score_positions``: ``all``, or ``first`` -- only the first row of each problem (raw ASSISTments data read
    with ``multi_skill: expand``, where a problem with several skills is several rows sharing one answer).
    """

    monitor = "val/auc"
    monitor_mode = "max"

    def init_network(self) -> None:
        """Build the network now if the number of skills is known (given, or from a checkpoint's vocabulary);
        otherwise :meth:`configure_model` builds it from the training data's vocabulary."""
        self.net: nn.Module | None = None
        state = self.hparams.data_state
        num_skills = len(state["skills"]) if state is not None else self.hparams.num_skills
        if num_skills is not None:
            self._build(num_skills)
        metrics = MetricCollection({"auc": BinaryAUROC(), "acc": BinaryAccuracy()})
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")

    def build_net(self, num_skills: int) -> nn.Module:
        """The network for ``num_skills`` skills, from ``self.hparams``."""
        raise NotImplementedError

    def _build(self, num_skills: int) -> None:
        self.hparams.num_skills = num_skills
        self.net = self.build_net(num_skills)

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
        """Query networks: logits (batch, time), logit t for the answer at step t given steps < t."""
        return self.net(skills, correct)

    def outputs(self, batch: dict) -> torch.Tensor:
        """The network's outputs for a batch (a subclass may pass it more of the batch, e.g. the mask)."""
        return self(batch["skills"], batch["correct"])

    def next_step(self, outputs: torch.Tensor, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """The logit predicted for every step t >= 1 from steps < t, and its answer, both (batch, time - 1)."""
        return outputs[:, 1:], batch["correct"][:, 1:]

    def next_step_logits(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """For every real step t >= 1: the logit predicted for its skill from steps < t, and its answer.

        Both are (batch, time - 1), aligned with steps 1..time-1; the mask of real steps is
        ``batch["mask"][:, 1:]``.
        """
        return self.next_step(self.outputs(batch), batch)

    def _scored(self, batch: dict, outputs: torch.Tensor | None = None, positions: str = "all"):
        """Next-step logits and answers of the scored steps, flattened, in float32 (whatever precision
        the network ran in)."""
        outputs = self.outputs(batch) if outputs is None else outputs
        logit, answer = self.next_step(outputs, batch)
        real = batch["mask"][:, 1:]
        if positions == "first":
            if "first" not in batch:
                raise InputError(
                    "score_positions: first needs problem ids: read raw ASSISTments data (format: raw) "
                    "with multi_skill: expand"
                )
            real = real & batch["first"][:, 1:]
        return logit[real].float(), answer[real].float()

    def regularised(self, loss: torch.Tensor, outputs: torch.Tensor, batch: dict, count: int) -> torch.Tensor:
        """The training loss with any model-specific terms added (and logged); none by default."""
        return loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        outputs = self.outputs(batch)
        logit, target = self._scored(batch, outputs)
        losses = F.binary_cross_entropy_with_logits(logit, target, reduction="none")
        mean_loss = losses.mean() if losses.numel() else losses.sum()
        # sync_dist: under DDP the epoch's loss is averaged over every process's batches (a no-op otherwise).
        self.log("train/loss", mean_loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=target.numel(),
                 sync_dist=True)
        # Length-bucketed batches hold very different numbers of answers. Divided by the epoch's mean answers
        # per batch rather than by its own count, every answer of the epoch weighs the same (and the step
        # size is that of a batch mean on average); a batch mean would let batches of short windows dominate.
        loss = losses.sum() / batch["loss_norm"] if "loss_norm" in batch else mean_loss
        return self.regularised(loss, outputs, batch, target.numel())

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
        rows = {
            "student": [s for s, n in zip(batch["student"], lengths) for _ in range(n)],
            "step": steps,
            "skill_id": [vocab.skills[i] for i in skill_index] if vocab else skill_index,
            "skill_name": [vocab.names[i] for i in skill_index] if vocab else [""] * len(skill_index),
            "correct": batch["correct"][mask],
            "p_correct": prob[mask],
        }
        if "window" in batch:
            # Batches may come in length order: the writer sorts the rows back into input order by this.
            rows[ORDER_COLUMN] = batch["window"][:, None].expand_as(mask)[mask]
        return rows

    def example_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(skills, correct) of batch 2 and 5 steps (sizes 0 and 1 would be taken as fixed by torch.export)."""
        skills = torch.arange(10).remainder(self.hparams.num_skills).reshape(2, 5)
        correct = torch.tensor([[1, 0, 1, 1, 0], [0, 0, 1, 0, 1]])
        return skills, correct

    def export_module(self) -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        """For :mod:`kt.export`: (skills, correct), both (batch, time) int64 skill indices and 0/1 answers,
        -> logits (batch, time): logit t for the answer at step t given the steps before it."""
        return self.net, self.example_inputs()

    def knowledge_step(self, state: Any, skill: torch.Tensor, correct: torch.Tensor) -> tuple[Any, torch.Tensor]:
        """One interaction of one student: ``skill`` and ``correct`` are (1,) tensors and ``state`` what the
        previous call returned (None for a new student). Returns the new state and the logits (num_skills,)
        that the student's next answer on each skill is correct. Stepping a sequence this way gives the
        full-sequence forward's predictions."""
        raise NotImplementedError

    def history_knowledge_step(
        self, state: tuple[torch.Tensor, torch.Tensor] | None, skill: torch.Tensor, correct: torch.Tensor,
        max_history: int | None = None,
    ) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        """:meth:`knowledge_step` for attention models, whose state is the history of interactions
        ((1, n) skills, (1, n) answers; the last ``max_history`` only when given): the logit of each skill
        is the network's prediction for a step after the history that asks that skill. The answer given to
        that step is a placeholder that a causal network never reads."""
        skills, answers = (skill[None], correct[None]) if state is None else (
            torch.cat([state[0], skill[None]], dim=1), torch.cat([state[1], correct[None]], dim=1))
        if max_history is not None:
            skills, answers = skills[:, -max_history:], answers[:, -max_history:]
        candidates = torch.arange(self.hparams.num_skills, device=skills.device)[:, None]
        count = len(candidates)
        sequences = torch.cat([skills.expand(count, -1), candidates], dim=1)
        placeholder = torch.cat([answers.expand(count, -1), torch.zeros_like(candidates)], dim=1)
        return (skills, answers), self(sequences, placeholder)[:, -1]
