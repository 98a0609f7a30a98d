"""AKT LightningModule: the shared training, metrics and predictions of
:class:`~kt.tracing.models.base.KnowledgeTracingModel` over :class:`~kt.tracing.nets.akt.AKTNet`."""

from __future__ import annotations

from typing import Literal

import torch

from kt.core.module import Optimizer, Scheduler
from kt.core.validation import Fraction, NonNegativeFloat, PositiveFloat, PositiveInt
from kt.tracing.models.base import KnowledgeTracingModel
from kt.tracing.nets.akt import AKTNet


class AKT(KnowledgeTracingModel):
    """Attentive Knowledge Tracing (Ghosh et al., KDD 2020) without Rasch question embeddings (skill ids only);
    the readings taken are in :mod:`kt.tracing.nets.akt`.

    Args:
        num_skills: number of skills; taken from the data when left empty.
        d_model: size of the embeddings and of every attention layer.
        num_heads: attention heads, each with its own decay rate theta (``d_model`` must be divisible by it).
        num_blocks: layers of the knowledge encoder, and of the question encoder and retriever each.
        d_ff: hidden size of the feed-forward layers.
        final_fc_dim: first hidden layer of the prediction MLP (the second has 256 units).
        dropout: dropout on attention weights, attention outputs, feed-forward layers and the MLP.
        kq_same: queries and keys share one projection.
        score_positions: ``all``, or ``first`` (see :class:`~kt.tracing.DKT`).
        optimizer: ``adam`` (the paper's), ``adamw`` or ``sgd`` (with ``momentum``).
        lr: learning rate (the reference implementation's 1e-5 needs hundreds of epochs; 1e-4 is faster).
        weight_decay: L2 penalty.
        momentum: SGD momentum.
        scheduler: ``none``, ``cosine`` (over ``trainer.max_epochs``) or ``plateau`` (on ``val/auc``).
        data_state: the skill vocabulary, filled in from the data at fit time and saved in the
            checkpoint; leave it empty.
    """

    def __init__(
        self,
        num_skills: PositiveInt | None = None,
        d_model: PositiveInt = 256,
        num_heads: PositiveInt = 8,
        num_blocks: PositiveInt = 1,
        d_ff: PositiveInt = 1024,
        final_fc_dim: PositiveInt = 512,
        dropout: Fraction = 0.05,
        kq_same: bool = True,
        score_positions: Literal["all", "first"] = "all",
        optimizer: Optimizer = "adam",
        lr: PositiveFloat = 1e-4,
        weight_decay: NonNegativeFloat = 0.0,
        momentum: NonNegativeFloat = 0.9,
        scheduler: Scheduler = "none",
        data_state: dict | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.init_network()

    def build_net(self, num_skills: int) -> AKTNet:
        hp = self.hparams
        return AKTNet(num_skills, hp.d_model, hp.num_heads, hp.num_blocks, hp.d_ff, hp.final_fc_dim, hp.dropout,
                      hp.kq_same)

    def knowledge_step(self, state, skill: torch.Tensor, correct: torch.Tensor):
        """The state is the whole history of interactions (AKT has no position embeddings, hence no limit)."""
        return self.history_knowledge_step(state, skill, correct)
