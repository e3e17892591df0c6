"""A NAS-FPN neck for any architecture of the NAS-FPN space, registered in mmdet's MODELS.

:class:`SearchableNASFPN` forms P3..P7 exactly like mmdet's ``NASFPN``
(1x1 lateral convs, then 1x1 conv + 2x2 max pooling for each extra level) and
stacks ``stack_times`` pyramid networks of the given architecture, each with
its own weights. A merging cell resizes its two inputs to its level (nearest
upsampling or max pooling) and combines them with mmcv's ``SumCell`` or
``GlobalPoolingCell``; output cells then add the unused features of their
level; finally ReLU -> 3x3 conv -> norm, like the output conv of mmcv's cells.

With the ``'nas_fpn'`` preset and :func:`state_dict_from_mmdet_nasfpn`, it
computes the same function as mmdet's ``NASFPN``.
"""
from __future__ import annotations

import os
import re
from collections import OrderedDict
from typing import Mapping, Sequence

import torch
from mmcv.cnn import ConvModule
from mmcv.ops.merge_cells import GlobalPoolingCell, SumCell
from mmdet.registry import MODELS
from mmengine.model import BaseModule, ModuleList
from torch import nn

from nas_tasks.errors import NasError

from .space import MIN_LEVEL, CellSpec, resolve_pyramid


class MergingCell(nn.Module):
    """Resize two features to one level, combine them, add the unused
    features, then ReLU -> 3x3 conv -> norm."""

    def __init__(self, op: str, channels: int, norm_cfg: dict | None):
        super().__init__()
        if op == 'sum':
            self.merge = SumCell(channels, channels, with_out_conv=False)
        else:
            self.merge = GlobalPoolingCell(with_out_conv=False)
        # The output conv of mmcv's merge cells, built separately so that the
        # unused features can be added before it.
        self.out_conv = ConvModule(channels, channels, 3, padding=1, bias=True,
                                   norm_cfg=norm_cfg, order=('act', 'conv', 'norm'))

    def forward(self, input0: torch.Tensor, input1: torch.Tensor, out_size: torch.Size,
                unused_inputs: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        # mmcv's cells compute x2 + att(x2) * x1 for global pooling: input0 is x2.
        x = self.merge(input1, input0, out_size=out_size)
        for feature in unused_inputs:
            # Out of place: the ReLU of out_conv works in place on x.
            x = x + feature
        return self.out_conv(x)


class PyramidNetwork(nn.Module):
    """One pyramid network: P3..P7 in, new P3..P7 (same sizes) out."""

    def __init__(self, specs: Sequence[CellSpec], num_levels: int, channels: int,
                 norm_cfg: dict | None):
        super().__init__()
        self.specs = list(specs)
        self.num_levels = num_levels
        self.cells = ModuleList(MergingCell(spec.op, channels, norm_cfg) for spec in specs)

    def forward(self, pyramid: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        features = list(pyramid)
        for cell, spec in zip(self.cells, self.specs):
            out_size = pyramid[spec.level - MIN_LEVEL].shape[-2:]
            unused = [features[index] for index in spec.unused_inputs]
            features.append(cell(features[spec.input0], features[spec.input1], out_size, unused))
        by_level = {spec.level: feature for spec, feature
                    in zip(self.specs[-self.num_levels:], features[-self.num_levels:])}
        return [by_level[level] for level in sorted(by_level)]


@MODELS.register_module()
class SearchableNASFPN(BaseModule):
    """NAS-FPN with a searched (or the published) pyramid architecture.

    Args:
        in_channels, out_channels, num_outs, stack_times, start_level,
        end_level, norm_cfg, init_cfg: as for mmdet's ``NASFPN``.
        arch: a preset name (see ``PRESETS``), a path to an arch JSON file,
            an arch document dict, or an arch dict ``{"cell0.input0": 1, ...}``
            of a NAS-FPN space with ``num_outs`` levels (resolved by
            :func:`nas_tasks.architectures.resolve_arch`).
    """

    def __init__(self, in_channels: list[int], out_channels: int, num_outs: int,
                 stack_times: int, start_level: int = 0, end_level: int = -1,
                 norm_cfg: dict | None = None,
                 init_cfg: dict | list | None = dict(type='Caffe2Xavier', layer='Conv2d'),
                 arch: str | os.PathLike | Mapping = 'nas_fpn'):
        super().__init__(init_cfg=init_cfg)
        num_ins = len(in_channels)
        if end_level == -1 or end_level == num_ins - 1:
            backbone_end_level = num_ins
            if num_outs < num_ins - start_level:
                raise NasError(f'num_outs ({num_outs}) must be at least the number of backbone '
                               f'levels used ({num_ins - start_level})')
        else:
            # Extra levels only on top of the last backbone level.
            backbone_end_level = end_level + 1
            if end_level >= num_ins or num_outs != end_level - start_level + 1:
                raise NasError(f'with end_level={end_level}, num_outs must be '
                               f'end_level - start_level + 1 and end_level < {num_ins}')
        if stack_times < 1:
            raise NasError(f'stack_times must be >= 1, got {stack_times}')
        space, self.arch = resolve_pyramid(arch, num_inputs=num_outs)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_outs = num_outs
        self.stack_times = stack_times
        self.start_level = start_level
        self.end_level = end_level

        self.lateral_convs = nn.ModuleList(
            ConvModule(in_channels[i], out_channels, 1, norm_cfg=norm_cfg, act_cfg=None)
            for i in range(start_level, backbone_end_level))
        num_extra_levels = num_outs - backbone_end_level + start_level
        self.extra_downsamples = nn.ModuleList(
            nn.Sequential(ConvModule(out_channels, out_channels, 1, norm_cfg=norm_cfg,
                                     act_cfg=None),
                          nn.MaxPool2d(2, 2))
            for _ in range(num_extra_levels))
        specs = space.cell_specs(self.arch)
        self.stages = ModuleList(PyramidNetwork(specs, num_outs, out_channels, norm_cfg)
                                 for _ in range(stack_times))

    def forward(self, inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        pyramid = [lateral_conv(inputs[self.start_level + i])
                   for i, lateral_conv in enumerate(self.lateral_convs)]
        for downsample in self.extra_downsamples:
            pyramid.append(downsample(pyramid[-1]))
        for stage in self.stages:
            pyramid = stage(pyramid)
        return tuple(pyramid)


# mmdet's NASFPN cells that own weights -> our cell index in the 'nas_fpn'
# preset. Its 'gp_43_5' and 'gp_54_7' have no out conv (and no weights): they
# are the global pooling of our cells 4 and 5, whose out convs mmdet's
# 'sum_55_5' and 'sum_77_7' apply after adding the unused P5 and P7.
_MMDET_CELLS = {'gp_64_4': 0, 'sum_44_4': 1, 'sum_43_3': 2, 'sum_34_4': 3,
                'sum_55_5': 4, 'sum_77_7': 5, 'gp_75_6': 6}
_MMDET_STAGE_KEY = re.compile(
    r'^(?P<prefix>(?:.*\.)?)fpn_stages\.(?P<stage>\d+)\.(?P<cell>[^.]+)\.(?P<rest>.+)$')


def state_dict_from_mmdet_nasfpn(mmdet_state_dict: Mapping[str, torch.Tensor]) -> OrderedDict:
    """mmdet ``NASFPN`` weights -> :class:`SearchableNASFPN` weights for the
    ``'nas_fpn'`` preset (same ``stack_times``, ``norm_cfg`` and channels).

    ``fpn_stages.{s}.{cell}.out_conv.*`` becomes ``stages.{s}.cells.{i}.out_conv.*``;
    every other key (lateral and extra convs, or e.g. ``backbone.*`` in a
    detector's state dict) is kept unchanged.
    """
    converted = OrderedDict()
    for key, value in mmdet_state_dict.items():
        match = _MMDET_STAGE_KEY.match(key)
        if match is None:
            converted[key] = value
            continue
        if match['cell'] not in _MMDET_CELLS:
            raise NasError(f'state dict key {key!r} is not a weight of a cell of mmdet\'s NASFPN '
                           f'({", ".join(_MMDET_CELLS)})')
        cell = _MMDET_CELLS[match['cell']]
        converted[f'{match["prefix"]}stages.{match["stage"]}.cells.{cell}.{match["rest"]}'] = value
    return converted
