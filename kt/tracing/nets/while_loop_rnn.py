"""An ``nn.LSTM`` / ``nn.GRU`` run step by step with ``torch.while_loop``, for ``torch.export``.

``torch.export`` unrolls ``nn.LSTM`` and ``nn.GRU`` over time, which fixes the exported program's sequence
length to the example's (pytorch/pytorch#115092). A ``torch.while_loop`` over the steps keeps the length
dynamic, in the exported program and in the ONNX graph made from it (an ONNX ``Loop``). torch ships such a
decomposition only in a private module, so this is the same recurrence written with public operators,
reading the module's own weights. Inference only (no dropout between layers; ``while_loop`` has no autograd).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def while_loop_rnn(rnn: nn.LSTM | nn.GRU, x: torch.Tensor) -> torch.Tensor:
    """``rnn(x)[0]`` for a batch-first, one-directional ``rnn`` without projections, from a zero state:
    ``x`` (batch, time, input) -> output (batch, time, hidden)."""
    if not rnn.batch_first or rnn.bidirectional or getattr(rnn, "proj_size", 0):
        raise ValueError("while_loop_rnn takes batch-first, one-directional LSTMs/GRUs without projections")
    out = x.transpose(0, 1)  # (time, batch, features): one step is out[t]
    for layer in range(rnn.num_layers):
        zeros = out.new_zeros(out.shape[1], rnn.hidden_size)
        start = (zeros, zeros.clone()) if isinstance(rnn, nn.LSTM) else (zeros,)  # carried tensors must not alias
        out = _layer(rnn, layer, out, start)
    return out.transpose(0, 1)


def _layer(rnn: nn.LSTM | nn.GRU, layer: int, x: torch.Tensor, start: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Layer ``layer`` of ``rnn`` over ``x`` (time, batch, features) from the state ``start`` ((h, c) or
    (h,)): its output (time, batch, hidden)."""
    lstm = isinstance(rnn, nn.LSTM)
    w_hh, b_hh = getattr(rnn, f"weight_hh_l{layer}"), getattr(rnn, f"bias_hh_l{layer}", None)
    # The input's part of the gates for every step at once; only the recurrent part is sequential.
    gates_x = F.linear(x, getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"bias_ih_l{layer}", None))
    steps = x.shape[0]

    def more_steps(t, out, *hidden):
        return t < steps

    def step(t, out, *hidden):
        at_t = t.view(1)  # index with a tensor: no data-dependent Python int in the graph
        gates = gates_x.index_select(0, at_t).squeeze(0)
        recurrent = F.linear(hidden[0], w_hh, b_hh)
        if lstm:
            i, f, g, o = (gates + recurrent).chunk(4, -1)
            c = torch.sigmoid(f) * hidden[1] + torch.sigmoid(i) * torch.tanh(g)
            hidden = (torch.sigmoid(o) * torch.tanh(c), c)
        else:
            (x_r, x_z, x_n), (h_r, h_z, h_n) = gates.chunk(3, -1), recurrent.chunk(3, -1)
            r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
            hidden = ((1 - z) * torch.tanh(x_n + r * h_n) + z * hidden[0],)
        return t + 1, out.index_copy(0, at_t, hidden[0].unsqueeze(0)), *hidden

    first = torch.zeros((), dtype=torch.long, device=x.device)
    outputs = x.new_empty(steps, x.shape[1], rnn.hidden_size)
    return torch.while_loop(more_steps, step, (first, outputs, *start))[1]
