"""xLSTM (Beck et al., 2024) in plain PyTorch: mLSTM and sLSTM blocks, a stack of them, state carried.

Why not the official ``xlstm`` package: version 2 hard-requires ``mlstm_kernels`` (Triton kernels) and
builds its sLSTM as a CUDA extension by default; its ``vanilla`` backends run on CPU, but its block stack's
``forward`` neither takes nor returns the recurrent state (only a one-token ``step`` does), which the
knowledge-state API needs after a whole sequence. The cells here follow the paper's equations.

State conventions (all float32 tensors, ``None`` = a fresh student):

* mLSTM block: ``(C, n, m, conv)`` -- matrix memory (B, H, d, d) scaled by ``exp(-m)``, normaliser
  (B, H, d), stabiliser (B, H), and the last ``kernel - 1`` inputs of the causal convolution.
* sLSTM block: ``(h, c, n, m)``, each (B, D), ``c`` and ``n`` scaled by ``exp(-m)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

MLSTMState = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
SLSTMState = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def _per_step(norm: nn.GroupNorm, x: torch.Tensor) -> torch.Tensor:
    """GroupNorm of each step on its own ((B, T, C) -> (B * T, C)): on (B, C, T) it would mix time steps,
    letting the future leak into the past."""
    return norm(x.reshape(-1, x.shape[-1])).view(x.shape)


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

    def forward(self, x: torch.Tensor, state: MLSTMState | None = None) -> tuple[torch.Tensor, MLSTMState]:
        b, t, _ = x.shape
        if state is None:
            state = self.initial_state(b, x.device)
        c, n, m, conv_in = state
        xm, z = self.up(self.norm(x)).chunk(2, dim=-1)
        # Causal depthwise convolution over [previous kernel-1 inputs, this sequence].
        padded = torch.cat([conv_in, xm], dim=1)
        xc = F.silu(self.conv(padded.transpose(1, 2)).transpose(1, 2))
        conv_in = padded[:, -(self.kernel - 1) :]
        heads = lambda u: u.view(b, t, self.num_heads, -1).transpose(1, 2)  # noqa: E731 -> (B, H, T, d)
        q, k = (heads(u) for u in self.qk(xc).chunk(2, dim=-1))
        k = k / math.sqrt(self.head_dim)
        v = heads(self.v(xm))
        i_pre, f_pre = self.gates(xc).transpose(1, 2).chunk(2, dim=1)  # (B, H, T) each
        outs = []
        for s in range(0, t, self.chunk_size):  # chunks bound the (L, L) matrices on long sequences
            e = s + self.chunk_size
            h, (c, n, m) = mlstm_chunk(
                q[:, :, s:e], k[:, :, s:e], v[:, :, s:e], i_pre[..., s:e], f_pre[..., s:e], (c, n, m)
            )
            outs.append(h)
        h = torch.cat(outs, dim=2).transpose(1, 2).reshape(b, t, -1)
        h = _per_step(self.head_norm, h) + self.skip * xc
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

    def forward(self, x: torch.Tensor, state: SLSTMState | None = None) -> tuple[torch.Tensor, SLSTMState]:
        b, t, _ = x.shape
        h, c, n, m = state if state is not None else self.initial_state(b, x.device)
        wx = self.w(self.norm(x))  # (B, T, 4D), the input part of every gate at once
        hd, nh = self.head_dim, self.num_heads
        outs = []
        for step in range(t):  # the recurrence through h is what makes sLSTM sequential
            rh = torch.einsum("bhd,hde->bhe", h.view(b, nh, hd), self.r)  # (B, H, 4 hd)
            pre = wx[:, step].view(b, nh, 4, hd) + rh.view(b, nh, 4, hd)
            z_pre, i_pre, f_pre, o_pre = (pre[:, :, g].reshape(b, -1) for g in range(4))
            log_f = F.logsigmoid(f_pre)
            m_new = torch.maximum(log_f + m, i_pre)
            i_gate, f_gate = torch.exp(i_pre - m_new), torch.exp(log_f + m - m_new)
            c = f_gate * c + i_gate * torch.tanh(z_pre)
            n = f_gate * n + i_gate
            h = torch.sigmoid(o_pre) * c / n
            m = m_new
            outs.append(h)
        y = x + _per_step(self.head_norm, torch.stack(outs, dim=1))
        gate, up = self.ff_up(self.ff_norm(y)).chunk(2, dim=-1)
        return y + self.ff_down(F.gelu(gate) * up), (h, c, n, m)


class XLSTMStack(nn.Module):
    """Input projection, ``num_blocks`` xLSTM blocks (sLSTM at ``slstm_at``, mLSTM elsewhere), final norm.

    Called like ``nn.LSTM`` with ``batch_first=True``: ``(x, state) -> (hidden, state)``, the state a list
    with one entry per block.
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

    def forward(self, x: torch.Tensor, state: list | None = None) -> tuple[torch.Tensor, list]:
        x = self.proj(x)
        new_state = []
        for i, block in enumerate(self.blocks):
            x, s = block(x, state[i] if state is not None else None)
            new_state.append(s)
        return self.norm(x), new_state
