"""The DARTS relaxation of a choice: a weighted sum of candidate operations."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class MixedOp(nn.Module):
    """``sum_i w_i * op_i(x)`` over the candidate ops.

    ``weights`` come from :class:`ArchParameters`: the softmax of an edge's
    architecture logits, or, in single-path mode, a straight-through one-hot
    vector together with the index of the one op to run (``active``). Then
    only that op is computed, which is what makes single-path search cheap.
    """

    def __init__(self, candidates: Sequence[nn.Module]):
        super().__init__()
        if not candidates:
            raise ValueError('a MixedOp needs at least one candidate op')
        self.candidates = nn.ModuleList(candidates)

    def __len__(self) -> int:
        return len(self.candidates)

    def forward(self, x: torch.Tensor, weights: torch.Tensor,
                active: int | None = None) -> torch.Tensor:
        if weights.shape != (len(self.candidates),):
            raise ValueError(f'expected {len(self.candidates)} op weights, got shape '
                             f'{tuple(weights.shape)}')
        if active is not None:
            return weights[active] * self.candidates[active](x)
        return sum(w * op(x) for w, op in zip(weights, self.candidates))
