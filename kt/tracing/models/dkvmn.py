"""DKVMN LightningModule: the shared training, metrics and predictions of
:class:`~kt.tracing.models.base.KnowledgeTracingModel` over :class:`~kt.tracing.nets.dkvmn.DKVMNNet`."""

from __future__ import annotations

from typing import Literal

import torch

from kt.core.errors import InputError
from kt.core.module import Optimizer, Scheduler
from kt.core.validation import Fraction, NonNegativeFloat, PositiveFloat, PositiveInt
from kt.tracing.models.base import KnowledgeTracingModel
from kt.tracing.nets.dkvmn import DKVMNNet


class DKVMN(KnowledgeTracingModel):
    """Dynamic Key-Value Memory Network (Zhang et al., WWW 2017); the readings taken are in
    :mod:`kt.tracing.nets.dkvmn`.

    Args:
        num_skills: number of skills; taken from the data when left empty.
        memory_size: memory slots N (latent concepts).
        key_dim: size of the key memory and of the exercise embedding (d_k).
        value_dim: size of the value memory and of the interaction embedding (d_v).
        summary_dim: size of the tanh summary layer (f_t).
        dropout: dropout on the summary before the prediction.
        init_std: standard deviation of the initial key and value memories.
        score_positions: ``all``, or ``first`` (see :class:`~kt.tracing.DKT`).
        optimizer: ``adam``, ``adamw`` or ``sgd`` (with ``momentum``; the paper's choice).
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
        memory_size: PositiveInt = 50,
        key_dim: PositiveInt = 50,
        value_dim: PositiveInt = 200,
        summary_dim: PositiveInt = 50,
        dropout: Fraction = 0.0,
        init_std: NonNegativeFloat = 0.1,
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

    def build_net(self, num_skills: int) -> DKVMNNet:
        hp = self.hparams
        return DKVMNNet(num_skills, hp.memory_size, hp.key_dim, hp.value_dim, hp.summary_dim, hp.dropout, hp.init_std)

    def knowledge_step(
        self, state: torch.Tensor | None, skill: torch.Tensor, correct: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The value memory is the knowledge state: one write, then a read for every skill."""
        memory = self.net.initial_memory(1) if state is None else state
        memory = self.net.write(memory, skill, correct)
        every_skill = torch.arange(self.hparams.num_skills, device=memory.device)[None]
        return memory, self.net.read(memory, every_skill)[0]

    def export_module(self):
        # A trace would record the loop over time steps for the example's length only.
        raise InputError("DKVMN updates its memory in a Python loop over time steps, which `kt export` (tracing) "
                         "cannot carry to other sequence lengths; it cannot be exported")
