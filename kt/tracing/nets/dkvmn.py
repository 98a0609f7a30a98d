"""Dynamic Key-Value Memory Network (Zhang, Shi, King & Yeung, WWW 2017).

A static key memory holds one vector per latent concept; a value memory per student holds the mastery of
each concept and is rewritten after every answer (erase, then add). The correlation weights of an exercise
are the softmax of its key embedding against the key memory; they decide how much of each memory slot is read
for the prediction and how much is written after the answer.

Readings taken: the initial value memory is a learned parameter shared by all students (as in the authors'
reference implementation; the paper does not say); the summary is the paper's f_t = tanh(W1 [r_t, k_t] + b1)
on the key embedding itself (the reference implementation first passes k_t through a 50-unit tanh layer).
"""

from __future__ import annotations

import torch
from torch import nn


class DKVMNNet(nn.Module):
    """(skills, correct) -> logits (batch, time): logit t for the answer at step t, read from the value memory
    written by the steps before t.

    The step interface (for answering one interaction at a time) is :meth:`initial_memory`, :meth:`read`
    (predict from a memory) and :meth:`write` (one answer into a memory).
    """

    def __init__(
        self,
        num_skills: int,
        memory_size: int = 50,
        key_dim: int = 50,
        value_dim: int = 200,
        summary_dim: int = 50,
        dropout: float = 0.0,
        init_std: float = 0.1,
    ) -> None:
        super().__init__()
        self.num_skills = num_skills
        self.key_embedding = nn.Embedding(num_skills, key_dim)  # the paper's A: exercise -> k_t
        self.value_embedding = nn.Embedding(2 * num_skills, value_dim)  # B: (exercise, answer) -> v_t
        self.key_memory = nn.Parameter(torch.randn(memory_size, key_dim) * init_std)  # M^k, static per student
        self.initial_value = nn.Parameter(torch.randn(memory_size, value_dim) * init_std)  # M^v_0
        self.erase = nn.Linear(value_dim, value_dim)
        self.add = nn.Linear(value_dim, value_dim)
        self.summary = nn.Linear(value_dim + key_dim, summary_dim)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(summary_dim, 1)

    def correlation(self, keys: torch.Tensor) -> torch.Tensor:
        """w = softmax(k M^k^T) over the memory slots: (..., key_dim) -> (..., memory_size)."""
        return torch.softmax(keys @ self.key_memory.T, dim=-1)

    def initial_memory(self, batch_size: int) -> torch.Tensor:
        """The value memory before any answer, (batch, memory_size, value_dim)."""
        return self.initial_value.expand(batch_size, -1, -1)

    def _predict(self, read: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        summary = torch.tanh(self.summary(torch.cat([read, keys], dim=-1)))
        return self.head(self.dropout(summary)).squeeze(-1)

    def read(self, memory: torch.Tensor, skills: torch.Tensor) -> torch.Tensor:
        """Logits (batch, n) for the ``skills`` (batch, n) asked next, from ``memory`` (batch, slots, value_dim)."""
        keys = self.key_embedding(skills)
        read = self.correlation(keys) @ memory  # r = sum_i w(i) M^v(i)
        return self._predict(read, keys)

    def _erase_add(self, skills: torch.Tensor, correct: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        values = self.value_embedding(skills + self.num_skills * correct)
        return torch.sigmoid(self.erase(values)), torch.tanh(self.add(values))

    @staticmethod
    def update(memory: torch.Tensor, weight: torch.Tensor, erase: torch.Tensor, add: torch.Tensor) -> torch.Tensor:
        """M(i) <- M(i) * (1 - w(i) e) + w(i) a, for memory (batch, slots, dim), weight (batch, slots),
        erase and add (batch, dim)."""
        w = weight.unsqueeze(-1)
        return memory * (1 - w * erase.unsqueeze(1)) + w * add.unsqueeze(1)

    def write(self, memory: torch.Tensor, skills: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
        """The memory after one answer per student: ``skills``, ``correct`` (batch,)."""
        erase, add = self._erase_add(skills, correct)
        return self.update(memory, self.correlation(self.key_embedding(skills)), erase, add)

    def forward(self, skills: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
        keys = self.key_embedding(skills)  # (batch, time, key_dim)
        weights = self.correlation(keys)  # (batch, time, slots)
        erase, add = self._erase_add(skills, correct)
        memory = self.initial_memory(skills.shape[0])
        reads = []
        # unbind, not weights[:, t]: one autograd node for all steps (indexing would give every step a
        # full-size zero gradient to fill in the backward pass, quadratic in the length).
        for w_t, erase_t, add_t in zip(weights.unbind(1), erase.unbind(1), add.unbind(1)):
            reads.append((w_t.unsqueeze(1) @ memory).squeeze(1))  # read before step t's answer
            memory = self.update(memory, w_t, erase_t, add_t)
        return self._predict(torch.stack(reads, dim=1), keys)
