"""Attentive Knowledge Tracing (Ghosh, Heffernan & Lan, KDD 2020), without the Rasch question embeddings.

Three attention stages, each with *monotonic attention*: the scaled dot product of query t and key tau is
multiplied by ``exp(-theta * sqrt(d(t, tau)))`` before the softmax, with a learnable ``theta = softplus(.) > 0`` per
head and the context-aware distance ``d(t, tau) = |t - tau| * sum gamma(t, t')`` over the keys t' after tau that
step t may attend to, where gamma are the attention weights of the plain dot product (treated as constants: no
gradient flows through d).

* the question encoder: self-attention over the exercise embeddings x, steps <= t (no feed-forward layer);
* the knowledge encoder: self-attention over the interaction embeddings y, steps <= t;
* the knowledge retriever: query and key are the encoded exercises, the values the encoded interactions;
  step t attends to steps < t only (its own answer is what is predicted), and step 0 gets zero.

The retrieved knowledge, concatenated with the exercise embedding, goes through a 3-layer MLP to one logit.

Readings taken (all as in the authors' reference implementation where the paper is silent):
without Rasch embeddings the exercise embedding x_t is the skill's embedding and the interaction embedding
y_t = x_t + g(answer_t) (one learned vector per answer value); queries and keys share one projection
(``kq_same``); the decay uses ``sqrt(d)`` where the paper writes ``d``; the decay factor is clamped to
[1e-5, 1e5]; every attention layer is followed by residual + layer norm and, except the question encoder's, a
feed-forward layer with residual + layer norm; with ``num_blocks`` > 1 the knowledge encoder stacks its
layers first, then question-encoder and retriever layers alternate. There are no position embeddings:
the distance term carries the order.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# The reference implementation clamps the decay factor exp(-theta * d) to this range.
DECAY_RANGE = (1e-5, 1e5)


def monotonic_attention_weights(scores: torch.Tensor, allowed: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """AKT's attention weights from raw scores q.k / sqrt(d_k).

    ``scores`` (batch, heads, n, m) with query i at position i and key j at position j; ``allowed`` (n, m) bool;
    ``theta`` (heads,) the positive decay rates. Rows without an allowed key get all-zero weights.
    """
    low = torch.finfo(scores.dtype).min
    n, m = scores.shape[-2:]
    with torch.no_grad():
        gamma = torch.softmax(scores.masked_fill(~allowed, low), dim=-1) * allowed
        later = gamma.sum(-1, keepdim=True) - gamma.cumsum(-1)  # sum of gamma(t, t') over keys t' after tau
        positions = torch.arange(max(n, m), device=scores.device)
        gap = (positions[:n, None] - positions[None, :m]).abs().to(scores.dtype)
        distance = (later * gap).clamp(min=0).sqrt()
    decay = torch.exp(-theta.view(-1, 1, 1) * distance).clamp(*DECAY_RANGE)
    weights = torch.softmax((scores * decay).masked_fill(~allowed, low), dim=-1)
    return weights * allowed


class MonotonicAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, dropout: float, kq_same: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"d_model {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.key = nn.Linear(dim, dim)
        self.query = None if kq_same else nn.Linear(dim, dim)  # kq_same: queries use the key projection
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)
        # theta = softplus(raw): one decay rate per head, initialised as the reference implementation does.
        self.raw_theta = nn.Parameter(nn.init.xavier_uniform_(torch.empty(num_heads, 1, 1)).view(num_heads))
        for layer in filter(None, (self.key, self.query, self.value)):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        nn.init.zeros_(self.out.bias)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        return x.view(batch, length, self.num_heads, dim // self.num_heads).transpose(1, 2)

    @property
    def theta(self) -> torch.Tensor:
        return F.softplus(self.raw_theta)

    def forward(
        self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, allowed: torch.Tensor
    ) -> torch.Tensor:
        query = self.query or self.key
        q, k, v = self._heads(query(queries)), self._heads(self.key(keys)), self._heads(self.value(values))
        scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
        weights = monotonic_attention_weights(scores, allowed, self.theta)
        return self.out((self.dropout(weights) @ v).transpose(1, 2).flatten(2))


class AKTLayer(nn.Module):
    """Monotonic attention, residual + layer norm, then (``feed_forward``) a feed-forward layer, residual + norm."""

    def __init__(self, dim: int, num_heads: int, d_ff: int, dropout: float, kq_same: bool, feed_forward: bool):
        super().__init__()
        self.attention = MonotonicAttention(dim, num_heads, dropout, kq_same)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(
            nn.Linear(dim, d_ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(d_ff, dim), nn.Dropout(dropout)
        ) if feed_forward else None
        self.feed_forward_norm = nn.LayerNorm(dim) if feed_forward else None

    def forward(self, queries, keys, values, allowed: torch.Tensor) -> torch.Tensor:
        x = self.norm(queries + self.dropout(self.attention(queries, keys, values, allowed)))
        if self.feed_forward is not None:
            x = self.feed_forward_norm(x + self.feed_forward(x))
        return x


class AKTNet(nn.Module):
    """(skills, correct) -> logits (batch, time): logit t for the answer at step t from the steps before t."""

    def __init__(
        self,
        num_skills: int,
        d_model: int = 256,
        num_heads: int = 8,
        num_blocks: int = 1,
        d_ff: int = 1024,
        final_fc_dim: int = 512,
        dropout: float = 0.05,
        kq_same: bool = True,
    ) -> None:
        super().__init__()
        self.exercise_embedding = nn.Embedding(num_skills, d_model)
        self.answer_embedding = nn.Embedding(2, d_model)

        def layers(feed_forward: bool) -> nn.ModuleList:
            return nn.ModuleList(
                AKTLayer(d_model, num_heads, d_ff, dropout, kq_same, feed_forward) for _ in range(num_blocks)
            )

        self.knowledge_encoder = layers(feed_forward=True)
        self.question_encoder = layers(feed_forward=False)
        self.retriever = layers(feed_forward=True)
        self.head = nn.Sequential(
            nn.Linear(2 * d_model, final_fc_dim), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(final_fc_dim, 256), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(256, 1),
        )

    def forward(self, skills: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
        length = skills.shape[1]
        up_to_now = torch.ones(length, length, dtype=torch.bool, device=skills.device).tril()  # tau <= t
        before_now = up_to_now.tril(-1)  # tau < t
        exercises = self.exercise_embedding(skills)
        knowledge = exercises + self.answer_embedding(correct)
        for layer in self.knowledge_encoder:
            knowledge = layer(knowledge, knowledge, knowledge, up_to_now)
        x = exercises
        for question_layer, retriever_layer in zip(self.question_encoder, self.retriever):
            x = question_layer(x, x, x, up_to_now)
            x = retriever_layer(x, x, knowledge, before_now)
        return self.head(torch.cat([x, exercises], dim=-1)).squeeze(-1)
