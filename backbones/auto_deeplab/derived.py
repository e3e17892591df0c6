"""The derived Auto-DeepLab network: one cell genotype along one decoded path.

Built from an arch (preset name, arch JSON file or dict; see ``arch.py``):

* stem (the paper's section 5.2 / the official ``_nas_stem``): three 3x3
  Conv-BN-ReLU, 64 channels stride 2, 64 stride 1, 128 stride 2;
* L cells, cell i at level ``path[i]`` (output stride s = 4 * 2^level) with
  B * F * s / 4 output channels. Cell i takes H^{l-1} = the previous cell's
  output (the stem's for cell 0) through a 1x1 ReLU-Conv-BN, as the official
  cell does, resampled to the cell's level (bilinear halving after the conv
  from the finer level, bilinear upsampling before it from the coarser level;
  the search cell uses a 3x3 stride-2 conv from the finer level instead) and
  H^{l-2} = the output two cells back (for cell 0 the stem's stride-2
  feature, for cell 1 the stem output), bilinearly resized to the cell's size
  and reduced by a 1x1 ReLU-Conv-BN.
  (The official code instead gives a cell that halves the resolution stride-2
  ops on its two inputs; here all ops have stride 1, as in the search.)

Features: index 0 is the stem output (stride 4, 128 channels), index i + 1
the output of cell i; features are returned after a ReLU (the official
network applies one to its last cell's output before the head). The default
``out_indices`` are what a DeepLabv3+ head needs: (the last stride-4 feature
before the last cell, the last cell), i.e. (3, 12) for the published path:
cell 2 is the official decoder's low-level end point 'Cell_2'.
``out_channels`` and ``out_strides`` describe the returned features, in the
order of ``out_indices``.
"""
from __future__ import annotations

import os
from typing import Mapping, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from mmdet.registry import MODELS as MMDET_MODELS
from mmengine.model import BaseModule
from mmseg.registry import MODELS as MMSEG_MODELS
from torch import nn

from nas_tasks.architectures import resolve_arch
from nas_tasks.errors import NasError

from .arch import AUTO_DEEPLAB_SPACE
from .ops import InputAdapter, PrevPrevAdapter, Stem, build_op, level_sizes, run_cell

STEM_CHANNELS = (64, 64, 128)
STEM_STRIDES = (2, 1, 2)


class FixedCell(nn.Module):
    """One cell of a genotype: block b = op(input) + op(input) of entries 2b, 2b+1;
    the output concatenates all blocks."""

    def __init__(self, cell: Sequence[Sequence], channels: int, prev_prev_channels: int,
                 prev_channels: int, source_offset: int):
        super().__init__()
        self.inputs = [int(source) for source, _ in cell]
        self.blocks = len(cell) // 2
        self.channels = channels
        self.preprocess0 = PrevPrevAdapter(prev_prev_channels, channels)
        self.preprocess1 = InputAdapter(prev_channels, channels, source_offset, strided_conv=False)
        self.ops = nn.ModuleList(build_op(op, channels) for _, op in cell)

    @property
    def out_channels(self) -> int:
        return self.blocks * self.channels

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        states = [self.preprocess0(s0, size), self.preprocess1(s1, size)]
        for block in range(self.blocks):
            first, second = 2 * block, 2 * block + 1
            states.append(self.ops[first](states[self.inputs[first]])
                          + self.ops[second](states[self.inputs[second]]))
        return torch.cat(states[2:], dim=1)


class FeatureLayout(NamedTuple):
    """Level, channels and stride of every feature (0 = stem, i + 1 = cell i),
    and which of them the backbone returns."""
    levels: tuple[int, ...]
    channels: tuple[int, ...]
    out_indices: tuple[int, ...]

    @property
    def strides(self) -> tuple[int, ...]:
        return tuple(4 * 2 ** level for level in self.levels)

    @property
    def out_channels(self) -> tuple[int, ...]:
        return tuple(self.channels[i] for i in self.out_indices)

    @property
    def out_strides(self) -> tuple[int, ...]:
        return tuple(self.strides[i] for i in self.out_indices)


def feature_layout(arch: Mapping, out_indices: Sequence[int] | None = None) -> FeatureLayout:
    """The features of the derived network of a validated ``arch``, without building it.

    ``out_indices`` None: (the last stride-4 feature before the last cell, the
    last cell), what a DeepLabv3+ head takes.
    """
    path, blocks = arch['path'], len(arch['cell']) // 2
    levels = (0, *path)
    channels = (STEM_CHANNELS[-1],
                *(blocks * arch['filter_multiplier'] * 2 ** level for level in path))
    last = len(path)
    if out_indices is None:
        out_indices = (max(i for i in range(last) if levels[i] == 0), last)
    out_indices = tuple(int(i) for i in out_indices)
    if not out_indices or not all(0 <= i <= last for i in out_indices):
        raise NasError(f'out_indices must be feature indices 0..{last} (0 = stem, i + 1 = '
                       f'cell i), got {out_indices}')
    return FeatureLayout(levels, channels, out_indices)


def read_derived_arch(arch: str | os.PathLike | Mapping,
                      filter_multiplier: int | None = None) -> dict:
    """The validated arch of a derived network (see
    :func:`~nas_tasks.architectures.resolve_arch`); ``filter_multiplier``
    overrides the arch's."""
    arch = resolve_arch(arch, AUTO_DEEPLAB_SPACE)
    if filter_multiplier is not None:
        arch = {**arch, 'filter_multiplier': filter_multiplier}
        AUTO_DEEPLAB_SPACE.validate(arch)
    return arch


class AutoDeepLabBackbone(BaseModule):
    """Args:
        arch: preset name ('autodeeplab_s', 'autodeeplab_m', 'autodeeplab_l'),
            arch JSON path, or arch dict.
        filter_multiplier: F; overrides the arch's when given.
        out_indices: feature indices to return (0 = stem, i + 1 = cell i);
            None for (last stride-4 feature before the last cell, last cell).
        with_cp: activation checkpointing per cell.
    """

    def __init__(self, arch: str | os.PathLike | Mapping, filter_multiplier: int | None = None,
                 out_indices: Sequence[int] | None = None, with_cp: bool = False,
                 init_cfg: dict | list | None = None):
        super().__init__(init_cfg)
        arch = read_derived_arch(arch, filter_multiplier)
        self.arch = arch
        self.with_cp = with_cp
        path, cell, multiplier = arch['path'], arch['cell'], arch['filter_multiplier']
        self.stem = Stem(STEM_CHANNELS, STEM_STRIDES)
        layout = feature_layout(arch, out_indices)
        # Levels and channels of every feature, with the stem's stride-2 feature first.
        levels = [-1, *layout.levels]
        channels = [STEM_CHANNELS[-2], *layout.channels]
        self.cells = nn.ModuleList(
            FixedCell(cell, multiplier * 2 ** level, channels[i], channels[i + 1],
                      levels[i + 1] - level)
            for i, level in enumerate(path))
        self.feature_levels = layout.levels
        self.feature_channels = layout.channels
        self.feature_strides = layout.strides
        self.out_indices = layout.out_indices
        self.out_channels = layout.out_channels
        self.out_strides = layout.out_strides

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        prev_prev, prev = self.stem(x)
        sizes = level_sizes(prev.shape[-2:], 4)
        features = [prev]
        for cell, level in zip(self.cells, self.feature_levels[1:]):
            prev_prev, prev = prev, run_cell(cell, prev_prev, prev, size=sizes[level],
                                             with_cp=self.with_cp)
            features.append(prev)
        return tuple(F.relu(features[i]) for i in self.out_indices)


MMDET_MODELS.register_module(module=AutoDeepLabBackbone)
MMSEG_MODELS.register_module(module=AutoDeepLabBackbone)
