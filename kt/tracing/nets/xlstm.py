"""xLSTM (Beck et al., 2024) in plain PyTorch: mLSTM and sLSTM blocks, a stack of them, state carried.

Why not the official ``xlstm`` package: version 2 hard-requires ``mlstm_kernels`` (Triton kernels) and
builds its sLSTM as a CUDA extension by default; its ``vanilla`` backends run on CPU, but its block stack's
``forward`` neither takes nor returns the recurrent state (only a one-token ``step`` does), which the
knowledge-state API needs after a whole sequence. The cells here follow the paper's equations.

State conventions (all float32 tensors, ``None`` = a fresh student):

* mLSTM block: ``(C, n, m, conv)`` -- matrix memory (B, H, d, d) scaled by ``exp(-m)``, normaliser
  (B, H, d), stabiliser (B, H), and the last ``kernel - 1`` inputs of the causal convolution.
* sLSTM block: ``(h, c, n, m)``, each (B, D), ``c`` and ``n`` scaled by ``exp(-m)``.

Given ``lengths`` (right-padded rows), the stack skips the padded steps' per-step work; outputs at real
steps are unchanged, the returned state of a row shorter than the batch is not that student's state (as
for ``nn.LSTM`` run over padding).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MLSTMState = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
SLSTMState = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
# Per-step layers run on the packed real steps when fewer than this share of a batch's steps are real; above
# it computing the padding costs less than copying the steps in and out of the packed layout.
PACK_BELOW = 0.75


class Steps:
    """The real steps of a (B, T) batch whose rows are right-padded to T.

    The blocks run their recurrences on the padded (B, T, C) layout, where padding follows every row's real
    steps and so never reaches them, and skip the rows that have ended (rows must be sorted by decreasing
    length, ``XLSTMStack`` sorts them, so the rows still running at any step are a prefix of the batch).
    Their per-step layers (norms, projections, gated MLP) run on (N, C) rows: the real steps only, packed,
    when ``pack`` -- worth it when much of the batch is padding, as in random batches of ASSISTments windows
    (two thirds padding) -- else every step of the padded layout (a reshape, no copies; length-bucketed
    batches are ~2% padding, which costs less to compute than packing costs to copy).
    """

    def __init__(self, batch: int, time: int, lengths: torch.Tensor | None = None, pack: bool = True) -> None:
        self.batch, self.time, self.lengths = batch, time, lengths
        self.index = None  # packing is a reshape
        self.padded = None  # (B*T, 1) True at real steps, when padding is computed (not packed) and must be zeroed
        if lengths is not None:
            real = torch.arange(time, device=lengths.device) < lengths[:, None]
            if pack:
                self.index = real.flatten().nonzero().squeeze(1)
            else:
                self.padded = real.reshape(-1, 1)

    def pack(self, u: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (N, C), the real steps in row-major order."""
        u = u.reshape(-1, u.shape[-1])
        return u if self.index is None else u.index_select(0, self.index)

    def unpack(self, u: torch.Tensor) -> torch.Tensor:
        """(N, C) -> (B, T, C); padded steps hold zeros when packed, else whatever was computed there."""
        if self.index is not None:
            u = u.new_zeros(self.batch * self.time, u.shape[-1]).index_copy(0, self.index, u)
        return u.view(self.batch, self.time, -1)

    def zero_padding(self, u: torch.Tensor) -> torch.Tensor:
        """(B, T, C) with zeros at the padded steps."""
        return u if self.padded is None else u * self.padded.view(self.batch, self.time, 1)

    def running(self, step: int) -> int:
        """How many rows (a prefix) have a real step at ``step`` or later."""
        return self.batch if self.lengths is None else int((self.lengths > step).sum())


def head_norm(norm: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    """``norm(x)`` for (N, C) rows, each step normalised per head on its own (no leak across time), computed
    as a layer norm over each group's channels: the same values, and a faster backward on CPU than
    GroupNorm's kernel for 2-D input."""
    rows, channels = x.shape
    groups = norm.num_groups
    y = F.layer_norm(x.view(rows, groups, channels // groups), (channels // groups,), eps=norm.eps)
    return torch.addcmul(norm.bias, y.view(rows, channels), norm.weight)


def mlstm_chunk(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i_pre: torch.Tensor,
    f_pre: torch.Tensor,
    state: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The mLSTM over one chunk of L steps, from a carried state, in parallel form.

    ``q, k, v``: (B, H, L, d) (``k`` already scaled by 1/sqrt(d)); ``i_pre, f_pre``: (B, H, L) gate
    pre-activations. Unrolling the recurrence ``C_t = f_t C_{t-1} + i_t v_t k_t^T`` (exponential input
    gate, sigmoid forget gate) gives log-weights ``F_t + m0`` for the carried memory and
    ``F_t - F_s + i_s`` (s <= t) for step s, with ``F`` the cumulative log forget gate; the stabiliser
    ``m_t`` is their maximum, exactly the recurrent form's ``max(log f_t + m_{t-1}, i_t)``. With L = 1 this
    *is* the recurrent form, so stepping and whole sequences agree.
    """
    c0, n0, m0 = state
    length = q.shape[2]
    log_f = F.logsigmoid(f_pre)
    cum = log_f.cumsum(-1)  # F_t
    inter = cum + m0[..., None]  # (B, H, L): weight of the carried memory
    intra = cum[..., :, None] - cum[..., None, :] + i_pre[..., None, :]  # (B, H, L, L): weight of step s at t
    causal = torch.ones(length, length, dtype=torch.bool, device=q.device).tril()
    intra = intra.masked_fill(~causal, -math.inf)
    m = torch.maximum(inter, intra.amax(-1))  # (B, H, L)
    w_inter = torch.exp(inter - m)
    w_intra = torch.exp(intra - m[..., None])
    scores = (q @ k.transpose(-1, -2)) * w_intra  # (B, H, L, L)
    num = scores @ v + w_inter[..., None] * (q @ c0.transpose(-1, -2))  # C0 q for every t
    den = scores.sum(-1) + w_inter * (q @ n0[..., None]).squeeze(-1)
    h = num / torch.maximum(den.abs(), torch.exp(-m))[..., None]
    # State after the chunk's last step.
    m_last = m[..., -1]
    w_last = w_intra[..., -1, :]  # (B, H, L)
    c = w_inter[..., -1, None, None] * c0 + (v * w_last[..., None]).transpose(-1, -2) @ k
    n = w_inter[..., -1, None] * n0 + (k * w_last[..., None]).sum(-2)
    return h, (c, n, m_last)


class MLSTMBlock(nn.Module):
    """Pre-up-projection block: LayerNorm, up-projection x2, causal conv + SiLU feeding q, k and the
    gates, the mLSTM, per-head norm, a learnable skip, an output gate SiLU(z), down-projection, residual."""

    def __init__(
        self, dim: int, num_heads: int = 4, proj_factor: float = 2.0, conv_kernel: int = 4, chunk_size: int = 64
    ) -> None:
        super().__init__()
        inner = int(round(proj_factor * dim / num_heads)) * num_heads
        self.num_heads, self.head_dim, self.kernel, self.chunk_size = (
            num_heads,
            inner // num_heads,
            conv_kernel,
            chunk_size,
        )
        self.norm = nn.LayerNorm(dim)
        self.up = nn.Linear(dim, 2 * inner)
        self.conv = nn.Conv1d(inner, inner, conv_kernel, groups=inner)  # depthwise, causal via carried inputs
        self.qk = nn.Linear(inner, 2 * inner, bias=False)
        self.v = nn.Linear(inner, inner, bias=False)
        self.gates = nn.Linear(inner, 2 * num_heads)
        with torch.no_grad():
            # Forget gates start open (remember), input gates small: the paper's initialisation.
            self.gates.weight.zero_()
            self.gates.bias[:num_heads].zero_()
            self.gates.bias[num_heads:] = torch.linspace(3.0, 6.0, num_heads)
        self.head_norm = nn.GroupNorm(num_heads, inner)
        self.skip = nn.Parameter(torch.ones(inner))
        self.down = nn.Linear(inner, dim)

    def initial_state(self, batch: int, device: torch.device) -> MLSTMState:
        h, d, inner = self.num_heads, self.head_dim, self.num_heads * self.head_dim
        zeros = torch.zeros
        return (
            zeros(batch, h, d, d, device=device),
            zeros(batch, h, d, device=device),
            zeros(batch, h, device=device),
            zeros(batch, self.kernel - 1, inner, device=device),
        )

    def forward(
        self, x: torch.Tensor, state: MLSTMState | None = None, steps: Steps | None = None
    ) -> tuple[torch.Tensor, MLSTMState]:
        """``x``: (B, T, D), or (N, D) real steps packed by ``steps``."""
        if steps is None:
            b, t, _ = x.shape
            y, state = self.forward(x.reshape(b * t, -1), state, Steps(b, t))
            return y.view(b, t, -1), state
        b, t, nh, inner = steps.batch, steps.time, self.num_heads, self.num_heads * self.head_dim
        if state is None:
            state = self.initial_state(b, x.device)
        c, n, m, conv_in = state
        xm, z = self.up(self.norm(x)).chunk(2, dim=-1)
        # Causal depthwise convolution over [previous kernel-1 inputs, this sequence]. Conv1d wants (B, C, T):
        # with its two transposed copies it still costs less than a sum of shifted copies in (B, T, C)
        # (forward + backward of a 32 x 204 x 400 input on one CPU thread: 30 ms against 91 ms).
        padded = torch.cat([conv_in, steps.unpack(xm)], dim=1)
        xc = F.conv1d(padded.transpose(1, 2), self.conv.weight, self.conv.bias, groups=inner).transpose(1, 2)
        xc = F.silu(steps.pack(xc))
        conv_in = padded[:, -(self.kernel - 1) :]
        # q, k, v and the gates of the per-step rows, laid out (B, T, .) for the recurrence (one copy if packed).
        qkv = steps.unpack(torch.cat([self.qk(xc), self.v(xm), self.gates(xc)], dim=-1))
        q, k, v, i_pre, f_pre = qkv.split([inner, inner, inner, nh, nh], dim=-1)
        q, k, v = (u.view(b, t, nh, -1).transpose(1, 2) for u in (q, k, v))  # (B, H, T, d)
        k = k / math.sqrt(self.head_dim)
        i_pre, f_pre = i_pre.transpose(1, 2), f_pre.transpose(1, 2)  # (B, H, T)
        outs = []
        # Chunks bound the (L, L) matrices on long sequences. split, not slicing: one autograd node whose
        # backward joins the chunks' gradients (a slice's backward fills a full-size zero gradient).
        chunks = zip(*(u.split(self.chunk_size, dim=2) for u in (q, k, v, i_pre, f_pre)))
        for start, (q_, k_, v_, i_, f_) in zip(range(0, t, self.chunk_size), chunks):
            r = steps.running(start)  # rows [r:] are padding from here on: skipped
            h, (c_r, n_r, m_r) = mlstm_chunk(q_[:r], k_[:r], v_[:r], i_[:r], f_[:r], (c[:r], n[:r], m[:r]))
            h = h.transpose(1, 2)  # (r, L, H, d)
            if r < b:
                c, n, m = (torch.cat([new, old[r:]]) for new, old in ((c_r, c), (n_r, n), (m_r, m)))
                h = torch.cat([h, h.new_zeros(b - r, *h.shape[1:])])
            else:
                c, n, m = c_r, n_r, m_r
            outs.append(h)
        h = steps.pack(torch.cat(outs, dim=1).reshape(b, t, inner))
        h = head_norm(self.head_norm, h) + self.skip * xc
        return x + self.down(h * F.silu(z)), (c, n, m, conv_in)


class SLSTMBlock(nn.Module):
    """Post-up-projection block: LayerNorm, the sLSTM (heads with their own recurrent matrices), per-head
    norm, residual; then a gated MLP (factor 4/3) with its own residual."""

    def __init__(self, dim: int, num_heads: int = 4, ff_factor: float = 4 / 3) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"sLSTM: hidden size {dim} is not divisible by {num_heads} heads")
        self.dim, self.num_heads, self.head_dim = dim, num_heads, dim // num_heads
        self.norm = nn.LayerNorm(dim)
        self.w = nn.Linear(dim, 4 * dim)  # z, i, f, o from the input
        self.r = nn.Parameter(torch.randn(num_heads, self.head_dim, 4 * self.head_dim) / math.sqrt(self.head_dim))
        with torch.no_grad():
            self.w.bias[2 * dim : 3 * dim] = torch.linspace(3.0, 6.0, dim)  # forget gates start open
        self.head_norm = nn.GroupNorm(num_heads, dim)
        hidden = int(round(ff_factor * dim))
        self.ff_norm = nn.LayerNorm(dim)
        self.ff_up = nn.Linear(dim, 2 * hidden)
        self.ff_down = nn.Linear(hidden, dim)

    def initial_state(self, batch: int, device: torch.device) -> SLSTMState:
        return tuple(torch.zeros(batch, self.dim, device=device) for _ in range(4))

    def forward(
        self, x: torch.Tensor, state: SLSTMState | None = None, steps: Steps | None = None
    ) -> tuple[torch.Tensor, SLSTMState]:
        """``x``: (B, T, D), or (N, D) real steps packed by ``steps``."""
        if steps is None:
            b, t, _ = x.shape
            y, state = self.forward(x.reshape(b * t, -1), state, Steps(b, t))
            return y.view(b, t, -1), state
        b, t, nh, hd = steps.batch, steps.time, self.num_heads, self.head_dim
        state = state if state is not None else self.initial_state(b, x.device)
        # Heads first, (H, B, hd), so each step's recurrent part is one batched matmul over the heads.
        h, c, n, m = (s.view(b, nh, hd).transpose(0, 1) for s in state)
        # The input part of every gate for all steps in one matmul; each head's 4 hd columns are z, i, f, o.
        wx = steps.unpack(self.w(self.norm(x))).view(b, t, nh, 4 * hd).permute(1, 2, 0, 3).contiguous()
        outs = []
        # unbind, not wx[step]: one autograd node for all steps (indexing would give every step a
        # full-size zero gradient to fill in the backward pass, quadratic in T).
        for wx_t in wx.unbind(0):  # the recurrence through h is what makes sLSTM sequential
            z_pre, i_pre, f_pre, o_pre = torch.baddbmm(wx_t, h, self.r).chunk(4, dim=-1)  # (H, B, hd) each
            log_fm = F.logsigmoid(f_pre) + m
            m_new = torch.maximum(log_fm, i_pre)
            i_gate, f_gate = torch.exp(i_pre - m_new), torch.exp(log_fm - m_new)
            c = torch.addcmul(f_gate * c, i_gate, torch.tanh(z_pre))
            n = torch.addcmul(i_gate, f_gate, n)
            h = torch.sigmoid(o_pre) * c / n
            m = m_new
            outs.append(h)
        hs = torch.stack(outs, dim=2).permute(1, 2, 0, 3).reshape(b, t, -1)  # (B, T, D)
        y = x + head_norm(self.head_norm, steps.pack(hs))
        gate, up = self.ff_up(self.ff_norm(y)).chunk(2, dim=-1)
        state = tuple(s.transpose(0, 1).reshape(b, -1) for s in (h, c, n, m))
        return y + self.ff_down(F.gelu(gate) * up), state


class XLSTMStack(nn.Module):
    """Input projection, ``num_blocks`` xLSTM blocks (sLSTM at ``slstm_at``, mLSTM elsewhere), final norm.

    Called like ``nn.LSTM`` with ``batch_first=True``: ``(x, state) -> (hidden, state)``, the state a list
    with one entry per block. ``lengths`` (B,): the rows' real steps, padding after them; their per-step
    work is skipped and the hidden output at padded steps is zero.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_blocks: int = 8,
        slstm_at: list[int] | None = None,
        num_heads: int = 4,
        chunk_size: int = 64,
    ) -> None:
        super().__init__()
        slstm_at = [num_blocks - 1] if slstm_at is None else list(slstm_at)
        bad = [i for i in slstm_at if not 0 <= i < num_blocks]
        if bad:
            raise ValueError(f"slstm_at {bad}: block positions run from 0 to {num_blocks - 1}")
        self.proj = nn.Linear(input_size, hidden_size) if input_size != hidden_size else nn.Identity()
        self.blocks = nn.ModuleList(
            SLSTMBlock(hidden_size, num_heads)
            if i in slstm_at
            else MLSTMBlock(hidden_size, num_heads, chunk_size=chunk_size)
            for i in range(num_blocks)
        )
        self.norm = nn.LayerNorm(hidden_size)

    def forward(
        self, x: torch.Tensor, state: list | None = None, lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, list]:
        b, t, _ = x.shape
        rows = lambda u, order: u if order is None else u[order]  # noqa: E731
        order = None
        if lengths is not None:  # longest rows first: the rows still running are a prefix (see Steps)
            order = lengths.argsort(descending=True)
            x, lengths = x[order], lengths[order]
            state = state and [tuple(rows(s, order) for s in block_state) for block_state in state]
        # Pack the real steps only where padding is a large share of the batch (see Steps).
        steps = Steps(b, t, lengths, pack=lengths is not None and float(lengths.sum()) < PACK_BELOW * b * t)
        x = self.proj(steps.pack(x))
        new_state = []
        for i, block in enumerate(self.blocks):
            x, s = block(x, state[i] if state is not None else None, steps)
            new_state.append(s)
        hidden = steps.zero_padding(steps.unpack(self.norm(x)))
        if order is not None:
            back = order.argsort()
            hidden = hidden[back]
            new_state = [tuple(s[back] for s in block_state) for block_state in new_state]
        return hidden, new_state
