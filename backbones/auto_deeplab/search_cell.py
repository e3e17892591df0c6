"""The Auto-DeepLab search cell: B blocks, each a sum of mixed ops over all earlier states.

A cell at one (layer, level) of the trellis has ``channels = F * s / 4`` per
block. Its hidden states are numbered as in the arch's ``cell``: 0 = H^{l-2},
1 = H^{l-1}, 2 + j = block j. Block b sums a :class:`MixedOp` over each of
its b + 2 inputs, so B = 5 blocks have 2 + 3 + 4 + 5 + 6 = 20 edges; edge
``edge_index(b, j)`` is row ``b(b+3)/2 + j`` of alpha. The output is the
concatenation of the B block outputs (B * channels).

Inputs (the paper, eq. 6 and section 5.1): H^{l-1} comes from the next-finer
level (3x3 stride-2 ReLU-Conv-BN), the same level (1x1 ReLU-Conv-BN) or the
next-coarser level (bilinear upsampling, then 1x1 ReLU-Conv-BN), one
:class:`InputAdapter` per direction the cell receives from; the network sums
the cell applied to each of them with beta weights, so the cell's mixed ops
are shared by the (up to three) calls. H^{l-2} is bilinearly resized to the
cell's size when it differs and reduced by a 1x1 ReLU-Conv-BN.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from nas_tasks.differentiable.mixed_op import MixedOp

from .arch import num_edges
from .ops import PRIMITIVES, InputAdapter, PrevPrevAdapter, build_op


def adapter_key(source_offset: int) -> str:
    return {-1: 'from_finer', 0: 'from_same', 1: 'from_coarser'}[source_offset]


class SearchCell(nn.Module):
    """Args:
        channels: channels of each block (F * s / 4).
        prev_prev_channels: channels of H^{l-2}.
        prev_channels: ``{source_offset: channels}`` of H^{l-1} for each level
            the cell receives from (offset = source level - cell level).
        blocks: B.
    """

    def __init__(self, channels: int, prev_prev_channels: int,
                 prev_channels: dict[int, int], blocks: int = 5):
        super().__init__()
        self.channels = channels
        self.blocks = blocks
        self.preprocess0 = PrevPrevAdapter(prev_prev_channels, channels, affine=False)
        self.preprocess1 = nn.ModuleDict({
            adapter_key(offset): InputAdapter(in_channels, channels, offset, affine=False)
            for offset, in_channels in sorted(prev_channels.items())})
        self.edges = nn.ModuleList(
            MixedOp([build_op(name, channels, search=True) for name in PRIMITIVES])
            for _ in range(num_edges(blocks)))

    @property
    def out_channels(self) -> int:
        return self.blocks * self.channels

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor,
                source_offset: int, size: Sequence[int],
                active: Sequence[int] | None = None) -> torch.Tensor:
        """``weights``: [edges, ops] (softmax or straight-through one-hot);
        ``active``: the op per edge in single-path mode, else None."""
        states = [self.preprocess0(s0, size),
                  self.preprocess1[adapter_key(source_offset)](s1, size)]
        edge = 0
        for _ in range(self.blocks):
            total = 0
            for state in states:
                total = total + self.edges[edge](
                    state, weights[edge], None if active is None else active[edge])
                edge += 1
            states.append(total)
        return torch.cat(states[2:], dim=1)
