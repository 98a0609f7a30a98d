"""SAKT LightningModule: the shared training, metrics and predictions of
:class:`~kt.tracing.models.base.KnowledgeTracingModel` over :class:`~kt.tracing.nets.sakt.SAKTNet`."""

from __future__ import annotations

from typing import Literal

import torch

from kt.core.errors import InputError
from kt.core.module import Optimizer, Scheduler
from kt.core.validation import Fraction, NonNegativeFloat, PositiveFloat, PositiveInt
from kt.tracing.models.base import KnowledgeTracingModel
from kt.tracing.nets.sakt import SAKTNet


class SAKT(KnowledgeTracingModel):
    """Self-Attentive Knowledge Tracing (Pandey & Karypis, EDM 2019); the readings taken are in
    :mod:`kt.tracing.nets.sakt`.

    Args:
        num_skills: number of skills; taken from the data when left empty.
        embed_size: size d of the embeddings and of the attention.
        num_heads: attention heads (``embed_size`` must be divisible by it).
        dropout: dropout on the attention weights, the attention output and the feed-forward output.
        max_length: longest window the position embeddings cover: the data's ``seq_len`` and ``eval_seq_len``
            must be below it (a window has ``seq_len + 1`` steps). The knowledge tracer keeps the last
            ``max_length - 1`` answers.
        score_positions: ``all``, or ``first`` (see :class:`~kt.tracing.DKT`).
        optimizer: ``adam`` (the paper's), ``adamw`` or ``sgd`` (with ``momentum``).
        lr: learning rate.
        weight_decay: L2 penalty.
        momentum: SGD momentum.
        scheduler: ``none``, ``cosine`` (over ``trainer.max_epochs``) or ``plateau`` (on ``val/auc``).
        data_state: the skill vocabulary, filled in from the data at fit time and saved in the
            checkpoint; leave it empty.
    """

    def __init__(
        self,
        num_skills: PositiveInt | None = None,
        embed_size: PositiveInt = 100,
        num_heads: PositiveInt = 5,
        dropout: Fraction = 0.2,
        max_length: PositiveInt = 200,
        score_positions: Literal["all", "first"] = "all",
        optimizer: Optimizer = "adam",
        lr: PositiveFloat = 1e-3,
        weight_decay: NonNegativeFloat = 0.0,
        momentum: NonNegativeFloat = 0.9,
        scheduler: Scheduler = "none",
        data_state: dict | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.init_network()

    def build_net(self, num_skills: int) -> SAKTNet:
        hp = self.hparams
        return SAKTNet(num_skills, hp.embed_size, hp.num_heads, hp.dropout, hp.max_length)

    def forward(self, skills: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
        if skills.shape[1] > self.hparams.max_length:
            raise InputError(
                f"SAKT: a window of {skills.shape[1]} steps is longer than model.max_length "
                f"{self.hparams.max_length}: set the data's seq_len and eval_seq_len below max_length"
            )
        return self.net(skills, correct)

    def knowledge_step(self, state, skill: torch.Tensor, correct: torch.Tensor):
        """The state is the last ``max_length - 1`` interactions (the next step takes the last position)."""
        return self.history_knowledge_step(state, skill, correct, max_history=self.hparams.max_length - 1)
