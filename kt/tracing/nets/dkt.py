"""Deep Knowledge Tracing network (Piech et al., 2015)."""

from __future__ import annotations

import functools
from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from kt.tracing.nets.while_loop_rnn import while_loop_rnn
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

        ``lengths`` (the real steps of each right-padded row) lets the core skip the padding: the xLSTM skips
        the padded steps' work (their logits are meaningless, the real steps' unchanged); an LSTM or GRU runs
        on a packed sequence (outputs at padded steps are those of a zero hidden state, and the returned state
        is each row's after its last real step). Packing pays on the CPU in evaluation, where batches mix
        lengths more, but is over twice as slow as padding in training within length-bucketed batches
        (measured, see docs/benchmarks.md), so the model passes lengths to an LSTM/GRU only in evaluation.
        """
        x = self.embedding(skills + self.num_skills * correct)
        rnn = self.rnn
        # A batch without padding gains nothing from packing.
        packed = lengths is not None and not isinstance(rnn, XLSTMStack) and bool(lengths.min() < x.shape[1])
        if isinstance(rnn, XLSTMStack) and lengths is not None:
            rnn = functools.partial(rnn, lengths=lengths)
        if packed:
            x = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        if skills.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
            # oneDNN has no reduced-precision LSTM on every CPU ("could not create a primitive descriptor"
            # under bf16-mixed): keep the recurrence in float32 there. On CUDA, autocast handles the RNN.
            with torch.autocast("cpu", enabled=False):
                hidden, state = rnn(x.float(), state)
        else:
            hidden, state = rnn(x, state)
        if packed:
            hidden, _ = pad_packed_sequence(hidden, batch_first=True, total_length=skills.shape[1])
        return self.head(self.dropout(hidden)), state


class DKTLogits(nn.Module):
    """``DKTNet`` without the recurrent state output: (skills, correct) -> logits, what gets exported.

    Under ``torch.export`` an LSTM/GRU core runs as a ``torch.while_loop`` over the steps (same weights, same
    result), so that the exported program takes any sequence length; see :mod:`kt.tracing.nets.while_loop_rnn`.
    """

    def __init__(self, net: DKTNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, skills: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
        net = self.net
        if not (torch.compiler.is_exporting() and isinstance(net.rnn, (nn.LSTM, nn.GRU))):
            return net(skills, correct)[0]
        hidden = while_loop_rnn(net.rnn, net.embedding(skills + net.num_skills * correct))
        return net.head(net.dropout(hidden))
