"""Self-Attentive Knowledge Tracing (Pandey & Karypis, EDM 2019).

The exercise asked at step t (its embedding, the query) attends over the interactions (exercise, answer)
before t (keys and values: interaction embedding + position embedding); then residual + layer norm, a
feed-forward layer with residual + layer norm, and a linear prediction layer.

Readings taken where the paper leaves a choice open: one attention block, as in the paper (its reference code
can stack more); the query is the exercise embedding without a position embedding (the paper adds positions to
the interactions only); the residual around the attention adds the query; dropout follows the attention and the
feed-forward layer; the prediction is one logit from the block's output (the paper's sigmoid(F w + b)).
The attention at step 0, which has no past interaction, is zero.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def masked_softmax(scores: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Softmax over the allowed keys (last dimension); a row with no allowed key gets all-zero weights."""
    scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    return torch.softmax(scores, dim=-1) * allowed


def past_only(length: int, device: torch.device) -> torch.Tensor:
    """(length, length) bool: query t may attend to key j iff j < t."""
    return torch.ones(length, length, dtype=torch.bool, device=device).tril(-1)


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention over ``num_heads`` heads with an explicit mask of allowed keys."""

    def __init__(self, dim: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embedding size {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        return x.view(batch, length, self.num_heads, dim // self.num_heads).transpose(1, 2)

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """``queries`` (batch, n, dim), ``keys`` (batch, m, dim) (also the values), ``allowed`` (n, m)."""
        q, k, v = self._heads(self.query(queries)), self._heads(self.key(keys)), self._heads(self.value(keys))
        weights = masked_softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), allowed)
        attended = (self.dropout(weights) @ v).transpose(1, 2).flatten(2)
        return self.out(attended)


class SAKTNet(nn.Module):
    """(skills, correct) -> logits (batch, time): logit t for the answer at step t from the steps before t.

    Sequences may be at most ``max_length`` steps long (the position embeddings).
    """

    def __init__(
        self, num_skills: int, embed_size: int = 100, num_heads: int = 5, dropout: float = 0.2, max_length: int = 200
    ) -> None:
        super().__init__()
        self.num_skills = num_skills
        self.max_length = max_length
        self.interaction_embedding = nn.Embedding(2 * num_skills, embed_size)
        self.exercise_embedding = nn.Embedding(num_skills, embed_size)
        self.position_embedding = nn.Embedding(max_length, embed_size)
        self.attention = MultiHeadAttention(embed_size, num_heads, dropout)
        self.attention_dropout = nn.Dropout(dropout)
        self.attention_norm = nn.LayerNorm(embed_size)
        self.feed_forward = nn.Sequential(
            nn.Linear(embed_size, embed_size), nn.ReLU(), nn.Linear(embed_size, embed_size), nn.Dropout(dropout)
        )
        self.feed_forward_norm = nn.LayerNorm(embed_size)
        self.head = nn.Linear(embed_size, 1)

    def interactions(self, skills: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
        """Keys and values: interaction embedding + position embedding, (batch, time, embed_size)."""
        positions = torch.arange(skills.shape[1], device=skills.device)
        return self.interaction_embedding(skills + self.num_skills * correct) + self.position_embedding(positions)

    def predict(self, queries: torch.Tensor, keys: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """Logits (batch, n) for exercise embeddings ``queries`` (batch, n, dim) over interactions ``keys``."""
        x = self.attention_norm(queries + self.attention_dropout(self.attention(queries, keys, allowed)))
        x = self.feed_forward_norm(x + self.feed_forward(x))
        return self.head(x).squeeze(-1)

    def forward(self, skills: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
        keys = self.interactions(skills, correct)
        return self.predict(self.exercise_embedding(skills), keys, past_only(skills.shape[1], skills.device))
