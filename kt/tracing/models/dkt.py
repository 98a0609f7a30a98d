"""DKT LightningModule: next-answer prediction with masked BCE, AUROC/accuracy on real steps only."""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

from kt.core.errors import InputError
from kt.core.module import Optimizer, Scheduler
from kt.core.validation import Fraction, NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from kt.tracing.models.base import KnowledgeTracingModel
from kt.tracing.nets.dkt import Backbone, DKTLogits, DKTNet, RecurrentState


class DKT(KnowledgeTracingModel):
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
        self.save_hyperparameters()
        self.init_network()

    def build_net(self, num_skills: int) -> DKTNet:
        hp = self.hparams
        return DKTNet(
            num_skills, hp.emb_size, hp.hidden_size, hp.num_layers, hp.dropout, hp.backbone,
            hp.xlstm_blocks, hp.slstm_at, hp.xlstm_heads,
        )

    def forward(
        self, skills: torch.Tensor, correct: torch.Tensor, lengths: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits (batch, time, num_skills): output t is about the answer at step t + 1. ``lengths`` (each
        row's real steps) lets the core skip the padding; logits at padded steps are then meaningless."""
        return self.net(skills, correct, lengths=lengths)[0]

    def outputs(self, batch: dict) -> torch.Tensor:
        # The xLSTM always skips padded steps' work; LSTM/GRU run packed only in evaluation, where it pays
        # (in training, within length-bucketed batches, padded runs are faster: docs/benchmarks.md).
        skip_padding = "mask" in batch and (self.hparams.backbone == "xlstm" or not self.training)
        if skip_padding:
            return self(batch["skills"], batch["correct"], batch["mask"].sum(1))
        return self(batch["skills"], batch["correct"])

    def export_module(self) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
        """For :mod:`kt.export`: (skills, correct), both (batch, time) int64 skill indices and 0/1 answers,
        -> logits (batch, time, num_skills). Any batch size and sequence length."""
        if self.hparams.backbone == "xlstm":
            # Its blocks step through time (or chunks of it) in Python, which torch.export fixes to the
            # example's length.
            raise InputError(
                "DKT with backbone 'xlstm' cannot be exported: torch.export would fix its sequence length to "
                "the example's; the lstm and gru backbones export with any length"
            )
        return DKTLogits(self.net), self.example_inputs()

    def next_step(self, outputs: torch.Tensor, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        target_skills = batch["skills"][:, 1:].unsqueeze(-1)
        return outputs[:, :-1].gather(-1, target_skills).squeeze(-1), batch["correct"][:, 1:]

    def knowledge_step(
        self, state: RecurrentState | None, skill: torch.Tensor, correct: torch.Tensor
    ) -> tuple[RecurrentState, torch.Tensor]:
        """The recurrent state is the knowledge state: one (1, 1) step of the network from it."""
        logits, state = self.net(skill[None], correct[None], state)
        return state, logits[0, -1]

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

    def regularised(self, loss: torch.Tensor, outputs: torch.Tensor, batch: dict, count: int) -> torch.Tensor:
        hp = self.hparams
        if not (hp.lambda_r or hp.lambda_w1 or hp.lambda_w2):
            return loss
        terms = self.dkt_plus_terms(outputs, batch)
        loss = loss + hp.lambda_r * terms["reconstruction"] + hp.lambda_w1 * terms["waviness_l1"] \
            + hp.lambda_w2 * terms["waviness_l2"]
        self.log_dict({f"train/{k}": v for k, v in terms.items()}, on_epoch=True, batch_size=count, sync_dist=True)
        self.log("train/total_loss", loss, on_epoch=True, batch_size=count, sync_dist=True)
        return loss
