"""Deep Knowledge Tracing network (Piech et al., 2015)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from kt.tracing.nets.xlstm import XLSTMStack

Backbone = Literal["lstm", "gru", "xlstm"]
# An LSTM's state is (h, c), a GRU's is h alone, an xLSTM stack's one tuple per block.
RecurrentState = torch.Tensor | tuple[torch.Tensor, torch.Tensor] | list


class DKTNet(nn.Module):
    """Interaction embedding -> recurrent core (LSTM, GRU or xLSTM stack) -> one logit per skill.

    The interaction at step t is ``skill + num_skills * correct`` (one token per (skill, answer) pair).
    Output t holds, for every skill, the logit that the *next* answer on that skill is correct.
    """

    def __init__(
        self,
        num_skills: int,
        emb_size: int = 100,
        hidden_size: int = 100,
        num_layers: int = 1,
        dropout: float = 0.0,
        backbone: Backbone = "lstm",
        xlstm_blocks: int = 8,
        slstm_at: list[int] | None = None,
        xlstm_heads: int = 4,
    ) -> None:
        super().__init__()
        if backbone not in ("lstm", "gru", "xlstm"):
            raise ValueError(f"backbone {backbone!r}: expected 'lstm', 'gru' or 'xlstm'")
        self.num_skills = num_skills
        self.embedding = nn.Embedding(2 * num_skills, emb_size)
        if backbone == "xlstm":
            # num_layers does not apply: the stack's depth is xlstm_blocks.
            self.rnn = XLSTMStack(emb_size, hidden_size, xlstm_blocks, slstm_at, xlstm_heads)
        else:
            rnn = nn.LSTM if backbone == "lstm" else nn.GRU
            self.rnn = rnn(
                emb_size, hidden_size, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0
            )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, num_skills)

    def forward(
        self,
        skills: torch.Tensor,
        correct: torch.Tensor,
        state: RecurrentState | None = None,
        lengths: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, RecurrentState]:
        """``skills``, ``correct``: (batch, time) int64. Returns logits (batch, time, num_skills) and the
        recurrent state after the last step (to continue a sequence step by step).

        ``lengths`` (the real steps of each right-padded sequence): an LSTM or GRU then runs on a packed
        sequence and skips the padding; outputs at padded steps are those of a zero hidden state, and the
        returned state is each sequence's after its last real step. Packing pays on the CPU in evaluation,
        where batches mix lengths more, but is over twice as slow as padding in training within
        length-bucketed batches (measured, see docs/tracing.md); the xLSTM stack always runs padded.
        """
        x = self.embedding(skills + self.num_skills * correct)
        # A batch without padding gains nothing from packing.
        packed = lengths is not None and not isinstance(self.rnn, XLSTMStack) and bool(lengths.min() < x.shape[1])
        if packed:
            x = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        if skills.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # oneDNN has no reduced-precision LSTM on every CPU ("could not create a primitive descriptor"
            # under bf16-mixed): keep the recurrence in float32 there. On CUDA, autocast handles the RNN.
            with torch.autocast("cpu", enabled=False):
                hidden, state = self.rnn(x.float(), state)
        else:
            hidden, state = self.rnn(x, state)
        if packed:
            hidden, _ = pad_packed_sequence(hidden, batch_first=True, total_length=skills.shape[1])
        return self.head(self.dropout(hidden)), state


class DKTLogits(nn.Module):
    """``DKTNet`` without the recurrent state output: (skills, correct) -> logits, what gets exported."""

    def __init__(self, net: DKTNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, skills: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
        return self.net(skills, correct)[0]
